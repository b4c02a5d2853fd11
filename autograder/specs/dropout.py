"""Dropout, Dropout1d, Dropout2d: random zeroing in training mode, the identity in evaluation mode.

In training mode each unit (an element for `Dropout`, a whole channel for `Dropout1d`/`Dropout2d`)
is zeroed with probability p and the survivors are multiplied by 1/(1-p), with a fresh random mask
at every call. torch's own masks cannot be matched element by element, so the engine compares only
evaluation-mode outputs (`modes=("eval",)`: the identity), and `_judge` checks training mode by
its statistics on large inputs with fixed seeds:

- the fraction of dropped units lies within 6 standard deviations of p (a correct layer fails
  with probability about 2e-9 per check; p read as the keep probability misses by 0.3 or more,
  that is 30 or more standard deviations, since every config with p != 0.5 keeps |1 - 2p| >= 0.3
  and has at least 2,048 units);
- every survivor equals x / (1 - p) exactly (up to rounding), every channel is kept or zeroed as a
  whole, and different samples get different channel masks;
- the gradient of the input is upstream * mask / (1 - p) with the forward's own mask;
- a second call draws a new mask, and re-seeding with `torch.manual_seed` repeats the first;
- `inplace=True` writes into its input and returns it, `inplace=False` leaves the input untouched;
- p=0 is the identity and p=1 returns zeros (not the NaN of 0 / (1 - 1)); eval is the identity.

Inputs have magnitudes in [0.5, 1.5], so a zero in the output is a dropped element and nothing else.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .. import compare
from ..engine import SCALE_SLACK, raised
from ..report import Result
from ..spec import Case, Inputs, Maker, Scale, Spec, call, randn, register, seed_of
from ..student import StudentError

# --- what must not be called --------------------------------------------------------------------

_DROPOUT = re.compile(r"dropout", re.IGNORECASE)


def _torch_dropout_calls() -> frozenset[str]:
    """Every torch function and aten op that implements a dropout, as the tracer names them
    (`torch.dropout` is also `torch._VF.dropout`; `aten.native_dropout.default` is
    `torch.ops.aten.native_dropout.default`)."""
    names = {f"torch.nn.functional.{n}" for n in dir(F) if _DROPOUT.search(n)}
    names |= {f"torch.{n}" for n in dir(torch) if _DROPOUT.search(n)}
    names |= {f"torch.{n}" for n in dir(torch._C._VariableFunctions) if _DROPOUT.search(n)}
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and _DROPOUT.search(op):
            packet, _, overload = op.removeprefix("aten::").partition(".")
            names |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(names)


FORBIDDEN_CALLS = _torch_dropout_calls()
#: every torch dropout module; their base class last, so feedback names the most specific one
FORBIDDEN_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                     nn.modules.dropout._DropoutNd)

#: a dropped fraction may be this many standard deviations from p
SIGMAS = 6


class _TorchDropout2d(nn.Dropout2d):
    """torch's Dropout2d without its warning about 3-d inputs.

    torch 2.x reads a 3-d input as (N, C, L) (one mask value per row) and warns that a future
    release will read it as (C, H, W) (one per (H, W) map). The 3-d inputs graded here have H = 1,
    where both readings drop the same elements, so either implementation passes.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="dropout2d: Received a 3D input")
            return super().forward(input)


# --- inputs -------------------------------------------------------------------------------------

class Large(Maker):
    """The judge's Maker: `signed` inputs at their full size, for the statistics."""


#: the engine's own comparisons (evaluation mode: the identity) need no large input
SMALL = 4


def signed(*shape: int) -> Callable[[Maker], Inputs]:
    """Magnitudes in [0.5, 1.5] with random signs: no element is 0, so a 0 in the output is a
    dropped element, and a survivor's ratio to its input is the layer's scale.

    `shape` is the size the judge's statistics need (a `Large` maker); the engine's comparisons in
    evaluation mode get the same number of dimensions, each at most SMALL, so that a slow forward
    cannot make them slow too."""

    def inputs(make: Maker) -> Inputs:
        size = shape if isinstance(make, Large) else tuple(min(d, SMALL) for d in shape)
        magnitude = make.uniform(*size, low=0.5, high=1.5)
        sign = make.randint(0, 2, *size).to(magnitude.dtype) * 2 - 1
        return call(magnitude * sign)

    return inputs


def _mask_dims(channel_dims: int | None, x: torch.Tensor) -> int:
    """How many leading dims index the mask's units: all of them for elementwise dropout; (N, C)
    for a batched channel input, (C,) for one without a batch dimension."""
    if channel_dims is None:
        return x.dim()
    return 2 if x.dim() == channel_dims + 2 else 1


# --- the training-mode judgement ---------------------------------------------------------------

def _fmt(p: float) -> str:
    return f"{p:.4g}"


def _scale_problem(out: torch.Tensor, x: torch.Tensor, p: float, tol: tuple[float, float]) -> str | None:
    """Survivors must be x / (1 - p); name the usual wrong factors."""
    kept = out != 0
    if not kept.any():
        return None
    got, want = out[kept].double(), x[kept].double() / (1 - p)
    if compare.tensor_values(got, want, *tol) is None:
        return None
    ratio = (got / x[kept].double()).median().item()
    factor = f"1/(1 - p) = {_fmt(1 / (1 - p))}"
    if math.isclose(ratio, 1.0, rel_tol=1e-3):
        return (f"the elements kept are not scaled: multiply them by {factor}, so that the expected "
                "output equals the input")
    if p > 0 and math.isclose(ratio, 1 / p, rel_tol=1e-3):
        return (f"the elements kept are multiplied by 1/p = {_fmt(1 / p)}, expected {factor}: p is the "
                "probability of dropping an element, not of keeping it")
    return f"the elements kept are multiplied by {_fmt(ratio)} (median), expected {factor}"


def _fraction_problem(dropped: torch.Tensor, p: float, unit: str, explain: bool = True) -> str | None:
    """The dropped fraction of `dropped` (one bool per unit) must be within SIGMAS sd of p."""
    n = dropped.numel()
    frac = dropped.double().mean().item()
    sd = math.sqrt(p * (1 - p) / n)
    if abs(frac - p) <= SIGMAS * sd + 1e-12:
        return None
    text = f"zeroes {frac:.1%} of {n} {unit}, expected p = {p:.1%} (within ±{SIGMAS * sd:.1%})"
    if explain and p != 0.5 and abs(frac - (1 - p)) <= SIGMAS * sd + 1e-12:
        one = "an element" if unit == "elements" else "a channel"
        text += f": p is the probability of zeroing {one}, not of keeping it"
    return text


def train_problems(out: torch.Tensor, x: torch.Tensor, p: float, lead: int, tol: tuple[float, float]) -> list[str]:
    """What is wrong with one training-mode output `out` of input `x` (empty when right).

    `lead` leading dims index the mask's units (x.dim() for elementwise dropout)."""
    if out.isnan().any():
        hint = " (with p=1, x * mask / (1 - p) divides 0 by 0: return zeros)" if p == 1 else ""
        return [f"the output has {int(out.isnan().sum())} NaN elements{hint}"]
    dropped = out == 0
    if p == 1:
        return [] if dropped.all() else [f"with p=1 every element must be zeroed; {int((~dropped).sum())} are not"]
    if not dropped.any() and p * math.prod(x.shape[:lead]) > 30:
        return ["nothing is zeroed in training mode: dropout must be active when self.training is True (after "
                "layer.train(), the default) and off after layer.eval()"]
    problems = []
    scale = _scale_problem(out, x, p, tol)
    if scale:
        problems.append(scale)
    channelwise = lead < x.dim()
    unit = "channels" if channelwise else "elements"
    if channelwise:
        inner = tuple(range(lead, x.dim()))
        unit_any, unit_all = dropped.any(dim=inner), dropped.all(dim=inner)
        if not torch.equal(unit_any, unit_all):
            mixed = int((unit_any != unit_all).sum())
            shape = tuple(x.shape[:lead]) + (1,) * (x.dim() - lead)
            problems.append(f"drops single elements, not whole channels: {mixed} of {unit_any.numel()} channels are "
                            f"partly zeroed; draw one mask value per channel, of shape {shape}, and let it broadcast")
            return problems
        dropped = unit_all  # one bool per (sample, channel)
        if lead == 2 and dropped.shape[0] > 1 and 0.05 < p < 0.95 and dropped.shape[1] >= 16 \
                and bool((dropped == dropped[:1]).all()):
            problems.append(f"every sample loses the same channels: draw a mask value per sample and channel, of "
                            f"shape {tuple(x.shape[:2]) + (1,) * (x.dim() - 2)}, not one per channel")
    fraction = _fraction_problem(dropped, p, unit, explain=not (scale and "keeping" in scale))
    if fraction:
        problems.append(fraction)
    return problems


def _judge(channel_dims: int | None) -> Callable:
    """The training-mode judgement of a dropout layer whose mask has one value per element
    (`channel_dims=None`) or per channel of `channel_dims` spatial dimensions."""

    def judge(ctx) -> Iterable[Result]:
        parts = set(ctx.parts)
        name = ctx.spec.name
        if "state" in parts:
            yield from _check_p_range(ctx)
        if not parts & {"state", "shape", "forward", "backward", "rules"}:
            return
        loop = _grows(ctx)
        if loop:
            for part in ("shape", "forward", "backward"):
                yield Result(part, name, False, f"not checked in training mode: the forward's op count grows with the "
                             f"input ({loop}), so it would take minutes on the large inputs the statistics need; "
                             "use whole-tensor operations (see rules)", check="train")
            return
        for case in ctx.cases:
            where = case.label(name)
            stu = ctx.student(case, where, ())  # a constructor error is already reported
            if stu is None:
                continue
            p, inplace = float(case.kwargs.get("p", 0.5)), bool(case.kwargs.get("inplace", False))
            if "state" in parts:
                try:
                    found = stu.attrs("p", "inplace")
                except Exception:  # noqa: BLE001 - a fault, reported by the engine
                    continue
                got = (found["p"].value, found["inplace"].value)
                ok = got == (p, inplace)
                yield Result("state", where, ok, "" if ok else (
                    f"the layer should keep its arguments as attributes, like torch's: self.p = {p!r} and "
                    f"self.inplace = {inplace!r}; found p = {got[0]!r}, inplace = {got[1]!r}"), check="attributes")
            for dtype in ctx.spec.dtypes:
                yield from _judge_dtype(ctx, case, where, stu, p, inplace, dtype, channel_dims, parts)

    return judge


def _grows(ctx) -> str | None:
    """The `Scale` (its `what`) on which the student's training-mode forward runs more ops for a
    larger input, found on small inputs before the large ones; None if there is none."""
    factor, extra = SCALE_SLACK
    for scale in ctx.spec.scales:
        stu = ctx.student(scale.case, scale.case.label(ctx.spec.name), ())
        if stu is None:
            return None
        try:
            stu.train(True)
            maker = Maker(torch.float32, ctx.device, seed_of(ctx.spec.name, scale.what))
            small, large = ctx.count_ops(stu, scale.small(maker)), ctx.count_ops(stu, scale.large(maker))
        except Exception:  # noqa: BLE001 - the rules report it
            return None
        if large > factor * small + extra:
            return scale.what
    return None


def _check_p_range(ctx) -> Iterable[Result]:
    """p outside [0, 1] raises ValueError, as torch's does."""
    name = ctx.spec.name
    for p in (1.5, -0.1):
        where = f"{name}(p={p})"
        try:
            ctx.side.build((), {"p": p})
        except StudentError as exc:
            if exc.is_a("ValueError"):
                yield Result("state", where, True, check="p range")
                continue
            yield Result("state", where, False, f"the constructor {raised(exc)}; torch's raises ValueError for p "
                         "outside [0, 1]", check="p range")
            continue
        except Exception as exc:  # noqa: BLE001
            yield Result("state", where, False, f"the constructor {raised(exc)}; torch's raises ValueError for p "
                         "outside [0, 1]", check="p range")
            continue
        yield Result("state", where, False, "should raise ValueError, like torch's: p is a probability, "
                     "between 0 and 1", check="p range")


def _run(ctx, stu, x: torch.Tensor, seed: int, *, train: bool = True, traced: bool = True, **options):
    """One forward of the student's layer on `x` after seeding torch's generator (its `Forward`)."""
    stu.train(train)
    return ctx.forward(stu, call(x), traced=traced, seed=seed, **options)


def _judge_dtype(ctx, case: Case, where: str, stu: nn.Module, p: float, inplace: bool, dtype: torch.dtype,
                 channel_dims: int | None, parts: set) -> Iterable[Result]:
    short = str(dtype).replace("torch.", "")
    tag = f"{short}, train"
    tol = ctx.spec.tolerances[dtype]
    x = case.inputs(Large(dtype, ctx.device, seed_of(ctx.spec.name, case.desc, short, "inputs"))).args[0]
    lead = _mask_dims(channel_dims, x)
    seed = seed_of(ctx.spec.name, case.desc, short, "train")

    # forward, shape, in-place semantics, statistics, fresh masks, reproducibility
    if parts & {"shape", "forward", "rules"}:
        try:
            run = _run(ctx, stu, x, seed, alias=True)
        except Exception as exc:  # noqa: BLE001
            for part in ("shape", "forward"):
                yield Result(part, where, False, f"forward in training mode {raised(exc)}", tag, "train")
            return
        out, x1 = run.output, (run.inputs_after or [x])[0]
        structure = compare.structure(out, x)
        yield Result("shape", where, not structure, "; ".join(structure), tag, "train")
        if structure:
            yield Result("forward", where, False, "values not checked: " + structure[0], tag, "train")
            return
        problems = train_problems(out, x, p, lead, tol)
        if inplace and not (run.shares and torch.equal(x1, out)):
            problems.append("with inplace=True the layer must write its result into its input and return that "
                            "tensor (an in-place operation such as x.mul_(...)), like torch's")
        if not inplace and not torch.equal(x1, x):
            problems.append("with inplace=False the input must be left unchanged, but your layer modified it: "
                            "compute the output as a new tensor")
        if 0 < p < 1 and not problems:
            try:
                again = _run(ctx, stu, x, seed + 1).output
                repeat = _run(ctx, stu, x, seed).output
            except Exception as exc:  # noqa: BLE001
                problems.append(f"a second forward {raised(exc)}")
            else:
                if not isinstance(again, torch.Tensor) or torch.equal(again == 0, out == 0):
                    problems.append("the same elements are zeroed at every call: draw a new random mask in every "
                                    "forward (not once in __init__, and without re-seeding the generator)")
                elif not isinstance(repeat, torch.Tensor) or not torch.equal(repeat, out):
                    problems.append("torch.manual_seed does not make your masks reproducible: draw them with torch's "
                                    "random functions (torch.rand, torch.bernoulli, Tensor.bernoulli_), not with "
                                    "Python's random or numpy")
        yield Result("forward", where, not problems, "; ".join(problems[:2]), tag, "train")

        # evaluation mode: the identity (the engine compares values too; this names the cause)
        try:
            run = _run(ctx, stu, x, seed, train=False, alias=True)
        except Exception as exc:  # noqa: BLE001
            yield Result("forward", where, False, f"forward in eval mode {raised(exc)}", f"{short}, eval", "eval")
        else:
            got, x_eval = run.output, (run.inputs_after or [x])[0]
            same_shape = type(got) is torch.Tensor and got.shape == x.shape
            changed = int((got != x).sum()) if same_shape else x.numel()
            ok = same_shape and changed == 0 and torch.equal(x_eval, x)
            yield Result("forward", where, ok, "" if ok else (
                "dropout is still active in eval mode: after layer.eval() (self.training is False) it must return "
                "its input unchanged" + (f"; yours changes {changed} of {x.numel()} elements" if changed else "")),
                f"{short}, eval", "eval")

    # backward: the gradient goes through the forward's mask, with the same scale
    if "backward" in parts:
        upstream = Maker(dtype, ctx.device, seed_of(ctx.spec.name, case.desc, short, "upstream")).randn(*x.shape)
        try:
            run = _run(ctx, stu, x, seed + 2, traced=False, leaves=True, clone=True)
        except Exception as exc:  # noqa: BLE001
            yield Result("backward", where, False, f"not run: the forward in training mode {raised(exc)}", tag,
                         "train")
            return
        out = run.output
        if type(out) is not torch.Tensor or out.shape != x.shape:
            yield Result("backward", where, False, "not run: the output has the wrong type or shape (see shape)", tag,
                         "train")
            return
        if not run.requires_grad[0]:
            yield Result("backward", where, False, "the output does not require grad: the autograd graph is broken "
                         "(a .detach(), .data, numpy or torch.no_grad() in forward?)", tag, "train")
            return
        try:
            grad = stu.backward([0], [upstream]).inputs[0]
        except Exception as exc:  # noqa: BLE001
            yield Result("backward", where, False, f"backward {raised(exc)}", tag, "train")
            return
        kept = (out != 0).to(dtype)
        want = upstream * kept / (1 - p) if p < 1 else torch.zeros_like(upstream)
        problems = _grad_problems(grad, want, tol)
        if problems and p < 1 and grad is not None and grad.shape == want.shape \
                and compare.tensor_values(grad, upstream * kept, *tol) is None:
            problems = ["the gradient is not scaled: it must be upstream * mask / (1 - p), the same factor as the "
                        "forward"]
        elif problems:
            problems[0] += "; it must be upstream * mask / (1 - p), with the mask of that same forward"
        yield Result("backward", where, not problems, "; ".join(problems[:1]), tag, "train")


def _grad_problems(got: torch.Tensor | None, want: torch.Tensor, tol: tuple[float, float]) -> list[str]:
    if got is None:
        return ["no gradient of the input: it does not reach the output (detached?)"]
    return compare.structure(got, want, "gradient of the input") or compare.values(got, want, *tol,
                                                                                  "gradient of the input")


# --- the suites ---------------------------------------------------------------------------------

def _p(rng: random.Random) -> float:
    """A probability far enough from 0.5 that reading it as the keep probability shows."""
    return round(rng.choice([rng.uniform(0.1, 0.35), rng.uniform(0.65, 0.9)]), 2)


def _dropout_hidden(rng: random.Random) -> Iterable[Case]:
    shape = (rng.randint(100, 300), rng.randint(200, 400))
    yield Case("hidden_p", (), {"p": _p(rng)}, signed(*shape))
    yield Case("hidden_inplace", (), {"p": _p(rng), "inplace": True},
               signed(rng.randint(4, 8), 64, rng.randint(100, 200)))


def _channel_hidden(spatial: int) -> Callable[[random.Random], Iterable[Case]]:
    def hidden(rng: random.Random) -> Iterable[Case]:
        n, c = rng.randint(32, 64), rng.randint(64, 128)
        size = [rng.randint(2, 5) for _ in range(spatial)]
        yield Case("hidden_p", (), {"p": _p(rng)}, signed(n, c, *size))
        # no batch dimension; for Dropout2d H = 1, where torch's two readings of a 3-d input agree
        rest = [rng.randint(2, 8)] if spatial == 1 else [1, rng.randint(2, 8)]
        yield Case("hidden_no_batch_inplace", (), {"p": _p(rng), "inplace": True},
                   signed(rng.randint(2048, 4096), *rest))

    return hidden


def _spec(name: str, reference: Callable[..., nn.Module], cases: tuple[Case, ...], hidden, channel_dims: int | None,
          scales: tuple[Scale, ...], bench: Case) -> Spec:
    return Spec(
        name=name,
        chapter="dropout",
        reference=reference,
        cases=cases,
        hidden=hidden,
        scales=scales,
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        modes=("eval",),  # training-mode outputs are random: `_judge` checks them by their statistics
        clone_inputs=True,  # an in-place layer cannot write into a leaf that requires grad
        judges=(_judge(channel_dims),),
        bench=bench,
    )


register(
    _spec(
        "Dropout", nn.Dropout,
        cases=(
            Case("default", (), {}, signed(200, 500)),  # 100,000 elements: the fraction's sd is 0.16%
            Case("p_0_2", (), {"p": 0.2}, signed(200, 500)),
            Case("p_0_8", (), {"p": 0.8}, signed(200, 500)),
            Case("inplace", (), {"p": 0.3, "inplace": True}, signed(200, 500)),
            Case("four_dims", (), {"p": 0.25}, signed(4, 8, 32, 32)),  # elementwise, whatever the shape
            Case("p_0", (), {"p": 0.0}, signed(20, 30)),
            Case("p_1", (), {"p": 1.0}, signed(20, 30)),
        ),
        hidden=_dropout_hidden,
        channel_dims=None,
        scales=(Scale("batch size 4 vs 64", Case("scale", (), {"p": 0.3}), randn(4, 16), randn(64, 16)),),
        bench=Case("bench", (), {"p": 0.1}, randn(256, 4096)),
    ),
    _spec(
        "Dropout1d", nn.Dropout1d,
        cases=(
            Case("default", (), {}, signed(64, 64, 8)),  # 4,096 channels of length 8
            Case("p_0_2", (), {"p": 0.2}, signed(64, 64, 8)),
            Case("no_batch", (), {"p": 0.3}, signed(4096, 6)),  # (C, L)
            Case("inplace", (), {"p": 0.7, "inplace": True}, signed(32, 128, 4)),
            Case("p_0", (), {"p": 0.0}, signed(4, 8, 5)),
            Case("p_1", (), {"p": 1.0}, signed(4, 8, 5)),
        ),
        hidden=_channel_hidden(1),
        channel_dims=1,
        scales=(Scale("input (2, 3, 4) vs (16, 24, 32)", Case("scale", (), {"p": 0.3}), randn(2, 3, 4),
                      randn(16, 24, 32)),),
        bench=Case("bench", (), {"p": 0.1}, randn(64, 256, 128)),
    ),
    _spec(
        "Dropout2d", _TorchDropout2d,
        cases=(
            Case("default", (), {}, signed(32, 64, 4, 4)),  # 2,048 channels of 4x4
            Case("p_0_2", (), {"p": 0.2}, signed(32, 64, 5, 5)),
            Case("no_batch", (), {"p": 0.3}, signed(4096, 1, 8)),  # (C, H, W) with H = 1: see _TorchDropout2d
            Case("inplace", (), {"p": 0.75, "inplace": True}, signed(32, 64, 3, 3)),
            Case("p_0", (), {"p": 0.0}, signed(2, 8, 3, 3)),
            Case("p_1", (), {"p": 1.0}, signed(2, 8, 3, 3)),
        ),
        hidden=_channel_hidden(2),
        channel_dims=2,
        scales=(Scale("input (2, 3, 4, 4) vs (8, 24, 16, 16)", Case("scale", (), {"p": 0.3}), randn(2, 3, 4, 4),
                      randn(8, 24, 16, 16)),),
        bench=Case("bench", (), {"p": 0.1}, randn(64, 128, 32, 32)),
    ),
)
