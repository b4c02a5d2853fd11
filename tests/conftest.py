"""Shared fixtures: the course root, the reference solutions and released exercises as classes."""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tools/ is importable from the tests

from autograder import grade  # noqa: E402
from autograder.notebook import load  # noqa: E402
from autograder.specs import CHAPTER_ORDER  # noqa: E402


def pytest_configure(config):
    for slug in CHAPTER_ORDER:
        config.addinivalue_line("markers", f"{slug}: the {slug} chapter (its specs, notebooks and page)")


def pytest_collection_modifyitems(items):
    """Tests in tests/chapters/test_<slug>.py carry the chapter's marker: `pytest -m conv`."""
    for item in items:
        stem = Path(str(item.fspath)).stem.removeprefix("test_")
        if stem in CHAPTER_ORDER:
            item.add_marker(getattr(pytest.mark, stem))
        slug = getattr(item, "callspec", None) and item.callspec.params.get("chapter")
        if slug in CHAPTER_ORDER:
            item.add_marker(getattr(pytest.mark, slug))


def assert_passes(name: str, layer: type, hidden_seeds: int, *, public_notes: bool = True,
                  hidden_notes: bool = True) -> None:
    """The layer passes the public suite and the hidden suite drawn with seeds 0..hidden_seeds-1;
    `*_notes=False` also demands a report without notes (no warnings, nothing to remark)."""
    report = grade(name, layer)
    assert report.passed and (public_notes or not report.notes), str(report)
    for seed in range(hidden_seeds):
        report = grade(name, layer, suite="hidden", seed=seed)
        assert report.passed and (hidden_notes or not report.notes), str(report)


def assert_fails_naming(report, part: str, *causes: str) -> None:
    """The report fails `part`, and one of its failure lines of that part contains every cause."""
    assert not report.passed and not report.part_passed(part), str(report)
    lines = [f for f in report.failures if f.startswith(f"{part}:")]
    assert any(all(c in line for c in causes) for line in lines), f"no {part} failure mentions {causes}:\n{report}"


@functools.cache
def solution_classes(chapter: str) -> dict[str, type]:
    loaded = load(ROOT / "solutions" / chapter / f"{chapter}.ipynb")
    assert not loaded.errors, loaded.errors
    return loaded.classes


@functools.cache
def exercise_classes(chapter: str) -> dict[str, type]:
    return load(ROOT / "exercises" / chapter / f"{chapter}.ipynb").classes


@pytest.fixture(scope="session")
def nbgrader_bin() -> Path:
    """The nbgrader of this environment (its alembic must be on PATH too)."""
    exe = Path(sys.executable).parent / "nbgrader"
    if not exe.exists():
        found = shutil.which("nbgrader")
        assert found, "nbgrader is not installed: run the tests through `make test`"
        exe = Path(found)
    return exe
