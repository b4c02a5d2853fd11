"""The one-page overview (book/overview.md) covers every graded layer and names torch's parameters."""

from __future__ import annotations

import re

import jupytext
import pytest
from torch import nn

from autograder import CHAPTERS
from tests.conftest import ROOT


def overview_rows() -> dict[str, list[tuple]]:
    """The page's LAYERS table, read by running its code cell (without displaying anything)."""
    nb = jupytext.read(ROOT / "book" / "overview.md")
    code = next(c.source for c in nb.cells if c.cell_type == "code" and "LAYERS = {" in c.source)
    namespace: dict = {}
    exec(code.replace("HTML(table_html())", ""), namespace)  # noqa: S102 - our own page
    return namespace["LAYERS"]


ROWS = overview_rows()


def row_of(layer: str) -> tuple:
    for rows in ROWS.values():
        for row in rows:
            if layer in [n.strip() for n in row[0].split(",")]:
                return row
    raise KeyError(layer)


def test_every_graded_layer_has_a_row_in_its_chapter():
    for chapter, layers in CHAPTERS.items():
        if chapter not in ROWS:
            continue  # a chapter outside the overview (the capstone)
        listed = {n.strip() for row in ROWS[chapter] for n in row[0].split(",")}
        assert set(layers) <= listed, f"{chapter}: {sorted(set(layers) - listed)} missing from book/overview.md"


def test_the_overview_lists_the_course_chapters_in_order():
    from autograder.specs import CHAPTER_ORDER

    assert list(ROWS) == [c for c in CHAPTER_ORDER if c in ROWS]


EXAMPLES = {
    "Linear": nn.Linear(3, 2),
    "Conv2d": nn.Conv2d(3, 4, 3),
    "ConvTranspose2d": nn.ConvTranspose2d(3, 4, 3),
    "BatchNorm2d": nn.BatchNorm2d(4),
    "LayerNorm": nn.LayerNorm(4),
    "GroupNorm": nn.GroupNorm(2, 4),
    "InstanceNorm2d": nn.InstanceNorm2d(4),
    "RMSNorm": nn.RMSNorm(4),
    "Embedding": nn.Embedding(10, 3),
    "EmbeddingBag": nn.EmbeddingBag(10, 3),
    "LSTMCell": nn.LSTMCell(3, 4),
    "MultiheadAttention": nn.MultiheadAttention(8, 2),
    "MaxPool2d": nn.MaxPool2d(2),
    "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d(1),
    "Dropout": nn.Dropout(),
    "ReLU": nn.ReLU(),
    "Flatten": nn.Flatten(),
    "MSELoss": nn.MSELoss(),
}


@pytest.mark.parametrize("layer", EXAMPLES)
def test_the_parameters_column_names_torchs_state(layer):
    params = row_of(layer)[3]
    keys = list(EXAMPLES[layer].state_dict())
    if not keys:
        assert params == "none" or params.startswith("none "), f"{layer}: {params!r}"
    for key in keys:
        assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", params), f"{layer}: {key} not in {params!r}"
