"""The lab's pytest tests, run on the host by the judge, pass: all of them, or enough of their weight.

The public tests (assignments/<lab>/tests, in the student kit) run first, then the hidden ones
(reference/<lab>/tests, grading only); the self-check runs only the public ones. A hidden test's
name and assertion message can give the tests away, so the student sees them only for tests marked
`@pytest.mark.public` (public tests always); the TA's details keep everything.

Tests run whatever became of the notebook: a test that asks for nothing of the notebook's run (the
`notebook` fixture, or a probe output that needed an export) still runs when the notebook stopped,
so a student's module is judged though their notebook is not; the others are skipped then
(pytest_plugin.py decides by the fixtures each test asks for). In a lab without a notebook every
test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import (
    BORDERLINE,
    Criterion,
    Evidence,
    EvidenceMissing,
    LabProblem,
    ProbeData,
    ThresholdSpec,
)
from autograder.results import CriterionResult, HiddenTestResult

if TYPE_CHECKING:
    from autograder.labs.lab import Lab


class HiddenTestsSpec(ThresholdSpec):
    kind: Literal["hidden-tests"]
    min_score: float = Field(
        1.0, ge=0, le=1, description="Share of the tests' weight that must pass (1: every test). Skipped tests "
        "do not count; a test's weight is 1 unless it is marked @pytest.mark.weight(w).")

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        if not lab.test_files() and not lab.public_only:
            yield LabProblem("", f"no test_*.py files in {lab.tests_dir} or {lab.public_tests_dir}",
                             "add hidden tests or remove the criterion")


@register
class HiddenTests(Criterion):
    kind = "hidden-tests"
    Spec = HiddenTestsSpec
    spec: HiddenTestsSpec
    advice = {"fail": "Fix what the message names (a hidden test checks what the lab's instructions ask for) "
                      "and hand in again."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        run = evidence.execution
        if evidence.tests is None and not evidence.tests_error and not evidence.ran:
            # Not run at all; why is reported once, by notebook-runs (or, for a broken hand-in, by the judge).
            why = ("the submission can't be graded" if run is not None and run.status == "invalid"
                   else "the notebook did not run to the end")
            return self.result("skipped", f"Not run: {why}.")
        if evidence.tests_error:
            return self.result("error", f"The grader could not run the hidden tests: {evidence.tests_error}")
        tests = evidence.tests or []
        if not tests and evidence.lab.public_only:
            return self.result("skipped", "Checked only at grading: this lab's tests are all hidden.",
                               reason="hidden-only")
        if not tests:
            return self.result("error", "The lab has no hidden tests to run.")
        counted = [t for t in tests if t.outcome != "skipped"]
        waiting = [] if evidence.ran else [t for t in tests if t.outcome == "skipped"]  # on the stopped notebook
        if not counted and waiting:
            return self.result("skipped", "Not run: the notebook did not run to the end.", tests=_details(tests))
        if not counted:
            return self.result("error", f"None of the lab's {len(tests)} hidden tests ran: all were skipped.",
                               tests=_details(tests))
        failed = [t for t in counted if t.outcome != "passed"]
        noun = _noun(counted)
        total = sum(t.weight for t in counted)
        score = sum(t.weight for t in counted if t.outcome == "passed") / total if total else 1.0
        score = round(score, 4)
        status = s.status(score >= s.min_score, s.min_score - score)
        details: dict[str, Any] = dict(score=score, passed=f"{len(counted) - len(failed)}/{len(counted)}",
                                       tests=_details(tests))
        unrun = (f" ({len(waiting)} more need{'s' if len(waiting) == 1 else ''} the notebook, which did not run to "
                 "the end)") if waiting else ""
        if not failed and waiting:  # a pass on part of the tests is no pass
            return self.result("skipped", f"The {len(counted)} {noun} that need only your modules pass{unrun}.",
                               score, s.min_score, **details)
        if not failed:
            return self.result("pass", f"All {len(counted)} {noun} pass.", score, s.min_score, **details)
        what = _what_failed(failed, len(counted), _probe_failures(evidence.probes), noun) + unrun
        if waiting and status == "pass":  # enough of what ran passes, but not all of it ran
            status = "skipped"
        name = noun[:1].upper() + noun[1:]
        if status == "pass":
            message = f"{name} score {score:.2f} (at least {s.min_score:.2f} needed); {what}."
        elif status == "review":
            message = f"{name} score {score:.2f}, below the {s.min_score:.2f} needed but {BORDERLINE}; {what}."
        elif s.min_score < 1:
            message = f"{name} score {score:.2f}, below the {s.min_score:.2f} needed; {what}."
        else:
            message = f"{what[:1].upper()}{what[1:]}."
        return self.result(status, message, score, s.min_score, **details)


def _noun(tests: list[HiddenTestResult]) -> str:
    """What the student calls these tests: the public ones they have, the hidden ones, or both."""
    kit = sum(t.kit for t in tests)
    return "public tests" if kit == len(tests) else "hidden tests" if kit == 0 else "tests"


MESSAGES_SHOWN = 3  # failed public tests whose message the summary quotes; every one is named


def _what_failed(failed: list[HiddenTestResult], counted: int, shareable: set[str], noun: str) -> str:
    """'1 of 4 hidden tests failed', or '2 of 4 tests failed: test_a (its message); test_b (...); and 1
    hidden test': every failed public test by name, a failure's message only where the student may see
    it (a public test's, or the probes' own report of why the student's objects could not be evaluated)."""
    public = [t for t in failed if t.public]
    hidden = [t for t in failed if not t.public]
    if not public:
        text = f"{len(hidden)} of {counted} {noun} failed"
        reason = next((t.message for t in hidden if t.message in shareable), "")
        return f"{text}: {_one_line(reason)}" if reason else text
    named = [f"{t.name} ({_one_line(t.message, 150) or t.outcome})" if i < MESSAGES_SHOWN else t.name
             for i, t in enumerate(public)]
    if hidden:
        named.append(f"and {len(hidden)} hidden test{'s' if len(hidden) > 1 else ''}")
    noun = "tests" if noun == "hidden tests" else noun  # some are named: not all are hidden
    return f"{len(failed)} of {counted} {noun} failed: {'; '.join(named)}"


def _probe_failures(probes: ProbeData) -> set[str]:
    """The messages a test gets when it asks for a probe's output that is missing: they describe the
    student's objects, not the tests, so they may be shown."""
    names = [n for n in probes.report.probes if n not in probes.arrays]
    if probes.report.status != "ok":
        names.append("")
    found = set()
    for name in names:
        try:
            probes.get(name)
        except EvidenceMissing as missing:
            found.add(missing.message)
    return found


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def _details(tests: list[HiddenTestResult]) -> list[dict]:
    return [t.model_dump() for t in tests]
