"""Flatten and Unflatten: shape layers that move no data when they do not have to.

Besides values and shapes, the specs judge memory (`judges.aliasing`): torch returns a view of
the input whenever the dims it merges or splits allow one (always for Unflatten; for Flatten when
the merged dims are laid out one after the other in memory, which holds for any contiguous input
and for some non-contiguous ones), so the student's layer must too; and on a non-contiguous input
where no view exists (a transposed image batch), the result must still be right (`.view` raises
there, `.reshape` copies).

"torch's own implementation": `torch.flatten` / `Tensor.flatten` / `ravel` for Flatten,
`torch.unflatten` / `Tensor.unflatten` for Unflatten, their aten ops and modules. `reshape` and
`view` are the building blocks and stay allowed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
from torch import nn

from ..judges import aliasing, attributes
from ..spec import Case, Inputs, Maker, Mistake, Scale, Spec, call, randn, register
from .activations import forbidden_names


def permuted(shape: tuple[int, ...], order: tuple[int, ...]) -> Callable[[Maker], Inputs]:
    """A non-contiguous input: a contiguous tensor of `shape`, then `permute(order)`."""
    return lambda make: call(make.randn(*shape).permute(*order))


def _dims(ref: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    return ref.start_dim % x.dim(), ref.end_dim % x.dim()


def _end_exclusive(ref: nn.Module, i: Inputs) -> torch.Tensor:
    x = i.args[0]
    start, end = _dims(ref, x)
    if end - 1 < start:
        raise ValueError("does not apply")
    return torch.flatten(x, start, end - 1)


def _raw_negative(ref: nn.Module, i: Inputs) -> torch.Tensor:
    """Negative dims used as slice bounds as they are: shape[end_dim + 1:] with end_dim = -1 is the
    whole shape."""
    x, start, end = i.args[0], ref.start_dim, ref.end_dim
    if start >= 0 and end >= 0:
        raise ValueError("does not apply")
    shape = x.shape
    return x.reshape(*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])


FLATTEN_MISTAKES = (
    Mistake("the flattening starts at dim 0; torch's Flatten keeps the first (batch) dimension: start_dim=1 "
            "by default", lambda ref, i: torch.flatten(i.args[0], 0, ref.end_dim)),
    Mistake("end_dim is ignored: everything from start_dim to the last dimension is merged",
            lambda ref, i: torch.flatten(i.args[0], ref.start_dim, -1)),
    Mistake("start_dim and end_dim are ignored: everything after the first dimension is merged "
            "(x.view(x.size(0), -1))", lambda ref, i: torch.flatten(i.args[0], 1, -1)),
    Mistake("end_dim is treated as exclusive, like a Python slice end; torch merges dims start_dim to "
            "end_dim inclusive", _end_exclusive),
    Mistake("a negative dim is used as a slice bound as it is (shape[end_dim + 1:] with end_dim = -1 is the "
            "whole shape): count it from the end first, e.g. end_dim % x.dim()", _raw_negative),
)


def _flatten_hidden(rng: random.Random):
    """Fresh shapes and dims, each dim given in its positive or negative form: a contiguous input
    merged up to a dim before the last (so an ignored end_dim shows), then a transposed input
    whose merged dims are swapped in memory (no view exists: torch copies, `.view` raises)."""
    ndim = rng.randint(3, 5)
    shape = tuple(rng.randint(2, 4) for _ in range(ndim))
    form = lambda d: d - ndim if rng.random() < 0.5 else d  # noqa: E731
    start = rng.randrange(ndim - 1)
    end = rng.randrange(start, ndim - 1)
    yield Case("hidden_contiguous", (form(start), form(end)), {}, randn(*shape))
    start = rng.randrange(ndim - 1)
    end = rng.randrange(start + 1, ndim)
    order = list(range(ndim))
    order[start], order[end] = order[end], order[start]
    yield Case("hidden_transposed", (), {"start_dim": form(start), "end_dim": form(end)},
               permuted(shape, tuple(order)))


register(Spec(
    name="Flatten",
    chapter="flatten",
    reference=nn.Flatten,
    cases=(
        Case("default", (), {}, randn(3, 3, 3, 3)),  # the book's example: (3, 3, 3, 3) -> (3, 27)
        Case("start_dim_2", (2,), {}, randn(2, 3, 4, 5)),
        Case("end_dim_2", (), {"start_dim": 1, "end_dim": 2}, randn(2, 3, 4, 5)),
        Case("all_dims", (), {"start_dim": 0}, randn(2, 3, 4)),
        Case("negative_dims", (-3, -2), {}, randn(2, 3, 4, 5)),
        Case("start_equals_end", (1, 1), {}, randn(2, 3, 4)),
        Case("two_dims", (1,), {}, randn(4, 6)),  # merging one dim: nothing to do
        # a transposed batch: no view exists, torch copies (and .view raises)
        Case("not_contiguous", (1, -1), {}, permuted((2, 3, 4, 5), (0, 2, 1, 3))),
        # not contiguous, yet the merged dims (2, 3) are adjacent in memory: torch returns a view
        Case("not_contiguous_view", (), {"start_dim": 2}, permuted((2, 3, 4, 5), (1, 0, 2, 3))),
    ),
    hidden=_flatten_hidden,
    scales=(Scale("batch 4 vs 256", Case("scale"), randn(4, 3, 4, 4), randn(256, 3, 4, 4)),),
    forbidden_calls=forbidden_names("torch.flatten", "T.flatten", "torch.ravel", "T.ravel", aten=("flatten", "ravel")),
    forbidden_modules=(nn.Flatten, nn.Unflatten),
    mistakes=FLATTEN_MISTAKES,
    judges=(aliasing(), attributes("start_dim", "end_dim")),
    bench=Case("bench", (), {}, randn(256, 64, 8, 8)),
))


UNFLATTEN_MISTAKES = (
    Mistake("dim is ignored: dimension 1 is unflattened", lambda ref, i: i.args[0].unflatten(1, ref.unflattened_size)),
    Mistake("dim is ignored: the last dimension is unflattened",
            lambda ref, i: i.args[0].unflatten(-1, ref.unflattened_size)),
    Mistake("dim is ignored: dimension 0 is unflattened", lambda ref, i: i.args[0].unflatten(0, ref.unflattened_size)),
)


def _unflatten_hidden(rng: random.Random):
    """A fresh shape; the split dim given positive or negative; a -1 entry; a list or a tuple."""
    ndim = rng.randint(1, 4)
    sizes = [rng.randint(1, 4) for _ in range(rng.randint(2, 3))]
    shape = [rng.randint(1, 5) for _ in range(ndim)]
    dim = rng.randrange(ndim)
    shape[dim] = 1
    for s in sizes:
        shape[dim] *= s
    if rng.random() < 0.5:
        sizes[rng.randrange(len(sizes))] = -1
    given = dim - ndim if rng.random() < 0.5 else dim
    yield Case("hidden", (given, tuple(sizes) if rng.random() < 0.5 else sizes), {}, randn(*shape))
    yield Case("hidden_transposed", (0, (2, -1)), {}, permuted((3, 4), (1, 0)))


register(Spec(
    name="Unflatten",
    chapter="flatten",
    reference=nn.Unflatten,
    cases=(
        Case("book", (1, (3, 3, 3)), {}, randn(3, 27)),  # the book's example: (3, 27) -> (3, 3, 3, 3)
        Case("dim_0", (0, (2, 3)), {}, randn(6, 6, 2)),
        Case("negative_dim", (), {"dim": -1, "unflattened_size": (2, 3)}, randn(2, 6, 6)),
        Case("minus_one", (1, (3, -1)), {}, randn(2, 6, 5)),
        Case("list", (-2, [2, 3]), {}, randn(4, 6, 6)),
        Case("torch_size", (2, torch.Size([3, 2])), {}, randn(2, 6, 6)),
        Case("not_contiguous", (1, (2, 3)), {}, permuted((6, 4), (1, 0))),  # splitting a dim is always a view
    ),
    hidden=_unflatten_hidden,
    scales=(Scale("batch 4 vs 256", Case("scale", (1, (3, 4, 4))), randn(4, 48), randn(256, 48)),),
    forbidden_calls=forbidden_names("torch.unflatten", "T.unflatten", aten=("unflatten",)),
    forbidden_modules=(nn.Flatten, nn.Unflatten),
    mistakes=UNFLATTEN_MISTAKES,
    judges=(aliasing(), attributes("dim", "unflattened_size")),
    bench=Case("bench", (1, (64, 8, 8)), {}, randn(256, 4096)),
))
