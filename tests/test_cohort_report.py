"""The cohort report: counts, figures, review links on a real graded cohort; escaping and gaps on made-up ones."""

from __future__ import annotations

import base64
import re
from collections import Counter
from pathlib import Path

import pytest
from browser import chromium, render
from conftest import REPO

from autograder.cohort_report import write_report
from autograder.errors import UserError
from autograder.feedback import write_feedback
from autograder.lab import load_lab
from autograder.results import CriterionResult, ExecutionResult, SubmissionResult
from autograder.store import Store

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
ATTRIBUTE = re.compile(r'\b(?:src|href)="([^"]*)"')
HOSTILE = '$x^{$<script>alert("x")</script>\x1b[31m'  # mathtext first: figures cut long ids
PAYLOAD = "<img src=x onerror=alert(1)>\x1b]0;pwned\x07 & more"


@pytest.fixture(scope="module")
def lab1():
    return load_lab("lab1-mlp", REPO)


def pngs(text: str) -> list[bytes]:
    return [base64.b64decode(data) for data in PNG.findall(text)]


def assert_offline(text: str) -> None:
    """Nothing the page would fetch: every src and href is inline data or a relative path."""
    assert not re.search(r"https?://", text)
    for value in ATTRIBUTE.findall(text):
        assert value.startswith("data:image/png;base64,") or not re.match(r"[a-z][a-z0-9+.-]*:|//", value), value


@pytest.mark.slow
def test_report_of_a_graded_cohort(graded_cohort, lab1, tmp_path: Path):
    results, store = graded_cohort("lab1-mlp")
    out = write_report(lab1, store, tmp_path / "staff" / "report.html")
    text = out.read_text(encoding="utf-8")

    counts = Counter(r.verdict for r in results.values())
    for verdict in ("G", "U", "review", "error"):
        assert f'<td class="num {verdict}">{counts[verdict]}</td>' in text
    assert f'<td class="num">{len(results)}</td>' in text

    # the hidden metric against its bar, and who has no value for it
    assert "at least 0.75 passes (min; higher is better)" in text
    unmeasured = sum(next(c for c in r.criteria if c.id == "test-accuracy").value is None for r in results.values())
    assert unmeasured and f"{unmeasured} students without a value" in text

    # every student waiting for a human is linked to the page `autograder feedback` writes for them
    waiting = {s for s, r in results.items()
               if r.verdict in ("review", "error") or any(c.status == "review" for c in r.criteria)}
    assert waiting
    write_feedback(lab1, store, out.parent / "feedback", students=sorted(waiting))
    queue = text[text.index('<table id="review">'):]
    queue = queue[:queue.index("</table>")]
    linked = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', queue))
    assert set(linked.values()) == waiting
    for href in linked:
        assert (out.parent / href).is_file(), href

    slowest = max(results.values(), key=lambda r: r.execution.duration_s)
    table = text[text.index('<table id="slowest">'):]
    assert re.search(r"<tr><td>([^<]*)</td>", table.split("</tr>", 1)[1]).group(1) == slowest.student

    figures = pngs(text)
    assert len(figures) == 4  # metric histogram, train-vs-hidden scatter, criteria, run time and memory
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000 for png in figures)
    assert_offline(text)


def test_an_empty_lab_is_a_user_error(lab1, tmp_path: Path):
    store = Store(tmp_path / "grades.db")
    with pytest.raises(UserError, match="no results for lab 'lab1-mlp'") as raised:
        write_report(lab1, store, tmp_path / "report.html")
    assert "autograder grade lab1-mlp" in raised.value.hint
    assert not (tmp_path / "report.html").exists()


def made_up(lab, student: str, verdict: str, criteria: list[CriterionResult], execution: ExecutionResult | None,
            notes: list[str] = ()) -> SubmissionResult:
    return SubmissionResult(lab=lab.name, student=student, submission_hash="0" * 64, lab_version=lab.version,
                            rubric_hash=lab.rubric_hash, verdict=verdict, criteria=criteria, execution=execution,
                            notes=list(notes))


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

    store.record(made_up(lab1, HOSTILE, "review", measured(0.8, 0.99, "fail") + [
        CriterionResult(id="reflection", kind="reflection", status="review", message=PAYLOAD,
                        details={"text": "<b>the TA's evidence</b>"})],
        ExecutionResult(status="ok", duration_s=12.5, peak_memory_mb=400.0, message=PAYLOAD), notes=[PAYLOAD]))
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
    assert "TA&#x27;s evidence" not in body  # details are not dumped
    assert "$x^{$&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<" in body
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


def test_a_cohort_without_measurements(lab1, tmp_path: Path):
    store = Store(tmp_path / "grades.db")
    crashed = made_up(lab1, "crashed", "error", [
        CriterionResult(id="runs", kind="notebook-runs", status="error", message="the sandbox failed")], None)
    store.record(crashed.model_copy(update={"lab_version": "2025.1+00000000"}))
    text = write_report(lab1, store, tmp_path / "report.html", feedback_dir=None).read_text(encoding="utf-8")
    assert "1 of these results was graded with another lab version or rubric" in text
    assert "No run time or memory was recorded." in text
    assert "1 student without a value" in text and "1 student without values" in text
    assert len(pngs(text)) == 1  # the criteria chart only
    assert "<a href" not in text
    store.close()


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_the_report_renders_in_a_browser(lab1, hostile_store: Store, tmp_path: Path):
    out = write_report(lab1, hostile_store, tmp_path / "report.html")
    page = render(out, tmp_path / "report.png")
    assert page.errors == []
    assert page.screenshot.stat().st_size > 5000
    assert "<script" not in page.dom.split("<body>", 1)[1]
    assert page.dom.count("<img") == 4
