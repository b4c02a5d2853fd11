"""The judge's end of a sandboxed submission: a `Session` per submission, a `Remote` side per class.

A `Session` owns the student's process: it starts it (a fork of the sandbox's zygote), runs the
notebook's code cells in it one by one, and forwards the engine's requests with a time limit each
and a budget for the whole submission. Whatever ends the process (an exception of any kind is
not one: it comes back as an answer) becomes a `Fault` with the reason, recorded, and the next
request gets a fresh process that reruns the cells that worked: a cell that loops forever is
skipped, not fatal; a forward that crashes costs the checks it prevented, not the rest.

`Remote` is the `student.Side` the engine grades through; its handles are those of `student`,
so the engine, the specs and their judges cannot tell it from `Local`.
"""

from __future__ import annotations

import errno
import signal
import socket
import time
from typing import Any

from . import wire
from .sandbox import Limits, SandboxError, Zygote
from .student import Fault, Handle, Side, Stale, StudentError

SIGNALS = {signal.SIGSEGV: "SIGSEGV, a crash in native code", signal.SIGBUS: "SIGBUS, a crash in native code",
           signal.SIGABRT: "SIGABRT, the process aborted", signal.SIGKILL: "SIGKILL",
           signal.SIGXCPU: "SIGXCPU: it used up its CPU time", signal.SIGFPE: "SIGFPE, an arithmetic crash",
           signal.SIGILL: "SIGILL, an illegal instruction", signal.SIGTERM: "SIGTERM"}


class Session:
    """One submission's student process (restarted after a fault), its cells and its budget.

    `cells` are (index, source) of the code cells to run, in order; or `module` is (path, name,
    aliases) of a Python module to import instead (the test suite's wrong layers; see server.py).
    """

    def __init__(self, zygote: Zygote, cells: list[tuple[int, str]] = (), *,
                 module: tuple[str, str, dict] | None = None, limits: Limits | None = None):
        self.zygote, self.cells, self.module = zygote, list(cells), module
        self.limits = limits or Limits.from_env()
        self.deadline = time.monotonic() + self.limits.budget
        self.sock: socket.socket | None = None
        self.pid = 0
        self.generation = 0
        self.restarts = -1  # the first start is not a restart
        self.cell_results: dict[int, dict] = {}  # index -> {"stdout", "error"} of the first run
        self.skipped: dict[int, str] = {}  # cells that ended the process: index -> why
        self.faults: list[Fault] = []
        self.notes: list[str] = []
        self.last_fault: Fault | None = None
        self.gave_up: Fault | None = None
        self.hung: dict[str, Fault] = {}  # class -> its call that ran out of time: not called again

    # --- the process ---------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self.sock is not None:
            return
        if self.gave_up:
            raise self.gave_up
        if self.restarts >= self.limits.restarts:
            self.gave_up = Fault(f"not run: your notebook's process failed {self.restarts + 1} times; the rest "
                                 f"was not graded (last: {self.last_fault.text.removeprefix('did not finish: ')})",
                                 "budget")
            raise self.gave_up
        self.restarts += 1
        self.generation += 1
        if time.monotonic() >= self.deadline:
            raise self._budget()
        try:
            self.sock, self.pid = self.zygote.spawn(self.limits)
        except SandboxError as exc:
            raise Fault(f"not run: {exc}", "crash") from None
        if self.module is not None:
            path, name, aliases = self.module
            self._request({"op": "import", "path": path, "module": name, "aliases": aliases}, self.limits.budget,
                          f"importing {name}")
        for index, source in self.cells:
            if index in self.skipped:
                continue
            try:
                result = self._request({"op": "run", "index": index, "source": source}, self.limits.cell,
                                       f"cell {index}")
            except Fault as fault:
                if fault.kind == "budget":
                    raise
                self.skipped[index] = fault.text.removeprefix("did not finish: ")
                self.cell_results.setdefault(index, {"stdout": "", "error": None, "fault": self.skipped[index]})
                self.notes.append(f"cell {index} was not kept: it {self.skipped[index]}; the other cells were run "
                                  "without it")
                self._ensure()  # a fresh process runs the cells that work
                return
            self.cell_results.setdefault(index, result)

    def _budget(self) -> Fault:
        fault = Fault(f"not run: your notebook used up the {self.limits.budget:g} s it may take for grading", "budget")
        self.gave_up = fault
        return fault

    def _end(self, why: str, what: str, *, timed_out: bool = False) -> Fault:
        """The process could not answer: kill it, learn how it ended, record the fault."""
        sock, pid = self.sock, self.pid
        self.sock = None
        if sock is not None:
            sock.close()
        try:
            ended = self.zygote.reap(pid, grace=0.0 if timed_out else 1.0)
        except SandboxError:
            ended = {}
        if timed_out:
            text, kind = (f"did not finish: your notebook's process was stopped after {why} in {what} (the time "
                          "limit for one call)" if not what.startswith("cell") else
                          f"ran for more than {why} and was stopped (an endless loop?)"), "timeout"
        elif "signal" in ended and not ended.get("killed"):
            sig = ended["signal"]
            name = SIGNALS.get(sig, signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig))
            kind = "cpu" if sig == signal.SIGXCPU else "memory" if sig == signal.SIGKILL else "crash"
            text = f"did not finish: your notebook's process was killed by a signal in {what} ({name})"
        elif "exit" in ended and not ended.get("killed"):
            text, kind = (f"did not finish: your notebook's process exited in {what} (exit code {ended['exit']}: "
                          "os._exit, or an exit from another thread?)"), "exit"
        else:
            text, kind = f"did not finish: your notebook's process stopped answering in {what} ({why})", "crash"
        if what.startswith("cell") and not timed_out:
            text = text.replace("did not finish: your notebook's process ", "").replace(f" in {what}", "")
        fault = Fault(text, kind)
        self.last_fault = fault
        self.faults.append(fault)
        if timed_out and sum(f.kind == "timeout" for f in self.faults) >= self.limits.timeouts:
            # what hung twice will hang again: the rest is not graded, rather than waited for
            self.gave_up = Fault(f"not run: your notebook ran out of time {self.limits.timeouts} times (last: "
                                 f"{text.removeprefix('did not finish: ')}); the rest was not graded", "budget")
        return fault

    def _request(self, message: dict, limit: float, what: str) -> Any:
        if self.gave_up:
            raise self.gave_up
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._budget()
        wait = min(limit, left)
        try:
            self.sock.sendall(wire.pack(message, share=True))
            reply = wire.receive(self.sock, deadline=time.monotonic() + wait, text=wire.MAX_REPLY_TEXT)
        except TimeoutError:
            if wait < limit:
                self._end(f"{wait:.0f} s", what, timed_out=True)
                raise self._budget() from None
            raise self._end(f"{limit:g} s", what, timed_out=True) from None
        except (EOFError, ConnectionError, BrokenPipeError) as exc:
            raise self._end(type(exc).__name__, what) from None
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                raise self._end("connection lost", what) from None
            raise self._end(str(exc), what) from None
        except wire.WireError as exc:
            fault = self._end(str(exc), what)
            fault.kind = "output" if "larger" in str(exc) else fault.kind
            raise fault from None
        notes = reply.get("notes")
        if isinstance(notes, list):
            self.notes += [str(n)[:500] for n in notes[:20]]
        if "error" in reply:
            err = reply["error"]
            if not (isinstance(err, list) and len(err) == 3):
                raise StudentError("gave an answer of the wrong form")
            raise StudentError(str(err[0]), [str(k) for k in err[1]][:50] if isinstance(err[1], list) else [],
                               str(err[2]))
        if "ok" not in reply:
            raise StudentError("gave an answer of the wrong form")
        return reply["ok"]

    def request(self, message: dict, what: str, limit: float | None = None) -> Any:
        """Send `message` to the student's process (started or restarted as needed) and return the
        answer; StudentError for the student's exceptions, Fault when the process could not answer."""
        self._ensure()
        return self._request(message, self.limits.call if limit is None else limit, what)

    def start(self) -> None:
        """Run the notebook now (its cells' outputs are then in `cell_results`); faults are recorded."""
        try:
            self._ensure()
        except Fault:
            pass

    def side(self, name: str) -> Remote:
        return Remote(self, name)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                try:
                    self.zygote.reap(self.pid, grace=0.0)
                except SandboxError:
                    pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Remote(Side):
    """The student's class `name`, in a sandboxed `Session`."""

    def __init__(self, session: Session, name: str):
        self.session, self.key = session, name  # `key`: its name in the notebook's namespace
        self._described: dict | None = None
        self._drained_faults = len(session.faults)
        self._drained_notes = len(session.notes)

    @property
    def name(self) -> str:
        """The class's own name (what feedback calls it), once known; else its name in the namespace."""
        return str((self._described or {}).get("name") or self.key)

    def _ask(self, op: str, what: str, **fields: Any) -> Any:
        return self.session.request({"op": op, "cls": self.key, **fields}, what)

    def describe(self) -> dict:
        try:
            info = self._ask("describe", f"{self.key}")
        except StudentError:
            return {"qualname": self.key, "name": self.key, "mro": [], "id": -1, "is_class": False}
        if not isinstance(info, dict):
            return {"qualname": self.key, "name": self.key, "mro": [], "id": -1, "is_class": False}
        info.setdefault("mro", [])
        info.setdefault("id", -1)
        self._described = info
        return info

    def has_callable(self, name: str) -> bool:
        return bool(self._ask("has_callable", f"{self.name}.{name}", name=name))

    def sibling(self, name: str) -> dict:
        found = self._ask("sibling", f"{self.name}", name=name)
        if not isinstance(found, dict) or "id" not in found:
            raise StudentError("gave an answer of the wrong form")
        return found

    def _into_student(self, send: Any) -> Any:
        """A request that runs the student's code. Once one of this class's ran out of time, the rest
        are not waited for (they would most likely hang too): each fails at once, saying why, and the
        notebook's other classes keep their time."""
        hung = self.session.hung.get(self.key)
        if hung is not None:
            raise Fault(f"not run: {hung.text.removeprefix('did not finish: ')}, so {self.name} was not called "
                        "again", "skipped")
        try:
            return send()
        except Fault as fault:
            if fault.kind == "timeout":
                self.session.hung[self.key] = fault
            raise

    def build(self, args: tuple = (), kwargs: dict | None = None, *, seed: int | None = None,
              method: str | None = None) -> Handle:
        what = f"{self.name}.{method or '__init__'}"
        built = self._into_student(lambda: self._ask("build", what, args=tuple(args), kwargs=dict(kwargs or {}),
                                                     seed=seed, method=method))
        if not isinstance(built, dict) or not isinstance(built.get("info"), dict):
            raise StudentError("gave an answer of the wrong form")
        info = {"is_module": False, "type": "?", "type_name": "?", "instance_of_cls": False, **built["info"]}
        return Handle(self, (self.session.generation, built.get("key")), info)

    def call(self, key: Any, op: str, *args: Any, **kwargs: Any) -> Any:
        generation, inner = key
        if generation != self.session.generation or self.session.sock is None:
            cause = self.session.last_fault.text.removeprefix("did not finish: ") if self.session.last_fault else ""
            raise Stale(f"was not run: the notebook's process had to be restarted ({cause})")
        limit = self.session.limits.training if op == "train_digits" else None
        return self._into_student(lambda: self.session._request(
            {"op": "call", "key": inner, "name": op, "args": list(args), "kwargs": kwargs},
            self.session.limits.call if limit is None else limit, f"{self.name}.{op}"))

    def drain(self) -> tuple[list[str], list[Fault]]:
        notes = self.session.notes[self._drained_notes:]
        faults = self.session.faults[self._drained_faults:]
        self._drained_notes, self._drained_faults = len(self.session.notes), len(self.session.faults)
        return notes, faults
