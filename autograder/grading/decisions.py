"""TA decisions: overrides that outlive regrades, and the queue of what waits for a human.

An override is tied to the submission it was made on (its hash): a regrade of the same notebook
(new rubric, new lab version, --force) keeps it, while a new hand-in is judged afresh and its
result says that an earlier decision was not carried over.
"""

from __future__ import annotations

import getpass
import os
from typing import Literal

from autograder.errors import UserError
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, Override, SubmissionResult
from autograder.store import Store


def apply_overrides(result: SubmissionResult, store: Store) -> SubmissionResult:
    """The result with the standing decisions of a TA applied, and its verdict decided again."""
    standing = store.overrides(result.lab, result.student)
    by_id = {c.id: c for c in result.criteria}
    for criterion, (sha, decision) in standing.items():
        c = by_id.get(criterion)
        if c is None:
            continue  # the rubric no longer has it
        if sha != result.submission_hash:
            note = (f"A teacher's decision on {criterion} ({decision.status}, {decision.at:%Y-%m-%d}) was made on an "
                    "earlier hand-in and was not applied to this one.")
            if note not in result.notes:
                result.notes.append(note)
            continue
        _apply(c, decision)
    result.verdict = decide(result.criteria)
    return result


def _apply(c: CriterionResult, decision: Override) -> None:
    if c.override is None:  # keep what the grader itself said, once
        decision = decision.model_copy(update={"was": c.status})
    else:
        decision = decision.model_copy(update={"was": c.override.was})
    c.override = decision
    c.status = decision.status
    c.advice = "Nothing to do: a teacher decided this." if decision.status == "pass" else (
        "A teacher decided this criterion is not met; ask them if anything is unclear.")


def override(store: Store, lab: str, student: str, criterion: str, status: Literal["pass", "fail", "clear"],
             note: str, by: str | None = None) -> SubmissionResult:
    """Record a decision on the student's current result and record that result again with it applied."""
    current = store.latest_of(lab, student)
    if current is None:
        known = ", ".join(r.student for r in store.latest(lab)[:20]) or "none"
        raise UserError(f"no result for {student!r} in lab {lab!r} in {store.path}",
                        f"grade the submission first; students with results: {known}")
    ids = [c.id for c in current.criteria]
    if criterion not in ids:
        raise UserError(f"{student}'s result for {lab} has no criterion {criterion!r}", f"criteria: {', '.join(ids)}")
    if status != "clear" and not note.strip():
        raise UserError("--note is required: say why, in a sentence the student may read")
    decision = None if status == "clear" else Override(status=status, note=note.strip(), by=by or _who())
    store.add_override(lab, student, criterion, current.submission_hash, decision)
    updated = current.model_copy(deep=True)
    if status == "clear":
        for c in updated.criteria:
            if c.id == criterion and c.override is not None:
                c.status, c.override = c.override.was or c.status, None
    updated = apply_overrides(updated, store)
    store.record(updated)
    return updated


def _who() -> str:
    for var in ("AUTOGRADER_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def waiting(store: Store, lab: str) -> list[tuple[SubmissionResult, list[CriterionResult]]]:
    """Current results that wait for a human: each with the criteria that sent it to review."""
    queue = []
    for r in store.latest(lab):
        items = [c for c in r.criteria if c.status == "review"]
        if r.verdict == "review" or items:
            queue.append((r, items))
    return queue
