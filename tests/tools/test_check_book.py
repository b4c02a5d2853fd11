"""The static check of the built book catches leaks and network fetches."""

from tools import check_book


def page(tmp_path, name, body):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><head></head><body>{body}</body></html>")
    return path


def build(tmp_path):
    """A fake build with every page of _toc.yml present and clean."""
    import yaml

    toc = yaml.safe_load((check_book.ROOT / "_toc.yml").read_text())
    for f in check_book.toc_files(toc):
        page(tmp_path, f"{f}.html", "<p>fine</p>")
    return tmp_path


def test_a_clean_build_passes(tmp_path, capsys):
    assert check_book.main(str(build(tmp_path))) == 0


def test_solution_code_in_a_page_fails(tmp_path, capsys):
    secret = sorted(check_book.solution_lines())[0]
    page(build(tmp_path), "book/leak.html", f"<pre><span>{secret}</span></pre>")
    assert check_book.main(str(tmp_path)) == 1
    assert "contains solution code" in capsys.readouterr().out


def test_a_cdn_script_or_font_fails(tmp_path, capsys):
    out = build(tmp_path)
    page(out, "book/cdn.html", '<script src="https://cdn.example.org/x.js"></script>')
    (out / "style.css").write_text("@font-face { src: url(https://fonts.example.org/a.woff2); }")
    assert check_book.main(str(out)) == 1
    text = capsys.readouterr().out
    assert "fetches from the network: <script> https://cdn.example.org/x.js" in text
    assert "style.css: fetches https://fonts.example.org/a.woff2" in text


def test_a_missing_toc_page_fails(tmp_path, capsys):
    out = build(tmp_path)
    (out / "book" / "linear.html").unlink()
    assert check_book.main(str(out)) == 1
    assert "page book/linear of _toc.yml was not built" in capsys.readouterr().out
