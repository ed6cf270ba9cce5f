"""Recorded results as pandas DataFrames, for staff's own analysis (docs/analysis.md shows it in use).

    from autograder import frames
    df = frames.results(".autograder/grades.db", lab="lab1-mlp")
    df[df.status == "fail"].groupby("criterion").size()

`results` (per student and criterion), `verdicts` (per student and lab), `history` (every recorded
result), `handins` (every hand-in, with its time and lateness) and `tests` (per test). Each takes a
`Store` or the path of a grades.db. A path is opened read-only (`Store.reader`):
an analysis never writes or locks a grading store and may run while a batch grades (it sees the
results committed so far). A store with no results, or a lab without any, gives an empty frame with
the same columns and types. The frames name every student and carry hidden tests' names and
messages: they are for staff, never for students.

Types: `lab`, `verdict`, `status` and `outcome` are categoricals (every possible value a category,
so counts show zeros); times are tz-aware (UTC) and `late_by` a duration, NaT where unknown; text is
pandas' string type; `value` and `threshold` are floats (NaN where the criterion has none).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from autograder.errors import UserError
from autograder.results import HiddenTestResult, Lateness, Status, SubmissionResult, Verdict
from autograder.store import HandIn, Store

VERDICTS = pd.CategoricalDtype(list(get_args(Verdict)))
STATUSES = pd.CategoricalDtype(list(get_args(Status)))
OUTCOMES = pd.CategoricalDtype(list(get_args(HiddenTestResult.model_fields["outcome"].annotation)))
TIME = pd.DatetimeTZDtype(unit="us", tz="UTC")
DURATION = "timedelta64[us]"
TEXT = pd.StringDtype()

# column -> dtype, in the order each frame has them.
RESULT_COLUMNS: dict[str, Any] = {
    "lab": "category", "student": TEXT, "verdict": VERDICTS, "criterion": TEXT, "kind": TEXT, "required": bool,
    "status": STATUSES, "value": float, "threshold": float, "message": TEXT, "overridden": bool, "graded_at": TIME,
}
VERDICT_COLUMNS: dict[str, Any] = {
    "lab": "category", "student": TEXT, "verdict": VERDICTS, "failed": TEXT, "overridden": bool,
    "graded_at": TIME, "handed_in": TIME, "late": bool, "late_by": DURATION, "submission_hash": TEXT,
}
HISTORY_COLUMNS: dict[str, Any] = {
    "seq": int, "lab": "category", "student": TEXT, "verdict": VERDICTS, "graded_at": TIME, "handed_in": TIME,
    "late": bool, "submission_hash": TEXT, "lab_version": TEXT, "rubric_hash": TEXT, "overridden": bool,
    "current": bool,
}
HANDIN_COLUMNS: dict[str, Any] = {
    "lab": "category", "student": TEXT, "submission_hash": TEXT, "handed_in": TIME, "late": bool,
    "late_by": DURATION, "deadline": TIME, "extended": bool, "source": TEXT, "originals": TEXT, "seen_at": TIME,
    "graded": bool,
}
TEST_COLUMNS: dict[str, Any] = {
    "lab": "category", "student": TEXT, "criterion": TEXT, "name": TEXT, "outcome": OUTCOMES, "public": bool,
    "kit": bool, "weight": float, "message": TEXT,
}


def results(store_or_path: Store | Path | str, lab: str | None = None) -> pd.DataFrame:
    """One row per student and criterion of the current results (a lab's, or every lab's).

    lab, student; verdict (G, U, review, error: the student's on that lab); criterion (its id in the
    rubric), kind, required; status (pass, fail, review, error, skipped, after a teacher's decision);
    value and threshold (what was measured and the bar); message (the line the student reads);
    overridden (a teacher decided this criterion); graded_at (UTC).
    """
    with _opened(store_or_path) as store:
        rows = [{"lab": r.lab, "student": r.student, "verdict": r.verdict, "criterion": c.id, "kind": c.kind,
                 "required": c.required, "status": c.status, "value": _number(c.value),
                 "threshold": _number(c.threshold), "message": c.message, "overridden": c.override is not None,
                 "graded_at": r.graded_at}
                for r in _current(store, lab) for c in r.criteria]
    return _frame(rows, RESULT_COLUMNS)


def verdicts(store_or_path: Store | Path | str, lab: str | None = None) -> pd.DataFrame:
    """One row per student and lab: the current result.

    lab, student, verdict; failed (the required criteria not met, comma-separated, in rubric order);
    overridden (a teacher decided some criterion); graded_at (UTC); handed_in (when the hand-in that
    was graded arrived, UTC; NaT where intake did not record it); late (after its deadline, the
    student's extension counted, or marked late by the LMS); late_by (how long after, where known);
    submission_hash.
    """
    with _opened(store_or_path) as store:
        rows = [{"lab": r.lab, "student": r.student, "verdict": r.verdict,
                 "failed": ", ".join(c.id for c in r.failed()),
                 "overridden": any(c.override is not None for c in r.criteria), "graded_at": r.graded_at,
                 "handed_in": _handed_in(r), "late": _late(r) is not None, "late_by": _late_by(_late(r)),
                 "submission_hash": r.submission_hash}
                for r in _current(store, lab)]
    return _frame(rows, VERDICT_COLUMNS)


def history(store_or_path: Store | Path | str, lab: str | None = None, student: str | None = None
            ) -> pd.DataFrame:
    """Every recorded result, oldest first: each grading, regrade and teacher's decision (the store appends,
    never updates).

    seq (the order of recording, from 0); lab, student, verdict; graded_at (UTC); handed_in (when that
    hand-in arrived, UTC; NaT where not recorded); late; submission_hash (a new one: a new hand-in),
    lab_version, rubric_hash (what it was judged against); overridden (a teacher decided some
    criterion); current (the student's result now, the last row per lab and student).
    """
    with _opened(store_or_path) as store:
        recorded = store.history(lab, student)
    last = {(r.lab, r.student): n for n, r in enumerate(recorded)}
    rows = [{"seq": n, "lab": r.lab, "student": r.student, "verdict": r.verdict, "graded_at": r.graded_at,
             "handed_in": _handed_in(r), "late": _late(r) is not None, "submission_hash": r.submission_hash,
             "lab_version": r.lab_version,
             "rubric_hash": r.rubric_hash, "overridden": any(c.override is not None for c in r.criteria),
             "current": last[(r.lab, r.student)] == n}
            for n, r in enumerate(recorded)]
    return _frame(rows, HISTORY_COLUMNS)


def handins(store_or_path: Store | Path | str, lab: str | None = None, student: str | None = None
            ) -> pd.DataFrame:
    """Every hand-in intake saw, graded or not (a resubmission that a later one replaced is kept), by
    lab, then in the order they were handed in (unknown times first).

    lab, student, submission_hash; handed_in (UTC; NaT where unknown); late, late_by; deadline (the
    one it missed, UTC; NaT where on time or only the LMS marked it late); extended (that deadline is
    the student's extension); source (canvas, moodle or plain, and how its time is known);
    originals (the file names as handed in, ' | '-separated); seen_at (when a batch found it);
    graded (a result was recorded for this content). Empty for a store from before hand-ins were kept.
    """
    with _opened(store_or_path) as store:
        labs = [lab] if lab is not None else store.labs()
        found = [h for name in labs for h in _store_handins(store, name, student)]
        graded = {(r.lab, r.student, r.submission_hash) for name in labs for r in store.history(name, student)}
    rows = [{"lab": h.lab, "student": h.student, "submission_hash": h.submission_hash, "handed_in": h.handed_in,
             "late": h.late is not None, "late_by": _late_by(h.late),
             "deadline": h.late.deadline if h.late is not None else None,
             "extended": h.late is not None and h.late.extended, "source": h.source,
             "originals": " | ".join(h.originals), "seen_at": h.seen_at,
             "graded": (h.lab, h.student, h.submission_hash) in graded}
            for h in found]
    return _frame(rows, HANDIN_COLUMNS)


def tests(store_or_path: Store | Path | str, lab: str | None = None) -> pd.DataFrame:
    """One row per test of the current results: the lab's public and hidden pytest tests.

    lab, student; criterion (the hidden-tests criterion that ran them); name (pytest's, without the
    file); outcome (passed, failed, error, skipped); public (a student may see its name and message:
    the kit's tests and those marked public); kit (one of the tests the students have); weight;
    message (the assertion's, hidden tests' included). Tests that need a notebook that stopped are
    `skipped`; a result whose tests never ran has no rows.
    """
    with _opened(store_or_path) as store:
        rows = [{"lab": r.lab, "student": r.student, "criterion": criterion, **t.model_dump(
                 include={"name", "outcome", "public", "kit", "weight", "message"})}
                for r in _current(store, lab) for criterion, t in ran_tests(r)]
    return _frame(rows, TEST_COLUMNS)


def ran_tests(result: SubmissionResult) -> list[tuple[str, HiddenTestResult]]:
    """(criterion id, test) for each test a result ran: from the hidden-tests criterion's details, or the
    result's own list where no criterion kept them (a result recorded before criteria did)."""
    found = [(c.id, HiddenTestResult.model_validate(t)) for c in result.criteria if c.kind == "hidden-tests"
             for t in c.details.get("tests") or []]
    if found or not result.tests:
        return found
    cid = next((c.id for c in result.criteria if c.kind == "hidden-tests"), "")
    return [(cid, t) for t in result.tests]


@contextmanager
def _opened(store_or_path: Store | Path | str) -> Iterator[Store]:
    """The store itself, or the path's opened read-only and closed after; a store another process holds
    locked (not a grading batch: it lets readers in) is a clear error, not a traceback."""
    store = store_or_path if isinstance(store_or_path, Store) else Store.reader(Path(store_or_path))
    try:
        yield store
    except sqlite3.OperationalError as exc:
        raise UserError(f"{store.path}: cannot read the results store: {exc}",
                        "try again once whatever holds it has finished") from exc
    finally:
        if store is not store_or_path:
            store.close()


def _current(store: Store, lab: str | None) -> list[SubmissionResult]:
    return [r for name in ([lab] if lab is not None else store.labs()) for r in store.latest(name)]


def _number(value: float | int | str | None) -> float | None:
    """A measured value as a float; None for none, or for text (no built-in criterion measures text)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _handed_in(result: SubmissionResult) -> datetime | None:
    """When the graded hand-in arrived, where intake recorded it (results from before it did: None)."""
    when = getattr(result, "handed_in", None)
    return when if isinstance(when, datetime) else None


def _late(result: SubmissionResult) -> Lateness | None:
    late = getattr(result, "late", None)
    return late if isinstance(late, Lateness) else None


def _late_by(late: Lateness | None) -> timedelta | None:
    return timedelta(seconds=late.by_s) if late is not None and late.by_s is not None else None


def _store_handins(store: Store, lab: str, student: str | None) -> list[HandIn]:
    """The store's hand-ins of a lab; none in a store from before it kept them (read-only: never upgraded)."""
    try:
        return store.handins(lab, student)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def _frame(rows: list[dict[str, Any]], columns: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    for name, dtype in columns.items():
        if dtype is TIME:
            df[name] = pd.to_datetime(df[name], utc=True).astype(TIME)
        elif dtype is DURATION:
            df[name] = pd.to_timedelta(df[name]).astype(DURATION)
        elif isinstance(dtype, str) and dtype == "category":  # labs: the categories found
            df[name] = df[name].astype(TEXT).astype("category")
        else:
            df[name] = df[name].astype(dtype)
    return df
