"""The cohort-wide pass after a batch: reflections, and code, that look copied from another student's go to review.

A reflection read from a report (`source: report`) is compared the same way: its result keeps the
text read (the section) in `details["text"]` and the template is the released report template's.
It runs over every student's current result in the store, not only the batch just graded, so a
late hand-in is compared with everyone graded before it. It is idempotent: each reflection result
keeps what the criterion found on its own (`own_status`, `own_message`), and the pass recomputes
the cohort's part from scratch, so a student whose match has since handed in a new text is cleared.
Names of the other student stay in the TA's evidence (`details`), never in the student's message.

Code (`code-originality`) the same way: each result keeps the student's own code as compared
(`details["code"]`); the pass fingerprints everyone's, with the lab's handout removed
(analysis/code.py), and records for each pair at or over the rubric's bar the other student, the
similarity and the matched passages, as line ranges into both students' `details["code"]`.
"""

from __future__ import annotations

from autograder.criteria.analysis import embeddings
from autograder.criteria.analysis.code import MAX_MATCHES, find_code_copies
from autograder.criteria.analysis.originality import find_copies
from autograder.criteria.code_originality import CodeOriginalitySpec, own_prints
from autograder.criteria.reflection import ReflectionSpec, template_text
from autograder.grading.decisions import record_decided
from autograder.labs.lab import Lab
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

COPY_MESSAGE = ("Your reflection is very similar to another student's (similarity {similarity:.2f}); "
                "a teacher will compare the two.")
COPY_ADVICE = "Nothing to do for now: a teacher will read both texts and contact you if needed."
CODE_MESSAGE = ("Your code is very similar to another student's (similarity {similarity:.2f}, after names, "
                "comments and layout are set aside); a teacher will compare the two.")
CODE_ADVICE = "Nothing to do for now: a teacher will compare the two and contact you if needed."


def cross_check(lab: Lab, store: Store) -> dict[str, SubmissionResult]:
    """Compare the reflections and the code of the lab's current results; record and return those that changed."""
    specs = [c for c in lab.rubric.criteria if isinstance(c, ReflectionSpec) and c.originality]
    code_specs = [c for c in lab.rubric.criteria if isinstance(c, CodeOriginalitySpec)]
    if not specs and not code_specs:
        return {}
    current = {r.student: r for r in store.latest(lab.name)}
    changed: dict[str, SubmissionResult] = {}
    if specs:
        with embeddings.kept_in(store):  # texts seen in an earlier run need no model
            for spec in specs:
                _check(lab, spec, current, changed)
    for code_spec in code_specs:
        _check_code(lab, code_spec, current, changed)
    # The standing decisions applied and the result recorded in one transaction: a TA deciding meanwhile in
    # `autograder serve` lands before (and is applied here) or after (and applies itself), never in between.
    return {student: record_decided(store, result) for student, result in changed.items()}


def _check(lab: Lab, spec: ReflectionSpec, current: dict[str, SubmissionResult],
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
            changed[student] = result  # recorded with the standing decisions, which decide the verdict again


def _check_code(lab: Lab, spec: CodeOriginalitySpec, current: dict[str, SubmissionResult],
                changed: dict[str, SubmissionResult]) -> None:
    """One code criterion's part, over the whole cohort: into `changed`, the results it changed."""
    prints = {}
    for student, result in current.items():
        c = next((c for c in result.criteria if c.id == spec.id), None)
        if c is not None and c.details.get("code") and "own_status" in c.details:
            fp = own_prints(spec, str(c.details["code"]), lab)
            if fp.own_tokens >= spec.min_tokens:
                prints[student] = fp
    matches: dict[str, list[dict]] = {}
    for pair in find_code_copies(prints, spec.bar):
        matches.setdefault(pair.a, []).append(
            {"student": pair.b, "similarity": pair.similarity,
             "passages": [{"mine": list(a), "theirs": list(b)} for a, b in pair.passages]})
        matches.setdefault(pair.b, []).append(
            {"student": pair.a, "similarity": pair.similarity,
             "passages": [{"mine": list(b), "theirs": list(a)} for a, b in pair.passages]})
    for student, result in current.items():
        c = next((c for c in result.criteria if c.id == spec.id), None)
        similar = sorted(matches.get(student, []), key=lambda m: (-m["similarity"], m["student"]))[:MAX_MATCHES]
        if c is not None and _update(c, similar, CODE_MESSAGE, CODE_ADVICE):
            changed[student] = result  # recorded with the standing decisions, which decide the verdict again


def _update(c: CriterionResult, similar: list[dict], copy_message: str = COPY_MESSAGE,
            copy_advice: str = COPY_ADVICE) -> bool:
    """Set the cohort's part of one reflection (or code) result; True when anything changed."""
    if "own_status" not in c.details:
        return False  # not judged by the criterion itself (e.g. an error result)
    before = (c.status, c.message, c.advice, c.details.get("similar_to", []))
    c.details.setdefault("own_advice", c.advice)
    own_status, own_message = c.details["own_status"], c.details.get("own_message", c.message)
    status, message, advice = own_status, own_message, c.details["own_advice"]
    if similar and own_status == "pass":
        status, advice = "review", copy_advice
        message = copy_message.format(similarity=max(m["similarity"] for m in similar))
        if c.details.get("read"):  # a reflection read from a report still says which part was read
            message += f" Read: {c.details['read']}."
    if c.override is not None:  # a teacher's decision stands; what the grader would say is kept beside it
        c.override.was, status, advice = status, c.override.status, c.advice  # and says what to do
    c.status, c.message, c.advice = status, message, advice
    if similar:
        c.details["similar_to"] = similar
    else:
        c.details.pop("similar_to", None)
    return before != (c.status, c.message, c.advice, c.details.get("similar_to", []))


