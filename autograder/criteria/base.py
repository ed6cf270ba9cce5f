"""The criterion interface: a rubric entry's spec, the evidence it reads, the result it gives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autograder.results import CriterionResult, ExecutionResult, HiddenTestResult, ProbeReport, Status
from autograder.spec import Slug

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from autograder.lab import Lab


class CriterionSpec(BaseModel):
    """Fields every rubric criterion has; each kind adds its own."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    kind: str
    title: str = ""
    required: bool = Field(True, description="A required criterion must pass for G; others are advice.")


class ThresholdSpec(CriterionSpec):
    """A criterion with a bar; values just on the failing side of it may go to a human instead."""

    review_margin: float = Field(
        0, ge=0, description="A value at most this far on the failing side of the bar gets `review`, not `fail`."
    )

    def status(self, passed: bool, distance: float) -> Status:
        """pass, or review when `distance` past the bar is within the margin, else fail."""
        if passed:
            return "pass"
        return "review" if distance <= self.review_margin else "fail"


BORDERLINE = "just past the bar, within the rubric's review margin: a teacher will decide"


class EvidenceMissing(Exception):
    """What a criterion needs was not produced; `student` says whose doing that was."""

    def __init__(self, message: str, student: bool) -> None:
        super().__init__(message)
        self.message = message
        self.student = student


@dataclass
class ProbeData:
    """Probe outputs loaded on the host (plain arrays only) with the report of how the probes ran."""

    report: ProbeReport
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def get(self, probe: str) -> dict[str, np.ndarray]:
        """The arrays of one probe, or EvidenceMissing saying why there are none."""
        if probe in self.arrays:
            return self.arrays[probe]
        report = self.report
        if report.status == "skipped":
            raise EvidenceMissing(f"not measured: {report.message}", student=True)
        if report.status == "harness-error":
            raise EvidenceMissing(f"the grader could not run the probes: {report.message}", student=False)
        if report.status in ("timeout", "memory", "pids", "disk", "crashed"):
            raise EvidenceMissing(f"evaluating your exported objects failed: {report.message}", student=True)
        status = report.probes.get(probe)
        if status is None:
            raise EvidenceMissing(f"the lab has no probe named {probe!r}", student=False)
        raise EvidenceMissing(f"evaluating your exported objects failed: {status.error}", student=True)


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


class Criterion(ABC):
    """One kind of check. Subclasses set `kind` and `Spec` and are registered by kind."""

    kind: ClassVar[str]
    Spec: ClassVar[type[CriterionSpec]]

    def __init__(self, spec: CriterionSpec) -> None:
        self.spec = spec

    @abstractmethod
    def evaluate(self, evidence: Evidence) -> CriterionResult: ...

    def check(self, evidence: Evidence) -> CriterionResult:
        """evaluate(), turning missing evidence into `skipped`/`fail`/`error` with the reason."""
        try:
            return self.evaluate(evidence)
        except EvidenceMissing as missing:
            if not missing.student:
                return self.result("error", missing.message)
            ran = evidence.execution is not None and evidence.execution.status == "ok"
            # Upstream failures (the notebook stopped) are reported once, by notebook-runs.
            return self.result("fail" if ran else "skipped", _sentence(missing.message))

    def result(
        self,
        status: Status,
        message: str,
        value: float | int | str | None = None,
        threshold: float | int | str | None = None,
        **details: Any,
    ) -> CriterionResult:
        return CriterionResult(
            id=self.spec.id,
            kind=self.kind,
            status=status,
            value=value,
            threshold=threshold,
            message=message,
            required=self.spec.required,
            details=details,
        )


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
