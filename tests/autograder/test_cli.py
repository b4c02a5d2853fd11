"""The instructor's command line, run as a real subprocess."""

import csv
import subprocess
import sys

from tests.conftest import ROOT


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_list_names_every_chapter_and_layer():
    done = cli("list")
    assert done.returncode == 0
    assert done.stdout.splitlines()[0].split() == ["linear", "Linear"]


def test_grading_the_solution_passes_and_writes_a_csv(tmp_path):
    out = tmp_path / "grades.csv"
    done = cli("grade", "solutions/linear/linear.ipynb", "--csv", str(out), "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Linear: passed" in done.stdout and "hidden suite, cpu, seed 3" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("2/2 layer grades passed (10/10 points")
    rows = list(csv.DictReader(out.open()))
    assert [(r["layer"], r["suite"], r["passed"]) for r in rows] == [("Linear", "public", "True"),
                                                                     ("Linear", "hidden", "True")]


def test_grading_the_untouched_exercise_fails_with_exit_code_1():
    done = cli("grade", "exercises/linear/linear.ipynb", "--suite", "public", "--parts", "forward")
    assert done.returncode == 1
    assert "raised NotImplementedError" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("0/1 layer grades passed")


def test_a_notebook_without_the_class_is_reported(tmp_path):
    nb = tmp_path / "linear.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    done = cli("grade", str(nb), "--suite", "public")
    assert done.returncode == 1 and "defines no class named Linear" in done.stdout


def test_an_unknown_chapter_is_a_usage_error(tmp_path):
    nb = tmp_path / "mystery.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    done = cli("grade", str(nb))
    assert done.returncode == 2 and "unknown chapter 'mystery'" in done.stderr
