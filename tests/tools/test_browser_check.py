"""The browser check finds what it claims to find, on a small fake site opened in real Chromium.

Without Chromium these tests skip (the check itself installs it when CI=true); the pure checks
on recorded pages run everywhere.
"""

from __future__ import annotations

import io
import json
import shutil
import sys

import pytest

from tests.conftest import ROOT
from tools import browser_check as bc

sys.path.insert(0, str(ROOT / "book"))  # the book's own player and explorers, as the pages import them

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


# --- players and explorers: the book's own scripts, served from the fake site's _static ------------

STATIC = "<link rel='stylesheet' href='../_static/layers.css'><script src='../_static/layers-anim.js'></script>" \
         "<script src='../_static/layers-explore.js'></script>"


def working_player() -> str:
    """A three-frame animation through the book's own player (book/_anim.py)."""
    import matplotlib

    matplotlib.use("agg")
    from _anim import player
    from matplotlib import pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(2, 1.5))
    anim = FuncAnimation(fig, lambda i: ax.bar([0], [i + 1], color="navy"), frames=3, interval=200)
    return player(anim, still=0, alt="a growing bar")._repr_html_()


def player_markup(frames: list[str], still: int = 0) -> str:
    """A player as book/_anim.py writes it, with these frames (data URIs or addresses)."""
    data = {"frames": ["" if i == still else f for i, f in enumerate(frames)], "delays": [200] * len(frames),
            "still": still}
    return (f"<div class='layers-anim'><img class='layers-anim-frame' src='{frames[still]}' alt='frozen'>"
            f"<script type='application/json' class='layers-anim-data'>{json.dumps(data)}</script></div>")


def data_uri(png_bytes: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes).decode()


#: an explorer of its own: its slider redraws the view, its select only updates its own label
DEAD_EXPLORER = """
<div data-explorer='fake'><input type='range' name='size' min='1' max='5' value='2'>
<select name='colour'><option>red</option><option>blue</option></select><span class='label'></span>
<div data-view>size 2</div></div>
<script>
  const e = document.querySelector("[data-explorer=fake]"), view = e.querySelector("[data-view]");
  const label = e.querySelector(".label");
  e.querySelector("input").addEventListener("input", ev => { view.textContent = "size " + ev.target.value; });
  e.querySelector("select").addEventListener("change", ev => { label.textContent = ev.target.value; });
  e.dataset.ready = "true";
</script>"""

#: a player that is set up but whose play button does nothing
BROKEN_PLAYER = """
<div class='layers-anim' data-ready='true'><img class='layers-anim-frame' src='figure.png' alt='broken'>
<button data-action='play'>play</button></div>"""


def motion_pages() -> dict[str, str]:
    from _explore import attention_explorer, conv_explorer
    from torch import manual_seed, nn, randn

    manual_seed(0)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    attention = attention_explorer(mha, randn(1, 3, 4), ["a", "b", "c"])._repr_html_()
    same = data_uri(png())
    return {
        "book/animated": html(f"<p>{LOREM}</p>{working_player()}{conv_explorer(n=5, k=3, s=2)._repr_html_()}"
                              f"{attention}", head=STATIC),
        "book/noanimation": html(f"<p>{LOREM}</p><img src='figure.png'>", head=STATIC),
        "book/notsetup": html(f"<p>{LOREM}</p>{player_markup([same, same])}"),          # no script
        "book/frozen": html(f"<p>{LOREM}</p>{player_markup([same, same, same])}", head=STATIC),
        "book/brokenplayer": html(f"<p>{LOREM}</p>{BROKEN_PLAYER}", head=STATIC),
        "book/fetchonplay": html(f"<p>{LOREM}</p>{player_markup([same, 'http://127.0.0.1:9/frame2.png'])}",
                                 head=STATIC),
        "book/deadcontrol": html(f"<p>{LOREM}</p><img src='figure.png'>{DEAD_EXPLORER}", head=STATIC),
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
    shutil.copytree(ROOT / "_static", site / "_static")
    pages = {**PAGES, **motion_pages()}
    for name, text in pages.items():
        (site / f"{name}.html").write_text(text)
    animated = {"book/animated", "book/noanimation", "book/notsetup", "book/frozen", "book/brokenplayer"}
    problems = bc.check_pages(site, [*pages, "book/absent"], chromium, secrets={SECRET}, budget_ms=2000,
                              animated=animated)
    return {name: [p for p in problems if p.startswith(f"{name}:")] for name in [*pages, "book/absent"]}


def test_a_good_page_passes(findings):
    assert findings["book/good"] == []


def test_a_page_with_a_working_player_and_explorers_passes(findings):
    """The book's own player advances when played, and every control of both explorers redraws."""
    assert findings["book/animated"] == []


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
    ("book/noanimation", "a layer chapter without an animation player"),
    ("book/notsetup", "animation 1 ('frozen'): the player is not set up (its script did not run)"),
    ("book/frozen", "animation 1 ('frozen'): the player does not advance when played"),
    ("book/brokenplayer", "animation 1 ('broken'): the player does not advance when played"),
    ("book/fetchonplay", "asks the network for http://127.0.0.1:9/frame2.png"),
    ("book/deadcontrol", "explorer 'fake': its control 'colour' changes nothing"),
])
def test_a_bad_page_is_reported(findings, page, words):
    assert any(words in p for p in findings[page]), findings[page]


def test_a_live_control_is_not_reported(findings):
    """Only the dead control of an explorer is named, not the slider that redraws it."""
    assert [p for p in findings["book/deadcontrol"] if "changes nothing" in p] == [
        "book/deadcontrol: explorer 'fake': its control 'colour' changes nothing"]


def test_a_heavy_page_is_reported(tmp_path):
    """A page is weighed with every local file it loaded, each once, and its own part apart (not
    the files under _static/ that every page shares); over 3 MB in all is a problem."""
    (tmp_path / "_static").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "page.html").write_bytes(b"x" * 1000)
    (tmp_path / "book" / "frame.png").write_bytes(b"z" * 500)
    (tmp_path / "_static" / "theme.js").write_bytes(b"y" * 2_500_000)
    requests = [f"file://{tmp_path}/_static/theme.js?v=1", f"file://{tmp_path}/_static/theme.js",
                f"file://{tmp_path}/book/page.html", f"file://{tmp_path}/book/frame.png", "data:image/png;base64,AAAA"]
    assert bc.weight_of(tmp_path / "book" / "page.html", requests, tmp_path) == (2_501_500, 1500)
    page = bc.Page("book/x", "file:///x", probe={"text": LOREM, "bodyText": LOREM, "prose": LOREM, "images": [
        {"src": "f.png", "ok": True, "inArticle": True, "width": 10}]}, weight=2_900_000, own_weight=900_000)
    assert bc.problems_of(page, set()) == []
    page.weight = 3_200_000
    assert bc.problems_of(page, set()) == ["book/x: weighs 3.2 MB with everything it loaded (0.9 MB of its own: its "
                                           "HTML and images), more than 3 MB"]


def test_the_layer_chapters_are_the_part_called_layers():
    import yaml

    chapters = bc.layer_chapters(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert chapters == {f"book/{c}" for c in ("linear", "conv", "conv_transpose", "pooling", "normalization",
                                              "dropout", "embedding", "recurrent", "transformer", "activations",
                                              "flatten")}


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
