"""The staff's DataFrames over a real SQLite store: columns and types, history in order, per-test outcomes,
hostile text kept as it is, empty stores, and a store read while a writer holds it."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from autograder import frames
from autograder.errors import UserError
from autograder.results import CriterionResult, HiddenTestResult, Lateness, Override, SubmissionResult
from autograder.store import HandIn, Store

T0 = datetime(2026, 1, 15, 9, tzinfo=UTC)
HOSTILE_IDS = ["anna-lena\u0301", "\u202eevil\u202c", "zw\u200bsp", "名前", "=HYPERLINK(\"http://x\")", "a,b\nc"]
HOSTILE_MESSAGE = 'Cell 3: "1,2" != \'3\'\n=HYPERLINK("http://evil","click"), then +SUM(A1)'


def sample_tests() -> list[HiddenTestResult]:
    return [HiddenTestResult(name="test_shapes", outcome="passed", public=True, kit=True),
            HiddenTestResult(name="test_forward[relu]", outcome="failed", message="expected 0.3217", public=True),
            HiddenTestResult(name="test_secret_weights", outcome="failed", message="expected 0.8811"),
            HiddenTestResult(name="test_slow", outcome="skipped", weight=2.0)]


def result(student: str, verdict: str = "G", lab: str = "lab1-mlp", at: datetime = T0, sha: str = "",
           message: str = "Fine.", tests: list[HiddenTestResult] | None = None, **kw) -> SubmissionResult:
    ran = tests if tests is not None else []
    criteria = [
        CriterionResult(id="acc", kind="accuracy", status="pass" if verdict == "G" else "fail", value=0.91,
                        threshold=0.9, message=message),
        CriterionResult(id="runs", kind="notebook-runs", status="pass", value=12, message="Ran."),
        CriterionResult(id="hidden-tests", kind="hidden-tests", status="pass" if verdict == "G" else "fail",
                        message="Tests.", details={"tests": [t.model_dump() for t in ran]} if ran else {}),
        CriterionResult(id="reflection", kind="reflection", status="review" if verdict == "review" else "pass",
                        message="Ok.", required=False),
    ]
    return SubmissionResult(lab=lab, student=student, submission_hash=sha or f"sha-{student}", lab_version="1",
                            rubric_hash="r", verdict=verdict, criteria=criteria, tests=ran, graded_at=at, **kw)


@pytest.fixture
def cohort(store: Store) -> Store:
    """ana: U, then G on a new hand-in, then a teacher's decision; bo U; cy review; lab2: ana G."""
    store.record(result("ana", "U", at=T0, sha="first"))
    store.record(result("bo", "U", at=T0 + timedelta(minutes=1), tests=sample_tests()))
    store.record(result("ana", "G", at=T0 + timedelta(hours=1), sha="second", tests=sample_tests()))
    decided = result("ana", "G", at=T0 + timedelta(hours=2), sha="second", tests=sample_tests())
    decided.criteria[3].override = Override(status="pass", note="Fine by me.", by="ta", was="review")
    store.record(decided)
    store.record(result("cy", "review", at=T0 + timedelta(minutes=2)))
    store.record(result("ana", "G", lab="lab2-cnn", at=T0 + timedelta(days=7)))
    return store


def test_results_has_a_row_per_student_and_criterion_with_typed_columns(cohort):
    df = frames.results(cohort)
    assert list(df.columns) == list(frames.RESULT_COLUMNS)
    assert len(df) == 4 * 4  # (ana, bo, cy on lab1; ana on lab2) x 4 criteria: current results only
    assert isinstance(df.verdict.dtype, pd.CategoricalDtype) and list(df.verdict.cat.categories) == [
        "G", "U", "review", "error"]
    assert list(df.status.cat.categories) == ["pass", "fail", "review", "error", "skipped"]
    assert str(df.graded_at.dt.tz) == "UTC" and df.value.dtype == float and df.student.dtype == "string"
    lab1 = frames.results(cohort, lab="lab1-mlp")
    ana = lab1[lab1.student == "ana"].set_index("criterion")
    assert ana.loc["acc", "value"] == 0.91 and ana.loc["acc", "threshold"] == 0.9
    assert ana.loc["runs", "value"] == 12 and pd.isna(ana.loc["runs", "threshold"])
    assert ana.loc["reflection", "overridden"] and not ana.loc["acc", "overridden"]
    assert not ana.loc["reflection", "required"]
    assert ana.loc["acc", "graded_at"] == pd.Timestamp(T0 + timedelta(hours=2))
    # counts over categories show zeros: what a pass-rate table needs
    counts = lab1[lab1.criterion == "acc"].status.value_counts()
    assert counts["pass"] == 1 and counts["fail"] == 2 and counts["error"] == 0


def test_verdicts_one_row_per_student_and_lab(cohort):
    df = frames.verdicts(cohort)
    assert list(df.columns) == list(frames.VERDICT_COLUMNS)
    assert df[["lab", "student", "verdict"]].astype(str).values.tolist() == [
        ["lab1-mlp", "ana", "G"], ["lab1-mlp", "bo", "U"], ["lab1-mlp", "cy", "review"], ["lab2-cnn", "ana", "G"]]
    assert df.set_index(["lab", "student"]).loc[("lab1-mlp", "bo"), "failed"] == "acc, hidden-tests"
    assert df.overridden.tolist() == [True, False, False, False]
    assert str(df.handed_in.dtype) == "datetime64[us, UTC]"


def test_hand_in_times_and_lateness_come_with_the_results(store):
    late = Lateness(deadline=T0 - timedelta(days=2), by_s=3600 * 26, extended=True)
    store.record(result("ana", handed_in=T0 - timedelta(days=1), late=late))
    store.record(result("bo", handed_in=T0 - timedelta(days=3)))
    store.record(result("cy"))  # intake knew no time
    df = frames.verdicts(store).set_index("student")
    assert df.handed_in.tolist()[:2] == [pd.Timestamp(T0 - timedelta(days=1)), pd.Timestamp(T0 - timedelta(days=3))]
    assert pd.isna(df.loc["cy", "handed_in"])
    assert df.late.to_dict() == {"ana": True, "bo": False, "cy": False}
    assert df.loc["ana", "late_by"] == pd.Timedelta(hours=26) and pd.isna(df.loc["bo", "late_by"])
    assert frames.history(store).late.tolist() == [True, False, False]


def test_handins_keep_every_hand_in_graded_or_not(store):
    first = HandIn(lab="lab1-mlp", student="ana", submission_hash="first", handed_in=T0, originals=["lab1.ipynb"],
                   source="canvas")
    second = HandIn(lab="lab1-mlp", student="ana", submission_hash="second", handed_in=T0 + timedelta(hours=3),
                    late=Lateness(deadline=T0 + timedelta(hours=1), by_s=7200), source="canvas",
                    originals=["lab1-1.ipynb", "cnn,\n=1.py"])
    for h in (first, second):
        store.add_handin(h)
    store.record(result("ana", sha="second", handed_in=second.handed_in, late=second.late))
    df = frames.handins(store)
    assert list(df.columns) == list(frames.HANDIN_COLUMNS)
    assert df.submission_hash.tolist() == ["first", "second"] and df.graded.tolist() == [False, True]
    assert df.late.tolist() == [False, True] and df.late_by.tolist()[1] == pd.Timedelta(hours=2)
    assert df.deadline.tolist()[1] == pd.Timestamp(T0 + timedelta(hours=1)) and pd.isna(df.deadline[0])
    assert df.originals[1] == "lab1-1.ipynb | cnn,\n=1.py" and str(df.handed_in.dt.tz) == "UTC"
    assert frames.handins(store, lab="lab1-mlp", student="bo").empty


def test_a_store_from_before_hand_ins_reads_without_them(tmp_path):
    """A read-only analysis never upgrades a store: one without the hand-ins table has no hand-ins."""
    path = tmp_path / "old.db"
    store = Store(path)
    store.record(result("ana"))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE handins")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    assert frames.handins(path).empty and len(frames.verdicts(path)) == 1


def test_history_is_every_recorded_result_in_order_with_the_current_one_marked(cohort):
    df = frames.history(cohort, lab="lab1-mlp")
    assert list(df.columns) == list(frames.HISTORY_COLUMNS)
    assert df.seq.tolist() == [0, 1, 2, 3, 4]
    assert df.student.tolist() == ["ana", "bo", "ana", "ana", "cy"]
    ana = df[df.student == "ana"]
    assert ana.verdict.astype(str).tolist() == ["U", "G", "G"]
    assert ana.submission_hash.tolist() == ["first", "second", "second"]  # a decision: same hand-in, recorded again
    assert ana.current.tolist() == [False, False, True] and ana.overridden.tolist() == [False, False, True]
    assert df.graded_at.is_monotonic_increasing is False  # the store's order, not the clock's: bo before ana's G
    assert frames.history(cohort, student="ana").lab.astype(str).tolist() == ["lab1-mlp"] * 3 + ["lab2-cnn"]
    assert len(frames.history(cohort)) == 6


def test_tests_lists_each_test_outcome_public_and_hidden(cohort):
    df = frames.tests(cohort, lab="lab1-mlp")
    assert list(df.columns) == list(frames.TEST_COLUMNS)
    assert sorted(set(df.student)) == ["ana", "bo"]  # cy's tests did not run: no rows
    ana = df[df.student == "ana"].set_index("name")
    assert ana.outcome.astype(str).to_dict() == {"test_shapes": "passed", "test_forward[relu]": "failed",
                                                  "test_secret_weights": "failed", "test_slow": "skipped"}
    assert ana.public.to_dict() == {"test_shapes": True, "test_forward[relu]": True, "test_secret_weights": False,
                                    "test_slow": False}
    assert ana.loc["test_secret_weights", "message"] == "expected 0.8811"  # staff see hidden messages
    assert ana.loc["test_slow", "weight"] == 2.0 and ana.loc["test_shapes", "kit"]
    assert (df.criterion == "hidden-tests").all()
    failing = df[df.outcome == "failed"].groupby("name").size().sort_values(ascending=False)
    assert failing.to_dict() == {"test_forward[relu]": 2, "test_secret_weights": 2}


def test_tests_fall_back_to_the_results_own_list(store):
    """A result whose criterion kept no details (recorded before it did) still has its tests."""
    r = result("ana", tests=sample_tests())
    r.criteria[2].details = {}
    store.record(r)
    assert len(frames.tests(store)) == 4


def test_hostile_ids_and_messages_come_back_exactly(store, tmp_path):
    for n, student in enumerate(HOSTILE_IDS):
        store.record(result(student, "U", message=HOSTILE_MESSAGE, at=T0 + timedelta(seconds=n)))
    store.record(result("bad\udcff", "U"))  # a raw file name that is not UTF-8: stored escaped
    df = frames.results(store.path)
    assert set(df.student) == {*HOSTILE_IDS, "bad\\xff"}
    assert set(df[df.criterion == "acc"].message) == {HOSTILE_MESSAGE, "Fine."}
    assert set(frames.verdicts(store).student) == set(df.student)


def test_an_empty_store_and_a_lab_without_results_give_empty_typed_frames(store):
    for fn, columns in ((frames.results, frames.RESULT_COLUMNS), (frames.verdicts, frames.VERDICT_COLUMNS),
                        (frames.history, frames.HISTORY_COLUMNS), (frames.tests, frames.TEST_COLUMNS)):
        df = fn(store)
        assert df.empty and list(df.columns) == list(columns)
    assert frames.results(store).graded_at.dtype == frames.TIME
    store.record(result("ana"))
    assert frames.results(store, lab="lab9").empty and frames.verdicts(store, lab="lab9").empty
    assert isinstance(frames.results(store, lab="lab9").verdict.dtype, pd.CategoricalDtype)


def test_a_path_is_opened_read_only(cohort, tmp_path):
    before = frames.verdicts(cohort)
    assert frames.verdicts(str(cohort.path)).equals(before)
    reader = Store.reader(cohort.path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.record(result("eve"))
    reader.close()
    with pytest.raises(UserError, match="no results store") as info:
        frames.results(tmp_path / "nowhere" / "grades.db")
    assert "grades.db" in info.value.hint and not (tmp_path / "nowhere").exists()  # nothing created
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite " * 100)
    with pytest.raises(UserError, match="cannot read the results store"):
        frames.results(junk)


def test_a_store_from_a_newer_autograder_is_refused(tmp_path):
    path = tmp_path / "g.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(UserError, match="newer autograder"):
        frames.results(path)


def test_a_writer_mid_transaction_does_not_block_the_analysis(cohort):
    """A grading batch writes each hand-in in one transaction: a reader sees what was committed, at once."""
    writer = sqlite3.connect(cohort.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM results")  # uncommitted
    try:
        start = time.monotonic()
        df = frames.verdicts(cohort.path)
        assert time.monotonic() - start < 2 and len(df) == 4
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_store_held_exclusively_is_a_clear_error(cohort):
    """Not what a grading batch does (WAL lets readers in), but a tool that takes the file for itself."""
    cohort.close()
    writer = sqlite3.connect(cohort.path, isolation_level=None)
    writer.execute("PRAGMA locking_mode=EXCLUSIVE")
    writer.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match="locked") as info:
            Store.reader(cohort.path, timeout=0.2)
        assert "try again" in info.value.hint
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_frames_of_the_sample_store_path_type(cohort):
    """Path, str and Store give the same frame."""
    assert frames.tests(Path(cohort.path)).equals(frames.tests(cohort))
