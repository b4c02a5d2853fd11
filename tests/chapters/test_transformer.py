"""The transformer chapter's graders: the references pass, and each typical mistake fails naming its cause.

The wrong attention layers derive from `Student`, an attention written the way a student would
write it (one method per step), independently of the grader's own `_attention`; each wrong layer
changes one step. `Student` itself passes, so every failure below is the mistake's.
"""

from __future__ import annotations

import copy
import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import grade
from autograder.spec import Case, Layer, built, call, sibling
from autograder.specs.transformer import FORBIDDEN_CALLS, Attn, _attention
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

SOLUTION = solution_classes("transformer")
MHA = SOLUTION["MultiheadAttention"]
EncoderLayer = SOLUTION["TransformerEncoderLayer"]
DecoderLayer = SOLUTION["TransformerDecoderLayer"]
Encoder = SOLUTION["TransformerEncoder"]
LAYERS = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder"]


# --- attention, step by step ---------------------------------------------------------------------

class Student(MHA):
    """Multi-head attention in a student's style, one overridable method per step."""

    def split(self, x):  # (n, N, E) -> (N, H, n, D)
        n, batch, _ = x.shape
        return x.view(n, batch, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def merge(self, x):  # (N, H, L, D) -> (L, N, E)
        batch, heads, n, d = x.shape
        return x.permute(2, 0, 1, 3).reshape(n, batch, heads * d)

    def scale(self):
        return 1 / math.sqrt(self.head_dim)

    def boolean(self, mask, dtype):
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))

    def attn_bias(self, mask, batch, n_q, n_k, dtype):  # -> broadcastable to (N, H, L, S)
        bias = self.boolean(mask, dtype) if mask.dtype == torch.bool else mask
        return bias.view(batch, self.num_heads, n_q, n_k) if bias.dim() == 3 else bias

    def padding_bias(self, kpm, dtype):  # (N, S) -> (N, 1, 1, S)
        return self.boolean(kpm, dtype)[:, None, None, :]

    def normalise(self, scores):
        return torch.softmax(scores, dim=-1)

    def average(self, weights):  # (N, H, L, S) -> (N, L, S), or unbatched (H, L, S) -> (L, S)
        return weights.mean(dim=-3)

    def project(self, x):
        return self.out_proj(x)

    def transpose_batch_first(self):
        return self.batch_first

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query[:, None], key[:, None], value[:, None]
            key_padding_mask = None if key_padding_mask is None else key_padding_mask[None]
        elif self.transpose_batch_first():
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n_q, batch, e = query.shape
        n_k = key.shape[0]
        w = self.in_proj_weight
        b = self.in_proj_bias if self.in_proj_bias is not None else torch.zeros(3 * e, dtype=w.dtype, device=w.device)
        q = self.split(query @ w[:e].T + b[:e])
        k = self.split(key @ w[e:2 * e].T + b[e:2 * e])
        v = self.split(value @ w[2 * e:].T + b[2 * e:])
        scores = q @ k.transpose(-1, -2) * self.scale()
        if attn_mask is not None:
            scores = scores + self.attn_bias(attn_mask, batch, n_q, n_k, scores.dtype)
        if key_padding_mask is not None:
            scores = scores + self.padding_bias(key_padding_mask, scores.dtype)
        weights = self.normalise(scores)
        if self.training and self.dropout:
            weights = F.dropout(weights, self.dropout)
        out = self.project(self.merge(weights @ v))
        if unbatched:
            out, weights = out[:, 0], weights[0]
        elif self.transpose_batch_first():
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, self.average(weights) if average_attn_weights else weights


class NoScale(Student):
    def scale(self):
        return 1.0


class ScaledByEmbedDim(Student):
    def scale(self):
        return 1 / math.sqrt(self.embed_dim)


class ScaledByHeadDim(Student):
    def scale(self):
        return 1 / self.head_dim


class InvertedBoolMask(Student):
    """True read as "may attend"."""

    def boolean(self, mask, dtype):
        return super().boolean(~mask, dtype)


class BoolMaskAdded(Student):
    def attn_bias(self, mask, batch, n_q, n_k, dtype):
        return super().attn_bias(mask.to(dtype), batch, n_q, n_k, dtype)


class FloatMaskAsBool(Student):
    def attn_bias(self, mask, batch, n_q, n_k, dtype):
        return super().attn_bias(mask != 0, batch, n_q, n_k, dtype)


class PaddingOnQueries(Student):
    def padding_bias(self, kpm, dtype):
        return self.boolean(kpm, dtype)[:, None, :, None]


class Mask3dHeadMajor(Student):
    def attn_bias(self, mask, batch, n_q, n_k, dtype):
        bias = self.boolean(mask, dtype) if mask.dtype == torch.bool else mask
        return bias.view(self.num_heads, batch, n_q, n_k).transpose(0, 1) if bias.dim() == 3 else bias


class SoftmaxOverQueries(Student):
    def normalise(self, scores):
        return torch.softmax(scores, dim=-2)


class WeightsNotAveraged(Student):
    def average(self, weights):
        return weights


class WeightsSummed(Student):
    def average(self, weights):
        return weights.sum(dim=-3)


class HeadsInterleaved(Student):
    def split(self, x):
        n, batch, _ = x.shape
        return x.view(n, batch, self.head_dim, self.num_heads).permute(1, 3, 0, 2)

    def merge(self, x):
        batch, heads, n, d = x.shape
        return x.permute(2, 0, 3, 1).reshape(n, batch, heads * d)


class NoOutProj(Student):
    def project(self, x):
        return x


class BatchFirstIgnored(Student):
    def transpose_batch_first(self):
        return False


class DropoutOnInEval(Student):
    def forward(self, *args, **kwargs):
        training = self.training
        self.training = True  # dropout always on
        try:
            return super().forward(*args, **kwargs)
        finally:
            self.training = training


class DropoutNeverApplied(Student):
    def forward(self, *args, **kwargs):
        p, self.dropout = self.dropout, 0.0
        try:
            return super().forward(*args, **kwargs)
        finally:
            self.dropout = p


class BatchLoop(Student):
    def forward(self, query, key, value, **kwargs):
        if query.dim() != 3 or kwargs.get("key_padding_mask") is not None or kwargs.get("attn_mask") is not None:
            return super().forward(query, key, value, **kwargs)
        dim = 0 if self.batch_first else 1
        outs = [super(BatchLoop, self).forward(q, k, v, **kwargs)
                for q, k, v in zip(query.unbind(dim), key.unbind(dim), value.unbind(dim))]
        out = torch.stack([o for o, _ in outs], dim=dim)
        weights = None if outs[0][1] is None else torch.stack([w for _, w in outs])
        return out, weights


class SeparateXavier(Student):
    """xavier_uniform_ on W_q, W_k and W_v separately: a bound sqrt(2) times too large."""

    def _reset_parameters(self):
        super()._reset_parameters()
        with torch.no_grad():
            for block in self.in_proj_weight.chunk(3):
                nn.init.xavier_uniform_(block)


class OutProjBiasNotZeroed(Student):
    def _reset_parameters(self):
        super()._reset_parameters()
        if self.out_proj.bias is not None:
            bound = 1 / math.sqrt(self.embed_dim)
            nn.init.uniform_(self.out_proj.bias, -bound, bound)


class SeparateProjections(nn.Module):
    """q_proj, k_proj, v_proj Linears instead of torch's packed in_proj_weight."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, **kwargs):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(embed_dim, embed_dim, bias=bias)
                                                                for _ in range(4))

    def forward(self, query, key, value, **kwargs):
        return self.out_proj(query), None


class CallsSDPA(Student):
    """The output from F.scaled_dot_product_attention (the weights by hand)."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        out, weights = super().forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                                       average_attn_weights, is_causal)
        probe = query.detach()[None]
        F.scaled_dot_product_attention(probe, probe, probe)
        return out, weights


class CallsAtenSDPA(Student):
    def forward(self, query, key, value, **kwargs):
        probe = query.detach()[None]
        torch.ops.aten.scaled_dot_product_attention(probe, probe, probe)
        return super().forward(query, key, value, **kwargs)


class CallsSDPAUntraced(Student):
    """F.scaled_dot_product_attention with torch-function tracing switched off: only the kernel
    shows, at the dispatch level."""

    def forward(self, query, key, value, **kwargs):
        with torch._C.DisableTorchFunction():
            probe = query.detach()[None]
            F.scaled_dot_product_attention(probe, probe, probe)
        return super().forward(query, key, value, **kwargs)


class CallsMHAForward(MHA):
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched_or_seq_first = query.dim() == 2 or not self.batch_first
        q, k, v = (query, key, value) if unbatched_or_seq_first else (t.transpose(0, 1) for t in (query, key, value))
        out, weights = F.multi_head_attention_forward(
            q, k, v, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias, None, None, False,
            self.dropout, self.out_proj.weight, self.out_proj.bias, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        return (out if unbatched_or_seq_first else out.transpose(0, 1)), weights


class HiddenTorchAttention(MHA):
    """torch's module kept in a plain list (not registered, so not in the state_dict), sharing
    the student's parameters: right values, torch's code."""

    def forward(self, *args, **kwargs):
        inner = nn.MultiheadAttention(self.embed_dim, self.num_heads, dropout=self.dropout,
                                      bias=self.in_proj_bias is not None, batch_first=self.batch_first)
        inner.in_proj_weight, inner.in_proj_bias, inner.out_proj = self.in_proj_weight, self.in_proj_bias, self.out_proj
        self._hidden = [inner.train(self.training)]
        return self._hidden[0](*args, **kwargs)


class InheritsTorch(nn.MultiheadAttention):
    pass


# --- encoder and decoder layers ------------------------------------------------------------------

class EncoderNormFirstIgnored(EncoderLayer):
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = self.norm1(src + self._sa_block(src, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class EncoderNoFeedForwardResidual(EncoderLayer):
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(self._ff_block(x))


class EncoderNoAttentionResidual(EncoderLayer):
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        if self.norm_first:
            x = self._sa_block(self.norm1(src), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(self._sa_block(src, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class EncoderPreNormFromNormed(EncoderLayer):
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        if not self.norm_first:
            return super().forward(src, src_mask, src_key_padding_mask, is_causal)
        x = self.norm1(src)
        x = x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal)
        x = self.norm2(x)
        return x + self._ff_block(x)


class EncoderAlwaysRelu(EncoderLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.activation = F.relu


class EncoderEpsIgnored(EncoderLayer):
    def __init__(self, d_model, *args, layer_norm_eps=1e-5, **kwargs):
        super().__init__(d_model, *args, **kwargs)


class EncoderBatchFirstNotPassed(EncoderLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.self_attn.batch_first = False


class EncoderTorchAttention(EncoderLayer):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias)
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)


class EncoderSDPAAttention(EncoderLayer):
    """The student's own attention class name, but its forward calls torch's attention."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.self_attn.__class__ = CallsSDPA


class EncoderFused(EncoderLayer):
    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        out = super().forward(src, src_mask, src_key_padding_mask, is_causal)
        a = self.self_attn
        if src.dim() == 3 and a.in_proj_bias is not None and self.linear1.bias is not None:
            with torch.no_grad():
                torch._transformer_encoder_layer_fwd(
                    src.detach(), a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias, a.out_proj.weight,
                    a.out_proj.bias, False, self.norm_first, self.norm1.eps, self.norm1.weight, self.norm1.bias,
                    self.norm2.weight, self.norm2.bias, self.linear1.weight, self.linear1.bias, self.linear2.weight,
                    self.linear2.bias, None, None)
        return out


class EncoderDropoutsRenamed(EncoderLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop_sa, self.drop_ff = self.dropout1, self.dropout2
        del self.dropout1, self.dropout2

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        return self.drop_sa(self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                           need_weights=False)[0])

    def _ff_block(self, x):
        return self.drop_ff(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class EncoderDropoutNotPassed(EncoderLayer):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, **kwargs):
        super().__init__(d_model, nhead, dim_feedforward, 0.0, **kwargs)


class DecoderNormFirstIgnored(DecoderLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm_first = False


class DecoderNoFeedForwardResidual(DecoderLayer):
    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(self._ff_block(x))


class DecoderCrossOnTarget(DecoderLayer):
    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal=False):
        return super()._mha_block(x, x, None, None)


class DecoderMasksSwapped(DecoderLayer):
    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        return super().forward(tgt, memory, memory_mask, tgt_mask, memory_key_padding_mask, tgt_key_padding_mask)


class DecoderTorchCrossAttention(DecoderLayer):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                    batch_first=batch_first)


# --- the stack -----------------------------------------------------------------------------------

class SharedLayers(Encoder):
    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__(encoder_layer, num_layers, norm)
        self.layers = nn.ModuleList([encoder_layer] * num_layers)


class NoFinalNorm(Encoder):
    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        norm, self.norm = self.norm, None
        try:
            return super().forward(src, mask, src_key_padding_mask, is_causal)
        finally:
            self.norm = norm


class NormAfterEveryLayer(Encoder):
    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask)
            x = self.norm(x) if self.norm is not None else x
        return x


class MasksNotPassed(Encoder):
    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        return super().forward(src)


class FirstLayerOnly(Encoder):
    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = self.layers[0](src, mask, src_key_padding_mask)
        return self.norm(x) if self.norm is not None else x


class InheritsTorchEncoder(nn.TransformerEncoder):
    pass


def _lonely_encoder() -> type:
    """A TransformerEncoder defined where no TransformerEncoderLayer exists."""
    namespace = {"__name__": "lonely", "nn": nn, "copy": copy}
    exec("class TransformerEncoder(nn.Module):\n"  # noqa: S102
         "    def __init__(self, encoder_layer, num_layers, norm=None, **kwargs):\n"
         "        super().__init__()\n"
         "        self.layers = nn.ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])\n"
         "        self.norm = norm\n", namespace)
    return namespace["TransformerEncoder"]


Lonely = _lonely_encoder()


# --- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LAYERS)
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, SOLUTION[name], 4, public_notes=False, hidden_notes=False)


def test_the_step_by_step_attention_passes():
    """The base of the wrong attention layers is right: their failures are their mistakes'."""
    report = grade("MultiheadAttention", Student)
    assert report.passed, str(report)


WRONG = [
    # (layer, the spec it is graded as, the part that must fail, words the failure must contain)
    (NoScale, "MultiheadAttention", "forward", "not scaled by 1/sqrt(head_dim)"),
    (ScaledByEmbedDim, "MultiheadAttention", "forward", "divided by sqrt(embed_dim)"),
    (ScaledByHeadDim, "MultiheadAttention", "forward", "divided by head_dim instead of sqrt(head_dim)"),
    (InvertedBoolMask, "MultiheadAttention", "forward", "True in a boolean attn_mask is taken to mean 'may attend'"),
    (InvertedBoolMask, "MultiheadAttention", "forward", "True in key_padding_mask is taken to mean 'a real token'"),
    (BoolMaskAdded, "MultiheadAttention", "forward", "added to the scores as 0/1"),
    (FloatMaskAsBool, "MultiheadAttention", "forward", "float attn_mask is used as a boolean mask"),
    (PaddingOnQueries, "MultiheadAttention", "forward", "key_padding_mask is applied to the queries"),
    (Mask3dHeadMajor, "MultiheadAttention", "forward", "3-d attn_mask is read as (num_heads, N, L, S)"),
    (SoftmaxOverQueries, "MultiheadAttention", "forward", "softmax runs over the queries"),
    (WeightsNotAveraged, "MultiheadAttention", "shape", "not averaged over heads"),
    (WeightsSummed, "MultiheadAttention", "forward", "summed over heads instead of averaged"),
    (HeadsInterleaved, "MultiheadAttention", "forward", "split into heads as (head_dim, num_heads)"),
    (NoOutProj, "MultiheadAttention", "forward", "out_proj is not applied"),
    (BatchFirstIgnored, "MultiheadAttention", "shape", "batch_first=True is ignored"),
    (DropoutOnInEval, "MultiheadAttention", "forward", "dropout must do nothing when self.training is False"),
    (DropoutNeverApplied, "MultiheadAttention", "forward", "dropout is never applied"),
    (BatchLoop, "MultiheadAttention", "rules", "not vectorized"),
    (SeparateXavier, "MultiheadAttention", "state", "'in_proj_weight' is not initialised like torch's"),
    (OutProjBiasNotZeroed, "MultiheadAttention", "state", "'out_proj.bias' should start as 0"),
    (SeparateProjections, "MultiheadAttention", "state", "missing parameters/buffers ['in_proj_weight'"),
    (CallsSDPA, "MultiheadAttention", "rules", "calls torch.nn.functional.scaled_dot_product_attention"),
    (CallsAtenSDPA, "MultiheadAttention", "rules", "calls aten.scaled_dot_product_attention"),
    (CallsSDPAUntraced, "MultiheadAttention", "rules", "runs aten._scaled_dot_product_flash_attention_for_cpu"),
    (CallsMHAForward, "MultiheadAttention", "rules", "calls torch.nn.functional.multi_head_attention_forward"),
    (HiddenTorchAttention, "MultiheadAttention", "rules",
     "runs a torch.nn.modules.activation.MultiheadAttention module"),
    (InheritsTorch, "MultiheadAttention", "rules", "inherits from torch's MultiheadAttention"),
    (EncoderNormFirstIgnored, "TransformerEncoderLayer", "forward", "norm_first=True is ignored"),
    (EncoderNoFeedForwardResidual, "TransformerEncoderLayer", "forward",
     "residual connection around the feed-forward block is missing"),
    (EncoderNoAttentionResidual, "TransformerEncoderLayer", "forward",
     "residual connection around the self-attention block is missing"),
    (EncoderPreNormFromNormed, "TransformerEncoderLayer", "forward", "residual adds the normalised input"),
    (EncoderAlwaysRelu, "TransformerEncoderLayer", "forward", "activation='gelu' is ignored"),
    (EncoderEpsIgnored, "TransformerEncoderLayer", "forward", "layer_norm_eps is ignored"),
    (EncoderBatchFirstNotPassed, "TransformerEncoderLayer", "forward", "batch_first is not passed on"),
    (EncoderTorchAttention, "TransformerEncoderLayer", "rules",
     "runs a torch.nn.modules.activation.MultiheadAttention module"),
    (EncoderTorchAttention, "TransformerEncoderLayer", "rules", "self_attn is a MultiheadAttention: use your own"),
    (EncoderSDPAAttention, "TransformerEncoderLayer", "rules",
     "calls torch.nn.functional.scaled_dot_product_attention"),
    (EncoderFused, "TransformerEncoderLayer", "rules", "_transformer_encoder_layer_fwd"),
    (EncoderDropoutsRenamed, "TransformerEncoderLayer", "state", "missing submodules ['dropout1', 'dropout2']"),
    (EncoderDropoutNotPassed, "TransformerEncoderLayer", "forward", "dropout is never applied"),
    (DecoderNormFirstIgnored, "TransformerDecoderLayer", "forward", "norm_first=True is ignored"),
    (DecoderNoFeedForwardResidual, "TransformerDecoderLayer", "forward",
     "residual connection around the feed-forward block is missing"),
    (DecoderCrossOnTarget, "TransformerDecoderLayer", "forward", "keys and values from tgt instead of memory"),
    (DecoderMasksSwapped, "TransformerDecoderLayer", "forward", "tgt masks are used in the cross-attention"),
    (DecoderTorchCrossAttention, "TransformerDecoderLayer", "rules", "multihead_attn is a MultiheadAttention"),
    (SharedLayers, "TransformerEncoder", "forward", "every layer has the same parameters"),
    (SharedLayers, "TransformerEncoder", "state", "are the same tensors as other parameters"),
    (NoFinalNorm, "TransformerEncoder", "forward", "the final norm is not applied"),
    (NormAfterEveryLayer, "TransformerEncoder", "forward", "the norm is applied after every layer"),
    (MasksNotPassed, "TransformerEncoder", "forward", "the masks are not passed on to the layers"),
    (FirstLayerOnly, "TransformerEncoder", "forward", "only the first layer is applied"),
    (InheritsTorchEncoder, "TransformerEncoder", "rules", "inherits from torch's TransformerEncoder"),
    (Lonely, "TransformerEncoder", "state", "needs your own TransformerEncoderLayer class"),
]


@pytest.mark.parametrize("layer, name, part, cause", WRONG,
                         ids=[f"{w[0].__name__}-{w[2]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_layer_fails_naming_the_cause(layer, name, part, cause):
    assert_fails_naming(grade(name, layer, parts=[part]), part, cause)


@pytest.mark.parametrize("layer", [NoScale, InvertedBoolMask, PaddingOnQueries, WeightsNotAveraged, Mask3dHeadMajor])
def test_attention_mistakes_are_caught_by_the_hidden_suite_too(layer):
    """Fresh sizes and masks at grading time still catch them (a seed may draw one head, where
    some mistakes are harmless, so any of three seeds is enough)."""
    assert not all(grade("MultiheadAttention", layer, suite="hidden", seed=s).passed for s in range(3))


def test_the_plain_attention_behind_the_mistakes_is_torchs():
    """`_attention` with no switch computes torch's attention: the mistakes are variations of the truth."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    q, kv = torch.randn(3, 5, 8, dtype=torch.double), torch.randn(3, 7, 8, dtype=torch.double)
    mask, kpm = torch.rand(5, 7) < 0.3, torch.zeros(3, 7, dtype=torch.bool)
    mask[:, 0], kpm[1, 4:] = False, True
    for kwargs in ({}, {"attn_mask": mask, "key_padding_mask": kpm}, {"average_attn_weights": False},
                   {"need_weights": False, "attn_mask": torch.randn(6, 5, 7, dtype=torch.double)}):
        want = mha(q, kv, kv, **kwargs)
        got = _attention(mha, call(q, kv, kv, **kwargs), Attn())
        torch.testing.assert_close(got[0], want[0])
        if want[1] is not None:
            torch.testing.assert_close(got[1], want[1])


def test_torchs_attention_entry_points_are_all_forbidden():
    for name in ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward",
                 "_VariableFunctionsClass._native_multi_head_attention", "aten.scaled_dot_product_attention",
                 "aten._scaled_dot_product_flash_attention_for_cpu", "aten._native_multi_head_attention",
                 "_VariableFunctionsClass._transformer_encoder_layer_fwd"):
        assert name in FORBIDDEN_CALLS, name


# --- layers given as arguments: each side builds its own ------------------------------------------

def test_a_layer_argument_is_torchs_for_the_reference_and_the_students_own_for_the_student():
    case_layer = Layer("TransformerEncoderLayer", (8, 2), {"dropout": 0.0})
    case = Case("c", (case_layer, 2), {"norm": Layer("LayerNorm", (8,), own=False)})
    (ref_layer, n), ref_kwargs = built(case)
    (stu_layer, _), stu_kwargs = built(case, Encoder)
    assert type(ref_layer) is nn.TransformerEncoderLayer and n == 2
    assert type(stu_layer) is EncoderLayer
    assert type(ref_kwargs["norm"]) is type(stu_kwargs["norm"]) is nn.LayerNorm
    assert ref_kwargs["norm"] is not stu_kwargs["norm"], "each side gets a fresh module"
    assert repr(case_layer) == "TransformerEncoderLayer(8, 2, dropout=0.0)"


def test_the_students_layer_class_is_found_in_a_kernels_main_module(monkeypatch):
    """In Jupyter the classes live in `__main__`; a subclass with no method of its own is found
    through its module."""
    main = types.ModuleType("kernel_main")
    main.Base, main.BaseLayer = Encoder, EncoderLayer
    exec("class TransformerEncoderLayer(BaseLayer):\n    pass\n"  # noqa: S102
         "class TransformerEncoder(Base):\n    pass\n", main.__dict__)
    monkeypatch.setitem(sys.modules, "kernel_main", main)
    assert sibling(main.TransformerEncoder, "TransformerEncoderLayer") is main.TransformerEncoderLayer


def test_the_students_layer_class_is_found_next_to_a_notebook_loaded_class():
    """The notebook loader's namespace is in no sys.modules: the functions' globals lead to it."""
    assert Encoder.__module__ not in sys.modules
    assert sibling(Encoder, "TransformerEncoderLayer") is EncoderLayer
    assert sibling(SharedLayers, "TransformerEncoderLayer") is EncoderLayer, "found through the base class"
