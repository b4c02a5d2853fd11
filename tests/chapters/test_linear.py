"""The Linear grader: the reference passes, and each typical mistake fails naming its cause."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

Solution = solution_classes("linear")["Linear"]


class Transposed(Solution):
    """x @ W instead of x @ W.T: only runs when in == out."""

    def forward(self, input):
        return input @ self.weight + self.bias


class BiasIgnored(Solution):
    def forward(self, input):
        return input @ self.weight.T


class BiasAlways(Solution):
    """bias=False ignored: a bias is created and added anyway."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__(in_features, out_features, True, device, dtype)


class CallsFLinear(Solution):
    def forward(self, input):
        return F.linear(input, self.weight, self.bias)


class HiddenTorchLinear(Solution):
    """An nn.Linear made inside forward, sharing our parameters: in no state_dict, exact values."""

    def forward(self, input):
        inner = nn.Linear(1, 1)
        inner.weight, inner.bias = self.weight, self.bias
        return inner(input)


class RowLoop(Solution):
    def forward(self, input):
        rows = input.reshape(-1, self.in_features)
        out = torch.stack([row @ self.weight.T for row in rows])
        out = out + self.bias if self.bias is not None else out
        return out.reshape(*input.shape[:-1], self.out_features)


class WeightInOut(nn.Module):
    """Stores the weight as (in, out) and computes x @ W: right values, wrong layout."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, input):
        return input @ self.weight + (self.bias if self.bias is not None else 0)


class AlwaysEqual(torch.Tensor):
    """A tensor whose comparisons always say "equal"."""

    def __eq__(self, other):
        return torch.ones_like(torch.as_tensor(other), dtype=torch.bool)

    def allclose(self, *args, **kwargs):
        return True

    def equal(self, *args, **kwargs):
        return True


class ReturnsAlwaysEqual(Solution):
    def forward(self, input):
        return torch.zeros(*input.shape[:-1], self.out_features, dtype=input.dtype).as_subclass(AlwaysEqual)


class NaNs(Solution):
    def forward(self, input):
        return super().forward(input) * float("nan")


class NormalInit(Solution):
    def reset_parameters(self):
        with torch.no_grad():
            self.weight.normal_()
            if self.bias is not None:
                self.bias.zero_()


class ZerosOnCPU(Solution):
    """Adds a zero tensor made without device=: fine on the CPU, broken on a GPU."""

    def forward(self, input):
        return super().forward(input) + torch.zeros(self.out_features)


class WeightAsBuffer(Solution):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        w = self.weight.detach()
        del self.weight
        self.register_buffer("weight", w)


class Detached(Solution):
    def forward(self, input):
        return super().forward(input).detach()


class InheritsTorch(nn.Linear):
    pass


class OneElementOutput(Solution):
    """A one-element output "matches" anything under torch.allclose's broadcasting."""

    def forward(self, input):
        return super().forward(input).mean().reshape(1)


def test_the_reference_passes_the_public_and_hidden_suites():
    assert_passes("Linear", Solution, 5)


WRONG = [
    # (layer, the part that must fail, words the failure must contain)
    (Transposed, "forward", "the weight is used untransposed"),
    (BiasIgnored, "forward", "the bias is left out"),
    (BiasIgnored, "backward", "no gradient of 'bias'"),
    (BiasAlways, "state", "unexpected parameters/buffers ['bias']"),
    (CallsFLinear, "rules", "calls torch.nn.functional.linear"),
    (HiddenTorchLinear, "rules", "runs a torch.nn.modules.linear.Linear module"),
    (RowLoop, "rules", "not vectorized"),
    (WeightInOut, "state", "'weight' has shape (5, 3), expected (3, 5)"),
    (ReturnsAlwaysEqual, "shape", "expected exactly a torch.Tensor"),
    (NaNs, "forward", "is NaN"),
    (NormalInit, "state", "'weight' is not initialised like torch's"),
    (ZerosOnCPU, "rules", "device 'meta'"),
    (WeightAsBuffer, "state", "'weight' is not an nn.Parameter"),
    (Detached, "backward", "does not require grad"),
    (InheritsTorch, "rules", "inherits from torch's Linear"),
    (OneElementOutput, "shape", "output shape (1,), expected (10, 3)"),
]


@pytest.mark.parametrize("layer, part, cause", WRONG, ids=[f"{w[0].__name__}-{w[1]}" for w in WRONG])
def test_a_wrong_layer_fails_naming_the_cause(layer, part, cause):
    assert_fails_naming(grade("Linear", layer), part, cause)


def test_the_untransposed_weight_is_caught_by_the_hidden_suite_too():
    """Is x @ W caught with fresh sizes, including in == out?"""
    assert all(not grade("Linear", Transposed, suite="hidden", seed=s).passed for s in range(3))
