"""ConvTranspose1d, ConvTranspose2d, ConvTranspose3d: one spec factory for the three dimensions.

The cases are sized so that each classic mistake shows in VALUES: random kernels (an unflipped
kernel in the "convolve the upsampled input" route differs), a layer with as many input as output
channels (a weight read as (C_out, C_in) still has the right shape), `padding` together with
`output_padding` (the extra rows hold real values, not zeros), and padding cropped from one side
(the right size, shifted values).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import Case, Inputs, Mistake, Spec, call, randn, register
from .conv import CONV_CALLS, CONV_MODULES, batch_and_size_scales, per_dim

FUNCTIONAL = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MODULES = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}

#: spatial sizes of the public inputs: all different, so a swap of two dimensions shows
SPATIAL = {1: (6,), 2: (5, 4), 3: (4, 3, 5)}


# --- mistakes: torch's output with one thing done wrong -------------------------------------------

def output_padding_of(ref: nn.Module, inputs: Inputs) -> tuple[int, ...]:
    """The output_padding torch uses for this call (from `output_size` when it is given)."""
    x = inputs.args[0]
    n = len(ref.kernel_size)
    size = inputs.kwargs.get("output_size", inputs.args[1] if len(inputs.args) > 1 else None)
    return tuple(ref._output_padding(x, size, list(ref.stride), list(ref.padding), list(ref.kernel_size), n,
                                     list(ref.dilation)))


def transpose_with(ref: nn.Module, inputs: Inputs, *, weight: torch.Tensor | None = None,
                   bias: torch.Tensor | None | str = "ref", stride: tuple[int, ...] | None = None,
                   padding: tuple[int, ...] | None = None, output_padding: tuple[int, ...] | None = None,
                   dilation: tuple[int, ...] | None = None, groups: int | None = None) -> torch.Tensor:
    """`ref`'s transposed convolution of the call's input, with any of its ingredients replaced."""
    n = len(ref.kernel_size)
    return FUNCTIONAL[n](inputs.args[0], ref.weight if weight is None else weight,
                         ref.bias if bias == "ref" else bias,
                         stride=ref.stride if stride is None else stride,
                         padding=ref.padding if padding is None else padding,
                         output_padding=output_padding_of(ref, inputs) if output_padding is None else output_padding,
                         groups=ref.groups if groups is None else groups,
                         dilation=ref.dilation if dilation is None else dilation)


def _need(condition: bool) -> None:
    if not condition:
        raise ValueError("not applicable")


def _spatial(ref: nn.Module) -> list[int]:
    return list(range(2, ref.weight.dim()))


def _not_flipped(ref, inputs):
    return transpose_with(ref, inputs, weight=ref.weight.flip(_spatial(ref)))


def _layout_swapped(ref, inputs):
    """The weight read as (C_out, C_in/groups, *k): possible without a shape error when C_in == C_out."""
    _need(ref.in_channels == ref.out_channels)
    g, c = ref.groups, ref.in_channels // ref.groups
    w = ref.weight.reshape(g, c, c, *ref.kernel_size).transpose(1, 2).reshape(ref.weight.shape)
    return transpose_with(ref, inputs, weight=w)


def _no_bias(ref, inputs):
    _need(ref.bias is not None)
    return transpose_with(ref, inputs, bias=None)


def _output_padding_ignored(ref, inputs):
    op = output_padding_of(ref, inputs)
    _need(any(op))
    return transpose_with(ref, inputs, output_padding=(0,) * len(op))


def _output_padding_zeros(ref, inputs):
    """The extra rows appended as zeros; they really hold the values the padding would crop."""
    op = output_padding_of(ref, inputs)
    _need(any(op) and any(ref.padding))
    y = transpose_with(ref, inputs, output_padding=(0,) * len(op))
    if ref.bias is not None:
        y = y - ref.bias.view(-1, *[1] * len(op))
    y = F.pad(y, [p for o in reversed(op) for p in (0, o)])
    return y + ref.bias.view(-1, *[1] * len(op)) if ref.bias is not None else y


def _crop(y: torch.Tensor, starts: list[int], sizes: list[int]) -> torch.Tensor:
    """The block of `sizes` starting at `starts` in the last len(starts) dimensions of y."""
    return y[(..., *(slice(s, s + z) for s, z in zip(starts, sizes)))]


def _padding_ignored(ref, inputs):
    _need(any(ref.padding))
    return transpose_with(ref, inputs, padding=(0,) * len(ref.padding))


def _padding_cropped_before(ref, inputs):
    """All 2·padding cropped from the start: the right size, shifted values."""
    _need(any(ref.padding))
    want = transpose_with(ref, inputs)
    full = transpose_with(ref, inputs, padding=(0,) * len(ref.padding))
    n = len(ref.padding)
    return _crop(full, [2 * p for p in ref.padding], list(want.shape[-n:]))


def _padding_cropped_after(ref, inputs):
    _need(any(ref.padding))
    want = transpose_with(ref, inputs)
    full = transpose_with(ref, inputs, padding=(0,) * len(ref.padding))
    n = len(ref.padding)
    return _crop(full, [0] * n, list(want.shape[-n:]))


def _padding_cropped_once(ref, inputs):
    """padding cropped from the start only (not from both ends)."""
    _need(any(ref.padding))
    full = transpose_with(ref, inputs, padding=(0,) * len(ref.padding))
    n = len(ref.padding)
    return _crop(full, list(ref.padding), [s - p for s, p in zip(full.shape[-n:], ref.padding)])


def _stride_ignored(ref, inputs):
    _need(max(ref.stride) > 1)
    ones = (1,) * len(ref.stride)
    return transpose_with(ref, inputs, stride=ones, output_padding=(0,) * len(ones))


def _dilation_ignored(ref, inputs):
    _need(max(ref.dilation) > 1)
    op = tuple(min(o, s - 1) for o, s in zip(output_padding_of(ref, inputs), ref.stride))
    return transpose_with(ref, inputs, dilation=(1,) * len(ref.dilation), output_padding=op)


def _groups_ignored(ref, inputs):
    """The (C_in, C_out/groups, *k) weight used as one group: only C_out/groups output channels."""
    _need(ref.groups > 1)
    return transpose_with(ref, inputs, groups=1, bias=None if ref.bias is None else ref.bias[:ref.weight.shape[1]])


def _kernel_dims_reversed(ref, inputs):
    _need(ref.weight.dim() > 3 and len(set(ref.kernel_size)) == 1)
    return transpose_with(ref, inputs, weight=ref.weight.permute(0, 1, *range(ref.weight.dim() - 1, 1, -1)))


MISTAKES = tuple(Mistake(cause, fn) for cause, fn in [
    ("the kernel is not flipped: written as a convolution of the zero-upsampled input, a transposed "
     "convolution uses the kernel flipped in every spatial dimension", _not_flipped),
    ("the weight is read as (C_out, C_in/groups, *k); torch's transposed layers store it as "
     "(C_in, C_out/groups, *k)", _layout_swapped),
    ("the bias is left out", _no_bias),
    ("output_padding is ignored", _output_padding_ignored),
    ("output_padding appends zeros; the extra rows hold the values that padding would otherwise crop",
     _output_padding_zeros),
    ("padding is ignored (it crops the output, it does not pad it)", _padding_ignored),
    ("all the padding is cropped from one side (2·padding from the start, none from the end)",
     _padding_cropped_before),
    ("all the padding is cropped from one side (2·padding from the end, none from the start)",
     _padding_cropped_after),
    ("padding is cropped from one side only (from the start, not from the end)", _padding_cropped_once),
    ("stride is ignored (the kernel's copies are placed one step apart)", _stride_ignored),
    ("dilation is ignored (the kernel's taps are adjacent)", _dilation_ignored),
    ("groups is ignored (the weight used as a single group gives C_out/groups channels)", _groups_ignored),
    ("the kernel's spatial dimensions are reversed (e.g. height and width swapped)", _kernel_dims_reversed),
])


# --- the cases, written once for N spatial dimensions ---------------------------------------------

def _with_size(shape: tuple[int, ...], size: Callable[[tuple[int, ...]], list[int]]):
    """forward(x, output_size=...) on a standard-normal x of `shape`."""
    return lambda make: call(make.randn(*shape), output_size=size(shape))


def cases_convtransposeNd(N: int) -> tuple[Case, ...]:
    """The public suite of ConvTransposeNd: defaults, each option alone, then combinations."""
    S = SPATIAL[N]
    return (
        Case("default", (3, 4, 3), {}, randn(2, 3, *S)),
        # C_in == C_out: a weight read in (C_out, C_in) layout has the right shape, wrong values
        Case("square_channels", (4, 4, 3), {}, randn(2, 4, *S)),
        Case("kernel_tuple", (2, 3, per_dim(N, 3, 2, 4)), {}, randn(2, 2, *S)),
        Case("stride_2", (2, 3, 3), {"stride": 2}, randn(2, 2, *S)),
        # kernel == stride: the copies do not overlap (the classic 2x upsampling)
        Case("stride_2_kernel_2", (2, 3, 2), {"stride": 2}, randn(2, 2, *S)),
        Case("padding_1", (2, 3, 3), {"padding": 1}, randn(2, 2, *S)),
        Case("stride_2_padding_1", (2, 3, 4), {"stride": 2, "padding": 1}, randn(2, 2, *S)),
        # padding and output_padding together: the extra row holds values, not zeros
        Case("output_padding", (2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, randn(2, 2, *S)),
        Case("output_padding_no_padding", (2, 3, 3), {"stride": 3, "output_padding": 2}, randn(2, 2, *S)),
        Case("dilation_2", (2, 3, 3), {"dilation": 2}, randn(2, 2, *S)),
        Case("groups_2", (4, 6, 3), {"groups": 2}, randn(2, 4, *S)),
        Case("depthwise", (4, 4, 3), {"groups": 4}, randn(2, 4, *S)),
        Case("no_bias", (3, 4, 3), {"bias": False}, randn(2, 3, *S)),
        Case("per_dim_tuples", (2, 3, per_dim(N, 3, 2, 4)),
             {"stride": per_dim(N, 2, 1, 3), "padding": per_dim(N, 1, 0, 1),
              "output_padding": per_dim(N, 1, 0, 2), "dilation": per_dim(N, 1, 2, 1)}, randn(2, 2, *S)),
        Case("combined", (4, 6, 3), {"stride": 2, "padding": 2, "output_padding": 1, "dilation": 2, "groups": 2},
             randn(2, 4, *S)),
        # output_size picks the output_padding: (L - 1) * 2 - 2 + 3 = 2L - 1 rows, one more asked for
        Case("output_size", (2, 3, 3), {"stride": 2, "padding": 1},
             _with_size((2, 2, *S), lambda shape: [2 * s for s in shape[2:]])),
        Case("no_batch", (3, 4, 3), {"stride": 2}, randn(3, *S)),
    )


def hidden_convtransposeNd(rng: random.Random, N: int):
    """Fresh configurations at every grading: random kernels, strides, paddings, dilations, groups."""
    def draw(desc: str, square: bool = False) -> Case:
        groups = rng.choice([1, 2, 3])
        c_in = groups * rng.randint(1, 3)
        c_out = c_in if square else groups * rng.randint(1, 3)
        k = tuple(rng.randint(1, 4) for _ in range(N))
        s = tuple(rng.randint(1, 3) for _ in range(N))
        d = tuple(rng.choice([1, 1, 2]) for _ in range(N))
        p = tuple(rng.randint(0, (dd * (kk - 1)) // 2 + 1) for dd, kk in zip(d, k))
        op = tuple(rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d))
        size = tuple(rng.randint(2, 5) for _ in range(N))
        # torch needs an output of at least one element: (L-1)s - 2p + d(k-1) + op + 1 >= 1
        size = tuple(max(z, -(-(2 * pp - dd * (kk - 1) - oo) // ss) + 1)
                     for z, pp, dd, kk, oo, ss in zip(size, p, d, k, op, s))
        kwargs = {"stride": s, "padding": p, "output_padding": op, "dilation": d, "groups": groups,
                  "bias": rng.random() < 0.7}
        return Case(desc, (c_in, c_out, k), kwargs, randn(rng.randint(1, 3), c_in, *size))

    yield draw("hidden_random_1")
    yield draw("hidden_random_2")
    yield draw("hidden_square_channels", square=True)
    s = rng.randint(2, 3)
    extra = [rng.randint(0, s - 1) for _ in range(N)]  # any size from the smallest to s - 1 more
    yield Case("hidden_output_size", (2, 3, 3), {"stride": s, "padding": 1},
               _with_size((rng.randint(1, 2), 2, *(rng.randint(2, 5) for _ in range(N))),
                          lambda shape: [(z - 1) * s - 2 + 3 + e for z, e in zip(shape[2:], extra)]))


def spec_convtransposeNd(N: int) -> Spec:
    small, large = {1: ((8,), (64,)), 2: ((6, 6), (12, 12)), 3: ((3, 3, 3), (6, 6, 6))}[N]
    scale_case = Case("scale", (2, 3, 3), {"stride": 2, "padding": 1})
    return Spec(
        name=f"ConvTranspose{N}d",
        chapter="conv_transpose",
        reference=MODULES[N],
        cases=cases_convtransposeNd(N),
        hidden=partial(hidden_convtransposeNd, N=N),
        # fan_in is computed from weight.shape[1] = C_out / groups: the init must follow that
        init_cases=(Case("init", (16, 512, 3)), Case("init_groups", (32, 512, 3), {"groups": 8})),
        scales=batch_and_size_scales(scale_case, small, large),
        forbidden_calls=CONV_CALLS,
        forbidden_modules=CONV_MODULES,
        mistakes=MISTAKES,
        bench=Case("bench", (64, 32, 4), {"stride": 2, "padding": 1},
                   lambda make: call(make.randn(8, 64, *{1: (512,), 2: (16, 16), 3: (4, 8, 8)}[N]))),
    )


register(*(spec_convtransposeNd(N) for N in (1, 2, 3)))
