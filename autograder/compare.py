"""Comparing a student's outputs with torch's, with messages a student can act on.

Structure first (exact type, shape, dtype, device), values second, with explicit tolerances and
no broadcasting: `torch.allclose(torch.tensor(1.0), big_tensor)` is happy when every element is
close to 1, which is how a constant output could slip through a naive grader.
"""

from __future__ import annotations

from typing import Any

import torch


def _index(flat: int, shape: torch.Size) -> list[int]:
    idx = []
    for size in reversed(shape):
        idx.append(flat % size)
        flat //= size
    return idx[::-1]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def structure(got: Any, want: Any, what: str = "output") -> list[str]:
    """Problems with the type, shape, dtype and device of `got` (empty when it fits `want`)."""
    if want is None:
        return [] if got is None else [f"{what} should be None, got a {type(got).__name__}"]
    if isinstance(want, torch.Tensor):
        if type(got) is not torch.Tensor:
            kind = "None" if got is None else getattr(got, "type_name", None) or type(got).__qualname__
            return [f"{what} is a {kind}, expected exactly a torch.Tensor"]
        problems = []
        if got.shape != want.shape:
            problems.append(f"{what} shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        if got.dtype != want.dtype:
            problems.append(f"{what} dtype {got.dtype}, expected {want.dtype}")
        if got.device != want.device:
            problems.append(f"{what} on device {got.device}, expected {want.device}")
        return problems
    if isinstance(want, (tuple, list)):
        if not isinstance(got, type(want)):
            return [f"{what} is a {type(got).__name__}, expected a {type(want).__name__} of {len(want)}"]
        if len(got) != len(want):
            return [f"{what} has {len(got)} elements, expected {len(want)}"]
        return [p for i, (g, w) in enumerate(zip(got, want)) for p in structure(g, w, f"{what}[{i}]")]
    if got != want:
        return [f"{what} is {got!r}, expected {want!r}"]
    return []


def values(got: Any, want: Any, rtol: float, atol: float, what: str = "output") -> list[str]:
    """Problems with the values of `got`, assuming `structure(got, want)` found none."""
    if isinstance(want, torch.Tensor):
        problem = tensor_values(got, want, rtol, atol, what)
        return [problem] if problem else []
    if isinstance(want, (tuple, list)):
        return [p for i, (g, w) in enumerate(zip(got, want)) for p in values(g, w, rtol, atol, f"{what}[{i}]")]
    return []


def tensor_values(got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float, what: str = "output") -> str | None:
    """One sentence describing the worst disagreement, or None when all elements are close."""
    got, want = got.detach().cpu(), want.detach().cpu()
    if not (want.is_floating_point() or want.is_complex()):
        bad = got != want
        if bad.any():
            i = int(bad.flatten().nonzero()[0])
            return (f"{what} differs at {_index(i, want.shape)}: got {got.flatten()[i].item()}, "
                    f"expected {want.flatten()[i].item()} ({int(bad.sum())} of {want.numel()} elements differ)")
        return None
    g, w = got.double().flatten(), want.double().flatten()
    g_nan, w_nan = g.isnan(), w.isnan()
    if (g_nan & ~w_nan).any():
        i = int((g_nan & ~w_nan).nonzero()[0])
        return (f"{what} is NaN at {_index(i, want.shape)} where torch's is {_fmt(w[i].item())} "
                f"({int((g_nan & ~w_nan).sum())} NaN elements; NaN comes from inf - inf, 0 * inf or inf / inf: an exp "
                "or a division that overflows, maybe in a torch.where branch that is discarded)")
    if (~g_nan & w_nan).any():
        i = int((~g_nan & w_nan).nonzero()[0])
        return f"{what} is {_fmt(g[i].item())} at {_index(i, want.shape)} where torch's is NaN"
    g_inf, w_inf = g.isinf(), w.isinf()
    wrong_inf = (g_inf & (~w_inf | (g.sign() != w.sign()))) | (~g_inf & w_inf)
    if wrong_inf.any():
        i = int(wrong_inf.nonzero()[0])
        where = f"at {_index(i, want.shape)} where torch's is {_fmt(w[i].item())}"
        if g_inf[i]:
            return (f"{what} overflows to {_fmt(g[i].item())} {where} ({int(wrong_inf.sum())} such "
                    "elements: look for an exp, a square or a division that overflows"
                    + (", or the log of a number that underflowed to 0)" if g[i] < 0 else ")"))
        return f"{what} is {_fmt(g[i].item())} {where}"
    finite = ~(g_nan | g_inf)
    err = torch.zeros_like(g)
    err[finite] = (g[finite] - w[finite]).abs()
    excess = err - (atol + rtol * w.abs().nan_to_num(posinf=0.0))
    bad = excess > 0
    if bad.any():
        i = int(torch.where(bad, err, torch.full_like(err, -1.0)).argmax())
        return (f"{what} values differ: max abs error {_fmt(err[i].item())} at {_index(i, want.shape)} "
                f"(got {_fmt(g[i].item())}, expected {_fmt(w[i].item())}; {int(bad.sum())} of {w.numel()} "
                f"elements off; rtol={rtol:g}, atol={atol:g})")
    return None


def tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in an output (a tensor, or nested tuples and lists), in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in tensors(item)]
    return []
