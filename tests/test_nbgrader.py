"""The real nbgrader round trip of every chapter, in a scratch copy of the course.

generate_assignment (the result must be the committed exercise) -> three submissions (the
solution pasted in, the untouched stub, a wrong layer) -> autograde -> the gradebook's scores are
max / 0 / in between -> generate_feedback shows no hidden test -> (through the command line)
export has the three rows. The Linear chapter goes through nbgrader's command line, the others
through its Python API in this process (the same converters, minus an interpreter start per
command); tests/test_instructor_guide.py runs every command of the instructor's guide too.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import CHAPTERS
from tests.conftest import ROOT
from tests.test_course import GRADED, nbgrader_meta, source

pytestmark = pytest.mark.nbgrader

#: appended to the pasted solution: a layer's first output is scaled, so its values are wrong while
#: parameters, shapes and rules stay right (a partial score, not zero)
BREAK = '''

def _scaled(out):
    if isinstance(out, tuple):
        return (_scaled(out[0]),) + out[1:]
    return out * 1.5

'''
BREAK_LAYER = '''
class {name}({name}):
    def forward(self, *args, **kwargs):
        return _scaled(super().forward(*args, **kwargs))
'''


def cells(path: Path) -> list[tuple]:
    nb = json.loads(path.read_text())
    return [(c["cell_type"], c.get("id"), source(c), json.dumps(c["metadata"], sort_keys=True)) for c in nb["cells"]]


def submission(released: dict, solution: dict, chapter: str, kind: str) -> dict:
    """The released notebook as a student hands it in: untouched, solved, or solved wrongly."""
    nb = json.loads(json.dumps(released))
    if kind == "stub":
        return nb
    answers = {nbgrader_meta(c)["grade_id"]: source(c) for c in solution["cells"] if nbgrader_meta(c).get("solution")}
    solution_cells = [c for c in nb["cells"] if nbgrader_meta(c).get("solution")]
    for cell in solution_cells:
        cell["source"] = answers[nbgrader_meta(cell)["grade_id"]]
    if kind == "wrong":  # the chapter's last layer only: the grade is of the notebook's classes once all its
        # code cells have run, so breaking a layer the others build on would break them all
        solution_cells[-1]["source"] += BREAK + BREAK_LAYER.format(name=CHAPTERS[chapter][-1])
    return nb


#: the chapter whose round trip goes through the command line, command by command, as in the
#: README; the others call the same converters through nbgrader's Python API, in this process
#: (the same work without a new interpreter per command, which costs 5-7 s each)
CLI_CHAPTER = "linear"


class Nbgrader:
    """nbgrader on a scratch course, through its command line or its Python API."""

    def __init__(self, course: Path, cli: bool):
        self.course, self.cli = course, cli
        if not cli:
            from nbgrader.apps import NbGraderAPI
            from traitlets.config import Config

            config = Config()
            exec((ROOT / "nbgrader_config.py").read_text(), {"get_config": lambda: config})
            config.CourseDirectory.root = str(course)
            self.api = NbGraderAPI(config=config)

    def command(self, *args: str) -> None:
        env = {**os.environ, "HOME": str(self.course)}
        done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args, "--log-level=WARN"],
                              cwd=self.course, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"

    @staticmethod
    def succeeded(result: dict) -> None:
        assert result["success"], f"{result.get('error')}\n{result.get('log')}"

    def generate_assignment(self, chapter: str) -> None:
        if self.cli:
            self.command("generate_assignment", chapter, "--force")
        else:
            self.succeeded(self.api.generate_assignment(chapter, force=True))

    def autograde(self, chapter: str, students: list[str]) -> None:
        if self.cli:
            self.command("autograde", chapter, "--force")
        else:
            for student in students:
                self.succeeded(self.api.autograde(chapter, student, force=True, create=True))

    def generate_feedback(self, chapter: str) -> None:
        if self.cli:
            self.command("generate_feedback", chapter, "--force")
        else:
            self.succeeded(self.api.generate_feedback(chapter, force=True))


@pytest.mark.parametrize("chapter", GRADED)
def test_the_nbgrader_round_trip(chapter, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # nbgrader runs alembic
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / chapter, course / "solutions" / chapter)
    nbgrader = Nbgrader(course, cli=chapter == CLI_CHAPTER)
    nbgrader.generate_assignment(chapter)

    name = f"{chapter}.ipynb"
    generated = course / "exercises" / chapter / name
    # drift between solutions/ and exercises/ (a hand edit, a forgotten `make exercises`) fails here
    assert cells(generated) == cells(ROOT / "exercises" / chapter / name), f"exercises/{chapter} is stale: " \
        "run `make exercises`"

    released = json.loads(generated.read_text())
    solution = json.loads((ROOT / "solutions" / chapter / name).read_text())
    students = {"alice": "solved", "bob": "stub", "carol": "wrong"}
    for student, kind in students.items():
        folder = course / "submitted" / student / chapter
        folder.mkdir(parents=True)
        (folder / name).write_text(json.dumps(submission(released, solution, chapter, kind)))
    nbgrader.autograde(chapter, list(students))

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(chapter, s) for s in students}
        scores = {s: (sub.score, sub.max_score) for s, sub in scores.items()}
    top = scores["alice"][1]
    assert top > 0 and scores["alice"][0] == top, scores
    assert scores["bob"][0] == 0, scores
    assert 0 < scores["carol"][0] < top, scores

    nbgrader.generate_feedback(chapter)
    for student in students:
        page = (course / "feedback" / student / chapter / f"{chapter}.html").read_text()
        for secret in ("BEGIN HIDDEN TESTS", 'suite="hidden"'):
            assert secret not in html.unescape(page), f"{student}'s feedback shows hidden tests"

    if nbgrader.cli:
        nbgrader.command("export", "--to", str(course / "grades.csv"))
        with open(course / "grades.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["assignment"] == chapter]
        assert sorted(r["student_id"] for r in rows) == sorted(students)
        assert {r["student_id"]: float(r["raw_score"]) for r in rows} == {s: v[0] for s, v in scores.items()}
