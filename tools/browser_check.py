"""Opens every page of the built book in headless Chromium and checks it as a reader sees it.

    python tools/browser_check.py _build/html
    python tools/browser_check.py _build/html --screenshot docs/screenshot.png

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
- asks the network for anything: every request that is not file:, data: or blob: is reported.

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
from urllib.parse import urlsplit

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


def load(browser: Browser, name: str, url: str, budget_ms: int, shot_of_figure: bool = False) -> Page:
    page = Page(name, url)
    start = time.monotonic()
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Network", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {**VIEWPORT, "deviceScaleFactor": 1, "mobile": False},
                     session=session)
        # scripts run on virtual time: paused while the page loads, then a budget for its timers
        browser.send("Emulation.setVirtualTimePolicy", {"policy": "pause"}, session=session)
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.send("Emulation.setVirtualTimePolicy",
                     {"policy": "pauseIfNetworkFetchesPending", "budget": budget_ms}, session=session)
        browser.event("Emulation.virtualTimeBudgetExpired", session, timeout=120)
        # MathJax typesets asynchronously: wait for its promise when the page has one
        browser.send("Runtime.evaluate", {
            "expression": "window.MathJax && MathJax.startup && MathJax.startup.promise "
                          "? MathJax.startup.promise.then(() => true) : true",
            "awaitPromise": True, "returnByValue": True}, session=session, timeout=60)
        result = browser.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=session)
        page.probe = result.get("result", {}).get("value") or {}
        if shot_of_figure:  # the first figure in view, a little below the page's title
            browser.send("Runtime.evaluate", {"expression": "(() => { const f = document.querySelector("
                                                            "'main figure, main img'); if (f) window.scrollTo(0, "
                                                            "f.getBoundingClientRect().top + scrollY - 330); })()"},
                         session=session)
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        page.screenshot = base64.b64decode(shot["data"])
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
    for e in [e for e in browser.events if e.get("sessionId") == session]:
        params = e.get("params", {})
        if e["method"] == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif e["method"] == "Network.loadingFailed" and not params.get("canceled"):
            page.failed.append(f"{params.get('type', 'resource')}: {params.get('errorText')}")
        elif e["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            page.console_errors.append(params["entry"].get("text", "")[:160])
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
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
    return out


def check_pages(html_dir: Path, pages: list[str], executable: str, *, secrets: set[str], budget_ms: int = 10000,
                screenshot: Path | None = None, screenshot_page: str | None = None) -> list[str]:
    """Open each page (`book/linear` -> html_dir/book/linear.html); return the problems found."""
    problems = [f"{name}: missing ({name}.html was not built)" for name in pages
                if not (html_dir / f"{name}.html").is_file()]
    with tempfile.TemporaryDirectory(prefix="browser-check-") as profile:
        browser = Browser(executable, Path(profile))
        try:
            for name in [n for n in pages if (html_dir / f"{n}.html").is_file()]:
                url = (html_dir / f"{name}.html").resolve().as_uri()
                try:
                    page = load(browser, name, url, budget_ms, shot_of_figure=name == screenshot_page)
                except (TimeoutError, RuntimeError) as exc:
                    problems.append(f"{name}: could not be loaded: {exc}")
                    continue
                found = problems_of(page, secrets)
                problems += found
                print(f"  {'ok ' if not found else 'BAD'} {name} ({page.seconds:.1f} s, "
                      f"{page.probe.get('renderedMath', 0)} formulas, {len(page.probe.get('images', []))} images, "
                      f"{len(page.requests)} requests)", flush=True)
                if screenshot and name == screenshot_page:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    screenshot.write_bytes(page.screenshot)
        finally:
            browser.close()
    return problems


def run(html_dir: Path, screenshot: Path | None, screenshot_page: str, budget_ms: int, install: bool) -> int:
    started = time.monotonic()
    pages = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    executable = find_chromium(install)
    problems = check_pages(html_dir, pages, executable, secrets=solution_lines(), budget_ms=budget_ms,
                           screenshot=screenshot, screenshot_page=screenshot_page)
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
    parser.add_argument("--budget", type=int, default=10000, help="virtual time for a page's scripts, in ms")
    parser.add_argument("--require", action="store_true", help="fail, instead of skipping, without Chromium")
    args = parser.parse_args(argv)
    html_dir = Path(args.html)
    if not html_dir.is_dir():
        print(f"browser check: no built book at {html_dir} (build it first: make book)")
        return 1
    try:
        return run(html_dir, args.screenshot, args.page, args.budget, install=os.environ.get("CI") == "true")
    except Skip as why:
        print(f"browser check SKIPPED: {why}")
        return 1 if args.require else 0


if __name__ == "__main__":
    sys.exit(main())
