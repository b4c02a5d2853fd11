"""Every chapter follows the course's conventions, whichever chapter it is.

For each chapter with graded layers: the reference solution passes every layer (public and hidden
suites), the released exercise scores zero untouched, both notebooks are stored clean and
structured as nbgrader expects, and the book page exists with its label, a figure and a link to
the exercise. (That `exercises/` is exactly what nbgrader generates from `solutions/` is checked
by the round trip, tests/test_nbgrader.py.)
"""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from autograder import CHAPTERS, grade
from autograder.specs import CHAPTER_ORDER
from tests.conftest import ROOT, exercise_classes, solution_classes

GRADED = [c for c in CHAPTER_ORDER if CHAPTERS.get(c)]


def notebook(kind: str, chapter: str) -> dict:
    return json.loads((ROOT / kind / chapter / f"{chapter}.ipynb").read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_every_chapter_of_the_book_order_has_a_spec_module():
    """Is the registry's chapter list the course's, in book order?"""
    assert CHAPTER_ORDER[:11] == ("linear", "conv", "conv_transpose", "pooling", "normalization", "dropout",
                                  "embedding", "recurrent", "transformer", "activations", "flatten")
    assert list(CHAPTERS) == [c for c in CHAPTER_ORDER if c in CHAPTERS]


@pytest.mark.parametrize("chapter", GRADED)
def test_the_solution_passes_every_layer(chapter):
    classes = solution_classes(chapter)
    for name in CHAPTERS[chapter]:
        assert name in classes, f"solutions/{chapter} defines no {name}"
        for suite in ("public", "hidden"):
            report = grade(name, classes[name], suite=suite, seed=1)
            assert report.passed, str(report)


@pytest.mark.parametrize("chapter", GRADED)
def test_the_untouched_exercise_scores_zero(chapter):
    classes = exercise_classes(chapter)
    for name in CHAPTERS[chapter]:
        assert name in classes, f"exercises/{chapter} defines no {name}"
        report = grade(name, classes[name])
        assert report.score == 0, str(report)


@pytest.mark.parametrize("kind", ["solutions", "exercises"])
@pytest.mark.parametrize("chapter", GRADED)
def test_notebooks_are_stored_clean(chapter, kind):
    """No outputs or execution counts (clean diffs); every cell has a unique id."""
    nb = notebook(kind, chapter)
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, f"{kind}/{chapter}: cell {cell['id']}"


@pytest.mark.parametrize("chapter", GRADED)
def test_the_solution_notebook_is_structured_for_nbgrader(chapter):
    nb = notebook("solutions", chapter)
    text = "\n".join(source(c) for c in nb["cells"])
    assert f"../../book/{chapter}.md" in text, "the notebook links its book page"
    solutions = [c for c in nb["cells"] if nbgrader_meta(c).get("solution")]
    assert solutions and all("### BEGIN SOLUTION" in source(c) for c in solutions)
    tests = [c for c in nb["cells"] if nbgrader_meta(c).get("grade")]
    grade_ids = [nbgrader_meta(c)["grade_id"] for c in nb["cells"] if nbgrader_meta(c)]
    assert len(set(grade_ids)) == len(grade_ids), "grade ids are unique"
    for cell in tests:
        meta, code = nbgrader_meta(cell), source(cell)
        assert re.fullmatch(rf"{chapter}_[a-z0-9]+_[a-z_]+", meta["grade_id"]), meta["grade_id"]
        assert meta.get("points", 0) > 0 and meta["locked"]
        tree = ast.parse(code)
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert calls & {"check", "check_training"}, f"{meta['grade_id']} grades through the autograder"
        if "check" in calls:
            assert "### BEGIN HIDDEN TESTS" in code, f"{meta['grade_id']} runs the hidden suite too"
        # nbgrader takes a cell's value as its score when it is a number: end with a statement
        last = tree.body[-1]
        assert not isinstance(last, ast.Expr) or isinstance(last.value, ast.Call), meta["grade_id"]
    for name in CHAPTERS[chapter]:
        assert any(f'"{name}"' in source(c) for c in tests), f"no graded cell checks {name}"
        assert any(re.search(rf"^class {name}\b", source(c), re.M) for c in solutions), f"no class {name} to fill"
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "demo" in code_cells[-1]["metadata"].get("tags", []), "the notebook ends with a 'try it' demo cell"


@pytest.mark.parametrize("chapter", GRADED)
def test_the_exercise_hides_solutions_and_hidden_tests(chapter):
    text = (ROOT / "exercises" / chapter / f"{chapter}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", 'suite=\\"hidden\\"'):
        assert marker not in text
    assert "raise NotImplementedError()" in text


def _toc_sections() -> dict[str, list[str]]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = {}
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            found[chapter["file"]] = [s["file"] for s in chapter.get("sections", [])]
    return found


@pytest.mark.parametrize("chapter", GRADED)
def test_the_book_page_explains_and_links_the_exercise(chapter):
    page = ROOT / "book" / f"{chapter}.md"
    text = page.read_text()
    assert text.startswith("---\njupytext:"), "a MyST markdown notebook, executed at build time"
    assert f"(sec-{chapter})=" in text
    assert "## Summary" in text and "## Your turn" in text
    assert f"{{doc}}`../exercises/{chapter}/{chapter}`" in text
    assert "caption:" in text, "at least one captioned figure"
    assert "torch.nn" in text or "nn." in text
    sections = _toc_sections().get(f"book/{chapter}", [])
    assert f"exercises/{chapter}/{chapter}" in sections, "the page and its exercise are in _toc.yml"
