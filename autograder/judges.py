"""Reusable judges: checks a spec adds beyond comparing outputs and gradients.

A judge takes the engine's `Context` and yields `report.Result`s (see `Spec.judges`):

    Spec(..., judges=(attributes("negative_slope", "inplace"), aliasing()))

- `attributes(...)`: the layer keeps its constructor arguments under torch's attribute names
  (code reads `layer.negative_slope`; `print(model)` shows it);
- `aliasing()`: the output shares memory with the input exactly when torch's does, and the input
  is modified exactly when torch's is: in-place layers (`inplace=True` writes into its input and
  returns it, `inplace=False` leaves it untouched) and views (`Flatten` returns a view of a
  contiguous input, `Identity` returns the input itself).

Like the engine, a judge never raises for a student's fault: a layer that cannot be built or run
is skipped here, since the engine's own checks already report it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .report import Result
from .spec import Inputs


def _sequence(value: Any) -> Any:
    """Tuples, lists and torch.Size compare equal when their items do."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _same(got: Any, want: Any) -> bool:
    try:
        return bool(_sequence(got) == _sequence(want))
    except Exception:  # noqa: BLE001 - e.g. a tensor attribute: not equal to a Python value
        return False


def _build(ctx: Any, case: Any) -> Any:
    """The student's layer for `case` on the grading device, or None if it cannot be built."""
    try:
        return ctx.build(case, seed=0)
    except Exception:  # noqa: BLE001 - reported by the engine's own checks
        return None


def attributes(*names: str) -> Callable[[Any], Iterator[Result]]:
    """The student's layer has attributes `names` equal to torch's, for every case (part "state")."""

    def judge(ctx: Any) -> Iterator[Result]:
        if "state" not in ctx.parts:
            return
        for case in ctx.cases:
            where = case.label(ctx.spec.name)
            stu = _build(ctx, case)
            if stu is None:
                continue
            ref = ctx.reference(case)
            try:
                found = stu.attrs(*names)
            except Exception:  # noqa: BLE001 - a fault, reported by the engine
                continue
            problems = []
            for name in names:
                want = getattr(ref, name)
                if not found[name].present:
                    problems.append(f"keeps no attribute {name!r}; torch's {ctx.spec.name} stores its argument "
                                    f"as self.{name} (= {want!r} here), and code reading layer.{name} relies on it")
                elif not _same(found[name].value, want):
                    problems.append(f"attribute {name!r} is {found[name].value!r}, expected {want!r}")
            yield Result("state", where, not problems, "; ".join(problems), check="attributes")

    return judge


def _tensors(inputs: Inputs) -> list[torch.Tensor]:
    return [a for a in inputs.args if isinstance(a, torch.Tensor)]


def _clone(inputs: Inputs) -> Inputs:
    """A copy of the inputs whose tensors keep their strides (a transposed input stays transposed)."""
    return Inputs(tuple(a.clone() if isinstance(a, torch.Tensor) else copy.copy(a) for a in inputs.args),
                  dict(inputs.kwargs))


def _shares(out: Any, x: torch.Tensor) -> bool:
    return isinstance(out, torch.Tensor) and out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()


def _changed(x: Any, before: torch.Tensor) -> bool:
    return not isinstance(x, torch.Tensor) or x.shape != before.shape or not torch.equal(x.nan_to_num(),
                                                                                       before.nan_to_num())


def aliasing(dtypes: Sequence[torch.dtype] = (torch.float64,)) -> Callable[[Any], Iterator[Result]]:
    """In-place and view semantics like torch's, for every case (part "forward").

    Both layers run on their own copy of the same inputs (plain tensors, no autograd); then for
    the first tensor argument: did the layer write into it, and does the output share its memory?
    """

    def judge(ctx: Any) -> Iterator[Result]:
        if "forward" not in ctx.parts:
            return
        name = ctx.spec.name
        for case in ctx.cases:
            where = case.label(name)
            if where in ctx.crashed:
                continue
            stu = _build(ctx, case)
            if stu is None:
                continue
            ref = ctx.reference(case)
            for dtype in dtypes:
                try:
                    stu.to(dtype=dtype)
                    stu.load_state_dict(copy.deepcopy(ref).to(dtype).state_dict())
                    inputs = ctx.make(case, dtype, "aliasing")
                except Exception:  # noqa: BLE001 - a state mismatch is reported by the engine
                    break
                original = _tensors(inputs)
                if not original:
                    break
                ref_in, stu_in = _clone(inputs), _clone(inputs)
                want = ref.to(dtype)(*ref_in.args, **dict(ref_in.kwargs))
                try:
                    got = stu.forward(stu_in, alias=True)
                except Exception:  # noqa: BLE001 - reported by the forward part
                    break
                ref_x = _tensors(ref_in)[0]
                torch_did = _changed(ref_x, original[0]), _shares(want, ref_x), want is ref_x
                yours = _changed(got.inputs_after[0], original[0]), bool(got.shares), bool(got.same)
                yield Result("forward", where, *_judge_alias(name, case, torch_did, yours),
                             tag=str(dtype).replace("torch.", ""), check="aliasing")

    return judge


def _judge_alias(name: str, case: Any, torch_did: tuple[bool, bool, bool],
                 yours: tuple[bool, bool, bool]) -> tuple[bool, str]:
    """Each of torch's layer and the student's: (changed its input, output shares the input's memory,
    output is the input itself)."""
    (ref_changed, ref_shares, ref_same), (stu_changed, stu_shares, stu_same) = torch_did, yours
    if ref_changed and ref_shares:  # torch wrote the result into the input and returned it
        if not stu_shares:
            return False, (f"with inplace=True torch's {name} writes the result into its input and returns that "
                           f"input; yours returns a new tensor" + ("" if stu_changed else
                                                                    " and leaves the input unchanged"))
        if not stu_changed:
            return False, "with inplace=True the input must hold the result afterwards; yours left it unchanged"
        return True, ""
    if stu_changed and not ref_changed:
        flag = " with inplace=False" if "inplace" in case.kwargs else ""
        return False, (f"your layer changed its input; torch's {name}{flag} leaves it untouched: compute a new tensor "
                       "instead of writing into the input")
    if ref_same and not stu_same and not ref_changed:
        what = "a view of it (the same memory, another tensor object)" if stu_shares else "a copy"
        return False, (f"torch's {name} returns its input itself (`output is input`); yours returns {what}: "
                       "return the input")
    if ref_shares and not stu_shares:
        return False, (f"returns a copy where torch's {name} returns a view of the input (sharing its memory, so "
                       "no data is copied): use reshape or view rather than clone, contiguous or torch.cat")
    return True, ""
