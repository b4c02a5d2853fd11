"""Opens every page of the built book in headless Chromium and checks it as a reader sees it.

    python tools/browser_check.py _build/html
    python tools/browser_check.py _build/html --screenshot docs/screenshot.png
    python tools/browser_check.py _build/html --animation-shot book/conv#2 docs/animation-conv.png

Each page listed in `_toc.yml` is loaded from disk (file://, as the README tells readers to open
the book) in one headless Chromium driven over the DevTools protocol, and its DOM is inspected
after a budget of virtual time has let its scripts (MathJax above all) run. The check fails
(exit 1, one line per problem) when a page:

- is missing, or renders blank (no text in its article, or a screenshot of one colour);
- still shows raw TeX (`\\(`, `$$`, `\\frac`, ...) outside code, or a MathJax error;
- has a display formula wider than the text column (cut off, or only readable by scrolling), or
  a formula that shows a backslash (TeX printed as typed, such as `\\_` inside `\\text{}`);
- is a chapter page without a figure, or has an image that does not load;
- shows solution code from solutions/ (the lines `tools/check_book.py` looks for statically);
- asks the network for anything: every request that is not file:, data: or blob: is reported,
  including those made while the checks below play the animations and drive the explorers;
- is a layer chapter (the part "Layers" of `_toc.yml`) without an animation player, or has a
  player that is not set up (its script did not run), holds a single frame, or shows the same
  image after it has been played for a few seconds of virtual time;
- has an explorer whose controls change nothing: each control of each explorer is moved in turn
  (a slider by one step, a select to its next option, a checkbox toggled) and what the explorer
  draws (its `[data-view]` elements) must change, then the control is put back;
- weighs more than 3 MB with everything it loads, uncompressed: its HTML and images (the
  animations' frames are in the HTML) and the files every page shares (the theme, MathJax, the
  book's scripts, under _static/), each file counted once. Its own part is reported apart. The
  shared part is about 1.9 MB because tools/sphinx_lean.py leaves out the theme's 1.5 MB icon
  script (the icons come from its web font) and MathJax's menu.

The players and explorers are the book's own (`_static/layers-anim.js`, `_static/layers-explore.js`);
what this check relies on: a player is a `.layers-anim` element that its script marks
`data-ready="true"`, with a `button[data-action=play]` and the frame on show in its
`img.layers-anim-frame`; an explorer is a `[data-explorer]` element, marked ready the same way,
whose controls are its `input` and `select` elements and whose drawing is in `[data-view]`.

Chromium is Debian's `chromium` (/usr/bin/chromium). When it is missing, the check installs it
with apt-get if the environment variable CI is "true", and otherwise skips with a message (exit
0; `--require` makes that a failure).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.check_book import solution_lines, toc_files  # noqa: E402

#: a headless browser with no network traffic of its own and no state kept between runs
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: schemes a page may load from without touching the network
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome", "devtools"}
#: pages that must show a figure: the chapters and the capstone
FIGURE_PAGES = re.compile(r"^book/(?!intro$|overview$|more_torch_nn$|instructor$)[a-z_]+$")
VIEWPORT = {"width": 1280, "height": 900}
#: the heaviest a page may be, its HTML and everything it loads together
MAX_PAGE_BYTES = 3_000_000
#: virtual time a player is given to show another frame once play is pressed
PLAY_MS = 4000
#: how long an animation plays from its first frame before --animation-shot takes its picture
SHOT_MS = 2500

#: runs in each page after its scripts: everything the checks need, as one JSON-able object
PROBE = r"""
(() => {
  const article = document.querySelector("main article, article.bd-article, main, [role=main]") || document.body;
  const skip = "pre, code, script, style, textarea, .highlight, .output, .cell_output, mjx-container, .MathJax";
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const prose = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement.closest(skip)) prose.push(node.textContent);
  }
  const images = [...document.images].map(img => ({
    src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
    inArticle: article.contains(img), width: img.naturalWidth,
  }));
  return {
    title: document.title,
    text: article.innerText || "",
    bodyText: document.body ? document.body.innerText : "",
    prose: prose.join(" "),
    images,
    mathElements: document.querySelectorAll(".math, span.math, div.math").length,
    renderedMath: document.querySelectorAll("mjx-container").length,
    mathErrors: [...document.querySelectorAll("mjx-merror, [data-mjx-error]")]
      .map(e => e.getAttribute("data-mjx-error") || e.textContent).slice(0, 3),
    // display formulas wider than the text column: cut off, or only readable by scrolling sideways
    wideMath: [...article.querySelectorAll("mjx-container[display=true]")]
      .filter(e => (e.querySelector("mjx-math") || e).getBoundingClientRect().width >
                   Math.min(e.getBoundingClientRect().width, article.getBoundingClientRect().width) + 1)
      .map(e => (e.querySelector("mjx-assistive-mml, math") || e).textContent.slice(0, 60)).slice(0, 3),
    // TeX shown as typed inside typeset maths (MathJax prints "\\_" in \\text{} literally)
    literalTeX: [...article.querySelectorAll("mjx-container")]
      .map(e => (e.querySelector("mjx-assistive-mml, math") || e).textContent)
      .filter(t => t.includes("\\")).map(t => t.slice(0, 60)).slice(0, 3),
    unrendered: [...document.querySelectorAll(".math")]
      .filter(e => !e.querySelector("mjx-container")).map(e => e.textContent.slice(0, 60)).slice(0, 3),
  };
})()
"""

#: the animation players before play is pressed (each is then pressed); ANIM_AFTER reads them again
ANIM_BEFORE = r"""
(() => {
  const players = [...document.querySelectorAll(".layers-anim")];
  window.__layersCheck = players.map(p => {
    const img = p.querySelector("img.layers-anim-frame");
    const play = p.querySelector("button[data-action=play]");
    let frames = null;                    // unknown unless the player carries the book's frame data
    try { frames = JSON.parse(p.querySelector("script.layers-anim-data").textContent).frames.length; } catch (e) {}
    const state = {ready: p.dataset.ready === "true", play: !!play, frames, src: img ? img.getAttribute("src") : null,
                   frame: p.dataset.frame, alt: img ? img.alt.slice(0, 60) : ""};
    if (state.ready && play && p.dataset.playing !== "true") play.click();
    return state;
  });
  return window.__layersCheck.map(({src, ...rest}) => rest);
})()
"""

ANIM_AFTER = r"""
(() => [...document.querySelectorAll(".layers-anim")].map((p, i) => {
  const before = (window.__layersCheck || [])[i] || {};
  const img = p.querySelector("img.layers-anim-frame");
  const src = img ? img.getAttribute("src") : null;
  return {advanced: src !== null && src !== before.src, frame: p.dataset.frame};
}))()
"""

#: helpers for driving the explorers, installed once per page: list the controls, move one, read the view
EXPLORER_TOOLS = r"""
(() => {
  const usable = c => !c.disabled && c.type !== "hidden" && c.getClientRects().length > 0;
  const name = (c, i) => c.name || c.id || c.getAttribute("aria-label") || c.dataset.control || `control ${i + 1}`;
  const explorers = () => [...document.querySelectorAll("[data-explorer]")];
  const controls = e => [...e.querySelectorAll("input, select")].filter(usable);
  const view = e => [...e.querySelectorAll("[data-view]")].map(v =>
    v.innerHTML + [...v.querySelectorAll("canvas")].map(c => c.toDataURL()).join("")).join("\u0000");
  function move(c) {                       // to a different value; false when the control has only one
    const old = c.type === "checkbox" || c.type === "radio" ? c.checked : c.value;
    if (c.tagName === "SELECT") {
      if (c.options.length < 2) return false;
      c.selectedIndex = (c.selectedIndex + 1) % c.options.length;
    } else if (c.type === "checkbox" || c.type === "radio") {
      c.checked = !c.checked;
    } else if (c.type === "range" || c.type === "number") {
      const step = Number(c.step) || 1, v = Number(c.value);
      const max = c.max === "" ? Infinity : Number(c.max), min = c.min === "" ? -Infinity : Number(c.min);
      if (v + step <= max) c.value = String(v + step);
      else if (v - step >= min) c.value = String(v - step);
      else return false;
    } else {
      return false;
    }
    c.dispatchEvent(new Event("input", {bubbles: true}));
    c.dispatchEvent(new Event("change", {bubbles: true}));
    return {old};
  }
  function restore(c, old) {
    if (c.type === "checkbox" || c.type === "radio") c.checked = old; else c.value = old;
    c.dispatchEvent(new Event("input", {bubbles: true}));
    c.dispatchEvent(new Event("change", {bubbles: true}));
  }
  window.__layersExplore = {
    list: () => explorers().map(e => ({name: e.dataset.explorer, ready: e.dataset.ready === "true",
                                       views: e.querySelectorAll("[data-view]").length,
                                       controls: controls(e).map(name)})),
    view: i => view(explorers()[i]),
    move: (i, j) => {
      const c = controls(explorers()[i])[j], m = c && move(c);
      if (m) window.__layersMoved = [c, m.old];
      return !!m;
    },
    restore: () => { if (window.__layersMoved) restore(...window.__layersMoved); window.__layersMoved = null; },
  };
  return true;
})()
"""

RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\(?:frac|sum|mathbf|mathcal|begin|end|left|right|sqrt|cdot|"
                     r"alpha|beta|sigma|varepsilon|operatorname|text|qquad|quad|partial|log|exp|max|underbrace)\b")


class Skip(Exception):
    """Chromium is not available and may not be installed."""


# --- finding (or installing) Chromium --------------------------------------------------------------

def find_chromium(install: bool) -> str:
    for name in CANDIDATES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    if not install:
        raise Skip("Chromium is not installed (Debian: `apt-get install chromium`); set CI=true to let this "
                   "check install it, or pass --require to make its absence an error")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and not shutil.which("sudo"):
        raise SystemExit("browser check: Chromium is missing and installing it needs root (apt-get), but this "
                         "user is not root and there is no sudo")
    print("browser check: installing Debian's chromium with apt-get", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return find_chromium(install=False)


# --- a minimal DevTools protocol client over --remote-debugging-pipe ---------------------------------

class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out).

    No websocket and no open port: the browser reads commands from fd 3 and writes replies and
    events to fd 4, each a JSON message ended by a NUL byte.
    """

    def __init__(self, executable: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes():  # in the child, before exec: the pipes become fds 3 and 4, kept across exec
            inbound, outbound = os.dup(to_browser_r), os.dup(from_browser_w)  # (either may be 3 or 4 now)
            os.dup2(inbound, 3, inheritable=True)
            os.dup2(outbound, 4, inheritable=True)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes, close_fds=False)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self.wait(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait(self, predicate, timeout: float) -> dict:
        """The first message matching `predicate`; events read meanwhile are kept in `events`."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if predicate(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium exited")
                self._buffer += chunk

    def event(self, method: str, session: str, timeout: float) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        return self.wait(lambda m: m.get("method") == method and m.get("sessionId") == session, timeout)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


# --- one page --------------------------------------------------------------------------------------------

@dataclass
class Page:
    """What a page showed: the probe's findings, its requests and a screenshot."""

    name: str
    url: str
    probe: dict = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    seconds: float = 0.0
    must_animate: bool = False                                  # a layer chapter: needs a player
    animations: list[dict] = field(default_factory=list)        # per player: set up, frames, advanced
    explorers: list[dict] = field(default_factory=list)         # per explorer: set up, dead controls
    weight: int = 0                                             # bytes: the HTML and all it loaded
    own_weight: int = 0                                         # of which not shared by every page
    animation_shot: bytes = b""                                 # a player in the middle of playing


class Tab:
    """One page in its own browser tab, its scripts run on virtual time (paused unless advanced)."""

    def __init__(self, browser: Browser, url: str, budget_ms: int):
        self.browser = browser
        self.target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": self.target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {**VIEWPORT, "deviceScaleFactor": 1, "mobile": False})
        # scripts run on virtual time: paused while the page loads, then a budget for its timers
        self.send("Emulation.setVirtualTimePolicy", {"policy": "pause"})
        self.send("Page.navigate", {"url": url})
        self.advance(budget_ms, policy="pauseIfNetworkFetchesPending")

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def advance(self, ms: int, policy: str = "advance") -> None:
        """Let the page's timers run for `ms` of virtual time, then pause it again."""
        self.send("Emulation.setVirtualTimePolicy", {"policy": policy, "budget": ms})
        self.browser.event("Emulation.virtualTimeBudgetExpired", self.session, timeout=120)

    def evaluate(self, expression: str, await_promise: bool = False, timeout: float = 60):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": await_promise}, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            why = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"script failed: {why}")
        return result.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def close(self) -> list[dict]:
        """Close the tab; return the events it sent (requests, failures, console messages)."""
        self.browser.send("Target.closeTarget", {"targetId": self.target})
        mine = [e for e in self.browser.events if e.get("sessionId") == self.session]
        self.browser.events = [e for e in self.browser.events if e.get("sessionId") != self.session]
        return mine


def play_animations(tab: Tab) -> list[dict]:
    """Each player's state, and whether its image changed once play was pressed (PLAY_MS later)."""
    before = tab.evaluate(ANIM_BEFORE) or []
    if not before:
        return []
    tab.advance(PLAY_MS)
    after = tab.evaluate(ANIM_AFTER) or []
    return [{**b, **(after[i] if i < len(after) else {"advanced": False})} for i, b in enumerate(before)]


def drive_explorers(tab: Tab) -> list[dict]:
    """Each explorer's state, and the controls that, moved, leave what it draws unchanged."""
    tab.evaluate(EXPLORER_TOOLS)
    found = tab.evaluate("__layersExplore.list()") or []
    for i, explorer in enumerate(found):
        explorer["dead"] = []
        if not explorer["ready"] or not explorer["views"]:
            continue
        for j, control in enumerate(explorer["controls"]):
            seen = tab.evaluate(f"__layersExplore.view({i})")
            if not tab.evaluate(f"__layersExplore.move({i}, {j})"):
                continue                                          # a control with a single value
            tab.advance(200)                                      # an explorer may draw on a timer
            if tab.evaluate(f"__layersExplore.view({i})") == seen:
                explorer["dead"].append(control)
            tab.evaluate("__layersExplore.restore()")
            tab.advance(200)
    return found


def weight_of(html_file: Path, requests: list[str], book: Path | None = None) -> tuple[int, int]:
    """Bytes of the page and of every local file it asked for (each counted once), and the part
    of them that is its own: all but the files under the book's _static/ and its search index,
    which every page loads alike. `book` is the built book's root (default: the page's folder)."""
    files = {html_file.resolve()}
    for url in requests:
        parts = urlsplit(url)
        if parts.scheme == "file":
            files.add(Path(unquote(parts.path)).resolve())
    book = (book or html_file.parent).resolve()
    shared = {f for f in files if f.is_relative_to(book / "_static") or f == book / "searchindex.js"}
    size = {f: f.stat().st_size for f in files if f.is_file()}
    return sum(size.values()), sum(n for f, n in size.items() if f not in shared)


def load(browser: Browser, name: str, url: str, budget_ms: int, shot_of_figure: bool = False,
         shot_of_animation: int | None = None, book: Path | None = None) -> Page:
    """Open the page, run the probes, play its animations and drive its explorers.

    shot_of_figure: screenshot its first figure; shot_of_animation: its n-th player (1-based), in
    the middle of playing.
    """
    page = Page(name, url)
    start = time.monotonic()
    tab = Tab(browser, url, budget_ms)
    try:
        # MathJax typesets asynchronously: wait for its promise when the page has one
        tab.evaluate("window.MathJax && MathJax.startup && MathJax.startup.promise "
                     "? MathJax.startup.promise.then(() => true) : true", await_promise=True)
        page.probe = tab.evaluate(PROBE) or {}
        if shot_of_figure:  # the first figure in view, a little below the page's title
            tab.evaluate("(() => { const f = document.querySelector('main figure, main img'); "
                         "if (f) window.scrollTo(0, f.getBoundingClientRect().top + scrollY - 330); })()")
            page.screenshot = tab.screenshot()
        page.animations = play_animations(tab)
        page.explorers = drive_explorers(tab)
        if shot_of_animation:  # the player in the middle of the view, played from its start for SHOT_MS
            tab.evaluate(f"(() => {{ const p = document.querySelectorAll('.layers-anim')[{shot_of_animation - 1}]; "
                         "if (!p) return; p.closest('figure, .layers-anim').scrollIntoView({block: 'center'}); "
                         "p.querySelector('button[data-action=first]').click(); "
                         "p.querySelector('button[data-action=play]').click(); })()")
            tab.advance(SHOT_MS)
            page.animation_shot = tab.screenshot()
        if not page.screenshot:
            page.screenshot = tab.screenshot()
    finally:
        events = tab.close()
    for e in events:
        params = e.get("params", {})
        if e["method"] == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif e["method"] == "Network.loadingFailed" and not params.get("canceled"):
            page.failed.append(f"{params.get('type', 'resource')}: {params.get('errorText')}")
        elif e["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            page.console_errors.append(params["entry"].get("text", "")[:160])
    if urlsplit(url).scheme == "file":
        page.weight, page.own_weight = weight_of(Path(unquote(urlsplit(url).path)), page.requests, book)
    page.seconds = time.monotonic() - start
    return page


def blank(png: bytes) -> bool:
    """A screenshot of (almost) one colour: nothing rendered."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    return max(histogram) / sum(histogram) > 0.995


# --- the checks ----------------------------------------------------------------------------------------------

def problems_of(page: Page, secrets: set[str]) -> list[str]:
    p, out = page.probe, []
    if not p:
        return [f"{page.name}: the page could not be inspected"]
    if len(p.get("text", "").strip()) < 200:
        out.append(f"{page.name}: renders blank (only {len(p.get('text', '').strip())} characters of text)")
    if page.screenshot and blank(page.screenshot):
        out.append(f"{page.name}: renders blank (the screenshot is a single colour)")
    raw = RAW_TEX.search(p.get("prose", ""))
    if raw:
        context = p["prose"][max(0, raw.start() - 40): raw.end() + 40].replace("\n", " ")
        out.append(f"{page.name}: raw TeX left after the scripts ran: ...{context}...")
    if p.get("unrendered"):
        out.append(f"{page.name}: {len(p['unrendered'])}+ math element(s) not typeset, e.g. {p['unrendered'][0]!r}")
    if p.get("wideMath"):
        out.append(f"{page.name}: {len(p['wideMath'])}+ formula(s) wider than the text column, e.g. "
                   f"{p['wideMath'][0]!r}: break it over lines (aligned)")
    if p.get("literalTeX"):
        out.append(f"{page.name}: {len(p['literalTeX'])}+ formula(s) show a backslash, e.g. '{p['literalTeX'][0]}' "
                   "(inside \\text{} write _ rather than \\_)")
    if p.get("mathErrors"):
        out.append(f"{page.name}: MathJax error: {p['mathErrors'][0]}")
    for image in p.get("images", []):
        if not image["ok"]:
            out.append(f"{page.name}: image fails to load: {image['src']}")
    if FIGURE_PAGES.match(page.name) and not any(i["ok"] and i["inArticle"] for i in p.get("images", [])):
        out.append(f"{page.name}: a chapter page without a figure")
    text = p.get("bodyText", "")
    for line in sorted(secrets):
        if line in text:
            out.append(f"{page.name}: shows solution code: {line!r}")
    for url in page.requests:
        if urlsplit(url).scheme not in LOCAL_SCHEMES:
            out.append(f"{page.name}: asks the network for {url}")
    for failure in page.failed:
        out.append(f"{page.name}: a resource failed to load ({failure})")
    out += motion_problems(page)
    if page.weight > MAX_PAGE_BYTES:
        out.append(f"{page.name}: weighs {page.weight / 1e6:.1f} MB with everything it loaded "
                   f"({page.own_weight / 1e6:.1f} MB of its own: its HTML and images), more than "
                   f"{MAX_PAGE_BYTES / 1e6:.0f} MB")
    return out


def motion_problems(page: Page) -> list[str]:
    """What is wrong with the page's animation players and explorers."""
    out = []
    if page.must_animate and not page.animations:
        out.append(f"{page.name}: a layer chapter without an animation player")
    for n, a in enumerate(page.animations, 1):
        which = f"animation {n}" + (f" ({a['alt']!r})" if a.get("alt") else "")
        if not a.get("ready"):
            out.append(f"{page.name}: {which}: the player is not set up (its script did not run)")
        elif not a.get("play"):
            out.append(f"{page.name}: {which}: the player has no play button")
        elif a.get("frames") == 1:
            out.append(f"{page.name}: {which}: the player holds a single frame")
        elif not a.get("advanced"):
            out.append(f"{page.name}: {which}: the player does not advance when played "
                       f"(still frame {a.get('frame')} after {PLAY_MS / 1000:g} s)")
    for e in page.explorers:
        which = f"explorer {e['name']!r}"
        if not e.get("ready"):
            out.append(f"{page.name}: {which} is not set up (its script did not run)")
        elif not e.get("views"):
            out.append(f"{page.name}: {which} draws nothing (no [data-view] element)")
        elif not e.get("controls"):
            out.append(f"{page.name}: {which} has no controls")
        for control in e.get("dead", []):
            out.append(f"{page.name}: {which}: its control {control!r} changes nothing")
    return out


def check_pages(html_dir: Path, pages: list[str], executable: str, *, secrets: set[str], budget_ms: int = 10000,
                screenshot: Path | None = None, screenshot_page: str | None = None,
                animated: set[str] | frozenset[str] = frozenset(),
                animation_shots: dict[str, tuple[int, Path]] | None = None) -> list[str]:
    """Open each page (`book/linear` -> html_dir/book/linear.html); return the problems found.

    animated: the pages that must have an animation player; animation_shots: page -> (which
    player, 1-based; where to save a screenshot of it in the middle of playing).
    """
    animation_shots = animation_shots or {}
    problems = [f"{name}: missing ({name}.html was not built)" for name in pages
                if not (html_dir / f"{name}.html").is_file()]
    with tempfile.TemporaryDirectory(prefix="browser-check-") as profile:
        browser = Browser(executable, Path(profile))
        try:
            for name in [n for n in pages if (html_dir / f"{n}.html").is_file()]:
                url = (html_dir / f"{name}.html").resolve().as_uri()
                shot = animation_shots.get(name)
                try:
                    page = load(browser, name, url, budget_ms, shot_of_figure=name == screenshot_page,
                                shot_of_animation=shot[0] if shot else None, book=html_dir)
                except (TimeoutError, RuntimeError) as exc:
                    problems.append(f"{name}: could not be loaded: {exc}")
                    continue
                page.must_animate = name in animated
                found = problems_of(page, secrets)
                problems += found
                print(f"  {'ok ' if not found else 'BAD'} {name} ({page.seconds:.1f} s, "
                      f"{page.probe.get('renderedMath', 0)} formulas, {len(page.probe.get('images', []))} images, "
                      f"{len(page.animations)} animations, {len(page.explorers)} explorers, "
                      f"{len(page.requests)} requests, {page.own_weight / 1e6:.2f} MB of its own, "
                      f"{page.weight / 1e6:.2f} MB with the shared files)", flush=True)
                for target, data in [(screenshot if name == screenshot_page else None, page.screenshot),
                                     (shot[1] if shot else None, page.animation_shot)]:
                    if target:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
        finally:
            browser.close()
    return problems


def layer_chapters(toc: dict) -> set[str]:
    """The chapter pages of the part of _toc.yml captioned "Layers" (not their exercises)."""
    return {c["file"] for part in toc.get("parts", []) if part.get("caption") == "Layers"
            for c in part.get("chapters", [])}


def animation_shot(spec: str) -> tuple[str, int]:
    """`book/conv#2` -> ("book/conv", 2): a page and which of its players (the first by default)."""
    page, _, which = spec.partition("#")
    return page, int(which or 1)


def run(html_dir: Path, screenshot: Path | None, screenshot_page: str, budget_ms: int, install: bool,
        animation_shots: dict[str, tuple[int, Path]] | None = None) -> int:
    started = time.monotonic()
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = toc_files(toc)
    executable = find_chromium(install)
    problems = check_pages(html_dir, pages, executable, secrets=solution_lines(), budget_ms=budget_ms,
                           screenshot=screenshot, screenshot_page=screenshot_page, animated=layer_chapters(toc),
                           animation_shots=animation_shots)
    for line in problems:
        print(line)
    print(f"browser check: {len(pages)} pages of _toc.yml opened in {Path(executable).name}, "
          f"{len(problems)} problem(s), {time.monotonic() - started:.0f} s")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/browser_check.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", nargs="?", default=str(ROOT / "_build" / "html"), help="the built book's html folder")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of --page here (e.g. docs/screenshot.png)")
    parser.add_argument("--page", default="book/linear", help="the page to screenshot (a _toc.yml entry)")
    parser.add_argument("--animation-shot", nargs=2, action="append", default=[], metavar=("PAGE[#N]", "PNG"),
                        help="save a screenshot of the page's N-th animation (default 1) in the middle of playing")
    parser.add_argument("--budget", type=int, default=10000, help="virtual time for a page's scripts, in ms")
    parser.add_argument("--require", action="store_true", help="fail, instead of skipping, without Chromium")
    args = parser.parse_args(argv)
    html_dir = Path(args.html)
    if not html_dir.is_dir():
        print(f"browser check: no built book at {html_dir} (build it first: make book)")
        return 1
    shots = {}
    for spec, png_path in args.animation_shot:
        page, which = animation_shot(spec)
        shots[page] = (which, Path(png_path))
    try:
        return run(html_dir, args.screenshot, args.page, args.budget, install=os.environ.get("CI") == "true",
                   animation_shots=shots)
    except Skip as why:
        print(f"browser check SKIPPED: {why}")
        return 1 if args.require else 0


if __name__ == "__main__":
    sys.exit(main())
