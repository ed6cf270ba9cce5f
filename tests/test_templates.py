"""The templates every page comes from (publish/html.py, publish/templates/): autoescaping, terminal sequences
dropped, undefined names an error, figures only as inline images, and the pages they make from hostile values:
markup, event handlers, `javascript:` URLs, Jinja syntax, terminal escapes and huge values stay text, in the
HTML and in Chromium's DOM.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from html import unescape
from pathlib import Path

import jinja2
import numpy as np
import pytest
from browser import chromium, render
from conftest import REPO
from markupsafe import Markup
from page_checks import Tags, assert_inert, made_up

from autograder.labs.lab import load_lab
from autograder.publish import cohort_report, feedback
from autograder.publish.feedback import Failure, Feedback, file_stems, index_html, to_html
from autograder.publish.html import CSP, figure_data_uri, image_uri, matplotlib_backend, strip_ansi, templates
from autograder.results import CriterionResult, ExecutionResult, HiddenTestResult

TEMPLATES = REPO / "autograder" / "publish" / "templates"

# What a student could hand in as an id, a message, an output or a reflection.
SCRIPT = "<script>document.title='PWNED'</script>"
HANDLER = '<img src=x onerror="document.title=\'PWNED\'">" onmouseover="alert(1)'
JS_URL = "javascript:alert(document.domain)"
JINJA = "{{ 7*7 }}{% if true %}IF-RAN{% endif %}{# gone #}{{ config }}{{ self.__init__ }}"
ANSI = "\x1b[31mred\x1b[0m\x1b]0;pwned\x07\x1b[2J"
HOSTILE = SCRIPT + HANDLER + " " + JS_URL + " " + JINJA + ANSI
SHOWN = SCRIPT + HANDLER + " " + JS_URL + " " + JINJA + "red"  # what a reader sees: all of it but the escapes
HOSTILE_ID = "<b>" + JS_URL + "</b>{{ 7*7 }}\x1b[1m"
REFLECTION = "REFLECTION-TEXT " + HOSTILE
CRITERION = "<i onclick=alert(1)>runs</i>{{ 1+1 }}\x1b[3m"  # a criterion id, as a careless rubric could hold
HUGE = 2_000_000


def text_of(html: str) -> str:
    """What a reader sees: the page without tags, entities decoded (whitespace kept)."""
    return unescape(re.sub(r"<[^>]*>", "", html))


# --- the environment --------------------------------------------------------------------------------------------


def test_values_are_escaped_everywhere_and_lose_their_terminal_sequences():
    env = templates()
    page = env.from_string('<p title="{{ v }}">{{ v }}</p><a href="{{ v }}.html">{{ v|e }}</a>').render(v=HOSTILE)
    tags = Tags(page)
    assert [t for t, _ in tags.tags] == ["p", "a"] and tags.handlers() == []
    assert tags.tags[0][1]["title"] == SHOWN and tags.tags[1][1]["href"] == SHOWN + ".html"
    assert text_of(page) == SHOWN * 2  # shown literally, twice; `|e` loses the escapes too
    assert "\x1b" not in page and "\x07" not in page


def test_jinja_syntax_in_a_value_is_never_evaluated():
    page = templates().from_string("{{ v }}").render(v=JINJA, config="SECRET")
    assert text_of(page) == JINJA and "49" not in page and "SECRET" not in page


def test_markup_is_kept_only_where_our_code_made_it():
    env = templates()
    assert env.from_string("{{ v }}").render(v=Markup("<em>ours</em>\x1b[1m")) == "<em>ours</em>"
    assert env.from_string("{{ v }}").render(v="<em>theirs</em>") == "&lt;em&gt;theirs&lt;/em&gt;"


def test_an_undefined_name_is_an_error_not_an_empty_string():
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        templates().from_string("<p>{{ missing }}</p>").render()
    with pytest.raises(jinja2.UndefinedError):
        templates().get_template("feedback.html").render(title="t")


def test_a_figure_is_only_ever_an_inline_image():
    matplotlib_backend()
    from matplotlib.figure import Figure

    uri = figure_data_uri(Figure(figsize=(1, 1)))
    assert image_uri(uri) == uri
    figure = templates().from_string('{% from "macros.html" import figure %}{{ figure(u, a) }}')
    page = figure.render(u=uri, a=HOSTILE)
    assert Tags(page).tags == [("img", {"src": uri, "alt": SHOWN})]
    for bad in (JS_URL, "http://example.com/x.png", "data:text/html;base64,PHNjcmlwdD4=", uri + '" onerror="x',
                "data:image/svg+xml;base64,PHN2Zz4=", None, 42):
        with pytest.raises(ValueError, match="not an inline PNG or JPEG"):
            figure.render(u=bad, a="x")


def test_every_template_compiles_and_none_marks_anything_safe():
    """`|safe` or autoescape off in a template would let a student's text through as markup."""
    names = templates().list_templates()
    assert {"base.html", "macros.html", "feedback.html", "index.html", "report.html"} <= set(names)
    for name in names:
        templates().get_template(name)
        source = (TEMPLATES / name).read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|autoescape\s+false", source), name
    for module in (feedback, cohort_report):  # they hand plain data to the templates, never markup
        assert "Markup" not in Path(module.__file__).read_text(encoding="utf-8")


def test_every_page_carries_the_csp_that_forbids_scripts():
    page = templates().get_template("base.html").render(title=SCRIPT)
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'.replace("'", "&#39;") in page
    assert "<title>&lt;script&gt;" in page and "script-src" not in CSP and "default-src 'none'" in CSP


# --- packaging: the templates travel with the package -----------------------------------------------------------


def test_every_template_is_package_data():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["autograder"]
    for path in TEMPLATES.rglob("*"):
        if path.is_file():
            relative = path.relative_to(REPO / "autograder").as_posix()
            assert any(fnmatch.fnmatch(relative, g) for g in globs), f"{relative} is not in package-data"


def test_templates_load_from_the_installed_package(tmp_path):
    """Imported as installed (isolated mode, started outside the repository), not from the working folder."""
    code = ("import autograder.publish.html as h; print(h.__file__); "
            "print(h.templates().get_template('feedback.html').filename)")
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    module, template = done.stdout.split()
    assert Path(template).is_file() and Path(template).parent.parent == Path(module).parent


# --- the pages, from hostile values -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab1():
    return load_lab("lab1-mlp", REPO)


def hostile_result(lab, student: str = HOSTILE_ID, huge: int = 0):
    """A result whose every student-made field is hostile; the reflection's text is the TA's evidence only.
    `huge`: that many more characters of printed output in a message (words: a browser lays them out in
    seconds, where one unbroken megabyte-long token makes a page too wide to lay out or capture)."""
    big = ("0.123 " * (huge // 6)) + "<script>END-OF-HUGE</script>" if huge else ""
    return made_up(lab, student, "review", [
        CriterionResult(id="test-accuracy", kind="accuracy", status="fail", value=0.5, threshold=0.75,
                        message=HOSTILE + big, advice=HOSTILE),
        CriterionResult(id="reflection", kind="reflection", status="review", message=HOSTILE,
                        details={"text": REFLECTION, "similar_to": [{"student": "OTHER-STUDENT", "similarity": 0.9}]}),
        CriterionResult(id=CRITERION, kind="notebook-runs", status="review", message="ok"),
    ], ExecutionResult(status="error", cell=3, message=HOSTILE, duration_s=3.0, peak_memory_mb=100.0),
        notes=[HOSTILE]).model_copy(update={"tests": [
            HiddenTestResult(name=HOSTILE, outcome="failed", message=HOSTILE, public=True),
            HiddenTestResult(name="HIDDEN-TEST-NAME", outcome="failed", message="HIDDEN-MESSAGE", public=False)]})


def hostile_feedback(lab, huge: int = 0) -> Feedback:
    r = hostile_result(lab, huge=huge)
    return Feedback(lab=lab, result=r, history={HOSTILE: np.array([0.5, 0.6, 0.7])},
                    failure=Failure(status="error", message=HOSTILE, cell=3, error="ValueError: " + HOSTILE,
                                    traceback="Traceback\n" + HOSTILE + "\n```"))


def assert_nothing_active(html: str) -> None:
    """Inert (page_checks) and no link or image that leaves the page: no scheme in any href or src but data:."""
    assert_inert(html)
    for tag, attrs in Tags(html).tags:
        for name in ("href", "src"):
            value = attrs.get(name, "")
            assert not re.match(r"\s*[a-z][a-z0-9+.-]*:", value, re.I) or value.startswith("data:image/png;base64,"), \
                (tag, value)


def test_a_hostile_feedback_page_shows_everything_as_text(lab1):
    html = to_html(hostile_feedback(lab1))
    assert_nothing_active(html)
    body = html[html.index("<body>"):]
    assert "<script" not in body and "<b>" not in body
    shown = text_of(body)
    assert shown.count(SHOWN) >= 10  # message, advice, test, curve, where it stopped, error, traceback, notes, ...
    assert "{{ 7*7 }}" in shown and "IF-RAN" in shown and "{# gone #}" in shown  # literally, never evaluated
    assert "Feedback for <b>javascript:alert(document.domain)</b>{{ 7*7 }};" in shown
    # Never on a student's page: the reflection (the TA's evidence), who it resembles, hidden tests.
    for secret in ("REFLECTION-TEXT", "OTHER-STUDENT", "HIDDEN-TEST-NAME", "HIDDEN-MESSAGE"):
        assert secret not in html
    assert "1 hidden test: 0 passed" in shown
    assert "<i onclick=alert(1)>runs</i>{{ 1+1 }}" in shown  # the criterion id, as text
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert unescape(title) == "lab1-mlp: <b>javascript:alert(document.domain)</b>{{ 7*7 }}"


def test_a_huge_value_is_shown_whole_and_inert(lab1):
    html = to_html(hostile_feedback(lab1, huge=HUGE))
    assert_nothing_active(html)
    assert len(html) > HUGE and "&lt;script&gt;END-OF-HUGE&lt;/script&gt;" in html
    fb = hostile_feedback(lab1)
    fb.result.notes.append("A" * HUGE + "\x1b[2J<script>END</script>")  # one unbroken token
    html = to_html(fb)
    assert_nothing_active(html)
    assert "A" * HUGE + "&lt;script&gt;END&lt;/script&gt;</li>" in html


def test_the_index_and_the_report_show_hostile_ids_as_text(lab1, tmp_path):
    results = [hostile_result(lab1), hostile_result(lab1, student=JS_URL),
               hostile_result(lab1, student=JINJA + ANSI)]
    index = index_html(lab1, results, file_stems(r.student for r in results))
    assert_nothing_active(index)
    hrefs = re.findall(r'href="([^"]*)"', index)
    assert len(hrefs) == 3 and all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.html", h) for h in hrefs), hrefs
    for student in (HOSTILE_ID, JS_URL, JINJA + ANSI):
        assert strip_ansi(student) in text_of(index)

    # A careless TA's feedback folder cannot turn the review queue's links into a scheme either.
    report = cohort_report.render(lab1, results, feedback_dir=JS_URL)
    assert_nothing_active(report)
    queue = report[report.index('<table id="review">'):]
    assert len(re.findall(r'<a href="javascript%3Aalert%28document.domain%29/[^"]+\.html">', queue)) == 3
    shown = text_of(report)
    assert "REFLECTION-TEXT" not in shown and "OTHER-STUDENT" not in shown  # details are not dumped
    assert shown.count(SHOWN) >= 6 and "{{ 7*7 }}" in shown
    assert shown.count("<i onclick=alert(1)>runs</i>{{ 1+1 }}") == 1 + 3  # the criteria table, the queue


# --- in Chromium -----------------------------------------------------------------------------------------------


@pytest.fixture
def show(tmp_path):
    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it in CI)")

    def show(html: str, name: str = "page"):
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        return render(path, tmp_path / f"{name}.png")

    return show


def assert_shown_inert(shown, title: str) -> None:
    """Nothing ran (the title is the page's, no console line at all: not even a CSP report, since nothing
    tried to run), and the DOM holds the payloads as text."""
    assert shown.console == [], shown.console
    assert unescape(re.search(r"<title>(.*?)</title>", shown.dom, re.S).group(1)) == title
    assert_nothing_active(shown.dom)
    assert "<script" not in shown.dom.split("<body>", 1)[1]


@pytest.mark.slow
@pytest.mark.browser
def test_hostile_pages_render_inert_in_chromium(lab1, show):
    fb = hostile_feedback(lab1)
    shown = show(to_html(fb), "student")
    assert_shown_inert(shown, f"lab1-mlp: {unescape('<b>javascript:alert(document.domain)</b>{{ 7*7 }}')}")
    assert SHOWN in text_of(shown.dom) and "{{ 7*7 }}" in text_of(shown.dom)
    assert shown.dom.count("<img") == 1  # the curves: the figure our code drew, nothing of the student's

    results = [fb.result, hostile_result(lab1, student=JS_URL)]
    shown = show(index_html(lab1, results, file_stems(r.student for r in results)), "index")
    assert_shown_inert(shown, "lab1-mlp: feedback")
    assert JS_URL in text_of(shown.dom)

    shown = show(cohort_report.render(lab1, results), "report")
    assert_shown_inert(shown, "lab1-mlp: cohort report")
    assert SHOWN in text_of(shown.dom) and "REFLECTION-TEXT" not in shown.dom


@pytest.mark.slow
@pytest.mark.browser
def test_a_huge_hostile_page_renders_inert_in_chromium(lab1, show):
    shown = show(to_html(hostile_feedback(lab1, huge=HUGE)), "huge")
    assert_shown_inert(shown, f"lab1-mlp: {unescape('<b>javascript:alert(document.domain)</b>{{ 7*7 }}')}")
    assert "<script>END-OF-HUGE</script>" in text_of(shown.dom)
