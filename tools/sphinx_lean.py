"""A Sphinx extension that keeps every page of the book light (issue: each page under 3 MB,
everything it loads counted).

Two of the theme's shared files were most of a page's weight:

- pydata-sphinx-theme loads `scripts/fontawesome.js` (1.5 MB: every Font Awesome icon as SVG,
  drawn by script). The theme's stylesheet already has the same icons as a web font
  (`vendor/fontawesome/webfonts`, 156 KB for the solid style the book uses), so the script tag is
  taken out of every page after the build and the icons come from the font.
- sphinx-mathjax-offline points the pages at `mathjax/tex-chtml.js` (1.2 MB), which bundles the
  context menu (0.4 MB). The pages load MathJax's `startup.js` instead, with the components the
  book needs: TeX input, CommonHTML output and the assistive MathML for screen readers.
  Extensions a formula uses (`\\boldsymbol`, ...) are still fetched on demand, from the same folder.
"""

from __future__ import annotations

import re
from pathlib import Path

FONTAWESOME_SCRIPT = re.compile(r'\s*<script[^>]*src="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*></script>')
MATHJAX_COMPONENTS = ["input/tex", "output/chtml", "a11y/assistive-mml"]


def _use_mathjax_components(app) -> None:
    if app.config.mathjax_path.endswith("tex-chtml.js"):  # set by sphinx-mathjax-offline
        app.config.mathjax_path = "mathjax/startup.js"
        config = dict(app.config.mathjax3_config or {})
        config["loader"] = {**config.get("loader", {}), "load": MATHJAX_COMPONENTS}
        app.config.mathjax3_config = config


def _drop_icon_script(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        lean = FONTAWESOME_SCRIPT.sub("", text)
        if lean != text:
            page.write_text(lean, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", _use_mathjax_components)
    app.connect("build-finished", _drop_icon_script)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
