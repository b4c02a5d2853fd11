"""Grading one submitted notebook on the trusted path: the judge here, the student's code in a sandbox.

    with Submission(notebook) as sub:            # runs the notebook's code cells in a fresh sandbox
        report = sub.report("Linear", suite="hidden")   # graded here, against torch, through the wire
        cells = sub.grade_cells()                # each nbgrader test cell: passed, and its text

The test cells are read, never run: nbgrader has restored them from its gradebook, so their
source is the instructor's, and they are written in a small vocabulary that `checks_of` reads:
`check("Linear", Linear, parts=[...], suite="hidden")` and `check_training(SimpleCNN, ...)` calls,
possibly in a `for` over a literal list. Each (layer, suite) is graded once with every part, and
each cell sees the parts it asks for; the hidden suite's seed is one per submission (recorded in
every report's header), so a regrade with that seed reproduces the grade.
"""

from __future__ import annotations

import ast
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .digits import judge_training
from .engine import grade
from .notebook import is_test_cell, runnable_cells
from .remote import Session
from .report import Report, Result
from .sandbox import Limits, Zygote, shared
from .scan import Flag, scan
from .spec import PARTS, SPECS
from .student import StudentError

#: the largest notebook file the judge reads
MAX_NOTEBOOK = 50 * 2 ** 20


class UnsupportedCell(ValueError):
    """A test cell that is not written in the vocabulary the judge reads."""


@dataclass(frozen=True)
class Check:
    """One call of a test cell: `check(layer, cls, parts=..., suite=...)` or `check_training(cls, ...)`."""

    kind: str  # "check" or "training"
    cls: str  # the name of the notebook's class
    layer: str = ""  # the torch.nn name graded against (checks)
    parts: tuple[str, ...] = PARTS
    suite: str = "public"
    options: tuple = ()  # check_training's keyword arguments, as (name, value) pairs


@dataclass(frozen=True)
class ClassRef:
    name: str


def _value(node: ast.AST, env: dict) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(e, env) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Name):
        return env.get(node.id, ClassRef(node.id))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    raise UnsupportedCell(f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:60]!r} is not a literal")


def _call(node: ast.Call, env: dict) -> Check:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    args = [_value(a, env) for a in node.args]
    kwargs = {k.arg: _value(k.value, env) for k in node.keywords if k.arg}
    if name == "check" and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], ClassRef):
        unknown = set(kwargs) - {"parts", "suite"}
        parts = tuple(kwargs.get("parts") or PARTS)
        if unknown or not set(parts) <= set(PARTS) or kwargs.get("suite", "public") not in ("public", "hidden"):
            raise UnsupportedCell(f"line {node.lineno}: check() takes parts= and suite= only")
        if args[0] not in SPECS:
            raise UnsupportedCell(f"line {node.lineno}: no grader for {args[0]!r}")
        return Check("check", args[1].name, args[0], parts, kwargs.get("suite", "public"))
    if name == "check_training" and len(args) == 1 and isinstance(args[0], ClassRef):
        if set(kwargs) - {"min_accuracy", "epochs", "seed"}:
            raise UnsupportedCell(f"line {node.lineno}: check_training() takes min_accuracy=, epochs=, seed= only")
        return Check("training", args[0].name, options=tuple(sorted(kwargs.items())))
    raise UnsupportedCell(f"line {node.lineno}: only check(...) and check_training(...) calls can be graded")


def checks_of(source: str) -> list[Check]:
    """The calls a test cell makes, read from its source (never run). Raises UnsupportedCell."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UnsupportedCell(f"the cell does not parse: {exc}") from None
    found: list[Check] = []

    def run(body: Iterable[ast.stmt], env: dict) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                found.append(_call(stmt.value, env))
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring or comment string
            elif isinstance(stmt, ast.Pass):
                continue
            elif isinstance(stmt, ast.For) and not stmt.orelse:
                for item in _value(stmt.iter, env):
                    inner = dict(env)
                    if isinstance(stmt.target, ast.Name):
                        inner[stmt.target.id] = item
                    elif isinstance(stmt.target, ast.Tuple) and all(isinstance(t, ast.Name) for t in stmt.target.elts) \
                            and isinstance(item, (tuple, list)) and len(item) == len(stmt.target.elts):
                        inner.update({t.id: v for t, v in zip(stmt.target.elts, item)})
                    else:
                        raise UnsupportedCell(f"line {stmt.lineno}: unsupported loop target")
                    run(stmt.body, inner)
            else:
                raise UnsupportedCell(f"line {stmt.lineno}: only check(...) and check_training(...) calls, "
                                      "possibly in a for loop over a literal list, can be graded")

    run(tree.body, {})
    return found


@dataclass
class CellGrade:
    """The verdict on one test cell: `passed`, and the text it shows (the reports, or why it failed)."""

    index: int
    grade_id: str
    passed: bool
    text: str


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


@dataclass
class Submission:
    """One notebook, graded through a fresh sandbox. Use as a context manager (the sandbox is closed
    at the end). `seed` is the hidden suite's (random when None); `zygote` the sandbox to fork from
    (this process's by default)."""

    notebook: dict
    zygote: Zygote | None = None
    seed: int | None = None
    device: str | None = None
    limits: Limits | None = None
    reports: dict = field(default_factory=dict)  # (layer, cls, suite) -> Report with every part
    trainings: dict = field(default_factory=dict)  # (cls, options) -> (ok, message)

    def __post_init__(self) -> None:
        self.started = time.perf_counter()
        self.zygote = self.zygote or shared()
        self.seed = secrets.randbits(31) if self.seed is None else self.seed
        cells = self.notebook.get("cells", []) if isinstance(self.notebook, dict) else []
        self.cells = [c for c in cells if isinstance(c, dict)]
        self.code_cells = runnable_cells({"cells": self.cells})
        self.flags: list[Flag] = scan(self.code_cells)
        self.session = Session(self.zygote, self.code_cells, limits=self.limits)
        self.session.start()
        self._classes: dict[str, str | None] = {}

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    @property
    def isolation(self) -> str:
        return self.zygote.header

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def _missing(self, cls: str) -> str | None:
        """Why the notebook's class `cls` cannot be graded, or None when it exists."""
        if cls not in self._classes:
            try:
                self.session.request({"op": "describe", "cls": cls}, f"{cls}")
                self._classes[cls] = None
            except StudentError as exc:
                why = exc.message or exc.text
                broken = [f"cell {i}: {r['error']['ename']}: {r['error']['evalue'][:100]}"
                          for i, r in sorted(self.session.cell_results.items()) if r.get("error")]
                broken += [f"cell {i} {why_}" for i, why_ in sorted(self.session.skipped.items())]
                if broken:
                    why += f" (a cell failed: {broken[0]})"
                self._classes[cls] = why
        return self._classes[cls]

    def report(self, layer: str, cls: str | None = None, suite: str = "public",
               parts: Iterable[str] = PARTS) -> Report:
        """The grade of the notebook's class `cls` (default: named like the layer) as `layer`."""
        cls = cls or layer
        key = (layer, cls, suite)
        if key not in self.reports:
            missing = self._missing(cls)
            if missing:
                full = Report(layer, PARTS, [Result(p, layer, False, missing) for p in PARTS])
            else:
                full = grade(layer, self.session.side(cls), suite=suite, seed=self.seed, device=self.device)
            full.header = ", ".join(filter(None, [full.header or f"{suite} suite", self.isolation]))
            if self.flags:
                more = f" (and {len(self.flags) - 1} more)" if len(self.flags) > 1 else ""
                full.results.append(Result("rules", layer, False, f"{self.flags[0]}{more}", check="review"))
            self.reports[key] = full
        return self.reports[key].subset(tuple(parts))

    def training(self, cls: str, options: tuple = ()) -> tuple[bool, str]:
        key = (cls, options)
        if key not in self.trainings:
            missing = self._missing(cls)
            if missing:
                self.trainings[key] = (False, f"training could not run: {missing}")
            else:
                self.trainings[key] = judge_training(self.session.side(cls), **dict(options))
        return self.trainings[key]

    def test_cells(self) -> list[tuple[int, dict]]:
        return [(i, c) for i, c in enumerate(self.cells) if c.get("cell_type") == "code" and is_test_cell(c)]

    def grade_cells(self) -> dict[int, CellGrade]:
        """Every nbgrader test cell's verdict, by cell index."""
        graded = {}
        for index, cell in self.test_cells():
            grade_id = str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", index))
            try:
                checks = checks_of(_source(cell))
            except UnsupportedCell as exc:
                graded[index] = CellGrade(index, grade_id, False, f"this test cell cannot be graded: {exc}")
                continue
            texts, passed = [], True
            for c in checks:
                if c.kind == "check":
                    report = self.report(c.layer, c.cls, c.suite, c.parts)
                    passed &= report.passed
                    texts.append(str(report))
                else:
                    ok, message = self.training(c.cls, c.options)
                    passed &= ok
                    texts.append(message)
            graded[index] = CellGrade(index, grade_id, passed, "\n".join(texts) or "nothing to check")
        return graded

    def faults(self) -> list[tuple[str, str]]:
        """(kind, text) of every fault of the student's process in this submission."""
        return [(f.kind, f.text) for f in self.session.faults]
