"""Declarative records: what to grade for one layer, and the registry that holds them.

A layer is graded from one `Spec`: the torch layer it must reproduce, the constructor
configurations to try (`Case`), how to make forward inputs (`Maker`), which torch calls are its
own implementation (forbidden), how to tell a vectorized forward from a loop (`Scale`), and the
wrong outputs students commonly produce (`Mistake`), so that feedback can name the cause.
The engine (`engine.py`) runs every spec the same way; adding a layer is adding a record.
"""

from __future__ import annotations

import inspect
import random
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Parts of a grade, in the order they run and print. Each part is worth one point in a report;
#: notebooks give each part its own test cell (and their own points) through `parts=`.
PARTS = ("state", "shape", "forward", "backward", "rules")

#: Default tolerances per dtype, as (rtol, atol) in `torch.testing.assert_close` terms.
TOLERANCES = {torch.float64: (1e-7, 1e-9), torch.float32: (1e-4, 1e-5)}


@dataclass(frozen=True)
class Inputs:
    """Positional and keyword arguments of one forward call."""

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def call(*args: Any, **kwargs: Any) -> Inputs:
    """`call(x, mask=m)` is the forward call `layer(x, mask=m)`."""
    return Inputs(args, kwargs)


class Maker:
    """Makes input tensors of one dtype on one device, reproducibly.

    Values come from a CPU generator seeded per (layer, case, dtype, step) and are then moved to
    the device, so a case sees the same numbers on the CPU and on a GPU.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device | str, seed: int):
        self.dtype, self.device = dtype, torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def _out(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device)

    def randn(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        """Standard normal values times `scale`."""
        return self._out(torch.randn(shape, generator=self.generator, dtype=self.dtype) * scale)

    def uniform(self, *shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        t = torch.rand(shape, generator=self.generator, dtype=self.dtype)
        return self._out(low + (high - low) * t)

    def randint(self, low: int, high: int, *shape: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
        """Integers in [low, high): indices, labels."""
        return self._out(torch.randint(low, high, shape, generator=self.generator, dtype=dtype))

    def tensor(self, data: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Fixed values (edge cases): floats take the case's dtype unless `dtype` is given."""
        return self._out(torch.as_tensor(data, dtype=dtype or self.dtype))


@dataclass(frozen=True)
class Case:
    """One constructor configuration and the forward inputs it is tried on.

    `desc` is a snake_case name that appears in feedback (`no_bias`, `padding_same`).
    `inputs(make)` returns the forward call's arguments built with a `Maker`.
    """

    desc: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: Callable[[Maker], Inputs] | None = None

    def signature(self, name: str) -> str:
        """`Linear(5, 3, bias=False)`: how the student would write this constructor call."""
        parts = [_short(a) for a in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"{name}({', '.join(parts)})"

    def label(self, name: str) -> str:
        """`Linear(5, 3, bias=False) · no_bias`: the constructor call and the case's name, which tells
        apart two cases that differ only in their inputs (a mask, edge values)."""
        return f"{self.signature(name)} · {self.desc}" if self.desc else self.signature(name)


def _short(value: Any) -> str:
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, type):
        return value.__name__
    return repr(value)


@dataclass(frozen=True)
class Layer:
    """A constructor argument that is itself a layer, built afresh for each side.

    `TransformerEncoder(encoder_layer, num_layers)` takes a layer instance: torch's encoder must
    get torch's `nn.TransformerEncoderLayer` and the student's encoder the student's own
    `TransformerEncoderLayer`. A case writes `Layer("TransformerEncoderLayer", (8, 2))` and the
    engine builds `nn.<name>(*args, **kwargs)` for the reference and, when `own`, the class of that
    name defined next to the student's class (see `sibling`) for the student. With `own=False`
    both sides get torch's (e.g. the `norm=nn.LayerNorm(8)` the student may use as is).
    """

    name: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    own: bool = True

    def build(self, student: type | None = None) -> nn.Module:
        """torch's layer when `student` is None, else the layer beside the student's class."""
        cls = sibling(student, self.name) if student is not None and self.own else getattr(nn, self.name)
        return cls(*self.args, **dict(self.kwargs))

    def __repr__(self) -> str:
        return Case("", self.args, self.kwargs).signature(self.name if self.own else f"nn.{self.name}")


def built(case: Case, student: type | None = None) -> tuple[tuple, dict]:
    """The case's constructor arguments, each `Layer` built for one side (None: torch's)."""
    make = lambda v: v.build(student) if isinstance(v, Layer) else v  # noqa: E731
    return tuple(make(a) for a in case.args), {k: make(v) for k, v in case.kwargs.items()}


def sibling(cls: type, name: str) -> type:
    """The class `name` defined where `cls` (or, failing that, one of its bases) is defined.

    Looks in the globals of the class's own functions, which is the notebook's namespace whether
    the class was defined in a Jupyter kernel (`__main__`) or run by `autograder.notebook` (whose
    namespace is in no `sys.modules`), then in its module. torch's own classes are skipped.
    """
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            continue
        functions = [getattr(v, "__func__", v) for v in vars(klass).values()]
        namespaces = [f.__globals__ for f in functions if hasattr(f, "__globals__")]
        module = sys.modules.get(klass.__module__)
        namespaces += [vars(module)] if module is not None else []
        for namespace in namespaces:
            found = namespace.get(name)
            if isinstance(found, type):
                return found
    raise LookupError(f"{cls.__name__} needs your own {name} class, defined in the same notebook "
                      f"(or module) as {cls.__name__}, and none was found")


@dataclass(frozen=True)
class Scale:
    """A vectorization probe: the forward's op count must not grow from `small` to `large` inputs.

    `what` says what grows, for feedback: "batch size 4 vs 64".
    """

    what: str
    case: Case
    small: Callable[[Maker], Inputs]
    large: Callable[[Maker], Inputs]


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer, computed from the reference layer's own state.

    When a student's output differs from torch's but equals `output(reference, inputs)`, the
    feedback says so: `... values differ ...; it matches the output when <cause>`.
    """

    cause: str
    output: Callable[[nn.Module, Inputs], Any]


@dataclass(frozen=True)
class BufferMistake:
    """A common wrong update of a layer's buffers (running statistics), for feedback.

    `buffers(before, reference, inputs)` returns, by name, the buffers a layer making this mistake
    would hold after the forward call on `inputs`, starting from `before` (the student's own
    buffers just before the call); `reference` is torch's layer after the same call, for its
    arguments and mode. It may raise when the mistake does not apply. When a student's buffer
    differs from torch's but equals the mistake's, the feedback says
    `... values differ ...; it matches the buffer when <cause>`.
    """

    cause: str
    buffers: Callable[[Mapping[str, torch.Tensor], nn.Module, Inputs], Mapping[str, torch.Tensor]]


#: A spec-specific judgement: given the run context, yield extra results. See `engine.Context`.
Judge = Callable[["Any"], Iterable[Any]]


@dataclass(frozen=True)
class Spec:
    """Everything the engine needs to grade one layer.

    `cases` is the public suite (fixed); `hidden(rng)` draws the hidden suite at grading time
    from `rng`, so it cannot be memorised. `init_cases` are built fresh (not loaded from torch)
    and their parameter statistics compared to torch's, to check the initialisation.
    """

    name: str
    chapter: str
    reference: Callable[..., nn.Module]
    cases: tuple[Case, ...]
    hidden: Callable[[random.Random], Iterable[Case]] | None = None
    init_cases: tuple[Case, ...] = ()
    scales: tuple[Scale, ...] = ()
    forbidden_calls: frozenset[str] = frozenset()
    forbidden_modules: tuple[type, ...] = ()
    mistakes: tuple[Mistake, ...] = ()
    #: wrong buffer updates, named when a buffer differs after a forward call (stateful layers)
    buffer_mistakes: tuple[BufferMistake, ...] = ()
    tolerances: Mapping[torch.dtype, tuple[float, float]] = field(default_factory=lambda: dict(TOLERANCES))
    dtypes: tuple[torch.dtype, ...] = (torch.float64, torch.float32)
    modes: tuple[str, ...] = ("train", "eval")
    #: training-mode forward calls per dtype; stateful layers compare buffers after each one
    steps: int = 1
    #: run once on the meta device to catch tensors created on a fixed device
    meta: bool = True
    backward: bool = True
    #: pass `leaf.clone()` instead of the leaf itself (in-place layers cannot modify a leaf)
    clone_inputs: bool = False
    judges: tuple[Judge, ...] = ()
    #: forward inputs of a realistic size for `make bench`
    bench: Case | None = None

    def contract(self) -> type:
        """The class whose calling conventions the student's must follow: torch's of that name, else
        the reference (a layer torch lacks)."""
        found = getattr(nn, self.name, None)
        return found if isinstance(found, type) else self.reference

    def forward_parameters(self) -> list[inspect.Parameter]:
        """The contract's forward parameters, `self` left out."""
        return [p for p in inspect.signature(self.contract().forward).parameters.values() if p.name != "self"]

    def suite(self, suite: str, rng: random.Random) -> tuple[Case, ...]:
        if suite == "public":
            return self.cases
        if suite == "hidden":
            return tuple(self.hidden(rng)) if self.hidden else ()
        raise ValueError(f"suite must be 'public' or 'hidden', not {suite!r}")


def seed_of(*key: Any) -> int:
    """A stable seed from a key (no dependence on Python's hash randomisation)."""
    return zlib.crc32(repr(key).encode())


# --- the registry ------------------------------------------------------------------------------

SPECS: dict[str, Spec] = {}
CHAPTERS: dict[str, list[str]] = {}


def register(*specs: Spec) -> None:
    """Add specs to the registry, keeping book order within each chapter."""
    for spec in specs:
        if spec.name in SPECS:
            raise ValueError(f"{spec.name} is registered twice")
        SPECS[spec.name] = spec
        CHAPTERS.setdefault(spec.chapter, []).append(spec.name)


def get_spec(name: str) -> Spec:
    try:
        return SPECS[name]
    except KeyError:
        known = ", ".join(SPECS)
        raise KeyError(f"no grader for {name!r}; known layers: {known}") from None


def randn(*shape: int, scale: float = 1.0) -> Callable[[Maker], Inputs]:
    """The most common inputs factory: one standard-normal tensor of `shape`, times `scale`."""
    return lambda make: call(make.randn(*shape, scale=scale))
