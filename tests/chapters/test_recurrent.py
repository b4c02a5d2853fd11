"""The recurrent graders: the reference passes, and each typical mistake fails naming its cause.

The wrong layers are the reference solution with one thing changed. Their step functions and
sequence loop are written here, independently of the grader's own re-implementation in
`autograder/specs/recurrent.py`, so that a test passing means the grader recognises a mistake a
student actually writes.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn
from torch.overrides import resolve_name

from autograder import CHAPTERS, SPECS, compare, grade
from autograder.spec import Maker
from autograder.specs.recurrent import FORBIDDEN_CALLS, _forward
from tests.conftest import assert_fails_naming, assert_passes, solution_classes

S = solution_classes("recurrent")
RNNCell, LSTMCell, GRUCell = S["RNNCell"], S["LSTMCell"], S["GRUCell"]
RNN, LSTM, GRU = S["RNN"], S["LSTM"], S["GRU"]


# --- wrong steps ------------------------------------------------------------------------------------

def affine(x, h, w_ih, w_hh, b_ih, b_hh, drop=""):
    gi = x @ w_ih.T + (b_ih if b_ih is not None and drop != "ih" else 0)
    gh = h @ w_hh.T + (b_hh if b_hh is not None and drop != "hh" else 0)
    return gi, gh


def rnn_step(x, state, w_ih, w_hh, b_ih, b_hh, act=torch.tanh, drop=""):
    gi, gh = affine(x, state[0], w_ih, w_hh, b_ih, b_hh, drop)
    return (act(gi + gh),)


def lstm_step(x, state, w_ih, w_hh, b_ih, b_hh, order="ifgo", squash=True, drop=""):
    h, c = state
    gi, gh = affine(x, h, w_ih, w_hh, b_ih, b_hh, drop)
    gates = dict(zip(order, (gi + gh).chunk(4, dim=-1)))
    c = torch.sigmoid(gates["f"]) * c + torch.sigmoid(gates["i"]) * torch.tanh(gates["g"])
    return torch.sigmoid(gates["o"]) * (torch.tanh(c) if squash else c), c


def gru_step(x, state, w_ih, w_hh, b_ih, b_hh, reset="after", swapped=False, drop=""):
    h = state[0]
    gi, gh = affine(x, h, w_ih, w_hh, b_ih, b_hh, drop)
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    w_hn = w_hh.chunk(3)[2]
    b_hn = b_hh.chunk(3)[2] if b_hh is not None else 0
    if reset == "before":  # the original paper's W_hn (r * h)
        n = torch.tanh(i_n + (r * h) @ w_hn.T + b_hn)
    elif reset == "bias_outside":
        n = torch.tanh(i_n + r * (h @ w_hn.T) + b_hn)
    else:
        n = torch.tanh(i_n + r * h_n)
    return ((z * n + (1 - z) * h) if swapped else ((1 - z) * n + z * h),)


def cell_forward(cell, step, input, hx, **options):
    """A cell's forward around a (possibly wrong) step; states as tuples."""
    lstm = isinstance(cell, LSTMCell)
    batched = input.dim() == 2
    if not batched:
        input = input.unsqueeze(0)
        hx = None if hx is None else tuple(s.unsqueeze(0) for s in hx) if lstm else hx.unsqueeze(0)
    if hx is None:
        zeros = input.new_zeros(input.shape[0], cell.hidden_size)
        hx = (zeros, zeros) if lstm else zeros
    state = step(input, tuple(hx) if lstm else (hx,), cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh,
                 **options)
    state = state if batched else tuple(s.squeeze(0) for s in state)
    return tuple(state) if lstm else state[0]


def layer_forward(layer, input, hx=None, *, batch_first=None, rereverse=True, hn="all", ignore_hx=False,
                  reverse="_reverse"):
    """A multi-layer forward with switches for the classic mistakes; steps from `layer.step`."""
    dirs = 2 if layer.bidirectional else 1
    batch_first = layer.batch_first if batch_first is None else batch_first
    batched = input.dim() == 3
    if not batched:
        input = input.unsqueeze(1)
    elif batch_first:
        input = input.transpose(0, 1)
    if ignore_hx or hx is None:
        zeros = input.new_zeros(layer.num_layers * dirs, input.shape[1], layer.hidden_size)
        hx = (zeros,) * layer.states
    else:
        hx = (hx,) if layer.states == 1 else tuple(hx)
        hx = hx if batched else tuple(s.unsqueeze(1) for s in hx)
    finals, x = [], input
    for k in range(layer.num_layers):
        outs = []
        for d in range(dirs):
            name = f"_l{k}" + (reverse if d else "")
            weights = [getattr(layer, p + name, None) for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            state = tuple(s[k * dirs + d] for s in hx)
            out = []
            for t in (reversed(range(len(x))) if d else range(len(x))):
                state = layer.step(x[t], state, *weights)
                out.append(state[0])
            outs.append(torch.stack(out[::-1] if d and rereverse else out))
            finals.append(state)
        x = torch.cat(outs, dim=-1)
    if hn == "last_layer":
        finals = finals[-dirs:]
    elif hn == "direction_major":
        finals = [finals[k * dirs + d] for d in range(dirs) for k in range(layer.num_layers)]
    h_n = [torch.stack([f[i] for f in finals]) for i in range(layer.states)]
    if hn == "output_last":
        h_n[0] = torch.stack(x[-1].split(layer.hidden_size, dim=-1))
    if not batched:
        x, h_n = x.squeeze(1), [s.squeeze(1) for s in h_n]
    elif batch_first:
        x = x.transpose(0, 1)
    return x, (tuple(h_n) if layer.states == 2 else h_n[0])


# --- wrong cells ------------------------------------------------------------------------------------

class LSTMCellGatesIFOG(LSTMCell):
    def forward(self, input, hx=None):
        return cell_forward(self, lstm_step, input, hx, order="ifog")


class LSTMCellNoTanhOnC(LSTMCell):
    def forward(self, input, hx=None):
        return cell_forward(self, lstm_step, input, hx, squash=False)


class LSTMCellReturnsCH(LSTMCell):
    def forward(self, input, hx=None):
        h, c = super().forward(input, hx)
        return c, h


class LSTMCellCDetached(LSTMCell):
    """Right values, but no gradient flows back through c'."""

    def forward(self, input, hx=None):
        h, c = super().forward(input, hx)
        return h, c.detach()


class GRUCellResetBefore(GRUCell):
    def forward(self, input, hx=None):
        return cell_forward(self, gru_step, input, hx, reset="before")


class GRUCellUpdateSwapped(GRUCell):
    def forward(self, input, hx=None):
        return cell_forward(self, gru_step, input, hx, swapped=True)


class RNNCellAlwaysTanh(RNNCell):
    def forward(self, input, hx=None):
        return cell_forward(self, rnn_step, input, hx)


class RNNCellIgnoresState(RNNCell):
    def forward(self, input, hx=None):
        return super().forward(input, None)


class RNNCellBiasHHUnused(RNNCell):
    def forward(self, input, hx=None):
        return cell_forward(self, rnn_step, input, hx, act=torch.relu if self.nonlinearity == "relu" else torch.tanh,
                            drop="hh")


class GRUCellOnlyOneBias(GRUCell):
    """bias_hh never created: a single bias per cell."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, device, dtype)
        if bias:
            del self.bias_hh
            self.bias_hh = None


class LSTMCellInitByInputSize(LSTMCell):
    def reset_parameters(self):
        bound = 1 / math.sqrt(self.input_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)


class LSTMCellCallsTorch(LSTMCell):
    def forward(self, input, hx=None):
        if hx is None:
            zeros = input.new_zeros(*input.shape[:-1], self.hidden_size)
            hx = (zeros, zeros)
        if input.dim() == 1:
            h, c = torch.lstm_cell(input[None], (hx[0][None], hx[1][None]), self.weight_ih, self.weight_hh,
                                   self.bias_ih, self.bias_hh)
            return h[0], c[0]
        return torch.lstm_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class GRUCellCallsAtenOp(GRUCell):
    def forward(self, input, hx=None):
        batched = input.dim() == 2
        x = input if batched else input[None]
        h = x.new_zeros(x.shape[0], self.hidden_size) if hx is None else (hx if batched else hx[None])
        h = torch.ops.aten.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h if batched else h[0]


class RNNCellCallsVF(RNNCell):
    def forward(self, input, hx=None):
        batched = input.dim() == 2
        x = input if batched else input[None]
        h = x.new_zeros(x.shape[0], self.hidden_size) if hx is None else (hx if batched else hx[None])
        fn = torch._VF.rnn_tanh_cell if self.nonlinearity == "tanh" else torch._VF.rnn_relu_cell
        h = fn(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h if batched else h[0]


class GRUCellHiddenTorchCell(GRUCell):
    """torch's GRUCell built inside forward, sharing our parameters: exact values."""

    def forward(self, input, hx=None):
        inner = nn.GRUCell(1, 1)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(inner, name, getattr(self, name))
        inner.input_size, inner.hidden_size, inner.bias = self.input_size, self.hidden_size, self.bias
        return inner(input, hx)


class RNNCellRowLoop(RNNCell):
    def forward(self, input, hx=None):
        if input.dim() == 1:
            return super().forward(input, hx)
        rows = [super(RNNCellRowLoop, self).forward(x, None if hx is None else h)
                for x, h in zip(input, hx if hx is not None else input)]
        return torch.stack(rows)


class LSTMCellUnitLoop(LSTMCell):
    """One hidden unit at a time: a loop over features."""

    def forward(self, input, hx=None):
        batched = input.dim() == 2
        x = input if batched else input[None]
        if hx is None:
            h = c = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            h, c = (hx if batched else (hx[0][None], hx[1][None]))
        H = self.hidden_size
        hs, cs = [], []
        for j in range(H):
            rows = [j, H + j, 2 * H + j, 3 * H + j]
            pre = x @ self.weight_ih[rows].T + h @ self.weight_hh[rows].T
            if self.bias_ih is not None:
                pre = pre + self.bias_ih[rows] + self.bias_hh[rows]
            i, f, g, o = pre.unbind(-1)
            c_j = torch.sigmoid(f) * c[:, j] + torch.sigmoid(i) * torch.tanh(g)
            hs.append(torch.sigmoid(o) * torch.tanh(c_j))
            cs.append(c_j)
        h, c = torch.stack(hs, -1), torch.stack(cs, -1)
        return (h, c) if batched else (h[0], c[0])


class RNNCellZerosOnCPU(RNNCell):
    def forward(self, input, hx=None):
        if hx is None:
            hx = torch.zeros(*input.shape[:-1], self.hidden_size, dtype=input.dtype)
        return super().forward(input, hx)


class InheritsTorchLSTMCell(nn.LSTMCell):
    pass


# --- wrong layers -----------------------------------------------------------------------------------

class LSTMGatesIFOG(LSTM):
    def step(self, x, state, *weights):
        return lstm_step(x, state, *weights, order="ifog")


class GRUResetBefore(GRU):
    def step(self, x, state, *weights):
        return gru_step(x, state, *weights, reset="before")


class GRUBiasOutsideReset(GRU):
    def step(self, x, state, *weights):
        return gru_step(x, state, *weights, reset="bias_outside")


class GRUUpdateSwapped(GRU):
    def step(self, x, state, *weights):
        return gru_step(x, state, *weights, swapped=True)


class RNNAlwaysTanh(RNN):
    def step(self, x, state, *weights):
        return rnn_step(x, state, *weights)


class LSTMBiasHHUnused(LSTM):
    def step(self, x, state, *weights):
        return lstm_step(x, state, *weights, drop="hh")


class RNNOneSummedBias(RNN):
    """The two biases merged into one parameter per layer and direction, `bias_l0`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, p in list(self.named_parameters()):
            if name.startswith("bias_ih"):
                suffix = name.removeprefix("bias_ih")
                delattr(self, name)
                delattr(self, "bias_hh" + suffix)
                self.register_parameter("bias" + suffix, nn.Parameter(p.detach().clone()))

    def forward(self, input, hx=None):
        return layer_forward(self, input, hx)

    def step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        return (torch.tanh(x @ w_ih.T + state[0] @ w_hh.T),)


class GRUIgnoresBatchFirst(GRU):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, batch_first=False)


class LSTMNotReReversed(LSTM):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, rereverse=False)


class RNNReverseUsesForwardWeights(RNN):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, reverse="")


class GRUHNLastLayerOnly(GRU):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, hn="last_layer")


class LSTMHNLastLayerOnly(LSTM):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, hn="last_layer")


class RNNHNDirectionMajor(RNN):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, hn="direction_major")


class GRUHNFromLastOutput(GRU):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, hn="output_last")


class LSTMIgnoresInitialState(LSTM):
    def forward(self, input, hx=None):
        return layer_forward(self, input, hx, ignore_hx=True)


class LSTMCNScaled(LSTM):
    """h_n right, c_n wrong: the nested tuple is compared element by element."""

    def forward(self, input, hx=None):
        out, (h, c) = super().forward(input, hx)
        return out, (h, 2 * c)


class LSTMReturnsList(LSTM):
    def forward(self, input, hx=None):
        out, (h, c) = super().forward(input, hx)
        return [out, [h, c]]


class GRUStateDetachedEachStep(GRU):
    """Truncates backpropagation through time at every step."""

    def step(self, x, state, *weights):
        return gru_step(x, (state[0].detach(),), *weights)


class RNNBatchedOnly(RNN):
    """Forgets unbatched inputs: (L, H_in) is read as a batch."""

    def forward(self, input, hx=None):
        if input.dim() == 2:
            input = input.unsqueeze(1)
        return super().forward(input, hx)


class LSTMCallsTorchLSTM(LSTM):
    def forward(self, input, hx=None):
        weights = [p for _, p in self.named_parameters()]
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if hx is None:
            zeros = x.new_zeros(self.num_layers * (2 if self.bidirectional else 1), x.shape[1 if not self.batch_first
                                                                                            or not batched else 0],
                                self.hidden_size)
            hx = (zeros, zeros)
        elif not batched:
            hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        out, h, c = torch._VF.lstm(x, hx, weights, self.bias, self.num_layers, 0.0, self.training,
                                   self.bidirectional, self.batch_first and batched)
        if not batched:
            return out.squeeze(1), (h.squeeze(1), c.squeeze(1))
        return out, (h, c)


class GRUCallsTorchGRU(GRU):
    def forward(self, input, hx=None):
        weights = [p for _, p in self.named_parameters()]
        x = input if input.dim() == 3 else input.unsqueeze(1)
        rows = self.num_layers * (2 if self.bidirectional else 1)
        n = x.shape[0 if self.batch_first and input.dim() == 3 else 1]
        h = x.new_zeros(rows, n, self.hidden_size) if hx is None else (hx if input.dim() == 3 else hx.unsqueeze(1))
        out, h = torch.gru(x, h, weights, self.bias, self.num_layers, 0.0, self.training, self.bidirectional,
                           self.batch_first and input.dim() == 3)
        return (out, h) if input.dim() == 3 else (out.squeeze(1), h.squeeze(1))


class RNNCallsRnnRelu(RNN):
    def step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        fn = torch.rnn_relu if self.nonlinearity == "relu" else torch.rnn_tanh
        params = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
        _, h = fn(x[None], state[0][None], params, b_ih is not None, 1, 0.0, False, False, False)
        return (h[0],)


class LSTMHiddenTorchModule(LSTM):
    """An nn.LSTM made inside forward and loaded with our weights: in no state_dict, exact values."""

    def forward(self, input, hx=None):
        inner = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, self.bias, self.batch_first,
                        bidirectional=self.bidirectional).to(input.device, input.dtype)
        inner.load_state_dict(self.state_dict())
        return inner(input, hx)


class GRUUsesTorchCells(GRU):
    """torch's GRUCell run step by step, with our parameters: a cell module inside the layer."""

    def step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        cell = nn.GRUCell(1, 1, bias=b_ih is not None)
        cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh = w_ih, w_hh, b_ih, b_hh
        cell.input_size, cell.hidden_size = w_ih.shape[1], w_hh.shape[1]
        return (cell(x, state[0]),)


class LSTMBatchLoop(LSTM):
    def step(self, x, state, *weights):
        rows = [lstm_step(x[n:n + 1], (state[0][n:n + 1], state[1][n:n + 1]), *weights) for n in range(len(x))]
        return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])


class GRUUnitLoop(GRU):
    """The hidden units one at a time."""

    def step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        h, H = state[0], self.hidden_size
        new = []
        for j in range(H):
            rows = [j, H + j, 2 * H + j]
            gi = x @ w_ih[rows].T + (b_ih[rows] if b_ih is not None else 0)
            gh = h @ w_hh[rows].T + (b_hh[rows] if b_hh is not None else 0)
            r, z = torch.sigmoid(gi[:, 0] + gh[:, 0]), torch.sigmoid(gi[:, 1] + gh[:, 1])
            n = torch.tanh(gi[:, 2] + r * gh[:, 2])
            new.append((1 - z) * n + z * h[:, j])
        return (torch.stack(new, -1),)


class GRUInitNormal(GRU):
    def reset_parameters(self):
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, 0.1)


class LSTMZerosOnCPU(LSTM):
    def forward(self, input, hx=None):
        if hx is None and input.dim() == 3:
            dirs = 2 if self.bidirectional else 1
            zeros = torch.zeros(self.num_layers * dirs, input.shape[0 if self.batch_first else 1], self.hidden_size,
                                dtype=input.dtype)
            hx = (zeros, zeros)
        return super().forward(input, hx)


class InheritsTorchGRU(nn.GRU):
    pass


# --- the tests --------------------------------------------------------------------------------------

def test_the_chapter_lists_its_layers_in_book_order():
    assert CHAPTERS["recurrent"] == ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"])
def test_the_reference_passes_the_public_and_hidden_suites(name):
    assert_passes(name, S[name], 3)


@pytest.mark.parametrize("call", ["lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                                  "rnn_relu_cell"])
def test_torch_recurrent_functions_are_forbidden_under_every_name(call):
    """torch.X, torch._VF.X and torch.ops.aten.X resolve to names the grader forbids."""
    for fn in (getattr(torch, call), getattr(torch._VF, call), getattr(torch.ops.aten, call)):
        assert resolve_name(fn) in FORBIDDEN_CALLS, resolve_name(fn)
    packet = getattr(torch.ops.aten, call)
    for overload in packet.overloads():
        assert resolve_name(getattr(packet, overload)) in FORBIDDEN_CALLS


WRONG = [
    # (layer graded, wrong class, the part that must fail, words the failure must contain)
    ("LSTMCell", LSTMCellGatesIFOG, "forward", "read in the order i, f, o, g"),
    ("LSTM", LSTMGatesIFOG, "forward", "read in the order i, f, o, g"),
    ("LSTMCell", LSTMCellNoTanhOnC, "forward", "not squashed by tanh"),
    ("LSTMCell", LSTMCellReturnsCH, "forward", "returned as (c, h)"),
    ("LSTMCell", LSTMCellCDetached, "backward", "does not require grad"),
    ("LSTM", LSTMCNScaled, "forward", "output[1][1] values differ"),
    ("LSTM", LSTMReturnsList, "shape", "output is a list, expected a tuple"),
    ("GRUCell", GRUCellResetBefore, "forward", "reset gate is applied before the hidden matmul"),
    ("GRU", GRUResetBefore, "forward", "reset gate is applied before the hidden matmul"),
    ("GRU", GRUBiasOutsideReset, "forward", "b_hn is added outside the reset gate"),
    ("GRUCell", GRUCellUpdateSwapped, "forward", "update gate is used the other way round"),
    ("GRU", GRUUpdateSwapped, "forward", "update gate is used the other way round"),
    ("RNNCell", RNNCellAlwaysTanh, "forward", "nonlinearity='relu' is ignored"),
    ("RNN", RNNAlwaysTanh, "forward", "nonlinearity='relu' is ignored"),
    # one bias instead of two
    ("RNNCell", RNNCellBiasHHUnused, "forward", "bias_hh is never added"),
    ("RNNCell", RNNCellBiasHHUnused, "backward", "no gradient of 'bias_hh'"),
    ("LSTM", LSTMBiasHHUnused, "forward", "bias_hh is never added"),
    ("GRUCell", GRUCellOnlyOneBias, "state", "missing parameters/buffers ['bias_hh']"),
    ("GRUCell", GRUCellOnlyOneBias, "state", "one bias instead of two"),
    ("RNN", RNNOneSummedBias, "state", "one bias instead of two"),
    ("RNN", RNNOneSummedBias, "state", "unexpected parameters/buffers ['bias_l0'"),
    # the sequence machinery
    ("GRU", GRUIgnoresBatchFirst, "forward", "batch_first is ignored"),
    ("GRU", GRUIgnoresBatchFirst, "shape", "batch_first is ignored"),
    ("LSTM", LSTMNotReReversed, "forward", "reverse direction's outputs are not put back in time order"),
    ("RNN", RNNReverseUsesForwardWeights, "forward", "uses the forward direction's weights"),
    ("GRU", GRUHNLastLayerOnly, "shape", "h_n holds only the last layer"),
    ("LSTM", LSTMHNLastLayerOnly, "shape", "h_n holds only the last layer"),
    ("RNN", RNNHNDirectionMajor, "forward", "h_n is ordered by direction first"),
    ("GRU", GRUHNFromLastOutput, "forward", "read from output[-1]"),
    ("LSTM", LSTMIgnoresInitialState, "forward", "the given initial state is ignored"),
    ("LSTM", LSTMIgnoresInitialState, "backward", "no gradient of input 1"),
    ("RNNCell", RNNCellIgnoresState, "forward", "the given initial state is ignored"),
    ("GRU", GRUStateDetachedEachStep, "backward", "values differ"),
    ("RNN", RNNBatchedOnly, "shape", "output[0] shape (6, 1, 4), expected (6, 4)"),
    # torch's own implementation, called or hidden
    ("LSTMCell", LSTMCellCallsTorch, "rules", "calls torch.lstm_cell"),
    ("GRUCell", GRUCellCallsAtenOp, "rules", "calls aten.gru_cell"),
    ("RNNCell", RNNCellCallsVF, "rules", "calls torch.rnn_relu_cell, torch.rnn_tanh_cell"),
    ("GRUCell", GRUCellHiddenTorchCell, "rules", "runs a torch.nn.modules.rnn.GRUCell module"),
    ("LSTMCell", InheritsTorchLSTMCell, "rules", "inherits from torch's RNNCellBase"),
    ("LSTM", LSTMCallsTorchLSTM, "rules", "calls torch.lstm"),
    ("GRU", GRUCallsTorchGRU, "rules", "calls torch.gru"),
    ("RNN", RNNCallsRnnRelu, "rules", "calls torch.rnn_relu, torch.rnn_tanh"),
    ("LSTM", LSTMHiddenTorchModule, "rules", "runs a torch.nn.modules.rnn.LSTM module"),
    ("GRU", GRUUsesTorchCells, "rules", "runs a torch.nn.modules.rnn.GRUCell module"),
    ("GRU", InheritsTorchGRU, "rules", "inherits from torch's RNNBase"),
    # vectorization, devices, initialisation
    ("RNNCell", RNNCellRowLoop, "rules", "not vectorized"),
    ("LSTMCell", LSTMCellUnitLoop, "rules", "hidden size 3 vs 24"),
    ("LSTM", LSTMBatchLoop, "rules", "batch size 2 vs 64"),
    ("GRU", GRUUnitLoop, "rules", "hidden size 3 vs 24"),
    ("RNNCell", RNNCellZerosOnCPU, "rules", "device 'meta'"),
    ("LSTM", LSTMZerosOnCPU, "rules", "device 'meta'"),
    ("LSTMCell", LSTMCellInitByInputSize, "state", "'weight_ih' is not initialised like torch's"),
    ("GRU", GRUInitNormal, "state", "'weight_ih_l0' is not initialised like torch's"),
]


@pytest.mark.parametrize("name, layer, part, cause", WRONG,
                         ids=[f"{w[1].__name__}-{w[2]}" for w in WRONG])
def test_a_wrong_layer_fails_naming_the_cause(name, layer, part, cause):
    assert_fails_naming(grade(name, layer), part, cause)


@pytest.mark.parametrize("name, layer", [("LSTM", LSTMGatesIFOG), ("GRU", GRUResetBefore),
                                         ("GRU", GRUUpdateSwapped), ("GRU", GRUIgnoresBatchFirst),
                                         ("LSTM", LSTMNotReReversed), ("GRU", GRUHNLastLayerOnly),
                                         ("LSTM", LSTMIgnoresInitialState), ("LSTM", LSTMCallsTorchLSTM)])
def test_the_hidden_suite_catches_the_mistake_too(name, layer):
    """Fresh configurations at every grading still include one that exposes each mistake."""
    assert all(not grade(name, layer, suite="hidden", seed=s).passed for s in range(2))


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"])
def test_every_known_mistake_shows_in_some_public_case(name):
    """Each mistake the grader can name changes the output of at least one public case, so a
    student who makes it fails (and the cases are not too small or too symmetric to tell)."""
    spec = SPECS[name]
    for mistake in spec.mistakes:
        shown = False
        for case in spec.cases:
            ref = spec.reference(*case.args, **dict(case.kwargs)).double()
            inputs = case.inputs(Maker(torch.float64, "cpu", 0))
            try:
                with torch.no_grad():
                    wrong = mistake.output(ref, inputs)
            except ValueError:  # the mistake does not apply to this case
                continue
            want = ref(*inputs.args, **dict(inputs.kwargs))
            if compare.structure(wrong, want) or compare.values(wrong, want, 1e-4, 1e-5):
                shown = True
                break
        assert shown, f"{name}: no public case shows the mistake {mistake.cause!r}"


def test_the_reference_reimplementation_in_the_spec_is_torch():
    """The grader computes its mistakes from a plain re-implementation; with no mistake switched
    on, it must be torch's layer exactly, on every public and hidden case."""
    for name in CHAPTERS["recurrent"]:
        spec = SPECS[name]
        for case in (*spec.cases, *spec.hidden(random.Random(0))):
            ref = spec.reference(*case.args, **dict(case.kwargs)).double()
            inputs = case.inputs(Maker(torch.float64, "cpu", 1))
            with torch.no_grad():
                want, got = ref(*inputs.args, **dict(inputs.kwargs)), _forward(ref, inputs)
            problems = compare.structure(got, want) or compare.values(got, want, 1e-10, 1e-12)
            assert not problems, f"{case.signature(name)}: {problems}"
