"""The Flatten and Unflatten graders: the references pass, and each typical mistake fails naming its cause."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autograder import grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

S = solution_classes("flatten")
Flatten, Unflatten = S["Flatten"], S["Unflatten"]


@pytest.mark.parametrize("name", ["Flatten", "Unflatten"])
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, S[name], 6)


def _merged(x, start, end):
    return x.reshape(*x.shape[:start], math.prod(x.shape[start:end + 1]), *x.shape[end + 1:])


class StartsAtZero(Flatten):
    """The batch dimension is merged too: Flatten(start_dim=0) by default."""

    def __init__(self, start_dim=0, end_dim=-1):
        super().__init__(start_dim, end_dim)


class IgnoresEnd(Flatten):
    def forward(self, input):
        return _merged(input, self.start_dim % input.dim(), input.dim() - 1)


class EndExclusive(Flatten):
    """end_dim read like a Python slice end."""

    def forward(self, input):
        start, end = self.start_dim % input.dim(), self.end_dim % input.dim()
        return _merged(input, start, end - 1) if end > start else input.reshape(input.shape)


class BatchOnly(Flatten):
    """x.view(x.size(0), -1), the usual one-liner: right for the defaults only."""

    def forward(self, input):
        return input.reshape(input.shape[0], -1)


class NegativeDimsRaw(Flatten):
    """Negative dims used as slice bounds without adding x.dim(): end_dim=-1 keeps everything."""

    def forward(self, input):
        shape = input.shape
        merged = math.prod(shape[self.start_dim:self.end_dim + 1])
        return input.reshape(*shape[:self.start_dim], merged, *shape[self.end_dim + 1:])


class UsesView(Flatten):
    """view raises on a transposed input, where torch's Flatten copies."""

    def forward(self, input):
        start, end = self.start_dim % input.dim(), self.end_dim % input.dim()
        return input.view(*input.shape[:start], -1, *input.shape[end + 1:])


class AlwaysCopies(Flatten):
    """contiguous() then view: right values, but a copy even where torch returns a view."""

    def forward(self, input):
        start, end = self.start_dim % input.dim(), self.end_dim % input.dim()
        return input.contiguous().view(*input.shape[:start], -1, *input.shape[end + 1:])


class ClonesFlatten(Flatten):
    def forward(self, input):
        return super().forward(input).clone()


class TorchFlatten(Flatten):
    def forward(self, input):
        return torch.flatten(input, self.start_dim, self.end_dim)


class TensorFlatten(Flatten):
    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)


class ModuleInside(Flatten):
    def forward(self, input):
        return nn.Flatten(self.start_dim, self.end_dim)(input)


class InheritsTorch(nn.Flatten):
    pass


class ArgsNotKept(nn.Module):
    """Right outputs, arguments stored under other names."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.dims = (start_dim, end_dim)

    def forward(self, input):
        start, end = (d % input.dim() for d in self.dims)
        return _merged(input, start, end)


class SecondDimOnly(Unflatten):
    """dim ignored: always splits dimension 1."""

    def forward(self, input):
        return input.reshape(*input.shape[:1], *self.unflattened_size, *input.shape[2:])


class LastDimOnly(Unflatten):
    def forward(self, input):
        return input.reshape(*input.shape[:-1], *self.unflattened_size)


class UnflattenCopies(Unflatten):
    def forward(self, input):
        return super().forward(input.contiguous())


class TorchUnflatten(Unflatten):
    def forward(self, input):
        return torch.unflatten(input, self.dim, self.unflattened_size)


class TensorUnflatten(Unflatten):
    def forward(self, input):
        return input.unflatten(self.dim, self.unflattened_size)


class NoMinusOne(Unflatten):
    """Computes the new shape by hand and forgets that one size may be -1."""

    def forward(self, input):
        dim = self.dim % input.dim()
        sizes = list(self.unflattened_size)
        assert -1 not in sizes, "sizes must be positive"
        return input.view(*input.shape[:dim], *sizes, *input.shape[dim + 1:])


class TupleSize(Unflatten):
    """Stores unflattened_size as a tuple: fine, the grader compares the sizes, not the container."""

    def __init__(self, dim, unflattened_size):
        super().__init__(dim, tuple(unflattened_size))


WRONG = [
    # (layer, graded name, the part that must fail, words the failure must contain)
    (StartsAtZero, "Flatten", "shape", "the flattening starts at dim 0"),
    (StartsAtZero, "Flatten", "state", "attribute 'start_dim' is 0, expected 1"),
    (IgnoresEnd, "Flatten", "shape", "end_dim is ignored"),
    (EndExclusive, "Flatten", "shape", "end_dim is treated as exclusive"),
    (BatchOnly, "Flatten", "shape", "start_dim and end_dim are ignored"),
    (NegativeDimsRaw, "Flatten", "shape", "raised RuntimeError"),
    (NegativeDimsRaw, "Flatten", "shape", "a negative dim is used as a slice bound"),
    (UsesView, "Flatten", "forward", "view size is not compatible with input tensor's size and stride"),
    (AlwaysCopies, "Flatten", "forward", "returns a copy where torch's Flatten returns a view"),
    (ClonesFlatten, "Flatten", "forward", "returns a copy where torch's Flatten returns a view"),
    (TorchFlatten, "Flatten", "rules", "calls torch.flatten"),
    (TensorFlatten, "Flatten", "rules", "calls torch.Tensor.flatten"),
    (ModuleInside, "Flatten", "rules", "runs a torch.nn.modules.flatten.Flatten module"),
    (InheritsTorch, "Flatten", "rules", "inherits from torch's Flatten"),
    (ArgsNotKept, "Flatten", "state", "keeps no attribute 'start_dim'"),
    (SecondDimOnly, "Unflatten", "shape", "dim is ignored: dimension 1 is unflattened"),
    (LastDimOnly, "Unflatten", "shape", "dim is ignored: the last dimension is unflattened"),
    (UnflattenCopies, "Unflatten", "forward", "returns a copy where torch's Unflatten returns a view"),
    (TorchUnflatten, "Unflatten", "rules", "calls torch.unflatten"),
    (TensorUnflatten, "Unflatten", "rules", "calls torch.Tensor.unflatten"),
    (NoMinusOne, "Unflatten", "shape", "raised AssertionError: sizes must be positive"),
]


@pytest.mark.parametrize("layer, name, part, cause", WRONG,
                         ids=[f"{w[0].__name__}-{w[2]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_layer_fails_naming_the_cause(layer, name, part, cause):
    assert_fails_naming(grade(name, layer), part, cause)


@pytest.mark.parametrize("layer, name", [(IgnoresEnd, "Flatten"), (UsesView, "Flatten"),
                                         (ClonesFlatten, "Flatten"), (SecondDimOnly, "Unflatten")])
def test_the_hidden_suite_catches_them_too(layer, name):
    """Do fresh shapes and dims catch an ignored end_dim, a view on a transposed input, a copy, a fixed dim?"""
    assert all(not grade(name, layer, suite="hidden", seed=s).passed for s in range(4))


def test_a_tuple_for_a_list_is_accepted():
    """Storing unflattened_size in another container is not a mistake."""
    assert grade("Unflatten", TupleSize).passed


def test_the_reference_returns_views_like_torch():
    """The behaviour the view judge demands, shown on the reference: a view of a contiguous input,
    a view of a transposed input whose merged dims are still adjacent in memory, a copy otherwise."""
    x = torch.rand(2, 3, 4)
    assert Flatten()(x)._base is x
    z = torch.rand(2, 3, 4, 5)
    t = z.transpose(0, 1)  # (3, 2, 4, 5), strides (20, 60, 5, 1): not contiguous
    assert Flatten(2)(t).data_ptr() == z.data_ptr()  # dims 2, 3 are still adjacent in memory: a view
    assert Flatten(1, 2)(t).data_ptr() != z.data_ptr()  # dims 1, 2 (strides 60, 5) are not: a copy
    torch.testing.assert_close(Flatten(1, 2)(t), t.reshape(3, 8, 5))
    y = torch.arange(24.0).reshape(4, 6).T  # (6, 4), not contiguous
    out = Unflatten(0, (2, -1))(y)  # splitting a dim is a view whatever the strides
    assert out.shape == (2, 3, 4) and out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(out, y.reshape(2, 3, 4))
