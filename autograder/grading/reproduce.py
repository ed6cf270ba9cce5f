"""`autograder rerun`: grade one recorded hand-in again under its recorded conditions, and compare.

The run goes into a throwaway store (its own artifacts folder), so the recorded result, its stage
folders and the TA's decisions stay exactly as they were. What is compared is what grading would
have said on its own: each criterion's status (before a TA's override and before the cohort's
copy search, which need other students) and value, the hidden tests' outcomes, the metrics and the
verdict decided from those statuses. On the CPU the figures repeat exactly; on a GPU,
nondeterministic kernels may move them, so `tolerance` allows a relative difference there.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.errors import UserError
from autograder.grading import copies
from autograder.grading.intake import IntakeSpec, Submission, discover
from autograder.grading.stamp import differences
from autograder.labs.lab import Lab
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

BAD_ID = ("/", "\0")  # never in an id made from a file name (a backslash is: ids.student_id escapes with it)
# Criteria whose value is a wall time, which no two runs share: compared by status only.
TIMED = frozenset({"notebook-runs", "runtime"})


@dataclass
class Comparison:
    recorded: SubmissionResult
    rerun: SubmissionResult
    warnings: list[str] = field(default_factory=list)  # conditions that differ from the stamp
    differences: list[str] = field(default_factory=list)  # what came out otherwise
    compared: list[str] = field(default_factory=list)  # what was held against the record

    @property
    def reproduced(self) -> bool:
        return not self.differences


def recorded_result(store: Store, lab: Lab, student: str) -> SubmissionResult:
    """The student's current result, or a UserError saying why there is nothing to rerun."""
    if any(ch in student for ch in BAD_ID) or student in ("", ".", ".."):
        raise UserError(f"{student!r} is not a student id", "give the id as `autograder show` and the review "
                        "queue list it (a file or folder name, without a path)")
    if lab.name not in store.labs():
        raise UserError(f"no results for lab {lab.name!r} in {store.path}",
                        f"labs with results: {', '.join(store.labs()) or 'none'}")
    result = store.latest_of(lab.name, student)
    if result is None:
        known = ", ".join(r.student for r in store.latest(lab.name)[:20]) or "none"
        raise UserError(f"no result for {student!r} in lab {lab.name!r} in {store.path}",
                        f"students with results: {known}")
    if result.verdict == "error":
        why = next((c.message for c in result.criteria if c.status == "error"), "")
        raise UserError(f"{student}'s recorded result is `error`: the grader could not grade it"
                        + (f" ({why})" if why else "") + "; there is no verdict to reproduce",
                        f"grade it again: autograder grade {lab.name} PATH --force")
    if result.lab_version != lab.version:
        raise UserError(f"{student} was graded under lab version {result.lab_version}; {lab.name} is now at "
                        f"version {lab.version}", "rerun reproduces a result under the lab it was graded with: check "
                        f"out the course at lab version {result.lab_version}, or regrade with `autograder grade`")
    return result


def hand_in(store: Store, lab: Lab, recorded: SubmissionResult, source: Path | None) -> Submission:
    """The hand-in that was graded: the store's kept copy, else the one at `source` (--from), whose
    hash must be the recorded one."""
    if source is None:
        kept = copies.kept(store.artifacts_root, lab, recorded.student, recorded.submission_hash)
        if kept is None:
            raise UserError(f"the store keeps no copy of {recorded.student}'s hand-in (graded before copies were "
                            "kept, or its artifacts were removed)", "give the hand-in with --from PATH (the notebook, "
                            "or the student's folder or zip)")
        return kept
    if not source.exists():
        raise UserError(f"{source} does not exist", "give the student's notebook, folder or zip with --from")
    found = discover(source, IntakeSpec.of(lab.spec))
    match = [s for s in found if s.sha256 == recorded.submission_hash]
    if not match:
        raise UserError(f"{source} is not the hand-in {recorded.student} was graded on (its content hash differs "
                        f"from the recorded {recorded.submission_hash[:16]})",
                        "give the exact files that were graded; a changed hand-in is graded with `autograder grade`")
    return match[0].model_copy(update={"student": recorded.student})


def rerun(lab: Lab, store: Store, recorded: SubmissionResult, sub: Submission,
          grade: Callable[[Store], SubmissionResult], tolerance: float = 0.0) -> Comparison:
    """Grade `sub` again with `grade` (a grader on the given throwaway store) and compare it to the record."""
    with tempfile.TemporaryDirectory(prefix="autograder-rerun-") as tmp:
        scratch = Store(Path(tmp) / "rerun.db")
        try:
            again = grade(scratch)
        finally:
            scratch.close()
    return compare(recorded, again, tolerance)


def as_graded(c: CriterionResult) -> str:
    """What grading alone said of a criterion: before a TA's decision and the cohort's copy search."""
    if c.override is not None and c.override.was is not None:
        return c.override.was
    if c.details.get("similar_to") and isinstance(c.details.get("own_status"), str):
        return str(c.details["own_status"])
    return c.status


def compare(recorded: SubmissionResult, again: SubmissionResult, tolerance: float = 0.0) -> Comparison:
    cmp = Comparison(recorded=recorded, rerun=again)
    if recorded.environment is None:
        cmp.warnings.append("the result was graded before stamps were recorded: the conditions can't be checked")
    elif again.environment is not None:
        cmp.warnings += differences(recorded.environment, again.environment)
        if recorded.environment.seeds != again.environment.seeds:
            cmp.warnings.append(f"seeds: {recorded.environment.seeds} then, {again.environment.seeds} now")
    if again.rubric_hash != recorded.rubric_hash:
        cmp.warnings.append("the rubric changed since it was graded: judgements may differ for that reason")
    then = {c.id: c for c in recorded.criteria if c.id != "compute-budget"}
    now = {c.id: c for c in again.criteria if c.id != "compute-budget"}
    for cid in then.keys() | now.keys():
        if cid not in now or cid not in then:
            cmp.differences.append(f"criterion {cid}: {'only in the record' if cid in then else 'only in the rerun'}")
    for cid in [c for c in then if c in now]:
        a, b = then[cid], now[cid]
        if as_graded(a) != b.status:
            cmp.differences.append(f"criterion {cid}: {as_graded(a)} then, {b.status} now")
        if a.kind not in TIMED and not _same(a.value, b.value, tolerance):
            cmp.differences.append(f"criterion {cid}: value {a.value!r} then, {b.value!r} now")
    for name in recorded.metrics.keys() | again.metrics.keys():
        a_m, b_m = recorded.metrics.get(name), again.metrics.get(name)
        if not _same(a_m, b_m, tolerance):
            cmp.differences.append(f"metric {name}: {a_m!r} then, {b_m!r} now")
    tests_then = {t.name: t.outcome for t in recorded.tests}
    tests_now = {t.name: t.outcome for t in again.tests}
    for name in sorted(tests_then.keys() | tests_now.keys()):
        if tests_then.get(name) != tests_now.get(name):
            cmp.differences.append(f"hidden test {name}: {tests_then.get(name)} then, {tests_now.get(name)} now")
    verdict_then = decide([c.model_copy(update={"status": as_graded(c)}) for c in then.values()])
    verdict_now = decide(list(now.values()))
    if verdict_then != verdict_now:
        cmp.differences.insert(0, f"verdict: {verdict_then} then, {verdict_now} now")
    how = "exactly" if tolerance == 0 else f"within a relative {tolerance:g}"
    timed = sum(c.kind in TIMED for c in then.values())
    cmp.compared = [f"the verdict ({verdict_then} as graded)",
                    f"{len(then)} criteria: status and value, {how}"
                    + (f" ({timed} timed by the clock: status only)" if timed else ""),
                    f"{len(recorded.metrics)} metric{'s' if len(recorded.metrics) != 1 else ''}, {how}",
                    f"{len(recorded.tests)} hidden test outcome{'s' if len(recorded.tests) != 1 else ''}"]
    return cmp


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b if tolerance == 0 else math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0)
