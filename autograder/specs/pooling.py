"""Pooling: MaxPool1d/2d/3d, AvgPool1d/2d/3d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, MinPool2d.

Pooling layers have no parameters, so what is graded is the window arithmetic. The cases are
written once for N spatial dimensions (`max_cases(n)`, `avg_cases(n)`) and sized so that each
classic mistake changes the VALUES, or at least the shape with the cause named:

- inputs are distinct values in random order (`distinct`): no window ever holds a tie, so the
  gradient of a max has exactly one right answer (torch's: all of it to the argmax);
- max pooling with padding is tried on all-negative inputs, where zero padding would win the max
  (and min pooling on all-positive ones);
- ceil_mode is tried where it adds a partial window, where torch drops a window that would start
  in the right padding, and, for average pooling, where the partial window reaches past the
  padding (torch's divisor counts the padding but not that overhang);
- adaptive pooling is tried on sizes that do not divide, where torch's windows overlap.

`MinPool2d` is not in torch: its reference is `MinPool2d` below, `-max_pool2d(-x)`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import resolve_name

from ..judges import attributes
from ..spec import Case, Inputs, Maker, Mistake, Scale, Spec, call, register


# --- what must not be called --------------------------------------------------------------------
def _pooling_names() -> frozenset[str]:
    """Every name under which a forward can reach torch's pooling code, as the tracer records it:
    Python functions (`torch.nn.functional.max_pool2d`, `torch.max_pool2d`, `adaptive_avg_pool2d`
    of `torch._C._nn`, ...) and aten ops called directly (`aten.max_pool2d_with_indices`, ...)."""
    names = set()
    for namespace in (torch, F, torch._C._nn, torch._C._VariableFunctions):
        for attr in dir(namespace):
            if "pool" in attr and "unpool" not in attr:
                fn = getattr(namespace, attr)
                if callable(fn):
                    names.add(resolve_name(fn) or getattr(fn, "__qualname__", attr))
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and "pool" in op and "unpool" not in op:
            packet, _, overload = op.removeprefix("aten::").partition(".")
            names |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(names)


#: torch's own pooling, in every spelling: forbidden in every layer of the chapter (a MaxPool2d
#: written with F.max_pool3d on an unsqueezed input is still torch's max pooling)
POOL_CALLS = _pooling_names()
#: every pooling module of torch (max, average, adaptive, Lp, fractional, unpooling)
POOL_MODULES = tuple(sorted(
    (c for c in vars(nn.modules.pooling).values()
     if isinstance(c, type) and issubclass(c, nn.Module) and c is not nn.Module),
    key=lambda c: c.__name__.startswith("_")))  # concrete classes first, so feedback names them


# --- the reference torch lacks ------------------------------------------------------------------
class MinPool2d(nn.MaxPool2d):
    """Min pooling, which torch does not ship: the smallest value of each window.

    Same arguments as `nn.MaxPool2d`; the padding acts as +inf (it never wins the min).
    Shapes: (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out) or (C, H_out, W_out).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return -F.max_pool2d(-input, self.kernel_size, self.stride, self.padding, self.dilation,
                             ceil_mode=self.ceil_mode)


# --- inputs -------------------------------------------------------------------------------------
def distinct(*shape: int, low: float = -3.0, high: float = 3.0) -> Callable[[Maker], Inputs]:
    """Distinct, evenly spaced values in [low, high] in random order: no ties anywhere, so a
    max has one argmax and its gradient one right answer."""

    def inputs(make: Maker) -> Inputs:
        n = math.prod(shape)
        order = torch.randperm(n, generator=make.generator).double()
        values = low + (high - low) * order / max(n - 1, 1)
        return call(make.tensor(values.reshape(shape)))

    return inputs


def negative(*shape: int) -> Callable[[Maker], Inputs]:
    """All values below zero: zero padding would beat every one of them in a max."""
    return distinct(*shape, low=-5.0, high=-1.0)


def positive(*shape: int) -> Callable[[Maker], Inputs]:
    """All values above zero: zero padding would beat every one of them in a min."""
    return distinct(*shape, low=1.0, high=5.0)


def arange(*shape: int) -> Callable[[Maker], Inputs]:
    """0, 1, 2, ... in order: the book's worked example."""
    return lambda make: call(make.tensor(torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)))


def sized(n: int, *spatial: int, batch: int = 2, channels: int = 3) -> tuple[int, ...]:
    """(batch, channels, *spatial), one size per spatial dim: `sized(2, 7)` is (2, 3, 7, 7)."""
    sizes = spatial if len(spatial) == n else spatial[:1] * n
    return (batch, channels, *sizes)


def per_dim(n: int, *values: int) -> int | tuple[int, ...]:
    """The first `n` of `values` as a tuple (the int itself for n == 1)."""
    return values[0] if n == 1 else tuple(values[:n])


# --- window arithmetic (for mistakes and hidden cases; pure Python) -----------------------------
def _ntuple(value, n: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def out_size(size: int, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False) -> int:
    """torch's number of windows along one dim (see the book's equation eq:pooling-output-size)."""
    room = size + 2 * p - d * (k - 1) - 1
    out = (-(-room // s) if ceil_mode else room // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # a last window starting in the right padding is dropped
        out -= 1
    return out


def _touches_input(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> bool:
    """Every window holds at least one real element (and there is at least one window)."""
    out = out_size(size, k, s, p, d, ceil_mode)
    return out >= 1 and all(any(0 <= i * s - p + j * d < size for j in range(k)) for i in range(out))


def _dims(ref: nn.Module, n: int, *names: str) -> list[tuple]:
    return [_ntuple(getattr(ref, name), n) for name in names]


def _pad_list(left: tuple, right: tuple) -> list[int]:
    """F.pad's list: (left, right) pairs from the last dimension backwards."""
    return [q for lo, hi in zip(reversed(left), reversed(right)) for q in (lo, hi)]


def _not_applicable() -> None:
    raise ValueError("this mistake does not change this configuration's output")


# --- mistakes: torch's output with one thing done wrong -----------------------------------------
MAX_FN = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_FN = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _max(ref: nn.Module, x: torch.Tensor, n: int, sign: float = 1.0, **change) -> torch.Tensor:
    """torch's max pooling of `sign * x` with `ref`'s arguments, some of them changed, times `sign`."""
    args = {"kernel_size": ref.kernel_size, "stride": ref.stride, "padding": ref.padding,
            "dilation": ref.dilation, "ceil_mode": ref.ceil_mode}
    args.update(change)
    return sign * MAX_FN[n](sign * x, **args)


def _max_stride_one(ref, x, n, sign=1.0):
    if _ntuple(ref.stride, n) != _ntuple(ref.kernel_size, n) or max(_ntuple(ref.kernel_size, n)) == 1:
        _not_applicable()
    return _max(ref, x, n, sign, stride=1)


def _overhang(ref: nn.Module, x: torch.Tensor, n: int, dilation: bool = True) -> tuple[int, ...]:
    """Per dim, how far torch's last window reaches past the right padding (ceil_mode only)."""
    k, s, p = _dims(ref, n, "kernel_size", "stride", "padding")
    d = _dims(ref, n, "dilation")[0] if dilation else (1,) * n
    return tuple(max(0, (out_size(size, ki, si, pi, di, ref.ceil_mode) - 1) * si + di * (ki - 1) + 1 - size - 2 * pi)
                 for size, ki, si, pi, di in zip(x.shape[-n:], k, s, p, d))


def _max_zero_padding(ref, x, n, sign=1.0):
    """Zeros in the padding and in ceil_mode's overhang past it."""
    (p,), extra = _dims(ref, n, "padding"), _overhang(ref, x, n)
    if not any(p) and not any(extra):
        _not_applicable()
    padded = F.pad(sign * x, _pad_list(p, tuple(a + b for a, b in zip(p, extra))))
    return sign * MAX_FN[n](padded, ref.kernel_size, ref.stride, 0, ref.dilation)


def _max_floor(ref, x, n, sign=1.0):
    if not ref.ceil_mode:
        _not_applicable()
    return _max(ref, x, n, sign, ceil_mode=False)


def _naive_ceil_extra(ref: nn.Module, x: torch.Tensor, n: int) -> tuple[int, ...]:
    """Right padding a naive ceil_mode adds (rounding up, never dropping a last window that would
    start in the right padding); raises when that keeps the same windows as torch."""
    k, s, p, d = _dims(ref, n, "kernel_size", "stride", "padding", "dilation")
    if not ref.ceil_mode:
        _not_applicable()
    extra, differs = [], False
    for size, ki, si, pi, di in zip(x.shape[-n:], k, s, p, d):
        span = di * (ki - 1) + 1
        naive = -(-(size + 2 * pi - span) // si) + 1
        differs |= naive != out_size(size, ki, si, pi, di, True)
        extra.append(max(0, (naive - 1) * si + span - size - 2 * pi))
    if not differs:
        _not_applicable()
    return tuple(extra)


def _max_naive_ceil(ref, x, n, sign=1.0):
    (p,) = _dims(ref, n, "padding")
    extra = _naive_ceil_extra(ref, x, n)
    padded = F.pad(sign * x, _pad_list(p, tuple(a + b for a, b in zip(p, extra))), value=-math.inf)
    return sign * MAX_FN[n](padded, ref.kernel_size, ref.stride, 0, ref.dilation)


def _max_no_dilation(ref, x, n, sign=1.0):
    if max(_ntuple(ref.dilation, n)) == 1:
        _not_applicable()
    return _max(ref, x, n, sign, dilation=1)


def _max_no_padding(ref, x, n, sign=1.0):
    if not any(_ntuple(ref.padding, n)):
        _not_applicable()
    return _max(ref, x, n, sign, padding=0)


def max_mistakes(n: int, sign: float = 1.0, pad: str = "-inf") -> tuple[Mistake, ...]:
    """Known wrong max (sign=1) or min (sign=-1) poolings in n dims."""
    def m(fn):
        return lambda ref, i: fn(ref, i.args[0], n, sign)

    return (
        Mistake("stride defaults to 1 instead of kernel_size (stride=None means stride=kernel_size)",
                m(_max_stride_one)),
        Mistake(f"the padding (and any part of a ceil_mode window past it) is filled with zeros instead of {pad}: "
                f"padding must never win the {'max' if sign > 0 else 'min'}", m(_max_zero_padding)),
        Mistake("ceil_mode is ignored (the number of windows is rounded down)", m(_max_floor)),
        Mistake("ceil_mode keeps a last window that starts in the right padding (torch drops it)",
                m(_max_naive_ceil)),
        Mistake("dilation is ignored", m(_max_no_dilation)),
        Mistake("padding is ignored", m(_max_no_padding)),
    )


MIN_MISTAKES = max_mistakes(2, sign=-1.0, pad="+inf") + (
    Mistake("it computes max pooling, not min pooling", lambda ref, i: _max(ref, i.args[0], 2)),
    Mistake("the result is not negated back: it returns max_pool(-x) instead of -max_pool(-x)",
            lambda ref, i: _max(ref, -i.args[0], 2)),
)


def _avg(ref: nn.Module, x: torch.Tensor, n: int, **change) -> torch.Tensor:
    args = {"kernel_size": ref.kernel_size, "stride": ref.stride, "padding": ref.padding,
            "ceil_mode": ref.ceil_mode, "count_include_pad": ref.count_include_pad}
    if n > 1:
        args["divisor_override"] = ref.divisor_override
    args.update(change)
    return AVG_FN[n](x, **args)


def _avg_always_counts_padding(ref, x, n):
    if ref.count_include_pad or not any(_ntuple(ref.padding, n)):
        _not_applicable()
    return _avg(ref, x, n, count_include_pad=True)


def _avg_never_counts_padding(ref, x, n):
    if not ref.count_include_pad or not any(_ntuple(ref.padding, n)):
        _not_applicable()
    return _avg(ref, x, n, count_include_pad=False)


def _avg_full_kernel_divisor(ref, x, n):
    """Zero-pad by the padding and by ceil_mode's overhang, then divide every window by the kernel
    size: the overhang past the padding is counted too."""
    if getattr(ref, "divisor_override", None) or not ref.count_include_pad:
        _not_applicable()
    (p,), extra = _dims(ref, n, "padding"), _overhang(ref, x, n, dilation=False)
    if not any(extra):
        _not_applicable()
    padded = F.pad(x, _pad_list(p, tuple(a + b for a, b in zip(p, extra))))
    return AVG_FN[n](padded, ref.kernel_size, ref.stride, 0)


def _avg_ignores_divisor(ref, x, n):
    if not getattr(ref, "divisor_override", None):
        _not_applicable()
    return _avg(ref, x, n, divisor_override=None)


def _avg_floor(ref, x, n):
    if not ref.ceil_mode:
        _not_applicable()
    return _avg(ref, x, n, ceil_mode=False)


def _avg_stride_one(ref, x, n):
    if _ntuple(ref.stride, n) != _ntuple(ref.kernel_size, n) or max(_ntuple(ref.kernel_size, n)) == 1:
        _not_applicable()
    return _avg(ref, x, n, stride=1)


def _avg_no_padding(ref, x, n):
    if not any(_ntuple(ref.padding, n)):
        _not_applicable()
    return _avg(ref, x, n, padding=0)


def avg_mistakes(n: int) -> tuple[Mistake, ...]:
    def m(fn):
        return lambda ref, i: fn(ref, i.args[0], n)

    return (
        Mistake("the padding is counted in the average although count_include_pad=False",
                m(_avg_always_counts_padding)),
        Mistake("the padding is left out of the count although count_include_pad=True (the default)",
                m(_avg_never_counts_padding)),
        Mistake("every window is divided by the full kernel size, even where ceil_mode's last window reaches "
                "past the padding (torch counts the padding, not that overhang)", m(_avg_full_kernel_divisor)),
        Mistake("divisor_override is ignored", m(_avg_ignores_divisor)),
        Mistake("stride defaults to 1 instead of kernel_size (stride=None means stride=kernel_size)",
                m(_avg_stride_one)),
        Mistake("ceil_mode is ignored (the number of windows is rounded down)", m(_avg_floor)),
        Mistake("padding is ignored", m(_avg_no_padding)),
    )


def _adaptive_loop(x: torch.Tensor, output_size, reduce: Callable, bounds: Callable) -> torch.Tensor:
    """Adaptive pooling of the last two dims with windows [start, end) = bounds(i, L, O): the
    mistakes' slow, obvious version (grading code, run only on wrong outputs)."""
    sizes = [x.shape[-2 + j] if o is None else o for j, o in enumerate(_ntuple(output_size, 2))]
    rows = []
    for i in range(sizes[0]):
        h0, h1 = bounds(i, x.shape[-2], sizes[0])
        cols = []
        for j in range(sizes[1]):
            w0, w1 = bounds(j, x.shape[-1], sizes[1])
            if h1 <= h0 or w1 <= w0:
                _not_applicable()  # an empty window: this rule cannot produce an output at all
            cols.append(reduce(x[..., h0:h1, w0:w1].flatten(-2)))
        rows.append(torch.stack(cols, -1))
    return torch.stack(rows, -2)


def _floor_end(i: int, size: int, out: int) -> tuple[int, int]:
    return i * size // out, (i + 1) * size // out


def _fixed_stride(i: int, size: int, out: int) -> tuple[int, int]:
    stride = size // out
    kernel = size - (out - 1) * stride
    return i * stride, i * stride + kernel


def adaptive_mistakes(reduce: Callable) -> tuple[Mistake, ...]:
    def m(bounds):
        return lambda ref, i: _adaptive_loop(i.args[0], ref.output_size, reduce, bounds)

    return (
        Mistake("windows end at floor((i + 1) * L / O); torch rounds the end up, ceil((i + 1) * L / O), "
                "so neighbouring windows can overlap", m(_floor_end)),
        Mistake("it uses one kernel and stride for all windows (stride = L // O, kernel = L - (O - 1) * stride); "
                "torch's window i is [floor(i * L / O), ceil((i + 1) * L / O))", m(_fixed_stride)),
    )


# --- cases --------------------------------------------------------------------------------------
def max_cases(n: int, inputs: Callable = negative, values: str = "negative") -> tuple[Case, ...]:
    """MaxPool{n}d's public cases (MinPool2d's too, with `inputs=positive`): defaults first, then each
    option alone, then together. Padded cases use `inputs` (all negative for max)."""
    d = per_dim
    cases = []
    if n == 1:  # the book's worked example and its ceil_mode twin
        cases += [Case("book_arange_10", (3,), {}, arange(1, 10)),
                  Case("book_arange_10_ceil_mode", (3,), {"ceil_mode": True}, arange(1, 10))]
    cases += [
        Case("default", (2,), {}, distinct(*sized(n, 6))),
        Case("kernel_3_drops_the_edge", (3,), {}, distinct(*sized(n, 7))),
        Case("stride_2_overlapping", (3,), {"stride": 2}, distinct(*sized(n, 7))),
        Case(f"padding_{values}_input", (3,), {"stride": 2, "padding": 1}, inputs(*sized(n, 6))),
        Case("dilation_2", (2,), {"stride": 1, "dilation": 2}, distinct(*sized(n, 6))),
        Case("ceil_mode", (2,), {"ceil_mode": True}, distinct(*sized(n, 5))),
        # 5 + 2*1 - 2 = 5 rounds up to 4 windows, but the 4th would start in the right padding
        Case("ceil_mode_drops_window_in_padding", (2,), {"stride": 2, "padding": 1, "ceil_mode": True},
             inputs(*sized(n, 5))),
    ]
    if n > 1:
        cases.append(Case("per_dim_arguments", (d(n, 3, 2, 2),),
                          {"stride": d(n, 2, 1, 2), "padding": d(n, 1, 0, 1), "dilation": d(n, 1, 2, 1),
                           "ceil_mode": True}, inputs(*sized(n, 8, 7, 6, batch=1, channels=2))))
    cases.append(Case("no_batch_dim", (2,), {"stride": 1}, distinct(*sized(n, 5)[1:])))
    return tuple(cases)


def avg_cases(n: int) -> tuple[Case, ...]:
    d = per_dim
    cases = [
        Case("default", (2,), {}, distinct(*sized(n, 6))),
        Case("kernel_3_drops_the_edge", (3,), {}, distinct(*sized(n, 7))),
        Case("stride_2_overlapping", (3,), {"stride": 2}, distinct(*sized(n, 7))),
        Case("padding_counted", (3,), {"stride": 2, "padding": 1}, distinct(*sized(n, 6))),
        Case("padding_not_counted", (3,), {"stride": 2, "padding": 1, "count_include_pad": False},
             distinct(*sized(n, 6))),
        Case("ceil_mode", (2,), {"ceil_mode": True}, distinct(*sized(n, 5))),
        # the last window covers 1 input, 1 padding and 1 position past the padding: torch divides by 2
        Case("ceil_mode_past_padding_counted", (3,), {"stride": 2, "padding": 1, "ceil_mode": True},
             distinct(*sized(n, 6))),
        Case("ceil_mode_past_padding_not_counted", (3,),
             {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, distinct(*sized(n, 6))),
    ]
    if n > 1:
        cases += [
            Case("divisor_override", (3,), {"stride": 2, "padding": 1, "divisor_override": 4}, distinct(*sized(n, 6))),
            Case("per_dim_arguments", (d(n, 3, 2, 2),),
                 {"stride": d(n, 2, 1, 2), "padding": d(n, 1, 0, 1), "ceil_mode": True, "count_include_pad": False},
                 distinct(*sized(n, 8, 7, 6, batch=1, channels=2))),
        ]
    cases.append(Case("no_batch_dim", (2,), {"stride": 1}, distinct(*sized(n, 5)[1:])))
    return tuple(cases)


ADAPTIVE_CASES = (
    Case("global", (1,), {}, distinct(2, 3, 7, 7)),
    Case("divisible", (2,), {}, distinct(2, 3, 8, 6)),
    Case("non_divisible", ((3, 4),), {}, distinct(2, 3, 10, 9)),  # overlapping windows
    Case("larger_than_input", ((5, 7),), {}, distinct(2, 3, 3, 4)),
    Case("none_keeps_height", ((None, 3),), {}, distinct(2, 3, 5, 8)),
    Case("none_keeps_width", ((4, None),), {}, distinct(2, 3, 9, 6)),
    Case("no_batch_dim", (3,), {}, distinct(3, 7, 8)),
)


# --- hidden cases: drawn at grading time --------------------------------------------------------
def _draw_windows(rng: random.Random, n: int, *, dilation: bool, padded: bool, ceil_mode: bool = False,
                  default_stride: bool = False) -> tuple[tuple, dict, list[int]]:
    """Random (args, kwargs, spatial sizes) of a pooling layer in which every window holds input.

    `padded`: padding >= 1 in every dim; `ceil_mode`: and it adds a window in at least one dim;
    `default_stride`: stride=None (so stride = kernel_size).
    """
    while True:
        k = [rng.randint(2, 4) for _ in range(n)]
        s = k if default_stride else [rng.randint(1, ki) for ki in k]
        p = [rng.randint(1 if padded else 0, ki // 2) for ki in k]
        dl = [rng.randint(1, 2) if dilation else 1 for _ in range(n)]
        sizes = [rng.randint(di * (ki - 1) + 1, di * (ki - 1) + 6) for ki, di in zip(k, dl)]
        dims = list(zip(sizes, k, s, p, dl))
        if not all(_touches_input(*a, ceil_mode) for a in dims):
            continue
        if not ceil_mode or any(out_size(*a, True) > out_size(*a, False) for a in dims):
            break
    one = lambda v: v[0] if n == 1 or len(set(v)) == 1 else tuple(v)  # noqa: E731
    kwargs = {"stride": None if default_stride else one(s), "padding": one(p)}
    if dilation:
        kwargs["dilation"] = one(dl)
    kwargs["ceil_mode"] = ceil_mode
    return (one(k),), kwargs, sizes


def hidden_max(n: int, inputs: Callable = negative, values: str = "negative"):
    """Three fresh layers: default stride; padding on `inputs` (all negative for max); ceil_mode."""
    def hidden(rng: random.Random):
        draws = (("hidden_default_stride", {"default_stride": True}),
                 (f"hidden_padding_{values}", {"padded": True}),
                 ("hidden_ceil_mode", {"ceil_mode": True, "padded": rng.random() < 0.5}))
        for desc, how in draws:
            args, kwargs, sizes = _draw_windows(rng, n, dilation=True, **{"padded": False, **how})
            make = inputs if kwargs["padding"] else distinct
            yield Case(desc, args, kwargs, make(rng.randint(1, 2), rng.randint(1, 3), *sizes))

    return hidden


def hidden_avg(n: int):
    """Four fresh layers: default stride (maybe divisor_override); padding counted; padding not
    counted; ceil_mode with padding (counted or not)."""
    def hidden(rng: random.Random):
        draws = (("hidden_default_stride", {"default_stride": True}, rng.random() < 0.5),
                 ("hidden_padding_counted", {"padded": True}, True),
                 ("hidden_padding_not_counted", {"padded": True}, False),
                 ("hidden_ceil_mode", {"padded": True, "ceil_mode": True}, rng.random() < 0.5))
        for desc, how, counted in draws:
            args, kwargs, sizes = _draw_windows(rng, n, dilation=False, **{"padded": False, **how})
            kwargs["count_include_pad"] = counted
            if n > 1 and desc == "hidden_default_stride" and rng.random() < 0.5:
                kwargs["divisor_override"] = rng.randint(2, 9)
            yield Case(desc, args, kwargs, distinct(rng.randint(1, 2), rng.randint(1, 3), *sizes))

    return hidden


def hidden_adaptive(rng: random.Random):
    """Output sizes that divide no input size (overlapping windows), global pooling, a None entry."""
    def pair() -> tuple[int, int]:  # (output size, input size) with out < size and out not dividing size
        while True:
            out, size = rng.randint(2, 6), rng.randint(3, 13)
            if out < size and size % out:
                return out, size

    (oh, h), (ow, w) = pair(), pair()
    yield Case("hidden_non_divisible", ((oh, ow),), {}, distinct(rng.randint(1, 2), 2, h, w))
    yield Case("hidden_global", (1,), {}, distinct(rng.randint(1, 2), 3, rng.randint(2, 9), rng.randint(2, 9)))
    (o, size), keep = pair(), rng.randint(2, 9)
    shape, output = ((size, keep), (o, None)) if rng.random() < 0.5 else ((keep, size), (None, o))
    yield Case("hidden_none", (output,), {}, distinct(2, 2, *shape))


# --- vectorization probes -----------------------------------------------------------------------
def window_scales(n: int, case: Case) -> tuple[Scale, ...]:
    """A loop over output positions grows with the spatial size; one over channels with those."""
    small, large = (8, 8, 4)[n - 1], (64, 16, 8)[n - 1]  # 4 vs 32 windows in 1-d, 16 vs 64 in 2-d, 8 vs 64 in 3-d
    return (
        Scale(f"input size {small} vs {large} per spatial dim", case,
              distinct(*sized(n, small, batch=1, channels=2)), distinct(*sized(n, large, batch=1, channels=2))),
        Scale("batch and channels (1, 2) vs (4, 6)", case,
              distinct(*sized(n, small, batch=1, channels=2)), distinct(*sized(n, small, batch=4, channels=6))),
    )


ADAPTIVE_SCALES = (
    Scale("output rows: input 6x8 vs 12x8 with output_size (None, 3)", Case("scale_rows", ((None, 3),)),
          distinct(1, 2, 6, 8), distinct(1, 2, 12, 8)),
    Scale("output columns: input 8x6 vs 8x12 with output_size (3, None)", Case("scale_cols", ((3, None),)),
          distinct(1, 2, 8, 6), distinct(1, 2, 8, 12)),
    Scale("batch and channels (1, 2) vs (4, 6)", Case("scale_batch", ((3, 2),)),
          distinct(1, 2, 8, 7), distinct(4, 6, 8, 7)),
)


# --- the specs, in book order -------------------------------------------------------------------
def _bench(n: int, args: tuple = (2,)) -> Case:
    shape = {1: (32, 64, 4096), 2: (32, 64, 56, 56), 3: (8, 16, 32, 32, 32)}[n]
    return Case("bench", args, {}, lambda make: call(make.randn(*shape)))


#: constructor arguments the layers keep under torch's names (AvgPool1d keeps its sizes as 1-tuples)
MAX_ATTRIBUTES = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
AVG_ATTRIBUTES = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
#: what every spec of the chapter shares
COMMON = {"chapter": "pooling", "forbidden_calls": POOL_CALLS, "forbidden_modules": POOL_MODULES}


for _n in (1, 2, 3):
    register(Spec(
        name=f"MaxPool{_n}d",
        reference=getattr(nn, f"MaxPool{_n}d"),
        cases=max_cases(_n),
        hidden=hidden_max(_n),
        scales=window_scales(_n, Case("scale", (2,))),
        mistakes=max_mistakes(_n),
        judges=(attributes(*MAX_ATTRIBUTES),),
        bench=_bench(_n),
        **COMMON,
    ))

register(Spec(
    name="MinPool2d",
    reference=MinPool2d,
    cases=max_cases(2, inputs=positive, values="positive"),
    hidden=hidden_max(2, inputs=positive, values="positive"),
    scales=window_scales(2, Case("scale", (2,))),
    mistakes=MIN_MISTAKES,
    judges=(attributes(*MAX_ATTRIBUTES),),
    bench=_bench(2),
    **COMMON,
))

for _n in (1, 2, 3):
    register(Spec(
        name=f"AvgPool{_n}d",
        reference=getattr(nn, f"AvgPool{_n}d"),
        cases=avg_cases(_n),
        hidden=hidden_avg(_n),
        scales=window_scales(_n, Case("scale", (2,))),
        mistakes=avg_mistakes(_n),
        judges=(attributes(*AVG_ATTRIBUTES, *(("divisor_override",) if _n > 1 else ())),),
        bench=_bench(_n),
        **COMMON,
    ))

register(
    Spec(
        name="AdaptiveAvgPool2d",
        reference=nn.AdaptiveAvgPool2d,
        cases=ADAPTIVE_CASES,
        hidden=hidden_adaptive,
        scales=ADAPTIVE_SCALES,
        mistakes=adaptive_mistakes(lambda w: w.mean(-1)),
        judges=(attributes("output_size"),),
        bench=Case("bench", (1,), {}, lambda make: call(make.randn(64, 512, 7, 7))),
        **COMMON,
    ),
    Spec(
        name="AdaptiveMaxPool2d",
        reference=nn.AdaptiveMaxPool2d,
        cases=ADAPTIVE_CASES,
        hidden=hidden_adaptive,
        scales=ADAPTIVE_SCALES,
        mistakes=adaptive_mistakes(lambda w: w.amax(-1)),
        judges=(attributes("output_size", "return_indices"),),
        bench=Case("bench", ((7, 7),), {}, lambda make: call(make.randn(32, 256, 30, 30))),
        **COMMON,
    ),
)
