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


def test_undo_restores_the_decision_before_and_then_none(store):
    from autograder.grading.decisions import undo

    store.record(result(reflection="review"))
    override(store, "toy", "ana", "reflection", "fail", "Copied.", by="tove")
    override(store, "toy", "ana", "reflection", "pass", "Allowed after all.", by="ali")
    back = undo(store, "toy", "ana", "reflection", by="ali")
    c = back.criteria[1]
    assert (back.verdict, c.status, c.override.note, c.override.by, c.override.was) == ("U", "fail", "Copied.",
                                                                                          "tove", "review")
    assert apply_overrides(result(reflection="review"), store).verdict == "U"  # a regrade keeps the restored one
    none = undo(store, "toy", "ana", "reflection", by="ali")
    assert (none.verdict, none.criteria[1].status, none.criteria[1].override) == ("review", "review", None)
    assert none.criteria[1].advice == ""  # the grader's own advice is back, not "a teacher decided"
    assert "grader_advice" not in none.criteria[1].details
    with pytest.raises(UserError, match="no decision"):
        undo(store, "toy", "ana", "reflection")
    rows = store.override_rows("toy", "ana", "reflection")
    assert [(r.decision.status if r.decision else None, r.withdraws is not None, r.by) for r in rows] == [
        ("fail", False, "tove"), ("pass", False, "ali"), ("fail", True, "ali"), (None, True, "ali")]


def test_undo_after_clear_and_on_an_earlier_hand_in(store):
    from autograder.grading.decisions import undo

    store.record(result(reflection="review"))
    override(store, "toy", "ana", "reflection", "fail", "Copied.", by="tove")
    override(store, "toy", "ana", "reflection", "clear", "", by="tove")
    with pytest.raises(UserError, match="no decision"):
        undo(store, "toy", "ana", "reflection")  # a clear withdrew everything: nothing stands to undo
    override(store, "toy", "ana", "reflection", "pass", "Fine.", by="tove")
    store.record(result(sha="new", reflection="review"))  # a new hand-in: the decision was on the old one
    with pytest.raises(UserError, match="current hand-in"):
        undo(store, "toy", "ana", "reflection")


def test_two_decisions_at_once_on_one_student_are_both_kept(tmp_path):
    import threading

    path = tmp_path / "g.db"
    first = Store(path)
    two = result(reflection="review")
    two.criteria[0].status = "review"
    first.record(two)
    second = Store(path)  # another connection, as a second process would have
    barrier = threading.Barrier(2)

    def decide(store, criterion, by):
        barrier.wait()
        for n in range(10):
            override(store, "toy", "ana", criterion, "pass" if n % 2 else "fail", f"round {n}", by=by)

    threads = [threading.Thread(target=decide, args=(first, "acc", "tove")),
               threading.Thread(target=decide, args=(second, "reflection", "ali"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = {c.id: c for c in first.latest_of("toy", "ana").criteria}
    assert (final["acc"].override.note, final["acc"].override.by) == ("round 9", "tove")
    assert (final["reflection"].override.note, final["reflection"].override.by) == ("round 9", "ali")
    first.close()
    second.close()


def test_a_schema_4_store_gains_the_undo_columns(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', '4');"
                     "CREATE TABLE overrides (id INTEGER PRIMARY KEY AUTOINCREMENT, lab TEXT NOT NULL, student TEXT "
                     "NOT NULL, criterion TEXT NOT NULL, submission_hash TEXT NOT NULL, decision TEXT NOT NULL, "
                     "at TEXT NOT NULL);")
    db.execute("INSERT INTO overrides (lab, student, criterion, submission_hash, decision, at) VALUES "
               "('toy', 'ana', 'reflection', 'abc', ?, '2026-01-01T00:00:00+00:00')",
               ('{"status": "pass", "note": "ok", "by": "tove", "at": "2026-01-01T00:00:00Z"}',))
    db.commit()
    db.close()
    store = Store(path)
    store.record(result(reflection="review"))
    assert store.overrides("toy", "ana")["reflection"][1].by == "tove"
    rows = store.override_rows("toy", "ana")
    assert (rows[0].withdraws, rows[0].by) == (None, "")
    from autograder.grading.decisions import undo

    assert undo(store, "toy", "ana", "reflection", by="ali").verdict == "review"
    store.close()


def test_a_decision_is_all_or_nothing(store, monkeypatch):
    store.record(result(reflection="review"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "record", broken)
    with pytest.raises(OSError):
        override(store, "toy", "ana", "reflection", "pass", "ok", by="tove")
    assert store.override_rows("toy", "ana") == []  # the override row went with the failed result
    monkeypatch.undo()
    from autograder.grading.decisions import record_decided

    override(store, "toy", "ana", "reflection", "pass", "ok", by="tove")
    regraded = record_decided(store, result(reflection="review"))  # a regrade recorded with the decision on
    assert regraded.verdict == "G" and store.latest_of("toy", "ana").criteria[1].override.by == "tove"
