"""Late hand-ins: whether a hand-in missed its deadline, and the course's policy applied to its result.

Intake decides lateness (`late`), from the hand-in time and the student's deadline in course.yaml,
or from the LMS's own mark where course.yaml sets no deadline; the pipeline applies the policy
after judging (`stamp`), to fresh and recorded results alike, so a changed deadline or extension
takes effect on the next batch without running anything again. The policy is a criterion of its
own (`late`), so a teacher can accept a late hand-in with `autograder override LAB STUDENT late pass`.
"""

from __future__ import annotations

from datetime import datetime

from autograder.grading.intake import Submission
from autograder.labs.course import LatePolicy
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, Lateness, SubmissionResult

CRITERION = "late"
NOTE = "Handed in late: "


def late(handed_in: datetime | None, deadline: datetime | None, extended: bool, marked_by: str = "",
         policy: LatePolicy = "mark") -> Lateness | None:
    """The lateness of one hand-in, or None when it was on time (or nothing says otherwise). With a
    deadline and a time, the times decide; an LMS's own mark counts only where one of them is missing."""
    if deadline is not None and handed_in is not None:
        if handed_in <= deadline:
            return None
        return Lateness(deadline=deadline, by_s=(handed_in - deadline).total_seconds(), extended=extended,
                        policy=policy)
    if marked_by:
        return Lateness(deadline=deadline, extended=extended, marked_by=marked_by, policy=policy)
    return None


def stamp(result: SubmissionResult, sub: Submission) -> SubmissionResult:
    """The result with the hand-in's time, its lateness under the course's policy, and intake's notes
    (a copy; idempotent, so a recorded result stamped again is unchanged when nothing changed)."""
    out = result.model_copy(deep=True)
    out.handed_in, out.late = sub.handed_in, sub.late
    out.criteria = [c for c in out.criteria if c.id != CRITERION]
    out.notes = [n for n in out.notes if not n.startswith(NOTE)]
    out.notes += [n for n in sub.notes if n not in out.notes]
    if sub.late is not None:
        what = sub.late.describe()
        if sub.late.policy == "mark":
            out.notes.append(NOTE + what + ".")
        else:
            review = sub.late.policy == "review"
            out.criteria.append(CriterionResult(
                id=CRITERION, kind="deadline", status="review" if review else "fail",
                message=f"Your hand-in was {what.removeprefix('handed in ')}; "
                        + ("a teacher decides whether it is accepted." if review else
                           "the course does not accept late hand-ins."),
                advice="Nothing to do for now: a teacher will look at it." if review else
                       "Talk to your teacher: an extension in course.yaml, or a teacher's decision, accepts it.",
                details={"deadline": sub.late.deadline.isoformat() if sub.late.deadline else None,
                         "late_by_s": sub.late.by_s, "extended": sub.late.extended,
                         "marked_by": sub.late.marked_by, "handed_in": sub.handed_in.isoformat()
                         if sub.handed_in else None}))
    if out.verdict != "error":
        out.verdict = decide(out.criteria)
    return out
