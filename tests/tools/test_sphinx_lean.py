"""The book's lean-assets extension: the theme's icon script goes, MathJax loads its components."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pydata_sphinx_theme

from tools import sphinx_lean


def test_the_theme_s_icon_script_tag_is_recognised_and_removed(tmp_path):
    # the tag as the installed theme writes it: its template, with the path filled in
    macros = (Path(pydata_sphinx_theme.__file__).parent / "theme" / "pydata_sphinx_theme" / "static" /
              "webpack-macros.html").read_text()
    tag = re.search(r"<script[^\n]*fontawesome\.js[^\n]*</script>", macros).group(0)
    tag = re.sub(r"\{\{[^}]*\}\}", "../_static/scripts/fontawesome.js", tag, count=1)
    page = tmp_path / "book" / "page.html"
    page.parent.mkdir()
    other = '<script defer src="../_static/scripts/bootstrap.js?digest=1"></script>'
    page.write_text(f"<head>\n  {tag}\n  {other}\n</head>")
    app = SimpleNamespace(outdir=str(tmp_path), builder=SimpleNamespace(format="html"))
    sphinx_lean._drop_icon_script(app, None)
    assert page.read_text() == f"<head>\n  {other}\n</head>"


def test_mathjax_loads_startup_with_the_book_s_components_and_keeps_its_settings():
    config = SimpleNamespace(mathjax_path="mathjax/tex-chtml.js", mathjax3_config={"tex": {"tags": "ams"}})
    sphinx_lean._use_mathjax_components(SimpleNamespace(config=config))
    assert config.mathjax_path == "mathjax/startup.js"
    assert config.mathjax3_config == {"tex": {"tags": "ams"}, "loader": {"load": sphinx_lean.MATHJAX_COMPONENTS}}
    root = Path(__import__("sphinx-mathjax-offline").__file__).parent / "static" / "mathjax"
    for component in ["startup", *sphinx_lean.MATHJAX_COMPONENTS]:
        assert (root / f"{component}.js").is_file(), component
