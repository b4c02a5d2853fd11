"""The real nbgrader round trip, through its command line, in a scratch copy of the course.

generate_assignment -> three submissions (the solution pasted in, the untouched stub, a wrong
layer) -> autograde -> the gradebook's scores are max / 0 / in between -> generate_feedback
shows no hidden test -> export has the three rows.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import CHAPTERS
from tests.conftest import ROOT
from tests.test_course import GRADED, nbgrader_meta, source

pytestmark = pytest.mark.nbgrader

#: appended to the pasted solution: every layer's first output is scaled, so values are wrong
#: while parameters, shapes and rules stay right (a partial score, not zero)
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


def run(nbgrader: Path, course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(course)}
    done = subprocess.run([str(nbgrader), *args, "--log-level=WARN"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def submission(released: dict, solution: dict, chapter: str, kind: str) -> dict:
    """The released notebook as a student hands it in: untouched, solved, or solved wrongly."""
    nb = json.loads(json.dumps(released))
    if kind == "stub":
        return nb
    answers = {nbgrader_meta(c)["grade_id"]: source(c) for c in solution["cells"] if nbgrader_meta(c).get("solution")}
    solution_cells = [c for c in nb["cells"] if nbgrader_meta(c).get("solution")]
    for cell in solution_cells:
        cell["source"] = answers[nbgrader_meta(cell)["grade_id"]]
    if kind == "wrong":
        solution_cells[-1]["source"] += BREAK + "".join(BREAK_LAYER.format(name=n) for n in CHAPTERS[chapter])
    return nb


@pytest.mark.parametrize("chapter", GRADED)
def test_the_nbgrader_round_trip(chapter, tmp_path, nbgrader_bin):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / chapter, course / "solutions" / chapter)
    run(nbgrader_bin, course, "generate_assignment", chapter, "--force")

    name = f"{chapter}.ipynb"
    released = json.loads((course / "exercises" / chapter / name).read_text())
    solution = json.loads((ROOT / "solutions" / chapter / name).read_text())
    students = {"alice": "solved", "bob": "stub", "carol": "wrong"}
    for student, kind in students.items():
        folder = course / "submitted" / student / chapter
        folder.mkdir(parents=True)
        (folder / name).write_text(json.dumps(submission(released, solution, chapter, kind)))
    run(nbgrader_bin, course, "autograde", chapter, "--force")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(chapter, s) for s in students}
        scores = {s: (sub.score, sub.max_score) for s, sub in scores.items()}
    top = scores["alice"][1]
    assert top > 0 and scores["alice"][0] == top, scores
    assert scores["bob"][0] == 0, scores
    assert 0 < scores["carol"][0] < top, scores

    run(nbgrader_bin, course, "generate_feedback", chapter, "--force")
    for student in students:
        page = (course / "feedback" / student / chapter / f"{chapter}.html").read_text()
        for secret in ("BEGIN HIDDEN TESTS", 'suite="hidden"'):
            assert secret not in html.unescape(page), f"{student}'s feedback shows hidden tests"

    run(nbgrader_bin, course, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["assignment"] == chapter]
    assert sorted(r["student_id"] for r in rows) == sorted(students)
    assert {r["student_id"]: float(r["raw_score"]) for r in rows} == {s: v[0] for s, v in scores.items()}
