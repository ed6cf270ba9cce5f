"""Feedback pages: what a student reads, from real graded results; hostile output stays text, and
nothing hidden (hidden tests' names and messages, the TA's details, hidden splits) gets through."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html import unescape
from html.parser import HTMLParser

import nbformat
import numpy as np
import pytest
from conftest import FIXTURE_COURSE, REPO
from make_course import notebook
from markdown_it import MarkdownIt

from autograder.decisions import override
from autograder.errors import UserError
from autograder.feedback import (
    confusion_criterion,
    curves_figure,
    failure,
    file_stems,
    md_code,
    md_text,
    read_history,
    write_feedback,
)
from autograder.intake import discover
from autograder.lab import load_lab
from autograder.pipeline import Grader, Options
from autograder.results import CriterionResult, ExecutionResult, SubmissionResult
from autograder.sandbox import get_backend
from autograder.store import Store

PAYLOAD = "<script>document.title='PWNED'</script><img src=x onerror=alert(1)>"
ANSI = "\x1b[31m red \x1b]0;title\x07 ```"
# A notebook that prints the payload and dies with it (and terminal escapes, and a Markdown fence) in its error.
HOSTILE = f"""print({PAYLOAD!r})
def predict(X):
    return X
raise ValueError({PAYLOAD!r} + {ANSI!r})
"""
# Runs, but its predict fails the toy lab's hidden test, whose name and message are not public.
BAD_SHAPE = "import numpy as np\ndef predict(X):\n    return np.zeros((len(X), 2))"
HIDDEN_TEST = "test_predicts_one_label_per_input"
HIDDEN_MESSAGE = "predict returned shape"


def markdown(text: str) -> str:
    """Markdown as CommonMark renders it, raw HTML allowed: what an LMS that trusts Markdown would show."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


class Tags(HTMLParser):
    """Every element of a document, with its attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def names(self) -> set[str]:
        return {t for t, _ in self.tags}

    def handlers(self) -> list[str]:
        return [k for _, attrs in self.tags for k in attrs if k.startswith("on")]


def assert_inert(html: str) -> None:
    """No element the payload could have made: no script, no event handler, no image but inline PNGs."""
    tags = Tags(html)
    assert "script" not in tags.names()
    assert tags.handlers() == []
    assert all(a.get("src", "").startswith("data:image/png;base64,") for t, a in tags.tags if t == "img")
    assert "\x1b" not in html and "\x07" not in html


# --- pieces, without grading --------------------------------------------------------------------------------


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


def test_file_stems_are_safe_distinct_and_leave_the_index_alone():
    students = ["alice", "Alice", "index", "../etc/passwd", "<b>x</b>", ".hidden", "a b", "åsa"]
    stems = file_stems(students)
    assert stems["alice"] == "alice"
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", s) for s in stems.values()), stems
    assert len({s.lower() for s in stems.values()} | {"index"}) == len(students) + 1


def test_history_of_any_measure_is_read_and_drawn(tmp_path):
    """lab3's history holds mean squared errors: every 1-D numeric array is a curve, the rest is left out."""
    (tmp_path / "outputs").mkdir()
    np.savez(tmp_path / "outputs" / "history.npz", train_mse=np.array([0.09, 0.03, np.inf, 0.012]),
             val_mse=np.array([0.1, 0.04, 0.02, 0.015]), grid=np.zeros((2, 2)), names=np.array(["a", "b"]))
    history = read_history(tmp_path)
    assert sorted(history) == ["train_mse", "val_mse"]
    assert np.isnan(history["train_mse"][2]) and history["val_mse"][-1] == 0.015
    uri = curves_figure(history)
    assert base64.b64decode(uri.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_history(tmp_path / "nowhere") == {}


def test_a_long_or_odd_traceback_is_capped(tmp_path):
    """The executed notebook passed through student code: a huge traceback is cut, an odd one read as text."""
    error = nbformat.v4.new_output("error", ename="E", evalue="v" * 5000,
                                   traceback=["\x1b[31mfirst\x1b[0m " + "y" * 10_000, "last line"])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[error])])
    nbformat.write(nb, tmp_path / "executed.ipynb")
    result = SubmissionResult(lab="toy", student="s", submission_hash="h", lab_version="1", rubric_hash="r",
                              verdict="U", criteria=[], execution=ExecutionResult(status="error", cell=1))
    found = failure(result, tmp_path)
    assert found.traceback.startswith("first y") and found.traceback.endswith("y\nlast line")
    assert len(found.traceback) < 4100 and "characters left out" in found.traceback
    assert found.error.startswith("E: vvv") and len(found.error) < 1100
    odd = nb.cells[0].outputs[0]
    odd.traceback = "one string"
    (tmp_path / "executed.ipynb").write_text(json.dumps(nb))
    assert failure(result, tmp_path).traceback == "one string"
    assert failure(result.model_copy(update={"execution": ExecutionResult(status="ok")}), tmp_path) is None


def test_the_confusion_matrix_only_where_the_lab_allows_it(course):
    assert confusion_criterion(load_lab("lab1-mlp", REPO)).id == "test-accuracy"  # accuracy, public val split
    assert confusion_criterion(load_lab("lab3-autoencoder", REPO)) is None  # mean squared error: no classes
    assert confusion_criterion(load_lab("toy", course)) is None  # classes, but no public val split


def recorded(store: Store, student: str = "ana") -> SubmissionResult:
    result = SubmissionResult(
        lab="toy", student=student, submission_hash="abc", lab_version="1+x", rubric_hash="r1", verdict="U",
        criteria=[
            CriterionResult(id="test-accuracy", kind="accuracy", status="pass", value=0.93, threshold=0.9,
                            message="Accuracy on the hidden test set is 0.930.", advice="Nothing to do."),
            CriterionResult(id="reflection", kind="reflection", status="fail", value=12, threshold=30,
                            message="Too short (12 words).", advice="Write at least 30 words.",
                            details={"text": "SECRET-EVIDENCE " + PAYLOAD}),
        ],
        execution=ExecutionResult(status="ok", duration_s=2.5, peak_memory_mb=300.4, device="cuda",
                                  peak_gpu_memory_mb=812.0),
        metrics={"hidden_metric": 0.5}, notes=["A note: " + PAYLOAD],
    )
    store.record(result)
    return result


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
               f"{decided.at:%Y-%m-%d %H:%M} UTC: Short, but &lt;script&gt;" in text.replace("&#x27;", "'")
        assert "Verdict: G" in text and "every required criterion is met" in text
        assert "A note: &lt;script&gt;" in text  # notes shown
        assert "SECRET-EVIDENCE" not in text and "hidden_metric" not in text  # the TA's evidence is not
        assert "Not available" in text  # no probe artifacts: no training history
        assert "812 MB" in text and "cuda" in text and "300 MB" in text


def test_write_feedback_says_what_is_missing(course, store, tmp_path):
    lab = load_lab("toy", course)
    with pytest.raises(UserError, match="no results for lab 'toy'"):
        write_feedback(lab, store, tmp_path / "out")
    recorded(store, "ana")
    recorded(store, "index")
    with pytest.raises(UserError, match="no result for 'bo'"):
        write_feedback(lab, store, tmp_path / "out", students=["ana", "bo"])
    written = write_feedback(lab, store, tmp_path / "out", students=["index"])
    names = sorted(p.name for p in written)
    assert len(names) == 3 and "index.html" in names and "ana.html" not in names
    page = next(p for p in written if p.suffix == ".html" and p.name != "index.html")
    assert f'href="{page.name}"' in (tmp_path / "out" / "index.html").read_text()  # the student, not the index


# --- the toy course: a hostile notebook and a hidden test -----------------------------------------------------


@pytest.fixture(scope="module")
def toy_pages(tmp_path_factory):
    """(results, {file name: text}, out folder) for two toy students graded once on the local backend."""
    tmp = tmp_path_factory.mktemp("feedback-toy")
    root = tmp / "course"
    shutil.copytree(FIXTURE_COURSE, root)
    folder = tmp / "submissions"
    folder.mkdir()
    nbformat.write(notebook(HOSTILE), folder / "hostile.ipynb")
    nbformat.write(notebook(BAD_SHAPE), folder / "badshape.ipynb")
    lab = load_lab("toy", root)
    store = Store(tmp / "db" / "grades.db")
    grader = Grader(lab, store, get_backend("local"), Options(jobs=2, scratch=tmp))
    results = {r.student: r for r in grader.grade_all(discover(folder))}
    out = tmp / "feedback"
    written = write_feedback(lab, store, out)
    yield results, {p.name: p.read_text(encoding="utf-8") for p in written}, out
    store.close()


@pytest.mark.slow
def test_hostile_output_is_text_on_the_page(toy_pages):
    results, pages, _ = toy_pages
    assert results["hostile"].execution.status == "error"
    html = pages["hostile.html"]
    assert_inert(html)
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
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
def test_hidden_tests_are_counted_not_named(toy_pages):
    results, pages, _ = toy_pages
    hidden = [t for t in results["badshape"].tests if t.name == HIDDEN_TEST]
    assert hidden and not hidden[0].public and HIDDEN_MESSAGE in hidden[0].message  # the TA has it
    for name, text in pages.items():
        assert HIDDEN_TEST not in text and HIDDEN_MESSAGE not in text, name
    assert "2 hidden tests: 1 passed" in pages["badshape.html"] and "2 hidden tests: 1 passed" in pages["badshape.md"]
    index = pages["index.html"]
    assert 'href="badshape.html"' in index and 'href="hostile.html"' in index


@pytest.mark.slow
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


# --- lab1-mlp: a real cohort --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab1_pages(graded_cohort, tmp_path_factory):
    results, store = graded_cohort("lab1-mlp")
    out = tmp_path_factory.mktemp("feedback-lab1")
    lab = load_lab("lab1-mlp", REPO)
    written = write_feedback(lab, store, out)
    return lab, store, results, {p.name: p.read_text(encoding="utf-8") for p in written}


@pytest.mark.slow
def test_every_lab1_page_has_the_verdict_and_every_criterion(lab1_pages):
    lab, _, results, pages = lab1_pages
    assert sorted(pages) == sorted([f"{s}.html" for s in results] + [f"{s}.md" for s in results] + ["index.html"])
    for student, r in results.items():
        html, md = pages[f"{student}.html"], pages[f"{student}.md"]
        assert_inert(html)
        assert_inert(markdown(md))
        assert f"Verdict: {r.verdict}" in html and f"Verdict: {r.verdict}" in md
        for c in r.criteria:
            assert f"<strong>{c.id}</strong>" in html and f"**{md_text(c.id)}**" in md
        assert f"{r.execution.peak_memory_mb:.0f} MB" in html
        assert f'href="{student}.html"' in pages["index.html"]


@pytest.mark.slow
def test_lab1_training_curves_and_confusion_matrix_from_the_exports(lab1_pages):
    lab, store, results, pages = lab1_pages
    good = results["good"]
    probe = store.artifacts(good)["probe"] / "outputs"
    with np.load(probe / "history.npz") as f:
        epochs = len(f["val_accuracy"])
    html = pages["good.html"]
    assert '<img src="data:image/png;base64,' in html
    assert f"val_accuracy: {epochs} epochs" in html
    assert f"{md_text('train_accuracy')}: {epochs} epochs" in pages["good.md"]
    # The matrix is the validation split's, counted here independently; the hidden test split's is never shown.
    with np.load(probe / "scores.npz") as f:
        guesses = f["val"].argmax(axis=1)
    labels = lab.split("val")[1]
    n = int(labels.max()) + 1
    for i in range(n):
        row = "".join(f"<td>{np.sum((labels == i) & (guesses == j))}</td>" for j in range(n))
        assert f"<tr><th>{i}</th>{row}</tr>" in html
    assert f"Accuracy {np.mean(guesses == labels):.3f} on the val set" in html
    assert "Confusion matrix on the val set" in pages["good.md"]
    assert "Confusion matrix on the test" not in html
    for student in ("crash", "timeout"):  # nothing was trained to the end: nothing to draw
        assert "Not available" in pages[f"{student}.html"] and "Confusion matrix" not in pages[f"{student}.html"]


@pytest.mark.slow
def test_lab1_pages_show_where_the_notebook_stopped(lab1_pages):
    _, store, results, pages = lab1_pages
    crash = results["crash"]
    nb = nbformat.read(store.artifacts(crash)["execute"] / "executed.ipynb", as_version=4)
    error = next(o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error")
    html = pages["crash.html"]
    stopped = html[html.index("Where the notebook stopped"):]
    assert f"<strong>Cell {crash.execution.cell}</strong>" in stopped
    pre = re.search(r"<pre>(.*?)</pre>", stopped, re.S).group(1)
    assert pre.rstrip().endswith(f"{error.ename}: {error.evalue}")
    assert "Traceback (most recent call last)" in pre and len(unescape(pre)) <= 4100
    assert "```" in pages["crash.md"] and error.ename in pages["crash.md"]
    timeout = pages["timeout.html"]
    assert "Where the notebook stopped" in timeout and "(cell-timeout)" in timeout
    assert "Where the notebook stopped" not in pages["good.html"]
