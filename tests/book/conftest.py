"""Fixtures for the book's own machinery (book/_anim.py, book/_explore.py and their scripts in
_static/): the modules imported as the pages import them, and pages opened in real Chromium."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools import browser_check as bc

sys.path.insert(0, str(ROOT / "book"))  # `import _anim`, as the pages do (they run with book/ as cwd)

HEAD = ("<meta charset='utf-8'><link rel='stylesheet' href='_static/layers.css'>"
        "<script src='_static/layers-anim.js'></script><script src='_static/layers-explore.js'></script>")


@pytest.fixture(scope="session")
def browser() -> bc.Browser:
    try:
        executable = bc.find_chromium(install=False)
    except bc.Skip as why:
        pytest.skip(str(why))
    with tempfile.TemporaryDirectory(prefix="book-tests-") as profile:
        browser = bc.Browser(executable, Path(profile))
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, tmp_path) -> Callable[[str], bc.Tab]:
    """Open an HTML body in a page that loads the book's scripts and styles from a copy of _static."""
    shutil.copytree(ROOT / "_static", tmp_path / "_static")
    tabs = []

    def opener(body: str) -> bc.Tab:
        page = tmp_path / f"page{len(tabs)}.html"
        page.write_text(f"<!doctype html><html><head>{HEAD}</head><body><main><article style='width: 760px'>"
                        f"{body}</article></main></body></html>")
        tabs.append(bc.Tab(browser, page.as_uri(), 1000))
        return tabs[-1]

    yield opener
    for tab in tabs:
        tab.close()
