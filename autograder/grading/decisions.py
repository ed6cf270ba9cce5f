"""TA decisions: overrides that outlive regrades, and the queue of what waits for a human.

An override is tied to the submission it was made on (its hash): a regrade of the same notebook
(new rubric, new lab version, --force) keeps it, while a new hand-in is judged afresh and its
result says that an earlier decision was not carried over.

A decision is a read-modify-write of the student's current result, so it runs in one write transaction
(`Store.write`): two TAs deciding at once, or a decision during a grading batch, never lose a decision.
Undo takes back the standing decision and restores the one it replaced, as a row of its own.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from typing import Literal

from autograder.errors import UserError
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, Override, SubmissionResult
from autograder.store import OverrideRow, StageRecord, Store, storable

GRADER_ADVICE = "grader_advice"  # in a decided criterion's details: the advice it had before, for a withdrawal


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


def record_decided(store: Store, result: SubmissionResult, stages: Iterable[StageRecord] = ()) -> SubmissionResult:
    """Record a (re)graded result with the standing decisions applied, reading them and writing the result in
    one write transaction: a TA deciding in `autograder serve` meanwhile lands before (and is applied) or
    after (and applies itself to this result), never in between."""
    with store.write():
        decided = storable(apply_overrides(result, store))
        store.record(decided, stages)
    return decided


def _apply(c: CriterionResult, decision: Override) -> None:
    if c.override is None:  # keep what the grader itself said, once
        decision = decision.model_copy(update={"was": c.status})
        c.details.setdefault(GRADER_ADVICE, c.advice)
    else:
        decision = decision.model_copy(update={"was": c.override.was})
    c.override = decision
    c.status = decision.status
    c.advice = "Nothing to do: a teacher decided this." if decision.status == "pass" else (
        "A teacher decided this criterion is not met; ask them if anything is unclear.")


def override(store: Store, lab: str, student: str, criterion: str, status: Literal["pass", "fail", "clear"],
             note: str, by: str | None = None) -> SubmissionResult:
    """Record a decision on the student's current result and record that result again with it applied."""
    if status != "clear" and not note.strip():
        raise UserError("--note is required: say why, in a sentence the student may read")
    who = by or _who()
    with store.write():
        current = _current(store, lab, student, criterion)
        decision = None if status == "clear" else Override(status=status, note=note.strip(), by=who)
        store.add_override(lab, student, criterion, current.submission_hash, decision, by=who)
        return _record_with(store, current, criterion, withdrawn=status == "clear")


def undo(store: Store, lab: str, student: str, criterion: str, by: str | None = None) -> SubmissionResult:
    """Take back the decision that stands on the student's current hand-in and restore the one it replaced
    (none, when it was the first), recorded as a row of its own with who undid it."""
    with store.write():
        current = _current(store, lab, student, criterion)
        stack = decision_stack(store.override_rows(lab, student, criterion))
        if not stack or stack[-1].submission_hash != current.submission_hash:
            raise UserError(f"no decision on {criterion!r} of {student}'s current hand-in to undo",
                            "only a decision made on the hand-in that is graded now can be undone")
        taken, before = stack[-1], stack[-2] if len(stack) > 1 else None
        store.add_override(lab, student, criterion, (before or taken).submission_hash,
                           before.decision if before is not None else None, withdraws=taken.id, by=by or _who())
        return _record_with(store, current, criterion, withdrawn=True)


def decision_stack(rows: list[OverrideRow]) -> list[OverrideRow]:
    """One criterion's decisions that an undo would step back through, oldest first: each decision is put
    on, a `clear` empties it, an undo takes off the row it names. The last one is what stands."""
    stack: list[OverrideRow] = []
    for row in rows:
        if row.withdraws is not None:
            stack = [r for r in stack if r.id != row.withdraws]
        elif row.decision is None:
            stack = []
        else:
            stack.append(row)
    return stack


def _current(store: Store, lab: str, student: str, criterion: str) -> SubmissionResult:
    current = store.latest_of(lab, student)
    if current is None:
        known = ", ".join(r.student for r in store.latest(lab)[:20]) or "none"
        raise UserError(f"no result for {student!r} in lab {lab!r} in {store.path}",
                        f"grade the submission first; students with results: {known}")
    ids = [c.id for c in current.criteria]
    if criterion not in ids:
        raise UserError(f"{student}'s result for {lab} has no criterion {criterion!r}", f"criteria: {', '.join(ids)}")
    return current


def _record_with(store: Store, current: SubmissionResult, criterion: str, withdrawn: bool) -> SubmissionResult:
    """The current result again with the standing decisions applied; where the criterion's decision was taken
    back, first as the grader left it (a restored earlier decision is then applied like any other)."""
    updated = current.model_copy(deep=True)
    if withdrawn:
        for c in updated.criteria:
            if c.id == criterion and c.override is not None:
                c.status, c.override = c.override.was or c.status, None
                c.advice = c.details.pop(GRADER_ADVICE, c.advice)
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


def waiting(store: Store, lab: str, current: list[SubmissionResult] | None = None
            ) -> list[tuple[SubmissionResult, list[CriterionResult]]]:
    """Current results that wait for a human: each with the criteria that sent it to review. `current`: the
    lab's current results where the caller has read them already."""
    queue = []
    for r in store.latest(lab) if current is None else current:
        items = [c for c in r.criteria if c.status == "review"]
        if r.verdict == "review" or items:
            queue.append((r, items))
    return queue
