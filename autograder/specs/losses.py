"""Losses: MSELoss, BCELoss, BCEWithLogitsLoss and CrossEntropyLoss, each with `reduction`.

A loss is a module like any other: `loss(input, target)` returns a tensor, and its gradient with
respect to `input` (and to a float `target`) is compared with torch's. Targets are class indices
(integer tensors, which carry no gradient) or float values and probabilities. Class weights
(`weight`) and BCEWithLogitsLoss's `pos_weight` are buffers, as in torch, so a `state_dict`
loads either way.

The cases are chosen so that the numerically naive versions fail on values, not only in
principle: logits of ±1000 (the log-sum-exp without its max, `log(softmax(x))`, and
`log(sigmoid(x))` all give inf there), probabilities of exactly 0 and 1 (torch clamps each log at
-100), and targets equal to `ignore_index` (the mean divides by the weight of the targets kept,
not by their number or by N). The wrong outputs below are computed by `_cross_entropy` and
friends, plain re-implementations with switches for the ways students typically go wrong.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..engine import raised
from ..spec import Case, Inputs, Maker, Mistake, Scale, Spec, call, register


def _short(value: Any) -> str:
    """Constructor arguments as a student would type them: `tensor([1.0, 2.0, 0.5])` on one line."""
    if isinstance(value, torch.Tensor):
        return f"tensor({_rounded(value.tolist())})"
    return repr(value)


def _rounded(x: Any) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_rounded(v) for v in x) + "]"
    return repr(round(x, 6) if isinstance(x, float) else x)


@dataclass(frozen=True)
class LossCase(Case):
    """A case whose feedback line shows tensors on one line and says what is special about the
    inputs: `CrossEntropyLoss(reduction='none') on logits of ±1000: ...`."""

    note: str = ""

    def signature(self, name: str) -> str:
        parts = [_short(a) for a in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"{name}({', '.join(parts)}) {self.note}".rstrip()


# --- what must not be called --------------------------------------------------------------------

def _forbidden(*names: str) -> frozenset[str]:
    """Every spelling under which the tracer may see these functions: `torch.nn.functional.x`,
    `torch.x`, `torch.Tensor.x`, `torch.special.x`, the bare `x` of `torch._C._nn.x`, and the aten
    ops `aten.x` and `aten.x.<overload>` (from `torch.ops.aten`)."""
    found = set()
    for n in names:
        found |= {n, f"torch.nn.functional.{n}", f"torch.{n}", f"torch.Tensor.{n}", f"torch.special.{n}",
                  f"torch._C._nn.{n}", f"aten.{n}", f"aten.{n}.default"}
    pattern = re.compile("|".join(re.escape(n) for n in names))
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and pattern.fullmatch(op.removeprefix("aten::").partition(".")[0]):
            packet, _, overload = op.removeprefix("aten::").partition(".")
            found |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(found)


MSE_CALLS = _forbidden("mse_loss")
BCE_CALLS = _forbidden("binary_cross_entropy", "binary_cross_entropy_with_logits")
# log sigma(x) in its stable form is the heart of the exercise: logsigmoid and softplus (which is
# -logsigmoid(-x)) are torch's own pieces of BCEWithLogitsLoss
BCE_LOGITS_CALLS = BCE_CALLS | _forbidden("logsigmoid", "log_sigmoid", "log_sigmoid_forward", "softplus")
# log_softmax is the first half of torch's cross-entropy and nll_loss the second; torch.logsumexp
# (a general reduction, stable by construction) and softmax stay allowed
CE_CALLS = _forbidden("cross_entropy", "cross_entropy_loss", "linear_cross_entropy", "nll_loss", "nll_loss2d",
                      "nll_loss_nd", "nll_loss_forward", "nll_loss2d_forward", "log_softmax", "_log_softmax",
                      "special_log_softmax", "kl_div")


# --- plain re-implementations, with the usual mistakes as switches ------------------------------

def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


def _mse(ref: nn.Module, i: Inputs, *, power: int = 2, root: bool = False, reduction: str | None = None,
         per_sample: bool = False) -> torch.Tensor:
    x, y = i.args
    err = (x - y).abs() ** power
    if per_sample:  # summed over features, averaged over the batch only
        return err.sum() / x.shape[0]
    out = _reduce(err, reduction or ref.reduction)
    return out.sqrt() if root else out


def _bce(ref: nn.Module, i: Inputs, *, clamp: bool = True, swapped: bool = False, use_weight: bool = True,
         weight_mean: bool = False, reduction: str | None = None) -> torch.Tensor:
    x, y = i.args
    log_x, log_1mx = x.log(), (1 - x).log()
    if clamp:
        log_x, log_1mx = log_x.clamp(min=-100), log_1mx.clamp(min=-100)
    if swapped:
        log_x, log_1mx = log_1mx, log_x
    loss = -(y * log_x + (1 - y) * log_1mx)
    if use_weight and ref.weight is not None:
        loss = loss * ref.weight
        if weight_mean and (reduction or ref.reduction) == "mean":
            return loss.sum() / ref.weight.expand_as(loss).sum()
    return _reduce(loss, reduction or ref.reduction)


def _bce_logits(ref: nn.Module, i: Inputs, *, naive: bool | float = False, pos_weight: str = "positive",
                use_weight: bool = True, reduction: str | None = None) -> torch.Tensor:
    """naive: True computes log(sigmoid(x)), a number clamps sigmoid(x) to [naive, 1 - naive] first;
    pos_weight: "positive" (torch's), "negative" (scales the y = 0 term), "all" (the whole loss)
    or "ignored"."""
    x, y = i.args
    if naive:
        p = torch.sigmoid(x)
        if not isinstance(naive, bool):
            p = p.clamp(naive, 1 - naive)
        log_p, log_q = p.log(), (1 - p).log()
    else:
        log_p = -((-x).clamp(min=0) + torch.log1p(torch.exp(-x.abs())))  # log sigma(x)
        log_q = log_p - x  # log(1 - sigma(x)) = log sigma(-x)
    pw = ref.pos_weight if ref.pos_weight is not None else None
    pos, neg = y * log_p, (1 - y) * log_q
    if pw is not None and pos_weight == "positive":
        pos = pos * pw
    elif pw is not None and pos_weight == "negative":
        neg = neg * pw
    loss = -(pos + neg)
    if pw is not None and pos_weight == "all":
        loss = loss * pw
    if use_weight and ref.weight is not None:
        loss = loss * ref.weight
    return _reduce(loss, reduction or ref.reduction)


def _cross_entropy(ref: nn.Module, i: Inputs, *, lse: str = "stable", mean_over: str = "weights",
                   smoothing: str = "torch", zero_ignored: bool = True, softmax_dim: int | None = None,
                   reduction: str | None = None) -> torch.Tensor:
    """torch's cross-entropy, or a known wrong version of it.

    lse: "stable" (x - logsumexp), "naive" (log of the sum of exp, no max subtracted) or
         "softmax" (log(softmax(x)), which underflows);
    mean_over: what the mean divides by with class-index targets: "weights" (torch: the summed
         weight of the targets kept), "count" (their number, weights ignored), "all" (every
         target, ignored ones included);
    smoothing: "torch", "off_c_minus_1" (eps / (C - 1) on the other classes), "target_weight"
         (the smoothing term weighted by the target's class weight) or "ignored";
    zero_ignored: False keeps the loss of targets equal to ignore_index;
    softmax_dim: the dimension the log-softmax normalises over (torch: the class dimension, 1, or
         0 without a batch; a common mistake is -1, which differs with extra dimensions).
    """
    x, y = i.args
    cd = 0 if x.dim() == 1 else 1
    sd = cd if softmax_dim is None else softmax_dim
    n_classes = x.shape[cd]
    if lse == "stable":
        logp = x - x.logsumexp(sd, keepdim=True)
    elif lse == "naive":
        logp = x - x.exp().sum(sd, keepdim=True).log()
    else:
        logp = x.softmax(sd).log()
    eps, w, red = ref.label_smoothing, ref.weight, reduction or ref.reduction
    shape = [1] * x.dim()
    shape[cd] = n_classes
    w_class = w.view(shape) if w is not None else torch.ones(shape, dtype=x.dtype, device=x.device)
    if y.is_floating_point():  # class probabilities
        q = y * (1 - eps) + eps / n_classes if smoothing != "ignored" else y
        loss = -(logp * q * w_class).sum(cd)
        return loss.sum() / (x.numel() // n_classes) if red == "mean" else _reduce(loss, red)
    keep = y != ref.ignore_index
    safe = torch.where(keep, y, torch.zeros_like(y))
    picked = logp.gather(cd, safe.unsqueeze(cd)).squeeze(cd)
    w_target = w[safe] if w is not None else torch.ones_like(picked)
    if zero_ignored:
        w_target = w_target * keep
    loss = -picked * w_target
    if eps and smoothing != "ignored":
        if smoothing == "off_c_minus_1":
            others = -(logp.sum(cd) - picked) * (w_target if w is not None else keep)
            loss = (1 - eps) * loss + eps / (n_classes - 1) * others
        else:
            smooth = -(logp * w_class).sum(cd) if smoothing == "torch" else -logp.sum(cd) * w_target
            loss = (1 - eps) * loss + eps / n_classes * smooth * (keep if zero_ignored else 1)
    if red != "mean":
        return _reduce(loss, red)
    denominator = {"weights": w_target.sum(), "count": keep.sum(), "all": torch.tensor(y.numel())}[mean_over]
    return loss.sum() / denominator


def _mistake(cause: str, fn: Callable, **switches: Any) -> Mistake:
    return Mistake(cause, lambda ref, i: fn(ref, i, **switches))


def _other_reduction(fn: Callable) -> tuple[Mistake, ...]:
    return (
        Mistake("`reduction` is ignored and the mean is returned",
                lambda ref, i: fn(ref, i, reduction="mean") if ref.reduction != "mean" else None),
        Mistake("the sum is returned instead of the mean",
                lambda ref, i: fn(ref, i, reduction="sum") if ref.reduction == "mean" else None),
    )


# --- inputs --------------------------------------------------------------------------------------

def _probs(make: Maker, *shape: int) -> torch.Tensor:
    """Probabilities strictly inside (0, 1), away from the ends where torch's gradient differs."""
    return make.uniform(*shape, low=0.02, high=0.98)


def _labels(make: Maker, n_classes: int, *shape: int, ignore: int | None = None, every: int = 3) -> torch.Tensor:
    """Class indices; with `ignore`, every `every`-th target (the first included) is `ignore` and
    no other is, so a batch of two or more always keeps some targets (all ignored makes torch's
    mean 0 / 0 = NaN)."""
    if ignore is None or not 0 <= ignore < n_classes:
        t = make.randint(0, n_classes, *shape)
    else:
        t = make.randint(0, n_classes - 1, *shape)
        t = t + (t >= ignore).long()  # every class but `ignore`
    if ignore is not None:
        t.view(-1)[::every] = ignore
    return t


def _soft_labels(make: Maker, n_classes: int, *shape: int) -> torch.Tensor:
    """Class probabilities along dim 1 (dim 0 without a batch) that sum to 1."""
    t = make.randn(*shape, scale=2.0)
    return t.softmax(1 if len(shape) > 1 else 0)


def _binary(make: Maker, *shape: int) -> torch.Tensor:
    return make.randint(0, 2, *shape, dtype=make.dtype)


def _weights(rng: random.Random, n: int) -> torch.Tensor:
    """Positive class weights drawn from `rng`, rounded so feedback shows short numbers."""
    return torch.tensor([round(rng.uniform(0.2, 3.0), 1) for _ in range(n)])


# --- forward-only cases ----------------------------------------------------------------------------

def forward_only(*cases: Case) -> Callable:
    """A judge that compares only the forward of these cases (shape and values, both dtypes), for
    inputs where torch's hand-written backward differs from any autograd of the forward (BCE at
    probabilities of exactly 0 and 1)."""

    def judge(ctx) -> Iterable:
        if not {"shape", "forward"} & set(ctx.parts):
            return ()
        for case in cases:
            where = case.label(ctx.spec.name)
            ref, stu = ctx.reference(case), ctx.student(case, where, ("shape", "forward"))
            if stu is None:
                continue
            for dtype in ctx.spec.dtypes:
                r = copy.deepcopy(ref).to(dtype)
                try:
                    stu.to(dtype=dtype)
                    stu.load_state_dict(r.state_dict())
                except Exception as exc:  # noqa: BLE001
                    ctx.fail_all(where, f"loading torch's state in {dtype} {raised(exc)}", ("shape", "forward"))
                    break
                short = str(dtype).replace("torch.", "")
                if not ctx.step(case, where, short, r, stu, dtype, "forward_only", backward=False):
                    break
        return ()

    return judge


# --- MSELoss -----------------------------------------------------------------------------------------

def _mse_hidden(rng: random.Random) -> Iterable[Case]:
    n, f = rng.randint(1, 9), rng.randint(1, 6)
    yield LossCase("hidden_mean", (), {}, lambda make: call(make.randn(n, f), make.randn(n, f)))
    red = rng.choice(["sum", "none"])
    d = [rng.randint(1, 4) for _ in range(rng.randint(1, 4))]
    yield LossCase(f"hidden_{red}", (), {"reduction": red}, lambda make: call(make.randn(*d), make.randn(*d)))


def _pair(*shape: int, scale: float = 1.0) -> Callable[[Maker], Inputs]:
    return lambda make: call(make.randn(*shape, scale=scale), make.randn(*shape, scale=scale))


register(Spec(
    name="MSELoss",
    chapter="losses",
    reference=nn.MSELoss,
    cases=(
        # the page's worked example has 4 predictions; here 8 samples of 3 outputs
        LossCase("default", (), {}, _pair(8, 3)),
        LossCase("sum", (), {"reduction": "sum"}, _pair(8, 3)),
        LossCase("none", (), {"reduction": "none"}, _pair(8, 3)),
        LossCase("images", (), {}, _pair(2, 3, 4, 4), note="on inputs (2, 3, 4, 4)"),
        LossCase("no_batch", (), {}, _pair(5), note="on inputs (5,)"),
        LossCase("large_errors", (), {"reduction": "sum"}, _pair(6, scale=100.0), note="on errors of about 100"),
    ),
    hidden=_mse_hidden,
    scales=(Scale("batch size 4 vs 64", LossCase("scale"), _pair(4, 3), _pair(64, 3)),),
    forbidden_calls=MSE_CALLS,
    forbidden_modules=(nn.MSELoss,),
    mistakes=(
        *_other_reduction(_mse),
        _mistake("the error is not squared (that is L1Loss, the mean absolute error)", _mse, power=1),
        _mistake("the square root of the mean is taken (RMSE, not MSE)", _mse, root=True),
        _mistake("the squares are summed over the features and averaged over the batch only: torch's 'mean' "
                 "averages over every element", _mse, per_sample=True),
    ),
    bench=Case("bench", (), {}, _pair(256, 1000)),
))


# --- BCELoss -------------------------------------------------------------------------------------------

def _bce_inputs(*shape: int, soft: bool = False) -> Callable[[Maker], Inputs]:
    return lambda make: call(_probs(make, *shape), _probs(make, *shape) if soft else _binary(make, *shape))


def _bce_hidden(rng: random.Random) -> Iterable[Case]:
    n, c = rng.randint(2, 9), rng.randint(1, 6)
    yield LossCase("hidden_weight", (), {"weight": _weights(rng, c), "reduction": rng.choice(["mean", "sum"])},
               _bce_inputs(n, c))
    d = [rng.randint(1, 4) for _ in range(rng.randint(1, 3))]
    yield LossCase("hidden_soft", (), {"reduction": rng.choice(["mean", "none"])}, _bce_inputs(*d, soft=True),
                   note=f"with soft targets, inputs {tuple(d)}")


#: probabilities of exactly 0 and 1 against both labels: torch clamps each log at -100
BCE_EDGES = LossCase("edges", (), {"reduction": "none"},
                  lambda make: call(make.tensor([0.0, 1.0, 0.0, 1.0, 1e-30, 0.5]),
                                    make.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.5])),
                  note="on probabilities of exactly 0 and 1")

register(Spec(
    name="BCELoss",
    chapter="losses",
    reference=nn.BCELoss,
    cases=(
        LossCase("default", (), {}, _bce_inputs(8, 3)),
        LossCase("sum", (), {"reduction": "sum"}, _bce_inputs(8, 3)),
        LossCase("none", (), {"reduction": "none"}, _bce_inputs(8, 3)),
        LossCase("soft_targets", (), {}, _bce_inputs(8, 3, soft=True), note="with soft targets"),
        LossCase("weight", (), {"weight": torch.tensor([1.0, 2.0, 0.5])}, _bce_inputs(8, 3)),
        LossCase("weight_per_sample", (), {"weight": torch.tensor([[0.5], [1.0], [2.0], [3.0]]), "reduction": "sum"},
             _bce_inputs(4, 2)),
        LossCase("no_batch", (), {}, _bce_inputs(5), note="on inputs (5,)"),
    ),
    hidden=_bce_hidden,
    scales=(Scale("batch size 4 vs 64", LossCase("scale", (), {"weight": torch.tensor([1.0, 2.0, 0.5])}),
                  _bce_inputs(4, 3), _bce_inputs(64, 3)),),
    forbidden_calls=BCE_CALLS,
    forbidden_modules=(nn.BCELoss, nn.BCEWithLogitsLoss),
    mistakes=(
        *_other_reduction(_bce),
        _mistake("the logs are not clamped: torch clamps log(x) and log(1 - x) at -100, so a probability of "
                 "exactly 0 or 1 costs 100, not inf", _bce, clamp=False),
        _mistake("the two terms are swapped: y * log(1 - x) + (1 - y) * log(x)", _bce, swapped=True),
        _mistake("`weight` is ignored", _bce, use_weight=False),
        _mistake("the mean divides by the sum of the weights: BCELoss's mean is over the elements", _bce,
                 weight_mean=True),
        Mistake("the minus sign is missing", lambda ref, i: -_bce(ref, i)),
    ),
    judges=(forward_only(BCE_EDGES),),
    bench=Case("bench", (), {}, _bce_inputs(256, 1000)),
))


# --- BCEWithLogitsLoss ----------------------------------------------------------------------------------

def _logit_inputs(*shape: int, scale: float = 3.0, soft: bool = False) -> Callable[[Maker], Inputs]:
    return lambda make: call(make.randn(*shape, scale=scale), _probs(make, *shape) if soft else _binary(make, *shape))


def _bce_logits_hidden(rng: random.Random) -> Iterable[Case]:
    n, c = rng.randint(2, 9), rng.randint(1, 6)
    yield LossCase("hidden_pos_weight", (), {"pos_weight": _weights(rng, c), "reduction": rng.choice(["mean", "sum"])},
               _logit_inputs(n, c))
    yield LossCase("hidden_weight_pos_weight", (), {"weight": _weights(rng, c), "pos_weight": _weights(rng, c)},
               _logit_inputs(n, c, soft=rng.random() < 0.5))
    d = [rng.randint(1, 4) for _ in range(rng.randint(1, 3))]
    yield LossCase("hidden_soft", (), {"reduction": rng.choice(["mean", "none"])}, _logit_inputs(*d, soft=True),
                   note=f"with soft targets, inputs {tuple(d)}")


#: logits of ±1000 (and moderately large ones) against both labels; no exact 0, where the
#: gradient of |x| is a matter of convention
LOGITS_LARGE = lambda make: call(make.tensor([[-1000.0, 1000.0, -1000.0, 1000.0], [-30.0, 30.0, 0.5, -0.5]]),  # noqa: E731
                                 make.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]]))

register(Spec(
    name="BCEWithLogitsLoss",
    chapter="losses",
    reference=nn.BCEWithLogitsLoss,
    cases=(
        LossCase("default", (), {}, _logit_inputs(8, 3)),
        LossCase("sum", (), {"reduction": "sum"}, _logit_inputs(8, 3)),
        LossCase("none", (), {"reduction": "none"}, _logit_inputs(8, 3)),
        LossCase("soft_targets", (), {}, _logit_inputs(8, 3, soft=True), note="with soft targets"),
        LossCase("large_logits", (), {"reduction": "none"}, LOGITS_LARGE, note="on logits of ±1000"),
        LossCase("large_logits_mean", (), {}, LOGITS_LARGE, note="on logits of ±1000"),
        LossCase("pos_weight", (), {"pos_weight": torch.tensor([3.0, 1.0, 0.5])}, _logit_inputs(8, 3)),
        LossCase("weight", (), {"weight": torch.tensor([1.0, 2.0, 0.5])}, _logit_inputs(8, 3)),
        LossCase("weight_pos_weight", (), {"weight": torch.tensor([[0.5], [2.0], [1.0], [1.5]]),
                                       "pos_weight": torch.tensor([2.0, 0.25]), "reduction": "sum"},
             _logit_inputs(4, 2, soft=True), note="with soft targets"),
        LossCase("no_batch", (), {}, _logit_inputs(5), note="on inputs (5,)"),
    ),
    hidden=_bce_logits_hidden,
    scales=(Scale("batch size 4 vs 64", LossCase("scale", (), {"pos_weight": torch.tensor([3.0, 1.0, 0.5])}),
                  _logit_inputs(4, 3), _logit_inputs(64, 3)),),
    forbidden_calls=BCE_LOGITS_CALLS,
    forbidden_modules=(nn.BCELoss, nn.BCEWithLogitsLoss, nn.LogSigmoid, nn.Softplus),
    mistakes=(
        *_other_reduction(_bce_logits),
        _mistake("the loss is computed as log(sigmoid(x)): sigmoid(x) rounds to 0 (or 1) for large |x| and "
                 "log(0) = -inf. Use log sigmoid(x) = -(max(-x, 0) + log1p(exp(-|x|)))", _bce_logits, naive=True),
        *(_mistake(f"sigmoid(x) is clamped to [{eps:g}, 1 - {eps:g}] before the log: the loss of a large logit is "
                   "then capped (at about 16 for 1e-7) instead of growing like |x|", _bce_logits, naive=eps)
          for eps in (1e-7, 1e-8, 1e-12)),
        _mistake("`pos_weight` is ignored", _bce_logits, pos_weight="ignored"),
        _mistake("`pos_weight` scales the negative term (y = 0) instead of the positive one", _bce_logits,
                 pos_weight="negative"),
        _mistake("`pos_weight` scales the whole loss instead of the positive term only", _bce_logits,
                 pos_weight="all"),
        _mistake("`weight` is ignored", _bce_logits, use_weight=False),
    ),
    bench=Case("bench", (), {}, _logit_inputs(256, 1000)),
))


# --- CrossEntropyLoss ----------------------------------------------------------------------------------

def _ce_inputs(n: int, c: int, *spatial: int, ignore: int | None = None, scale: float = 2.0,
               soft: bool = False) -> Callable[[Maker], Inputs]:
    """Logits (n, c, *spatial) (or (c,) when n is 0) and class-index or probability targets."""
    batch = (n,) if n else ()
    logits_shape = (*batch, c, *spatial)

    def make_inputs(make: Maker) -> Inputs:
        logits = make.randn(*logits_shape, scale=scale)
        if soft:
            return call(logits, _soft_labels(make, c, *logits_shape))
        return call(logits, _labels(make, c, *batch, *spatial, ignore=ignore))

    return make_inputs


PROBS = "with class probabilities as targets"

#: two samples whose winning logits are 2000 apart: exp(1000) overflows in float64 too
CE_LARGE = lambda make: call(make.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0],  # noqa: E731
                                          [1000.0, 1000.0, -1000.0]]),
                             make.tensor([1, 1, 2], dtype=torch.long))


def _ce_hidden(rng: random.Random) -> Iterable[Case]:
    c, n = rng.randint(2, 8), rng.randint(3, 9)
    ignore = rng.randrange(c)
    yield LossCase("hidden_weight_ignore", (), {"weight": _weights(rng, c), "ignore_index": ignore},
                   _ce_inputs(n, c, ignore=ignore), note=f"with every third target = {ignore}")
    ignore = rng.randrange(c)
    yield LossCase("hidden_ignore", (), {"ignore_index": ignore, "reduction": rng.choice(["mean", "sum", "none"])},
                   _ce_inputs(rng.randint(3, 9), c, ignore=ignore), note=f"with every third target = {ignore}")
    eps = round(rng.uniform(0.05, 0.4), 2)
    kwargs = {"label_smoothing": eps}
    if rng.random() < 0.5:
        kwargs["weight"] = _weights(rng, c)
    yield LossCase("hidden_smoothing", (), kwargs, _ce_inputs(rng.randint(2, 9), c))
    yield LossCase("hidden_probabilities", (), {"reduction": rng.choice(["mean", "sum", "none"]),
                                                "label_smoothing": rng.choice([0.0, eps])},
                   _ce_inputs(rng.randint(1, 9), c, soft=True), note=PROBS)
    spatial, n_spatial = [rng.randint(1, 4) for _ in range(rng.randint(1, 2))], rng.randint(2, 4)
    yield LossCase("hidden_spatial", (), {"ignore_index": -100, "label_smoothing": rng.choice([0.0, eps])},
                   _ce_inputs(n_spatial, c, *spatial, ignore=-100),
                   note=f"on logits {(n_spatial, c, *spatial)} with every third target = -100")
    yield LossCase("hidden_no_batch", (), {"reduction": rng.choice(["mean", "none"])}, _ce_inputs(0, c),
                   note=f"on one unbatched sample: logits ({c},), target ()")


CE_WEIGHT = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5])

register(Spec(
    name="CrossEntropyLoss",
    chapter="losses",
    reference=nn.CrossEntropyLoss,
    cases=(
        LossCase("default", (), {}, _ce_inputs(8, 5)),
        LossCase("sum", (), {"reduction": "sum"}, _ce_inputs(8, 5)),
        LossCase("none", (), {"reduction": "none"}, _ce_inputs(8, 5)),
        LossCase("large_logits", (), {"reduction": "none"}, CE_LARGE, note="on logits of ±1000"),
        LossCase("large_logits_mean", (), {}, CE_LARGE, note="on logits of ±1000"),
        LossCase("weight", (), {"weight": CE_WEIGHT}, _ce_inputs(8, 5)),
        LossCase("padding", (), {}, _ce_inputs(9, 5, ignore=-100), note="with every third target = -100"),
        LossCase("ignore_index", (), {"ignore_index": 0}, _ce_inputs(9, 5, ignore=0),
              note="with every third target = 0"),
        LossCase("ignore_index_weight", (), {"weight": CE_WEIGHT, "ignore_index": 3}, _ce_inputs(9, 5, ignore=3),
              note="with every third target = 3"),
        LossCase("ignore_index_none", (), {"ignore_index": 2, "reduction": "none"}, _ce_inputs(9, 5, ignore=2),
              note="with every third target = 2"),
        LossCase("label_smoothing", (), {"label_smoothing": 0.1}, _ce_inputs(8, 5)),
        LossCase("label_smoothing_weight", (), {"label_smoothing": 0.2, "weight": CE_WEIGHT}, _ce_inputs(8, 5)),
        LossCase("label_smoothing_ignore", (), {"label_smoothing": 0.3, "ignore_index": 1, "reduction": "sum"},
              _ce_inputs(9, 5, ignore=1), note="with every third target = 1"),
        LossCase("probabilities", (), {}, _ce_inputs(8, 5, soft=True), note=PROBS),
        LossCase("probabilities_none", (), {"reduction": "none"}, _ce_inputs(8, 5, soft=True), note=PROBS),
        LossCase("probabilities_smoothing_weight", (), {"label_smoothing": 0.2, "weight": CE_WEIGHT},
             _ce_inputs(8, 5, soft=True), note=PROBS),
        LossCase("spatial", (), {}, _ce_inputs(2, 4, 3, 5), note="on logits (2, 4, 3, 5)"),
        LossCase("spatial_ignore_smoothing", (), {"label_smoothing": 0.1, "reduction": "none"},
              _ce_inputs(2, 4, 6, ignore=-100), note="on logits (2, 4, 6) with every third target = -100"),
        LossCase("spatial_probabilities", (), {"reduction": "sum"}, _ce_inputs(2, 4, 3, soft=True),
                 note="on logits (2, 4, 3) " + PROBS),
        LossCase("no_batch", (), {}, _ce_inputs(0, 5), note="on one unbatched sample: logits (5,), target ()"),
        LossCase("no_batch_probabilities", (), {"reduction": "none"}, _ce_inputs(0, 5, soft=True),
                 note="on one unbatched sample: logits (5,), probabilities (5,)"),
    ),
    hidden=_ce_hidden,
    scales=(
        Scale("batch size 4 vs 64",
              LossCase("scale", (), {"weight": CE_WEIGHT, "ignore_index": 0, "label_smoothing": 0.1}),
              _ce_inputs(4, 5, ignore=0), _ce_inputs(64, 5, ignore=0)),
        Scale("positions 2x2 vs 8x8", LossCase("scale"), _ce_inputs(2, 5, 2, 2), _ce_inputs(2, 5, 8, 8)),
        Scale("probabilities, batch size 4 vs 64", LossCase("scale"), _ce_inputs(4, 5, soft=True),
              _ce_inputs(64, 5, soft=True)),
    ),
    forbidden_calls=CE_CALLS,
    forbidden_modules=(nn.CrossEntropyLoss, nn.NLLLoss, nn.LogSoftmax, nn.KLDivLoss),
    mistakes=(
        *_other_reduction(_cross_entropy),
        _mistake("exp overflows: the log-sum-exp is computed without subtracting the largest logit first",
                 _cross_entropy, lse="naive"),
        _mistake("the log-probabilities are computed as log(softmax(x)): softmax rounds to exactly 0 for a logit "
                 "far below the largest, and log(0) = -inf. Use x - logsumexp(x)", _cross_entropy, lse="softmax"),
        _mistake("the mean divides by the number of targets: with `weight`, torch divides by the sum of the "
                 "targets' class weights", _cross_entropy, mean_over="count"),
        _mistake("the mean divides by every target, ignored ones included: torch divides by the number of targets "
                 "that are not ignore_index (by the sum of their class weights when `weight` is given)",
                 _cross_entropy, mean_over="all"),
        _mistake("targets equal to ignore_index still add to the loss", _cross_entropy, zero_ignored=False),
        _mistake("targets equal to ignore_index still add to the loss and count in the mean", _cross_entropy,
                 zero_ignored=False, mean_over="all"),
        _mistake("`label_smoothing` is ignored", _cross_entropy, smoothing="ignored"),
        _mistake("label smoothing puts eps / (C - 1) on the other classes: torch mixes the target with the "
                 "uniform distribution, (1 - eps) * one_hot + eps / C", _cross_entropy, smoothing="off_c_minus_1"),
        _mistake("the smoothing term is weighted by the target's class weight: torch weights each class's "
                 "log-probability by that class's weight, -sum_c w_c log p_c", _cross_entropy,
                 smoothing="target_weight"),
        _mistake("the softmax runs over the last dimension instead of dimension 1, the classes", _cross_entropy,
                 softmax_dim=-1),
    ),
    bench=Case("bench", (), {}, _ce_inputs(512, 1000)),
))
