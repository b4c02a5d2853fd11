"""The ConvTranspose1d/2d/3d graders: the reference passes, and each typical mistake fails naming
its cause.

The wrong layers are written the two ways a student would: scattering scaled kernel copies
(`scatter`, the notebook's route) and convolving the zero-upsampled input (`upsample_conv`, the
route that needs a flipped kernel), each with ONE thing done wrong.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

SOLUTIONS = solution_classes("conv_transpose")
CT1, CT2, CT3 = SOLUTIONS["ConvTranspose1d"], SOLUTIONS["ConvTranspose2d"], SOLUTIONS["ConvTranspose3d"]


def scatter(layer, input, output_size=None, *, layout_swapped=False, ignore_output_padding=False,
            output_padding_zeros=False, crop_before=False, bias=True, ignore_dilation=False,
            ignore_stride=False, ignore_output_size=False, index_device=True, flip=False):
    """The layer's transposed convolution by scattering, with one knob turned."""
    n, g = layer.dims, layer.groups
    batched = input.dim() == n + 2
    x = input if batched else input.unsqueeze(0)
    op = layer.output_padding_for(x, None if ignore_output_size else output_size)
    if ignore_output_padding:
        op = (0,) * n
    stride = (1,) * n if ignore_stride else layer.stride
    dilation = (1,) * n if ignore_dilation else layer.dilation
    B, C, *L = x.shape
    Co, K = layer.out_channels, math.prod(layer.kernel_size)
    w = layer.weight.flip(list(range(2, n + 2))) if flip else layer.weight
    if layout_swapped:  # the parameter holds (C_out, C_in/g, *k) and is read that way
        w = w.reshape(g, Co // g, C // g, K).transpose(1, 2)
    w = w.reshape(g, C // g, Co // g, K)
    pieces = torch.einsum("bgcp,gcok->bgopk", x.reshape(B, g, C // g, -1), w).reshape(B, Co, -1)
    grown = [0 if output_padding_zeros else o for o in op]
    full = [(size - 1) * s + d * (k - 1) + 1 + o
            for size, s, d, k, o in zip(L, stride, dilation, layer.kernel_size, grown)]
    index = 0
    for m, (size, s, d, k) in enumerate(zip(L, stride, dilation, layer.kernel_size)):
        shape = [1] * (2 * n)
        shape[m], shape[n + m] = size, k
        dev = {"device": input.device} if index_device else {}
        index = index * full[m] + (torch.arange(size, **dev)[:, None] * s + torch.arange(k, **dev) * d).reshape(shape)
    y = pieces.new_zeros(B, Co, math.prod(full)).index_add(2, index.reshape(-1), pieces).reshape(B, Co, *full)
    if crop_before:
        y = y[(..., *(slice(2 * p, f) for p, f in zip(layer.padding, full)))]
    else:
        y = y[(..., *(slice(p, f - p) for p, f in zip(layer.padding, full)))]
    if output_padding_zeros:
        y = F.pad(y, [q for o in reversed(op) for q in (0, o)])
    if bias and layer.bias is not None:
        y = y + layer.bias.view(-1, *[1] * n)
    return y if batched else y.squeeze(0)


def upsample_conv(layer, input, output_size=None, *, flip=True, use_torch_conv=False):
    """The other route: put stride - 1 zeros between the inputs, pad by dilation * (k - 1) - padding,
    and slide the kernel (flipped, in and out channels swapped) over the result."""
    n, g = layer.dims, layer.groups
    batched = input.dim() == n + 2
    x = input if batched else input.unsqueeze(0)
    op = layer.output_padding_for(x, output_size)
    B, C, *L = x.shape
    Co = layer.out_channels
    z = x.new_zeros(B, C, *[(size - 1) * s + 1 for size, s in zip(L, layer.stride)])
    z[(..., *(slice(None, None, s) for s in layer.stride))] = x     # the zero-upsampled input
    edges = [d * (k - 1) - p for d, k, p in zip(layer.dilation, layer.kernel_size, layer.padding)]
    z = F.pad(z, [q for e, o in zip(reversed(edges), reversed(op)) for q in (e, e + o)])
    w = layer.weight.flip(list(range(2, n + 2))) if flip else layer.weight
    k = layer.kernel_size
    w = w.reshape(g, C // g, Co // g, *k).transpose(1, 2).reshape(Co, C // g, *k)  # (C_out, C_in/g, *k)
    if use_torch_conv:
        y = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n](z, w, layer.bias, dilation=layer.dilation, groups=g)
        return y if batched else y.squeeze(0)
    for i, (kk, d) in enumerate(zip(k, layer.dilation)):
        z = z.unfold(2 + i, d * (kk - 1) + 1, 1)[..., ::d]
    L_out = z.shape[2:2 + n]
    z = z.reshape(B, g, C // g, math.prod(L_out), -1)
    y = torch.einsum("bgcpk,gock->bgop", z, w.reshape(g, Co // g, C // g, -1)).reshape(B, Co, *L_out)
    if layer.bias is not None:
        y = y + layer.bias.view(-1, *[1] * n)
    return y if batched else y.squeeze(0)


def wrong(base, name, route=scatter, **knobs):
    """A subclass of `base` whose forward is `route` with the given knobs turned."""
    def forward(self, input, output_size=None):
        return route(self, input, output_size, **knobs)

    return type(name, (base,), {"forward": forward})


class WeightOutIn(CT2):
    """The weight stored as (C_out, C_in/groups, *k), as nn.Conv2d stores it."""

    def __init__(self, in_channels, out_channels, kernel_size, *args, groups=1, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, *args, groups=groups, **kwargs)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.reset_parameters()

    def forward(self, input, output_size=None):
        return scatter(self, input, output_size, layout_swapped=True)


class BiasAlways(CT2):
    def __init__(self, *args, bias=True, **kwargs):
        super().__init__(*args, bias=True, **kwargs)


class CallsFConvTranspose2d(CT2):
    def forward(self, input, output_size=None):
        op = self.output_padding_for(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                                  self.dilation)


class HiddenNnConvTranspose2d(CT2):
    def forward(self, input, output_size=None):
        inner = nn.ConvTranspose2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                                   self.output_padding, self.groups, self.bias is not None, self.dilation)
        inner.weight, inner.bias = self.weight, self.bias
        return inner(input, output_size)


class ScatterLoop(CT2):
    """A Python loop over input pixels, each adding its scaled kernel into the output."""

    def forward(self, input, output_size=None):
        batched = input.dim() == 4
        x = input if batched else input.unsqueeze(0)
        op = self.output_padding_for(x, output_size)
        B, C, H, W = x.shape
        (kh, kw), (sh, sw), (dh, dw), g = self.kernel_size, self.stride, self.dilation, self.groups
        full = [(H - 1) * sh + dh * (kh - 1) + 1 + op[0], (W - 1) * sw + dw * (kw - 1) + 1 + op[1]]
        w = self.weight.reshape(g, C // g, self.out_channels // g, kh, kw)
        y = x.new_zeros(B, self.out_channels, *full)
        for i in range(H):
            for j in range(W):
                piece = torch.einsum("bgc,gcoxy->bgoxy", x[:, :, i, j].reshape(B, g, C // g), w)
                where = (torch.arange(B)[:, None, None, None], torch.arange(self.out_channels)[None, :, None, None],
                         (i * sh + torch.arange(kh) * dh)[None, None, :, None],
                         (j * sw + torch.arange(kw) * dw)[None, None, None, :])
                y = y.index_put(where, piece.reshape(B, self.out_channels, kh, kw), accumulate=True)
        (ph, pw) = self.padding
        y = y[:, :, ph:full[0] - ph, pw:full[1] - pw]
        if self.bias is not None:
            y = y + self.bias.view(-1, 1, 1)
        return y if batched else y.squeeze(0)


class InitLikeConv(CT2):
    """fan_in from C_in/groups (nn.Conv2d's rule) instead of the weight's second dimension."""

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in_channels // self.groups * math.prod(self.kernel_size))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)


class Detached(CT1):
    def forward(self, input, output_size=None):
        return super().forward(input, output_size).detach()


class NoOutputSizeArgument(CT1):
    def forward(self, input):
        return super().forward(input)


class InheritsTorch(nn.ConvTranspose2d):
    pass


SUITES = {"ConvTranspose1d": CT1, "ConvTranspose2d": CT2, "ConvTranspose3d": CT3}


@pytest.mark.parametrize("name", SUITES)
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, SUITES[name], 6, public_notes=False)


@pytest.mark.parametrize("route", [scatter, upsample_conv])
def test_both_routes_of_the_helpers_are_right_with_no_knob_turned(route):
    """Without this, a wrong layer below could fail for the helper's fault, not its own."""
    assert grade("ConvTranspose2d", wrong(CT2, "KnobOff", route)).passed


def test_the_worked_example_of_the_book():
    """Input [[2, 4], [0, 1]], kernel [[3, 1], [1, 5]] -> [[6, 14, 4], [2, 17, 21], [0, 1, 5]]."""
    layer = CT2(1, 1, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[[3.0, 1.0], [1.0, 5.0]]]]))
    got = layer(torch.tensor([[[2.0, 4.0], [0.0, 1.0]]]))
    assert torch.equal(got, torch.tensor([[[6.0, 14.0, 4.0], [2.0, 17.0, 21.0], [0.0, 1.0, 5.0]]]))


VALUES = "values differ"  # the failure is in the numbers, not only the shape

WRONG = [
    # (layer name, wrong class, the part that must fail, words one failure line must all contain)
    ("ConvTranspose2d", wrong(CT2, "IgnoresOutputPadding", ignore_output_padding=True), "shape",
     ("output_padding=1", "output_padding is ignored")),
    ("ConvTranspose2d", wrong(CT2, "OutputPaddingZeros", output_padding_zeros=True), "forward",
     (VALUES, "padding=1, output_padding=1", "output_padding appends zeros")),
    ("ConvTranspose1d", wrong(CT1, "OutputPaddingZeros", output_padding_zeros=True), "forward",
     (VALUES, "output_padding appends zeros")),
    ("ConvTranspose2d", wrong(CT2, "UnflippedUpsampleConv", upsample_conv, flip=False), "forward",
     (VALUES, "the kernel is not flipped")),
    ("ConvTranspose1d", wrong(CT1, "UnflippedUpsampleConv", upsample_conv, flip=False), "forward",
     (VALUES, "the kernel is not flipped")),
    ("ConvTranspose3d", wrong(CT3, "UnflippedUpsampleConv", upsample_conv, flip=False), "forward",
     (VALUES, "the kernel is not flipped")),
    ("ConvTranspose2d", wrong(CT2, "FlippedScatter", flip=True), "forward", (VALUES, "the kernel is not flipped")),
    ("ConvTranspose2d", WeightOutIn, "state", ("'weight' has shape (4, 3, 3, 3), expected (3, 4, 3, 3)",)),
    ("ConvTranspose2d", WeightOutIn, "forward", (VALUES, "ConvTranspose2d(4, 4, 3)", "(C_out, C_in/groups, *k)")),
    ("ConvTranspose2d", wrong(CT2, "IgnoresBias", bias=False), "forward", (VALUES, "the bias is left out")),
    ("ConvTranspose2d", wrong(CT2, "IgnoresBias", bias=False), "backward", ("no gradient of 'bias'",)),
    ("ConvTranspose2d", BiasAlways, "state", ("bias=False", "unexpected parameters/buffers ['bias']")),
    ("ConvTranspose2d", wrong(CT2, "CropsOneSide", crop_before=True), "forward",
     (VALUES, "padding=1", "cropped from one side")),
    ("ConvTranspose2d", wrong(CT2, "IgnoresDilation", ignore_dilation=True), "shape", ("dilation is ignored",)),
    ("ConvTranspose2d", wrong(CT2, "IgnoresStride", ignore_stride=True), "shape", ("stride is ignored",)),
    ("ConvTranspose1d", wrong(CT1, "IgnoresOutputSize", ignore_output_size=True), "shape",
     ("ConvTranspose1d(2, 3, 3, stride=2, padding=1)", "output shape (2, 3, 11), expected (2, 3, 12)")),
    ("ConvTranspose1d", NoOutputSizeArgument, "shape", ("unexpected keyword argument 'output_size'",)),
    ("ConvTranspose2d", CallsFConvTranspose2d, "rules", ("calls torch.nn.functional.conv_transpose2d",)),
    ("ConvTranspose2d", wrong(CT2, "UpsampleThenFConv2d", upsample_conv, use_torch_conv=True), "rules",
     ("calls torch.nn.functional.conv2d",)),
    ("ConvTranspose2d", HiddenNnConvTranspose2d, "rules", ("runs a torch.nn.modules.conv.ConvTranspose2d module",)),
    ("ConvTranspose2d", ScatterLoop, "rules", ("not vectorized", "input size 6x6 vs 12x12")),
    ("ConvTranspose2d", InitLikeConv, "state", ("'weight' is not initialised like torch's",)),
    ("ConvTranspose2d", wrong(CT2, "IndexOnCPU", index_device=False), "rules", ("device 'meta'",)),
    ("ConvTranspose1d", Detached, "backward", ("does not require grad",)),
    ("ConvTranspose2d", InheritsTorch, "rules", ("inherits from torch's ConvTranspose2d",)),
]


@pytest.mark.parametrize("name, layer, part, words", WRONG,
                         ids=[f"{w[0]}-{w[1].__name__}-{w[2]}" for w in WRONG])
def test_a_wrong_layer_fails_naming_the_cause(name, layer, part, words):
    assert_fails_naming(grade(name, layer), part, *words)


@pytest.mark.parametrize("layer", [wrong(CT2, "UnflippedUpsampleConv", upsample_conv, flip=False),
                                   wrong(CT2, "LayoutSwapped", layout_swapped=True)])
def test_the_hidden_suite_catches_it_too(layer):
    """Are the transposed-convolution mistakes caught by fresh configurations too?"""
    assert all(not grade("ConvTranspose2d", layer, suite="hidden", seed=s).passed for s in range(4))
