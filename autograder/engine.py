"""The generic grader: runs one `Spec` against a student's class.

For each configuration: build torch's layer and the student's with the same arguments, check the
student registers the same parameters and buffers (names, shapes), copy torch's state into the
student's, then in each dtype run training-mode steps (forward, buffers, backward) and an
eval-mode forward, comparing everything with torch. Finally the rules: no call to torch's own
implementation, an op count that does not grow with the data, and a run on the `meta` device.

The student's layer is reached only through a `student.Side` (in this process for a notebook's
`check()`, in a sandbox for grades): what comes back is plain data, never the student's objects.
Nothing here raises for a student's fault: every exception becomes a failed check in the report.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import os
import random
import re
import secrets
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import compare
from .report import Report, Result
from .spec import PARTS, Case, Inputs, Maker, Scale, Spec, built, get_spec, seed_of
from .student import Fault, Forward, Handle, Local, Side, Stale, StudentError, describe, make_leaves, merge_trace

#: an op count may grow this much from the small input to the large one and still be vectorized
SCALE_SLACK = (1.25, 8)


def short_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, else $AUTOGRADER_DEVICE, else CUDA when available, else the CPU."""
    if device is None:
        device = os.environ.get("AUTOGRADER_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_side(cls: Any) -> Side:
    """The student's side for `cls`: itself if it is one (a sandbox's), else the class in this process."""
    return cls if isinstance(cls, Side) else Local(cls)


def grade(name: str, cls: Any, *, parts: Sequence[str] | None = None, device: str | torch.device | None = None,
          suite: str = "public", seed: int | None = None) -> Report:
    """Grade the student's `cls` as a drop-in replacement for `torch.nn.<name>`.

    `cls` is the student's class, or a `student.Side` that reaches it (a sandbox's). `parts` selects
    a subset of `PARTS`; `suite` is "public" (the fixed configurations) or "hidden" (configurations
    drawn at grading time from `seed`, random unless given).
    Raises only for the caller's errors (an unknown layer or part), never for the student's.
    """
    spec = get_spec(name)
    chosen = tuple(PARTS) if parts is None else tuple(parts)
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; parts are {list(PARTS)}")
    chosen = tuple(p for p in PARTS if p in chosen)
    dev = resolve_device(device)
    header = f"{suite} suite, {dev.type}"
    if suite == "hidden":
        seed = secrets.randbits(31) if seed is None else seed
        header += f", seed {seed}"
    cases = spec.suite(suite, random.Random(seed))
    side = as_side(cls)
    report = Report(name, chosen, header=header, seed=seed if suite == "hidden" else None)
    run = Context(spec, side, chosen, dev, cases, report)
    with _quiet(report), _exact_matmul():
        try:
            run.go()
        except Exception as exc:  # noqa: BLE001 - a student fault the checks above did not foresee
            run.fail_all(name, f"grading stopped: your layer {raised(exc)}", chosen)
    notes, faults = side.drain()
    report.notes += [n for n in dict.fromkeys(notes) if n not in report.notes]
    report.faults += [f.text for f in faults]
    report.fault_kinds += [f.kind for f in faults]
    return report


def check(name: str, cls: type, **kwargs: Any) -> None:
    """`grade`, then print the report if it passed, or raise AssertionError(report) if not.

    Made for notebook test cells: it writes nothing to stderr and returns nothing, since
    nbgrader gives a cell with stderr output zero points and a cell whose value is not a
    number full points.
    """
    report = grade(name, cls, **kwargs)
    if not report.passed:
        raise AssertionError("\n" + str(report))
    print(report)


@contextlib.contextmanager
def _quiet(report: Report):
    """Capture warnings and anything printed, so a test cell writes nothing to stderr."""
    out, err = io.StringIO(), io.StringIO()
    redirect = contextlib.redirect_stdout(out), contextlib.redirect_stderr(err)
    with warnings.catch_warnings(record=True) as caught, redirect[0], redirect[1]:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        text = f"warning during grading: {w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            report.notes.append(text)
    printed = (out.getvalue() + err.getvalue()).strip()
    if printed:
        report.notes.append(f"your layer printed {len(printed.splitlines())} line(s) during grading "
                            f"(first: {printed.splitlines()[0][:80]!r})")


@contextlib.contextmanager
def _exact_matmul():
    """TF32 off on the GPU: the reference must be computed in true float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _missing_hint(missing: list[str], unexpected: list[str], state: Any) -> str:
    """Why a state_dict lacks keys, when the pattern tells: nothing registered, other names, shifted indices."""
    if not unexpected and not state.any_params:
        where = f" (self.{state.containers[0]} is a plain Python container)" if state.containers else ""
        return (f": the layer registers no parameters at all{where}; submodules must be registered "
                "(an attribute, add_module, nn.ModuleList) to appear in state_dict() and parameters()")
    def leaf(key: str) -> str:
        return key.rsplit(".", 1)[-1]
    if len(missing) == len(unexpected) and [leaf(k) for k in missing] == [leaf(k) for k in unexpected]:
        prefixes = [k.split(".", 1)[0] for k in missing + unexpected]
        if all(p.isdigit() for p in prefixes):
            return ("; the submodules are numbered differently from torch's: is a layer missing or extra "
                    "before them?")
        return f"; the same tensors are registered under other names (expected {missing[0]!r}, not {unexpected[0]!r})"
    return ""


def raised(exc: BaseException) -> str:
    """`raised NotImplementedError at line 12 ('raise NotImplementedError()')`, pointing at the
    student's code rather than torch's internals; a `StudentError` (or `Fault`) says it already."""
    return exc.text if isinstance(exc, StudentError) else describe(exc)


@dataclass
class Context:
    """One grading run. Spec judges receive it and may use its helpers."""

    spec: Spec
    side: Side
    parts: tuple[str, ...]
    device: torch.device
    cases: tuple[Case, ...]
    report: Report
    trace: dict = field(default_factory=dict)  # union of the student's traced forwards (calls, ops, modules)
    crashed: set = field(default_factory=set)  # configurations whose forward raised

    # --- recording -----------------------------------------------------------------------------
    def record(self, part: str, where: str, ok: bool, detail: str = "", tag: str = "", check: str = "") -> bool:
        if part in self.parts:
            self.report.results.append(Result(part, where, ok, detail, tag, check))
        return ok

    def fail_all(self, where: str, detail: str, parts: Iterable[str] = PARTS) -> None:
        for part in parts:
            self.record(part, where, False, detail)

    # --- building ------------------------------------------------------------------------------
    def reference(self, case: Case) -> nn.Module:
        torch.manual_seed(seed_of(self.spec.name, case.desc, "init"))
        args, kwargs = built(case)  # a `Layer` argument becomes torch's layer
        return self.spec.reference(*args, **kwargs).to(self.device)

    def build(self, case: Case, seed: Any = "init", **changes: Any) -> Handle:
        """The student's layer for `case` (kwargs updated with `changes`), on the grading device.
        Raises StudentError/Fault; `student` records instead."""
        kwargs = {**dict(case.kwargs), **changes}
        stu = self.side.build(case.args, kwargs, seed=seed_of(self.spec.name, case.desc, seed))
        if not stu.info["is_module"]:
            raise StudentError(f"{stu.info['type_name']} is not an nn.Module subclass")
        stu.to(device=self.device)
        return stu

    def student(self, case: Case, where: str, parts: Iterable[str] = PARTS) -> Handle | None:
        """The student's layer, or None after recording why it could not be built."""
        try:
            stu = self.side.build(case.args, dict(case.kwargs), seed=seed_of(self.spec.name, case.desc, "init"))
        except Exception as exc:  # noqa: BLE001 - any student error becomes feedback
            text = raised(exc)
            self.fail_all(where, text if text.startswith("building") else f"the constructor {text}", parts)
            return None
        if not stu.info["is_module"]:
            self.fail_all(where, f"{stu.info['type_name']} is not an nn.Module subclass", parts)
            return None
        try:
            stu.to(device=self.device)
        except Exception as exc:  # noqa: BLE001
            self.fail_all(where, f"moving the layer to {self.device} {raised(exc)}", parts)
            return None
        return stu

    def make(self, case: Case, dtype: torch.dtype, step: Any, device: torch.device | None = None) -> Inputs:
        maker = Maker(dtype, device or self.device, seed_of(self.spec.name, case.desc, str(dtype), step))
        return case.inputs(maker)

    def forward(self, stu: Handle, inputs: Inputs, *, traced: bool = False, **options: Any) -> Forward:
        """The student's forward; a traced one adds to the run's trace (checked by the rules)."""
        got = stu.forward(inputs, traced="calls" if traced else None, **options)
        merge_trace(self.trace, got.trace)
        return got

    def count_ops(self, stu: Handle, inputs: Inputs) -> int:
        return stu.count_ops(inputs)

    # --- the run -------------------------------------------------------------------------------
    def go(self) -> None:
        name = self.spec.name
        described = self.side.describe()
        forbidden = {f"{m.__module__}.{m.__qualname__}": m.__name__ for m in self.spec.forbidden_modules}
        bases = [forbidden[k] for k in described["mro"] if k in forbidden]
        if bases:
            self.fail_all(name, f"your class inherits from torch's {bases[0]}: write the layer yourself")
            return
        if {"state"} & set(self.parts):
            self.check_signature(described.get("forward"))
            for case in self.spec.init_cases:
                self.check_init(case)
        for index, case in enumerate(self.cases):
            self.run_case(case, keyword=index == self.keyword_index)
        # judges run before the rules, so the forwards they trace (`forward(..., traced=True)`, e.g.
        # a stochastic layer in training mode) are checked for forbidden calls too
        for judge in self.spec.judges:
            for result in judge(self):
                self.record(result.part, result.where, result.ok, result.detail, result.tag, result.check)
        if "rules" in self.parts:
            self.check_rules()

    @property
    def keyword_index(self) -> int:
        """The case whose forward is called with keyword arguments (`layer(input=x)`, as torch's own
        tests call layers): the second public case, the first hidden one."""
        return 0 if len(self.cases) < 2 or self.report.header.startswith("hidden") else 1

    def by_name(self, inputs: Inputs) -> Inputs:
        """`inputs` with the positional arguments passed by torch's names for them."""
        names = [p.name for p in self.spec.forward_parameters()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if len(inputs.args) > len(names):
            return inputs
        return Inputs((), {**dict(zip(names, inputs.args)), **dict(inputs.kwargs)})

    def check_signature(self, got: list | None) -> None:
        """forward's parameters are torch's: names, order and defaults (code calls layers by name)."""
        want = self.spec.forward_parameters()
        shown = lambda ps: ", ".join(n + (f"={d}" if has else "") for n, _, has, d in ps)  # noqa: E731
        torch_side = [[p.name, p.kind.name, p.default is not p.empty, repr(p.default) if p.default is not p.empty
                       else ""] for p in want]
        problem = ""
        if got is None:
            problem = "forward's parameters cannot be read"
        elif [k for _, k, _, _ in got] == ["VAR_POSITIONAL", "VAR_KEYWORD"]:
            problem = ""  # forward(self, *args, **kwargs) passes every argument on, by any name
        elif [n for n, *_ in got] != [n for n, *_ in torch_side]:
            problem = (f"forward takes ({shown(got)}) where torch's takes ({shown(torch_side)}): code that "
                       f"passes an argument by name, such as layer({torch_side[0][0]}=...), would break; name "
                       "and order the parameters as torch does") if torch_side else ""
        else:
            wrong = [(g, w) for g, w in zip(got, torch_side) if (g[2], g[3]) != (w[2], w[3])]
            if wrong:
                g, w = wrong[0]
                mine = f"{g[0]}={g[3]}" if g[2] else f"{g[0]} without a default"
                theirs = f"{w[0]}={w[3]}" if w[2] else f"{w[0]} without a default"
                problem = f"forward has {mine} where torch's has {theirs}"
        self.record("state", self.spec.name, not problem, problem, check="forward signature")

    def run_case(self, case: Case, keyword: bool = False) -> None:
        where = case.label(self.spec.name) + (" · by keyword" if keyword else "")
        ref = self.reference(case)
        stu = self.student(case, where)
        if stu is None:
            return
        if not self.check_state(where, ref, stu):
            self.fail_all(where, "not run: the layer's parameters and buffers must match torch's first (see state)",
                          ("shape", "forward", "backward"))
            return
        for dtype in self.spec.dtypes:
            r = copy.deepcopy(ref).to(dtype)
            try:
                stu.to(dtype=dtype)
                stu.load_state_dict(r.state_dict())
            except (Fault, Stale) as exc:  # the process died earlier in this case: not the state's fault
                self.fail_all(where, f"not run in {short_name(dtype)}: {raised(exc)}", ("shape", "forward", "backward"))
                return
            except Exception as exc:  # noqa: BLE001
                self.fail_all(where, f"loading torch's state in {dtype} {raised(exc)}", ("state", "shape", "forward"))
                continue
            short = str(dtype).replace("torch.", "")
            if "train" in self.spec.modes:
                r.train()
                stu.train(True)
                for step in range(self.spec.steps):
                    tag = f"{short}, train" + (f", step {step + 1}" if self.spec.steps > 1 else "")
                    backward = self.spec.backward and "backward" in self.parts
                    if not self.step(case, where, tag, r, stu, dtype, step, backward=backward, keyword=keyword):
                        break
            if "eval" in self.spec.modes:
                r.eval()
                try:
                    stu.train(False)
                except Exception as exc:  # noqa: BLE001
                    self.fail_all(where, f"eval() {raised(exc)}", ("shape", "forward"))
                    continue
                self.step(case, where, f"{short}, eval", r, stu, dtype, "eval", backward=False, keyword=keyword)

    def step(self, case: Case, where: str, tag: str, ref: nn.Module, stu: Handle, dtype: torch.dtype,
             step: Any, *, backward: bool, keyword: bool = False) -> bool:
        """One forward (and backward) of both layers on the same inputs; False if it failed."""
        tol = self.spec.tolerances[dtype]
        inputs = self.make(case, dtype, step)  # positional: the spec's mistakes read them so
        called = self.by_name(inputs) if keyword else inputs
        ref_in, ref_leaves = make_leaves(called, self.spec.backward, self.spec.clone_inputs)
        ref.zero_grad(set_to_none=True)
        stateful = any(True for _ in ref.buffers())
        before = self.snapshot(stu) if stateful else {}
        ref_before = {k: v.detach().clone() for k, v in ref.state_dict().items()} if stateful else None
        want = ref(*ref_in.args, **dict(ref_in.kwargs))
        try:
            got = self.forward(stu, called, traced=True, leaves=self.spec.backward, clone=self.spec.clone_inputs)
        except Exception as exc:  # noqa: BLE001
            self.crashed.add(where)
            self.fail_all(where, f"forward {raised(exc)}", ("shape", "forward", "backward"))
            return False
        shape_problems = compare.structure(got.output, want)
        if shape_problems:  # a known mistake may change the shape (an ignored stride): name it
            shape_problems[0] += self.diagnose(ref, inputs, got.output, tol, case, ref_before)
        self.record("shape", where, not shape_problems, "; ".join(shape_problems), tag)
        if shape_problems:
            self.record("forward", where, False, "values not compared: " + shape_problems[0], tag)
            if backward:
                self.record("backward", where, False, "not run: " + shape_problems[0], tag)
            return False
        problems = compare.values(got.output, want, *tol)
        if problems:
            problems[0] += self.diagnose(ref, inputs, got.output, tol, case, ref_before)
        self.record("forward", where, not problems, "; ".join(problems), tag)
        self.compare_buffers(where, tag, ref, stu, tol, before, inputs, case, ref_before)
        if backward:
            self.backward(where, tag, case, dtype, step, ref, stu, want, got, ref_leaves)
        return not problems

    def diagnose(self, ref: nn.Module, inputs: Inputs, got: Any, tol: tuple[float, float], case: Case | None = None,
                 state: dict | None = None) -> str:
        """`; it matches the output when <cause>` if the student's output equals a known mistake's (the
        spec's own, first), or torch's with one of the case's arguments ignored or given another of its
        values (`alternatives`). `state` is torch's layer's state before the call, when it has buffers."""
        for mistake in self.spec.mistakes:
            try:
                with torch.no_grad():
                    wrong = mistake.output(ref, inputs)
            except Exception:  # noqa: BLE001 - a mistake that does not apply to this case
                continue
            if not compare.structure(got, wrong) and not compare.values(got, wrong, *tol):
                return f"; it matches the output when {mistake.cause}"
        if case is None:
            return ""
        for cause, layer, call_inputs in self.alternatives(case, ref, inputs, state):
            try:
                with torch.no_grad():
                    wrong = layer(*call_inputs.args, **dict(call_inputs.kwargs))
            except Exception:  # noqa: BLE001 - torch refuses that combination
                continue
            if not compare.structure(got, wrong) and not compare.values(got, wrong, *tol):
                return f"; it matches the output when {cause}"
        return ""

    def alternatives(self, case: Case, ref: nn.Module, inputs: Inputs, state: dict | None):
        """(cause, torch's layer, inputs) for each way of getting one of the case's arguments wrong: a
        constructor argument left at its default or given another of its values (`padding_mode`,
        `reduction`, ...), or a forward argument ignored. Each layer holds `ref`'s state (`state`, when
        given: the state before the call) and is in its mode; those whose state would not fit are left out."""
        contract = self.spec.contract()
        try:
            init = inspect.signature(contract.__init__)
            args, kwargs = built(case)
            bound = init.bind_partial(None, *args, **kwargs)
        except (TypeError, ValueError):
            return
        state = state if state is not None else ref.state_dict()
        dtype = next((t.dtype for t in state.values() if t.is_floating_point()), None)
        for name, value in list(bound.arguments.items())[1:]:
            param = init.parameters[name]
            if param.default is param.empty or name in ("device", "dtype") or param.kind in (
                    param.VAR_POSITIONAL, param.VAR_KEYWORD) or _same(value, param.default):
                continue
            tries = [param.default] + [c for c in CHOICES.get(name, ()) if not _same(c, value)
                                       and not _same(c, param.default)]
            for other in tries:
                changed = init.bind_partial(None, *args, **kwargs)
                changed.arguments[name] = other
                try:
                    torch.manual_seed(0)
                    layer = self.spec.reference(*changed.args[1:], **changed.kwargs).to(self.device)
                    if dtype is not None:
                        layer = layer.to(dtype)
                    layer.load_state_dict(state)
                except Exception:  # noqa: BLE001 - a combination torch refuses, or a state that does not fit
                    continue
                layer.train(ref.training)
                cause = (f"`{name}={_short(value)}` is ignored (torch's default is {name}={_short(other)})"
                         if other is param.default or _same(other, param.default) else
                         f"{name}={_short(other)} is used in place of {name}={_short(value)}")
                yield cause, layer, inputs
        try:
            forward = inspect.Signature(self.spec.forward_parameters())
            passed = forward.bind_partial(*inputs.args, **dict(inputs.kwargs))
        except (TypeError, ValueError):
            return
        for name, value in passed.arguments.items():
            param = forward.parameters[name]
            if param.default is param.empty or value is None or _same(value, param.default):
                continue
            changed = forward.bind_partial(*inputs.args, **dict(inputs.kwargs))
            del changed.arguments[name]
            layer = copy.deepcopy(ref)
            try:
                layer.load_state_dict(state)
            except Exception:  # noqa: BLE001
                continue
            yield f"forward's `{name}` argument is ignored", layer, Inputs(changed.args, changed.kwargs)

    def compare_buffers(self, where: str, tag: str, ref: nn.Module, stu: Handle, tol: tuple[float, float],
                        before: dict | None = None, inputs: Inputs | None = None, case: Case | None = None,
                        ref_before: dict | None = None) -> None:
        """Buffers after a forward call; `before` (the student's, before the call) and `inputs` let
        the spec's buffer mistakes name the cause of a wrong update."""
        wanted = list(ref.named_buffers())
        if not wanted:
            return
        try:
            stu_buffers = stu.buffers()
        except Exception as exc:  # noqa: BLE001
            self.record("state", where, False, f"named_buffers() {raised(exc)}", tag)
            return
        for name, want in wanted:
            got = stu_buffers.get(name)
            what = f"buffer {name!r}"
            problems = compare.structure(got, want, what) or compare.values(got, want, *tol, what)
            if problems and before and inputs is not None and not compare.structure(got, want):
                problems[0] += self.diagnose_buffer(name, got, ref, before, inputs, tol, case, ref_before)
            self.record("state", where, not problems, "; ".join(problems), tag)

    @staticmethod
    def snapshot(stu: Handle) -> dict:
        """Copies of a layer's buffers, by name (empty if they cannot be read)."""
        try:
            return stu.buffers()
        except Exception:  # noqa: BLE001 - reported by the state checks
            return {}

    def diagnose_buffer(self, name: str, got: torch.Tensor, ref: nn.Module, before: dict, inputs: Inputs,
                        tol: tuple[float, float], case: Case | None = None, ref_before: dict | None = None) -> str:
        """`; it matches the buffer when <cause>` if the student's buffer equals a known wrong update's,
        or the update torch makes with one of the case's arguments ignored (see `alternatives`), from
        the student's own buffers before the call."""
        for mistake in self.spec.buffer_mistakes:
            try:
                with torch.no_grad():
                    wrong = mistake.buffers(before, ref, inputs)[name]
            except Exception:  # noqa: BLE001 - a mistake that does not apply to this case or buffer
                continue
            if not compare.structure(got, wrong) and not compare.values(got, wrong, *tol):
                return f"; it matches the buffer when {mistake.cause}"
        if case is None or ref_before is None:
            return ""
        start = {**ref_before, **{k: v.to(ref_before[k].device) for k, v in before.items() if k in ref_before
                                  and isinstance(v, torch.Tensor) and v.shape == ref_before[k].shape}}
        for cause, layer, call_inputs in self.alternatives(case, ref, inputs, start):
            try:
                with torch.no_grad():
                    layer(*call_inputs.args, **dict(call_inputs.kwargs))
                wrong = dict(layer.named_buffers())[name]
            except Exception:  # noqa: BLE001
                continue
            if not compare.structure(got, wrong) and not compare.values(got, wrong, *tol):
                return f"; it matches the buffer when {cause}"
        return ""

    def backward(self, where: str, tag: str, case: Case, dtype: torch.dtype, step: Any, ref: nn.Module,
                 stu: Handle, want: Any, got: Forward, ref_leaves: list) -> None:
        tol = self.spec.tolerances[dtype]
        chosen = [i for i, w in enumerate(compare.tensors(want)) if w.requires_grad]
        if not chosen:
            return
        wanted = [compare.tensors(want)[i] for i in chosen]
        maker = Maker(dtype, self.device, seed_of(self.spec.name, case.desc, str(dtype), step, "upstream"))
        upstream = [maker.randn(*w.shape).to(w.dtype) for w in wanted]
        torch.autograd.backward(wanted, upstream)
        if not all(i < len(got.requires_grad) and got.requires_grad[i] for i in chosen):
            self.record("backward", where, False, "the output does not require grad: the autograd graph is broken "
                        "(a .detach(), .data, .item(), numpy or torch.no_grad() in forward?)", tag)
            return
        try:
            grads = stu.backward(chosen, upstream)
        except Exception as exc:  # noqa: BLE001
            self.record("backward", where, False, f"backward {raised(exc)}", tag)
            return
        problems = []
        for i, w in enumerate(ref_leaves):
            what = "gradient of the input" if len(ref_leaves) == 1 else f"gradient of input {i}"
            g = grads.inputs[i] if i < len(grads.inputs) else None
            problems += self.grad_problems(g, w.grad, tol, what)
        for name, w in ref.named_parameters():
            if name in grads.params:
                problems += self.grad_problems(grads.params[name], w.grad, tol, f"gradient of {name!r}")
        self.record("backward", where, not problems, "; ".join(problems[:2]), tag)

    @staticmethod
    def grad_problems(got: torch.Tensor | None, want: torch.Tensor | None, tol: tuple[float, float],
                      what: str) -> list[str]:
        if want is None:
            return [] if got is None or not torch.is_tensor(got) or not got.any() else [
                f"{what} is nonzero where torch's is None"]
        if got is None:
            return [f"no {what}: it does not reach the loss (not used in forward, or detached)"]
        return compare.structure(got, want, what) or compare.values(got, want, *tol, what)

    # --- state -----------------------------------------------------------------------------------
    def check_state(self, where: str, ref: nn.Module, stu: Handle) -> bool:
        """Same parameter and buffer names and shapes as torch's layer; parameters are Parameters."""
        want = ref.state_dict()
        try:
            state = stu.state()
        except Exception as exc:  # noqa: BLE001
            return self.record("state", where, False, f"state_dict() {raised(exc)}")
        got = state.shapes
        problems = []
        missing = [k for k in want if k not in got]
        unexpected = [k for k in got if k not in want]
        if missing:
            problems.append(f"missing parameters/buffers {missing}{_missing_hint(missing, unexpected, state)}")
        if unexpected:
            note = " (torch's layer has none with these arguments)" if not missing else ""
            problems.append(f"unexpected parameters/buffers {unexpected}{note}")
        for k in want:
            if k in got and got[k] is not None and tuple(got[k]) != tuple(want[k].shape):
                problems.append(f"{k!r} has shape {tuple(got[k])}, expected {tuple(want[k].shape)}")
        stu_params = set(state.params)
        # a module used twice lists its parameters once: not "not a Parameter" but shared
        aliases = set(state.all_params) - stu_params
        shared = [n for n, _ in ref.named_parameters() if n in aliases]
        if shared:
            problems.append(f"{len(shared)} parameter(s), e.g. {shared[0]!r}, are the same tensors as other "
                            "parameters (one module used twice?), where torch's layer has separate ones")
        for n, _ in ref.named_parameters():
            if n in got and n not in stu_params and n not in aliases:
                problems.append(f"{n!r} is not an nn.Parameter (an optimizer would never train it)")
        return self.record("state", where, not problems, "; ".join(problems))

    def check_init(self, case: Case) -> None:
        """A freshly built student layer's parameters look drawn like torch's (mean, spread, range)."""
        where = case.label(self.spec.name) + " fresh"
        ref, stu = self.reference(case), self.student(case, where, ("state",))
        if stu is None:
            return
        try:
            stu_tensors = stu.state_dict()
        except Exception as exc:  # noqa: BLE001
            self.record("state", where, False, f"state_dict() {raised(exc)}")
            return
        for name, want in ref.state_dict().items():
            got = stu_tensors.get(name)
            if not isinstance(got, torch.Tensor) or got.shape != want.shape:
                continue  # reported by check_state on the graded cases
            self.record("state", where, *self.init_problem(name, got.detach().double().cpu(), want.double().cpu()),
                        tag="initialisation")

    @staticmethod
    def init_problem(name: str, got: torch.Tensor, want: torch.Tensor) -> tuple[bool, str]:
        describe = lambda t: f"mean {t.mean():.3g}, std {t.std():.3g}, range [{t.min():.3g}, {t.max():.3g}]"  # noqa: E731
        if got.numel() == 0 or not want.is_floating_point():
            return True, ""
        if want.std() == 0 or want.numel() < 2:
            ok = torch.equal(got, want)
            return ok, "" if ok else f"{name!r} should start as {want.flatten()[0]:g} everywhere, like torch's"
        n, sd = want.numel(), want.std()
        ok = (abs(got.mean() - want.mean()) <= 5 * sd / n ** 0.5 + 1e-12
              and abs(got.std() / sd - 1) <= 0.1
              and 0.8 <= (got.max() - got.min()) / (want.max() - want.min()) <= 1.25)
        return bool(ok), "" if ok else (f"{name!r} is not initialised like torch's: {describe(got)}; "
                                        f"torch's: {describe(want)}")

    # --- rules -----------------------------------------------------------------------------------
    def check_rules(self) -> None:
        name = self.spec.name
        calls = self.trace.get("calls", {})
        forbidden = sorted(c for c in calls if c in self.spec.forbidden_calls)
        self.record("rules", name, not forbidden, f"calls {', '.join(forbidden)}: torch's own implementation of "
                    f"{name}; write it with tensor operations", check="calls")
        modules = module_names(self.trace.get("modules", {}).values(), self.spec.forbidden_modules,
                               self.side.describe()["id"])
        self.record("rules", name, not modules, f"runs a {', '.join(modules)} module inside its forward: torch's "
                    f"own implementation of {name}", check="modules")
        for scale in self.spec.scales:
            self.check_scale(scale)
        if self.spec.meta and self.cases:
            self.check_meta(self.spec.cases[0] if self.spec.cases else self.cases[0])

    def load(self, stu: Handle, ref: nn.Module, where: str, check: str) -> bool:
        """Copy torch's state into the student's layer for a rules probe; False (recorded) if it fails."""
        try:
            stu.load_state_dict(ref.state_dict())
            return True
        except Exception:  # noqa: BLE001
            self.record("rules", where, False, "not run: the layer's parameters and buffers must match torch's "
                        "first (see state)", check=check)
            return False

    def check_scale(self, scale: Scale) -> None:
        where = scale.case.label(self.spec.name)
        ref, stu = self.reference(scale.case), self.student(scale.case, where, ("rules",))
        if stu is None:
            return
        if not self.load(stu, ref, where, scale.what):
            return
        try:
            stu.train(True)
            maker = Maker(torch.float32, self.device, seed_of(self.spec.name, scale.what))
            small, large = self.count_ops(stu, scale.small(maker)), self.count_ops(stu, scale.large(maker))
        except Exception as exc:  # noqa: BLE001
            self.record("rules", where, False, f"vectorization probe ({scale.what}): forward {raised(exc)}",
                        check=scale.what)
            return
        factor, extra = SCALE_SLACK
        ok = large <= factor * small + extra
        self.record("rules", where, ok, f"not vectorized: the forward runs {small} tensor ops on the small input "
                    f"and {large} on the large one ({scale.what}); a Python loop over the data? "
                    "Use whole-tensor operations",
                    check=scale.what)

    def check_meta(self, case: Case) -> None:
        """Forward on the `meta` device: a tensor created without `device=` lands on the CPU and fails
        here, as it would on a GPU. Always the public suite's first case, whatever the suite, so that
        the rule is the same in every grading; a forward that reads tensor values in Python (which
        the exercises allow, and meta tensors cannot do) is not checked, and says so."""
        where = case.label(self.spec.name)
        if where in self.crashed:
            return  # its forward already failed on the real device
        ref, stu = self.reference(case), self.student(case, where, ("rules",))
        if stu is None:
            return
        if not self.load(stu, ref, where, "meta"):
            return
        try:
            stu.to(device="meta")
            inputs = self.make(case, torch.float32, "meta", device=torch.device("cpu"))
            stu.forward(inputs, device="meta")
        except Exception as exc:  # noqa: BLE001
            text = exc.message if isinstance(exc, StudentError) else str(exc)
            first = text.splitlines()[0][:160] if text else type(exc).__name__
            if isinstance(exc, Fault) or not re.search(r"device|cpu|cuda", text, re.I):
                if not isinstance(exc, Fault) and self.fails_on_the_device(case):
                    return  # the forward fails anyway: reported by the other parts
                self.report.notes.append(f"the meta-device check could not run the forward ({first}): meta "
                                         "tensors hold no values, so a forward that reads them is not checked")
                return
            hint = ("a tensor is created on a fixed device; make new tensors with device=x.device (or register "
                    "them as buffers) so the layer also works on a GPU")
            self.record("rules", where, False, f"forward on device 'meta' {raised(exc)}: {hint}", check="meta")
            return
        self.record("rules", where, True, check="meta")

    def fails_on_the_device(self, case: Case) -> bool:
        """Whether the student's forward raises on `case` on the grading device too."""
        try:
            stu = self.build(case)
            stu.load_state_dict(self.reference(case).state_dict())
            stu.forward(self.make(case, torch.float32, "meta"), no_grad=True)
            return False
        except Exception:  # noqa: BLE001
            return True


#: values an argument may take besides its default, tried when a case sets it (see `Context.alternatives`)
CHOICES = {"padding_mode": ("zeros", "reflect", "replicate", "circular"), "reduction": ("mean", "sum", "none"),
           "mode": ("sum", "mean", "max"), "nonlinearity": ("tanh", "relu"), "activation": ("relu", "gelu"),
           "approximate": ("none", "tanh")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return a is b
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _short(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


def module_names(modules: Iterable[dict], forbidden: tuple[type, ...], student_id: int) -> list[str]:
    """Names of forbidden module classes that ran (the student's own class excluded), from a trace's
    module entries ({"name", "mro", "id"})."""
    names = {f"{m.__module__}.{m.__qualname__}" for m in forbidden}
    return sorted({m["name"] for m in modules if m["id"] != student_id and names & set(m["mro"])})
