"""Every command of the instructor's guide (book/instructor.md) works as the guide says.

The commands are read from the guide's ```bash blocks and run, in a scratch copy of the course
holding the linear chapter, in the order of a term: regenerate; release through an exchange
folder; a student fetches, solves and submits; collect, autograde, feedback out and back; two late
submissions arrive by hand (an untouched stub, and a cheat that redefines `check`) and are graded;
feedback for a mixed class; export; the command line grader; a change of points. Then each
command's effect is checked, with the guide's claims: hidden tests stay out of feedback, the
cheat fools neither nbgrader nor the command line, new points reach the gradebook.

Two commands are adapted, and only these: `make exercises` runs with `-o .venv/.installed` (the
scratch course borrows this checkout's .venv and must never reinstall it), and `cuda` becomes
`cpu` on a machine without a GPU.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_nbgrader import submission

pytestmark = pytest.mark.nbgrader

GUIDE = ROOT / "book" / "instructor.md"
CHAPTER = "linear"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
#: appended to a released notebook: the test cells then call this instead of the grader
CHEAT = "\n\ndef check(*args, **kwargs):  # the test cells call this instead of the grader\n    return None\n"


def guide_commands() -> list[str]:
    """The lines of the guide's bash blocks, in order, without comments and blank lines."""
    blocks = re.findall(r"^```bash\n(.*?)^```", GUIDE.read_text(), re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def adapted(command: str) -> str:
    if command.startswith("make "):
        command = command.replace("make ", "make -o .venv/.installed ", 1)
    return command.replace("cuda", DEVICE)


#: where each command runs: in the course directory (the instructor) or in a student's home
STUDENT_COMMANDS = {"nbgrader fetch_assignment linear", "nbgrader submit linear", "nbgrader fetch_feedback linear"}


class Term:
    """A scratch course, an exchange folder and a student's home, and every command's result."""

    def __init__(self, base: Path):
        self.course, self.exchange, self.home = base / "course", base / "exchange", base / "student"
        for folder in (self.course, self.exchange, self.home):
            folder.mkdir()
        self.exchange.chmod(0o777)
        for name in ("nbgrader_config.py", "Makefile", "requirements.txt", "constraints.txt", "pyproject.toml"):
            shutil.copy2(ROOT / name, self.course / name)  # copy2: the Makefile's stamp stays up to date
        shutil.copytree(ROOT / "solutions" / CHAPTER, self.course / "solutions" / CHAPTER)
        (self.course / "tools").mkdir()
        shutil.copy2(ROOT / "tools" / "points.py", self.course / "tools" / "points.py")
        (self.course / ".venv").symlink_to(ROOT / ".venv")
        exchange = f'c.Exchange.root = "{self.exchange}"\n'
        with open(self.course / "nbgrader_config.py", "a") as f:
            f.write("\n# the test's exchange folder\n" + exchange)
        (self.home / "nbgrader_config.py").write_text(
            f'c = get_config()  # noqa: F821\n{exchange}c.CourseDirectory.course_id = "layers"\n')
        self.results: dict[str, list[subprocess.CompletedProcess]] = {}

    def run(self, command: str) -> subprocess.CompletedProcess:
        student = command in STUDENT_COMMANDS
        where = self.home if student else self.course
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(where),
               "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LANG": "C.UTF-8"}
        done = subprocess.run(["bash", "-c", adapted(command)], cwd=where, env=env,
                              capture_output=True, text=True, timeout=900)
        self.results.setdefault(command, []).append(done)
        return done

    def hand_in(self, student: str, kind: str) -> None:
        """A submission that arrives by hand (a learning platform): straight into submitted/."""
        released = json.loads((self.course / "exercises" / CHAPTER / f"{CHAPTER}.ipynb").read_text())
        nb = submission(released, json.loads((ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb").read_text()),
                        CHAPTER, "stub")
        if kind == "cheat":
            cells = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
            cells[-1]["source"] = "".join(cells[-1]["source"]) + CHEAT
        folder = self.course / "submitted" / student / CHAPTER
        folder.mkdir(parents=True)
        (folder / f"{CHAPTER}.ipynb").write_text(json.dumps(nb))
        (folder / "timestamp.txt").write_text("2026-03-01 12:00:00 UTC")  # as the guide asks

    def solve_fetched(self) -> None:
        """The student does the exercise: the reference solution pasted into the fetched notebook."""
        path = self.home / CHAPTER / f"{CHAPTER}.ipynb"
        solution = json.loads((ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb").read_text())
        path.write_text(json.dumps(submission(json.loads(path.read_text()), solution, CHAPTER, "solved")))

    def scores(self) -> dict[str, tuple[float, float]]:
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}") as gb:
            return {s.student.id: (s.score, s.max_score) for s in gb.assignment_submissions(CHAPTER)}

    def max_score(self) -> float:
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}") as gb:
            return gb.find_assignment(CHAPTER).max_score


#: the term, in order; every command of the guide appears here (checked below)
SCENARIO = [
    "source .venv/bin/activate",
    "make exercises",
    "nbgrader generate_assignment linear --force",
    "nbgrader release_assignment linear",
    "nbgrader fetch_assignment linear",
    "solve",  # the student's work
    "nbgrader submit linear",
    "nbgrader collect linear",
    "nbgrader autograde linear",
    "nbgrader generate_feedback linear",
    "nbgrader release_feedback linear",  # every submission so far came through the exchange
    "nbgrader fetch_feedback linear",
    "hand in",  # two late submissions from a learning platform
    "nbgrader autograde linear",  # grades the new ones
    "scores after autograde",
    "nbgrader generate_feedback linear",
    "nbgrader release_feedback linear --student STUDENT",  # a mixed class: one by one
    "nbgrader export --to grades.csv",
    "python -m autograder list",
    "python -m autograder grade solutions/linear/linear.ipynb",
    "python -m autograder grade submitted/*/linear/linear.ipynb --csv layers-grades.csv",
    "python -m autograder grade submitted/STUDENT/linear/linear.ipynb --suite hidden --seed 1234",
    "python -m autograder grade submitted/STUDENT/linear/linear.ipynb --layer Linear --parts forward backward",
    "python -m autograder autograde linear --workers 2",
    "python -m autograder autograde linear --student STUDENT --force",
    "AUTOGRADER_DEVICE=cuda nbgrader autograde linear --force",
    "python -m autograder grade submitted/*/linear/linear.ipynb --device cuda",
    "python tools/points.py solutions/linear/linear.ipynb",
    "python tools/points.py solutions/linear/linear.ipynb linear_linear_forward=3 linear_linear_backward=3",
    "make exercises",
]


def play(base: Path) -> Term:
    """The scenario, command by command, in a scratch course under `base`."""
    t = Term(base)
    exchange_student = None
    for step in SCENARIO:
        if step == "solve":
            t.solve_fetched()
        elif step == "hand in":
            t.hand_in("bob", "stub")
            t.hand_in("mallory", "cheat")
        elif step == "scores after autograde":
            t.first_scores = t.scores()
        elif "STUDENT" in step:
            # the guide's example student is alice: here, whoever submitted through the exchange
            t.results[step.replace("STUDENT", "alice")] = [t.run(step.replace("STUDENT", exchange_student))]
        else:
            t.run(step)
        if step == "python -m autograder autograde linear --workers 2":
            t.class_scores = t.scores()
        if step == "nbgrader collect linear":
            exchange_student = next(p.name for p in (t.course / "submitted").iterdir())
    t.exchange_student = exchange_student
    return t


def result(term: Term, command: str, run: int = 0) -> subprocess.CompletedProcess:
    return term.results[command][run]


def test_every_command_of_the_guide_is_in_the_scenario():
    """A command added to the guide must be run here; a command removed from it, dropped here."""
    actions = ("solve", "hand in", "scores after autograde")
    scenario = {s.replace("STUDENT", "alice") for s in SCENARIO if s not in actions}
    assert set(guide_commands()) == scenario


#: commands whose exit code is 1 by design: the class has an unsolved and a cheating notebook
FAILS_ON_PURPOSE = {"python -m autograder grade submitted/*/linear/linear.ipynb --csv layers-grades.csv",
                    "python -m autograder grade submitted/*/linear/linear.ipynb --device cuda"}


def check_every_command_runs(term):
    for command in guide_commands():
        for done in term.results[command]:
            expected = 1 if command in FAILS_ON_PURPOSE else 0
            assert done.returncode == expected, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def check_the_environment_provides_the_tools(term):
    done = term.run("source .venv/bin/activate && command -v nbgrader && python -c 'import autograder'")
    assert done.returncode == 0 and ".venv/bin/nbgrader" in done.stdout, done.stderr


def check_make_exercises_regenerates_what_is_committed(term):
    committed = json.loads((ROOT / "exercises" / CHAPTER / f"{CHAPTER}.ipynb").read_text())
    fresh = json.loads((term.course / "exercises" / CHAPTER / f"{CHAPTER}.ipynb").read_text())
    # the last `make exercises` ran after a change of points: compare sources, not metadata
    assert [c["source"] for c in fresh["cells"]] == [c["source"] for c in committed["cells"]]


def check_the_exchange_moves_the_notebook_both_ways(term):
    assert (term.exchange / "layers" / "outbound" / CHAPTER / f"{CHAPTER}.ipynb").is_file()
    assert (term.home / CHAPTER / f"{CHAPTER}.ipynb").is_file()
    assert (term.course / "submitted" / term.exchange_student / CHAPTER / f"{CHAPTER}.ipynb").is_file()
    fetched = list((term.home / CHAPTER / "feedback").rglob(f"{CHAPTER}.html"))
    assert fetched, "fetch_feedback brought no feedback page"


def check_autograde_scores_the_class_and_the_cheat_gets_nothing(term):
    """The guide's claim: redefining `check` in a solution cell changes nothing on the trusted path
    (the test cells are read, not run): the cheat's layer is the untouched stub, worth 0."""
    scores = term.first_scores
    top = scores[term.exchange_student][1]
    assert top > 0 and scores[term.exchange_student][0] == top, scores
    assert scores["bob"][0] == 0, scores
    assert scores["mallory"][0] == 0, scores


def check_feedback_hides_the_hidden_tests(term):
    for student in (term.exchange_student, "bob", "mallory"):
        page = html.unescape((term.course / "feedback" / student / CHAPTER / f"{CHAPTER}.html").read_text())
        assert "BEGIN HIDDEN TESTS" not in page and 'suite="hidden"' not in page


def check_export_has_a_row_per_student(term):
    with open(term.course / "grades.csv") as f:
        rows = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(f) if r["assignment"] == CHAPTER}
    assert rows == {s: v[0] for s, v in term.first_scores.items()}


def check_the_command_line_sees_through_the_cheat(term):
    """Regrading with the command line: the cheat's layer is the untouched stub, and fails."""
    with open(term.course / "layers-grades.csv") as f:
        rows = list(csv.DictReader(f))
    passed = {Path(r["notebook"]).parts[1]: r["passed"] == "True" for r in rows if r["suite"] == "public"}
    assert passed == {term.exchange_student: True, "bob": False, "mallory": False}


def check_the_command_line_reproduces_a_hidden_draw(term):
    done = result(term, "python -m autograder grade submitted/alice/linear/linear.ipynb --suite hidden --seed 1234")
    assert "hidden suite" in done.stdout and "seed 1234" in done.stdout, done.stdout
    assert "public suite" not in done.stdout
    listed = result(term, "python -m autograder list").stdout
    assert re.search(r"^linear\s+Linear$", listed, re.M), listed
    parts = result(term, "python -m autograder grade submitted/alice/linear/linear.ipynb --layer Linear "
                         "--parts forward backward").stdout
    assert "forward" in parts and "backward" in parts and "state" not in parts, parts


def check_the_class_command_gives_the_gradebook_nbgraders_grades(term):
    """`autograde --workers 2` regrades the class into the gradebook with the grades nbgrader gave, and
    writes the class report; `--student --force` regrades one student alone."""
    done = result(term, "python -m autograder autograde linear --workers 2")
    assert "graded 3 notebook(s)" in done.stdout, done.stdout + done.stderr
    assert (term.course / "autograded" / "linear-report.html").is_file()
    report = (term.course / "autograded" / "linear-report.md").read_text()
    assert "| Linear |" in report and "raised NotImplementedError" in report
    one = result(term, "python -m autograder autograde linear --student alice --force")
    assert "graded 1 notebook(s)" in one.stdout, one.stdout + one.stderr
    assert term.class_scores == term.first_scores


def check_the_device_reaches_the_grader(term):
    """AUTOGRADER_DEVICE is inherited by nbgrader's kernels; --device by the command line."""
    autograded = (term.course / "autograded" / "bob" / CHAPTER / f"{CHAPTER}.ipynb").read_text()
    assert f"public suite, {DEVICE}" in autograded
    done = result(term, "python -m autograder grade submitted/*/linear/linear.ipynb --device cuda")
    assert f"device {DEVICE}" in done.stdout


def check_points_change_and_reach_the_gradebook(term):
    listing = result(term, "python tools/points.py solutions/linear/linear.ipynb").stdout
    assert re.search(r"^linear_linear_forward\s+2$", listing, re.M) and re.search(r"^total\s+8$", listing, re.M)
    changed = result(term, "python tools/points.py solutions/linear/linear.ipynb linear_linear_forward=3 "
                           "linear_linear_backward=3").stdout
    assert re.search(r"^total\s+10$", changed, re.M), changed
    assert term.max_score() == 10  # `make exercises` after the change recorded the new maximum


def check_feedback_is_released_one_by_one_in_a_mixed_class(term):
    """The plain release_feedback needs collect's files for every submission; --student does not."""
    assert [done.returncode for done in term.results["nbgrader release_feedback linear"]] == [0]
    assert result(term, "nbgrader release_feedback linear --student alice").returncode == 0
    assert list((term.exchange / "layers" / "feedback").rglob("*.html"))


CHECKS = [
    check_every_command_runs,
    check_the_environment_provides_the_tools,
    check_make_exercises_regenerates_what_is_committed,
    check_the_exchange_moves_the_notebook_both_ways,
    check_autograde_scores_the_class_and_the_cheat_gets_nothing,
    check_feedback_hides_the_hidden_tests,
    check_export_has_a_row_per_student,
    check_the_command_line_sees_through_the_cheat,
    check_the_command_line_reproduces_a_hidden_draw,
    check_the_class_command_gives_the_gradebook_nbgraders_grades,
    check_the_device_reaches_the_grader,
    check_points_change_and_reach_the_gradebook,
    check_feedback_is_released_one_by_one_in_a_mixed_class,
]


def test_a_term_goes_as_the_guide_says(tmp_path):
    """One test, so that the scenario runs once even when pytest-xdist spreads tests over workers;
    every check runs and every failure is reported."""
    term = play(tmp_path)
    failures = []
    for check in CHECKS:
        try:
            check(term)
        except AssertionError as exc:
            failures.append(f"{check.__name__}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_points_tool_refuses_unknown_cells(tmp_path):
    nb = tmp_path / "linear.ipynb"
    shutil.copy(ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb", nb)
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "points.py"), str(nb), "linear_linear_nothing=3"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no graded cell" in done.stderr
    assert nb.read_bytes() == (ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb").read_bytes()
