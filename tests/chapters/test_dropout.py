"""The dropout graders: the reference passes, and each typical mistake fails naming its cause.

Training-mode outputs are random, so these layers are judged by statistics with fixed seeds
(see autograder/specs/dropout.py); every wrong layer below fails deterministically.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

_classes = solution_classes("dropout")
Dropout, Dropout1d, Dropout2d = _classes["Dropout"], _classes["Dropout1d"], _classes["Dropout2d"]


# --- wrong Dropout layers -----------------------------------------------------------------------

class NoScale(Dropout):
    """Zeroes elements but forgets the 1/(1-p) factor."""

    def dropout(self, x, mask_shape):
        if not self.training:
            return x
        return x * (torch.rand(mask_shape, device=x.device) >= self.p)


class ActiveInEval(Dropout):
    """Drops whatever the mode."""

    def dropout(self, x, mask_shape):
        self.training = True
        return super().dropout(x, mask_shape)


class NeverActive(Dropout):
    """`if self.training` read the wrong way round: the identity in training mode."""

    def dropout(self, x, mask_shape):
        return x


class KeepProbability(Dropout):
    """Reads p as the probability of keeping an element."""

    def dropout(self, x, mask_shape):
        if not self.training or self.p == 0:
            return x
        keep = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(self.p)
        return x * keep / self.p


class MaskOnce(Dropout):
    """Draws the mask once and reuses it."""

    def dropout(self, x, mask_shape):
        if not self.training:
            return x
        if getattr(self, "_mask", None) is None or self._mask.shape != torch.Size(mask_shape):
            self._mask = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * self._mask.to(x.dtype) / (1 - self.p) if self.p < 1 else x * 0


class Reseeds(Dropout):
    """Seeds torch's generator inside forward: the same mask at every call."""

    def dropout(self, x, mask_shape):
        torch.manual_seed(0)
        return super().dropout(x, mask_shape)


class NumpyMask(Dropout):
    """Draws the mask with numpy: fresh, but torch.manual_seed cannot reproduce it."""

    def dropout(self, x, mask_shape):
        if not self.training or self.p in (0, 1):
            return super().dropout(x, mask_shape)
        keep = torch.as_tensor(np.random.rand(*mask_shape) >= self.p, device=x.device)
        return x * keep / (1 - self.p)


class NaNAtP1(Dropout):
    """x * mask / (1 - p) even for p = 1."""

    def dropout(self, x, mask_shape):
        if not self.training:
            return x
        keep = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class InplaceIgnored(Dropout):
    """Always returns a new tensor, even with inplace=True."""

    def dropout(self, x, mask_shape):
        self.inplace = False
        return super().dropout(x, mask_shape)


class AlwaysInplace(Dropout):
    """Modifies its input even with inplace=False."""

    def dropout(self, x, mask_shape):
        self.inplace = True
        return super().dropout(x, mask_shape)


class GradientNotScaled(Dropout):
    """Right values, but the scale is outside the autograd graph: grad = upstream * mask."""

    def dropout(self, x, mask_shape):
        if not self.training or self.p in (0, 1):
            return super().dropout(x, mask_shape)
        keep = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        kept = x * keep
        return kept + (kept * (1 / (1 - self.p) - 1)).detach()


class _FreshMaskInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        ctx.p = p
        return x * torch.empty_like(x).bernoulli_(1 - p) / (1 - p)

    @staticmethod
    def backward(ctx, grad):
        return grad * torch.empty_like(grad).bernoulli_(1 - ctx.p) / (1 - ctx.p), None


class GradientOtherMask(Dropout):
    """A hand-written backward that draws a second mask instead of reusing the forward's."""

    def dropout(self, x, mask_shape):
        if not self.training or self.p in (0, 1):
            return super().dropout(x, mask_shape)
        return _FreshMaskInBackward.apply(x, self.p)


class Detached(Dropout):
    def forward(self, input):
        return super().forward(input).detach()


class NoRangeCheck(Dropout):
    def __init__(self, p=0.5, inplace=False):
        nn.Module.__init__(self)
        self.p, self.inplace = p, inplace


class NoAttributes(Dropout):
    """Keeps the keep probability instead of p."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__(p, inplace)
        self.keep = 1 - self.p
        del self.p

    def dropout(self, x, mask_shape):
        self.p = 1 - self.keep
        return super().dropout(x, mask_shape)


class MaskOnCPU(Dropout):
    """torch.rand without device=: fine on the CPU, broken on a GPU."""

    def dropout(self, x, mask_shape):
        if not self.training or self.p in (0, 1):
            return super().dropout(x, mask_shape)
        return x * (torch.rand(mask_shape) >= self.p) / (1 - self.p)


class CallsFDropout(Dropout):
    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class CallsTorchDropoutInTrainingOnly(Dropout):
    """torch's dropout through getattr, and only in training mode: the eval forward never shows it."""

    def forward(self, input):
        if not self.training:
            return input
        return getattr(torch, "drop" + "out")(input, self.p, True)


class CallsAtenNativeDropout(Dropout):
    def forward(self, input):
        if not self.training:
            return input
        return torch.ops.aten.native_dropout(input, self.p, True)[0]


class HiddenTorchDropout(Dropout):
    """An nn.Dropout made inside forward."""

    def forward(self, input):
        inner = nn.Dropout(self.p, self.inplace)
        inner.train(self.training)
        return inner(input)


class InheritsTorch(nn.Dropout):
    pass


class ElementLoop(Dropout):
    def dropout(self, x, mask_shape):
        if not self.training:
            return x
        flat = x.reshape(-1)
        return torch.stack([v * (torch.rand((), device=x.device) >= self.p) / (1 - self.p) for v in flat]).view_as(x)


# --- wrong Dropout1d / Dropout2d layers ---------------------------------------------------------

class Dropout2dElementwise(Dropout2d):
    """Drops single elements, as Dropout does."""

    def forward(self, input):
        return self.dropout(input, input.shape)


class Dropout2dSameForEverySample(Dropout2d):
    """One mask value per channel, shared by the whole batch."""

    def forward(self, input):
        if input.dim() == 4:
            return self.dropout(input, (1, input.shape[1], 1, 1))
        return super().forward(input)


class Dropout2dKeepProbability(Dropout2d):
    def forward(self, input):
        return KeepProbability.dropout(self, input, input.shape[:-2] + (1, 1))


class Dropout2dNoBatchAsBatched(Dropout2d):
    """Reads (C, H, W) as (N, C', L) but then also drops per element of each row."""

    def forward(self, input):
        return self.dropout(input, input.shape[:-1] + (1,)) if input.dim() == 4 else self.dropout(input, input.shape)


class Dropout2dChannelLoop(Dropout2d):
    def forward(self, input):
        channels = [self.dropout(input[:, c:c + 1], (input.shape[0], 1, 1, 1)) for c in range(input.shape[1])]
        return torch.cat(channels, dim=1)


class Dropout2dCallsF(Dropout2d):
    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout2dCallsFeatureDropout(Dropout2d):
    def forward(self, input):
        return torch.feature_dropout(input, self.p, self.training)


class Dropout1dElementwise(Dropout1d):
    def forward(self, input):
        return self.dropout(input, input.shape)


class Dropout1dCallsF(Dropout1d):
    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout1dNoScale(Dropout1d):
    def forward(self, input):
        return NoScale.dropout(self, input, input.shape[:-1] + (1,))


class Dropout1dKeepProbability(Dropout1d):
    """Keeps a channel with probability p (but scales by 1/(1-p))."""

    def forward(self, input):
        if not self.training or self.p in (0, 1):
            return super().forward(input)
        keep = torch.empty(input.shape[:-1] + (1,), dtype=input.dtype, device=input.device).bernoulli_(self.p)
        return input * keep / (1 - self.p)


class Dropout1dInheritsTorch(nn.Dropout1d):
    pass


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("Dropout", Dropout), ("Dropout1d", Dropout1d), ("Dropout2d", Dropout2d)])
def test_the_reference_passes_the_public_and_hidden_suites(name, cls):
    assert_passes(name, cls, 4)


WRONG = [
    # (layer graded, wrong class, the part that must fail, words the failure must contain)
    ("Dropout", NoScale, "forward", "not scaled: multiply them by 1/(1 - p)"),
    ("Dropout", ActiveInEval, "forward", "still active in eval mode"),
    ("Dropout", NeverActive, "forward", "nothing is zeroed in training mode"),
    ("Dropout", KeepProbability, "forward", "p is the probability of dropping an element, not of keeping it"),
    ("Dropout1d", Dropout1dKeepProbability, "forward", "p is the probability of zeroing a channel, not of keeping it"),
    ("Dropout", MaskOnce, "forward", "the same elements are zeroed at every call"),
    ("Dropout", Reseeds, "forward", "the same elements are zeroed at every call"),
    ("Dropout", NumpyMask, "forward", "torch.manual_seed does not make your masks reproducible"),
    ("Dropout", NaNAtP1, "forward", "with p=1, x * mask / (1 - p) divides 0 by 0"),
    ("Dropout", NaNAtP1, "backward", "gradient of the input is NaN"),
    ("Dropout", InplaceIgnored, "forward", "with inplace=True the layer must write its result into its input"),
    ("Dropout", AlwaysInplace, "forward", "with inplace=False the input must be left unchanged"),
    ("Dropout", GradientNotScaled, "backward", "the gradient is not scaled"),
    ("Dropout", GradientOtherMask, "backward", "with the mask of that same forward"),
    ("Dropout", Detached, "backward", "does not require grad"),
    ("Dropout", NoRangeCheck, "state", "should raise ValueError"),
    ("Dropout", NoAttributes, "state", "self.p = 0.5"),
    ("Dropout", MaskOnCPU, "rules", "device 'meta'"),
    ("Dropout", CallsFDropout, "rules", "calls torch.nn.functional.dropout"),
    ("Dropout", CallsTorchDropoutInTrainingOnly, "rules", "calls torch.dropout"),
    ("Dropout", CallsAtenNativeDropout, "rules", "calls aten.native_dropout"),
    ("Dropout", HiddenTorchDropout, "rules", "runs a torch.nn.modules.dropout.Dropout module"),
    ("Dropout", InheritsTorch, "rules", "inherits from torch's Dropout"),
    ("Dropout", ElementLoop, "rules", "not vectorized"),
    ("Dropout2d", Dropout2dElementwise, "forward", "drops single elements, not whole channels"),
    ("Dropout2d", Dropout2dSameForEverySample, "forward", "every sample loses the same channels"),
    ("Dropout2d", Dropout2dKeepProbability, "forward", "not of keeping it"),
    ("Dropout2d", Dropout2dNoBatchAsBatched, "forward", "drops single elements, not whole channels"),
    ("Dropout2d", Dropout2dChannelLoop, "rules", "not vectorized"),
    ("Dropout2d", Dropout2dCallsF, "rules", "calls torch.nn.functional.dropout2d"),
    ("Dropout2d", Dropout2dCallsFeatureDropout, "rules", "calls torch.feature_dropout"),
    ("Dropout2d", ActiveInEval, "forward", "still active in eval mode"),
    ("Dropout1d", Dropout1dElementwise, "forward", "drops single elements, not whole channels"),
    ("Dropout1d", Dropout1dNoScale, "forward", "not scaled"),
    ("Dropout1d", Dropout1dCallsF, "rules", "calls torch.nn.functional.dropout1d"),
    ("Dropout1d", Dropout1dInheritsTorch, "rules", "inherits from torch's Dropout1d"),
]


@pytest.mark.parametrize("name, layer, part, cause", WRONG,
                         ids=[f"{w[0]}-{w[1].__name__}-{w[2]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_layer_fails_naming_the_cause(name, layer, part, cause):
    assert_fails_naming(grade(name, layer), part, cause)


@pytest.mark.parametrize("name, layer", [("Dropout", KeepProbability), ("Dropout", NoScale),
                                         ("Dropout2d", Dropout2dElementwise), ("Dropout", MaskOnce)])
def test_the_hidden_suite_catches_them_too(name, layer):
    """Fresh probabilities and shapes still expose the mistake."""
    for seed in range(3):
        assert not grade(name, layer, suite="hidden", seed=seed).part_passed("forward")


def test_an_unscaled_dropout_fails_on_the_statistics_not_only_on_eval():
    """The training-mode judgement, not the eval comparison, is what catches a missing scale:
    eval mode is the identity for both."""
    report = grade("Dropout", NoScale)
    lines = [f for f in report.failures if f.startswith("forward:")]
    assert lines and all("train]" in f for f in lines), str(report)

