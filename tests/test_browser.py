"""The headless-Chromium harness can fail: it sees scripts run, errors thrown, CSP blocking, hangs."""

from __future__ import annotations

import re
from html import unescape

import pytest
from browser import chromium, render
from markupsafe import Markup

from autograder.publish.html import templates

SKIP = "Chromium is not installed (apt-get install chromium; .ci/run does it in CI)"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def show(tmp_path):
    """Render an HTML string; what Chromium made of it."""
    if chromium() is None:
        pytest.skip(SKIP)

    def show(html: str, **options):
        path = tmp_path / "page.html"
        path.write_text(html, encoding="utf-8")
        return render(path, tmp_path / "page.png", **options)

    return show


def page(title: str, body: str) -> str:
    """base.html, the frame of every page (its CSP, its style), around markup this test wrote itself."""
    frame = templates().from_string('{% extends "base.html" %}{% block body %}{{ body }}{% endblock %}')
    return frame.render(title=title, body=Markup(body))


def escaped(title: str, text: str) -> str:
    """base.html around `text` as a page shows a student's output: escaped by the template."""
    frame = templates().from_string('{% extends "base.html" %}{% block body %}<pre>{{ text }}</pre>{% endblock %}')
    return frame.render(title=title, text=text)


def title(dom: str) -> str:
    return re.search(r"<title>(.*?)</title>", dom, re.S).group(1)


def bare(body: str) -> str:
    """A page without base.html's CSP, where scripts do run."""
    return f"<!DOCTYPE html><html><head><title>before</title></head><body>{body}</body></html>"


@pytest.mark.slow
@pytest.mark.browser
def test_a_throwing_script_is_a_console_error(show):
    shown = show(bare("<p>hi</p><script>throw new Error('boom-42')</script>"))
    assert any("Uncaught" in line and "boom-42" in line for line in shown.errors), shown.console


@pytest.mark.slow
@pytest.mark.browser
def test_the_dom_is_the_document_after_its_scripts_ran(show):
    shown = show(bare("<script>document.title = 'set by script'; console.log('ran')</script>"))
    assert title(shown.dom) == "set by script"
    assert shown.dom.startswith("<!DOCTYPE html>")
    assert shown.console == ["log: ran"]  # a log line is not an error
    assert shown.errors == []


@pytest.mark.slow
@pytest.mark.browser
def test_a_clean_page_has_no_console_lines_and_a_screenshot_of_itself(show):
    shown = show(page("Clean", '<h1>Feedback</h1><div style="background:#ff0000;height:300px"></div>'))
    assert shown.console == []
    data = shown.screenshot.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000
    # The picture is of this page: the red block is in it (and the page is taller than it).
    import matplotlib.image

    pixels = matplotlib.image.imread(shown.screenshot)
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    assert red.sum() > 100 * 100
    assert pixels.shape[0] > 300


@pytest.mark.slow
@pytest.mark.browser
def test_the_csp_of_the_page_frame_stops_an_injected_script_and_says_so(show):
    injected = "<script>document.title = 'pwned'</script><img src=x onerror=\"document.title = 'pwned'\">"
    shown = show(page("Safe", "<p>ok</p>" + injected))
    assert title(shown.dom) == "Safe"
    violations = [line for line in shown.errors if "Content Security Policy" in line]
    assert len(violations) >= 2, shown.console  # the inline script and the inline handler


@pytest.mark.slow
@pytest.mark.browser
def test_an_escaped_payload_leaves_nothing_to_run_and_nothing_in_the_console(show):
    payload = "<script>document.title = 'pwned'</script><img src=x onerror=\"document.title = 'pwned'\">"
    shown = show(escaped("Safe", payload + "\x1b[31m{{ 7*7 }}"))
    assert title(shown.dom) == "Safe"
    assert shown.console == []
    assert "&lt;script&gt;" in shown.dom
    pre = re.search(r"<pre>(.*?)</pre>", shown.dom, re.S).group(1)
    assert unescape(pre) == payload + "{{ 7*7 }}"  # all of it, as text; the terminal escape dropped


@pytest.mark.slow
@pytest.mark.browser
def test_nothing_reaches_the_network(show):
    shown = show(bare('<img src="http://example.com/logo.png">'))
    assert any("net::ERR_" in line and "example.com" in line for line in shown.errors), shown.console


@pytest.mark.slow
@pytest.mark.browser
def test_a_page_that_never_loads_times_out(show):
    with pytest.raises(TimeoutError, match="page.html"):
        show(bare("<script>while (true) {}</script>"), timeout=3)


def test_without_chromium_tests_are_told_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium() is None
    (tmp_path / "page.html").write_text(bare(""))
    with pytest.raises(FileNotFoundError, match="chromium is not installed"):
        render(tmp_path / "page.html", tmp_path / "page.png")
