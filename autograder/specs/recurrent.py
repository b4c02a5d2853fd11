"""Recurrent layers: RNNCell, LSTMCell, GRUCell, then the multi-layer RNN, LSTM and GRU.

A cell maps one time step, (x_t, h_{t-1}) -> h_t (and c_t for the LSTM). A layer runs cells over
a sequence of shape (L, N, H_in), stacks `num_layers` of them, and with `bidirectional=True` runs
a second stack over the reversed sequence. Parameters are torch's, per layer k and direction:
`weight_ih_l{k}` (G*H, H_in or D*H), `weight_hh_l{k}` (G*H, H), `bias_ih_l{k}`, `bias_hh_l{k}`
(G*H,), with suffix `_reverse` for the backward direction, where G = 1 (RNN), 4 (LSTM: gates
i, f, g, o) or 3 (GRU: gates r, z, n).

The mistakes are computed by `_forward` below, a plain re-implementation of torch's recurrences
with switches for the ways students typically get them wrong.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..engine import raised
from ..report import Result
from ..spec import Case, Inputs, Maker, Mistake, Scale, Spec, call, register, seed_of

# --- what must not be called --------------------------------------------------------------------

_RECURRENT = re.compile(r"lstm|gru|rnn", re.IGNORECASE)


def _torch_recurrent_calls() -> frozenset[str]:
    """Every torch function and aten op that runs a recurrent layer or cell, as the tracer names
    them (`torch.lstm` is also `torch._VF.lstm`; `aten.gru_cell` and `aten.gru_cell.default` are
    `torch.ops.aten.gru_cell` and its overload)."""
    names = {f"torch.{n}" for n in dir(torch) if _RECURRENT.search(n)}
    names |= {f"torch.{n}" for n in dir(torch._C._VariableFunctions) if _RECURRENT.search(n)}
    for op in torch._C._dispatch_get_all_op_names():
        if op.startswith("aten::") and _RECURRENT.search(op):
            packet, _, overload = op.removeprefix("aten::").partition(".")
            names |= {f"aten.{packet}", f"aten.{packet}.{overload or 'default'}"}
    return frozenset(names)


FORBIDDEN_CALLS = _torch_recurrent_calls()
FORBIDDEN_MODULES = (nn.RNNBase, nn.RNNCellBase)


# --- a plain reference, with the usual mistakes as switches -------------------------------------

@dataclass(frozen=True)
class Variant:
    """How a (possibly wrong) implementation computes the recurrence. The defaults are torch's."""

    gate_order: str = "ifgo"  # the order in which LSTM code reads the four chunks of the gates
    nonlinearity: str | None = None  # RNN: the activation used instead of the layer's own
    drop_bias: str = ""  # "ih" or "hh": that bias is never added
    reset: str = "after"  # GRU: r * (W_hn h + b_hn) ("after"), W_hn (r * h) + b_hn ("before"),
    #                       r * (W_hn h) + b_hn ("bias_outside")
    update_swapped: bool = False  # GRU: h' = z * n + (1 - z) * h
    cell_tanh: bool = True  # LSTM: h = o * tanh(c) (False: h = o * c)
    swap_hc: bool = False  # LSTM: returns (c, h) instead of (h, c)
    ignore_hx: bool = False  # the given initial state is replaced by zeros
    batch_first_ignored: bool = False
    rereverse: bool = True  # the reverse direction's outputs are put back in time order
    reverse_weights: str = "_reverse"  # "": the reverse direction uses the forward weights
    hn: str = "all"  # "last_layer", "direction_major" or "output_last" (h_n read from output[-1])


def _kind(ref: nn.Module) -> str:
    if isinstance(ref, (nn.LSTM, nn.LSTMCell)):
        return "lstm"
    if isinstance(ref, (nn.GRU, nn.GRUCell)):
        return "gru"
    return "rnn"


def _step(kind: str, v: Variant, nonlinearity: str, x: torch.Tensor, state: tuple, w_ih, w_hh, b_ih, b_hh) -> tuple:
    """One time step: x (N, H_in), state ((N, H),) or ((N, H), (N, H)) -> the new state."""
    b_ih = None if v.drop_bias == "ih" else b_ih
    b_hh = None if v.drop_bias == "hh" else b_hh
    h = state[0]
    gi = x @ w_ih.T + (b_ih if b_ih is not None else 0)  # (N, G*H)
    hw = h @ w_hh.T  # (N, G*H)
    gh = hw + (b_hh if b_hh is not None else 0)
    if kind == "rnn":
        act = torch.relu if (v.nonlinearity or nonlinearity) == "relu" else torch.tanh
        return (act(gi + gh),)
    if kind == "lstm":
        chunks = dict(zip(v.gate_order, (gi + gh).chunk(4, dim=-1)))
        i, f, g, o = (chunks[k] for k in "ifgo")
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return (torch.sigmoid(o) * (torch.tanh(c) if v.cell_tanh else c), c)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    b_hn = b_hh.chunk(3)[2] if b_hh is not None else 0
    if v.reset == "after":
        n = torch.tanh(i_n + r * h_n)
    elif v.reset == "before":
        n = torch.tanh(i_n + (r * h) @ w_hh.chunk(3)[2].T + b_hn)
    else:  # "bias_outside"
        n = torch.tanh(i_n + r * hw.chunk(3, dim=-1)[2] + b_hn)
    return ((z * n + (1 - z) * h) if v.update_swapped else ((1 - z) * n + z * h),)


def _given_state(inputs: Inputs) -> Any:
    if len(inputs.args) > 1:
        return inputs.args[1]
    return inputs.kwargs.get("hx")


def _weights(ref: nn.Module, suffix: str) -> tuple:
    return tuple(getattr(ref, f"{name}{suffix}", None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _forward(ref: nn.Module, inputs: Inputs, v: Variant = Variant()) -> Any:
    """What a layer implemented as `v` describes returns for `inputs`, with `ref`'s parameters."""
    kind = _kind(ref)
    nonlinearity = getattr(ref, "nonlinearity", "tanh")
    x, hx = inputs.args[0], None if v.ignore_hx else _given_state(inputs)
    n_states = 2 if kind == "lstm" else 1
    as_tuple = (lambda s: tuple(s)) if kind == "lstm" else (lambda s: (s,))
    if isinstance(ref, nn.RNNCellBase):
        batched = x.dim() == 2
        x = x if batched else x.unsqueeze(0)  # (N, H_in)
        if hx is None:
            state = (x.new_zeros(x.shape[0], ref.hidden_size),) * n_states
        else:
            state = tuple(s if batched else s.unsqueeze(0) for s in as_tuple(hx))
        new = _step(kind, v, nonlinearity, x, state, *_weights(ref, ""))
        new = tuple(s if batched else s.squeeze(0) for s in new)
        if kind != "lstm":
            return new[0]
        return (new[1], new[0]) if v.swap_hc else new

    layers, dirs, size = ref.num_layers, 2 if ref.bidirectional else 1, ref.hidden_size
    batched = x.dim() == 3
    transpose = batched and ref.batch_first and not v.batch_first_ignored
    if not batched:
        x = x.unsqueeze(1)
    elif transpose:
        x = x.transpose(0, 1)
    seq_len, batch = x.shape[:2]  # x: (L, N, H_in)
    if hx is None:
        hx = (x.new_zeros(layers * dirs, batch, size),) * n_states
    else:
        hx = tuple(s if batched else s.unsqueeze(1) for s in as_tuple(hx))  # each (layers*D, N, H)
    finals = []  # the last state of each (layer, direction), layer-major like torch's h_n
    layer_in = x
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + (v.reverse_weights if d else "")
            state = tuple(s[layer * dirs + d] for s in hx)
            steps = range(seq_len - 1, -1, -1) if d else range(seq_len)
            out = []
            for t in steps:
                state = _step(kind, v, nonlinearity, layer_in[t], state, *_weights(ref, suffix))
                out.append(state[0])
            if d and v.rereverse:
                out = out[::-1]
            outs.append(torch.stack(out))  # (L, N, H)
            finals.append(state)
        layer_in = torch.cat(outs, dim=-1)  # (L, N, D*H)
    output = layer_in
    if v.hn == "last_layer":
        finals = finals[-dirs:]
    elif v.hn == "direction_major":
        finals = [finals[layer * dirs + d] for d in range(dirs) for layer in range(layers)]
    final = [torch.stack([f[i] for f in finals]) for i in range(n_states)]  # each (layers*D, N, H)
    if v.hn == "output_last":
        final[0] = torch.stack(output[-1].split(size, dim=-1)) if layers == 1 else final[0]
    if not batched:
        output, final = output.squeeze(1), [s.squeeze(1) for s in final]
    elif transpose:
        output = output.transpose(0, 1)
    if kind != "lstm":
        return output, final[0]
    return output, ((final[1], final[0]) if v.swap_hc else tuple(final))


def _wrong(**changes: Any) -> Callable[[nn.Module, Inputs], Any]:
    """The output of an implementation that differs from torch's by `changes` (see `Variant`).
    Raises when the change makes no difference on this layer, so the mistake is not reported."""
    variant = replace(Variant(), **changes)

    def output(ref: nn.Module, inputs: Inputs) -> Any:
        if not _applies(variant, ref, inputs):
            raise ValueError("this mistake does not apply here")
        return _forward(ref, inputs, variant)

    return output


def _applies(v: Variant, ref: nn.Module, inputs: Inputs) -> bool:
    module = not isinstance(ref, nn.RNNCellBase)
    bidirectional, layers = module and ref.bidirectional, getattr(ref, "num_layers", 1)
    checks = [
        (v.nonlinearity is not None, v.nonlinearity != getattr(ref, "nonlinearity", None)),
        (v.drop_bias != "", ref.bias),
        (v.ignore_hx, _given_state(inputs) is not None),
        (v.batch_first_ignored, module and ref.batch_first and inputs.args[0].dim() == 3),
        (not v.rereverse or v.reverse_weights != "_reverse", bidirectional),
        (v.hn == "last_layer", layers > 1),
        (v.hn == "direction_major", bidirectional and layers > 1),
        (v.hn == "output_last", bidirectional and layers == 1),
    ]
    return all(ok for changed, ok in checks if changed)


COMMON_MISTAKES = (
    Mistake("the given initial state is ignored (the layer starts from zeros even when hx is passed)",
            _wrong(ignore_hx=True)),
    Mistake("bias_hh is never added (torch adds both biases, b_ih and b_hh)", _wrong(drop_bias="hh")),
    Mistake("bias_ih is never added (torch adds both biases, b_ih and b_hh)", _wrong(drop_bias="ih")),
)
LAYER_MISTAKES = (
    Mistake("batch_first is ignored (an input of shape (N, L, H_in) is read as (L, N, H_in))",
            _wrong(batch_first_ignored=True)),
    Mistake("the reverse direction's outputs are not put back in time order: output[t] of the reverse "
            "direction must be the state after reading x[t], ..., x[L-1]", _wrong(rereverse=False)),
    Mistake("the reverse direction uses the forward direction's weights instead of its own *_reverse ones",
            _wrong(reverse_weights="")),
    Mistake("h_n holds only the last layer's final state (torch keeps every layer's: num_layers * D rows)",
            _wrong(hn="last_layer")),
    Mistake("h_n is ordered by direction first; torch orders it layer by layer: "
            "[layer 0 forward, layer 0 reverse, layer 1 forward, ...]", _wrong(hn="direction_major")),
    Mistake("h_n of the reverse direction is read from output[-1]; the reverse direction ends at t = 0, "
            "so its final state is output[0]", _wrong(hn="output_last")),
)
RNN_MISTAKES = (
    Mistake("nonlinearity='relu' is ignored (tanh is used)", _wrong(nonlinearity="tanh")),
    Mistake("relu is used where the layer asks for tanh (nonlinearity='tanh', the default)",
            _wrong(nonlinearity="relu")),
)
LSTM_MISTAKES = (
    Mistake("the gates are read in the order i, f, o, g; torch's rows are i, f, g, o", _wrong(gate_order="ifog")),
    Mistake("the gates are read in the order i, g, f, o; torch's rows are i, f, g, o", _wrong(gate_order="igfo")),
    Mistake("the gates are read in the order f, i, g, o; torch's rows are i, f, g, o", _wrong(gate_order="figo")),
    Mistake("h = o * c: the cell state is not squashed by tanh (torch: h = o * tanh(c))", _wrong(cell_tanh=False)),
    Mistake("the state is returned as (c, h); torch returns (h, c)", _wrong(swap_hc=True)),
)
GRU_MISTAKES = (
    Mistake("the reset gate is applied before the hidden matmul, W_hn (r * h); torch applies it after: "
            "r * (W_hn h + b_hn)", _wrong(reset="before")),
    Mistake("b_hn is added outside the reset gate, r * (W_hn h) + b_hn; torch: r * (W_hn h + b_hn)",
            _wrong(reset="bias_outside")),
    Mistake("the update gate is used the other way round, h' = z * n + (1 - z) * h; torch: "
            "h' = (1 - z) * n + z * h", _wrong(update_swapped=True)),
)


# --- judges: a vectorization probe over the hidden size, and two biases per layer ----------------

def _hidden_size_probe(what: str, small: Case, large: Case) -> Callable:
    """The op count must not grow with the hidden (and input) size: no loop over features."""

    def judge(ctx) -> Iterable[Result]:
        if "rules" not in ctx.parts:
            return
        counts, where = [], ""
        for case in (small, large):
            where = case.label(ctx.spec.name)
            ref, stu = ctx.reference(case), ctx.student(case, where, ("rules",))
            if stu is None or not ctx.load(stu, ref, where, what):
                return
            try:
                stu.train(True)
                maker = Maker(torch.float32, ctx.device, seed_of(ctx.spec.name, what, case.desc))
                counts.append(ctx.count_ops(stu, case.inputs(maker)))
            except Exception as exc:  # noqa: BLE001 - a student's error becomes feedback
                yield Result("rules", where, False, f"vectorization probe ({what}): forward {raised(exc)}",
                             check=what)
                return
        ok = counts[1] <= 1.25 * counts[0] + 8
        yield Result("rules", where, ok, f"not vectorized: the forward runs {counts[0]} tensor ops with "
                     f"{small.label(ctx.spec.name)} and {counts[1]} with {where} ({what}); a Python loop "
                     "over features or gates? Compute all units of a step with one matrix product", check=what)

    return judge


def _two_biases(ctx) -> Iterable[Result]:
    """A single bias vector per layer instead of torch's two gets a message naming the cause."""
    if "state" not in ctx.parts or not ctx.cases:
        return
    case = ctx.cases[0]
    ref = ctx.reference(case)
    try:
        got = set(ctx.build(case, seed=0).state().shapes)
    except Exception:  # noqa: BLE001 - the constructor's errors are reported by the graded cases
        return
    want = [k for k in ref.state_dict() if k.startswith("bias_")]
    missing = [k for k in want if k not in got]
    extra = [k for k in got if "bias" in k and k not in want]
    if missing and (extra or len(missing) < len(want)):
        yield Result("state", case.label(ctx.spec.name), False,
                     f"one bias instead of two: torch keeps two bias vectors, bias_ih (added to W_ih x) and "
                     f"bias_hh (added to W_hh h), each a separate nn.Parameter; missing {missing}"
                     + (f", found {sorted(extra)}" if extra else ""), check="two biases")


# --- inputs -------------------------------------------------------------------------------------

def seq(x_shape: tuple, state: tuple | None = None, lstm: bool = False) -> Callable[[Maker], Inputs]:
    """An input of `x_shape`, and an initial state of shape `state` when given ((h0, c0) for an
    LSTM, both of that shape)."""

    def inputs(make: Maker) -> Inputs:
        x = make.randn(*x_shape)
        if state is None:
            return call(x)
        if lstm:
            return call(x, (make.randn(*state), make.randn(*state)))
        return call(x, make.randn(*state))

    return inputs


# --- the cells ----------------------------------------------------------------------------------

def _cell_cases(lstm: bool, extra: tuple[Case, ...] = ()) -> tuple[Case, ...]:
    def s(x, h=None):
        return seq(x, h, lstm)

    return (
        Case("default", (3, 4), {}, s((5, 3))),
        Case("initial_state", (3, 4), {}, s((5, 3), (5, 4))),
        Case("no_bias", (3, 4), {"bias": False}, s((5, 3), (5, 4))),
        *extra,
        Case("no_batch", (3, 4), {}, s((3,), (4,))),
        Case("no_batch_no_state", (5, 2), {}, s((5,))),
        Case("one_sample", (2, 6), {}, s((1, 2), (1, 6))),
    )


def _cell_hidden(lstm: bool, relu: bool = False) -> Callable[[random.Random], Iterable[Case]]:
    def hidden(rng: random.Random) -> Iterable[Case]:
        size = lambda: rng.randint(2, 9)  # noqa: E731
        for i in range(3):
            i_size, h_size, n = size(), size(), rng.randint(1, 6)
            kwargs: dict = {"bias": rng.random() < 0.7}
            if relu and rng.random() < 0.5:
                kwargs["nonlinearity"] = "relu"
            batched = i < 2
            x = (n, i_size) if batched else (i_size,)
            h = ((n, h_size) if batched else (h_size,)) if i != 1 else None
            yield Case(f"hidden_{i}", (i_size, h_size), kwargs, seq(x, h, lstm))

    return hidden


def _cell_spec(name: str, reference: type, mistakes: tuple[Mistake, ...], extra: tuple[Case, ...] = (),
               relu: bool = False) -> Spec:
    lstm = reference is nn.LSTMCell
    return Spec(
        name=name,
        chapter="recurrent",
        reference=reference,
        cases=_cell_cases(lstm, extra),
        hidden=_cell_hidden(lstm, relu),
        # input_size != hidden_size: the bound is 1/sqrt(hidden_size), not 1/sqrt(input_size)
        init_cases=(Case("init", (64, 256)),),
        scales=(Scale("batch size 2 vs 64", Case("scale", (5, 4)), seq((2, 5), (2, 4), lstm),
                      seq((64, 5), (64, 4), lstm)),),
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=COMMON_MISTAKES + mistakes,
        judges=(_hidden_size_probe("hidden size 3 vs 24, input size 2 vs 16",
                                   Case("scale_small", (2, 3), {}, seq((4, 2), (4, 3), lstm)),
                                   Case("scale_large", (16, 24), {}, seq((4, 16), (4, 24), lstm))),
                _two_biases),
        bench=Case("bench", (256, 512), {}, seq((128, 256), (128, 512), lstm)),
    )


register(
    _cell_spec("RNNCell", nn.RNNCell, RNN_MISTAKES, relu=True, extra=(
        Case("relu", (3, 4), {"nonlinearity": "relu"}, seq((5, 3), (5, 4))),
        Case("relu_no_bias", (4, 3), {"nonlinearity": "relu", "bias": False}, seq((6, 4), (6, 3))),
    )),
    _cell_spec("LSTMCell", nn.LSTMCell, LSTM_MISTAKES),
    _cell_spec("GRUCell", nn.GRUCell, GRU_MISTAKES),
)


# --- the layers ---------------------------------------------------------------------------------

def _layer_cases(lstm: bool, extra: tuple[Case, ...] = ()) -> tuple[Case, ...]:
    def s(x, h=None):
        return seq(x, h, lstm)

    return (
        # the book's worked example: 10 time steps of a batch of 5 sequences of 3 features
        Case("default", (3, 4), {}, s((10, 5, 3))),
        Case("no_bias", (3, 4), {"bias": False}, s((6, 3, 3))),
        Case("initial_state", (3, 4), {}, s((6, 3, 3), (1, 3, 4))),
        Case("two_layers", (3, 4), {"num_layers": 2}, s((6, 3, 3))),
        # N == L, so a layer that ignores batch_first returns the right shapes and wrong values
        Case("batch_first", (3, 4), {"batch_first": True}, s((5, 5, 3))),
        Case("batch_first_3x6", (3, 4), {"batch_first": True}, s((3, 6, 3))),
        Case("bidirectional", (3, 4), {"bidirectional": True}, s((6, 3, 3))),
        *extra,
        Case("no_batch", (3, 4), {}, s((6, 3))),
        Case("no_batch_initial_state", (3, 4), {"num_layers": 2, "bidirectional": True}, s((5, 3), (4, 4))),
        Case("two_layers_bidirectional_initial_state", (3, 4), {"num_layers": 2, "bidirectional": True},
             s((6, 3, 3), (4, 3, 4))),
        Case("three_layers_everything", (2, 5), {"num_layers": 3, "bidirectional": True, "batch_first": True,
                                                 "bias": False}, s((2, 4, 2), (6, 2, 5))),
    )


def _layer_hidden(lstm: bool, relu: bool = False) -> Callable[[random.Random], Iterable[Case]]:
    """Fresh sizes and options: a stacked bidirectional layer with a state, a batch-first one, an
    unbatched one and a random one."""

    def hidden(rng: random.Random) -> Iterable[Case]:
        size = lambda: rng.randint(2, 7)  # noqa: E731
        for i in range(4):
            i_size, h_size, seq_len, n = size(), size(), rng.randint(2, 6), rng.randint(1, 4)
            kwargs: dict = {
                "num_layers": rng.randint(2, 3) if i == 0 else rng.randint(1, 2),
                "bias": rng.random() < 0.7,
                "batch_first": i == 1 or (i == 3 and rng.random() < 0.5),
                "bidirectional": i == 0 or rng.random() < 0.5,
            }
            if relu and rng.random() < 0.5:
                kwargs["nonlinearity"] = "relu"
            rows = kwargs["num_layers"] * (2 if kwargs["bidirectional"] else 1)
            batched = i != 2
            x = ((n, seq_len) if kwargs["batch_first"] else (seq_len, n)) + (i_size,) if batched else (seq_len, i_size)
            h = ((rows, n, h_size) if batched else (rows, h_size)) if i == 0 or rng.random() < 0.5 else None
            yield Case(f"hidden_{i}", (i_size, h_size), kwargs, seq(x, h, lstm))

    return hidden


def _layer_spec(name: str, reference: type, mistakes: tuple[Mistake, ...], extra: tuple[Case, ...] = (),
                relu: bool = False) -> Spec:
    lstm = reference is nn.LSTM
    probe = {"num_layers": 2, "bidirectional": True}
    return Spec(
        name=name,
        chapter="recurrent",
        reference=reference,
        cases=_layer_cases(lstm, extra),
        hidden=_layer_hidden(lstm, relu),
        # every parameter of every layer and direction is drawn from U(-1/sqrt(H), 1/sqrt(H))
        init_cases=(Case("init", (64, 256), {"num_layers": 2, "bidirectional": True}),),
        # the sequence length stays fixed (a loop over time steps is allowed); the batch grows
        scales=(Scale("batch size 2 vs 64, sequence length 4", Case("scale", (5, 4), probe),
                      seq((4, 2, 5), (4, 2, 4), lstm), seq((4, 64, 5), (4, 64, 4), lstm)),),
        forbidden_calls=FORBIDDEN_CALLS,
        forbidden_modules=FORBIDDEN_MODULES,
        mistakes=COMMON_MISTAKES + mistakes + LAYER_MISTAKES,
        judges=(_hidden_size_probe("hidden size 3 vs 24, input size 2 vs 16, sequence length 4",
                                   Case("scale_small", (2, 3), probe, seq((4, 2, 2), (4, 2, 3), lstm)),
                                   Case("scale_large", (16, 24), probe, seq((4, 2, 16), (4, 2, 24), lstm))),
                _two_biases),
        bench=Case("bench", (128, 256), {"num_layers": 2}, seq((64, 32, 128), None, lstm)),
    )


register(
    _layer_spec("RNN", nn.RNN, RNN_MISTAKES, relu=True, extra=(
        Case("relu", (3, 4), {"nonlinearity": "relu"}, seq((6, 3, 3))),
        Case("relu_two_layers_bidirectional", (3, 4), {"nonlinearity": "relu", "num_layers": 2,
                                                      "bidirectional": True}, seq((5, 2, 3), (4, 2, 4))),
    )),
    _layer_spec("LSTM", nn.LSTM, LSTM_MISTAKES),
    _layer_spec("GRU", nn.GRU, GRU_MISTAKES),
)
