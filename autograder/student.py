"""The student's side of a grading: one interface, two places it can live.

The engine never touches a student's object. It asks a `Side` to build the student's class and
gets a `Handle` back; everything it learns through the handle is plain data: tensors that are
exactly `torch.Tensor`, Python numbers, strings, `torch.dtype`s and tuples, lists and dicts of
them, with an `Opaque` stand-in (its type's name) for anything else. An exception raised by the
student's code comes back as a `StudentError`; a process that dies or hangs as a `Fault`.

- `Local` runs the class in this process: the notebook's own `check()`, fast feedback.
- `sandbox.Remote` sends the very same calls to a sandboxed process that ran the notebook (the
  grades); the server on the far side is a `Local`, so both paths share every line that touches
  the student's objects, and every spec, judge and mistake works through both.

The operations are the `op_*` methods of `Local` (the names `Handle` calls): build, state,
load, move, train/eval, forward (optionally traced, seeded, on another device), backward, op
counts, attributes and a training run for the capstone.
"""

from __future__ import annotations

import contextlib
import io
import os
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .spec import Inputs, Layer
from .trace import tracing

#: longest string that crosses from the student's side (names, messages, attribute values)
MAX_TEXT = 2000
#: most items of a list, tuple or dict that cross
MAX_ITEMS = 10_000


# --- what crosses -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Opaque:
    """Something the student's code returned that is not plain data: only its type's name crosses."""

    type_name: str

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


class StudentError(Exception):
    """An exception of the student's code, as data.

    `text` reads after the operation that failed: "raised ValueError: oops in __init__ ('...')".
    `kinds` are the names of the exception's classes (its MRO), so a judge can ask `is_a("ValueError")`
    without the exception object; `message` is the exception's own first lines.
    """

    def __init__(self, text: str, kinds: Sequence[str] = (), message: str = ""):
        super().__init__(text)
        self.text, self.kinds, self.message = text[:MAX_TEXT], tuple(kinds), message[:MAX_TEXT]

    def is_a(self, *names: str) -> bool:
        return any(name in self.kinds for name in names)

    @classmethod
    def of(cls, exc: BaseException) -> StudentError:
        if isinstance(exc, StudentError):
            return exc
        kinds = [k.__name__ for k in type(exc).__mro__]
        return cls(describe(exc), kinds, str(exc))


class Fault(StudentError):
    """The student's process could not answer: it crashed, was killed, or ran out of time.

    `text` reads after the operation too: "did not finish: your notebook's process was killed
    after 10 s in Linear.forward (the limit for one call)". `kind` is one of "timeout", "crash",
    "memory", "exit", "budget", "output" (for the class report)."""

    def __init__(self, text: str, kind: str = "crash"):
        super().__init__(text, ("Fault",), text)
        self.kind = kind


class Stale(StudentError):
    """An operation on a layer whose process was restarted after a fault: the fault is the cause."""


def describe(exc: BaseException) -> str:
    """`raised NotImplementedError at ... in forward ('raise NotImplementedError()')`, pointing at the
    student's code rather than torch's or the grader's internals."""
    here = Path(__file__).parent
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}torch{os.sep}" not in f.filename and Path(f.filename).parent != here]
    where = ""
    if frames:
        f = frames[-1]
        line = f" ({f.line.strip()!r})" if f.line else ""
        where = f" in {f.name}{line}"
    text = str(exc).strip()
    message = text.splitlines()[0][:200] if text else ""
    return f"raised {type(exc).__name__}{': ' + message if message else ''}{where}"


def qualified(kind: type) -> str:
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', getattr(kind, '__name__', '?'))}"


def plain(obj: Any, depth: int = 0) -> Any:
    """`obj` as data that may cross: exact tensors (detached), numbers, strings, dtypes, containers;
    anything else (a Tensor subclass included) becomes an `Opaque`."""
    if depth > 20:
        return Opaque("nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float)) and type(obj) in (bool, int, float):
        return obj
    if type(obj) is str:
        return obj[:MAX_TEXT]
    if type(obj) is torch.Tensor:
        return obj.detach()
    if isinstance(obj, torch.dtype):
        return obj
    if type(obj) in (tuple, torch.Size) or isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return tuple(plain(v, depth + 1) for v in tuple(obj)[:MAX_ITEMS])
    if type(obj) is list:
        return [plain(v, depth + 1) for v in obj[:MAX_ITEMS]]
    if type(obj) is dict and all(type(k) is str for k in obj):
        return {k[:MAX_TEXT]: plain(v, depth + 1) for k, v in list(obj.items())[:MAX_ITEMS]}
    return Opaque(getattr(type(obj), "__qualname__", "object")[:200])


def flat_tensors(obj: Any) -> list:
    """The tensors of an output in order (nested tuples and lists), subclasses included."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in flat_tensors(item)]
    return []


def forward_parameters(cls: Any) -> list | None:
    """[name, kind, has a default, repr of the default] of each parameter of `cls.forward` after self,
    or None when it cannot be read."""
    import inspect

    try:
        params = list(inspect.signature(cls.forward).parameters.values())
    except Exception:  # noqa: BLE001 - not a class, no forward, or a signature that cannot be read
        return None
    if params and params[0].name == "self":
        params = params[1:]
    return [[str(p.name)[:100], p.kind.name, p.default is not p.empty,
             repr(p.default)[:100] if p.default is not p.empty else ""] for p in params[:50]]


def make_leaves(inputs: Inputs, grad: bool, clone: bool = False) -> tuple[Inputs, list[torch.Tensor]]:
    """A fresh copy of `inputs` whose float tensors require grad (when `grad`), and those leaves.

    Copies keep their strides (a transposed input stays transposed) and inputs that were one tensor
    stay one tensor (self-attention's query, key and value). With `clone` the layer gets
    `leaf.clone()` instead of the leaf (an in-place layer cannot write into a leaf)."""
    leaves: list[torch.Tensor] = []
    copies: dict[int, Any] = {}

    def prep(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if id(value) in copies:
                return copies[id(value)]
            t = value.detach().clone()
            if t.is_floating_point() and grad:
                t.requires_grad_(True)
                leaves.append(t)
                t = t.clone() if clone else t
            copies[id(value)] = t
            return t
        if isinstance(value, (tuple, list)):
            return type(value)(prep(v) for v in value)
        return value

    return Inputs(tuple(prep(a) for a in inputs.args), {k: prep(v) for k, v in inputs.kwargs.items()}), leaves


def to_device(obj: Any, device: torch.device | str) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Inputs):
        return Inputs(to_device(obj.args, device), to_device(dict(obj.kwargs), device))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


# --- what the engine sees -----------------------------------------------------------------------------

@dataclass
class Forward:
    """One forward call of the student's layer.

    `output` is plain data; `requires_grad[i]` says whether the i-th tensor of the output (in the
    order of `compare.tensors`) is attached to the autograd graph; `trace` lists what the forward
    ran (`calls`, `modules`, `ops`) when it was traced; with `alias`, `inputs_after` are the tensor
    arguments after the call, `shares` whether the output shares memory with the first of them and
    `same` whether it is that very tensor."""

    output: Any
    requires_grad: list = field(default_factory=list)
    trace: dict | None = None
    inputs_after: list | None = None
    shares: bool | None = None
    same: bool | None = None


@dataclass
class Grads:
    """Gradients after a backward: of each input leaf (None where none reached it), and of each
    parameter by name."""

    inputs: list
    params: dict


@dataclass
class Attr:
    """One attribute of the student's layer: whether it exists, its value as plain data, its type's
    name, the ids of its type's classes (to test isinstance against a class of the notebook), and
    for a tensor whether it is an nn.Parameter and requires grad."""

    present: bool
    value: Any = None
    type: str = ""
    mro_ids: tuple = ()
    parameter: bool = False
    requires_grad: bool | None = None


@dataclass
class State:
    """The student's state_dict at a glance: its keys with their shapes (None for a value that is
    not a tensor), parameter names (with and without duplicates), and what a missing state hints."""

    shapes: dict
    params: list
    all_params: list
    any_params: bool
    containers: list  # attributes that are plain lists, tuples or dicts of modules


def _as(kind: type, value: Any) -> Any:
    """`kind(**value)` for an answer that may come from the student's process: a malformed one (only a
    tampered process sends it) is the student's error, never the judge's crash."""
    if not isinstance(value, dict):
        raise StudentError("gave an answer of the wrong form")
    fields = kind.__dataclass_fields__
    try:
        return kind(**{k: v for k, v in value.items() if k in fields})
    except TypeError:
        raise StudentError("gave an answer of the wrong form") from None


class Handle:
    """The student's layer as the engine sees it. Every method may raise `StudentError` (the
    student's code raised) or `Fault` (the process that runs it could not answer)."""

    def __init__(self, side: Side, key: int, info: dict):
        self.side, self.key, self.info = side, key, info

    def _do(self, op: str, *args: Any, **kwargs: Any) -> Any:
        return self.side.call(self.key, op, *args, **kwargs)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        self._do("to", dtype, None if device is None else str(device))

    def train(self, mode: bool = True) -> None:
        self._do("train", mode)

    def eval(self) -> None:
        self._do("train", False)

    def state(self) -> State:
        return _as(State, self._do("state"))

    def _dict(self, op: str, *args: Any) -> dict:
        found = self._do(op, *args)
        if not isinstance(found, dict):
            raise StudentError("gave an answer of the wrong form")
        return found

    def state_dict(self) -> dict:
        return self._dict("state_dict")

    def load_state_dict(self, state: dict) -> None:
        self._do("load_state_dict", state)

    def buffers(self) -> dict:
        return self._dict("buffers")

    def buffer_history(self) -> list:
        """Names of buffers that carry autograd history."""
        found = self._do("buffer_history")
        return [str(n) for n in found] if isinstance(found, list) else []

    def modules(self) -> list:
        found = self._do("modules")
        return [str(n) for n in found] if isinstance(found, list) else []

    def attrs(self, *names: str) -> dict[str, Attr]:
        found = self._do("attrs", list(names))
        if not isinstance(found, dict) or set(found) != set(names):
            raise StudentError("gave an answer of the wrong form")
        return {name: _as(Attr, a) for name, a in found.items()}

    def forward(self, inputs: Inputs, *, leaves: bool = False, clone: bool = False, traced: str | None = None,
                seed: int | None = None, device: str | None = None, no_grad: bool = False,
                alias: bool = False) -> Forward:
        """`layer(*inputs)`. `leaves`: float inputs become leaves that require grad (for `backward`);
        `traced`: "calls" or "ops" records what ran; `seed`: torch.manual_seed first; `device`: move
        the inputs there first (e.g. "meta")."""
        return _as(Forward, self._do("forward", inputs, leaves=leaves, clone=clone, traced=traced, seed=seed,
                                     device=device, no_grad=no_grad, alias=alias))

    def backward(self, indices: Sequence[int], upstream: Sequence[torch.Tensor]) -> Grads:
        """Backpropagate `upstream` through the tensors `indices` of the last forward's output."""
        grads = _as(Grads, self._do("backward", list(indices), list(upstream)))
        if not isinstance(grads.inputs, list) or not isinstance(grads.params, dict):
            raise StudentError("gave an answer of the wrong form")
        return grads

    def count_ops(self, inputs: Inputs) -> int:
        """The aten ops one forward dispatches (no grad), for the vectorization probes."""
        return int(self._do("count_ops", inputs))

    def train_digits(self, data: dict, **options: Any) -> dict:
        """Train on the given digits tensors; returns the trained state and the losses per epoch."""
        found = self._do("train_digits", data, **options)
        if not isinstance(found, dict) or not isinstance(found.get("state"), dict):
            raise StudentError("gave an answer of the wrong form")
        return found


class Side:
    """Where the student's class lives. `build` makes instances; `describe` tells about the class."""

    name: str

    def describe(self) -> dict:
        """{"qualname", "mro": qualified names of its classes, "id", "is_class"}"""
        raise NotImplementedError

    def build(self, args: tuple = (), kwargs: dict | None = None, *, seed: int | None = None,
              method: str | None = None) -> Handle:
        """`cls(*args, **kwargs)` (or `cls.<method>(...)`), after `torch.manual_seed(seed)`; a `Layer`
        argument becomes the layer of that name defined beside the class."""
        raise NotImplementedError

    def sibling(self, name: str) -> dict:
        """{"id", "qualname"} of the class `name` defined beside the student's (LookupError if none)."""
        raise NotImplementedError

    def has_callable(self, name: str) -> bool:
        raise NotImplementedError

    def call(self, key: int, op: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def drain(self) -> tuple[list[str], list[Fault]]:
        """Notes (printed lines, warnings) and faults collected since the last drain."""
        return [], []


# --- in this process --------------------------------------------------------------------------------

class Local(Side):
    """The student's class in this process. The operations run the student's code; any exception it
    raises becomes a `StudentError`. `interrupts`: also turn KeyboardInterrupt into one (the sandbox
    does; a notebook lets the student interrupt the kernel)."""

    #: the operations a `Handle` (or the sandbox's client) may ask for
    OPS = frozenset({"to", "train", "state", "state_dict", "load_state_dict", "buffers", "buffer_history",
                     "modules", "attrs", "forward", "backward", "count_ops", "train_digits"})

    def __init__(self, cls: Any, *, interrupts: bool = False):
        self.cls = cls
        self.name = getattr(cls, "__name__", type(cls).__name__)
        self.interrupts = interrupts
        self._layers: dict[int, nn.Module] = {}
        self._graphs: dict[int, tuple[list, list]] = {}
        self._next = 0

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        catch = BaseException if self.interrupts else Exception
        try:
            yield
        except StudentError:
            raise
        except catch as exc:  # noqa: BLE001 - the student's fault, as data
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not self.interrupts:
                raise
            raise StudentError.of(exc) from None

    def describe(self) -> dict:
        is_class = isinstance(self.cls, type)
        mro = self.cls.__mro__ if is_class else ()
        return {"qualname": getattr(self.cls, "__qualname__", self.name), "name": self.name,
                "mro": [qualified(k) for k in mro], "id": id(self.cls), "is_class": is_class,
                "forward": forward_parameters(self.cls)}

    def has_callable(self, name: str) -> bool:
        with self._guard():
            return callable(getattr(self.cls, name, None))

    def sibling(self, name: str) -> dict:
        from .spec import sibling

        with self._guard():
            found = sibling(self.cls, name)
            return {"id": id(found), "qualname": found.__qualname__}

    def build(self, args: tuple = (), kwargs: dict | None = None, *, seed: int | None = None,
              method: str | None = None) -> Handle:
        kwargs = dict(kwargs or {})
        with self._guard():
            if seed is not None:  # before the argument layers, which draw their own parameters
                torch.manual_seed(seed)
            try:
                args = tuple(a.build(self.cls) if isinstance(a, Layer) else a for a in args)
                kwargs = {k: v.build(self.cls) if isinstance(v, Layer) else v for k, v in kwargs.items()}
            except Exception as exc:  # noqa: BLE001
                raise StudentError("building the layer it is given as an argument " + describe(exc),
                                   [k.__name__ for k in type(exc).__mro__], str(exc)) from None
            maker = getattr(self.cls, method) if method else self.cls
            layer = maker(*args, **kwargs)
        info = {"is_module": isinstance(layer, nn.Module), "type": qualified(type(layer)),
                "type_name": getattr(type(layer), "__name__", "?"),
                "instance_of_cls": isinstance(self.cls, type) and isinstance(layer, self.cls)}
        key = self._next
        self._next += 1
        if info["is_module"]:
            self._layers[key] = layer
        return Handle(self, key, info)

    def call(self, key: int, op: str, *args: Any, **kwargs: Any) -> Any:
        if op not in self.OPS:
            raise ValueError(f"unknown operation {op!r}")
        if key not in self._layers:
            raise StudentError("is not an nn.Module, so it cannot be graded")
        with self._guard():
            return getattr(self, f"op_{op}")(key, self._layers[key], *args, **kwargs)

    def forget(self, key: int) -> None:
        self._layers.pop(key, None)
        self._graphs.pop(key, None)

    # --- the operations ----------------------------------------------------------------------------
    def op_to(self, key: int, layer: nn.Module, dtype: torch.dtype | None, device: str | None) -> None:
        if device is not None:
            layer.to(device)
        if dtype is not None:
            layer.to(dtype)

    def op_train(self, key: int, layer: nn.Module, mode: bool) -> None:
        layer.train(mode)

    def op_state(self, key: int, layer: nn.Module) -> dict:
        state = layer.state_dict()
        params = [n for n, _ in layer.named_parameters()]
        containers = [name for name, value in vars(layer).items() if isinstance(value, (list, tuple, dict))
                      and any(isinstance(v, nn.Module) for v in (value.values() if isinstance(value, dict) else value))]
        return {"shapes": {str(k): tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()},
                "params": params, "all_params": [n for n, _ in layer.named_parameters(remove_duplicate=False)],
                "any_params": bool(params), "containers": containers}

    def op_state_dict(self, key: int, layer: nn.Module) -> dict:
        return {str(k): v.detach().clone().as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else plain(v)
                for k, v in layer.state_dict().items()}

    def op_load_state_dict(self, key: int, layer: nn.Module, state: dict) -> None:
        layer.load_state_dict(state)

    def op_buffers(self, key: int, layer: nn.Module) -> dict:
        return {n: b.detach().clone().as_subclass(torch.Tensor) for n, b in layer.named_buffers()
                if isinstance(b, torch.Tensor)}

    def op_buffer_history(self, key: int, layer: nn.Module) -> list:
        return [n for n, b in layer.named_buffers() if isinstance(b, torch.Tensor) and b.requires_grad]

    def op_modules(self, key: int, layer: nn.Module) -> list:
        return [name for name, _ in layer.named_modules()]

    def op_attrs(self, key: int, layer: nn.Module, names: list) -> dict:
        found = {}
        for name in names:
            if not hasattr(layer, name):
                found[name] = {"present": False}
                continue
            value = getattr(layer, name)
            entry = {"present": True, "type": getattr(type(value), "__qualname__", "?"),
                     "mro_ids": tuple(id(k) for k in type(value).__mro__)}
            if isinstance(value, torch.Tensor):
                entry.update(value=value.detach().clone().as_subclass(torch.Tensor),
                             parameter=isinstance(value, nn.Parameter), requires_grad=bool(value.requires_grad))
            else:
                entry["value"] = plain(value)
            found[name] = entry
        return found

    def op_forward(self, key: int, layer: nn.Module, inputs: Inputs, *, leaves: bool = False, clone: bool = False,
                   traced: str | None = None, seed: int | None = None, device: str | None = None,
                   no_grad: bool = False, alias: bool = False) -> dict:
        self._graphs.pop(key, None)
        if device is not None:
            inputs = to_device(inputs, device)
        if leaves:
            layer.zero_grad(set_to_none=True)
        # always copies: the layer may write into its inputs, the caller's stay as they were
        call_in, leaf_list = make_leaves(inputs, grad=leaves, clone=clone)
        passed = [a for a in call_in.args if isinstance(a, torch.Tensor)]
        if seed is not None:
            torch.manual_seed(seed)
        trace_cm = tracing(ops=traced == "ops") if traced else contextlib.nullcontext(None)
        with torch.no_grad() if no_grad else contextlib.nullcontext(), trace_cm as t:
            out = layer(*call_in.args, **dict(call_in.kwargs))
        found = flat_tensors(out)
        self._graphs[key] = (found, leaf_list)
        result = {"output": plain(out),
                  "requires_grad": [bool(o.requires_grad) for o in found if type(o) is torch.Tensor]}
        if t is not None:
            result["trace"] = {"calls": dict(t.calls), "ops": dict(t.ops),
                               "modules": [{"name": qualified(k), "mro": [qualified(b) for b in k.__mro__],
                                            "id": id(k)} for k in t.modules]}
        if alias and passed:
            first = passed[0]
            result["inputs_after"] = [p.detach().clone() for p in passed]
            result["same"] = out is first
            result["shares"] = isinstance(out, torch.Tensor) and out.device.type != "meta" and \
                out.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
        return result

    def op_backward(self, key: int, layer: nn.Module, indices: list, upstream: list) -> dict:
        if key not in self._graphs:
            raise StudentError("backward: there is no forward to go back through")
        outs, leaves = self._graphs[key]
        torch.autograd.backward([outs[i] for i in indices], upstream)
        return {"inputs": [None if leaf.grad is None else leaf.grad.detach().clone() for leaf in leaves],
                "params": {n: None if p.grad is None else p.grad.detach().clone().as_subclass(torch.Tensor)
                           for n, p in layer.named_parameters()}}

    def op_count_ops(self, key: int, layer: nn.Module, inputs: Inputs) -> int:
        with torch.no_grad(), tracing() as t:
            layer(*inputs.args, **dict(inputs.kwargs))
        return t.op_count

    def op_train_digits(self, key: int, layer: nn.Module, data: dict, *, epochs: int, lr: float,
                        batch_size: int, seed: int) -> dict:
        from .digits import fit

        losses = fit(layer, data["x"], data["y"], epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        return {"state": self.op_state_dict(key, layer), "losses": losses}


@contextlib.contextmanager
def captured(notes: list[str], limit: int = 64_000) -> Iterator[io.StringIO]:
    """Capture what the student's code prints and warns, as notes (for a server's replies)."""
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(out):
        warnings.simplefilter("always")
        yield out
    for w in caught:
        notes.append(f"warning during grading: {w.category.__name__}: {w.message}"[:500])
    printed = out.getvalue()[:limit].strip()
    if printed:
        notes.append(f"your layer printed {len(printed.splitlines())} line(s) during grading "
                     f"(first: {printed.splitlines()[0][:80]!r})")


def merge_trace(into: dict, trace: dict | None) -> None:
    """Add a forward's trace to a running union (calls and ops counted, modules by id)."""
    if not trace:
        return
    into.setdefault("calls", Counter()).update(trace.get("calls", {}))
    into.setdefault("ops", Counter()).update(trace.get("ops", {}))
    modules = into.setdefault("modules", {})
    for m in trace.get("modules", []):
        modules.setdefault(m["id"], m)
