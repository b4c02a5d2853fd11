"""MultiheadAttention, TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder.

Attention of `L` queries over `S` keys for a batch of `N`, with `E = embed_dim` split into `H`
heads of `D = E / H` features: query (L, N, E), key and value (S, N, E) (or batch first, or
unbatched), scores (N, H, L, S) = q k^T / sqrt(D) plus the masks, softmax over the keys, weights
times values, heads concatenated, `out_proj`. torch's conventions that students get wrong: a
boolean mask's True means "may NOT attend"; a float mask is added; `key_padding_mask` (N, S)
masks keys (columns), never queries; a 3-d `attn_mask` is (N * H, L, S) in batch-major order;
the returned weights are averaged over heads unless `average_attn_weights=False`.

The cases use `dropout=0.0`, so training-mode outputs are deterministic; judges check the default
dropout in eval mode (it must do nothing) and that dropout is applied at all in training mode.
References get their parameters perturbed (`_perturbed`): torch starts biases at zero, norms at
one and stacks identical copies of one layer, under which a forgotten bias, a norm's affine or a
stack sharing one layer would pass unnoticed. The initialisation is judged separately against an
untouched torch layer.

The mistakes are computed by `_attention` (a plain attention with switches for the usual wrong
turns) and `_encoder_layer` / `_decoder_layer` (the blocks written out from the reference's own
submodules, with switches).
"""

from __future__ import annotations

import copy
import inspect
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import resolve_name

from .. import compare
from ..engine import raised
from ..report import Result
from ..spec import Case, Inputs, Layer, Maker, Mistake, Scale, Spec, built, call, register, seed_of
from ..student import StudentError

# --- what must not be called --------------------------------------------------------------------

_ATTENTION = re.compile(r"attention|multi_head|transformer_(encoder|decoder)", re.IGNORECASE)


def _torch_attention_names() -> frozenset[str]:
    """Every torch function and aten op that computes attention (or a whole transformer layer), as
    the tracer names them: `torch.nn.functional.scaled_dot_product_attention`,
    `torch.nn.functional.multi_head_attention_forward`, `torch._native_multi_head_attention`
    (`_VariableFunctionsClass._native_multi_head_attention`), `aten._scaled_dot_product_...`."""
    names = set()
    for namespace in (torch, F, torch._C._nn, torch._C._VariableFunctions):
        for attr in dir(namespace):
            if _ATTENTION.search(attr):
                fn = getattr(namespace, attr)
                if callable(fn):
                    names.add(resolve_name(fn) or getattr(fn, "__qualname__", attr))
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and _ATTENTION.search(op):
            packet, _, overload = op.removeprefix("aten::").partition(".")
            names |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(names)


FORBIDDEN_CALLS = _torch_attention_names()
FORBIDDEN_MODULES = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                     nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)
TOLERANCES = {torch.float64: (1e-7, 1e-9), torch.float32: (1e-4, 2e-5)}


# --- references ---------------------------------------------------------------------------------

def _perturbed(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """torch's layer with every parameter moved off its initial value (seeded by the engine):
    biases away from 0, norm weights away from 1, and the stacked copies of a TransformerEncoder
    made different from each other."""
    def reference(*args: Any, **kwargs: Any) -> nn.Module:
        layer = build(*args, **kwargs)
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.2 * torch.randn_like(p))
        return layer
    return reference


def _encoder(encoder_layer: nn.Module, num_layers: int, norm: nn.Module | None = None, **kwargs: Any) -> nn.Module:
    # the nested-tensor fast path never runs while grading (parameters require grad); disabling it
    # only spares a warning about batch_first
    kwargs.setdefault("enable_nested_tensor", False)
    return nn.TransformerEncoder(encoder_layer, num_layers, norm, **kwargs)


def _bound(layer: nn.Module, inputs: Inputs, forward: Callable | None = None) -> dict[str, Any]:
    """The forward call's arguments by name, defaults filled in (torch's signature)."""
    sig = inspect.signature(forward or type(layer).forward)
    bound = sig.bind(layer, *inputs.args, **dict(inputs.kwargs))
    bound.apply_defaults()
    return dict(bound.arguments)


def _need(condition: bool) -> None:
    """A mistake that does not apply to this case (it would equal torch's output, or cannot run)."""
    if not condition:
        raise ValueError("not applicable")


# --- attention written out, with the usual mistakes as switches ----------------------------------

@dataclass(frozen=True)
class Attn:
    """How a (possibly wrong) attention computes its output. The defaults are torch's."""

    scale: str = "sqrt_head"  # "none", "sqrt_embed", "head" (1/D), "times_sqrt_head"
    softmax_dim: int = -1  # -2: normalised over the queries
    invert_bool_mask: bool = False  # True taken to mean "may attend"
    bool_mask_added: bool = False  # a boolean mask added as 0/1 numbers
    float_mask_as_bool: bool = False  # a float mask used as "nonzero = masked"
    invert_padding: bool = False
    padding_on_queries: bool = False  # key_padding_mask masks rows (queries) instead of columns
    mask3d_head_major: bool = False  # a 3-d mask read as (H, N, L, S) instead of (N, H, L, S)
    heads_interleaved: bool = False  # E split as (D, H) instead of (H, D)
    out_proj: bool = True
    batch_first_ignored: bool = False
    weights: str = "mean"  # "sum", "per_head" (not averaged), "first" (head 0 only)


def _additive(mask: torch.Tensor, v: Attn, dtype: torch.dtype, invert: bool) -> torch.Tensor:
    if mask.dtype == torch.bool:
        mask = ~mask if invert else mask
        if v.bool_mask_added:
            return mask.to(dtype)
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    if v.float_mask_as_bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask != 0, float("-inf"))
    return mask.to(dtype)


def _attention(mha: nn.Module, inputs: Inputs, v: Attn = Attn()) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`mha(*inputs)` computed by hand with `mha`'s parameters, the way `v` says."""
    a = _bound(mha, inputs, nn.MultiheadAttention.forward)
    query, key, value = a["query"], a["key"], a["value"]
    kpm, mask = a["key_padding_mask"], a["attn_mask"]
    batched = query.dim() == 3
    batch_first = mha.batch_first and not v.batch_first_ignored
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        kpm = kpm.unsqueeze(0) if kpm is not None else None
    elif batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    L, N, E = query.shape
    S, H = key.shape[0], mha.num_heads
    D = E // H
    w = mha.in_proj_weight.chunk(3)
    b = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (0, 0, 0)

    def heads(x: torch.Tensor, i: int) -> torch.Tensor:  # (n, N, E) -> (N, H, n, D)
        y = x @ w[i].T + b[i]
        y = y.unflatten(-1, (D, H)).transpose(-1, -2) if v.heads_interleaved else y.unflatten(-1, (H, D))
        return y.permute(1, 2, 0, 3)

    q, k, val = heads(query, 0), heads(key, 1), heads(value, 2)
    scale = {"sqrt_head": 1 / math.sqrt(D), "none": 1.0, "sqrt_embed": 1 / math.sqrt(E), "head": 1 / D,
             "times_sqrt_head": math.sqrt(D)}[v.scale]
    scores = (q @ k.transpose(-2, -1)) * scale  # (N, H, L, S)
    if mask is not None:
        m = _additive(mask, v, scores.dtype, v.invert_bool_mask)
        if m.dim() == 3:
            m = m.reshape(H, N, L, S).transpose(0, 1) if v.mask3d_head_major else m.reshape(N, H, L, S)
        scores = scores + m
    if kpm is not None:
        m = _additive(kpm, v, scores.dtype, v.invert_padding)  # (N, S)
        if v.padding_on_queries:
            _need(S == L)
            scores = scores + m[:, None, :, None]
        else:
            scores = scores + m[:, None, None, :]
    weights = scores.softmax(dim=v.softmax_dim)
    out = weights @ val  # (N, H, L, D)
    out = out.permute(2, 0, 3, 1) if v.heads_interleaved else out.permute(2, 0, 1, 3)
    out = out.reshape(L, N, E)
    if v.out_proj:
        out = mha.out_proj(out)
    if not batched:
        out, weights = out.squeeze(1), weights.squeeze(0)
    elif batch_first:
        out = out.transpose(0, 1)
    if not a["need_weights"]:
        return out, None
    if v.weights == "sum":
        return out, weights.sum(dim=-3)
    if v.weights == "first":
        return out, weights.select(-3, 0)
    if v.weights == "per_head" or not a["average_attn_weights"]:
        return out, weights
    return out, weights.mean(dim=-3)


def _attention_mistake(cause: str, **switches: Any) -> Mistake:
    v = Attn(**switches)

    def output(ref: nn.Module, inputs: Inputs) -> Any:
        a = _bound(ref, inputs)
        if "scale" in switches:
            _need(ref.num_heads > 1 or v.scale != "sqrt_embed")
        if v.invert_bool_mask or v.bool_mask_added:
            _need(a["attn_mask"] is not None and a["attn_mask"].dtype == torch.bool)
        if v.float_mask_as_bool:
            _need(a["attn_mask"] is not None and a["attn_mask"].is_floating_point())
        if v.invert_padding or v.padding_on_queries:
            _need(a["key_padding_mask"] is not None)
        if v.mask3d_head_major:
            _need(a["attn_mask"] is not None and a["attn_mask"].dim() == 3)
        if v.weights != "mean":
            _need(a["need_weights"] and a["average_attn_weights"])
        if v.batch_first_ignored:
            _need(ref.batch_first and a["query"].dim() == 3)
        return _attention(ref, inputs, v)

    return Mistake(cause, output)


ATTENTION_MISTAKES = (
    _attention_mistake("the scores are not scaled by 1/sqrt(head_dim)", scale="none"),
    _attention_mistake("the scores are divided by sqrt(embed_dim) instead of sqrt(head_dim) = "
                       "sqrt(embed_dim / num_heads)", scale="sqrt_embed"),
    _attention_mistake("the scores are divided by head_dim instead of sqrt(head_dim)", scale="head"),
    _attention_mistake("the scores are multiplied by sqrt(head_dim) instead of divided by it", scale="times_sqrt_head"),
    _attention_mistake("the softmax runs over the queries (dim=-2) instead of over the keys (dim=-1): each "
                       "query's weights must sum to 1", softmax_dim=-2),
    _attention_mistake("True in a boolean attn_mask is taken to mean 'may attend' (in torch True means 'may "
                       "NOT attend')", invert_bool_mask=True),
    _attention_mistake("a boolean attn_mask is added to the scores as 0/1 numbers instead of masking with -inf",
                       bool_mask_added=True),
    _attention_mistake("a float attn_mask is used as a boolean mask (torch adds a float mask to the scores)",
                       float_mask_as_bool=True),
    _attention_mistake("True in key_padding_mask is taken to mean 'a real token' (in torch True means "
                       "'padding: ignore this key')", invert_padding=True),
    _attention_mistake("key_padding_mask is applied to the queries (rows of the scores) instead of the keys "
                       "(columns): mask[:, None, None, :] masks keys", padding_on_queries=True),
    _attention_mistake("a 3-d attn_mask is read as (num_heads, N, L, S); torch's order is (N, num_heads, L, S) "
                       "flattened, entry n * num_heads + h", mask3d_head_major=True),
    _attention_mistake("the features are split into heads as (head_dim, num_heads) instead of (num_heads, "
                       "head_dim): head h owns features h*head_dim to (h+1)*head_dim - 1", heads_interleaved=True),
    _attention_mistake("out_proj is not applied to the concatenated heads", out_proj=False),
    _attention_mistake("batch_first=True is ignored", batch_first_ignored=True),
    _attention_mistake("the attention weights are not averaged over heads (average_attn_weights=True, the "
                       "default, returns their mean: shape (N, L, S))", weights="per_head"),
    _attention_mistake("the attention weights are summed over heads instead of averaged", weights="sum"),
    _attention_mistake("the attention weights returned are the first head's, not the average over heads",
                       weights="first"),
)


# --- encoder and decoder layers written out, with switches ---------------------------------------

@dataclass(frozen=True)
class Block:
    """How a (possibly wrong) encoder or decoder layer wires its blocks. Defaults are torch's."""

    norm_first: bool | None = None  # None: the layer's own setting
    residual_ff: bool = True
    residual_sa: bool = True
    residual_from_normed: bool = False  # pre-norm: x = norm(x); x = x + f(x)
    cross_on_self: bool = False  # decoder: cross-attention keys/values from tgt instead of memory
    masks_swapped: bool = False  # decoder: tgt masks used for the memory and vice versa
    activation: Callable | None = None
    eps: float | None = None  # the norms' eps used instead of layer_norm_eps


def _sublayer(x: torch.Tensor, f: Callable, norm: nn.Module, pre: bool, v: Block, residual: bool) -> torch.Tensor:
    if pre:
        h = _norm(norm, x, v)
        return (h if v.residual_from_normed else x) + f(h) if residual else f(h)
    return _norm(norm, x + f(x) if residual else f(x), v)


def _norm(norm: nn.Module, x: torch.Tensor, v: Block) -> torch.Tensor:
    if v.eps is None:
        return norm(x)
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, v.eps)


def _feed_forward(ref: nn.Module, v: Block) -> Callable:
    act = v.activation or ref.activation
    return lambda x: ref.linear2(act(ref.linear1(x)))


def _attend(mha: nn.Module, kv: Callable, mask: Any, kpm: Any, causal: bool) -> Callable:
    return lambda x: mha(x, kv(x), kv(x), attn_mask=mask, key_padding_mask=kpm, need_weights=False,
                         is_causal=causal)[0]


def _encoder_layer(ref: nn.Module, inputs: Inputs, v: Block = Block()) -> torch.Tensor:
    a = _bound(ref, inputs)
    pre = ref.norm_first if v.norm_first is None else v.norm_first
    x = a["src"]
    sa = _attend(ref.self_attn, lambda h: h, a["src_mask"], a["src_key_padding_mask"], a["is_causal"])
    x = _sublayer(x, sa, ref.norm1, pre, v, v.residual_sa)
    return _sublayer(x, _feed_forward(ref, v), ref.norm2, pre, v, v.residual_ff)


def _decoder_layer(ref: nn.Module, inputs: Inputs, v: Block = Block()) -> torch.Tensor:
    a = _bound(ref, inputs)
    pre = ref.norm_first if v.norm_first is None else v.norm_first
    x, memory = a["tgt"], a["memory"]
    masks = [(a["tgt_mask"], a["tgt_key_padding_mask"], a["tgt_is_causal"]),
             (a["memory_mask"], a["memory_key_padding_mask"], a["memory_is_causal"])]
    if v.masks_swapped:
        masks.reverse()
    sa = _attend(ref.self_attn, lambda h: h, *masks[0])
    x = _sublayer(x, sa, ref.norm1, pre, v, v.residual_sa)
    ca = _attend(ref.multihead_attn, (lambda h: h) if v.cross_on_self else (lambda h: memory), *masks[1])
    x = _sublayer(x, ca, ref.norm2, pre, v, True)
    return _sublayer(x, _feed_forward(ref, v), ref.norm3, pre, v, v.residual_ff)


def _block_mistakes(by_hand: Callable) -> tuple[Mistake, ...]:
    def m(cause: str, applies: Callable[[nn.Module, Inputs], bool] = lambda ref, i: True, **switches: Any) -> Mistake:
        v = Block(**switches)

        def output(ref: nn.Module, inputs: Inputs) -> torch.Tensor:
            _need(applies(ref, inputs))
            return by_hand(ref, inputs, v)
        return Mistake(cause, output)

    gelu = lambda ref, i: ref.activation is F.gelu  # noqa: E731
    pre = lambda ref, i: ref.norm_first  # noqa: E731
    return (
        m("norm_first=True is ignored: the norms must come BEFORE attention and feed-forward (pre-norm)",
          pre, norm_first=False),
        m("norm_first=False is ignored: by default the norms come AFTER each residual addition (post-norm)",
          lambda ref, i: not ref.norm_first, norm_first=True),
        m("the residual connection around the feed-forward block is missing (x + ff(x))", residual_ff=False),
        m("the residual connection around the self-attention block is missing (x + sa(x))", residual_sa=False),
        m("in pre-norm the residual adds the normalised input (x = norm(x); x = x + f(x)) instead of the raw "
          "one (x = x + f(norm(x)))", pre, residual_from_normed=True),
        m("activation='gelu' is ignored: the feed-forward block uses ReLU", gelu, activation=F.relu),
        m("layer_norm_eps is ignored: the norms use eps=1e-5", lambda ref, i: ref.norm1.eps != 1e-5, eps=1e-5),
    )


def _batch_first_not_passed(by_hand: Callable) -> Mistake:
    def output(ref: nn.Module, inputs: Inputs) -> torch.Tensor:
        _need(ref.self_attn.batch_first and inputs.args[0].dim() == 3)
        wrong = copy.deepcopy(ref)
        for module in wrong.modules():
            if isinstance(module, nn.MultiheadAttention):
                module.batch_first = False
        return by_hand(wrong, inputs)
    return Mistake("batch_first is not passed on to the attention: it attends over the batch instead of the "
                   "sequence", output)


ENCODER_LAYER_MISTAKES = _block_mistakes(_encoder_layer) + (_batch_first_not_passed(_encoder_layer),)
DECODER_LAYER_MISTAKES = _block_mistakes(_decoder_layer) + (
    _batch_first_not_passed(_decoder_layer),
    Mistake("the cross-attention takes its keys and values from tgt instead of memory",
            lambda ref, i: _decoder_layer(ref, i, Block(cross_on_self=True))),
    Mistake("the tgt masks are used in the cross-attention and the memory masks in the self-attention",
            lambda ref, i: _decoder_layer(ref, i, Block(masks_swapped=True))),
)


def _stack(ref: nn.Module, inputs: Inputs, layers: list, norm_each: bool = False, masks: bool = True,
           final_norm: bool = True) -> torch.Tensor:
    a = _bound(ref, inputs)
    x = a["src"]
    for layer in layers:
        if masks:
            x = layer(x, src_mask=a["mask"], src_key_padding_mask=a["src_key_padding_mask"],
                      is_causal=bool(a["is_causal"]))
        else:
            x = layer(x)
        if norm_each and ref.norm is not None:
            x = ref.norm(x)
    if final_norm and not norm_each and ref.norm is not None:
        x = ref.norm(x)
    return x


def _stack_mistake(cause: str, needs_norm: bool = False, shared: bool = False, first_only: bool = False,
                   **switches: Any) -> Mistake:
    def output(ref: nn.Module, inputs: Inputs) -> torch.Tensor:
        _need(ref.norm is not None or not needs_norm)
        layers = list(ref.layers)
        if shared:  # nn.ModuleList([layer] * n) loads every layer's state into one module: the last wins
            _need(len(layers) > 1)
            layers = [layers[-1]] * len(layers)
        if first_only:
            _need(len(layers) > 1)
            layers = layers[:1]
        return _stack(ref, inputs, layers, **switches)
    return Mistake(cause, output)


ENCODER_MISTAKES = (
    _stack_mistake("every layer has the same parameters (one layer repeated instead of "
                   "copy.deepcopy(encoder_layer) once per layer)", shared=True),
    _stack_mistake("only the first layer is applied", first_only=True),
    _stack_mistake("the final norm is not applied", needs_norm=True, final_norm=False),
    _stack_mistake("the norm is applied after every layer instead of once at the end", needs_norm=True,
                   norm_each=True),
    _stack_mistake("the masks are not passed on to the layers", masks=False),
)


# --- judges ---------------------------------------------------------------------------------------

def _initialisation(case: Case) -> Callable:
    """A fresh student layer's parameters against an untouched torch layer's (the graded
    references are perturbed, so the engine's `init_cases` cannot be used)."""
    def judge(ctx) -> Iterable[Result]:
        if "state" not in ctx.parts:
            return
        where = case.label(ctx.spec.name) + " fresh"
        torch.manual_seed(seed_of(ctx.spec.name, case.desc, "init"))
        args, kwargs = built(case)
        ref = getattr(nn, ctx.spec.name)(*args, **kwargs)
        stu = ctx.student(case, where, ("state",))
        if stu is None:
            return
        try:
            got = stu.state_dict()
        except Exception as exc:  # noqa: BLE001
            yield Result("state", where, False, f"state_dict() {raised(exc)}")
            return
        for name, want in ref.state_dict().items():
            g = got.get(name)
            if isinstance(g, torch.Tensor) and g.shape == want.shape:
                ok, detail = ctx.init_problem(name, g.detach().double().cpu(), want.double().cpu())
                yield Result("state", where, ok, detail, "initialisation", name)
    return judge


def _built_pair(ctx, case: Case, where: str, parts: tuple[str, ...]) -> tuple | None:
    """torch's (perturbed) layer and the student's, in float64 with the same state; None (recorded)
    if that fails."""
    ref, stu = ctx.reference(case), ctx.student(case, where, parts)
    if stu is None:
        return None
    try:
        ref = ref.double()
        stu.to(dtype=torch.float64)
        stu.load_state_dict(ref.state_dict())
    except Exception:  # noqa: BLE001 - reported by the state part of the graded cases
        for part in parts:
            ctx.record(part, where, False, "not run: the layer's parameters and buffers must match torch's first "
                       "(see state)", check="dropout")
        return None
    return ref, stu


def _dropout(default: Case, active: Case) -> Callable:
    """Dropout judged where it is deterministic: with torch's default p in eval mode (it must do
    nothing), and with p = 0.5 in training mode only as far as "it changes the output"."""
    def judge(ctx) -> Iterable[Result]:
        if {"shape", "forward"} & set(ctx.parts):
            where = default.label(ctx.spec.name)
            pair = _built_pair(ctx, default, where, ("shape", "forward"))
            if pair is not None:
                ref, stu = pair
                ref.eval(), stu.train(False)
                ctx.step(default, where, "float64, eval", ref, stu, torch.float64, "eval", backward=False)
                yield from _deterministic_in_eval(ctx, default, where, stu)
        if "forward" not in ctx.parts:
            return
        where = active.label(ctx.spec.name)
        pair = _built_pair(ctx, active, where, ("forward",))
        if pair is None:
            return
        _, stu = pair
        inputs = ctx.make(active, torch.float64, "dropout")
        try:
            stu.train(False)
            evaluated = compare.tensors(stu.forward(inputs, no_grad=True).output)[0]
            stu.train(True)
            trained = compare.tensors(stu.forward(inputs, no_grad=True).output)[0]
        except Exception as exc:  # noqa: BLE001
            yield Result("forward", where, False, f"forward with dropout {raised(exc)}", "float64, train", "dropout")
            return
        same = trained.shape == evaluated.shape and torch.allclose(trained, evaluated)
        yield Result("forward", where, not same, "in training mode with dropout=0.5 the output equals the eval-mode "
                     "output: dropout is never applied (pass `dropout` on to the attention and the nn.Dropout "
                     "modules)", "float64, train", "dropout")
    return judge


def _deterministic_in_eval(ctx, case: Case, where: str, stu: nn.Module) -> Iterable[Result]:
    """Two eval-mode calls on one input give one output: dropout is off (a dropout left on in eval
    mode with torch's default p = 0.1 changes some of the hundreds of values every time)."""
    inputs = ctx.make(case, torch.float64, "twice")
    try:
        first, second = (compare.tensors(stu.forward(inputs, no_grad=True).output)[0] for _ in range(2))
    except Exception:  # noqa: BLE001 - the graded forward reported it
        return
    yield Result("forward", where, torch.equal(first, second), "in eval mode the output changes from one call to "
                 "the next: dropout must do nothing when self.training is False (nn.Dropout does that for you; "
                 "F.dropout needs training=self.training)", "float64, eval", "dropout off in eval")


def _submodules(case: Case) -> Callable:
    """torch's submodule names, including those without parameters (dropout1, ...), which the
    state_dict comparison cannot see."""
    def judge(ctx) -> Iterable[Result]:
        if "state" not in ctx.parts:
            return
        where = case.label(ctx.spec.name)
        ref, stu = ctx.reference(case), ctx.student(case, where, ("state",))
        if stu is None:
            return
        try:
            have = set(stu.modules())
        except Exception:  # noqa: BLE001 - reported by the engine
            return
        missing = [name for name, _ in ref.named_modules() if name not in have]
        yield Result("state", where, not missing, f"missing submodules {missing}: name them as torch does "
                     "(self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2, ...)", "", "submodules")
    return judge


def _own_attention(case: Case, attributes: tuple[str, ...]) -> Callable:
    """The layer's attention modules are instances of the student's own MultiheadAttention."""
    def judge(ctx) -> Iterable[Result]:
        if "rules" not in ctx.parts:
            return
        where = case.label(ctx.spec.name)
        try:
            own = ctx.side.sibling("MultiheadAttention")["id"]
        except StudentError as exc:
            yield Result("rules", where, False, exc.message or exc.text, "", "own attention")
            return
        stu = ctx.student(case, where, ("rules",))
        if stu is None:
            return
        try:
            found = stu.attrs(*attributes)
        except Exception:  # noqa: BLE001 - a fault, reported by the engine
            return
        wrong = [f"{name} is a {found[name].type if found[name].present else 'NoneType'}" for name in attributes
                 if own not in found[name].mro_ids]
        yield Result("rules", where, not wrong, f"{'; '.join(wrong)}: use your own MultiheadAttention class "
                     "(the one you wrote above) for the attention blocks", "", "own attention")
    return judge


_FUSED = re.compile(r"scaled_dot_product|multi_head_attention|transformer_(encoder|decoder)|flash_attention|"
                    r"efficient_attention", re.IGNORECASE)


def _no_fused_kernels(ctx) -> Iterable[Result]:
    """The aten ops the student's forwards dispatch: torch's fused attention kernels show there even
    when the Python-level call was hidden from the function tracer."""
    if "rules" not in ctx.parts:
        return
    found: set[str] = set()
    for case in ctx.cases:
        where = case.label(ctx.spec.name)
        if where in ctx.crashed:
            continue
        pair = _built_pair(ctx, case, where, ())
        if pair is None:
            continue
        _, stu = pair
        inputs = ctx.make(case, torch.float64, "fused")
        try:
            stu.train(False)
            ops = stu.forward(inputs, traced="ops").trace["ops"]
        except Exception:  # noqa: BLE001 - the graded forwards report it
            continue
        found |= {op for op in ops if _FUSED.search(op)}
    yield Result("rules", ctx.spec.name, not found, f"runs {', '.join(sorted(found))}: torch's own attention "
                 "kernel; compute the scores, the softmax and the weighted sum yourself", "", "kernels")


# --- inputs ---------------------------------------------------------------------------------------

E, H, FF = 8, 2, 16  # embed_dim, num_heads (head_dim 4), dim_feedforward
N, L, S = 3, 5, 7  # batch, target (query) length, source (key) length: all different, so a swap shows


def _bool_mask(make: Maker, *shape: int, p: float = 0.35) -> torch.Tensor:
    """Random True ("may not attend") entries; key 0 is always allowed, so no row is fully masked
    (torch gives NaN there with need_weights=True and 0 without)."""
    mask = make.uniform(*shape, low=0.0, high=1.0) < p
    mask[..., 0] = False
    return mask


def _float_mask(make: Maker, *shape: int) -> torch.Tensor:
    """Added to the scores: some large negatives, some -inf, never on key 0."""
    m = make.randn(*shape, scale=2.0)
    blocked = make.uniform(*shape, low=0.0, high=1.0) < 0.25
    blocked[..., 0] = False
    return m.masked_fill(blocked, float("-inf"))


def _padding(make: Maker, n: int, s: int) -> torch.Tensor:
    """(n, s) True after each sequence's length; lengths from s down to 1, so some keys are padding."""
    lengths = torch.linspace(s, 1, n).round().long() if n > 1 else torch.tensor([s - 1 or 1])
    return (torch.arange(s)[None, :] >= lengths[:, None]).to(make.device)


def _causal(make: Maker, n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=make.device).triu(1)


def _qkv(make: Maker, n: int = N, t: int = L, s: int = S, e: int = E, batch_first: bool = False, **kw: Any) -> Inputs:
    shape = (lambda t: (n, t, e)) if batch_first else (lambda t: (t, n, e))
    return call(make.randn(*shape(t)), make.randn(*shape(s)), make.randn(*shape(s)), **kw)


def _self(make: Maker, n: int = N, t: int = L, e: int = E, batch_first: bool = False, **kw: Any) -> Inputs:
    x = make.randn(*((n, t, e) if batch_first else (t, n, e)))
    return call(x, x, x, **kw)


MHA_CASES = (
    Case("default", (E, H), {}, _qkv),
    Case("no_bias", (E, H), {"bias": False}, _qkv),
    # self-attention without masks first: an ignored batch_first still runs (attending over the
    # batch), so its feedback can name the cause; cross-attention then crashes
    Case("batch_first", (E, H), {"batch_first": True}, lambda make: _self(make, batch_first=True)),
    Case("batch_first_cross", (E, H), {"batch_first": True}, lambda make: _qkv(make, batch_first=True)),
    Case("four_heads", (12, 4), {}, lambda make: _qkv(make, e=12)),
    Case("one_head", (6, 1), {}, lambda make: _qkv(make, e=6)),
    Case("bool_mask", (E, H), {}, lambda make: _qkv(make, attn_mask=_bool_mask(make, L, S))),
    Case("float_mask", (E, H), {}, lambda make: _qkv(make, attn_mask=_float_mask(make, L, S))),
    Case("mask_3d", (E, H), {}, lambda make: _qkv(make, attn_mask=_bool_mask(make, N * H, L, S))),
    Case("key_padding_self", (E, H), {}, lambda make: _self(make, key_padding_mask=_padding(make, N, L))),
    Case("key_padding_cross", (E, H), {"batch_first": True},
         lambda make: _qkv(make, batch_first=True, key_padding_mask=_padding(make, N, S))),
    Case("both_masks", (E, H), {}, lambda make: _qkv(make, attn_mask=_bool_mask(make, L, S),
                                                     key_padding_mask=_padding(make, N, S))),
    Case("no_weights", (E, H), {}, lambda make: _qkv(make, need_weights=False)),
    Case("per_head_weights", (E, H), {}, lambda make: _qkv(make, attn_mask=_float_mask(make, N * H, L, S),
                                                           average_attn_weights=False)),
    Case("causal", (E, H), {"batch_first": True},
         lambda make: _self(make, batch_first=True, attn_mask=_causal(make, L), is_causal=True, need_weights=False)),
    Case("causal_weights", (E, H), {}, lambda make: _self(make, attn_mask=_causal(make, L), is_causal=True)),
    Case("unbatched", (E, H), {}, lambda make: call(make.randn(L, E), make.randn(S, E), make.randn(S, E),
                                                    key_padding_mask=_padding(make, 1, S)[0],
                                                    attn_mask=_bool_mask(make, H, L, S))),
)


def _mha_hidden(rng: random.Random) -> Iterable[Case]:
    """Fresh sizes and options: heads 1-4 of 2-5 features, lengths and batch 2-6."""
    for desc in ("hidden_masks", "hidden_float_per_head", "hidden_padding", "hidden_unbatched"):
        h, d = rng.randint(1, 4), rng.randint(2, 5)
        e, n, t, s = h * d, rng.randint(2, 6), rng.randint(2, 6), rng.randint(2, 6)
        bf, bias = rng.random() < 0.5, rng.random() < 0.7
        kwargs = {"batch_first": True} if bf else {}
        kwargs |= {} if bias else {"bias": False}

        def inputs(make: Maker, desc=desc, h=h, e=e, n=n, t=t, s=s, bf=bf) -> Inputs:
            if desc == "hidden_masks":
                return _qkv(make, n, t, s, e, bf, attn_mask=_bool_mask(make, t, s),
                            key_padding_mask=_padding(make, n, s))
            if desc == "hidden_float_per_head":
                return _qkv(make, n, t, s, e, bf, attn_mask=_float_mask(make, n * h, t, s), average_attn_weights=False)
            if desc == "hidden_padding":
                return _self(make, n, t, e, bf, key_padding_mask=_padding(make, n, t), attn_mask=_bool_mask(make, t, t))
            return call(make.randn(t, e), make.randn(s, e), make.randn(s, e), key_padding_mask=_padding(make, 1, s)[0])
        yield Case(desc, (e, h), kwargs, inputs)


def _src(make: Maker, n: int = N, t: int = L, e: int = E, batch_first: bool = False, **kw: Any) -> Inputs:
    return call(make.randn(*((n, t, e) if batch_first else (t, n, e))), **kw)


def _tgt_memory(make: Maker, n: int = N, t: int = L, s: int = S, e: int = E, batch_first: bool = False,
                **kw: Any) -> Inputs:
    shape = (lambda k: (n, k, e)) if batch_first else (lambda k: (k, n, e))
    return call(make.randn(*shape(t)), make.randn(*shape(s)), **kw)


P0 = {"dim_feedforward": FF, "dropout": 0.0}

ENCODER_LAYER_CASES = (
    Case("default", (E, H), P0, _src),
    Case("norm_first", (E, H), P0 | {"norm_first": True}, _src),
    Case("gelu", (E, H), P0 | {"activation": "gelu"}, _src),
    Case("batch_first", (E, H), P0 | {"batch_first": True}, lambda make: _src(make, batch_first=True)),
    Case("no_bias", (E, H), P0 | {"bias": False}, _src),
    # a large eps on inputs of small spread: an ignored layer_norm_eps changes the values
    Case("layer_norm_eps", (E, H), P0 | {"layer_norm_eps": 0.5}, lambda make: call(make.randn(L, N, E, scale=0.3))),
    Case("src_mask", (E, H), P0, lambda make: _src(make, src_mask=_bool_mask(make, L, L))),
    Case("padding_pre_norm", (E, H), P0 | {"norm_first": True, "batch_first": True},
         lambda make: _src(make, batch_first=True, src_key_padding_mask=_padding(make, N, L))),
    Case("causal", (E, H), P0 | {"activation": "gelu"},
         lambda make: _src(make, src_mask=_causal(make, L), is_causal=True)),
    Case("unbatched", (E, H), P0 | {"norm_first": True}, lambda make: call(make.randn(L, E))),
)

DECODER_LAYER_CASES = (
    Case("default", (E, H), P0, _tgt_memory),
    Case("norm_first", (E, H), P0 | {"norm_first": True}, _tgt_memory),
    Case("gelu", (E, H), P0 | {"activation": "gelu"}, _tgt_memory),
    Case("batch_first", (E, H), P0 | {"batch_first": True}, lambda make: _tgt_memory(make, batch_first=True)),
    Case("no_bias", (E, H), P0 | {"bias": False}, _tgt_memory),
    Case("layer_norm_eps", (E, H), P0 | {"layer_norm_eps": 0.5},
         lambda make: call(make.randn(L, N, E, scale=0.3), make.randn(S, N, E, scale=0.3))),
    Case("causal_and_memory_padding", (E, H), P0,
         lambda make: _tgt_memory(make, tgt_mask=_causal(make, L), tgt_is_causal=True,
                                  memory_key_padding_mask=_padding(make, N, S))),
    # tgt and memory of the same length, so that masks swapped between the two attentions still run
    Case("all_masks_pre_norm", (E, H), P0 | {"norm_first": True},
         lambda make: _tgt_memory(make, s=L, tgt_mask=_bool_mask(make, L, L), memory_mask=_bool_mask(make, L, L),
                                  tgt_key_padding_mask=_padding(make, N, L),
                                  memory_key_padding_mask=_padding(make, N, L).flip(-1).roll(1, -1))),
    Case("unbatched", (E, H), P0, lambda make: call(make.randn(L, E), make.randn(S, E))),
)


def _heads(rng: random.Random) -> tuple[int, int]:
    """Heads and head size for a layer with LayerNorms: d_model >= 6, as a LayerNorm over 2 or 4
    features is so ill-conditioned that float32 gradients lose 3 digits."""
    h, d = rng.randint(1, 4), rng.randint(3, 5)
    return (max(h, 2), d) if h * d < 6 else (h, d)


def _layer_hidden(kind: str) -> Callable[[random.Random], Iterable[Case]]:
    def hidden(rng: random.Random) -> Iterable[Case]:
        for i in range(3):
            h, d = _heads(rng)
            e, n, t, s = h * d, rng.randint(2, 5), rng.randint(2, 6), rng.randint(2, 6)
            bf = rng.random() < 0.5
            kwargs = {"dim_feedforward": rng.randint(4, 24), "dropout": 0.0, "norm_first": rng.random() < 0.5,
                      "activation": rng.choice(["relu", "gelu"]), "batch_first": bf}
            if kind == "encoder":
                def inputs(make: Maker, n=n, t=t, e=e, bf=bf, i=i) -> Inputs:
                    masks = {"src_key_padding_mask": _padding(make, n, t)} if i else {}
                    return _src(make, n, t, e, bf, **masks)
            else:
                def inputs(make: Maker, n=n, t=t, s=s, e=e, bf=bf, i=i) -> Inputs:
                    masks = {"tgt_mask": _causal(make, t), "memory_key_padding_mask": _padding(make, n, s)} if i else {}
                    return _tgt_memory(make, n, t, s, e, bf, **masks)
            yield Case(f"hidden_{i}", (e, h), kwargs, inputs)
    return hidden


LAYER0 = Layer("TransformerEncoderLayer", (E, H), P0)
LAYER0_PRE = Layer("TransformerEncoderLayer", (E, H), P0 | {"norm_first": True, "batch_first": True})
NORM = Layer("LayerNorm", (E,), own=False)

ENCODER_CASES = (
    Case("default", (LAYER0, 2), {}, _src),
    Case("final_norm", (LAYER0, 2), {"norm": NORM}, _src),
    Case("pre_norm_stack", (LAYER0_PRE, 3), {"norm": NORM}, lambda make: _src(make, batch_first=True)),
    Case("one_layer", (LAYER0, 1), {}, _src),
    Case("causal", (LAYER0, 2), {}, lambda make: _src(make, mask=_causal(make, L), is_causal=True)),
    Case("padding", (LAYER0_PRE, 2), {},
         lambda make: _src(make, batch_first=True, src_key_padding_mask=_padding(make, N, L))),
    Case("unbatched", (LAYER0, 2), {"norm": NORM}, lambda make: call(make.randn(L, E))),
)


def _encoder_hidden(rng: random.Random) -> Iterable[Case]:
    h, d = _heads(rng)
    e, n, t = h * d, rng.randint(2, 5), rng.randint(2, 6)
    bf = rng.random() < 0.5
    layer = Layer("TransformerEncoderLayer", (e, h), {"dim_feedforward": rng.randint(4, 24), "dropout": 0.0,
                                                      "norm_first": rng.random() < 0.5, "batch_first": bf})
    yield Case("hidden_stack", (layer, rng.randint(2, 4)), {"norm": Layer("LayerNorm", (e,), own=False)},
               lambda make: _src(make, n, t, e, bf, src_key_padding_mask=_padding(make, n, t)))


# --- the specs ------------------------------------------------------------------------------------

def _scales(case: Case, inputs: Callable[..., Inputs]) -> tuple[Scale, ...]:
    return (
        Scale("batch size 2 vs 32", case, lambda make: inputs(make, n=2), lambda make: inputs(make, n=32)),
        Scale("sequence length 4 vs 32", case, lambda make: inputs(make, t=4), lambda make: inputs(make, t=32)),
    )


register(
    Spec(
        name="MultiheadAttention",
        chapter="transformer",
        reference=_perturbed(nn.MultiheadAttention),
        cases=MHA_CASES,
        hidden=_mha_hidden,
        scales=_scales(Case("scale", (E, H)), lambda make, n=N, t=L: _qkv(make, n, t, t)),
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=ATTENTION_MISTAKES,
        tolerances=TOLERANCES,
        judges=(
            _initialisation(Case("init", (256, 4))),
            _dropout(Case("dropout_default_eval", (E, H), {"dropout": 0.1}, _qkv),
                     Case("dropout_train", (E, H), {"dropout": 0.5}, lambda make: _qkv(make, n=8))),
            _no_fused_kernels,
        ),
        bench=Case("bench", (256, 8), {}, lambda make: _qkv(make, 16, 64, 64, 256)),
    ),
    Spec(
        name="TransformerEncoderLayer",
        chapter="transformer",
        reference=_perturbed(nn.TransformerEncoderLayer),
        cases=ENCODER_LAYER_CASES,
        hidden=_layer_hidden("encoder"),
        scales=_scales(Case("scale", (E, H), P0), lambda make, n=N, t=L: _src(make, n, t)),
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=ENCODER_LAYER_MISTAKES,
        tolerances=TOLERANCES,
        judges=(
            _initialisation(Case("init", (128, 4), {"dim_feedforward": 256})),
            _submodules(Case("default", (E, H), P0)),
            _own_attention(Case("default", (E, H), P0), ("self_attn",)),
            _dropout(Case("dropout_default_eval", (E, H), {"dim_feedforward": FF}, _src),
                     Case("dropout_train", (E, H), {"dim_feedforward": FF, "dropout": 0.5}, _src)),
            _no_fused_kernels,
        ),
        bench=Case("bench", (256, 8), {"dim_feedforward": 1024, "dropout": 0.0}, lambda make: _src(make, 16, 64, 256)),
    ),
    Spec(
        name="TransformerDecoderLayer",
        chapter="transformer",
        reference=_perturbed(nn.TransformerDecoderLayer),
        cases=DECODER_LAYER_CASES,
        hidden=_layer_hidden("decoder"),
        scales=_scales(Case("scale", (E, H), P0), lambda make, n=N, t=L: _tgt_memory(make, n, t, t)),
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=DECODER_LAYER_MISTAKES,
        tolerances=TOLERANCES,
        judges=(
            _initialisation(Case("init", (128, 4), {"dim_feedforward": 256})),
            _submodules(Case("default", (E, H), P0)),
            _own_attention(Case("default", (E, H), P0), ("self_attn", "multihead_attn")),
            _dropout(Case("dropout_default_eval", (E, H), {"dim_feedforward": FF}, _tgt_memory),
                     Case("dropout_train", (E, H), {"dim_feedforward": FF, "dropout": 0.5}, _tgt_memory)),
            _no_fused_kernels,
        ),
        bench=Case("bench", (256, 8), {"dim_feedforward": 1024, "dropout": 0.0},
                   lambda make: _tgt_memory(make, 16, 64, 64, 256)),
    ),
    Spec(
        name="TransformerEncoder",
        chapter="transformer",
        reference=_perturbed(_encoder),
        cases=ENCODER_CASES,
        hidden=_encoder_hidden,
        scales=_scales(Case("scale", (LAYER0, 2)), lambda make, n=N, t=L: _src(make, n, t))[:1],
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=ENCODER_MISTAKES,
        tolerances=TOLERANCES,
        judges=(
            _dropout(Case("dropout_default_eval", (Layer("TransformerEncoderLayer", (E, H), {"dim_feedforward": FF}),
                                                   2), {}, _src),
                     Case("dropout_train", (Layer("TransformerEncoderLayer", (E, H), P0 | {"dropout": 0.5}), 2), {},
                          _src)),
            _no_fused_kernels,
        ),
        bench=Case("bench", (Layer("TransformerEncoderLayer", (256, 8), {"dim_feedforward": 1024, "dropout": 0.0}), 4),
                   {}, lambda make: _src(make, 16, 64, 256)),
    ),
)
