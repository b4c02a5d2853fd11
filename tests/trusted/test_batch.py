"""Grading a whole class with `python -m autograder autograde`: the same grades as the trusted
`nbgrader autograde`, written by nbgrader itself; resumable after `kill -9`; on a real Dask
`LocalCluster` that loses a worker mid-batch; and a class report an instructor can read."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_nbgrader import BREAK, BREAK_LAYER, submission

pytestmark = [pytest.mark.sandbox, pytest.mark.nbgrader]

SEED = 11
LIMITS = "call=3,cell=4,budget=20"
BIN = Path(sys.executable).parent
#: the class: who hands in what
CLASS = {"ada": "solved", "ben": "stub", "cy": "wrong", "dee": "solved", "eve": "flagged", "fay": "endless",
         "gus": "bias_ignored", "hal": "bias_ignored"}
ENDLESS = "\nclass Linear(Linear):\n    def forward(self, input):\n        while True:\n            pass\n"
FLAGGED = "\nimport gc\n"
BIAS_IGNORED = "\nclass Linear(Linear):\n    def forward(self, input):\n        return input @ self.weight.T\n"


def hand_in(course: Path, kind: str, student: str) -> None:
    released = json.loads((course / "exercises" / "linear" / "linear.ipynb").read_text())
    solution = json.loads((ROOT / "solutions" / "linear" / "linear.ipynb").read_text())
    nb = submission(released, solution, "linear", "stub" if kind == "stub" else "solved")
    cell = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")][-1]
    extra = {"wrong": BREAK + BREAK_LAYER.format(name="Linear"), "flagged": FLAGGED, "endless": ENDLESS,
             "bias_ignored": BIAS_IGNORED}.get(kind, "")
    cell["source"] = "".join(cell["source"]) + extra
    folder = course / "submitted" / student / "linear"
    folder.mkdir(parents=True)
    (folder / "linear.ipynb").write_text(json.dumps(nb))
    (folder / "timestamp.txt").write_text("2026-03-01 12:00:00 UTC")


def env_for(course: Path) -> dict:
    return {**os.environ, "HOME": str(course), "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
            "AUTOGRADER_LIMITS": LIMITS}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A course with the assignment generated and the class's submissions, to copy per test."""
    course = tmp_path_factory.mktemp("batch") / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    with open(course / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.TrustedGrading.seed = {SEED}\nc.TrustedGrading.limits = {LIMITS!r}\n")
    shutil.copytree(ROOT / "solutions" / "linear", course / "solutions" / "linear")
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", "linear", "--force", "--log-level=WARN"],
                   cwd=course, env=env_for(course), check=True, capture_output=True, timeout=600)
    for student, kind in CLASS.items():
        hand_in(course, kind, student)
    return course


def copy_of(template: Path, tmp_path: Path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(template, course)
    return course


def scores(course: Path) -> dict[str, dict[str, float]]:
    """Each student's score per graded cell, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s: {g.name: g.score for g in gb.find_submission_notebook("linear", "linear", s).grades}
                for s in CLASS}


def autograde(course: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "autograde", "linear", *args], cwd=course,
                          env=env_for(course), capture_output=True, text=True, timeout=timeout)


def graded_entries(course: Path) -> list[dict]:
    path = course / "autograded" / "linear-journal.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return [e for e in lines if e.get("kind") == "graded"]


@pytest.fixture(scope="module")
def by_nbgrader(template, tmp_path_factory):
    """The reference: the trusted `nbgrader autograde` on the same class, same seed."""
    course = copy_of(template, tmp_path_factory.mktemp("nbgrader"))
    done = subprocess.run([str(BIN / "nbgrader"), "autograde", "linear", "--log-level=WARN"], cwd=course,
                          env=env_for(course), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    return scores(course)


def test_the_parallel_command_gives_nbgraders_grades_and_nbgrader_reads_them(template, by_nbgrader, tmp_path):
    course = copy_of(template, tmp_path)
    done = autograde(course, "--workers", "2", "--seed", str(SEED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"graded {len(CLASS)} notebook(s)" in done.stdout
    assert scores(course) == by_nbgrader
    assert by_nbgrader["ada"]["linear_linear_forward"] == 2 and by_nbgrader["ben"]["linear_linear_state"] == 0
    for student in CLASS:  # written as nbgrader autograde writes them
        folder = course / "autograded" / student / "linear"
        assert (folder / "linear.ipynb").is_file() and (folder / "timestamp.txt").is_file()
    env = env_for(course)
    for command in (["generate_feedback", "linear"], ["export", "--to", "grades.csv"]):
        run = subprocess.run([str(BIN / "nbgrader"), *command, "--log-level=WARN"], cwd=course, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
    assert (course / "feedback" / "cy" / "linear" / "linear.html").is_file()
    assert len((course / "grades.csv").read_text().splitlines()) == len(CLASS) + 1

    # a second run grades nothing that is graded and unchanged; a changed notebook is graded again
    again = autograde(course, "--workers", "2", "--seed", str(SEED))
    assert f"graded 0 notebook(s), {len(CLASS)} already graded" in again.stdout, again.stdout
    shutil.copy(course / "submitted" / "ada" / "linear" / "linear.ipynb",
                course / "submitted" / "ben" / "linear" / "linear.ipynb")
    third = autograde(course, "--workers", "1", "--seed", str(SEED))
    assert f"graded 1 notebook(s), {len(CLASS) - 1} already graded" in third.stdout, third.stdout
    assert scores(course)["ben"] == by_nbgrader["ada"]

    # the class report
    report = (course / "autograded" / "linear-report.md").read_text()
    assert "| Linear |" in report and "scores.png" in report
    assert "forward: the bias is left out" in report and "gus, hal" in report
    assert "**eve**: flagged for review: import of gc" in report
    assert "**fay** (timeout)" in report
    page = (course / "autograded" / "linear-report.html").read_text()
    assert "data:image/png;base64," in page and "the bias is left out" in page


def test_a_batch_killed_with_kill_9_resumes_and_ends_as_an_uninterrupted_run(template, by_nbgrader, tmp_path):
    course = copy_of(template, tmp_path)
    batch = subprocess.Popen([sys.executable, "-m", "autograder", "autograde", "linear", "--workers", "1",
                              "--quiet"], cwd=course, env=env_for(course), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(graded_entries(course)) < 2 and time.monotonic() < deadline and batch.poll() is None:
            time.sleep(0.1)
        assert batch.poll() is None, "the batch ended before it could be killed"
        os.kill(batch.pid, signal.SIGKILL)  # the coordinator only, as an instructor's crash would
        batch.wait()
        first = graded_entries(course)
        assert 2 <= len(first) < len(CLASS)
    finally:
        batch.stdout.close()
        batch.stderr.close()
        time.sleep(2)  # the orphaned workers notice their coordinator is gone
        try:
            os.killpg(batch.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done = autograde(course, "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"graded {len(CLASS) - len(first)} notebook(s), {len(first)} already graded" in done.stdout, done.stdout
    entries = graded_entries(course)
    assert sorted(e["student"] for e in entries) == sorted(CLASS)  # each exactly once
    resumed = scores(course)

    uninterrupted = copy_of(template, tmp_path / "uninterrupted")
    journal = course / "autograded" / "linear-journal.jsonl"
    base = next(json.loads(line) for line in journal.read_text().splitlines() if '"batch"' in line)
    (uninterrupted / "autograded").mkdir()
    (uninterrupted / "autograded" / "linear-journal.jsonl").write_text(json.dumps(base) + "\n")  # same base seed
    assert autograde(uninterrupted, "--workers", "2").returncode == 0
    assert resumed == scores(uninterrupted)

    # a regrade of one student with the seed the journal recorded reproduces the score
    recorded = next(e for e in entries if e["student"] == "gus")
    regrade = autograde(course, "--student", "gus", "--force", "--seed", str(recorded["seed"]))
    assert "graded 1 notebook(s)" in regrade.stdout
    assert scores(course)["gus"] == resumed["gus"]


def test_a_dask_cluster_that_loses_a_worker_grades_everyone_once(template, by_nbgrader, tmp_path):
    """`--scheduler` sends the class to a real LocalCluster of 2 workers, one of which is killed as soon
    as grading has started: its submissions are graded elsewhere, nothing lost, nothing twice."""
    from distributed import Client, LocalCluster

    course = copy_of(template, tmp_path)
    os.environ["AUTOGRADER_LIMITS"] = LIMITS  # the workers' environment
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
            killed = []

            def kill_one_when_grading_started():
                deadline = time.monotonic() + 600
                while not graded_entries(course) and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

            killer = threading.Thread(target=kill_one_when_grading_started)
            killer.start()
            try:
                done = autograde(course, "--scheduler", cluster.scheduler_address, "--seed", str(SEED), "--quiet")
            finally:
                killer.join()
    finally:
        os.environ.pop("AUTOGRADER_LIMITS", None)
    assert killed and done.returncode == 0, done.stdout + done.stderr
    assert f"graded {len(CLASS)} notebook(s)" in done.stdout and cluster.scheduler_address in done.stdout
    entries = graded_entries(course)
    assert sorted(e["student"] for e in entries) == sorted(CLASS)  # nothing lost, nothing twice
    assert len({e["worker"] for e in entries}) >= 2  # the batch was spread over the workers
    assert scores(course) == by_nbgrader
