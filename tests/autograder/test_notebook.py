"""The notebook loader: runs the defining cells, skips tests and demos, survives broken cells."""

import json

from autograder.notebook import load
from tests.conftest import ROOT


def write(path, cells):
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def code(src, **meta):
    return {"cell_type": "code", "source": src, "metadata": meta, "outputs": [], "execution_count": None}


def test_it_defines_classes_and_skips_test_demo_and_magic_lines(tmp_path):
    path = write(tmp_path / "x.ipynb", [
        code("%matplotlib inline\nimport torch\nfrom torch import nn\n!echo hi"),
        code("class A(nn.Module):\n    pass\nVALUE = 1"),
        code("VALUE = 2\nraise AssertionError('a test cell must not run')",
             nbgrader={"grade": True, "solution": False, "grade_id": "t", "points": 1}),
        code("VALUE = 3", tags=["demo"]),
        {"cell_type": "markdown", "source": "# text", "metadata": {}},
    ])
    loaded = load(path)
    assert loaded.errors == []
    assert set(loaded.classes) == {"A"}  # nn.Module and torch are imported, not defined
    assert loaded.namespace["VALUE"] == 1


def test_a_broken_cell_is_reported_and_the_rest_still_runs(tmp_path):
    path = write(tmp_path / "x.ipynb", [code("1 / 0"), code("class B:\n    pass")])
    loaded = load(path)
    assert loaded.errors == ["cell 0: ZeroDivisionError: division by zero"]
    assert "B" in loaded.classes


def test_tracebacks_quote_the_notebook_line(tmp_path):
    from autograder.engine import raised

    path = write(tmp_path / "x.ipynb", [code("def f():\n    return undefined_name\n")])
    f = load(path).namespace["f"]
    try:
        f()
    except NameError as exc:
        assert "in f ('return undefined_name')" in raised(exc)


def test_the_reference_linear_notebook_loads_cleanly():
    loaded = load(ROOT / "solutions" / "linear" / "linear.ipynb")
    assert loaded.errors == [] and "Linear" in loaded.classes
