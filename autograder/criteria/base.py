"""The criterion interface: a rubric entry's spec, the evidence it reads, the result it gives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autograder.labs.spec import Slug
from autograder.results import CriterionResult, ExecutionResult, HiddenTestResult, ProbeReport, Status

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from autograder.criteria.analysis.documents import ReportFile
    from autograder.labs.lab import Lab


class Reference(NamedTuple):
    """A name a criterion gives to something in the lab's other files, and the field that gives it."""

    field: str
    kind: Literal["probe", "split", "export", "cell"]
    name: str


class LabProblem(NamedTuple):
    """What a criterion names that the lab lacks: the field, what is wrong, and how to fix it."""

    field: str
    problem: str
    hint: str


class CriterionSpec(BaseModel):
    """Fields every rubric criterion has; each kind adds its own, and says what of the lab it names."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    kind: str
    title: str = ""
    required: bool = Field(True, description="A required criterion must pass for G; others are advice.")
    on_fail: Literal["U", "review"] = Field(
        "U", description="What failing it means: U, or `review` to send the submission to a human instead.")

    def references(self) -> list[Reference]:
        """The probes, splits, exports and notebook cells this criterion names, field by field."""
        return []

    def probes(self) -> list[str]:
        return [r.name for r in self.references() if r.kind == "probe"]

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        """What this criterion names that the lab does not have (cells are the validator's: reading
        the notebooks belongs to `validate-lab`, not to every load, but a lab without a notebook has
        none to name)."""
        for ref in self.references():
            if ref.kind == "cell" and lab.spec.notebook is None:
                yield LabProblem(ref.field, f"names cell {ref.name!r}, but the lab has no notebook (students hand "
                                 f"in {', '.join(lab.spec.files.student)} only)", NO_NOTEBOOK_HINT)
            elif ref.kind == "probe" and ref.name not in lab.probes and not lab.public_only:
                yield LabProblem(ref.field, f"names probe {ref.name!r}, but no probes file defines probe_{ref.name}()",
                                 f"probes defined: {', '.join(sorted(lab.probes)) or 'none'}")
            elif ref.kind == "split" and ref.name not in lab.spec.splits:
                yield LabProblem(ref.field, f"names split {ref.name!r}, which lab.yaml does not define",
                                 f"use one of: {', '.join(lab.spec.splits)}")
            elif ref.kind == "export" and ref.name not in lab.spec.exports:
                yield LabProblem(ref.field, f"names export {ref.name!r}, which lab.yaml does not list under `exports`",
                                 f"exports: {', '.join(lab.spec.exports)}")


NO_NOTEBOOK_HINT = ("remove the criterion, or give the lab a notebook (`notebook:` in lab.yaml); a module-only lab "
                    "is judged by its probes and tests")


def needs_notebook(spec: CriterionSpec, lab: Lab, what: str) -> Iterator[LabProblem]:
    """The problem of a criterion that reads the notebook (`what` it reads) in a lab that has none."""
    if lab.spec.notebook is None:
        yield LabProblem("kind", f"{spec.kind} checks {what}, but the lab has no notebook (students hand in "
                         f"{', '.join(lab.spec.files.student)} only)", NO_NOTEBOOK_HINT)


class ThresholdSpec(CriterionSpec):
    """A criterion with a bar; values just on the failing side of it may go to a human instead."""

    review_margin: float = Field(
        0, ge=0, description="A value at most this far on the failing side of the bar gets `review`, not `fail`."
    )
    check_margin: float | None = Field(
        None, ge=0, description="How far from the bar the self-check calls an estimate safe (default: 5% of the "
        "bar); closer, it warns that grading on hidden data may decide the other way.")

    def safe_margin(self, threshold: float) -> float:
        return self.check_margin if self.check_margin is not None else 0.05 * abs(threshold)

    def status(self, passed: bool, distance: float) -> Status:
        """pass, or review when `distance` past the bar is within the margin, else fail."""
        if passed:
            return "pass"
        return "review" if within(distance, self.review_margin) else "fail"


def within(distance: float, margin: float) -> bool:
    """distance <= margin, where a value a TA reads as on the margin (0.75 - 0.745 in binary floating point is
    0.0050000000000000044) counts as on it."""
    return distance <= margin + 1e-9 * max(1.0, abs(margin))


BORDERLINE = "just past the bar, within the rubric's review margin: a teacher will decide"


class BorderlinePolicy(BaseModel):
    """What happens to a measured value whose uncertainty holds its bar: its 95% interval straddles the
    bar, or it lies within `margin` of it. One run of a training notebook is one draw: the same code with
    another seed may land on the other side, so a fail there is not sure."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    policy: Literal["review", "rerun", "as-is"] = Field(
        "review", description="review: a teacher decides a borderline fail; rerun: the notebook runs again with "
        "other seeds (lab.yaml's `seed_parameter`) and the median is judged; as-is: the value is judged as measured.")
    margin: float = Field(0, ge=0, description="A value this close to the bar is borderline whatever its interval; "
                          "in the metric's own units (0.005 is half a percentage point of accuracy).")
    runs: int = Field(5, ge=2, le=20, description="For rerun: how many runs in all, the first one included.")
    time_budget_s: float = Field(1800, gt=0, description="For rerun: the wall time all re-runs of one submission "
                                 "may take together; what is cut short goes to a teacher.")
    gpu_budget_s: float | None = Field(None, gt=0, description="For rerun: the GPU time (seconds x GPUs) all "
                                       "re-runs of one submission may take; none: only the course's budget.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        """`borderline: rerun` is `borderline: {policy: rerun}`."""
        return {"policy": data} if isinstance(data, str) else data

    @field_validator("runs", mode="before")
    @classmethod
    def _whole(cls, runs: object) -> object:
        if isinstance(runs, bool) or (isinstance(runs, float) and not runs.is_integer()):
            raise ValueError(f"runs is a whole number of runs (2 to 20), not {runs!r}")
        return runs

    def describe(self) -> str:
        """What grading does with a borderline fail, for the self-check: 'a teacher will decide'."""
        return {"review": "a teacher will decide",
                "rerun": f"grading will run your notebook with up to {self.runs} seeds and judge the median",
                "as-is": "it is judged as measured: a fail"}[self.policy]


class EvidenceMissing(Exception):
    """What a criterion needs was not produced; `student` says whose doing that was."""

    def __init__(self, message: str, student: bool, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.student = student
        self.detail = detail  # the whole text, for staff, where the message holds back what was hidden


# What the probe stage says of each export when the notebook stopped and the probes ran on the student's
# modules alone (a lab with files.student): a probe that asked for an export needed the notebook.
NOT_SAVED = "was not saved: the notebook did not run to the end"


@dataclass
class ProbeData:
    """Probe outputs loaded on the host (plain arrays only) with the report of how the probes ran."""

    report: ProbeReport
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    evaluated: str = "your exported objects"  # what a failed probe tells the student it was evaluating

    def needs_notebook(self, probe: str) -> bool:
        """Whether the probe has no output for want of the notebook's run: the stage was skipped, or the
        probe asked for an export that the stopped notebook never saved."""
        if probe in self.arrays:
            return False
        if self.report.status == "skipped":
            return True
        status = self.report.probes.get(probe)
        unsaved = {f"`{name}` {NOT_SAVED}" for name, why in self.report.exports.items() if why == NOT_SAVED}
        return status is not None and status.status == "failed" and status.error in unsaved

    def get(self, probe: str) -> dict[str, np.ndarray]:
        """The arrays of one probe, or EvidenceMissing saying why there are none."""
        if probe in self.arrays:
            return self.arrays[probe]
        report = self.report
        if report.status == "skipped":
            raise EvidenceMissing(f"not measured: {report.message}", student=True)
        if self.needs_notebook(probe):
            raise EvidenceMissing("not measured: the notebook did not run to the end", student=True)
        if report.status == "harness-error":
            raise EvidenceMissing(f"the grader could not run the probes: {report.message}", student=False)
        if report.status in ("timeout", "memory", "pids", "disk", "crashed"):
            raise EvidenceMissing(f"evaluating {self.evaluated} failed: {report.message}", student=True)
        status = report.probes.get(probe)
        if status is None:
            raise EvidenceMissing(f"the lab has no probe named {probe!r}", student=False)
        raise EvidenceMissing(f"evaluating {self.evaluated} failed: {status.error}", student=True,
                              detail=status.detail if status.detail != status.error else "")


@dataclass
class Evidence:
    """Everything the judge knows about one submission; all of it trusted or loaded as data."""

    lab: Lab
    execution: ExecutionResult | None
    notebook: NotebookNode | None  # as executed (or as submitted, when the run left none)
    probes: ProbeData
    labels: dict[str, np.ndarray]
    tests: list[HiddenTestResult] | None = None
    tests_error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    submitted: NotebookNode | None = None  # as handed in, before papermill touched it
    modules: dict[str, str] = field(default_factory=dict)  # the student's own modules (file name -> text)
    report: ReportFile | None = None  # the written report as handed in (lab.yaml's files.report), read on the host

    @property
    def ran(self) -> bool:
        """The student's code got as far as the probes need: the notebook ran to its end, or the lab has
        no notebook (execution None: the probes import the modules themselves)."""
        if self.execution is None:
            spec = getattr(self.lab, "spec", None)  # tests' stand-in labs may have none
            return spec is not None and spec.notebook is None
        return self.execution.status == "ok"


DEFAULT_ADVICE: dict[str, str] = {
    "pass": "Nothing to do.",
    "review": "Nothing to do for now: a teacher will look at this and contact you if needed.",
    "fail": "Fix what the message says and hand in again.",
    "error": "Not your fault: the course staff have been told; nothing to do.",
    "skipped": "Make the notebook run from top to bottom first; this is checked after that.",
}


class Criterion(ABC):
    """One kind of check. Subclasses set `kind` and `Spec` and are registered by kind.

    `advice` gives the one sentence on what to do for each status; a result may carry its own.
    """

    kind: ClassVar[str]
    Spec: ClassVar[type[CriterionSpec]]
    advice: ClassVar[dict[str, str]] = {}

    def __init__(self, spec: CriterionSpec) -> None:
        self.spec = spec

    @abstractmethod
    def evaluate(self, evidence: Evidence) -> CriterionResult: ...

    def check(self, evidence: Evidence) -> CriterionResult:
        """evaluate(), turning missing evidence into `skipped`/`fail`/`error` with the reason, a
        failure into `review` where the rubric says so, and adding the sentence on what to do."""
        lab = evidence.lab
        public_only = getattr(lab, "public_only", False)  # the self-check's view of the lab has no hidden probes
        hidden = [p for p in self.spec.probes() if p not in lab.probes] if public_only else []
        if hidden:
            probe = hidden[0]
            # The self-check's view holds no hidden probe: say so rather than fail the student for it.
            result = self.result("skipped", f"Checked only at grading: it is measured by a hidden probe ({probe}).",
                                 advice="Nothing to check here; grading measures it.", reason="hidden-only")
            return result
        try:
            result = self.evaluate(evidence)
        except EvidenceMissing as missing:
            if not missing.student:
                result = self.result("error", missing.message)
            else:
                # Upstream failures (the notebook stopped) are reported once, by notebook-runs.
                result = self.result("fail" if evidence.ran else "skipped", _sentence(missing.message))
            if missing.detail:  # staff only: details never reach a student's page or export
                result.details["staff_detail"] = missing.detail
        if result.status == "fail" and self.spec.on_fail == "review":
            result.status = "review"
            result.details.setdefault("failed", True)  # the rubric sends this failure to a human
        if not result.advice:
            result.advice = self.advice.get(result.status) or DEFAULT_ADVICE[result.status]
        if "own_status" in result.details:  # a cohort-wide pass may amend it later: keep the final word alone
            result.details.update(own_status=result.status, own_message=result.message, own_advice=result.advice)
        return result

    def result(
        self,
        status: Status,
        message: str,
        value: float | int | str | None = None,
        threshold: float | int | str | None = None,
        /,
        *,
        advice: str = "",
        **details: Any,
    ) -> CriterionResult:
        """A result of this criterion. The fields come first and positionally, so a detail may be named
        like one (`value`, `status`) and still land in `details`; only `advice` is taken by name."""
        return CriterionResult(
            id=self.spec.id,
            kind=self.kind,
            status=status,
            value=value,
            threshold=threshold,
            message=message,
            advice=advice,
            required=self.spec.required,
            details=details,
        )


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
