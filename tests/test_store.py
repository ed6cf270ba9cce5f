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
from autograder.store import StageRecord, Store


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
