"""Writing nbgrader notebooks from Python, with the course's conventions built in.

The `.ipynb` in `solutions/` is the source of truth (edit it in JupyterLab as usual); this module
is for writing a new one quickly and uniformly:

    from tools.nbbuild import Notebook
    nb = Notebook("linear")
    nb.md("# Exercise ...")                       # locked instructions
    nb.setup("import torch ...")                  # locked set-up code
    nb.solution("Linear", "class Linear ...")     # the student's cell (### BEGIN/END SOLUTION inside)
    nb.test("Linear", "forward", 2)               # graded cell: check(..., parts=["forward"]) + hidden suite
    nb.demo("...")                                 # "try it" cell, tagged demo, never graded
    nb.write("solutions/linear/linear.ipynb")

Grade ids follow `<chapter>_<layer>_<part>` (lower case); cell ids are derived from them, so
regenerating a notebook keeps its ids.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

SCHEMA = 3


def _nbgrader(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = True,
              points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


class Notebook:
    def __init__(self, chapter: str):
        self.chapter = chapter
        self.cells: list = []
        self._n = 0

    def _id(self, label: str) -> str:
        self._n += 1
        return re.sub(r"[^a-zA-Z0-9-]", "-", f"{self.chapter}-{self._n:02d}-{label}")[:64]

    def md(self, text: str) -> None:
        cell = nbformat.v4.new_markdown_cell(text.strip("\n"))
        cell.id = self._id("md")
        cell.metadata["nbgrader"] = _nbgrader(cell.id.replace("-", "_"))
        self.cells.append(cell)

    def setup(self, code: str) -> None:
        cell = nbformat.v4.new_code_cell(code.strip("\n"))
        cell.id = self._id("setup")
        cell.metadata["nbgrader"] = _nbgrader(f"{self.chapter}_setup_{self._n}")
        self.cells.append(cell)

    def solution(self, layer: str, code: str) -> None:
        grade_id = f"{self.chapter}_{layer.lower()}_solution"
        cell = nbformat.v4.new_code_cell(code.strip("\n"))
        cell.id = self._id(grade_id)
        cell.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, locked=False)
        self.cells.append(cell)

    def test(self, layer: str, part: str, points: float, *, hidden: bool = True, code: str | None = None) -> None:
        """A graded cell for one part of one layer: the public suite visibly, the hidden suite
        (drawn at grading time) between hidden-test markers."""
        grade_id = f"{self.chapter}_{layer.lower()}_{part}"
        if code is None:
            code = f'check("{layer}", {layer}, parts=["{part}"])'
            if hidden:
                code += (f'\n### BEGIN HIDDEN TESTS\ncheck("{layer}", {layer}, parts=["{part}"], suite="hidden")'
                         "\n### END HIDDEN TESTS")
        cell = nbformat.v4.new_code_cell(code)
        cell.id = self._id(grade_id)
        cell.metadata["nbgrader"] = _nbgrader(grade_id, grade=True, points=points)
        self.cells.append(cell)

    def demo(self, code: str) -> None:
        cell = nbformat.v4.new_code_cell(code.strip("\n"))
        cell.id = self._id("demo")
        cell.metadata["tags"] = ["demo"]
        self.cells.append(cell)

    def write(self, path: str | Path) -> None:
        nb = nbformat.v4.new_notebook(cells=self.cells)
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        nb.nbformat, nb.nbformat_minor = 4, 5
        nbformat.validate(nb)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))


def solution_source(path: str | Path) -> str:
    """The code of a notebook's solution cells, markers removed: what a student wrote."""
    nb = nbformat.read(str(path), as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    keep = [line for src in cells for line in src.splitlines() if "### BEGIN SOLUTION" not in line
            and "### END SOLUTION" not in line]
    return "\n".join(keep)


def definitions(sources: list[str], names: list[str]) -> str:
    """The top-level definitions `names` need, in source order, from solution code.

    Follows names used by each needed definition (base classes, helper functions, constants) to
    the definitions that provide them, so the result runs on its own after the usual imports.
    """
    import ast

    nodes = []  # (provided names, used names, source text)
    for src in sources:
        tree = ast.parse(src)
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            provided = set()
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                provided = {node.name}
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                provided = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if not provided:
                continue
            used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            first = min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno])
            text = "\n".join(src.splitlines()[first - 1:node.end_lineno])  # decorators included
            nodes.append((provided, used, text))
    wanted, keep, changed = set(names), set(), True
    while changed:
        changed = False
        for i, (provided, used, _) in enumerate(nodes):
            if i not in keep and provided & wanted:
                keep.add(i)
                wanted |= used
                changed = True
    missing = set(names) - {n for i in keep for n in nodes[i][0]}
    if missing:
        raise LookupError(f"no definition of {sorted(missing)}")
    return "\n\n\n".join(nodes[i][2] for i in sorted(keep))
