"""The loss graders: the references pass, and each typical mistake fails naming its cause."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import CHAPTERS, grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

S = solution_classes("losses")
MSE, BCE, BCELogits, CE = S["MSELoss"], S["BCELoss"], S["BCEWithLogitsLoss"], S["CrossEntropyLoss"]


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


# --- MSELoss ---------------------------------------------------------------------------------------

class MSEAbsolute(MSE):
    def forward(self, input, target):
        return reduce((input - target).abs(), self.reduction)


class MSERoot(MSE):
    def forward(self, input, target):
        out = super().forward(input, target)
        return out.sqrt() if self.reduction == "mean" else out


class MSEPerSample(MSE):
    """Sums the squares of each sample and averages over the batch only."""

    def forward(self, input, target):
        out = super().forward(input, target)
        return ((input - target) ** 2).sum() / input.shape[0] if self.reduction == "mean" else out


class MSEAlwaysMean(MSE):
    def forward(self, input, target):
        return ((input - target) ** 2).mean()


class MSESumForMean(MSE):
    def forward(self, input, target):
        return reduce((input - target) ** 2, "sum" if self.reduction == "mean" else self.reduction)


class MSEFunctional(MSE):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class MSETorchModule(MSE):
    def forward(self, input, target):
        return nn.MSELoss(reduction=self.reduction)(input, target)


class MSELoop(MSE):
    def forward(self, input, target):
        if input.dim() == 1:
            return super().forward(input, target)
        rows = torch.stack([(a - b) ** 2 for a, b in zip(input, target)])  # one sample at a time
        return reduce(rows, self.reduction)


class MSETargetDetached(MSE):
    def forward(self, input, target):
        return super().forward(input, target.detach())


# --- BCELoss ---------------------------------------------------------------------------------------

class BCEUnclamped(BCE):
    def forward(self, input, target):
        loss = -(target * torch.log(input) + (1 - target) * torch.log(1 - input))
        return reduce(loss * self.weight if self.weight is not None else loss, self.reduction)


class BCESwapped(BCE):
    def forward(self, input, target):
        return super().forward(input, 1 - target)


class BCENoWeight(BCE):
    def forward(self, input, target):
        weight, self.weight = self.weight, None
        try:
            return super().forward(input, target)
        finally:
            self.weight = weight


class BCEWeightedMean(BCE):
    """Divides by the sum of the weights, as CrossEntropyLoss does; BCELoss does not."""

    def forward(self, input, target):
        out = super().forward(input, target)
        if self.reduction == "mean" and self.weight is not None:
            return out * input.numel() / self.weight.expand_as(input).sum()
        return out


class BCENoMinus(BCE):
    def forward(self, input, target):
        return -super().forward(input, target)


class BCEWeightAttribute(BCE):
    """Keeps `weight` as a plain attribute: not in the state_dict, not moved by .to()."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(None, size_average, reduce, reduction)
        del self.weight
        self.weight = weight


class BCEFunctional(BCE):
    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEThroughLogits(BCE):
    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(torch.logit(input), target, self.weight, reduction=self.reduction)


# --- BCEWithLogitsLoss -------------------------------------------------------------------------------

def naive_bce_logits(layer, x, y, eps=None):
    p = torch.sigmoid(x)
    if eps is not None:
        p = p.clamp(eps, 1 - eps)
    pw = layer.pos_weight if layer.pos_weight is not None else 1
    loss = -(pw * y * torch.log(p) + (1 - y) * torch.log(1 - p))
    return reduce(loss * layer.weight if layer.weight is not None else loss, layer.reduction)


class LogitsNaive(BCELogits):
    def forward(self, input, target):
        return naive_bce_logits(self, input, target)


class LogitsClamped(BCELogits):
    def forward(self, input, target):
        return naive_bce_logits(self, input, target, eps=1e-7)


class LogitsWhere(BCELogits):
    """Stable forward from torch.where, but the discarded branch overflows: NaN gradients."""

    def forward(self, input, target):
        neg_log_p = torch.where(input >= 0, torch.log1p(torch.exp(-input)), -input + torch.log1p(torch.exp(input)))
        pw = self.pos_weight if self.pos_weight is not None else 1
        loss = pw * target * neg_log_p + (1 - target) * (neg_log_p + input)
        return reduce(loss * self.weight if self.weight is not None else loss, self.reduction)


class LogitsNoPosWeight(BCELogits):
    def forward(self, input, target):
        pos_weight, self.pos_weight = self.pos_weight, None
        try:
            return super().forward(input, target)
        finally:
            self.pos_weight = pos_weight


class LogitsPosWeightOnNegatives(BCELogits):
    def forward(self, input, target):
        neg_log_p = (-input).clamp(min=0) + torch.log1p(torch.exp(-input.abs()))
        pw = self.pos_weight if self.pos_weight is not None else 1
        loss = target * neg_log_p + pw * (1 - target) * (neg_log_p + input)
        return reduce(loss * self.weight if self.weight is not None else loss, self.reduction)


class LogitsPosWeightEverywhere(BCELogits):
    """Multiplies the whole loss by pos_weight, not only its positive term."""

    def forward(self, input, target):
        pos_weight, reduction = self.pos_weight, self.reduction
        self.pos_weight, self.reduction = None, "none"
        try:
            loss = super().forward(input, target)
        finally:
            self.pos_weight, self.reduction = pos_weight, reduction
        return reduce(loss * pos_weight if pos_weight is not None else loss, reduction)


class LogitsNoWeight(BCELogits):
    def forward(self, input, target):
        weight, self.weight = self.weight, None
        try:
            return super().forward(input, target)
        finally:
            self.weight = weight


class LogitsLogsigmoid(BCELogits):
    def forward(self, input, target):
        pw = self.pos_weight if self.pos_weight is not None else 1
        loss = -(pw * target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
        return reduce(loss * self.weight if self.weight is not None else loss, self.reduction)


class LogitsSoftplus(BCELogits):
    def forward(self, input, target):
        pw = self.pos_weight if self.pos_weight is not None else 1
        loss = pw * target * F.softplus(-input) + (1 - target) * F.softplus(input)
        return reduce(loss * self.weight if self.weight is not None else loss, self.reduction)


class LogitsFunctional(BCELogits):
    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


# --- CrossEntropyLoss ----------------------------------------------------------------------------------

class CEWith(CE):
    """The reference with its log-probabilities, mean or smoothing swapped for a wrong version."""

    log_probs_of = None  # (x, dim) -> log p, or None for the reference's
    denominator = "weights"  # "weights" (torch), "count" or "all"
    smoothing = "torch"  # "torch", "off_c_minus_1", "target_weight"
    keep_ignored = False
    softmax_dim = None

    def forward(self, input, target):
        dim = 0 if input.dim() == 1 else 1
        sd = dim if self.softmax_dim is None else self.softmax_dim
        n_classes, eps = input.shape[dim], self.label_smoothing
        log_p = type(self).log_probs_of(input, sd) if self.log_probs_of else input - input.logsumexp(sd, keepdim=True)
        shape = [1] * input.dim()
        shape[dim] = n_classes
        w_class = self.weight.view(shape) if self.weight is not None else 1.0
        if target.is_floating_point():
            q = target * (1 - eps) + eps / n_classes
            loss = -(w_class * q * log_p).sum(dim=dim)
            if self.reduction == "mean":
                return loss.sum() / (input.numel() // n_classes)
            return reduce(loss, self.reduction)
        keep = target != self.ignore_index
        if self.keep_ignored:
            keep = torch.ones_like(keep)
        safe = torch.where(target != self.ignore_index, target, torch.zeros_like(target))
        picked = log_p.gather(dim, safe.unsqueeze(dim)).squeeze(dim)
        w = (self.weight[safe] if self.weight is not None else torch.ones_like(picked)) * keep
        loss = -w * picked
        if eps > 0:
            if self.smoothing == "off_c_minus_1":
                others = -(log_p.sum(dim=dim) - picked) * w
                loss = (1 - eps) * loss + eps / (n_classes - 1) * others
            elif self.smoothing == "target_weight":
                loss = (1 - eps) * loss + eps / n_classes * (-log_p.sum(dim=dim)) * w
            else:
                loss = (1 - eps) * loss + eps / n_classes * (-(w_class * log_p).sum(dim=dim)) * keep
        if self.reduction != "mean":
            return reduce(loss, self.reduction)
        return loss.sum() / {"weights": w.sum(), "count": keep.sum(), "all": target.numel()}[self.denominator]


class CENaiveLogSumExp(CEWith):
    log_probs_of = staticmethod(lambda x, d: x - torch.log(torch.exp(x).sum(d, keepdim=True)))


class CELogOfSoftmax(CEWith):
    log_probs_of = staticmethod(lambda x, d: torch.log(torch.softmax(x, d)))


class CEMeanOverAll(CEWith):
    denominator = "all"


class CEMeanOverCount(CEWith):
    denominator = "count"


class CEIgnoredKept(CEWith):
    keep_ignored = True


class CESmoothingOverOthers(CEWith):
    smoothing = "off_c_minus_1"


class CESmoothingTargetWeight(CEWith):
    smoothing = "target_weight"


class CESoftmaxLastDim(CEWith):
    softmax_dim = -1


class CENoSmoothing(CE):
    def forward(self, input, target):
        eps, self.label_smoothing = self.label_smoothing, 0.0
        try:
            return super().forward(input, target)
        finally:
            self.label_smoothing = eps


class CEAlwaysMean(CE):
    def forward(self, input, target):
        reduction, self.reduction = self.reduction, "mean"
        try:
            return super().forward(input, target)
        finally:
            self.reduction = reduction


class CEWeightAttribute(CE):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(None, size_average, ignore_index, reduce, reduction, label_smoothing)
        del self.weight
        self.weight = weight


class CEFunctional(CE):
    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class CELogSoftmaxNLL(CEWith):
    log_probs_of = staticmethod(lambda x, d: F.log_softmax(x, d))


class CETensorLogSoftmax(CEWith):
    log_probs_of = staticmethod(lambda x, d: x.log_softmax(d))


class CENLLModule(CE):
    def forward(self, input, target):
        if target.is_floating_point():
            return super().forward(input, target)
        log_p = input - input.logsumexp(0 if input.dim() == 1 else 1, keepdim=True)
        return nn.NLLLoss(self.weight, ignore_index=self.ignore_index, reduction=self.reduction)(log_p, target)


class CENLLFunctional(CE):
    """Its own log-softmax, then torch's nll_loss for the rest."""

    def forward(self, input, target):
        if target.is_floating_point() or self.label_smoothing:
            return super().forward(input, target)
        log_p = input - input.logsumexp(0 if input.dim() == 1 else 1, keepdim=True)
        return F.nll_loss(log_p, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CELoopOverBatch(CE):
    def forward(self, input, target):
        if input.dim() == 1 or self.reduction != "mean" or target.is_floating_point():
            return super().forward(input, target)
        reduction, self.reduction = self.reduction, "sum"
        try:
            total = sum(super(CELoopOverBatch, self).forward(x[None], t[None]) for x, t in zip(input, target))
        finally:
            self.reduction = reduction
        keep = target != self.ignore_index
        safe = torch.where(keep, target, torch.zeros_like(target))
        w = (self.weight[safe] if self.weight is not None else torch.ones_like(target, dtype=input.dtype)) * keep
        return total / w.sum()


class CEOnesOnCPU(CE):
    """Makes its default class weights with torch.ones(C): on the CPU whatever the input's device."""

    def forward(self, input, target):
        if self.weight is None and not target.is_floating_point():
            self.weight = torch.ones(input.shape[0 if input.dim() == 1 else 1], dtype=input.dtype)
            try:
                return super().forward(input, target)
            finally:
                self.weight = None
        return super().forward(input, target)


def test_the_chapter_grades_four_losses_in_book_order():
    assert CHAPTERS["losses"] == ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"]


@pytest.mark.parametrize("name", ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"])
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, S[name], 8)


WRONG = [
    # (loss, wrong class, the part that must fail, words the failure must contain)
    ("MSELoss", MSEAbsolute, "forward", "the error is not squared"),
    ("MSELoss", MSERoot, "forward", "the square root of the mean is taken"),
    ("MSELoss", MSEPerSample, "forward", "averaged over the batch only"),
    ("MSELoss", MSEAlwaysMean, "forward", "`reduction` is ignored"),
    ("MSELoss", MSEAlwaysMean, "shape", "MSELoss(reduction='none')"),
    ("MSELoss", MSESumForMean, "forward", "the sum is returned instead of the mean"),
    ("MSELoss", MSEFunctional, "rules", "calls torch.nn.functional.mse_loss"),
    ("MSELoss", MSETorchModule, "rules", "runs a torch.nn.modules.loss.MSELoss module"),
    ("MSELoss", MSELoop, "rules", "not vectorized"),
    ("MSELoss", MSETargetDetached, "backward", "no gradient of input 1"),
    ("BCELoss", BCEUnclamped, "forward", "the logs are not clamped"),
    ("BCELoss", BCEUnclamped, "forward", "on probabilities of exactly 0 and 1"),
    ("BCELoss", BCESwapped, "forward", "the two terms are swapped"),
    ("BCELoss", BCENoWeight, "forward", "`weight` is ignored"),
    ("BCELoss", BCEWeightedMean, "forward", "the mean divides by the sum of the weights"),
    ("BCELoss", BCENoMinus, "forward", "the minus sign is missing"),
    ("BCELoss", BCEWeightAttribute, "state", "missing parameters/buffers ['weight']"),
    ("BCELoss", BCEFunctional, "rules", "calls torch.nn.functional.binary_cross_entropy"),
    ("BCELoss", BCEThroughLogits, "rules", "calls torch.nn.functional.binary_cross_entropy_with_logits"),
    ("BCEWithLogitsLoss", LogitsNaive, "forward", "the loss is computed as log(sigmoid(x))"),
    ("BCEWithLogitsLoss", LogitsNaive, "forward", "on logits of ±1000"),
    ("BCEWithLogitsLoss", LogitsClamped, "forward", "sigmoid(x) is clamped to [1e-07, 1 - 1e-07]"),
    ("BCEWithLogitsLoss", LogitsWhere, "backward", "is NaN"),
    ("BCEWithLogitsLoss", LogitsNoPosWeight, "forward", "`pos_weight` is ignored"),
    ("BCEWithLogitsLoss", LogitsPosWeightOnNegatives, "forward", "`pos_weight` scales the negative term"),
    ("BCEWithLogitsLoss", LogitsPosWeightEverywhere, "forward", "`pos_weight` scales the whole loss"),
    ("BCEWithLogitsLoss", LogitsNoWeight, "forward", "`weight` is ignored"),
    ("BCEWithLogitsLoss", LogitsLogsigmoid, "rules", "calls torch.nn.functional.logsigmoid"),
    ("BCEWithLogitsLoss", LogitsSoftplus, "rules", "calls torch.nn.functional.softplus"),
    ("BCEWithLogitsLoss", LogitsFunctional, "rules", "calls torch.nn.functional.binary_cross_entropy_with_logits"),
    ("CrossEntropyLoss", CENaiveLogSumExp, "forward", "exp overflows"),
    ("CrossEntropyLoss", CENaiveLogSumExp, "forward", "on logits of ±1000"),
    ("CrossEntropyLoss", CELogOfSoftmax, "forward", "computed as log(softmax(x))"),
    ("CrossEntropyLoss", CEMeanOverAll, "forward", "the mean divides by every target, ignored ones included"),
    ("CrossEntropyLoss", CEMeanOverCount, "forward", "torch divides by the sum of the targets' class weights"),
    ("CrossEntropyLoss", CEIgnoredKept, "forward", "targets equal to ignore_index still add to the loss"),
    ("CrossEntropyLoss", CENoSmoothing, "forward", "`label_smoothing` is ignored"),
    ("CrossEntropyLoss", CESmoothingOverOthers, "forward", "eps / (C - 1)"),
    ("CrossEntropyLoss", CESmoothingTargetWeight, "forward", "weighted by the target's class weight"),
    ("CrossEntropyLoss", CESoftmaxLastDim, "forward", "the softmax runs over the last dimension"),
    ("CrossEntropyLoss", CEAlwaysMean, "forward", "`reduction` is ignored"),
    ("CrossEntropyLoss", CEWeightAttribute, "state", "missing parameters/buffers ['weight']"),
    ("CrossEntropyLoss", CEFunctional, "rules", "calls torch.nn.functional.cross_entropy"),
    ("CrossEntropyLoss", CELogSoftmaxNLL, "rules", "calls torch.nn.functional.log_softmax"),
    ("CrossEntropyLoss", CETensorLogSoftmax, "rules", "calls torch.Tensor.log_softmax"),
    ("CrossEntropyLoss", CENLLModule, "rules", "runs a torch.nn.modules.loss.NLLLoss module"),
    ("CrossEntropyLoss", CENLLFunctional, "rules", "calls torch.nn.functional.nll_loss"),
    ("CrossEntropyLoss", CELoopOverBatch, "rules", "not vectorized"),
    ("CrossEntropyLoss", CEOnesOnCPU, "rules", "device 'meta'"),
]


@pytest.mark.parametrize("name, layer, part, cause", WRONG,
                         ids=[f"{w[1].__name__}-{w[2]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_loss_fails_naming_the_cause(name, layer, part, cause):
    assert_fails_naming(grade(name, layer), part, cause)


def test_the_reference_on_the_books_numbers():
    """The page's worked example: logits (2, 1, 0.1) and class 0 cost 0.417 (to 3 decimals)."""
    x, y = torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0])
    assert CE()(x, y).item() == pytest.approx(0.4170, abs=1e-4)
    torch.testing.assert_close(CE()(x, y), nn.CrossEntropyLoss()(x, y))


def test_the_wrong_mean_with_ignore_index_is_caught_by_every_hidden_suite():
    """Does each hidden draw contain a weighted mean with ignored targets?"""
    for seed in range(5):
        report = grade("CrossEntropyLoss", CEMeanOverAll, suite="hidden", seed=seed)
        assert not report.part_passed("forward"), str(report)


def test_log_of_sigmoid_underflows_where_the_grader_looks():
    """The premise of the ±1000 cases: the naive formulas really give inf there, in both dtypes."""
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([-1000.0], dtype=dtype)
        assert torch.isinf(torch.log(torch.sigmoid(x))).all()
        assert torch.isinf(torch.exp(-x)).all()
        assert nn.BCEWithLogitsLoss()(x, torch.ones_like(x)).item() == pytest.approx(1000.0)
