"""The hidden tests' outcomes are kept by their inputs: a rubric change re-judges without pytest, a change to
the tests (or the stages they read) runs them again, and a damaged record is run again, not trusted."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

from autograder.grading import judge as judge_module

pytestmark = pytest.mark.slow


def _no_pytest(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("pytest ran, though the outcomes for these inputs were on record")

    monkeypatch.setattr(judge_module, "run_tests", refuse)


def _tests_rows(store) -> list[tuple[str, str]]:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT key, result FROM stages WHERE stage = 'tests'").fetchall()


def test_rubric_change_rejudges_from_recorded_test_outcomes(course, submissions, grade, store, monkeypatch):
    submissions("good")
    submissions("wrong", "def predict(X):\n    return (X[:, 1] > 0).astype(int)")
    first = grade(submissions.folder)
    assert len(_tests_rows(store)) == 2  # one record per distinct set of inputs

    rubric = course / "rubrics" / "toy.yaml"
    data = yaml.safe_load(rubric.read_text())
    next(c for c in data["criteria"] if c["id"] == "reflection")["min_words"] = 31
    rubric.write_text(yaml.safe_dump(data))
    _no_pytest(monkeypatch)
    again = grade(submissions.folder)

    assert {s: r.rubric_hash for s, r in again.items()} != {s: r.rubric_hash for s, r in first.items()}
    for student in ("good", "wrong"):
        assert again[student].tests == first[student].tests
        assert again[student].metrics == first[student].metrics
        assert again[student].verdict == first[student].verdict
    assert first["good"].tests and all(t.outcome == "passed" for t in first["good"].tests)


def test_changed_hidden_tests_run_again(course, submissions, grade, store):
    submissions("good")
    grade(submissions.folder)
    hidden = course / "reference" / "toy" / "tests" / "test_hidden.py"
    hidden.write_text(hidden.read_text() + "\n\ndef test_added_later():\n    assert False, 'new test'\n")
    again = grade(submissions.folder)["good"]
    assert "test_added_later" in {t.name.rsplit("::", 1)[-1] for t in again.tests}
    assert len(_tests_rows(store)) == 2


def test_damaged_record_is_run_again(course, submissions, grade, store):
    submissions("good")
    first = grade(submissions.folder)["good"]
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE stages SET result = '{\"tests\": [{\"outcome\": \"maybe\"}], \"metrics\": 3}' "
                   "WHERE stage = 'tests'")
    again = grade(submissions.folder, force=False)
    # The result itself is on record (same rubric): re-judge by changing nothing but asking again with a
    # fresh grader after the result row is gone, so the judge must read the damaged record.
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM results")
    again = grade(submissions.folder)["good"]
    assert again.tests == first.tests and again.verdict == "G"
