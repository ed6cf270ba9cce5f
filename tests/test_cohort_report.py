"""The cohort report: counts, figures, review links on a real graded cohort; gaps on made-up ones.

Escaping hostile ids and messages, and rendering them in a browser: tests/hostile/test_payloads_in_pages.py.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from page_checks import assert_offline, made_up, pngs

from autograder.errors import UserError
from autograder.publish.cohort_report import write_report
from autograder.publish.feedback import write_feedback
from autograder.results import CriterionResult
from autograder.store import Store


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


