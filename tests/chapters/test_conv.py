"""The Conv1d/2d/3d graders: the reference passes, and each typical mistake fails naming its cause.

Most wrong layers below are the reference with ONE thing done wrong, written with the same tensor
operations a student would use (pad, unfold, einsum), so that only that one thing can fail.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

SOLUTIONS = solution_classes("conv")
Conv1d, Conv2d, Conv3d = SOLUTIONS["Conv1d"], SOLUTIONS["Conv2d"], SOLUTIONS["Conv3d"]


def knobbed(layer, input, *, flip=False, ignore_dilation=False, ignore_stride=False, ignore_groups=False,
            interleave_groups=False, pairs=None, zeros_only=False, bias=True, reverse_kernel_dims=False):
    """The layer's convolution with one knob turned: what a student's slightly wrong forward computes."""
    n = layer.dims
    batched = input.dim() == n + 2
    x = input if batched else input.unsqueeze(0)
    dilation = (1,) * n if ignore_dilation else layer.dilation
    stride = (1,) * n if ignore_stride else layer.stride
    if pairs is None:
        if layer.padding == "same":
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for d, k in zip(dilation, layer.kernel_size)]
        else:
            pairs = layer.padding_pairs()
    mode = "constant" if zeros_only or layer.padding_mode == "zeros" else layer.padding_mode
    x = F.pad(x, [p for pair in reversed(pairs) for p in pair], mode=mode)
    for i, (k, s, d) in enumerate(zip(layer.kernel_size, stride, dilation)):
        x = x.unfold(2 + i, d * (k - 1) + 1, s)[..., ::d]
    B, C, g, Co = x.shape[0], x.shape[1], layer.groups, layer.out_channels
    L_out = x.shape[2:2 + n]
    w = layer.weight.flip(list(range(2, n + 2))) if flip else layer.weight
    if reverse_kernel_dims:
        w = w.permute(0, 1, *range(n + 1, 1, -1))
    x = x.reshape(B, C, math.prod(L_out), -1)                        # (B, C_in, P, K)
    w = w.reshape(Co, C // g, -1)                                      # (C_out, C_in/g, K)
    if ignore_groups:  # broadcasts when C_in/g == 1 (depthwise): every output sums all input channels
        y = (x.unsqueeze(1) * w[None, :, :, None, :]).sum(dim=(2, 4))
    else:
        split = (Co // g, g) if interleave_groups else (g, Co // g)
        w = w.reshape(*split, C // g, -1)
        if interleave_groups:
            w = w.transpose(0, 1)
        y = torch.einsum("bgcpk,gock->bgop", x.reshape(B, g, C // g, *x.shape[2:]), w)
        if interleave_groups:
            y = y.transpose(1, 2)
    y = y.reshape(B, Co, *L_out)
    if bias and layer.bias is not None:
        y = y + layer.bias.view(-1, *[1] * n)
    return y if batched else y.squeeze(0)


def wrong(base, name, **knobs):
    """A subclass of `base` whose forward turns the given knobs."""
    return type(name, (base,), {"forward": lambda self, input: knobbed(self, input, **knobs)})


class KnobOff(Conv2d):
    """Sanity check of the test helper itself: no knob turned is the right answer."""

    def forward(self, input):
        return knobbed(self, input)


class PadsOneSide(Conv2d):
    """All the padding before the data: the right shape, shifted values."""

    def forward(self, input):
        return knobbed(self, input, pairs=[(b + a, 0) for b, a in self.padding_pairs()])


class PadsBeforeOnly(Conv2d):
    def forward(self, input):
        return knobbed(self, input, pairs=[(b, 0) for b, _ in self.padding_pairs()])


class SameExtraBefore(Conv1d):
    """'same' with an even kernel, its odd zero put before the data."""

    def forward(self, input):
        return knobbed(self, input, pairs=[(a, b) for b, a in self.padding_pairs()])


class BiasAlways(Conv2d):
    """bias=False ignored: a bias is created and added anyway."""

    def __init__(self, *args, bias=True, **kwargs):
        super().__init__(*args, bias=True, **kwargs)


class CallsFConv2d(Conv2d):
    def forward(self, input):
        x = F.pad(input, [p for pair in reversed(self.padding_pairs()) for p in pair])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class CallsAtenConvolution(Conv1d):
    def forward(self, input):
        x = F.pad(input, [p for pair in reversed(self.padding_pairs()) for p in pair])
        batched = x.dim() == 3
        x = x if batched else x.unsqueeze(0)
        y = torch.ops.aten.convolution(x, self.weight, self.bias, list(self.stride), [0], list(self.dilation),
                                       False, [0], self.groups)
        return y if batched else y.squeeze(0)


class HiddenNnConv2d(Conv2d):
    """An nn.Conv2d made inside forward, sharing our parameters: in no state_dict, exact values."""

    def forward(self, input):
        inner = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                          self.dilation, self.groups, self.bias is not None, self.padding_mode)
        inner.weight, inner.bias = self.weight, self.bias
        return inner(input)


class PixelLoop(Conv2d):
    """A Python loop over output pixels, each a dot product of one window with the kernels."""

    def forward(self, input):
        batched = input.dim() == 4
        x = input if batched else input.unsqueeze(0)
        x = F.pad(x, [p for pair in reversed(self.padding_pairs()) for p in pair],
                  mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        (kh, kw), (sh, sw), (dh, dw), g = self.kernel_size, self.stride, self.dilation, self.groups
        H_out = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
        W_out = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
        w = self.weight.reshape(g, self.out_channels // g, -1)
        rows = []
        for i in range(H_out):
            row = []
            for j in range(W_out):
                patch = x[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]
                patch = patch.reshape(x.shape[0], g, -1)                       # (B, g, C_in/g * kh * kw)
                row.append(torch.einsum("bgi,goi->bgo", patch, w).reshape(x.shape[0], -1))
            rows.append(torch.stack(row, dim=-1))
        y = torch.stack(rows, dim=-2)
        if self.bias is not None:
            y = y + self.bias.view(-1, 1, 1)
        return y if batched else y.squeeze(0)


class BatchLoop(Conv2d):
    def forward(self, input):
        if input.dim() == 3:
            return super().forward(input)
        return torch.stack([super(BatchLoop, self).forward(sample) for sample in input])


class InitIgnoresGroups(Conv2d):
    """fan_in counted with every input channel instead of those of one group."""

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)


class DefaultNormalInit(Conv2d):
    def reset_parameters(self):
        with torch.no_grad():
            nn.init.kaiming_normal_(self.weight)
            if self.bias is not None:
                self.bias.zero_()


class WeightIgnoresGroups(Conv2d):
    """A weight of (C_out, C_in, *k) whatever the groups."""

    def __init__(self, in_channels, out_channels, kernel_size, *args, groups=1, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, *args, groups=groups, **kwargs)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))


class ZerosOnCPU(Conv2d):
    """Adds a zero tensor made without device=: fine on the CPU, broken on a GPU."""

    def forward(self, input):
        return super().forward(input) + torch.zeros(self.out_channels, 1, 1)


class NoUnbatched(Conv2d):
    def forward(self, input):
        B, C, H, W = input.shape
        return super().forward(input)


class Detached(Conv3d):
    def forward(self, input):
        return super().forward(input).detach()


class InheritsTorch(nn.Conv2d):
    pass


SUITES = {"Conv1d": Conv1d, "Conv2d": Conv2d, "Conv3d": Conv3d}


@pytest.mark.parametrize("name", SUITES)
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, SUITES[name], 6, public_notes=False)


def test_the_knobbed_helper_with_no_knob_is_right():
    """Without this, a wrong layer below could fail for the helper's fault, not its own."""
    assert grade("Conv2d", KnobOff).passed


VALUES = "values differ"  # the failure is in the numbers, not only the shape

WRONG = [
    # (layer name, wrong class, the part that must fail, words one failure line must all contain)
    ("Conv2d", wrong(Conv2d, "IgnoresDilation", ignore_dilation=True), "forward",
     (VALUES, "padding='same', dilation=2)", "dilation is ignored")),
    ("Conv2d", wrong(Conv2d, "IgnoresDilation", ignore_dilation=True), "shape", ("dilation is ignored",)),
    ("Conv1d", wrong(Conv1d, "IgnoresDilation", ignore_dilation=True), "forward", (VALUES, "dilation is ignored")),
    ("Conv3d", wrong(Conv3d, "IgnoresDilation", ignore_dilation=True), "forward", (VALUES, "dilation is ignored")),
    ("Conv2d", wrong(Conv2d, "IgnoresGroups", ignore_groups=True), "forward",
     (VALUES, "groups=4", "groups is ignored")),
    ("Conv3d", wrong(Conv3d, "IgnoresGroups", ignore_groups=True), "forward", (VALUES, "groups is ignored")),
    ("Conv2d", wrong(Conv2d, "GroupsInterleaved", interleave_groups=True), "forward",
     (VALUES, "groups take their output channels interleaved")),
    ("Conv2d", wrong(Conv2d, "TrueConvolution", flip=True), "forward", (VALUES, "the kernel is flipped")),
    ("Conv1d", wrong(Conv1d, "TrueConvolution", flip=True), "forward", (VALUES, "the kernel is flipped")),
    ("Conv3d", wrong(Conv3d, "TrueConvolution", flip=True), "forward", (VALUES, "the kernel is flipped")),
    ("Conv2d", PadsOneSide, "forward", (VALUES, "padding=1", "all the padding is put on one side")),
    ("Conv2d", PadsBeforeOnly, "shape", ("padding=1", "padding is added on one side only")),
    ("Conv1d", SameExtraBefore, "forward", (VALUES, "Conv1d(2, 3, 4, padding='same')", "odd extra zero before")),
    ("Conv2d", wrong(Conv2d, "IgnoresBias", bias=False), "forward", (VALUES, "the bias is left out")),
    ("Conv2d", wrong(Conv2d, "IgnoresBias", bias=False), "backward", ("no gradient of 'bias'",)),
    ("Conv2d", BiasAlways, "state", ("bias=False", "unexpected parameters/buffers ['bias']")),
    ("Conv2d", wrong(Conv2d, "IgnoresStride", ignore_stride=True), "shape", ("stride is ignored",)),
    ("Conv2d", wrong(Conv2d, "PadsZerosOnly", zeros_only=True), "forward",
     (VALUES, "padding_mode='reflect'", "padding_mode is ignored")),
    ("Conv2d", wrong(Conv2d, "KernelTransposed", reverse_kernel_dims=True), "forward",
     (VALUES, "spatial dimensions are reversed")),
    ("Conv2d", CallsFConv2d, "rules", ("calls torch.nn.functional.conv2d",)),
    ("Conv1d", CallsAtenConvolution, "rules", ("calls aten.convolution",)),
    ("Conv2d", HiddenNnConv2d, "rules", ("runs a torch.nn.modules.conv.Conv2d module",)),
    ("Conv2d", PixelLoop, "rules", ("not vectorized", "input size 8x8 vs 16x16")),
    ("Conv2d", BatchLoop, "rules", ("not vectorized", "batch size 2 vs 16")),
    ("Conv2d", InitIgnoresGroups, "state", ("groups=8", "'weight' is not initialised like torch's")),
    ("Conv2d", DefaultNormalInit, "state", ("'weight' is not initialised like torch's",)),
    ("Conv2d", WeightIgnoresGroups, "state", ("'weight' has shape (6, 4, 3, 3), expected (6, 2, 3, 3)",)),
    ("Conv2d", ZerosOnCPU, "rules", ("device 'meta'",)),
    ("Conv2d", NoUnbatched, "shape", ("forward raised ValueError",)),
    ("Conv3d", Detached, "backward", ("does not require grad",)),
    ("Conv2d", InheritsTorch, "rules", ("inherits from torch's Conv2d",)),
]


@pytest.mark.parametrize("name, layer, part, words", WRONG,
                         ids=[f"{w[0]}-{w[1].__name__}-{w[2]}" for w in WRONG])
def test_a_wrong_layer_fails_naming_the_cause(name, layer, part, words):
    assert_fails_naming(grade(name, layer), part, *words)


@pytest.mark.parametrize("layer", [wrong(Conv2d, "TrueConvolution", flip=True),
                                   wrong(Conv2d, "IgnoresDilation", ignore_dilation=True), PadsOneSide])
def test_the_hidden_suite_catches_it_too(layer):
    """Are the classic mistakes caught by fresh configurations, not only the public ones?"""
    assert sum(not grade("Conv2d", layer, suite="hidden", seed=s).passed for s in range(4)) >= 3
