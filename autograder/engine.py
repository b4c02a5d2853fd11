"""The generic grader: runs one `Spec` against a student's class.

For each configuration: build torch's layer and the student's with the same arguments, check the
student registers the same parameters and buffers (names, shapes), copy torch's state into the
student's, then in each dtype run training-mode steps (forward, buffers, backward) and an
eval-mode forward, comparing everything with torch. Finally the rules: no call to torch's own
implementation, an op count that does not grow with the data, and a run on the `meta` device.

Nothing here raises for a student's fault: every exception becomes a failed check in the report.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import random
import secrets
import traceback
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import compare
from .report import Report, Result
from .spec import PARTS, Case, Inputs, Maker, Scale, Spec, built, get_spec, seed_of
from .trace import Trace, module_names, tracing

#: an op count may grow this much from the small input to the large one and still be vectorized
SCALE_SLACK = (1.25, 8)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, else $AUTOGRADER_DEVICE, else CUDA when available, else the CPU."""
    if device is None:
        device = os.environ.get("AUTOGRADER_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def grade(name: str, cls: type, *, parts: Sequence[str] | None = None, device: str | torch.device | None = None,
          suite: str = "public", seed: int | None = None) -> Report:
    """Grade the student's `cls` as a drop-in replacement for `torch.nn.<name>`.

    `parts` selects a subset of `PARTS`; `suite` is "public" (the fixed configurations) or
    "hidden" (configurations drawn at grading time from `seed`, random unless given).
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
    report = Report(name, chosen, header=header)
    run = Context(spec, cls, chosen, dev, cases, report)
    with _quiet(report), _exact_matmul():
        try:
            run.go()
        except Exception as exc:  # noqa: BLE001 - a student fault the checks above did not foresee
            run.fail_all(name, f"grading stopped: your layer {raised(exc)}", chosen)
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


def _missing_hint(missing: list[str], unexpected: list[str], stu: nn.Module) -> str:
    """Why a state_dict lacks keys, when the pattern tells: nothing registered, other names, shifted indices."""
    if not unexpected and not any(True for _ in stu.parameters()):
        kept = [name for name, value in vars(stu).items() if isinstance(value, (list, tuple, dict))
                and any(isinstance(v, nn.Module) for v in (value.values() if isinstance(value, dict) else value))]
        where = f" (self.{kept[0]} is a plain Python container)" if kept else ""
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
    student's code rather than torch's internals."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}torch{os.sep}" not in f.filename and Path(f.filename).parent != Path(__file__).parent]
    where = ""
    if frames:
        f = frames[-1]
        line = f" ({f.line.strip()!r})" if f.line else ""
        where = f" in {f.name}{line}"
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"raised {type(exc).__name__}{': ' + message if message else ''}{where}"


@dataclass
class Context:
    """One grading run. Spec judges receive it and may use its helpers."""

    spec: Spec
    cls: type
    parts: tuple[str, ...]
    device: torch.device
    cases: tuple[Case, ...]
    report: Report
    trace: Trace = field(default_factory=Trace)  # union of the student's traced forwards
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

    def student(self, case: Case, where: str, parts: Iterable[str] = PARTS) -> nn.Module | None:
        """The student's layer, or None after recording why it could not be built."""
        torch.manual_seed(seed_of(self.spec.name, case.desc, "init"))
        try:
            args, kwargs = built(case, self.cls)  # a `Layer` argument becomes the student's own layer
        except Exception as exc:  # noqa: BLE001
            self.fail_all(where, f"building the layer it is given as an argument {raised(exc)}", parts)
            return None
        try:
            layer = self.cls(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any student error becomes feedback
            self.fail_all(where, f"the constructor {raised(exc)}", parts)
            return None
        if not isinstance(layer, nn.Module):
            self.fail_all(where, f"{type(layer).__name__} is not an nn.Module subclass", parts)
            return None
        try:
            return layer.to(self.device)
        except Exception as exc:  # noqa: BLE001
            self.fail_all(where, f"moving the layer to {self.device} {raised(exc)}", parts)
            return None

    def make(self, case: Case, dtype: torch.dtype, step: Any, device: torch.device | None = None) -> Inputs:
        maker = Maker(dtype, device or self.device, seed_of(self.spec.name, case.desc, str(dtype), step))
        return case.inputs(maker)

    def leaves(self, inputs: Inputs) -> tuple[Inputs, list[torch.Tensor]]:
        """A fresh copy of the inputs whose float tensors require grad, and those leaf tensors."""
        leaves: list[torch.Tensor] = []

        def prep(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                t = value.detach().clone()
                if t.is_floating_point() and self.spec.backward:
                    t.requires_grad_(True)
                    leaves.append(t)
                    return t.clone() if self.spec.clone_inputs else t
                return t
            if isinstance(value, (tuple, list)):
                return type(value)(prep(v) for v in value)
            return value

        return Inputs(tuple(prep(a) for a in inputs.args), {k: prep(v) for k, v in inputs.kwargs.items()}), leaves

    def forward(self, layer: nn.Module, inputs: Inputs, *, traced: bool = False) -> Any:
        if not traced:
            return layer(*inputs.args, **dict(inputs.kwargs))
        with tracing(ops=False) as t:
            out = layer(*inputs.args, **dict(inputs.kwargs))
        self.trace.calls.update(t.calls)
        self.trace.modules.update(t.modules)
        return out

    # --- the run -------------------------------------------------------------------------------
    def go(self) -> None:
        name = self.spec.name
        if isinstance(self.cls, type) and issubclass(self.cls, self.spec.forbidden_modules or ()):
            bases = [b.__name__ for b in self.cls.__mro__ if b in self.spec.forbidden_modules]
            self.fail_all(name, f"your class inherits from torch's {bases[0]}: write the layer yourself")
            return
        if {"state"} & set(self.parts):
            for case in self.spec.init_cases:
                self.check_init(case)
        for case in self.cases:
            self.run_case(case)
        # judges run before the rules, so the forwards they trace (`forward(..., traced=True)`, e.g.
        # a stochastic layer in training mode) are checked for forbidden calls too
        for judge in self.spec.judges:
            for result in judge(self):
                self.record(result.part, result.where, result.ok, result.detail, result.tag, result.check)
        if "rules" in self.parts:
            self.check_rules()

    def run_case(self, case: Case) -> None:
        where = case.signature(self.spec.name)
        ref = self.reference(case)
        stu = self.student(case, where)
        if stu is None:
            return
        if not self.check_state(where, ref, stu):
            self.fail_all(where, "not run: the layer's parameters and buffers must match torch's first (see state)",
                          ("shape", "forward", "backward"))
            return
        for dtype in self.spec.dtypes:
            r, s = copy.deepcopy(ref).to(dtype), stu
            try:
                s.to(dtype).load_state_dict(r.state_dict())
            except Exception as exc:  # noqa: BLE001
                self.fail_all(where, f"loading torch's state in {dtype} {raised(exc)}", ("state", "shape", "forward"))
                continue
            short = str(dtype).replace("torch.", "")
            if "train" in self.spec.modes:
                r.train(), s.train()
                for step in range(self.spec.steps):
                    tag = f"{short}, train" + (f", step {step + 1}" if self.spec.steps > 1 else "")
                    backward = self.spec.backward and "backward" in self.parts
                    if not self.step(case, where, tag, r, s, dtype, step, backward=backward):
                        break
            if "eval" in self.spec.modes:
                r.eval(), s.eval()
                self.step(case, where, f"{short}, eval", r, s, dtype, "eval", backward=False)

    def step(self, case: Case, where: str, tag: str, ref: nn.Module, stu: nn.Module, dtype: torch.dtype,
             step: Any, *, backward: bool) -> bool:
        """One forward (and backward) of both layers on the same inputs; False if it failed."""
        tol = self.spec.tolerances[dtype]
        inputs = self.make(case, dtype, step)
        ref_in, ref_leaves = self.leaves(inputs)
        stu_in, stu_leaves = self.leaves(inputs)
        for layer in (ref, stu):
            layer.zero_grad(set_to_none=True)
        before = self.snapshot(stu) if self.spec.buffer_mistakes else {}
        want = self.forward(ref, ref_in)
        try:
            got = self.forward(stu, stu_in, traced=True)
        except Exception as exc:  # noqa: BLE001
            self.crashed.add(where)
            self.fail_all(where, f"forward {raised(exc)}", ("shape", "forward", "backward"))
            return False
        shape_problems = compare.structure(got, want)
        if shape_problems:  # a known mistake may change the shape (an ignored stride): name it
            shape_problems[0] += self.diagnose(ref, inputs, got, tol)
        self.record("shape", where, not shape_problems, "; ".join(shape_problems), tag)
        if shape_problems:
            self.record("forward", where, False, "values not compared: " + shape_problems[0], tag)
            if backward:
                self.record("backward", where, False, "not run: " + shape_problems[0], tag)
            return False
        problems = compare.values(got, want, *tol)
        if problems:
            problems[0] += self.diagnose(ref, inputs, got, tol)
        self.record("forward", where, not problems, "; ".join(problems), tag)
        self.compare_buffers(where, tag, ref, stu, tol, before, inputs)
        if backward:
            self.backward(where, tag, case, dtype, step, ref, stu, want, got, ref_leaves, stu_leaves)
        return not problems

    def diagnose(self, ref: nn.Module, inputs: Inputs, got: Any, tol: tuple[float, float]) -> str:
        """`; it matches the output when <cause>` if the student's output equals a known mistake's."""
        for mistake in self.spec.mistakes:
            try:
                with torch.no_grad():
                    wrong = mistake.output(ref, inputs)
            except Exception:  # noqa: BLE001 - a mistake that does not apply to this case
                continue
            if not compare.structure(got, wrong) and not compare.values(got, wrong, *tol):
                return f"; it matches the output when {mistake.cause}"
        return ""

    def compare_buffers(self, where: str, tag: str, ref: nn.Module, stu: nn.Module, tol: tuple[float, float],
                        before: dict | None = None, inputs: Inputs | None = None) -> None:
        """Buffers after a forward call; `before` (the student's, before the call) and `inputs` let
        the spec's buffer mistakes name the cause of a wrong update."""
        stu_buffers = dict(stu.named_buffers())
        for name, want in ref.named_buffers():
            got = stu_buffers.get(name)
            what = f"buffer {name!r}"
            problems = compare.structure(got, want, what) or compare.values(got, want, *tol, what)
            if problems and before and inputs is not None and not compare.structure(got, want):
                problems[0] += self.diagnose_buffer(name, got, ref, before, inputs, tol)
            self.record("state", where, not problems, "; ".join(problems), tag)

    @staticmethod
    def snapshot(layer: nn.Module) -> dict:
        """Copies of a layer's buffers, by name (empty if they cannot be read)."""
        try:
            return {n: b.detach().clone() for n, b in layer.named_buffers() if isinstance(b, torch.Tensor)}
        except Exception:  # noqa: BLE001 - reported by the state checks
            return {}

    def diagnose_buffer(self, name: str, got: torch.Tensor, ref: nn.Module, before: dict, inputs: Inputs,
                        tol: tuple[float, float]) -> str:
        """`; it matches the buffer when <cause>` if the student's buffer equals a known wrong update's."""
        for mistake in self.spec.buffer_mistakes:
            try:
                with torch.no_grad():
                    wrong = mistake.buffers(before, ref, inputs)[name]
            except Exception:  # noqa: BLE001 - a mistake that does not apply to this case or buffer
                continue
            if not compare.structure(got, wrong) and not compare.values(got, wrong, *tol):
                return f"; it matches the buffer when {mistake.cause}"
        return ""

    def backward(self, where: str, tag: str, case: Case, dtype: torch.dtype, step: Any, ref: nn.Module,
                 stu: nn.Module, want: Any, got: Any, ref_leaves: list, stu_leaves: list) -> None:
        tol = self.spec.tolerances[dtype]
        pairs = [(w, g) for w, g in zip(compare.tensors(want), compare.tensors(got)) if w.requires_grad]
        if not pairs:
            return
        maker = Maker(dtype, self.device, seed_of(self.spec.name, case.desc, str(dtype), step, "upstream"))
        upstream = [maker.randn(*w.shape).to(w.dtype) for w, _ in pairs]
        torch.autograd.backward([w for w, _ in pairs], upstream)
        if not all(g.requires_grad for _, g in pairs):
            self.record("backward", where, False, "the output does not require grad: the autograd graph is broken "
                        "(a .detach(), .data, .item(), numpy or torch.no_grad() in forward?)", tag)
            return
        try:
            torch.autograd.backward([g for _, g in pairs], upstream)
        except Exception as exc:  # noqa: BLE001
            self.record("backward", where, False, f"backward {raised(exc)}", tag)
            return
        problems = []
        for i, (w, g) in enumerate(zip(ref_leaves, stu_leaves)):
            what = "gradient of the input" if len(ref_leaves) == 1 else f"gradient of input {i}"
            problems += self.grad_problems(g.grad, w.grad, tol, what)
        stu_params = dict(stu.named_parameters())
        for name, w in ref.named_parameters():
            if name in stu_params:
                problems += self.grad_problems(stu_params[name].grad, w.grad, tol, f"gradient of {name!r}")
        self.record("backward", where, not problems, "; ".join(problems[:2]), tag)

    @staticmethod
    def grad_problems(got: torch.Tensor | None, want: torch.Tensor | None, tol: tuple[float, float],
                      what: str) -> list[str]:
        if want is None:
            return [] if got is None or not got.any() else [f"{what} is nonzero where torch's is None"]
        if got is None:
            return [f"no {what}: it does not reach the loss (not used in forward, or detached)"]
        return compare.structure(got, want, what) or compare.values(got, want, *tol, what)

    # --- state -----------------------------------------------------------------------------------
    def check_state(self, where: str, ref: nn.Module, stu: nn.Module) -> bool:
        """Same parameter and buffer names and shapes as torch's layer; parameters are Parameters."""
        try:
            want, got = ref.state_dict(), stu.state_dict()
        except Exception as exc:  # noqa: BLE001
            return self.record("state", where, False, f"state_dict() {raised(exc)}")
        problems = []
        missing = [k for k in want if k not in got]
        unexpected = [k for k in got if k not in want]
        if missing:
            problems.append(f"missing parameters/buffers {missing}{_missing_hint(missing, unexpected, stu)}")
        if unexpected:
            note = " (torch's layer has none with these arguments)" if not missing else ""
            problems.append(f"unexpected parameters/buffers {unexpected}{note}")
        for k in want:
            if k in got and isinstance(got[k], torch.Tensor) and got[k].shape != want[k].shape:
                problems.append(f"{k!r} has shape {tuple(got[k].shape)}, expected {tuple(want[k].shape)}")
        stu_params = {n for n, _ in stu.named_parameters()}
        # a module used twice lists its parameters once: not "not a Parameter" but shared
        aliases = {n for n, _ in stu.named_parameters(remove_duplicate=False)} - stu_params
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
        where = case.signature(self.spec.name) + " fresh"
        ref, stu = self.reference(case), self.student(case, where, ("state",))
        if stu is None:
            return
        try:
            stu_tensors = dict(stu.state_dict())
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
        forbidden = sorted(c for c in self.trace.calls if c in self.spec.forbidden_calls)
        self.record("rules", name, not forbidden, f"calls {', '.join(forbidden)}: torch's own implementation of "
                    f"{name}; write it with tensor operations", check="calls")
        modules = module_names(self.trace.modules, self.spec.forbidden_modules, self.cls)
        self.record("rules", name, not modules, f"runs a {', '.join(modules)} module inside its forward: torch's "
                    f"own implementation of {name}", check="modules")
        for scale in self.spec.scales:
            self.check_scale(scale)
        if self.spec.meta and self.cases:
            self.check_meta(self.cases[0])

    def load(self, stu: nn.Module, ref: nn.Module, where: str, check: str) -> bool:
        """Copy torch's state into the student's layer for a rules probe; False (recorded) if it fails."""
        try:
            stu.load_state_dict(ref.state_dict())
            return True
        except Exception:  # noqa: BLE001
            self.record("rules", where, False, "not run: the layer's parameters and buffers must match torch's "
                        "first (see state)", check=check)
            return False

    def count_ops(self, layer: nn.Module, inputs: Inputs) -> int:
        with torch.no_grad(), tracing() as t:
            layer(*inputs.args, **dict(inputs.kwargs))
        return t.op_count

    def check_scale(self, scale: Scale) -> None:
        where = scale.case.signature(self.spec.name)
        ref, stu = self.reference(scale.case), self.student(scale.case, where, ("rules",))
        if stu is None:
            return
        if not self.load(stu, ref, where, scale.what):
            return
        try:
            stu.train()
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
        here, as it would on a GPU."""
        where = case.signature(self.spec.name)
        if where in self.crashed:
            return  # its forward already failed on the real device
        ref, stu = self.reference(case), self.student(case, where, ("rules",))
        if stu is None:
            return
        if not self.load(stu, ref, where, "meta"):
            return
        try:
            stu.to("meta")
            inputs = self.make(case, torch.float32, "meta", device=torch.device("cpu"))
            inputs = Inputs(*_to_device((inputs.args, dict(inputs.kwargs)), torch.device("meta")))
            stu(*inputs.args, **inputs.kwargs)
        except Exception as exc:  # noqa: BLE001
            text = str(exc)
            if isinstance(exc, NotImplementedError) and "meta" in text:
                # an op torch itself cannot run on meta: not the student's fault
                self.report.notes.append(f"the meta-device check was skipped: {text.splitlines()[0][:120]}")
                return
            hint = ("a tensor is created on a fixed device; make new tensors with device=x.device (or register "
                    "them as buffers) so the layer also works on a GPU" if "device" in text else
                    "does the forward read tensor values in Python (.item(), if on a tensor)? That also slows a GPU")
            self.record("rules", where, False, f"forward on device 'meta' {raised(exc)}: {hint}", check="meta")
            return
        self.record("rules", where, True, check="meta")


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [_to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj
