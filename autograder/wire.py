"""What crosses between the judge and the student's process: JSON and raw tensor bytes, nothing else.

A message is one frame: a 4-byte length and a JSON header, then the raw bytes of the tensors it
carries. Decoding runs no code of the sender's: no pickle, no `torch.load`; a tensor is rebuilt
from its dtype (one of a fixed list), size, stride, offset and bytes, and torch checks that they fit.
Values are JSON with tags for what JSON lacks:

    {"T": [...]}  tuple          {"X": n}   the n-th tensor        {"Y": "float32"}  a dtype
    {"D": {...}}  dict            {"O": "AlwaysEqual"} an Opaque    {"I": [args, kwargs]} an Inputs
    {"N": [name, args, kwargs, own]}  a spec.Layer (a constructor argument that is a layer)

Tensors keep their strides; with `share=True` (the judge's requests) tensors that share memory
share it on the far side too (query, key and value as one tensor). The student's replies are sent
compact (each tensor its own bytes), so a tiny view of a huge tensor cannot make a huge message.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from typing import Any

import torch

from .spec import Inputs, Layer
from .student import MAX_ITEMS, Opaque

#: the longest string the judge accepts from the student's side (a cell's output is capped before)
MAX_REPLY_TEXT = 200_000

#: the largest frame either side accepts
MAX_FRAME = 512 * 2 ** 20
#: dtypes that may cross, by name
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}
_DEVICE = re.compile(r"^(cpu|meta|cuda(:\d{1,2})?)$")


class WireError(Exception):
    """A malformed or oversized message: from the student's side, a fault of the student's process."""


# --- values ----------------------------------------------------------------------------------------

class _Encoder:
    def __init__(self, share: bool):
        self.share = share
        self.tensors: list[dict] = []
        self.blobs: list[bytes] = []
        self._storages: dict[tuple, int] = {}
        self._seen: dict[int, int] = {}

    def blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def tensor(self, t: torch.Tensor) -> int:
        key = id(t)
        if key in self._seen:
            return self._seen[key]
        t = t.detach()
        entry = {"d": str(t.dtype).removeprefix("torch."), "v": str(t.device), "z": list(t.shape)}
        if t.device.type != "meta":
            if self.share:
                storage = t.untyped_storage()
                where = (str(t.device), storage.data_ptr(), storage.nbytes())
                if where not in self._storages:
                    whole = torch.empty(0, dtype=torch.uint8, device=t.device).set_(storage)
                    self._storages[where] = self.blob(whole.cpu().numpy().tobytes())
                entry.update(b=self._storages[where], o=t.storage_offset(), t=list(t.stride()))
            else:
                c = t.cpu().contiguous().reshape(-1)
                entry.update(b=self.blob(c.view(torch.uint8).numpy().tobytes() if c.numel() else b""), o=0,
                             t=list(torch.empty(t.shape, dtype=t.dtype, device="meta").stride()))
        self.tensors.append(entry)
        self._seen[key] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def value(self, v: Any, depth: int = 0) -> Any:
        if depth > 40:
            raise WireError("value nested too deeply")
        if v is None or type(v) in (bool, int, float, str):
            return v
        if isinstance(v, torch.Tensor):
            return {"X": self.tensor(v)}
        if isinstance(v, torch.dtype):
            return {"Y": str(v).removeprefix("torch.")}
        if isinstance(v, Opaque):
            return {"O": v.type_name}
        if isinstance(v, Inputs):
            return {"I": [self.value(tuple(v.args), depth + 1), self.value(dict(v.kwargs), depth + 1)]}
        if isinstance(v, Layer):
            return {"N": [v.name, self.value(tuple(v.args), depth + 1), self.value(dict(v.kwargs), depth + 1),
                          v.own]}
        if isinstance(v, tuple):
            return {"T": [self.value(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return [self.value(x, depth + 1) for x in v]
        if isinstance(v, dict):
            return {"D": {str(k): self.value(x, depth + 1) for k, x in v.items()}}
        return {"O": getattr(type(v), "__qualname__", "object")}


class _Decoder:
    def __init__(self, tensors: list, blobs: list[memoryview], device_map: dict | None, text: int | None):
        self.entries, self.blobs, self.device_map, self.text = tensors, blobs, device_map or {}, text
        self._built: dict[int, torch.Tensor] = {}
        self._storages: dict[int, Any] = {}

    def tensor(self, i: Any) -> torch.Tensor:
        if type(i) is not int or not 0 <= i < len(self.entries):
            raise WireError("bad tensor reference")
        if i in self._built:
            return self._built[i]
        e = self.entries[i]
        if not isinstance(e, dict) or e.get("d") not in DTYPES or not isinstance(e.get("v"), str) \
                or not _DEVICE.match(e["v"]):
            raise WireError("bad tensor header")
        dtype, size = DTYPES[e["d"]], e.get("z")
        if not isinstance(size, list) or len(size) > 12 or not all(type(n) is int and 0 <= n < 2 ** 40 for n in size):
            raise WireError("bad tensor size")
        device = self.device_map.get(e["v"], e["v"])
        if e["v"] == "meta":
            t = torch.empty(size, dtype=dtype, device="meta")
        else:
            b, offset, stride = e.get("b"), e.get("o"), e.get("t")
            if type(b) is not int or not 0 <= b < len(self.blobs) or type(offset) is not int or offset < 0 \
                    or not isinstance(stride, list) or len(stride) != len(size) \
                    or not all(type(n) is int and 0 <= n < 2 ** 40 for n in stride):
                raise WireError("bad tensor layout")
            if b not in self._storages:
                raw = self.blobs[b]
                self._storages[b] = torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage() \
                    if len(raw) else torch.empty(0, dtype=torch.uint8).untyped_storage()
            try:
                t = torch.empty(0, dtype=dtype).set_(self._storages[b], offset, size, stride)
            except RuntimeError as exc:
                raise WireError(f"tensor does not fit its bytes: {str(exc)[:100]}") from None
            if device != "cpu":
                t = t.to(device)
        self._built[i] = t
        return t

    def value(self, v: Any, depth: int = 0) -> Any:
        if depth > 40:
            raise WireError("value nested too deeply")
        if v is None or type(v) in (bool, int, float):
            return v
        if type(v) is str:
            return v if self.text is None else v[:self.text]
        if type(v) is list:
            return [self.value(x, depth + 1) for x in v[:MAX_ITEMS]]
        if type(v) is not dict or len(v) != 1:
            raise WireError("bad value")
        (tag, body), = v.items()
        if tag == "X":
            return self.tensor(body)
        if tag == "Y":
            if body not in DTYPES:
                raise WireError("bad dtype")
            return DTYPES[body]
        if tag == "O":
            return Opaque(str(body)[:200])
        if tag == "T" and type(body) is list:
            return tuple(self.value(x, depth + 1) for x in body[:MAX_ITEMS])
        if tag == "D" and type(body) is dict:
            return {str(k): self.value(x, depth + 1) for k, x in list(body.items())[:MAX_ITEMS]}
        if tag == "I" and type(body) is list and len(body) == 2:
            args, kwargs = self.value(body[0], depth + 1), self.value(body[1], depth + 1)
            if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                raise WireError("bad inputs")
            return Inputs(args, kwargs)
        if tag == "N" and type(body) is list and len(body) == 4:
            args, kwargs = self.value(body[1], depth + 1), self.value(body[2], depth + 1)
            return Layer(str(body[0]), tuple(args), dict(kwargs), bool(body[3]))
        raise WireError(f"unknown tag {str(tag)[:20]!r}")


# --- frames -----------------------------------------------------------------------------------------

def pack(message: dict, *, share: bool = False) -> bytes:
    """One frame: `message` is a dict of plain values (see the module's docstring)."""
    enc = _Encoder(share)
    body = {k: enc.value(v) for k, v in message.items()}
    header = json.dumps({"m": body, "x": enc.tensors, "b": [len(b) for b in enc.blobs]}).encode()
    frame = struct.pack(">I", len(header)) + header + b"".join(enc.blobs)
    if len(frame) > MAX_FRAME:
        raise WireError(f"message of {len(frame) / 2 ** 20:.0f} MB is larger than the {MAX_FRAME // 2 ** 20} MB limit")
    return struct.pack(">Q", len(frame)) + frame


def unpack(frame: bytes | memoryview, device_map: dict | None = None, text: int | None = None) -> dict:
    """The message of one frame (without its 8-byte length), strings cut at `text` characters when
    given (the judge's limit on what the student's side says). Raises WireError when malformed."""
    frame = memoryview(frame)
    try:
        (n,) = struct.unpack(">I", frame[:4])
        header = json.loads(bytes(frame[4:4 + n]))
        sizes, tensors, body = header["b"], header["x"], header["m"]
        if not isinstance(sizes, list) or not isinstance(tensors, list) or not isinstance(body, dict):
            raise WireError("bad frame")
        blobs, at = [], 4 + n
        for size in sizes:
            if type(size) is not int or size < 0 or at + size > len(frame):
                raise WireError("bad blob size")
            blobs.append(frame[at:at + size])
            at += size
        dec = _Decoder(tensors, blobs, device_map, text)
        return {str(k): dec.value(v) for k, v in body.items()}
    except WireError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError, struct.error, MemoryError) as exc:
        raise WireError(f"malformed message ({type(exc).__name__})") from None


def send(sock: socket.socket, message: dict, *, share: bool = False) -> None:
    sock.sendall(pack(message, share=share))


def _read(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer in time")
            sock.settimeout(left)
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket, device_map: dict | None = None, deadline: float | None = None,
            text: int | None = None) -> dict:
    """The next message; EOFError when the other side is gone, WireError when it sent garbage,
    TimeoutError when `deadline` (a time.monotonic() value) passes first."""
    try:
        (n,) = struct.unpack(">Q", _read(sock, 8, deadline))
        if n > MAX_FRAME:
            raise WireError(f"message of {n / 2 ** 20:.0f} MB is larger than the {MAX_FRAME // 2 ** 20} MB limit")
        frame = _read(sock, n, deadline)
    except TimeoutError:
        raise TimeoutError("no answer in time") from None
    return unpack(frame, device_map, text)
