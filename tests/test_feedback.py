"""Feedback pages: what a student reads, from real graded results; nothing hidden (hidden tests' names and
messages, the TA's details, hidden splits) gets through. Hostile output staying text: tests/hostile/."""

from __future__ import annotations

import base64
import json
import re
from html import unescape

import nbformat
import numpy as np
import pytest
from conftest import REPO
from page_checks import assert_inert, markdown, recorded

from autograder.errors import UserError
from autograder.labs.lab import load_lab
from autograder.publish.feedback import (
    confusion_criterion,
    curves_figure,
    failure,
    file_stems,
    md_text,
    read_history,
    write_feedback,
)
from autograder.results import ExecutionResult, SubmissionResult

# BAD_SHAPE (page_checks) runs, but its predict fails the toy lab's hidden test, whose name and message are not
# public.
HIDDEN_TEST = "test_predicts_one_label_per_input"
HIDDEN_MESSAGE = "predict returned shape"


# --- pieces, without grading --------------------------------------------------------------------------------


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


def test_a_traceback_names_no_host_path(tmp_path):
    """The work dir, the grader's Python and the course folder stay off the page; the files keep their names."""
    lines = ["\x1b[0;31mFileNotFoundError\x1b[0m Traceback (most recent call last)",
             "File \x1b[0;32m/tmp/autograder-execute-k2j/rules.py:7\x1b[0m, in \x1b[0;36mpredict\x1b[0m(X)",
             "File /srv/course/.venv/lib/python3.12/site-packages/numpy/lib/npyio.py:427, in load(file)",
             "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/autograder-execute-k2j/w.npy'"]
    error = nbformat.v4.new_output("error", ename="FileNotFoundError", traceback=lines,
                                   evalue="[Errno 2] No such file or directory: '/tmp/autograder-execute-k2j/w.npy'")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[error])]),
                   tmp_path / "executed.ipynb")
    result = SubmissionResult(lab="toy", student="s", submission_hash="h", lab_version="1", rubric_hash="r",
                              verdict="U", criteria=[], execution=ExecutionResult(status="error", cell=1))
    found = failure(result, tmp_path)
    for text in (found.traceback, found.error):
        assert "/tmp" not in text and "/srv" not in text and "autograder-execute" not in text
    assert "File rules.py:7, in predict(X)" in found.traceback
    assert "File numpy/lib/npyio.py:427, in load(file)" in found.traceback
    assert found.error == "FileNotFoundError: [Errno 2] No such file or directory: 'w.npy'"


def test_the_confusion_matrix_only_where_the_lab_allows_it(course):
    assert confusion_criterion(load_lab("lab1-mlp", REPO)).id == "test-accuracy"  # accuracy, public val split
    assert confusion_criterion(load_lab("lab3-autoencoder", REPO)) is None  # mean squared error: no classes
    assert confusion_criterion(load_lab("toy", course)) is None  # classes, but no public val split


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


# --- the toy course (`toy_pages` in conftest.py): a hidden test ----------------------------------------------


@pytest.mark.slow
def test_hidden_tests_are_counted_not_named(toy_pages):
    results, pages, _ = toy_pages
    hidden = [t for t in results["badshape"].tests if t.name == HIDDEN_TEST]
    assert hidden and not hidden[0].public and HIDDEN_MESSAGE in hidden[0].message  # the TA has it
    for name, text in pages.items():
        assert HIDDEN_TEST not in text and HIDDEN_MESSAGE not in text, name
    assert "2 hidden tests: 1 passed" in pages["badshape.html"] and "2 hidden tests: 1 passed" in pages["badshape.md"]
    # The toy lab records no training history: no section says there is none.
    assert all("Training curves" not in text and "Not available" not in text for text in pages.values())
    index = pages["index.html"]
    assert 'href="badshape.html"' in index and 'href="hostile.html"' in index


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
