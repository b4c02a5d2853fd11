"""The sandbox changes nothing about a grade: every chapter's wrong layers (tests/chapters) fail
through the sandboxed path exactly as they do in this process, with the same report, and the
reference solutions pass. The layers are the test modules' own, imported inside a sandbox that
sees the repository's tests read-only (a submission's sandbox never sees it)."""

from __future__ import annotations

import importlib
import re

import pytest

from autograder import CHAPTERS, SPECS, grade
from autograder.remote import Session
from autograder.sandbox import Zygote
from autograder.specs import CHAPTER_ORDER
from tests.conftest import ROOT, assert_fails_naming

pytestmark = pytest.mark.sandbox


def numbers_masked(lines: list[str]) -> list[str]:
    """Failure lines with their numbers masked: a wrong layer that leaves its weight uninitialised
    shows whatever memory held, which differs from one process to the next."""
    return [re.sub(r"-?\b(\d+(\.\d+)?(e[+-]?\d+)?|nan|inf)\b", "#", line) for line in lines]


@pytest.fixture(scope="module")
def zygote():
    z = Zygote(binds=tuple(str(ROOT / d) for d in ("tests", "solutions", "tools")))
    yield z
    z.close()


def wrong_layers(chapter: str) -> list[tuple[str, object, str, tuple[str, ...], list]]:
    """(layer name, wrong layer, part, causes, path to the layer in its module) of each row of a
    chapter's WRONG list, whatever the row's layout (WRONG_LAYERS holds layers its rows only make)."""
    module = importlib.import_module(f"tests.chapters.test_{chapter}")
    rows = []
    for i, row in enumerate(module.WRONG):
        j = next(j for j, x in enumerate(row) if callable(x) and not isinstance(x, str))
        layer, path = (module.WRONG_LAYERS[i], ["WRONG_LAYERS", i]) if hasattr(module, "WRONG_LAYERS") else \
            (row[j], ["WRONG", i, j])
        name = next((x for x in row if isinstance(x, str) and x in SPECS), CHAPTERS[chapter][0])
        part = next(x for x in row if isinstance(x, str) and x in ("state", "shape", "forward", "backward", "rules"))
        causes = row[-1] if isinstance(row[-1], tuple) else (row[-1],)
        rows.append((name, layer, part, causes, path))
    return rows


@pytest.mark.parametrize("chapter", CHAPTER_ORDER)
def test_wrong_layers_fail_in_the_sandbox_exactly_as_in_process(chapter, zygote):
    rows = wrong_layers(chapter)
    aliases = {f"wrong_{i}": path for i, (*_, path) in enumerate(rows)}
    with Session(zygote, module=(str(ROOT), f"tests.chapters.test_{chapter}", aliases)) as session:
        session.start()  # the module imports in the sandbox (an error here fails the test)
        for i, (name, layer, part, causes, _) in enumerate(rows):
            remote = grade(name, session.side(f"wrong_{i}"), parts=[part])
            local = grade(name, layer, parts=[part])
            assert_fails_naming(remote, part, *causes)
            same = (remote.score, numbers_masked(remote.failures)) == (local.score, numbers_masked(local.failures))
            assert same, f"{name} row {i}:\n{remote}\n{local}"
        assert not session.faults, session.faults
