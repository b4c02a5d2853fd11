"""The student's process: runs the notebook's code cells, then answers the judge's requests.

It runs inside the sandbox (see sandbox.py) and trusts nothing it is told beyond the wire format;
the judge trusts nothing it answers beyond that either. Requests (see remote.py, which sends them):

    {"op": "run", "index": i, "source": ...}      one code cell; its printed output and error
    {"op": "import", "path": ..., "module": ...}   a Python module instead of a notebook (tests)
    {"op": "describe" | "has_callable" | "sibling", "cls": name, ...}   about a class
    {"op": "build", "cls": name, "args", "kwargs", "seed", "method"}   an instance: its key and info
    {"op": "call", "key": k, "name": op, "args", "kwargs"}   an operation of `student.Local`

Every reply is {"ok": value} or {"error": [text, kinds, message]}, with the notes (printed lines,
warnings) of the request. The student's code may of course rewrite all of this in its own
process; it gains nothing by it, since values are judged outside and rules are also checked on the
source (scan.py).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import linecache
import os
import socket
import sys
import traceback
from typing import Any

from . import wire
from .student import Local, StudentError, captured


class Bounded(io.TextIOBase):
    """A text stream that keeps the first `limit` characters and counts the rest."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.kept, self.dropped = limit, [], 0, 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n... {self.dropped} more characters not kept ...\n"
        return text


class Server:
    def __init__(self, output: int):
        self.output = output
        self.pid = os.getpid()  # a process the student's code forked must not answer in its place
        self.namespace: dict[str, Any] = {"__name__": "notebook", "__builtins__": __builtins__}
        self.module = "notebook"
        self.sides: dict[str, Local] = {}
        self.handles: dict[int, tuple[Local, int]] = {}
        self.next_key = 0

    # --- the student's code -------------------------------------------------------------------------
    def run(self, index: int, source: str) -> dict:
        filename = f"<cell {index}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        out = Bounded(self.output)
        error = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                exec(compile(source, filename, "exec"), self.namespace)  # noqa: S102 - running it is the point
            except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
                error = {"ename": type(exc).__name__, "evalue": str(exc)[:2000],
                         "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)[-20:]}
        return {"stdout": out.value(), "error": error}

    def import_module(self, path: str, module: str, aliases: dict) -> dict:
        """A module in place of a notebook (the test suite's wrong layers); `aliases` names objects
        reachable from it by a path of attributes and indices: {"case_3": ["WRONG", 3, 1]}."""
        if path not in sys.path:
            sys.path.insert(0, path)
        loaded = importlib.import_module(module)
        self.namespace, self.module = dict(vars(loaded)), None
        for alias, steps in aliases.items():
            found: Any = loaded
            for step in steps:
                found = found[step] if isinstance(step, int) else getattr(found, step)
            self.namespace[alias] = found
        return {}

    def side(self, name: str) -> Local:
        if name not in self.sides:
            found = self.namespace.get(name)
            if self.module is None:  # a module's layer may be any callable (a factory of the tests)
                if not callable(found):
                    raise StudentError(f"the module has nothing named {name}", ("LookupError",))
            elif not isinstance(found, type) or found.__module__ != self.module:
                raise StudentError(f"the notebook defines no class named {name}", ("LookupError",))
            self.sides[name] = Local(found, interrupts=True)
        return self.sides[name]

    # --- requests ----------------------------------------------------------------------------------
    def answer(self, request: dict) -> Any:
        op = request.get("op")
        if op == "run":
            return self.run(int(request["index"]), str(request["source"]))
        if op == "import":
            return self.import_module(str(request["path"]), str(request["module"]), dict(request.get("aliases", {})))
        if op == "ping":
            return "pong"
        if op == "call":
            key = request.get("key")
            if key not in self.handles:
                raise StudentError("was asked about a layer that does not exist")
            local, inner = self.handles[key]
            return local.call(inner, str(request["name"]), *request.get("args", ()), **request.get("kwargs", {}))
        side = self.side(str(request.get("cls")))
        if op == "describe":
            return side.describe()
        if op == "has_callable":
            return side.has_callable(str(request["name"]))
        if op == "sibling":
            return side.sibling(str(request["name"]))
        if op == "build":
            handle = side.build(tuple(request.get("args", ())), dict(request.get("kwargs", {})),
                                seed=request.get("seed"), method=request.get("method"))
            key, self.next_key = self.next_key, self.next_key + 1
            self.handles[key] = (side, handle.key)
            return {"key": key, "info": handle.info}
        raise StudentError(f"unknown request {op!r}")

    def serve(self, sock: socket.socket) -> None:
        while True:
            try:
                request = wire.receive(sock)
            except (EOFError, OSError, wire.WireError):
                return
            notes: list[str] = []
            try:
                with captured(notes):
                    answer = self.answer(request)
                if os.getpid() != self.pid:
                    os._exit(0)
                reply = {"ok": answer}
            except StudentError as exc:
                if os.getpid() != self.pid:
                    os._exit(0)
                reply = {"error": [exc.text, list(exc.kinds), exc.message]}
            except BaseException as exc:  # noqa: BLE001 - whatever the student's code did to this process
                if os.getpid() != self.pid:
                    os._exit(0)
                err = StudentError.of(exc)
                reply = {"error": [err.text, list(err.kinds), err.message]}
            reply["notes"] = notes
            try:
                frame = wire.pack(reply)
            except Exception as exc:  # noqa: BLE001 - e.g. an answer too large to send
                frame = wire.pack({"error": [f"gave an answer that cannot be sent: {exc}", ["WireError"], ""],
                                   "notes": notes})
            try:
                sock.sendall(frame)
            except OSError:
                return


def serve(sock: socket.socket, output: int = 64_000) -> None:
    Server(output).serve(sock)
