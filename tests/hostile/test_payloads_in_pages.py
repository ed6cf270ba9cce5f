"""Hostile payloads in what staff and students read: markup, script and terminal escapes in names, messages,
reflections and tracebacks stay text on the feedback pages (HTML and Markdown), in the cohort report and in the
CLI's table, and nothing runs when a browser renders the pages.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from browser import chromium, render
from markdown_it import MarkdownIt
from page_checks import ANSI, PAYLOAD, Tags, assert_inert, assert_offline, made_up, markdown, pngs, recorded

from autograder.cli import main
from autograder.grading.decisions import override
from autograder.labs.lab import load_lab
from autograder.publish.cohort_report import write_report
from autograder.publish.feedback import md_code, md_text, write_feedback
from autograder.results import CriterionResult, ExecutionResult
from autograder.store import Store

# --- feedback pages (the toy pages: `toy_pages` in conftest.py) -------------------------------------------------


def test_markdown_text_is_never_markup():
    text = PAYLOAD + " *bold* [link](javascript:alert(1)) `code` <b>b</b> & " + ANSI + "\n# heading"
    md = md_text(text)
    rendered = markdown(md)
    assert_inert(rendered)
    assert Tags(rendered).names() == {"p"}  # no emphasis, link, code, heading or raw tag: one paragraph of text
    assert "&lt;script&gt;document.title=" in rendered and "javascript:alert(1)" in rendered  # kept, as text


def test_a_code_block_holds_any_text_whole():
    text = "before\n```\n" + PAYLOAD + "\n````\n~~~\nafter"
    tokens = MarkdownIt("commonmark", {"html": True}).parse(md_code(text + ANSI))
    assert [t.type for t in tokens] == ["fence"]
    assert tokens[0].content == text + " red  ```\n"  # terminal escapes dropped
    assert_inert(markdown(md_code(text)))


def test_a_teachers_decision_shows_who_when_and_why_escaped(course, store, tmp_path):
    recorded(store)
    override(store, "toy", "ana", "reflection", "pass", "Short, but " + PAYLOAD, by="ta<img src=y onerror=alert(2)>")
    write_feedback(load_lab("toy", course), store, tmp_path / "out")
    html = (tmp_path / "out" / "ana.html").read_text()
    md = (tmp_path / "out" / "ana.md").read_text()
    assert_inert(html)
    assert_inert(markdown(md))
    decided = store.latest_of("toy", "ana").criteria[1].override
    for text in (html, markdown(md)):
        assert "Decided by a teacher: met (the grader said not met), by ta&lt;img src=y onerror=alert(2)&gt; on " \
               f"{decided.at:%Y-%m-%d %H:%M} UTC: Short, but &lt;script&gt;" in text
        assert "Verdict: G" in text and "every required criterion is met" in text
        assert "A note: &lt;script&gt;" in text  # notes shown
        assert "SECRET-EVIDENCE" not in text and "hidden_metric" not in text  # the TA's evidence is not
        # the toy lab has no `history` probe: no section for data the lab never records
        assert "Training curves" not in text and "Not available" not in text
        assert "812 MB" in text and "cuda" in text and "300 MB" in text


@pytest.mark.slow
def test_hostile_output_is_text_on_the_page(toy_pages):
    results, pages, _ = toy_pages
    assert results["hostile"].execution.status == "error"
    html = pages["hostile.html"]
    assert_inert(html)
    # escaped, whichever entity the escaper picks for a quote; unescaped, the payload as the notebook printed it
    assert "&lt;script&gt;document.title=" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>document.title='PWNED'</script><img src=x onerror=alert(1)>" in unescape(html)
    stopped = html[html.index("Where the notebook stopped"):]
    assert "<strong>Cell 4</strong>" in stopped
    traceback = re.search(r"<pre>(.*?)</pre>", stopped, re.S).group(1)
    assert "Traceback (most recent call last)" in traceback and "ValueError" in traceback
    assert " red  ```" in traceback  # escapes stripped, the rest kept


@pytest.mark.slow
def test_hostile_output_is_text_in_the_markdown(toy_pages):
    _, pages, _ = toy_pages
    md = pages["hostile.md"]
    assert "\x1b" not in md and "\x07" not in md
    rendered = markdown(md)
    assert_inert(rendered)
    assert "&lt;script&gt;document.title=" in rendered
    # The traceback is one code block from its first line to its last, whatever fences it holds.
    fences = [t for t in MarkdownIt("commonmark").parse(md) if t.type == "fence"]
    assert len(fences) == 1
    assert fences[0].content.startswith("----") and fences[0].content.rstrip().endswith("```")


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_renders_in_a_browser_without_running_the_payload(toy_pages, tmp_path):
    browser = pytest.importorskip("browser")
    if browser.chromium() is None:
        pytest.skip("chromium is not installed")
    _, _, out = toy_pages
    shot = tmp_path / "hostile.png"
    rendered = browser.render(out / "hostile.html", shot)
    assert rendered.errors == [], rendered.console
    assert shot.stat().st_size > 0
    assert "<title>toy: hostile</title>" in rendered.dom and "PWNED</title>" not in rendered.dom
    assert_inert(rendered.dom)
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.dom  # on the page, as text


# --- the cohort report (`lab1` in conftest.py) ------------------------------------------------------------------

HOSTILE_ID = '$x^{$<script>alert("x")</script>\x1b[31m'  # mathtext first: figures cut long ids
INJECTED = "<img src=x onerror=alert(1)>\x1b]0;pwned\x07 & more"


@pytest.fixture
def hostile_store(lab1, tmp_path: Path) -> Store:
    """A student whose id and messages are markup and terminal escapes, one who crashed, and one who passed."""
    store = Store(tmp_path / "db" / "grades.db")

    def measured(accuracy: float, train: float, gap: str = "pass") -> list[CriterionResult]:
        return [
            CriterionResult(id="test-accuracy", kind="accuracy", status="pass", value=accuracy, threshold=0.75,
                            message="ok"),
            CriterionResult(id="generalization-gap", kind="generalization-gap", status=gap, value=train - accuracy,
                            threshold=0.1, message="ok", details={"train": train, "test": accuracy}),
        ]

    store.record(made_up(lab1, HOSTILE_ID, "review", measured(0.8, 0.99, "fail") + [
        CriterionResult(id="reflection", kind="reflection", status="review", message=INJECTED,
                        details={"text": "<b>the TA's evidence</b>"})],
        ExecutionResult(status="ok", duration_s=12.5, peak_memory_mb=400.0, message=INJECTED), notes=[INJECTED]))
    store.record(made_up(lab1, "crashed", "error", [
        CriterionResult(id="runs", kind="notebook-runs", status="error", message="the sandbox failed"),
        CriterionResult(id="test-accuracy", kind="accuracy", status="skipped", message="not run"),
        CriterionResult(id="generalization-gap", kind="generalization-gap", status="skipped", message="not run")],
        None))
    store.record(made_up(lab1, "fine", "G", measured(0.86, 0.87), ExecutionResult(status="ok", duration_s=7.0)))
    yield store
    store.close()


def test_hostile_ids_and_messages_are_escaped(lab1, hostile_store: Store, tmp_path: Path):
    text = write_report(lab1, hostile_store, tmp_path / "report.html").read_text(encoding="utf-8")
    body = text[text.index("<body>"):]
    for raw in ("<script", "<img src=x", "<b>", "\x1b", "\x07"):
        assert raw not in body, raw
    assert "TA's evidence" not in unescape(body)  # details are not dumped
    assert "$x^{$&lt;script&gt;alert(" in body and '$x^{$<script>alert("x")</script><' in unescape(body)
    assert "&lt;img src=x onerror=alert(1)&gt;0;pwned &amp; more" not in body  # the OSC sequence is gone whole
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more" in body

    queue = body[body.index('<table id="review">'):]
    hrefs = re.findall(r'<a href="([^"]+)">', queue)
    assert len(hrefs) == 2  # the hostile student (review) and the crashed one (error)
    assert all(re.fullmatch(r"feedback/[A-Za-z0-9_.-]+\.html", h) for h in hrefs), hrefs

    # the crashed student is counted out of the figures, which still come (ids with `$` are not mathtext)
    assert "1 student without a value (their run or probe failed)" in body
    assert "1 student without a recorded run" in body
    assert len(pngs(text)) == 4
    assert_offline(text)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_the_report_renders_in_a_browser(lab1, hostile_store: Store, tmp_path: Path):
    out = write_report(lab1, hostile_store, tmp_path / "report.html")
    page = render(out, tmp_path / "report.png")
    assert page.errors == []
    assert page.screenshot.stat().st_size > 5000
    assert "<script" not in page.dom.split("<body>", 1)[1]
    assert page.dom.count("<img") == 4


# --- the CLI's table in the terminal ----------------------------------------------------------------------------


@pytest.mark.slow
def test_hostile_messages_neither_break_the_table_nor_reach_the_terminal_raw(course, submissions, tmp_path, capsys):
    submissions("ana")
    submissions("mallory", "raise ValueError('[/] [bold red]G[/bold red] \\x1b[2J\\x1b]0;pwned\\x07')")
    code = main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(tmp_path / "g.db")])
    out = capsys.readouterr().out
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "[/] [bold red]G[/bold red]" in out  # shown literally, not read as markup
