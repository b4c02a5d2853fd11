"""Linear: y = x W^T + b over any leading dimensions."""

from __future__ import annotations

import random

import torch
from torch import nn

from ..spec import Case, Mistake, Scale, Spec, call, randn, register


def _bias(layer: nn.Module) -> torch.Tensor | float:
    return layer.bias if layer.bias is not None else 0.0


MISTAKES = (
    Mistake("the weight is used untransposed (x @ W instead of x @ W.T)",
            lambda ref, i: i.args[0] @ ref.weight + _bias(ref)),
    Mistake("the bias is left out", lambda ref, i: i.args[0] @ ref.weight.T),
    Mistake("the bias is subtracted", lambda ref, i: i.args[0] @ ref.weight.T - _bias(ref)),
)


def _hidden(rng: random.Random):
    """Fresh sizes at every grading: no bias, in == out, 3-d input, no batch dimension."""
    size = lambda: rng.randint(2, 12)  # noqa: E731
    i, o, s = size(), size(), size()
    yield Case("hidden_no_bias", (i, o), {"bias": False}, randn(rng.randint(1, 9), i))
    yield Case("hidden_square", (s, s), {}, randn(rng.randint(1, 9), s))
    yield Case("hidden_3d_input", (o, i), {}, randn(rng.randint(1, 4), rng.randint(1, 5), o))
    yield Case("hidden_no_batch", (i, s), {}, randn(i))


register(Spec(
    name="Linear",
    chapter="linear",
    reference=nn.Linear,
    cases=(
        Case("default", (5, 3), {}, randn(10, 5)),  # the book's worked example: 10 samples of 5 features
        Case("no_bias", (4, 6), {"bias": False}, randn(8, 4)),
        Case("square", (4, 4), {}, randn(7, 4)),  # in == out: an untransposed weight still runs
        Case("leading_dims", (3, 2), {}, randn(2, 3, 4, 3)),
        Case("no_batch", (6, 2), {}, randn(6)),
    ),
    hidden=_hidden,
    # large enough that the mean, spread and range of torch's uniform(-1/sqrt(in), 1/sqrt(in)) show
    init_cases=(Case("init", (1000, 1000)), Case("init_narrow", (16, 1000))),
    scales=(
        Scale("batch size 4 vs 64", Case("scale", (8, 4)), randn(4, 8), randn(64, 8)),
        Scale("leading dims (4,) vs (3, 5, 4)", Case("scale", (8, 4)), randn(4, 8), randn(3, 5, 4, 8)),
    ),
    forbidden_calls=frozenset({"torch.nn.functional.linear", "aten.linear", "aten.linear.default",
                               "torch.nn.functional.bilinear"}),
    forbidden_modules=(nn.Linear, nn.Bilinear),
    mistakes=MISTAKES,
    bench=Case("bench", (1024, 1024), {}, lambda make: call(make.randn(256, 1024))),
))
