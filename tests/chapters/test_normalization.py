"""The normalization graders: the references pass, and each typical mistake fails naming its cause.

The wrong layers are the reference solution with one thing changed. Statistics are written out in
a helper (`stats`) that each wrong layer overrides, so every wrong layer differs from the
reference in exactly the way its name says.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import CHAPTERS, grade
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

S = solution_classes("normalization")
BatchNorm1d, BatchNorm2d, BatchNorm3d = S["BatchNorm1d"], S["BatchNorm2d"], S["BatchNorm3d"]
LayerNorm, GroupNorm, InstanceNorm2d, RMSNorm = S["LayerNorm"], S["GroupNorm"], S["InstanceNorm2d"], S["RMSNorm"]


def bn_forward(layer, x, *, unbiased=False, eps_outside=False, running_unbiased=True, swapped=False,
               batch_stats_in_eval=False, update_in_eval=False, count=True, dims=None, detach=False,
               affine=True, no_grad_update=True):
    """BatchNorm's forward, with switches for the classic mistakes."""
    dims = [0, *range(2, x.dim())] if dims is None else dims
    shape = [1, -1] + [1] * (x.dim() - 2)
    use_batch = layer.training or layer.running_mean is None or batch_stats_in_eval
    if use_batch:
        mean = x.mean(dims, keepdim=True)
        var = x.var(dims, keepdim=True, correction=int(unbiased))
        if detach:
            mean, var = mean.detach(), var.detach()
        if (layer.training or update_in_eval) and layer.track_running_stats:
            m_c, v_c = x.mean([0, *range(2, x.dim())]), x.var([0, *range(2, x.dim())], correction=0)
            n_c = x.numel() // x.shape[1]
            with torch.set_grad_enabled(not no_grad_update):
                if count:
                    layer.num_batches_tracked += 1
                f = layer.momentum if layer.momentum is not None else 1.0 / float(layer.num_batches_tracked)
                v_new = v_c * n_c / (n_c - 1) if running_unbiased else v_c
                if swapped:
                    layer.running_mean = f * layer.running_mean + (1 - f) * m_c
                    layer.running_var = f * layer.running_var + (1 - f) * v_new
                else:
                    layer.running_mean = (1 - f) * layer.running_mean + f * m_c
                    layer.running_var = (1 - f) * layer.running_var + f * v_new
    else:
        mean, var = layer.running_mean.reshape(shape), layer.running_var.reshape(shape)
    y = (x - mean) / (var.sqrt() + layer.eps if eps_outside else torch.sqrt(var + layer.eps))
    if affine and layer.weight is not None:
        y = y * layer.weight.reshape(shape)
    if affine and layer.bias is not None:
        y = y + layer.bias.reshape(shape)
    return y


def bn_with(**options):
    class Wrong(BatchNorm1d):
        def forward(self, input):
            self._check_input_dim(input)
            return bn_forward(self, input, **options)

    return Wrong


def test_bn_forward_without_options_is_right():
    """The helper the wrong layers are built from is right when nothing is switched on."""
    assert grade("BatchNorm1d", bn_with()).passed


# --- BatchNorm --------------------------------------------------------------------------------------

UnbiasedVariance = bn_with(unbiased=True)
EpsOutsideSqrt = bn_with(eps_outside=True)
BiasedRunningVar = bn_with(running_unbiased=False)
SwappedMomentum = bn_with(swapped=True)
BatchStatsInEval = bn_with(batch_stats_in_eval=True)
UpdatesInEval = bn_with(batch_stats_in_eval=True, update_in_eval=True)
NoCount = bn_with(count=False)
PerPosition = bn_with(dims=[0])
DetachedStats = bn_with(detach=True)
NoAffine = bn_with(affine=False)
RunningStatsWithHistory = bn_with(no_grad_update=False)


class MomentumNoneAsDefault(BatchNorm1d):
    """momentum=None silently replaced by 0.1: no cumulative average."""

    def forward(self, input):
        saved, self.momentum = self.momentum, 0.1 if self.momentum is None else self.momentum
        try:
            return super().forward(input)
        finally:
            self.momentum = saved


class FloatCounter(BatchNorm1d):
    """num_batches_tracked kept as a float tensor."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.num_batches_tracked is not None:
            self.num_batches_tracked = torch.tensor(0.0)


class BuffersAlways(BatchNorm1d):
    """track_running_stats=False ignored: running statistics are registered anyway."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *args, **kwargs):
        super().__init__(num_features, eps, momentum, affine, True, *args, **kwargs)
        self.track_running_stats = track_running_stats


class WeightInit(BatchNorm1d):
    """Starts with weight 0, as if it were a bias."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.weight is not None:
            with torch.no_grad():
                self.weight.zero_()


class ChannelLoop(BatchNorm2d):
    """One channel at a time (training-mode maths only: the rules are what is graded here)."""

    def forward(self, input):
        outs = []
        for c in range(input.shape[1]):
            xc = input[:, c]
            outs.append((xc - xc.mean()) / torch.sqrt(xc.var(correction=0) + self.eps))
        return torch.stack(outs, dim=1)


class CallsFBatchNorm(BatchNorm1d):
    def forward(self, input):
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or self.running_mean is None,
                            0.0 if self.momentum is None else self.momentum, self.eps)


class CallsTorchBatchNorm(BatchNorm1d):
    def forward(self, input):
        return torch.batch_norm(input, self.weight, self.bias, self.running_mean, self.running_var,
                                self.training or self.running_mean is None,
                                0.0 if self.momentum is None else self.momentum, self.eps, False)


class CallsAtenOp(BatchNorm1d):
    def forward(self, input):
        return torch.ops.aten.native_batch_norm(input, self.weight, self.bias, self.running_mean, self.running_var,
                                                self.training or self.running_mean is None,
                                                0.1 if self.momentum is None else self.momentum, self.eps)[0]


class HiddenTorchBatchNorm(BatchNorm1d):
    """torch's layer made inside forward, sharing our tensors: in no state_dict."""

    def forward(self, input):
        inner = nn.BatchNorm1d(self.num_features, self.eps, self.momentum, self.affine, self.track_running_stats)
        inner.weight, inner.bias = self.weight, self.bias
        if self.track_running_stats:
            inner.running_mean, inner.running_var = self.running_mean, self.running_var
            inner.num_batches_tracked = self.num_batches_tracked
        inner.train(self.training)
        return inner(input)


class InheritsTorch(nn.BatchNorm1d):
    pass


class CountOnCPU(BatchNorm2d):
    """The cumulative-average factor from a tensor made without device=."""

    def forward(self, input):
        return super().forward(input) + torch.zeros(1)


BN_WRONG = [
    # (layer, graded as, the part that must fail, words the failure must contain)
    (UnbiasedVariance, "BatchNorm1d", "forward", "the batch variance is the unbiased one"),
    (EpsOutsideSqrt, "BatchNorm1d", "forward", "eps is added outside the square root"),
    (BatchStatsInEval, "BatchNorm1d", "forward", "eval mode normalises with the batch's statistics"),
    (PerPosition, "BatchNorm1d", "forward", "over the batch dimension alone"),
    (NoAffine, "BatchNorm1d", "forward", "the weight and bias (the learnable scale and shift) are not applied"),
    (BiasedRunningVar, "BatchNorm1d", "state", "running_var is updated with the biased batch variance"),
    (SwappedMomentum, "BatchNorm1d", "state", "the other momentum convention"),
    (UpdatesInEval, "BatchNorm1d", "state", "also updated in eval mode"),
    (NoCount, "BatchNorm1d", "state", "num_batches_tracked is not incremented"),
    (MomentumNoneAsDefault, "BatchNorm1d", "state",
     "BatchNorm1d(4, momentum=None) · cumulative_average [float64, train, step 1"),
    (FloatCounter, "BatchNorm1d", "state", "'num_batches_tracked' is a torch.float32 tensor; torch's is torch.int64"),
    (BuffersAlways, "BatchNorm1d", "state", "unexpected parameters/buffers ['running_mean', 'running_var', "
                                            "'num_batches_tracked']"),
    (WeightInit, "BatchNorm1d", "state", "'weight' should start as 1 everywhere"),
    (RunningStatsWithHistory, "BatchNorm1d", "state", "carry autograd history"),
    (DetachedStats, "BatchNorm1d", "backward", "matches the one with the mean and variance detached"),
    (ChannelLoop, "BatchNorm2d", "rules", "not vectorized"),
    (CallsFBatchNorm, "BatchNorm1d", "rules", "calls torch.nn.functional.batch_norm"),
    (CallsTorchBatchNorm, "BatchNorm1d", "rules", "calls torch.batch_norm"),
    (CallsAtenOp, "BatchNorm1d", "rules", "calls aten.native_batch_norm"),
    (HiddenTorchBatchNorm, "BatchNorm1d", "rules", "runs a torch.nn.modules.batchnorm.BatchNorm1d module"),
    (InheritsTorch, "BatchNorm1d", "rules", "inherits from torch's BatchNorm1d"),
    (CountOnCPU, "BatchNorm2d", "rules", "device 'meta'"),
]


# --- LayerNorm ---------------------------------------------------------------------------------------

def ln_forward(layer, x, *, dims=None, unbiased=False, eps_outside=False, center=True, rms=False, eps=None):
    dims = tuple(range(-len(layer.normalized_shape), 0)) if dims is None else dims
    eps = layer.eps if eps is None else eps
    if rms:
        if eps is None:
            eps = torch.finfo(x.dtype).eps
        mean = torch.zeros((), dtype=x.dtype)
        var = (x - mean).pow(2).mean(dims, keepdim=True)
    else:
        mean = x.mean(dims, keepdim=True) if center else torch.zeros((), dtype=x.dtype)
        var = x.var(dims, keepdim=True, correction=int(unbiased))
    y = (x - mean) / (var.sqrt() + eps if eps_outside else torch.sqrt(var + eps))
    if layer.weight is not None:
        y = y * layer.weight
    if getattr(layer, "bias", None) is not None:
        y = y + layer.bias
    return y


def ln_with(base=LayerNorm, **options):
    class Wrong(base):
        def forward(self, input):
            return ln_forward(self, input, **options)

    return Wrong


class LNBiasAlways(LayerNorm):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__(normalized_shape, eps, elementwise_affine, True, device, dtype)


class LNIntOnly(LayerNorm):
    """normalized_shape=(3, 4) taken as its first element."""

    def __init__(self, normalized_shape, *args, **kwargs):
        super().__init__(normalized_shape if isinstance(normalized_shape, int) else normalized_shape[-1],
                         *args, **kwargs)


class LNRowLoop(LayerNorm):
    def forward(self, input):
        rows = input.reshape(-1, *self.normalized_shape)
        return torch.stack([super(LNRowLoop, self).forward(r) for r in rows]).reshape(input.shape)


class LNCallsFLayerNorm(LayerNorm):
    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


class LNCallsGroupNorm(LayerNorm):
    """Layer norm as a group norm with one group: the values are right, the call is not."""

    def forward(self, input):
        d = len(self.normalized_shape)
        flat = input.reshape(-1, 1, *self.normalized_shape)
        y = F.group_norm(flat, 1, eps=self.eps).reshape(input.shape) if d else input
        return ln_forward_affine(self, y)


def ln_forward_affine(layer, y):
    if layer.weight is not None:
        y = y * layer.weight
    if layer.bias is not None:
        y = y + layer.bias
    return y


class LNHiddenTorch(LayerNorm):
    def forward(self, input):
        return nn.LayerNorm(self.normalized_shape, self.eps, elementwise_affine=False)(input) * (
            self.weight if self.weight is not None else 1) + (self.bias if self.bias is not None else 0)


class LNCallsTorchLayerNorm(LayerNorm):
    def forward(self, input):
        return torch.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


LN_WRONG = [
    (ln_with(dims=(-1,)), "LayerNorm", "forward", "only the last dimension is normalised"),
    (ln_with(unbiased=True), "LayerNorm", "forward", "the variance is the unbiased one"),
    (ln_with(eps_outside=True), "LayerNorm", "forward", "eps is added outside the square root"),
    (ln_with(dims=(0,)), "LayerNorm", "forward", "taken over the batch"),
    (LNBiasAlways, "LayerNorm", "state", "unexpected parameters/buffers ['bias']"),
    (LNIntOnly, "LayerNorm", "state", "'weight' has shape (4,), expected (3, 4)"),
    (LNRowLoop, "LayerNorm", "rules", "not vectorized"),
    (LNCallsFLayerNorm, "LayerNorm", "rules", "calls torch.nn.functional.layer_norm"),
    (LNCallsGroupNorm, "LayerNorm", "rules", "calls torch.nn.functional.group_norm"),
    (LNCallsTorchLayerNorm, "LayerNorm", "rules", "calls torch.layer_norm"),
    (LNHiddenTorch, "LayerNorm", "rules", "runs a torch.nn.modules.normalization.LayerNorm module"),
]


# --- GroupNorm ---------------------------------------------------------------------------------------

def gn_forward(layer, x, *, groups=None, strided=False, unbiased=False, eps_outside=False):
    n, c = x.shape[:2]
    g = layer.num_groups if groups is None else groups
    grouped = x.reshape(n, c // g, g, -1).transpose(1, 2).reshape(n, g, -1) if strided else x.reshape(n, g, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, keepdim=True, correction=int(unbiased))
    y = (grouped - mean) / (var.sqrt() + layer.eps if eps_outside else torch.sqrt(var + layer.eps))
    if strided:
        y = y.reshape(n, g, c // g, -1).transpose(1, 2)
    y = y.reshape(x.shape)
    shape = [1, -1] + [1] * (x.dim() - 2)
    if layer.weight is not None:
        y = y * layer.weight.reshape(shape)
    if layer.bias is not None:
        y = y + layer.bias.reshape(shape)
    return y


class GNPerChannel(GroupNorm):
    def forward(self, input):
        return gn_forward(self, input, groups=self.num_channels)


class GNStrided(GroupNorm):
    def forward(self, input):
        return gn_forward(self, input, strided=True)


class GNUnbiased(GroupNorm):
    def forward(self, input):
        return gn_forward(self, input, unbiased=True)


class GNEpsOutside(GroupNorm):
    def forward(self, input):
        return gn_forward(self, input, eps_outside=True)


class GNAffinePerGroup(GroupNorm):
    """weight and bias of shape (num_groups,)."""

    def __init__(self, num_groups, num_channels, *args, **kwargs):
        super().__init__(num_groups, num_channels, *args, **kwargs)
        if self.weight is not None:
            self.weight = nn.Parameter(torch.ones(num_groups))

    def forward(self, input):
        return input


class GNGroupLoop(GroupNorm):
    def forward(self, input):
        chunks = input.chunk(self.num_groups, dim=1)
        parts = []
        for chunk in chunks:
            dims = tuple(range(1, input.dim()))
            mean, var = chunk.mean(dims, keepdim=True), chunk.var(dims, keepdim=True, correction=0)
            parts.append((chunk - mean) / torch.sqrt(var + self.eps))
        y = torch.cat(parts, dim=1)
        shape = [1, -1] + [1] * (input.dim() - 2)
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        return y


class GNCallsFGroupNorm(GroupNorm):
    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


class GNViaBatchNorm(GroupNorm):
    """The classic trick: group norm as a batch norm of a (1, N*G, -1) view. Not allowed either."""

    def forward(self, input):
        n = input.shape[0]
        y = F.batch_norm(input.reshape(1, n * self.num_groups, -1), None, None, training=True, eps=self.eps)
        y = y.reshape(input.shape)
        shape = [1, -1] + [1] * (input.dim() - 2)
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        return y


class GNInheritsTorch(nn.GroupNorm):
    pass


GN_WRONG = [
    (GNPerChannel, "GroupNorm", "forward", "every channel is normalised on its own, as InstanceNorm does"),
    (GNStrided, "GroupNorm", "forward", "channels are put in groups by stride"),
    (GNUnbiased, "GroupNorm", "forward", "the variance is the unbiased one"),
    (GNEpsOutside, "GroupNorm", "forward", "eps is added outside the square root"),
    (GNAffinePerGroup, "GroupNorm", "state", "'weight' has shape (2,), expected (6,)"),
    (GNGroupLoop, "GroupNorm", "rules", "not vectorized"),
    (GNCallsFGroupNorm, "GroupNorm", "rules", "calls torch.nn.functional.group_norm"),
    (GNViaBatchNorm, "GroupNorm", "rules", "calls torch.nn.functional.batch_norm"),
    (GNInheritsTorch, "GroupNorm", "rules", "inherits from torch's GroupNorm"),
]


# --- InstanceNorm2d ----------------------------------------------------------------------------------

def in_with(dims, **options):
    class Wrong(InstanceNorm2d):
        def forward(self, input):
            mean = input.mean(dims, keepdim=True)
            var = input.var(dims, keepdim=True, correction=int(options.get("unbiased", False)))
            if options.get("eps_outside"):
                y = (input - mean) / (var.sqrt() + self.eps)
            else:
                y = (input - mean) / torch.sqrt(var + self.eps)
            if self.weight is not None:
                y = y * self.weight.reshape(-1, 1, 1)
            if self.bias is not None:
                y = y + self.bias.reshape(-1, 1, 1)
            return y

    return Wrong


class INCallsF(InstanceNorm2d):
    def forward(self, input):
        return F.instance_norm(input, weight=self.weight, bias=self.bias, eps=self.eps)


class INHiddenTorch(InstanceNorm2d):
    def forward(self, input):
        return nn.InstanceNorm2d(self.num_features, self.eps, affine=False)(input) * (
            self.weight.reshape(-1, 1, 1) if self.weight is not None else 1)


class INAffineAlways(InstanceNorm2d):
    """affine defaults to True, as BatchNorm's does."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *args, **kwargs):
        super().__init__(num_features, eps, momentum, affine, *args, **kwargs)


IN_WRONG = [
    (in_with((0, 2, 3)), "InstanceNorm2d", "forward", "shared across the batch"),
    (in_with((-3, -2, -1)), "InstanceNorm2d", "forward", "all channels together"),
    (in_with((-2, -1), unbiased=True), "InstanceNorm2d", "forward", "the variance is the unbiased one"),
    (in_with((-2, -1), eps_outside=True), "InstanceNorm2d", "forward", "eps is added outside the square root"),
    (in_with((2, 3)), "InstanceNorm2d", "forward", "forward raised"),  # unbatched (C, H, W) inputs break
    (INAffineAlways, "InstanceNorm2d", "state", "unexpected parameters/buffers ['weight', 'bias']"),
    (INCallsF, "InstanceNorm2d", "rules", "calls torch.nn.functional.instance_norm"),
    (INHiddenTorch, "InstanceNorm2d", "rules", "runs a torch.nn.modules.instancenorm.InstanceNorm2d module"),
]


# --- RMSNorm -----------------------------------------------------------------------------------------

def rms_with(**options):
    class Wrong(RMSNorm):
        def forward(self, x):
            return rms_forward(self, x, **options)

    return Wrong


def rms_forward(layer, x, *, dims=None, eps=None, center=False, eps_outside=False, l2=False):
    dims = tuple(range(-len(layer.normalized_shape), 0)) if dims is None else dims
    if eps is None:
        eps = torch.finfo(x.dtype).eps if layer.eps is None else layer.eps
    if center:
        x = x - x.mean(dims, keepdim=True)
    square = x.pow(2).sum(dims, keepdim=True) if l2 else x.pow(2).mean(dims, keepdim=True)
    y = x / (square.sqrt() + eps if eps_outside else torch.sqrt(square + eps))
    return y * layer.weight if layer.weight is not None else y


class RMSCallsF(RMSNorm):
    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class RMSCallsTorch(RMSNorm):
    def forward(self, x):
        return torch.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class RMSWithBias(RMSNorm):
    def __init__(self, normalized_shape, *args, **kwargs):
        super().__init__(normalized_shape, *args, **kwargs)
        if self.weight is not None:
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


class RMSEpsDefault(RMSNorm):
    """eps=None replaced by 1e-6 in the constructor."""

    def __init__(self, normalized_shape, eps=None, *args, **kwargs):
        super().__init__(normalized_shape, 1e-6 if eps is None else eps, *args, **kwargs)


RMS_WRONG = [
    (rms_with(center=True), "RMSNorm", "forward", "the mean is subtracted first, as LayerNorm does"),
    (rms_with(eps=1e-6), "RMSNorm", "forward", "eps=None is taken as 1e-06"),
    (rms_with(eps=1e-5), "RMSNorm", "forward", "eps=None is taken as 1e-05"),
    (rms_with(eps=0.0), "RMSNorm", "forward", "eps=None is taken as 0"),
    (rms_with(dims=(-1,)), "RMSNorm", "forward", "only the last dimension is normalised"),
    (rms_with(eps_outside=True), "RMSNorm", "forward", "eps is added outside the square root"),
    (rms_with(l2=True), "RMSNorm", "forward", "divided by its L2 norm"),
    (RMSWithBias, "RMSNorm", "state", "unexpected parameters/buffers ['bias']"),
    (RMSCallsF, "RMSNorm", "rules", "calls torch.nn.functional.rms_norm"),
    (RMSCallsTorch, "RMSNorm", "rules", "calls torch.rms_norm"),
    (RMSEpsDefault, "RMSNorm", "state", "attribute 'eps' is 1e-06, expected None"),
]

WRONG = BN_WRONG + LN_WRONG + GN_WRONG + IN_WRONG + RMS_WRONG


def _id(entry) -> str:
    layer, name, part, cause = entry
    return f"{name}-{layer.__qualname__.split('.')[0]}-{part}-{cause[:30]}"


@pytest.mark.parametrize("name", CHAPTERS["normalization"])
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, S[name], 4)


@pytest.mark.parametrize("layer, name, part, cause", WRONG, ids=[_id(w) for w in WRONG])
def test_a_wrong_layer_fails_naming_the_cause(layer, name, part, cause):
    assert_fails_naming(grade(name, layer, parts=[part]), part, cause)


@pytest.mark.parametrize("layer, name, part, cause", [
    (UnbiasedVariance, "BatchNorm1d", "forward", "the batch variance is the unbiased one"),
    (SwappedMomentum, "BatchNorm1d", "state", "the other momentum convention"),
    (BiasedRunningVar, "BatchNorm1d", "state", "running_var is updated with the biased batch variance"),
    (BatchStatsInEval, "BatchNorm1d", "forward", "eval mode normalises with the batch's statistics"),
    (ln_with(dims=(-1,)), "LayerNorm", "forward", "only the last dimension is normalised"),
    (GNPerChannel, "GroupNorm", "forward", "every channel is normalised on its own"),
], ids=lambda v: getattr(v, "__qualname__", str(v))[:30])
def test_the_hidden_suite_catches_the_key_mistakes_too(layer, name, part, cause):
    """Fresh configurations at every grading still expose (and name) the classic mistakes."""
    for seed in range(3):
        assert_fails_naming(grade(name, layer, parts=[part], suite="hidden", seed=seed), part, cause)


def test_the_running_statistics_are_compared_after_every_step():
    """A layer right at step 1 and wrong afterwards (the count restarts) fails at step 2."""

    class Restarts(BatchNorm1d):
        def forward(self, input):
            if self.training and self.track_running_stats and self.momentum is None:
                self.num_batches_tracked.zero_()
            return super().forward(input)

    report = grade("BatchNorm1d", Restarts, parts=["state"])
    assert not report.passed
    step_2 = "BatchNorm1d(4, momentum=None) · cumulative_average [float64, train, step 2;"
    assert any(step_2 in f for f in report.failures), str(report)
    assert not any("step 1" in f for f in report.failures), str(report)


def test_the_book_example_is_graded():
    """BatchNorm1d(5) on arange(20).reshape(4, 5): the columns normalise to ±1.3416, ±0.4472."""
    x = torch.arange(20.0).reshape(4, 5)
    y = BatchNorm1d(5)(x)
    torch.testing.assert_close(y[:, 0], torch.tensor([-1.3416, -0.4472, 0.4472, 1.3416]), atol=1e-4, rtol=0)
    assert "book_example" in [c.desc for c in __import__("autograder").SPECS["BatchNorm1d"].cases]
