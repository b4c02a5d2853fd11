"""The browser check finds what it claims to find, on a small fake site opened in real Chromium.

Without Chromium these tests skip (the check itself installs it when CI=true); the pure checks
on recorded pages run everywhere.
"""

from __future__ import annotations

import io
import shutil

import pytest

from tools import browser_check as bc

LOREM = ("A layer maps tensors to tensors, and this paragraph is long enough to count as the text of a "
         "page that a reader would see, so that the blank-page check has something to measure. ") * 3
SECRET = "self.weight = nn.Parameter(torch.empty(out_features, in_features))"


def html(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body><main><article>{body}" \
           "</article></main></body></html>"


def png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (60, 40), "white")
    ImageDraw.Draw(image).rectangle((10, 10, 50, 30), fill="navy")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def formula(width_px: int, text: str = "y = x W + b") -> str:
    """A display formula as MathJax 3 leaves it: a block container around the typeset maths."""
    return (f"<mjx-container display='true' style='display:block; overflow-x:auto'>"
            f"<mjx-math style='display:inline-block; width:{width_px}px'>{text}</mjx-math></mjx-container>")


LITERAL_TEX = "L = s + output\\_padding"  # "\\_" inside \\text{}: MathJax shows the backslash
PAGES = {
    "book/good": html(f"<h1>Good</h1><p>{LOREM}</p>{formula(300)}<figure><img src='figure.png'></figure>"),
    "book/widemath": html(f"<p>{LOREM}</p>{formula(4000)}<img src='figure.png'>"),
    "book/backslash": html(f"<p>{LOREM}</p>{formula(300, LITERAL_TEX)}<img src='figure.png'>"),
    "book/rawtex": html(f"<p>{LOREM}</p><p>The loss is <span class='math'>\\(\\frac{{1}}{{n}}\\)</span>.</p>"
                        "<img src='figure.png'>"),
    "book/cdn": html(f"<p>{LOREM}</p><img src='figure.png'>",
                     head="<script src='http://127.0.0.1:9/mathjax/tex-chtml.js'></script>"
                          "<link rel='stylesheet' href='http://127.0.0.1:9/fonts.css'>"),
    "book/broken": html(f"<p>{LOREM}</p><img src='missing.png'>"),
    "book/blank": html(""),
    "book/nofigure": html(f"<p>{LOREM}</p>"),
    "book/leak": html(f"<p>{LOREM}</p><img src='figure.png'><pre>{SECRET}</pre>"),
}


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return bc.find_chromium(install=False)
    except bc.Skip as why:
        pytest.skip(str(why))


@pytest.fixture(scope="module")
def findings(chromium, tmp_path_factory) -> dict[str, list[str]]:
    site = tmp_path_factory.mktemp("site")
    (site / "book").mkdir()
    (site / "book" / "figure.png").write_bytes(png())
    for name, text in PAGES.items():
        (site / f"{name}.html").write_text(text)
    problems = bc.check_pages(site, [*PAGES, "book/absent"], chromium, secrets={SECRET}, budget_ms=2000)
    return {name: [p for p in problems if p.startswith(f"{name}:")] for name in [*PAGES, "book/absent"]}


def test_a_good_page_passes(findings):
    assert findings["book/good"] == []


@pytest.mark.parametrize("page, words", [
    ("book/rawtex", "raw TeX left after the scripts ran"),
    ("book/rawtex", "math element(s) not typeset"),
    ("book/cdn", "asks the network for http://127.0.0.1:9/mathjax/tex-chtml.js"),
    ("book/cdn", "asks the network for http://127.0.0.1:9/fonts.css"),
    ("book/widemath", "1+ formula(s) wider than the text column, e.g. 'y = x W + b'"),
    ("book/backslash", "1+ formula(s) show a backslash, e.g. 'L = s + output\\_padding'"),
    ("book/broken", "image fails to load"),
    ("book/blank", "renders blank"),
    ("book/nofigure", "a chapter page without a figure"),
    ("book/leak", "shows solution code"),
    ("book/absent", "missing"),
])
def test_a_bad_page_is_reported(findings, page, words):
    assert any(words in p for p in findings[page]), findings[page]


def test_a_blank_screenshot_is_blank():
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (100, 80), "white").save(out, format="PNG")
    assert bc.blank(out.getvalue())
    assert not bc.blank(png())


def test_tex_in_code_is_not_raw_tex():
    page = bc.Page("book/x", "file:///x", probe={"text": LOREM, "bodyText": LOREM, "prose": LOREM, "images": [
        {"src": "f.png", "ok": True, "inArticle": True, "width": 10}]})
    assert bc.problems_of(page, set()) == []
    page.probe["prose"] = LOREM + " $$ y = x $$"
    assert any("raw TeX" in p for p in bc.problems_of(page, set()))


def test_without_chromium_the_check_skips_unless_required(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(bc, "CANDIDATES", ("no-such-browser",))
    monkeypatch.delenv("CI", raising=False)
    (tmp_path / "index.html").write_text("<html></html>")
    assert bc.main([str(tmp_path)]) == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert bc.main([str(tmp_path), "--require"]) == 1
