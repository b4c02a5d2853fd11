"""Conv1d, Conv2d, Conv3d: one spec factory for the three dimensions.

The cases are written once for N spatial dimensions (`cases_convNd`, like PyTorch's own
`module_inputs_torch_nn_ConvNd`) and sized so that every classic mistake changes the output's
VALUES, not only its shape: `padding='same'` with an even kernel (torch puts the odd extra zero
after the data), `padding='same'` with dilation (ignoring dilation keeps the shape), a depthwise
layer (ignoring groups by broadcasting still runs), random kernels (a flipped kernel differs),
non-square sizes (swapped dimensions differ).

`CONV_CALLS` and `CONV_MODULES` (torch's convolution functions, aten ops and modules) are shared
with the conv_transpose chapter: either layer written with the other's torch op is still torch's
own implementation.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import resolve_name

from ..spec import Case, Inputs, Mistake, Scale, Spec, call, randn, register


def _convolution_names() -> frozenset[str]:
    """Every name under which a forward can reach torch's convolution code, as the tracer
    records it: Python functions (`torch.nn.functional.conv2d`, `torch.convolution`, ...) and
    aten ops called directly (`aten.convolution`, `aten.convolution.default`, ...)."""
    names = set()
    for namespace in (torch, F, torch._C._nn, torch._C._VariableFunctions):
        for attr in dir(namespace):
            if "conv" in attr.lower() and "convert" not in attr.lower():
                fn = getattr(namespace, attr)
                if callable(fn):
                    names.add(resolve_name(fn) or getattr(fn, "__qualname__", attr))
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and "conv" in op and "convert" not in op:
            packet, _, overload = op.removeprefix("aten::").partition(".")
            names |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(names)


#: torch's own convolutions, in every spelling: forbidden in both convolution chapters
CONV_CALLS = _convolution_names()
#: torch's convolution modules (their common base `_ConvNd` last, so feedback names the concrete one)
CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                nn.ConvTranspose3d, nn.modules.conv._ConvNd)

FUNCTIONAL = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MODULES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def quiet_reference(cls: type[nn.Module]) -> type[nn.Module]:
    """torch's `cls`, minus the performance warning torch gives for `padding='same'` with an even
    kernel: the report would show it as if the student's layer had raised it."""

    class Quiet(cls):
        def forward(self, *args, **kwargs):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Using padding='same'")
                return super().forward(*args, **kwargs)

    Quiet.__name__ = Quiet.__qualname__ = cls.__name__
    return Quiet

#: spatial sizes of the public inputs: all different, so a swap of two dimensions shows
SPATIAL = {1: (11,), 2: (7, 6), 3: (6, 5, 7)}


def per_dim(n: int, *values: int) -> tuple[int, ...]:
    """The first `n` of `values`: one value per spatial dimension (`per_dim(2, 3, 2, 4) == (3, 2)`)."""
    return tuple(values[:n])


# --- mistakes: torch's output with one thing done wrong -------------------------------------------

def padding_pairs(ref: nn.Module, dilation: tuple[int, ...] | None = None) -> list[tuple[int, int]]:
    """(before, after) zeros per spatial dimension, as torch pads for `ref` ('same' puts the odd
    extra one after the data)."""
    dilation = ref.dilation if dilation is None else dilation
    if ref.padding == "valid":
        return [(0, 0)] * len(ref.kernel_size)
    if ref.padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for d, k in zip(dilation, ref.kernel_size)]
    return [(p, p) for p in ref.padding]


def conv_with(ref: nn.Module, x: torch.Tensor, *, pairs: list[tuple[int, int]] | None = None,
              weight: torch.Tensor | None = None, bias: torch.Tensor | None | str = "ref",
              stride: tuple[int, ...] | None = None, dilation: tuple[int, ...] | None = None,
              groups: int | None = None, mode: str | None = None) -> torch.Tensor:
    """`ref`'s convolution of `x`, with any of its ingredients replaced."""
    n = len(ref.kernel_size)
    pairs = padding_pairs(ref) if pairs is None else pairs
    mode = ref.padding_mode if mode is None else mode
    flat = [p for pair in reversed(pairs) for p in pair]  # F.pad lists the last dimension first
    x = F.pad(x, flat, mode="constant" if mode == "zeros" else mode)
    return FUNCTIONAL[n](x, ref.weight if weight is None else weight, ref.bias if bias == "ref" else bias,
                         stride=ref.stride if stride is None else stride,
                         dilation=ref.dilation if dilation is None else dilation,
                         groups=ref.groups if groups is None else groups)


def _need(condition: bool) -> None:
    """A mistake that cannot happen in this configuration (its output would be torch's)."""
    if not condition:
        raise ValueError("not applicable")


def _flipped(ref, x):
    return conv_with(ref, x, weight=ref.weight.flip(list(range(2, ref.weight.dim()))))


def _no_bias(ref, x):
    _need(ref.bias is not None)
    return conv_with(ref, x, bias=None)


def _dilation_ignored(ref, x):
    _need(max(ref.dilation) > 1)
    ones = (1,) * len(ref.dilation)
    return conv_with(ref, x, pairs=padding_pairs(ref, ones), dilation=ones)


def _dilation_ignored_by_taps(ref, x):
    _need(max(ref.dilation) > 1)
    return conv_with(ref, x, dilation=(1,) * len(ref.dilation))


def _stride_ignored(ref, x):
    _need(max(ref.stride) > 1)
    return conv_with(ref, x, stride=(1,) * len(ref.stride))


def _padding_ignored(ref, x):
    _need(any(sum(p) for p in padding_pairs(ref)))
    return conv_with(ref, x, pairs=[(0, 0)] * len(ref.kernel_size))


def _padding_before_only(ref, x):
    _need(any(a for _, a in padding_pairs(ref)))
    return conv_with(ref, x, pairs=[(b, 0) for b, _ in padding_pairs(ref)])


def _padding_after_only(ref, x):
    _need(any(b for b, _ in padding_pairs(ref)))
    return conv_with(ref, x, pairs=[(0, a) for _, a in padding_pairs(ref)])


def _padding_all_before(ref, x):
    _need(any(a for _, a in padding_pairs(ref)))
    return conv_with(ref, x, pairs=[(b + a, 0) for b, a in padding_pairs(ref)])


def _padding_all_after(ref, x):
    _need(any(b for b, _ in padding_pairs(ref)))
    return conv_with(ref, x, pairs=[(0, b + a) for b, a in padding_pairs(ref)])


def _same_extra_before(ref, x):
    _need(ref.padding == "same" and any(b != a for b, a in padding_pairs(ref)))
    return conv_with(ref, x, pairs=[(a, b) for b, a in padding_pairs(ref)])


def _groups_ignored(ref, x):
    """Every output channel sums over all input channels: what broadcasting a depthwise weight
    of shape (C_out, 1, *k) against all C_in input channels computes."""
    _need(ref.groups > 1)
    reps = (1, ref.groups) + (1,) * (ref.weight.dim() - 2)
    return conv_with(ref, x, weight=ref.weight.repeat(*reps), groups=1)


def _groups_interleaved(ref, x):
    """Output channel o taken from group o % groups instead of o // (C_out / groups)."""
    _need(ref.groups > 1 and ref.out_channels > ref.groups)
    g, c_out = ref.groups, ref.out_channels
    order = sorted(range(c_out), key=lambda o: (o % g, o))  # the channels each group really makes
    bias = ref.bias[order] if ref.bias is not None else None
    y = conv_with(ref, x, weight=ref.weight[order], bias=bias)
    inverse = [order.index(o) for o in range(c_out)]
    return y[:, inverse] if x.dim() == ref.weight.dim() else y[inverse]


def _padding_mode_ignored(ref, x):
    _need(ref.padding_mode != "zeros")
    return conv_with(ref, x, mode="zeros")


def _kernel_dims_reversed(ref, x):
    _need(ref.weight.dim() > 3 and len(set(ref.kernel_size)) == 1)
    return conv_with(ref, x, weight=ref.weight.permute(0, 1, *range(ref.weight.dim() - 1, 1, -1)))


def _on_input(fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> Callable[[nn.Module, Inputs], torch.Tensor]:
    return lambda ref, inputs: fn(ref, inputs.args[0])


MISTAKES = tuple(Mistake(cause, _on_input(fn)) for cause, fn in [
    ("the kernel is flipped (a true convolution); torch's layers slide the kernel as it is "
     "(a cross-correlation)", _flipped),
    ("the bias is left out", _no_bias),
    ("dilation is ignored (the kernel's taps are adjacent)", _dilation_ignored),
    ("dilation is ignored by the kernel's taps (the padding allows for it, the taps are adjacent)",
     _dilation_ignored_by_taps),
    ("stride is ignored (the kernel moves one step at a time)", _stride_ignored),
    ("padding is ignored", _padding_ignored),
    ("padding is added on one side only (before the data)", _padding_before_only),
    ("padding is added on one side only (after the data)", _padding_after_only),
    ("all the padding is put on one side (before the data, none after)", _padding_all_before),
    ("all the padding is put on one side (after the data, none before)", _padding_all_after),
    ("'same' padding puts the odd extra zero before the data; torch puts it after", _same_extra_before),
    ("groups is ignored: every output channel sums over all input channels", _groups_ignored),
    ("groups take their output channels interleaved (channel o in group o % groups) instead of in "
     "consecutive blocks", _groups_interleaved),
    ("padding_mode is ignored (zeros are padded)", _padding_mode_ignored),
    ("the kernel's spatial dimensions are reversed (e.g. height and width swapped)", _kernel_dims_reversed),
])


# --- the cases, written once for N spatial dimensions ---------------------------------------------

def cases_convNd(N: int) -> tuple[Case, ...]:
    """The public suite of ConvNd: defaults, each option alone, then combinations."""
    S = SPATIAL[N]
    big = tuple(s + 3 for s in S)
    return (
        Case("default", (3, 4, 3), {}, randn(2, 3, *S)),
        Case("kernel_tuple", (2, 3, per_dim(N, 3, 2, 4)), {}, randn(2, 2, *S)),
        Case("stride_2", (2, 3, 3), {"stride": 2}, randn(2, 2, *S)),
        Case("padding_1", (2, 3, 3), {"padding": 1}, randn(2, 2, *S)),
        Case("padding_2", (2, 3, 2), {"padding": 2}, randn(1, 2, *S)),
        Case("padding_same", (2, 3, 3), {"padding": "same"}, randn(2, 2, *S)),
        # an even kernel: 'same' pads 1 zero before and 2 after, so a mirrored split shows in values
        Case("padding_same_even", (2, 3, 4), {"padding": "same"}, randn(2, 2, *S)),
        Case("padding_valid", (2, 3, 3), {"padding": "valid"}, randn(2, 2, *S)),
        Case("dilation_2", (2, 3, 3), {"dilation": 2}, randn(2, 2, *big)),
        # 'same' keeps the shape whatever the dilation: ignoring dilation shows only in values
        Case("dilation_2_same", (2, 3, 3), {"padding": "same", "dilation": 2}, randn(2, 2, *S)),
        Case("groups_2", (4, 6, 3), {"groups": 2}, randn(2, 4, *S)),
        # depthwise, 2 filters per channel: a (C_out, 1, *k) weight broadcast over all channels still runs
        Case("depthwise", (4, 8, 3), {"groups": 4}, randn(2, 4, *S)),
        Case("no_bias", (3, 4, 3), {"bias": False}, randn(2, 3, *S)),
        Case("one_by_one", (5, 2, 1), {}, randn(2, 5, *S)),
        Case("per_dim_tuples", (2, 3, per_dim(N, 3, 2, 4)),
             {"stride": per_dim(N, 2, 1, 2), "padding": per_dim(N, 1, 0, 2), "dilation": per_dim(N, 1, 2, 1)},
             randn(2, 2, *big)),
        Case("combined", (4, 6, 3), {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}, randn(2, 4, *big)),
        Case("padding_mode_reflect", (2, 3, 3), {"padding": 1, "padding_mode": "reflect"}, randn(2, 2, *S)),
        Case("padding_mode_circular", (2, 3, 3), {"padding": 2, "padding_mode": "circular"}, randn(2, 2, *S)),
        Case("no_batch", (3, 4, 3), {"padding": 1}, randn(3, *S)),
    )


def hidden_convNd(rng: random.Random, N: int):
    """Fresh configurations at every grading: random kernels, strides, paddings, dilations, groups."""
    def draw(desc: str, depthwise: bool = False) -> Case:
        groups = rng.choice([1, 2, 3]) if not depthwise else rng.randint(2, 4)
        c_in = groups * (1 if depthwise else rng.randint(1, 3))
        c_out = groups * rng.randint(1, 3)
        k = tuple(rng.randint(1, 4) for _ in range(N))
        d = tuple(rng.choice([1, 1, 2]) for _ in range(N))
        kwargs: dict = {"groups": groups, "bias": rng.random() < 0.7}
        if rng.random() < 0.3:
            kwargs["padding"] = "same"
            s = (1,) * N
            pad = [dd * (kk - 1) for dd, kk in zip(d, k)]
        else:
            s = tuple(rng.randint(1, 3) for _ in range(N))
            p = tuple(rng.randint(0, 2) for _ in range(N))
            kwargs.update(stride=s, padding=p)
            pad = [2 * pp for pp in p]
        if rng.random() < 0.25:
            kwargs["padding_mode"] = rng.choice(["reflect", "replicate", "circular"])
        kwargs["dilation"] = d
        # inputs long enough for one window and for reflect padding (pad < size)
        size = tuple(max(dd * (kk - 1) + 1 - pp, pp + 1, 1) + rng.randint(1, 4)
                     for dd, kk, pp in zip(d, k, pad))
        batch = rng.randint(1, 3)
        return Case(desc, (c_in, c_out, k), kwargs, randn(batch, c_in, *size))

    yield draw("hidden_random_1")
    yield draw("hidden_random_2")
    yield draw("hidden_depthwise", depthwise=True)
    k = rng.randint(2, 4)
    yield Case("hidden_no_batch", (2, 3, k), {"padding": rng.randint(0, 2)},
               randn(2, *(rng.randint(k, k + 4) for _ in range(N))))


def batch_and_size_scales(case: Case, small: tuple[int, ...], large: tuple[int, ...]) -> tuple[Scale, ...]:
    """Op counts that must not grow: batch 2 vs 16, and spatial size `small` vs `large` (2 channels)."""
    return (
        Scale("batch size 2 vs 16", case, randn(2, 2, *small), randn(16, 2, *small)),
        Scale(f"input size {'x'.join(map(str, small))} vs {'x'.join(map(str, large))}", case,
              randn(2, 2, *small), randn(2, 2, *large)),
    )


def spec_convNd(N: int) -> Spec:
    small, large = {1: ((8,), (64,)), 2: ((8, 8), (16, 16)), 3: ((4, 4, 4), (8, 8, 8))}[N]
    scale_case = Case("scale", (2, 3, 3), {"padding": 1})
    return Spec(
        name=f"Conv{N}d",
        chapter="conv",
        reference=quiet_reference(MODULES[N]),
        cases=cases_convNd(N),
        hidden=partial(hidden_convNd, N=N),
        # many parameters, so the mean, spread and range of U(±1/sqrt(fan_in)) show; groups change fan_in
        init_cases=(Case("init", (16, 512, 3)), Case("init_groups", (32, 512, 3), {"groups": 8})),
        scales=batch_and_size_scales(scale_case, small, large),
        forbidden_calls=CONV_CALLS,
        forbidden_modules=CONV_MODULES,
        mistakes=MISTAKES,
        bench=Case("bench", (64, 64, 3), {"padding": 1},
                   lambda make: call(make.randn(8, 64, *{1: (1024,), 2: (32, 32), 3: (8, 16, 16)}[N]))),
    )


register(*(spec_convNd(N) for N in (1, 2, 3)))
