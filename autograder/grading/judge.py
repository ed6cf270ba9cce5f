"""Judge: on the host, in trusted code only, turn the evidence into criterion results and a verdict."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from autograder import __version__
from autograder.criteria import build
from autograder.criteria.analysis.documents import ReportFile
from autograder.criteria.base import Evidence, ProbeData
from autograder.grading.intake import Submission
from autograder.grading.pytest_plugin import TestContext, run_tests
from autograder.labs.lab import Lab
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, ExecutionResult, HiddenTestResult, SubmissionResult


def _submitted(submission: Submission):
    """The notebook as handed in, as data; None when it can't be read."""
    import nbformat

    try:
        return nbformat.reads(submission.notebook_bytes().decode("utf-8", "replace"), as_version=4)
    except Exception:  # unreadable now though intake read it: treat as absent
        return None


def _modules(submission: Submission) -> dict[str, str]:
    """The student's own modules as text, for the static checks."""
    if submission.problem:
        return {}
    return {name: submission.file_bytes(name).decode("utf-8", "replace") for name in submission.files}


def _report(submission: Submission) -> ReportFile | None:
    """The written report as handed in, for a reflection read from it; None when none was handed in."""
    member = getattr(submission, "report", None)
    if member is None:
        return None
    try:
        return ReportFile(name=member, data=submission.report_bytes())
    except Exception as exc:  # intake read it, now it can't be: say so rather than "not handed in"
        return ReportFile(name=member, error=f"{type(exc).__name__}: {exc}")


@dataclass
class TestsRecord:
    """The hidden tests' outcomes for one set of inputs (the lab's version, which covers the tests and the
    data, and the stages they read), as the store keeps them: a rubric change re-judges without running
    pytest again. `recorded` is what was on record; the judge sets `fresh` when it ran them itself."""

    recorded: dict | None = None
    fresh: dict | None = None

    def found(self) -> tuple[list[HiddenTestResult], dict[str, float]] | None:
        try:
            return ([HiddenTestResult.model_validate(t) for t in self.recorded["tests"]],
                    {str(k): float(v) for k, v in self.recorded["metrics"].items()}) if self.recorded else None
        except (KeyError, TypeError, ValueError, ValidationError):  # an older or damaged record: run them
            return None


def judge(lab: Lab, submission: Submission, execution: ExecutionResult | None, notebook, probes: ProbeData,
          backend: str = "", tests_record: TestsRecord | None = None) -> SubmissionResult:
    """`execution` None: a lab without a notebook, whose probes import the modules themselves. The tests
    run unless the submission could not be read or the grader failed: those that need the notebook's
    run skip themselves when it stopped (pytest_plugin). With `tests_record`, outcomes on record for the
    same inputs stand in for a run, and a clean run's outcomes are handed back for the store."""
    submitted = None if submission.problem or lab.spec.notebook is None else _submitted(submission)
    evidence = Evidence(lab=lab, execution=execution, notebook=notebook or submitted, probes=probes,
                        labels=lab.labels(), submitted=submitted, modules=_modules(submission),
                        report=_report(submission))
    wants_tests = any(c.kind == "hidden-tests" for c in lab.rubric.criteria)
    readable = execution is None or execution.status not in ("invalid", "harness-error")
    if wants_tests and readable and lab.test_files():
        context = TestContext(lab=lab, probes=probes, notebook=notebook, ran=evidence.ran)
        found = tests_record.found() if tests_record is not None else None
        if found is not None:
            evidence.tests, context.metrics = found
        else:
            evidence.tests, evidence.tests_error = run_tests(lab.test_files(), context)  # one at a time
            if tests_record is not None and not evidence.tests_error:  # a harness error is never kept
                tests_record.fresh = {"tests": [t.model_dump(mode="json") for t in evidence.tests],
                                      "metrics": dict(context.metrics)}
        evidence.metrics = context.metrics
    criteria = [build(spec).check(evidence) for spec in lab.rubric.criteria]
    if lab.spec.notebook is None and execution is not None and execution.status == "invalid":
        # No notebook-runs to say why nothing was checked: say it once, first.
        criteria.insert(0, CriterionResult(id="handed-in", kind="handed-in", status="fail", message=execution.message,
                                           advice="Hand in what the lab asks for (see the message) and hand in "
                                           "again."))
    notes = []
    if execution is not None and execution.output_truncated_bytes:
        notes.append(f"The notebook printed {execution.output_truncated_bytes / 1024**2:.1f} MB more output than "
                     "the lab keeps; the rest was dropped.")
    return SubmissionResult(
        lab=lab.name, student=submission.student, submission_hash=submission.sha256, lab_version=lab.version,
        rubric_hash=lab.rubric_hash, verdict=decide(criteria), criteria=criteria, execution=execution,
        probes=probes.report, tests=evidence.tests or [], metrics=evidence.metrics, notes=notes, backend=backend,
        harness_version=__version__,
    )
