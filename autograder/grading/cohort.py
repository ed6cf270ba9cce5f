"""The cohort-wide pass after a batch: reflections that look copied from another student's go to review.

A reflection read from a report (`source: report`) is compared the same way: its result keeps the
text read (the section) in `details["text"]` and the template is the released report template's.
It runs over every student's current result in the store, not only the batch just graded, so a
late hand-in is compared with everyone graded before it. It is idempotent: each reflection result
keeps what the criterion found on its own (`own_status`, `own_message`), and the pass recomputes
the cohort's part from scratch, so a student whose match has since handed in a new text is cleared.
Names of the other student stay in the TA's evidence (`details`), never in the student's message.
"""

from __future__ import annotations

from autograder.criteria.analysis import embeddings
from autograder.criteria.analysis.originality import find_copies
from autograder.criteria.reflection import ReflectionSpec, template_text
from autograder.grading.decisions import apply_overrides
from autograder.labs.lab import Lab
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

COPY_MESSAGE = ("Your reflection is very similar to another student's (similarity {similarity:.2f}); "
                "a teacher will compare the two.")
COPY_ADVICE = "Nothing to do for now: a teacher will read both texts and contact you if needed."


def cross_check(lab: Lab, store: Store) -> dict[str, SubmissionResult]:
    """Compare the reflections of the lab's current results; record and return those that changed."""
    specs = [c for c in lab.rubric.criteria if isinstance(c, ReflectionSpec) and c.originality]
    if not specs:
        return {}
    current = {r.student: r for r in store.latest(lab.name)}
    changed: dict[str, SubmissionResult] = {}
    with embeddings.kept_in(store):  # texts seen in an earlier run need no model
        for spec in specs:
            _check(lab, store, spec, current, changed)
    for result in changed.values():
        store.record(result)
    return changed


def _check(lab: Lab, store: Store, spec: ReflectionSpec, current: dict[str, SubmissionResult],
           changed: dict[str, SubmissionResult]) -> None:
    """One reflection criterion's part, over the whole cohort: into `changed`, the results it changed."""
    texts = {s: str(c.details["text"]) for s, r in current.items()
             for c in r.criteria if c.id == spec.id and c.details.get("text")}
    matches: dict[str, list[dict]] = {}
    for pair in find_copies(texts, ignore=template_text(lab, spec)):
        for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
            matches.setdefault(me, []).append(
                {"student": other, "similarity": pair.similarity, "lexical": pair.lexical,
                 "semantic": pair.semantic, "by": pair.by})
    for student, result in current.items():
        c = next((c for c in result.criteria if c.id == spec.id), None)
        if c is not None and _update(c, matches.get(student, [])):
            changed[student] = apply_overrides(result, store)  # which decides the verdict again


def _update(c: CriterionResult, similar: list[dict]) -> bool:
    """Set the cohort's part of one reflection result; True when anything changed."""
    if "own_status" not in c.details:
        return False  # not judged by the reflection criterion itself (e.g. an error result)
    before = (c.status, c.message, c.advice, c.details.get("similar_to", []))
    c.details.setdefault("own_advice", c.advice)
    own_status, own_message = c.details["own_status"], c.details.get("own_message", c.message)
    status, message, advice = own_status, own_message, c.details["own_advice"]
    if similar and own_status == "pass":
        status, advice = "review", COPY_ADVICE
        message = COPY_MESSAGE.format(similarity=max(m["similarity"] for m in similar))
        if c.details.get("read"):  # a reflection read from a report still says which part was read
            message += f" Read: {c.details['read']}."
    if c.override is not None:  # a teacher's decision stands; what the grader would say is kept beside it
        c.override.was, status = status, c.override.status
    c.status, c.message, c.advice = status, message, advice
    if similar:
        c.details["similar_to"] = similar
    else:
        c.details.pop("similar_to", None)
    return before != (c.status, c.message, c.advice, c.details.get("similar_to", []))


