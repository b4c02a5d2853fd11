"""Watching a forward pass: which torch functions, aten ops and modules it runs.

Two levels see different things. `TorchFunctionMode` sees Python-level calls such as
`torch.nn.functional.linear` (which never reach the dispatcher under that name), and a global
module hook sees every `nn.Module` that runs, however it is stored. `TorchDispatchMode` sees the
aten ops after autograd's decompositions; their count is what tells a vectorized forward from a
Python loop (a loop's count grows with the data, a vectorized one's does not).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch.nn.modules.module import register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode, resolve_name
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass
class Trace:
    """What one traced region ran."""

    calls: Counter = field(default_factory=Counter)  # resolved torch function names
    ops: Counter = field(default_factory=Counter)  # aten op names, e.g. "aten.mm"
    modules: Counter = field(default_factory=Counter)  # nn.Module classes that ran

    @property
    def op_count(self) -> int:
        return sum(self.ops.values())


class _Functions(TorchFunctionMode):
    def __init__(self, trace: Trace):
        super().__init__()
        self.trace = trace

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.trace.calls[resolve_name(func) or getattr(func, "__qualname__", repr(func))] += 1
        return func(*args, **(kwargs or {}))


class _Ops(TorchDispatchMode):
    def __init__(self, trace: Trace):
        super().__init__()
        self.trace = trace

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = getattr(func, "overloadpacket", func)
        self.trace.ops[f"aten.{getattr(packet, '__name__', str(packet))}"] += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def tracing(*, ops: bool = True) -> Iterator[Trace]:
    """Record calls, modules and (optionally) aten ops run inside the block."""
    trace = Trace()
    handle = register_module_forward_pre_hook(lambda module, args: trace.modules.update([type(module)]))
    try:
        with _Functions(trace):
            if ops:
                with _Ops(trace):
                    yield trace
            else:
                yield trace
    finally:
        handle.remove()

