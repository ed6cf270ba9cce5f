"""The SQLite store: append-only results, exact-match skipping, all-or-nothing writes; the exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from autograder.errors import UserError
from autograder.publish.export import to_csv, to_json
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import SCHEMA_VERSION, StageRecord, Store


def result(student="ana", verdict="G", sha="abc", rubric="r1", status="pass") -> SubmissionResult:
    return SubmissionResult(
        lab="toy", student=student, submission_hash=sha, lab_version="1+x", rubric_hash=rubric, verdict=verdict,
        criteria=[
            CriterionResult(id="acc", kind="accuracy", status=status, value=0.93, threshold=0.9, message="Fine."),
            CriterionResult(id="reflection", kind="reflection", status="pass", value=80, threshold=50, message="Ok."),
        ],
    )


def test_find_matches_content_version_and_rubric_exactly(store):
    store.record(result())
    assert store.find("toy", "ana", "abc", "1+x", "r1").verdict == "G"
    assert store.find("toy", "ana", "other", "1+x", "r1") is None
    assert store.find("toy", "ana", "abc", "2+x", "r1") is None
    assert store.find("toy", "ana", "abc", "1+x", "r2") is None


def test_error_results_are_never_reused(store):
    store.record(result(verdict="error"))
    assert store.find("toy", "ana", "abc", "1+x", "r1") is None


def test_latest_keeps_history_and_returns_newest_per_student(store):
    store.record(result(verdict="U", status="fail"))
    store.record(result(verdict="G"))
    store.record(result(student="bo", verdict="U", status="fail"))
    latest = store.latest("toy")
    assert [(r.student, r.verdict) for r in latest] == [("ana", "G"), ("bo", "U")]
    count = sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert count == 3


def test_a_failed_write_leaves_nothing_behind(store, tmp_path):
    class Boom(StageRecord):
        def __getattribute__(self, name):
            if name == "artifacts":
                raise RuntimeError("disk on fire")
            return super().__getattribute__(name)

    ok = StageRecord(key="k1", stage="execute", lab="toy", submission_hash="abc", result={}, artifacts=tmp_path)
    bad = Boom(key="k2", stage="probe", lab="toy", submission_hash="abc", result={}, artifacts=tmp_path)
    with pytest.raises(RuntimeError):
        store.record(result(), [ok, bad])
    assert store.latest("toy") == []
    assert store.stage("k1") is None


def test_stage_records_need_their_artifacts(store, tmp_path):
    folder = tmp_path / "art"
    folder.mkdir()
    store.record(result(), [StageRecord(key="k", stage="execute", lab="toy", submission_hash="abc",
                                        result={"status": "ok"}, artifacts=folder)])
    assert store.stage("k").result == {"status": "ok"}
    folder.rmdir()
    assert store.stage("k") is None


def test_store_survives_reopening(tmp_path):
    path = tmp_path / "grades.db"
    Store(path).record(result())
    assert Store(path).latest("toy")[0].student == "ana"


def test_not_a_database_is_a_user_error(tmp_path):
    path = tmp_path / "grades.db"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(UserError, match="cannot open the results store"):
        Store(path)


def test_json_export_shape():
    rows = json.loads(to_json([result()]))
    assert rows == [{
        "student": "ana", "verdict": "G",
        "criteria": [
            {"id": "acc", "status": "pass", "value": 0.93, "threshold": 0.9, "message": "Fine.", "advice": "",
             "override": None},
            {"id": "reflection", "status": "pass", "value": 80, "threshold": 50, "message": "Ok.", "advice": "",
             "override": None},
        ],
        # A result recorded before stamps and compute were kept has neither: null, not missing.
        "environment": None, "compute": None,
    }]


def test_csv_export_has_a_row_per_student_and_the_reasons():
    rows = list(csv.DictReader(io.StringIO(to_csv([result(), result("bo", "U", status="fail")]))))
    assert [r["student"] for r in rows] == ["ana", "bo"]
    assert rows[1]["verdict"] == "U"
    assert rows[1]["acc:status"] == "fail" and rows[1]["acc:value"] == "0.93"
    assert rows[1]["reasons"] == "acc: Fine."


def test_export_writes_through_pipes_and_links_instead_of_replacing_them(tmp_path):
    import os
    import threading

    from autograder.publish.export import write

    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write([result()], "json", link)
    assert link.is_symlink() and json.loads(real.read_text())[0]["student"] == "ana"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    write([result()], "csv", fifo)
    reader.join(timeout=10)
    assert fifo.is_fifo()  # still a pipe: once, `-o /dev/null` replaced the device with a file
    assert received[0].startswith("student,verdict,")


@pytest.mark.slow
def test_a_result_names_the_stage_outputs_it_was_judged_from(submissions, grade, store):
    """Feedback reads the executed notebook and the probe outputs of exactly the result it shows."""
    submissions("ana")
    result = grade(submissions.folder)["ana"]
    assert set(result.stages) == {"execute", "probe"}
    found = store.artifacts(store.latest_of("toy", "ana"))
    assert (found["execute"] / "executed.ipynb").is_file()
    assert (found["probe"] / "outputs" / "scores.npz").is_file()
    old = result.model_copy(update={"stages": {}})  # recorded before results named their stages
    assert store.artifacts(old) == {}


# The schema as version 2 wrote it (results, stages, overrides): a store from before hand-ins were kept.
V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, lab TEXT NOT NULL, student TEXT NOT NULL,
    submission_hash TEXT NOT NULL, lab_version TEXT NOT NULL, rubric_hash TEXT NOT NULL, verdict TEXT NOT NULL,
    result TEXT NOT NULL, graded_at TEXT NOT NULL);
CREATE TABLE stages (key TEXT PRIMARY KEY, stage TEXT NOT NULL, lab TEXT NOT NULL, submission_hash TEXT NOT NULL,
    result TEXT NOT NULL, artifacts TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE overrides (id INTEGER PRIMARY KEY AUTOINCREMENT, lab TEXT NOT NULL, student TEXT NOT NULL,
    criterion TEXT NOT NULL, submission_hash TEXT NOT NULL, decision TEXT NOT NULL, at TEXT NOT NULL);
"""


def test_a_version_2_store_is_upgraded_in_place_and_keeps_its_results(tmp_path):
    path = tmp_path / "grades.db"
    old = result()
    db = sqlite3.connect(path)
    db.executescript(V2_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    # a result as version 2 stored it: no hand-in time, no lateness
    stored = json.loads(old.model_dump_json(exclude={"handed_in", "late"}))
    db.execute("INSERT INTO results (lab, student, submission_hash, lab_version, rubric_hash, verdict, result, "
               "graded_at) VALUES (?,?,?,?,?,?,?,?)", ("toy", "ana", "abc", "1+x", "r1", "G", json.dumps(stored),
                                                       old.graded_at.isoformat()))
    db.commit()
    db.close()
    s = Store(path)
    try:
        [kept] = s.latest("toy")
        assert kept.verdict == "G" and kept.handed_in is None and kept.late is None
        assert s.handins("toy") == []
        version = s._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert version == str(SCHEMA_VERSION)
    finally:
        s.close()


def test_every_hand_in_is_kept_once_with_its_time(store):
    from datetime import UTC, datetime, timedelta, timezone

    from autograder.results import Lateness
    from autograder.store import HandIn

    monday = datetime(2026, 2, 9, 10, tzinfo=timezone(timedelta(hours=1)))
    friday = datetime(2026, 2, 13, 18, tzinfo=UTC)
    late = Lateness(deadline=datetime(2026, 2, 13, 16, tzinfo=UTC), by_s=7200)
    store.add_handin(HandIn(lab="toy", student="ana", submission_hash="b", handed_in=friday, late=late,
                            originals=["anaa_1_2_lab-1.ipynb"], source="canvas zip time"))
    store.add_handin(HandIn(lab="toy", student="ana", submission_hash="a", handed_in=monday, originals=["lab.ipynb"]))
    store.add_handin(HandIn(lab="toy", student="ana", submission_hash="a", handed_in=monday))  # the batch again
    store.add_handin(HandIn(lab="toy", student="bo", submission_hash="c"))
    history = store.handins("toy", "ana")
    assert [(h.submission_hash, h.handed_in) for h in history] == [("a", monday), ("b", friday)]
    assert history[1].late == late and history[1].originals == ["anaa_1_2_lab-1.ipynb"]
    assert [h.student for h in store.handins("toy")] == ["bo", "ana", "ana"]  # an unknown time sorts first
