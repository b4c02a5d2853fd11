"""Explorers for the book's pages: figures a reader drives, drawn in the browser.

    from _explore import conv_explorer, attention_explorer
    conv_explorer(n=7, k=3, s=2, p=1)          # the cell's output: input and output grids, the size formula
    attention_explorer(mha, x, tokens)         # torch's weights of every head, for every query

This module writes the explorer's HTML: a `<div data-explorer=...>` with its starting settings,
or, for attention, the weights torch computed at build time as JSON. `_static/layers-explore.js`
adds the controls and draws; without JavaScript the reader sees a sentence saying so. Nothing is
fetched at view time: the explorers work from file://.

As for book/_anim.py, the notebook cache keys on a page's code, not on this module: after changing
it, rebuild from a cold cache (`rm -rf .jupyter_cache`). The script in _static/ is copied at
every build.
"""

from __future__ import annotations

import html
import json

import torch
from torch import nn

#: the convolution explorer's settings and their ranges (the sliders' ranges in layers-explore.js)
CONV_SETTINGS = {"n": (1, 12), "k": (1, 7), "s": (1, 4), "p": (0, 4), "d": (1, 3), "op": (0, 3)}


class Explorer:
    """An explorer's HTML, shown as a notebook cell's output."""

    def __init__(self, markup: str):
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup


def conv_explorer(*, transposed: bool = False, **settings: int) -> Explorer:
    """The convolution-arithmetic explorer, starting from `settings`.

    n: input size, k: kernel size, s: stride, p: padding, d: dilation, op: output_padding (used
    when `transposed`). The grids are square: the same arithmetic runs along each dimension.
    """
    for key, value in settings.items():
        if key not in CONV_SETTINGS:
            raise TypeError(f"conv_explorer() has no setting {key!r}; it has {', '.join(CONV_SETTINGS)}")
        low, high = CONV_SETTINGS[key]
        if not low <= value <= high:
            raise ValueError(f"conv_explorer(): {key}={value} is outside the explorer's range {low}..{high}")
    start = json.dumps({**settings, "transposed": transposed})
    return Explorer(f'<div class="layers-explorer" data-explorer="conv" data-settings="{html.escape(start)}">'
                    '<p class="layers-explorer-nojs">This explorer is drawn by JavaScript, which is off in this '
                    'browser; the output-size formulas of the text give the same numbers.</p></div>')


@torch.no_grad()
def attention_weights(mha: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Self-attention weights of every head and their mean, as torch returns them.

    x: (N, L, E) if `mha.batch_first`, else (L, N, E). Returns (N, H + 1, L, L): heads 0..H-1 from
    `average_attn_weights=False`, and last the layer's default, averaged weights.
    """
    was_training = mha.training
    mha.eval()                                           # no dropout on the weights shown
    try:
        _, per_head = mha(x, x, x, need_weights=True, average_attn_weights=False)   # (N, H, L, L)
        _, mean = mha(x, x, x, need_weights=True)                                    # (N, L, L)
    finally:
        mha.train(was_training)
    return torch.cat([per_head, mean[:, None]], dim=1)


def attention_explorer(mha: nn.MultiheadAttention, x: torch.Tensor, tokens: list[list[str]] | list[str], *,
                       query: int = 0, head: int | None = None) -> Explorer:
    """The attention explorer: pick a sequence, a query and a head, see its weights over the keys.

    tokens: the tokens of each sequence of x (or of its only one), used as labels; query, head:
    where the explorer starts (head None: the mean of the heads).
    """
    if tokens and isinstance(tokens[0], str):
        tokens = [tokens]
    weights = attention_weights(mha, x)                  # (N, H + 1, L, L)
    n, h1, length, _ = weights.shape
    if len(tokens) != n or any(len(t) != length for t in tokens):
        raise ValueError(f"attention_explorer(): {n} sequence(s) of {length} positions, but tokens for "
                         f"{[len(t) for t in tokens]}")
    data = {"tokens": [[str(t) for t in seq] for seq in tokens], "heads": h1 - 1, "query": query,
            "head": h1 - 1 if head is None else head,
            "weights": [[[[round(v, 5) for v in row] for row in w_h] for w_h in w_n] for w_n in weights.tolist()]}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return Explorer('<div class="layers-explorer" data-explorer="attention">'
                    '<p class="layers-explorer-nojs">This explorer is drawn by JavaScript, which is off in this '
                    'browser.</p>'
                    f'<script type="application/json" class="layers-explorer-data">{payload}</script></div>')
