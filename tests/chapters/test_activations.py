"""The activations graders: the references pass, and each typical mistake fails naming its cause."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import CHAPTERS, grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

S = solution_classes("activations")
ReLU, LeakyReLU, ELU, GELU, SiLU = S["ReLU"], S["LeakyReLU"], S["ELU"], S["GELU"], S["SiLU"]
Sigmoid, Tanh, Softplus, Softmax, LogSoftmax, Identity = (S[n] for n in ("Sigmoid", "Tanh", "Softplus", "Softmax",
                                                                          "LogSoftmax", "Identity"))


@pytest.mark.parametrize("name", CHAPTERS["activations"])
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, S[name], 4)


# --- numerics: overflow, underflow, NaN gradients -----------------------------------------------

class NaiveSoftmax(Softmax):
    """exp(x) / sum(exp(x)): inf / inf = NaN on logits of 1000."""

    def forward(self, input):
        e = torch.exp(input)
        return e / e.sum(self.dim, keepdim=True)


class GlobalMaxSoftmax(Softmax):
    """The maximum of the whole tensor: rows far below it underflow to 0 / 0."""

    def forward(self, input):
        e = torch.exp(input - input.max())
        return e / e.sum(self.dim, keepdim=True)


class LastDimSoftmax(Softmax):
    def forward(self, input):
        e = torch.exp(input - input.amax(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)


class LogOfSoftmax(LogSoftmax):
    """log(softmax(x)) with a stable softmax: still -inf where the softmax underflowed to 0."""

    def forward(self, input):
        e = torch.exp(input - input.amax(self.dim, keepdim=True))
        return torch.log(e / e.sum(self.dim, keepdim=True))


class NoShiftLogSoftmax(LogSoftmax):
    """x - log(sum(exp(x))) without the max: exp(1000) = inf."""

    def forward(self, input):
        return input - torch.log(torch.exp(input).sum(self.dim, keepdim=True))


class NaiveSigmoid(Sigmoid):
    """Right outputs at -1000 (1 / inf = 0), NaN gradient (0 * inf)."""

    def forward(self, input):
        return 1 / (1 + torch.exp(-input))


class AbsSigmoid(Sigmoid):
    """Stable, but through exp(-|x|): abs has gradient 0 at 0 in torch, so sigmoid'(0) comes out 0."""

    def forward(self, input):
        z = torch.exp(-input.abs())
        return torch.where(input >= 0, 1 / (1 + z), z / (1 + z))


class NaiveTanh(Tanh):
    def forward(self, input):
        a, b = torch.exp(input), torch.exp(-input)
        return (a - b) / (a + b)


class WhereTrapELU(ELU):
    """exp(x) in the branch torch.where discards: inf at x = 1000, so the gradient is NaN."""

    def forward(self, input):
        return torch.where(input > 0, input, self.alpha * (torch.exp(input) - 1))


class NoThresholdSoftplus(Softplus):
    def forward(self, input):
        return torch.log1p(torch.exp(self.beta * input)) / self.beta


class StableNoThresholdSoftplus(Softplus):
    """Stable everywhere, finite everywhere, but not torch's function above the threshold."""

    def forward(self, input):
        bx = self.beta * input
        return (bx.clamp(min=0) + torch.log1p(torch.exp(-bx.abs()))) / self.beta


class WhereTrapSoftplus(Softplus):
    """The threshold applied with torch.where, exp unclamped: NaN gradients above 88 in float32."""

    def forward(self, input):
        bx = self.beta * input
        return torch.where(bx > self.threshold, input, torch.log1p(torch.exp(bx)) / self.beta)


class XThresholdSoftplus(Softplus):
    def forward(self, input):
        soft = torch.log1p(torch.exp((self.beta * input).clamp(max=self.threshold))) / self.beta
        return torch.where(input > self.threshold, input, soft)


# --- arguments and defaults -------------------------------------------------------------------

class SlopeTenth(LeakyReLU):
    def __init__(self, negative_slope=0.1, inplace=False):
        super().__init__(negative_slope, inplace)


class AlphaIgnored(ELU):
    def forward(self, input):
        out = torch.where(input > 0, input, torch.expm1(torch.where(input > 0, 0.0, input)))
        return input.copy_(out) if self.inplace else out


class AlwaysTanhGELU(GELU):
    def forward(self, input):
        return 0.5 * input * (1 + torch.tanh(0.7978845608028654 * (input + 0.044715 * input**3)))


class AlwaysErfGELU(GELU):
    def forward(self, input):
        return 0.5 * input * (1 + torch.erf(input / 2**0.5))


class PrivateInplace(nn.Module):
    """Stores the argument under another name: code reading layer.inplace breaks."""

    def __init__(self, inplace=False):
        super().__init__()
        self._inplace = inplace

    def forward(self, input):
        return input.masked_fill_(input <= 0, 0.0) if self._inplace else input.masked_fill(input <= 0, 0.0)


# --- kinks ------------------------------------------------------------------------------------

class ClampReLU(ReLU):
    """x.clamp(min=0): the gradient at exactly 0 is 1, torch's is 0."""

    def forward(self, input):
        return input.clamp_(min=0) if self.inplace else input.clamp(min=0)


class GreaterEqualELU(ELU):
    """x >= 0 takes the identity branch: gradient 1 at 0 where torch's is alpha."""

    def forward(self, input):
        out = torch.where(input >= 0, input, self.alpha * torch.expm1(torch.where(input >= 0, 0.0, input)))
        return input.copy_(out) if self.inplace else out


# --- in-place semantics ------------------------------------------------------------------------

class NeverInPlaceReLU(ReLU):
    def forward(self, input):
        return input.masked_fill(input <= 0, 0.0)


class AlwaysInPlaceReLU(ReLU):
    def forward(self, input):
        return input.masked_fill_(input <= 0, 0.0)


class ResultNotReturned(LeakyReLU):
    """Writes into the input but returns a separate tensor."""

    def forward(self, input):
        out = torch.where(input > 0, input, input * self.negative_slope)
        if self.inplace:
            input.copy_(out)
        return out


class NeverInPlaceSiLU(SiLU):
    def forward(self, input):
        return input * torch.sigmoid(input)


class ViewingIdentity(Identity):
    """A view of the input: the same memory, but not the input itself, which torch's Identity returns."""

    def forward(self, input):
        return input.view_as(input)


class CopyingIdentity(Identity):
    def forward(self, input):
        return input.clone()


class StrictIdentity(nn.Module):
    """Takes no arguments: Identity(54, unused_argument1=0.1) fails."""

    def forward(self, input):
        return input


# --- rules ---------------------------------------------------------------------------------------

def calling(base: type, fn) -> type:
    return type(f"Calls{base.__name__}", (base,), {"forward": lambda self, input: fn(self, input)})


CALLS = [
    (Softmax, lambda s, x: torch.softmax(x, s.dim), "torch.softmax"),
    (Softmax, lambda s, x: F.softmax(x, s.dim), "torch.nn.functional.softmax"),
    (Softmax, lambda s, x: x.softmax(s.dim), "torch.Tensor.softmax"),
    (Softmax, lambda s, x: torch.exp(x - torch.logsumexp(x, s.dim, keepdim=True)), "torch.logsumexp"),
    (LogSoftmax, lambda s, x: F.log_softmax(x, s.dim), "torch.nn.functional.log_softmax"),
    (LogSoftmax, lambda s, x: x - x.logsumexp(s.dim, keepdim=True), "torch.Tensor.logsumexp"),
    (ReLU, lambda s, x: torch.relu_(x) if s.inplace else torch.relu(x), "torch.relu"),
    (ReLU, lambda s, x: F.relu(x, s.inplace), "torch.nn.functional.relu"),
    (ReLU, lambda s, x: F.threshold(x, 0.0, 0.0, s.inplace), "torch.nn.functional.threshold"),
    (LeakyReLU, lambda s, x: F.leaky_relu(x, s.negative_slope, s.inplace), "torch.nn.functional.leaky_relu"),
    (ELU, lambda s, x: F.elu(x, s.alpha, s.inplace), "torch.nn.functional.elu"),
    (GELU, lambda s, x: F.gelu(x, approximate=s.approximate), "torch.nn.functional.gelu"),
    (SiLU, lambda s, x: F.silu(x, s.inplace), "torch.nn.functional.silu"),
    (Sigmoid, lambda s, x: torch.sigmoid(x), "torch.sigmoid"),
    (Sigmoid, lambda s, x: x.sigmoid(), "torch.Tensor.sigmoid"),
    (Sigmoid, lambda s, x: torch.special.expit(x), "torch.special.expit"),
    (Tanh, lambda s, x: torch.tanh(x), "torch.tanh"),
    (Tanh, lambda s, x: x.tanh(), "torch.Tensor.tanh"),
    (Softplus, lambda s, x: F.softplus(x, s.beta, s.threshold), "torch.nn.functional.softplus"),
]


@pytest.mark.parametrize("base, fn, name", CALLS, ids=[c[2] for c in CALLS])
def test_calling_torchs_own_implementation_is_caught(base, fn, name):
    report = grade(base.__name__, calling(base, fn), parts=["rules"])
    assert not report.passed
    assert any("calls " in f and name in f.split(":")[2] for f in report.failures), str(report)


class ModuleInside(ReLU):
    def forward(self, input):
        return nn.ReLU(self.inplace)(input)


class InheritsTorch(nn.Softmax):
    pass


class RowLoopSoftmax(Softmax):
    def forward(self, input):
        moved = input.movedim(self.dim, -1)
        rows = [r - r.max() for r in moved.reshape(-1, moved.shape[-1])]
        out = torch.stack([r.exp() / r.exp().sum() for r in rows])
        return out.reshape(moved.shape).movedim(-1, self.dim)


class CPUZeros(Sigmoid):
    """Adds a zero tensor made without device=: fine on the CPU, broken on a GPU."""

    def forward(self, input):
        return super().forward(input) + torch.zeros(input.shape, dtype=input.dtype)


WRONG = [
    # (layer, graded name, the part that must fail, words the failure must contain)
    (NaiveSoftmax, "Softmax", "forward", "the exponentials overflow"),
    (NaiveSoftmax, "Softmax", "forward", "is NaN"),
    (GlobalMaxSoftmax, "Softmax", "forward", "the maximum is taken over the whole tensor"),
    (LastDimSoftmax, "Softmax", "forward", "along the last dimension instead of dim"),
    (LogOfSoftmax, "LogSoftmax", "forward", "log is taken of the softmax, which underflows"),
    (LogOfSoftmax, "LogSoftmax", "forward", "overflows to -inf"),
    (NoShiftLogSoftmax, "LogSoftmax", "forward", "the log-sum-exp trick"),
    (NaiveSigmoid, "Sigmoid", "backward", "gradient of the input is NaN"),
    (NaiveSigmoid, "Sigmoid", "backward", "an exp or a division that overflows"),
    (AbsSigmoid, "Sigmoid", "backward", "at x = 0 the gradient is 0, torch's is 0.25"),
    (NaiveTanh, "Tanh", "forward", "is NaN"),
    (WhereTrapELU, "ELU", "backward", "maybe in a torch.where branch that is discarded"),
    (NoThresholdSoftplus, "Softplus", "forward", "the threshold is ignored"),
    (NoThresholdSoftplus, "Softplus", "forward", "overflows to inf"),
    (StableNoThresholdSoftplus, "Softplus", "forward", "torch returns x itself"),
    (WhereTrapSoftplus, "Softplus", "backward", "gradient of the input is NaN"),
    (XThresholdSoftplus, "Softplus", "forward", "x is compared with the threshold; torch compares beta * x"),
    (SlopeTenth, "LeakyReLU", "forward", "the slope is 0.1; torch's default negative_slope is 0.01"),
    (SlopeTenth, "LeakyReLU", "state", "attribute 'negative_slope' is 0.1, expected 0.01"),
    (AlphaIgnored, "ELU", "forward", "alpha is ignored"),
    (AlwaysTanhGELU, "GELU", "forward", "the tanh approximation is used although approximate='none'"),
    (AlwaysErfGELU, "GELU", "forward", "the exact erf form is used although approximate='tanh'"),
    (PrivateInplace, "ReLU", "state", "keeps no attribute 'inplace'"),
    (ClampReLU, "ReLU", "backward", "ReLU has gradient 0 at exactly x = 0"),
    (GreaterEqualELU, "ELU", "backward", "ELU has gradient alpha at exactly x = 0"),
    (NeverInPlaceReLU, "ReLU", "forward", "with inplace=True torch's ReLU writes the result into its input"),
    (AlwaysInPlaceReLU, "ReLU", "forward", "your layer changed its input; torch's ReLU leaves it untouched"),
    (ResultNotReturned, "LeakyReLU", "forward", "yours returns a new tensor"),
    (NeverInPlaceSiLU, "SiLU", "forward", "with inplace=True"),
    (CopyingIdentity, "Identity", "forward", "torch's Identity returns its input itself (`output is input`); yours "
                                             "returns a copy"),
    (ViewingIdentity, "Identity", "forward", "yours returns a view of it (the same memory, another tensor object)"),
    (StrictIdentity, "Identity", "state", "the constructor raised TypeError"),
    (ModuleInside, "ReLU", "rules", "runs a torch.nn.modules.activation.ReLU module"),
    (InheritsTorch, "Softmax", "rules", "inherits from torch's Softmax"),
    (RowLoopSoftmax, "Softmax", "rules", "not vectorized"),
    (CPUZeros, "Sigmoid", "rules", "device 'meta'"),
]


@pytest.mark.parametrize("layer, name, part, cause", WRONG,
                         ids=[f"{w[0].__name__}-{w[2]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_layer_fails_naming_the_cause(layer, name, part, cause):
    assert_fails_naming(grade(name, layer), part, cause)


@pytest.mark.parametrize("layer, name", [(NaiveSoftmax, "Softmax"), (LogOfSoftmax, "LogSoftmax"),
                                         (WhereTrapSoftplus, "Softplus"), (NeverInPlaceReLU, "ReLU"),
                                         (AlwaysTanhGELU, "GELU"), (ClampReLU, "ReLU")])
def test_the_hidden_suite_catches_them_too(layer, name):
    """Are the numerical traps, in-place semantics and kinks in every hidden draw, not only the public cases?"""
    assert all(not grade(name, layer, suite="hidden", seed=s).passed for s in range(3))


def test_the_stable_alternatives_students_write_are_accepted():
    """Other correct formulas pass: tanh from torch.sigmoid, sigmoid from torch.tanh, softmax by division."""

    class SigmoidTanh(Tanh):
        def forward(self, input):
            return 2 * torch.sigmoid(2 * input) - 1

    class TanhSigmoid(Sigmoid):
        def forward(self, input):
            return 0.5 * (1 + torch.tanh(input / 2))

    class WhereReLU(ReLU):
        def forward(self, input):
            out = torch.where(input > 0, input, 0.0)
            return input.copy_(out) if self.inplace else out

    for name, layer in [("Tanh", SigmoidTanh), ("Sigmoid", TanhSigmoid), ("ReLU", WhereReLU)]:
        report = grade(name, layer)
        assert report.passed, str(report)


def test_in_place_layers_really_write_into_their_input():
    """The behaviour the in-place judge demands, shown directly on the reference."""
    x = torch.tensor([[-1.0, 2.0], [0.5, -3.0]])
    out = ReLU(inplace=True)(x)
    assert out is x and x.min() == 0
    y = torch.tensor([-1.0, 2.0])
    assert torch.equal(ReLU()(y), torch.tensor([0.0, 2.0])) and y[0] == -1


class ClampInPlaceELU(ELU):
    """clamp saves its input for backward; the in-place copy_ then overwrites it."""

    def forward(self, input):
        out = torch.where(input > 0, input, self.alpha * (torch.exp(input.clamp(max=0)) - 1))
        return input.copy_(out) if self.inplace else out


class ClampAbsSoftplus(Softplus):
    """The stable formula relu(bx) + log1p(exp(-|bx|)): right values, gradient 1 at exactly 0 (not 0.5)."""

    def forward(self, input):
        bx = self.beta * input
        soft = (bx.clamp(min=0) + torch.log1p(torch.exp(-bx.abs()))) / self.beta
        return torch.where(bx > self.threshold, input, soft)


@pytest.mark.parametrize("layer, name, cause", [
    (ClampInPlaceELU, "ELU", "backward fails after your in-place write"),
    (ClampAbsSoftplus, "Softplus", "its gradient at x = 0 is sigmoid(0) = 0.5"),
])
def test_autograd_traps_are_explained(layer, name, cause):
    """Is the in-place autograd error explained, and a kink that torch's conventions put into a smooth function?"""
    report = grade(name, layer)
    assert report.part_passed("forward") and not report.part_passed("backward"), str(report)
    assert any(cause in f for f in report.failures if f.startswith("backward:")), str(report)
