"""The animation player: every frame rendered once, one size, a still frame without JavaScript,
nothing fetched, and controls that step through the frames in Chromium."""

from __future__ import annotations

import base64
import io
import json
import re

import matplotlib

matplotlib.use("agg")

import pytest  # noqa: E402
from _anim import player  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import ROOT  # noqa: E402


def growing_bar(frames: int = 4, interval: int = 300) -> FuncAnimation:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set(xlim=(-1, 1), ylim=(0, frames))
    ax.axis("off")                                     # white all round: there is a border to crop

    def draw(i):
        ax.bar([0], [i + 1], color="navy")
        ax.set_title(f"frame {i}")

    return FuncAnimation(fig, draw, frames=frames, interval=interval)


def data_of(html: str) -> dict:
    return json.loads(re.search(r'class="layers-anim-data">(.*?)</script>', html).group(1))


def image(src: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(src.removeprefix("data:image/png;base64,"))))


def test_every_frame_is_rendered_once_at_one_size():
    shown = player(growing_bar(5), alt="a bar")
    assert len(shown.frames) == 5 and len(set(shown.frames)) == 5
    sizes = {image(f).size for f in shown.frames}
    assert sizes == {shown.size}, "the frames share one size (cropped alike)"
    assert shown.size[0] < 3 * 90 and shown.size[1] < 2 * 90, "the white border is cropped"


def test_the_figure_is_closed_so_the_page_shows_only_the_player():
    before = set(plt.get_fignums())
    player(growing_bar())
    assert set(plt.get_fignums()) == before


def test_the_still_frame_is_a_plain_image_and_is_not_stored_twice():
    shown = player(growing_bar(4), still=1, alt="a <bar>")
    html = shown._repr_html_()
    img = re.search(r'<img class="layers-anim-frame" src="([^"]+)" alt="([^"]*)"', html)
    assert img.group(1) == shown.frames[1] and img.group(2) == "a &lt;bar&gt;"
    data = data_of(html)
    assert data["still"] == 1 and data["frames"][1] == "" and data["frames"][2] == shown.frames[2]


def test_the_last_frame_is_the_default_still_and_holds_add_time():
    shown = player(growing_bar(4, interval=250), hold={-1: 1000, 0: 100})
    assert shown.still == 3
    assert shown.delays == [350, 250, 250, 1250]


def test_nothing_is_fetched_from_anywhere():
    html = player(growing_bar())._repr_html_()
    assert not re.search(r"(https?:)?//", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html))


def test_a_frame_is_a_few_kilobytes():
    shown = player(growing_bar(6))
    assert shown.nbytes < 6 * 12_000, shown.nbytes


@pytest.fixture
def tab(open_page):
    return open_page(player(growing_bar(4), still=0, alt="bar")._repr_html_())


def click(tab, action: str) -> str:
    tab.evaluate(f"document.querySelector('.layers-anim button[data-action={action}]').click()")
    return tab.evaluate("document.querySelector('.layers-anim').dataset.frame")


def test_the_controls_step_through_the_frames(tab):
    assert tab.evaluate("document.querySelector('.layers-anim').dataset.ready") == "true"
    assert click(tab, "forward") == "1"
    assert click(tab, "last") == "3"
    assert click(tab, "forward") == "3", "forward stops at the last frame"
    assert click(tab, "back") == "2"
    assert click(tab, "first") == "0"
    frames = data_of(tab.evaluate("document.querySelector('.layers-anim').outerHTML"))["frames"]
    tab.evaluate("(() => { const s = document.querySelector('.layers-anim-slider'); s.value = '2'; "
                 "s.dispatchEvent(new Event('input')); })()")
    assert tab.evaluate("document.querySelector('.layers-anim-frame').getAttribute('src')") == frames[2]
    assert tab.evaluate("document.querySelector('.layers-anim-counter').textContent") == "3 / 4"


def test_play_advances_loops_and_pauses(tab):
    click(tab, "play")
    tab.advance(650)                                   # two frames of 300 ms
    assert tab.evaluate("document.querySelector('.layers-anim').dataset.frame") == "2"
    tab.advance(600)                                   # past the last frame: back to the first
    assert tab.evaluate("document.querySelector('.layers-anim').dataset.frame") == "0"
    paused = click(tab, "play")
    tab.advance(1000)
    assert tab.evaluate("document.querySelector('.layers-anim').dataset.frame") == paused
    assert tab.evaluate("document.querySelector('.layers-anim').dataset.playing") == "false"


def test_without_javascript_the_still_frame_is_shown(browser, tmp_path):
    """With scripts off there are no controls, and the still frame is an ordinary loaded image."""
    shown = player(growing_bar(4), still=2, alt="bar")
    (tmp_path / "layers-anim.js").write_text((ROOT / "_static" / "layers-anim.js").read_text())  # there, but off
    page = tmp_path / "nojs.html"
    page.write_text(f"<!doctype html><html><head><script src='layers-anim.js'></script></head><body>"
                    f"{shown._repr_html_()}</body></html>")
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        browser.send("Page.enable", session=session)
        browser.send("Emulation.setScriptExecutionDisabled", {"value": True}, session=session)
        browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
        browser.event("Page.loadEventFired", session, timeout=30)
        found = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": """(() => {
            const img = document.querySelector("img.layers-anim-frame");
            return {controls: document.querySelectorAll(".layers-anim-controls").length, src: img.getAttribute("src"),
                    loaded: img.complete && img.naturalWidth > 0};
        })()"""}, session=session)["result"]["value"]
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
        browser.events = [e for e in browser.events if e.get("sessionId") != session]
    assert found == {"controls": 0, "src": shown.frames[2], "loaded": True}
