"""A student's executed notebook on a TA's page (publish/notebook_html.py): what it printed and drew is shown,
nothing it could have made active is, and no notebook, however broken or large, stops the page."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest
from browser import chromium, render
from page_checks import PAYLOAD, Tags, assert_inert

from autograder.publish.html import render as render_page
from autograder.publish.notebook_html import MAX_OUTPUTS, notebook_html

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff\xe0"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" onload="window.pwned=1"><script>document.title="pwned"</script></svg>'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def nb(*cells: dict, **top) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells), **top}


def code(*outputs: dict, source="x = 1", count=1) -> dict:
    return {"cell_type": "code", "execution_count": count, "metadata": {}, "source": source, "outputs": list(outputs)}


def display(data: dict, kind="display_data") -> dict:
    return {"output_type": kind, "data": data, "metadata": {}}


def images(html: str) -> list[str]:
    return [attrs["src"] for tag, attrs in Tags(html).tags if tag == "img"]


# --- hostile notebooks ----------------------------------------------------------------------------------------


def test_markdown_is_shown_as_its_source_never_rendered():
    html = notebook_html(nb({"cell_type": "markdown", "metadata": {},
                             "source": ["# Title\n", PAYLOAD + "\n", "[x](javascript:alert(1)) <iframe src=//e>"]}))
    assert_inert(html)
    assert "iframe" not in Tags(html).names() and "a" not in Tags(html).names() and "h1" not in Tags(html).names()
    assert "# Title" in html and "&lt;script&gt;document.title=" in html and "javascript:alert(1)" in html


def test_html_svg_and_javascript_outputs_are_named_never_rendered():
    html = notebook_html(nb(code(
        display({"text/html": PAYLOAD + "<img src=x onerror=\"window.pwned=1\">"}),
        display({"image/svg+xml": SVG}),
        display({"application/javascript": "window.pwned = 1"}),
        display({"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "IntSlider(value=3)"}),
        display({"text/html": "<b>frame</b>", "text/plain": "   a  b\n0  1  2"}, kind="execute_result"),
    )))
    assert_inert(html)
    assert {"svg", "iframe", "object", "embed", "b"}.isdisjoint(Tags(html).names())
    for mime in ("text/html", "image/svg+xml", "application/javascript", "application/vnd.jupyter.widget-view+json"):
        assert f"(output of type {mime} not shown)" in html
    # text types with nothing better to show keep their source, as text; a widget its text/plain
    assert "&lt;svg xmlns=" in html and "window.pwned = 1" in html and "IntSlider(value=3)" in html
    assert "   a  b\n0  1  2" in html  # a DataFrame's text/plain, its HTML named only
    assert "&lt;b&gt;frame" not in html  # ...not its HTML source


def test_an_image_is_shown_only_when_its_bytes_are_an_image():
    page = b"<html><script>window.pwned=1</script></html>"
    html = notebook_html(nb(code(
        display({"image/png": b64(page)}),  # "png" that is really HTML
        display({"image/png": "not base64 !!"}),
        display({"image/png": 42}),
        display({"image/png": b64(JPEG + b"rest"), "text/plain": "<Figure>"}),  # a JPEG called PNG: shown as JPEG
        display({"image/jpeg": [b64(PNG + b"x")[:8] + "\n", b64(PNG + b"x")[8:]]}),  # lines, as nbformat writes
    )))
    assert "script" not in Tags(html).names() and Tags(html).handlers() == []
    assert html.count("whose bytes are not a PNG or JPEG image") == 1
    assert "not valid base64" in html and "not base64 text" in html
    assert images(html) == ["data:image/jpeg;base64," + b64(JPEG + b"rest"), "data:image/png;base64," + b64(PNG + b"x")]
    assert "&lt;Figure&gt;" not in html  # the figure shown, its text/plain not
    assert b64(page) not in html


def test_a_huge_image_is_a_note_with_its_size():
    huge = b64(PNG + bytes(20 * 1024**2))
    started = time.monotonic()
    html = notebook_html(nb(code(display({"image/png": huge, "text/plain": "<Figure size 640x480>"}))))
    assert time.monotonic() - started < 2  # not decoded
    assert images(html) == []
    assert "image of 21.0 MB, over the 1.5 MB shown inline" in html
    assert "&lt;Figure size 640x480&gt;" in html  # what else it said
    assert len(html) < 10_000


def test_a_million_outputs_show_the_first_ones_and_a_count():
    outputs = [{"output_type": "stream", "name": "stdout", "text": f"line {i}\n"} for i in range(10**6)]
    started = time.monotonic()
    html = notebook_html(nb(code(*outputs), code(source="print('after')")))
    assert time.monotonic() - started < 10
    assert "line 0\n" in html and f"line {MAX_OUTPUTS - 1}\n" in html and f"line {MAX_OUTPUTS}\n" not in html
    assert f"({10**6 - MAX_OUTPUTS:,} more outputs of this cell not shown)" in html
    assert "print(&#39;after&#39;)" in html  # the next cell is still there


def test_the_whole_view_is_capped_with_a_note():
    text = "y" * 9_000
    html = notebook_html(nb(*[code({"output_type": "stream", "name": "stdout", "text": text}) for _ in range(1000)]),
                         max_bytes=100_000)
    assert len(html) < 120_000
    assert re.search(r"The rest of the notebook \((\d+) of 1,000 cells\) is not shown: this view is capped at 100 kB",
                     html)
    images_nb = nb(*[code(display({"image/png": b64(PNG + bytes(300_000))})) for _ in range(40)])
    html = notebook_html(images_nb)
    assert 10 <= len(images(html)) < 40 and "capped at 5.0 MB" in html and len(html) < 5_500_000


def test_long_text_is_capped_and_terminal_escapes_removed():
    html = notebook_html(nb(code(
        {"output_type": "stream", "name": "stderr",
         "text": "\x1b[31mred\x1b[0m \x1b]0;title\x07\x00\x08 " + "z" * 50_000},
        {"output_type": "error", "ename": "ValueError", "evalue": PAYLOAD,
         "traceback": ["\x1b[0;31m----> 1\x1b[0m raise ValueError(<script>)", "ValueError: " + PAYLOAD]},
        source="print('\x1b[2J{{ 7 * 7 }} {% if 1 %}x{% endif %}\x07')",
    )))
    assert_inert(html)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", html)
    assert "red  zzz" in html and "(40,005 more characters not shown)" in html
    assert "----&gt; 1 raise ValueError(&lt;script&gt;)" in html and 'class="nb-error"' in html
    assert "{{ 7 * 7 }} {% if 1 %}x{% endif %}" in html and "49" not in html  # student text is never a template


@pytest.mark.parametrize("content, says", [
    (b"{not json", "is not valid JSON"),
    (b"[1, 2]", "is not a JSON object"),
    (b'{"nbformat": 3, "worksheets": []}', "not nbformat 4"),
    (b'{"nbformat": "4", "cells": []}', "not nbformat 4"),
    (b'{"nbformat": 4, "cells": {"0": {}}}', "has no list of cells"),
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),  # nesting deeper than the parser's recursion
    (b"\xff\xfe\x00garbage", "is not valid JSON"),
])
def test_a_malformed_notebook_is_a_short_note(tmp_path, content, says):
    path = tmp_path / "executed.ipynb"
    path.write_bytes(content)
    html = notebook_html(path)
    assert says in html and len(html) < 3000 and 'class="nb-cell' not in html


def test_a_missing_or_oversized_notebook_is_a_short_note(tmp_path):
    assert "executed.ipynb is missing" in notebook_html(tmp_path / "executed.ipynb")
    big = tmp_path / "big.ipynb"
    with open(big, "wb") as f:
        f.truncate(51 * 1024**2)  # sparse: 51 MB read as size, never as bytes
    assert "big.ipynb is missing, not a file, or larger than 52.4 MB" in notebook_html(big)
    (tmp_path / "dir.ipynb").mkdir()
    assert "dir.ipynb is missing" in notebook_html(tmp_path / "dir.ipynb")


def test_cells_with_wrong_fields_are_noted_and_the_rest_shown():
    html = notebook_html(nb(
        "a string, not a cell",
        {"cell_type": "code"},  # no source, no outputs, no count
        {"cell_type": "code", "source": [1, 2], "outputs": "not a list", "execution_count": "<b>7</b>"},
        {"cell_type": "code", "source": "ok",
         "outputs": [None, {"output_type": "stream", "name": "stdout", "text": 5}, {"output_type": "<b>odd</b>"},
                     {"output_type": "display_data"}]},
        {"cell_type": "<img src=x onerror=alert(1)>", "source": "?"},
        {"cell_type": "markdown", "source": "still shown"},
    ))
    assert_inert(html)
    for note in ("(a cell that is not a JSON object, not shown)", "(the cell's source is not text, not shown)",
                 "(the cell's outputs are not a list, not shown)", "(an output that is not a JSON object, not shown)",
                 "(a stream output whose text is not text, not shown)", "(an output of type '&lt;b&gt;odd",
                 "(a display_data output without data, not shown)", "(a cell of type '&lt;img src=x"):
        assert note in str(html).replace("&#39;", "'"), note
    assert "&lt;b&gt;7" not in html and "In [ ]:" in html  # a count that is not a number is not shown
    assert "still shown" in html


@pytest.mark.slow
@pytest.mark.browser
def test_a_hostile_notebook_renders_inert_in_chromium(tmp_path):
    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    hostile = nb(
        {"cell_type": "markdown",
         "source": "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"},
        code(display({"text/html": "<script>document.title='pwned'</script>"}),
             display({"image/svg+xml": SVG}),
             display({"image/png": b64(b"<script>document.title='pwned'</script>")}),
             display({"image/png": b64(PNG + bytes(3 * 1024**2))}),
             {"output_type": "stream", "name": "stdout", "text": "<img src=x onerror=\"document.title='pwned'\">"}),
    )
    path = tmp_path / "page.html"
    path.write_text(render_page("page.html", title="Safe", body=notebook_html(hostile)), encoding="utf-8")
    shown = render(path, tmp_path / "page.png")
    assert re.search(r"<title>(.*?)</title>", shown.dom).group(1) == "Safe"
    assert shown.console == []  # nothing even tried to run or load: no CSP report either
    assert "(output of type image/svg+xml not shown)" in shown.dom


# --- a real executed notebook ---------------------------------------------------------------------------------

PLOTTING = """import matplotlib.pyplot as plt
print("training <done>")
plt.plot([0, 1, 2], [3, 1, 2])
plt.title("loss")
plt.show()
def predict(X):
    return (X[:, 0] > 0).astype(int)
"""


def test_a_graded_notebook_shows_its_code_prints_and_plots(grade, submissions, store, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    grade(submissions("plotter", PLOTTING).parent)
    executed = next(store.artifacts_root.rglob("executed.ipynb"))
    html = notebook_html(executed)
    assert_inert(html)
    assert "plt.plot([0, 1, 2], [3, 1, 2])" in html and "training &lt;done&gt;" in html
    assert re.search(r"In \[\d+\]:", html)
    (figure,) = images(html)
    assert base64.b64decode(figure.split(",", 1)[1]).startswith(PNG)
    assert "Overfitting matters beyond accuracy" in html  # the reflection cell, as text
    # the same notebook given parsed, as the app may hold it
    assert notebook_html(json.loads(Path(executed).read_text())) == html
