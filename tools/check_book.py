"""Checks of the built book that Sphinx cannot make, run by `make book` after the build.

    python tools/check_book.py _build/html

Fails (exit 1, one line per problem) when:
- a page listed in _toc.yml was not built;
- any solution code (the lines between `### BEGIN SOLUTION` and `### END SOLUTION` in
  solutions/) appears in the HTML;
- a page or stylesheet loads anything from the network (scripts, styles, fonts, images), or
  MathJax does not come from the book itself.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: a solution line shorter than this is too generic to count as leaked (`return y`)
MIN_SOLUTION_LINE = 16


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.fetches: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        fetched = a.get("src") if tag in ("script", "img", "iframe", "source", "video", "audio") else None
        if tag == "link" and {"stylesheet", "preload", "icon", "modulepreload"} & set((a.get("rel") or "").split()):
            fetched = a.get("href")
        if fetched and re.match(r"^(https?:)?//", fetched):
            self.fetches.append(f"<{tag}> {fetched}")

    def handle_data(self, data):
        self.parts.append(data)


def toc_files(toc: dict) -> list[str]:
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def solution_lines() -> set[str]:
    """Lines of solution code that the released material (exercises, book pages) never shows:
    a hint in the instructions (`self.weight.uniform_(-bound, bound)`) is not a leak."""
    released = [*(ROOT / "exercises").rglob("*.ipynb"), *(ROOT / "book").rglob("*.md")]
    public = "\n".join(p.read_text() for p in released)
    lines = set()
    for path in (ROOT / "solutions").rglob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                s = line.strip()
                if s.startswith("### BEGIN SOLUTION"):
                    inside = True
                elif s.startswith("### END SOLUTION"):
                    inside = False
                elif inside and len(s) >= MIN_SOLUTION_LINE and not s.startswith("#"):
                    if s not in public and json.dumps(s)[1:-1] not in public:  # as it reads in a .ipynb
                        lines.add(s)
    return lines


def main(html_dir: str) -> int:
    out = Path(html_dir)
    problems = []
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for f in toc_files(toc):
        if not (out / f"{f}.html").is_file():
            problems.append(f"page {f} of _toc.yml was not built")
    secrets = solution_lines()
    for page in sorted(out.rglob("*.html")):
        parser = _Text()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        text = "".join(parser.parts)
        rel = page.relative_to(out)
        for line in secrets:
            if line in text:
                problems.append(f"{rel}: contains solution code: {line!r}")
        problems += [f"{rel}: fetches from the network: {f}" for f in parser.fetches]
        if "mathjax" in page.read_text(errors="replace").lower():
            for src in re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', page.read_text(errors="replace"), re.I):
                if "_static/mathjax/" not in src:
                    problems.append(f"{rel}: MathJax from {src}, not from the book's _static")
    for css in out.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text(errors="replace")):
            problems.append(f"{css.relative_to(out)}: fetches {url}")
    for p in problems:
        print(p)
    pages = len(list(out.rglob("*.html")))
    print(f"check_book: {pages} HTML pages, {len(secrets)} solution lines looked for, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "_build" / "html")))
