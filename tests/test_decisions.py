"""TA decisions: overrides survive regrades (not new hand-ins), and `review` shows the evidence."""

from __future__ import annotations

import sqlite3

import pytest

from autograder.cli import main
from autograder.errors import UserError
from autograder.grading.decisions import apply_overrides, override, waiting
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

SHORT = "Overfitting can hurt people."


def result(sha="abc", reflection="fail", student="ana") -> SubmissionResult:
    return SubmissionResult(
        lab="toy", student=student, submission_hash=sha, lab_version="1+x", rubric_hash="r1",
        verdict="U" if reflection == "fail" else "review" if reflection == "review" else "G",
        criteria=[
            CriterionResult(id="acc", kind="metric", status="pass", value=0.93, threshold=0.9, message="Fine."),
            CriterionResult(id="reflection", kind="reflection", status=reflection, value=12, threshold=30,
                            message="Too short.", details={"text": SHORT}),
        ],
    )


def test_an_override_changes_the_verdict_and_says_who_and_why(store):
    store.record(result())
    updated = override(store, "toy", "ana", "reflection", "pass", "Short but answers both questions.", by="tove")
    assert updated.verdict == "G"
    c = updated.criteria[1]
    assert (c.status, c.override.status, c.override.was, c.override.by) == ("pass", "pass", "fail", "tove")
    assert c.override.note == "Short but answers both questions."
    assert store.latest_of("toy", "ana").verdict == "G"  # recorded as a new row; history kept
    assert sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2


def test_an_override_applies_to_the_same_submission_only(store):
    store.record(result())
    override(store, "toy", "ana", "reflection", "pass", "ok", by="tove")
    regraded = apply_overrides(result(), store)  # same hand-in, graded again
    assert regraded.verdict == "G" and regraded.criteria[1].override.was == "fail"
    new = apply_overrides(result(sha="other"), store)  # a new hand-in is judged afresh
    assert new.verdict == "U" and new.criteria[1].override is None
    assert any("earlier hand-in" in n for n in new.notes)


def test_clear_withdraws_a_decision(store):
    store.record(result())
    override(store, "toy", "ana", "reflection", "pass", "ok", by="tove")
    cleared = override(store, "toy", "ana", "reflection", "clear", "", by="tove")
    assert cleared.verdict == "U" and cleared.criteria[1].status == "fail" and cleared.criteria[1].override is None
    assert apply_overrides(result(), store).verdict == "U"


def test_override_mistakes_are_user_errors(store):
    store.record(result())
    with pytest.raises(UserError, match="no criterion 'reflektion'.*") as exc:
        override(store, "toy", "ana", "reflektion", "pass", "ok")
    assert "reflection" in exc.value.hint
    with pytest.raises(UserError, match="no result for 'bo'"):
        override(store, "toy", "bo", "reflection", "pass", "ok")
    with pytest.raises(UserError, match="--note is required"):
        override(store, "toy", "ana", "reflection", "fail", "  ")


def test_waiting_lists_reviews_with_their_criteria(store):
    store.record(result(student="ana", reflection="review"))
    store.record(result(student="bo", reflection="pass"))
    queue = waiting(store, "toy")
    assert [(r.student, [c.id for c in items]) for r, items in queue] == [("ana", ["reflection"])]


def test_an_older_store_gains_the_overrides_table(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', '1');")
    db.close()
    store = Store(path)
    store.add_override("toy", "ana", "reflection", "abc", None)
    assert store.overrides("toy", "ana") == {}
    store.close()


@pytest.mark.slow
def test_a_forced_regrade_keeps_the_decision(course, submissions, tmp_path, capsys):
    submissions("ana", reflection=SHORT)
    db = tmp_path / "g.db"
    grade = ["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db)]
    assert main(grade) == 0
    assert "U" in capsys.readouterr().out
    assert main(["override", "toy", "ana", "reflection", "pass", "--note", "Brief, but it is all there.",
                 "--by", "tove", "--db", str(db)]) == 0
    assert "ana: G" in capsys.readouterr().out

    assert main([*grade, "--force"]) == 0
    table = capsys.readouterr().out
    assert "G (teacher: reflection)" in table
    assert main(["show", "toy", "ana", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "Decided by tove" in shown and "Brief, but it is all there." in shown

    submissions("ana", reflection=SHORT + " A new hand-in.")  # a changed notebook is judged afresh
    assert main(grade) == 0
    assert "teacher" not in capsys.readouterr().out
    assert main(["show", "toy", "ana", "--db", str(db)]) == 0
    assert "earlier hand-in" in capsys.readouterr().out


@pytest.mark.slow
def test_review_lists_the_evidence(course, submissions, tmp_path, capsys):
    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace("min_words: 30", "min_words: 30\n    on_fail: review"))
    submissions("ana", reflection=SHORT)
    db = tmp_path / "g.db"
    assert main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["review", "toy", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "ana (review)" in shown and SHORT in shown and "1 submissions wait" in shown
    assert main(["review", "nolab", "--db", str(db)]) == 2
    assert "labs with results: toy" in capsys.readouterr().err
