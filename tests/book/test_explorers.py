"""The explorers show torch's numbers: the convolution explorer's sizes are torch's layers' output
sizes (its formula run in Chromium, and read off the page after moving its controls), and the
attention explorer shows the weights torch's MultiheadAttention returns."""

from __future__ import annotations

import functools
import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from _explore import CONV_SETTINGS, attention_explorer, conv_explorer
from torch import nn

#: sizes, kernels, strides, paddings, dilations and output paddings the tests try, in every combination
GRID = {"n": [1, 2, 3, 4, 5, 7, 12], "k": [1, 2, 3, 5, 7], "s": [1, 2, 3, 4], "p": [0, 1, 2, 4], "d": [1, 2, 3],
        "op": [0, 1, 2, 3]}


@functools.cache
def torch_layer(name: str, k: int, s: int, p: int, d: int, op: int) -> nn.Module:
    extra = {"output_padding": op} if name.startswith("ConvTranspose") else {}
    return getattr(nn, name)(1, 1, k, stride=s, padding=p, dilation=d, **extra)


def torch_size(n: int, k: int, s: int, p: int, d: int, op: int, transposed: bool, dims: int = 2) -> int | None:
    """The side of torch's output for an input of side n in `dims` dimensions, or None when torch
    refuses the layer."""
    layer = torch_layer(f"ConvTranspose{dims}d" if transposed else f"Conv{dims}d", k, s, p, d, op if transposed else 0)
    try:
        with torch.no_grad():
            out = layer(torch.zeros(1, 1, *[n] * dims))
    except (RuntimeError, ValueError):
        return None
    assert len(set(out.shape[2:])) == 1
    return out.shape[-1]


def settings(transposed: bool) -> list[dict]:
    keys = ["n", "k", "s", "p", "d"] + (["op"] if transposed else [])
    return [{**dict(zip(keys, values)), "op": dict(zip(keys, values)).get("op", 0), "transposed": transposed}
            for values in itertools.product(*(GRID[k] for k in keys))]


SET_CONTROL = """
(name, value) => {
  const c = document.querySelector(`[data-explorer] [name="${name}"]`);
  if (c.type === "checkbox") c.checked = value; else c.value = String(value);
  c.dispatchEvent(new Event("input", {bubbles: true}));
  c.dispatchEvent(new Event("change", {bubbles: true}));
}"""


def set_controls(tab, **values) -> None:
    for name, value in values.items():
        tab.evaluate(f"({SET_CONTROL})({json.dumps(name)}, {json.dumps(value)})")


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "transposed"])
def test_the_conv_formula_gives_torchs_sizes(open_page, transposed):
    """Does the explorer's one formula (convArithmetic in layers-explore.js) agree with torch
    everywhere, impossible settings included?"""
    tab = open_page("<p>formula</p>")
    cases = settings(transposed)
    answers = tab.evaluate(f"{json.dumps(cases)}.map(c => LayersExplore.convArithmetic(c))")
    wrong = []
    for case, answer in zip(cases, answers, strict=True):
        expected = torch_size(**case)
        if answer["size"] == 0:
            # an output of exactly 0: torch raises, or returns an empty tensor (ConvTranspose2d, some
            # kernels); the explorer calls it impossible and says both
            if expected not in (0, None) or answer["ok"] or "empty tensor" not in answer["reason"]:
                wrong.append(f"{case}: explorer {answer}, torch {expected}")
            continue
        if answer["size"] != expected or answer["ok"] != (expected is not None):
            wrong.append(f"{case}: explorer {answer['size']}, torch {expected}")
        elif expected is not None and torch_size(**case, dims=1) != expected:
            wrong.append(f"{case}: torch's 1-d layer says {torch_size(**case, dims=1)}")
        if not answer["ok"] and not answer.get("reason"):
            wrong.append(f"{case}: impossible, but no reason given")
    assert not wrong, f"{len(wrong)} of {len(cases)} settings differ, e.g. {wrong[:5]}"
    assert sum(a["ok"] for a in answers) > len(cases) / 3 and not all(a["ok"] for a in answers)


def never_read(n: int, k: int, s: int, p: int, d: int) -> int:
    """How many cells of a padded line no window of torch's convolution reads (from F.unfold)."""
    padded = n + 2 * p
    numbers = torch.arange(padded, dtype=torch.float32).reshape(1, 1, 1, padded)   # each cell's number
    taps = F.unfold(numbers, (1, k), dilation=(1, d), stride=(1, s))              # (k, windows)
    return padded - len(set(taps.flatten().long().tolist()))


def test_the_cells_it_marks_unread_are_those_torch_never_reads(open_page):
    """Red cells: the remainder the floor drops, and the holes of a stride and a dilation sharing a factor."""
    tab = open_page("<p>formula</p>")
    cases = [c for c in settings(False) if torch_size(**c) is not None]
    answers = tab.evaluate(f"{json.dumps(cases)}.map(c => LayersExplore.convArithmetic(c))")
    wrong = [f"{c}: explorer {a['dropped']} + {a['holes']}, torch {never_read(c['n'], c['k'], c['s'], c['p'], c['d'])}"
             for c, a in zip(cases, answers, strict=True)
             if a["dropped"] + a["holes"] != never_read(c["n"], c["k"], c["s"], c["p"], c["d"])]
    assert not wrong, wrong[:5]
    example = answers[cases.index({"n": 7, "k": 3, "s": 2, "p": 1, "d": 2, "op": 0, "transposed": False})]
    assert (example["dropped"], example["holes"]) == (0, 4)


@pytest.mark.parametrize("values", [
    {"n": 5, "k": 3, "s": 1, "p": 1, "d": 1},
    {"n": 7, "k": 3, "s": 2, "p": 2, "d": 2},
    {"n": 8, "k": 4, "s": 3, "p": 0, "d": 1},
    {"n": 3, "k": 3, "s": 2, "p": 1, "d": 1, "transposed": True, "output_padding": 1},
    {"n": 4, "k": 2, "s": 2, "p": 0, "d": 3, "transposed": True, "output_padding": 2},
    {"n": 6, "k": 5, "s": 1, "p": 3, "d": 1, "transposed": True},
])
def test_the_page_shows_torchs_size_after_the_controls_move(open_page, values):
    """Read off the page, after moving its sliders: the wiring from controls to formula is right."""
    tab = open_page(conv_explorer()._repr_html_())
    set_controls(tab, **values)
    shown = tab.evaluate("document.querySelector('[data-role=size]').textContent")
    expected = torch_size(values["n"], values["k"], values["s"], values["p"], values["d"],
                          values.get("output_padding", 0), values.get("transposed", False))
    assert shown == str(expected)
    layer = "ConvTranspose2d" if values.get("transposed") else "Conv2d"
    assert f"nn.{layer}(" in tab.evaluate("document.querySelector('[data-role=layer]').textContent")


@pytest.mark.parametrize("values, cause", [
    ({"n": 2, "k": 5, "p": 0, "d": 1}, "wider"),
    ({"n": 3, "k": 3, "p": 0, "d": 2}, "fits nowhere"),
    ({"transposed": True, "n": 2, "k": 3, "s": 2, "output_padding": 2}, "must be smaller than the stride"),
    ({"transposed": True, "n": 1, "k": 1, "s": 1, "p": 1}, "leaves no output"),
])
def test_an_impossible_setting_is_explained(open_page, values, cause):
    tab = open_page(conv_explorer()._repr_html_())
    set_controls(tab, **values)
    assert tab.evaluate("document.querySelector('[data-role=size]').textContent") == "impossible"
    reason = tab.evaluate("document.querySelector('[data-role=reason]').textContent")
    assert cause in reason and "torch raises an error" in reason
    assert tab.evaluate("document.querySelector('[name=position]').disabled")


def test_the_sliders_ranges_are_the_python_sides(open_page):
    """conv_explorer() checks its settings against the ranges the page's sliders offer."""
    tab = open_page(conv_explorer()._repr_html_())
    names = {"n": "n", "k": "k", "s": "s", "p": "p", "d": "d", "op": "output_padding"}
    for key, (low, high) in CONV_SETTINGS.items():
        found = tab.evaluate(f"(() => {{ const c = document.querySelector('[name={names[key]}]'); "
                             "return [Number(c.min), Number(c.max)]; })()")
        assert found == [low, high], key


def test_conv_explorer_refuses_settings_it_cannot_show():
    with pytest.raises(TypeError, match="no setting 'stride'"):
        conv_explorer(stride=2)
    with pytest.raises(ValueError, match="k=9 is outside"):
        conv_explorer(k=9)


def test_the_starting_settings_are_shown(open_page):
    tab = open_page(conv_explorer(n=7, k=3, s=2, p=1, d=2)._repr_html_())
    assert tab.evaluate("document.querySelector('[name=s]').value") == "2"
    assert tab.evaluate("document.querySelector('[data-role=size]').textContent") == str(torch_size(7, 3, 2, 1, 2, 0,
                                                                                                 False))


@pytest.fixture
def attention():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 5, 8)
    tokens = [["the", "cat", "sat", "on", "it"], ["a", "b", "c", "d", "e"]]
    return mha, x, tokens


def test_the_attention_explorer_shows_torchs_weights(open_page, attention):
    """For every sequence, head (and their mean) and query, the bars carry torch's weights."""
    mha, x, tokens = attention
    with torch.no_grad():
        _, per_head = mha(x, x, x, average_attn_weights=False)     # (N, H, L, S)
        _, mean = mha(x, x, x)                                     # (N, L, S)
    expected = torch.cat([per_head, mean[:, None]], dim=1)         # (N, H + 1, L, S)
    tab = open_page(attention_explorer(mha, x, tokens)._repr_html_())
    for n, h, q in itertools.product(range(2), range(3), range(5)):
        set_controls(tab, sequence=n, head=h, query=q)
        shown = tab.evaluate("[...document.querySelectorAll('[data-weight]')].map(b => Number(b.dataset.weight))")
        torch.testing.assert_close(torch.tensor(shown), expected[n, h, q], atol=1e-4, rtol=0,
                                   msg=lambda m, n=n, h=h, q=q: f"sequence {n}, head {h}, query {q}: {m}")
        label = tab.evaluate("document.querySelector('[name=query]').nextSibling.textContent")
        assert label == f"{q}: {tokens[n][q]}"


def test_the_attention_explorer_starts_on_the_mean_of_the_heads(open_page, attention):
    mha, x, tokens = attention
    tab = open_page(attention_explorer(mha, x[:1], tokens[0])._repr_html_())
    assert tab.evaluate("document.querySelector('[name=head]').value") == "2"
    assert tab.evaluate("document.querySelector('[name=sequence]')") is None   # one sequence: no choice
    assert "mean of the heads" in tab.evaluate("document.querySelector('[data-view]').textContent")


def test_attention_explorer_checks_its_tokens(attention):
    mha, x, tokens = attention
    with pytest.raises(ValueError, match="2 sequence"):
        attention_explorer(mha, x, tokens[0])


def test_the_weights_do_not_depend_on_dropout_or_train_mode():
    """A layer with dropout is shown in eval mode (deterministic weights) and left as it was."""
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(4, 1, dropout=0.5, batch_first=True).train()
    x = torch.randn(1, 3, 4)
    a = attention_explorer(mha, x, list("abc"))._repr_html_()
    b = attention_explorer(mha, x, list("abc"))._repr_html_()
    assert a == b and mha.training
