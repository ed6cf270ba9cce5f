"""The notebook, or one cell of it, runs within a time budget on the grading host.

A cell's time is what papermill recorded in the executed notebook (`metadata.papermill.duration`),
or else nbclient's execution timestamps; the student's own copy of that metadata is never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import (
    BORDERLINE,
    Criterion,
    Evidence,
    EvidenceMissing,
    LabProblem,
    Reference,
    ThresholdSpec,
    needs_notebook,
)
from autograder.criteria.required_output import cell_name, executed_notebook, missing_cell
from autograder.notebooks import find_cell
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from autograder.labs.lab import Lab


class RuntimeSpec(ThresholdSpec):
    kind: Literal["runtime"]
    max_seconds: float = Field(gt=0, description="Longest run time that passes, in seconds on the grading host.")
    cell: str | None = Field(
        None, description="nbgrader grade_id or tag of one cell to time; without it, the whole notebook's run.")

    def references(self) -> list[Reference]:
        return [Reference("cell", "cell", self.cell)] if self.cell else []

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)  # a cell in a lab without a notebook, among others
        if self.cell is None:
            yield from needs_notebook(self, lab, "the notebook's run time")


def cell_duration(cell: NotebookNode) -> float | None:
    """Seconds the grader's run spent in the cell, as papermill (else nbclient) recorded it."""
    meta = cell.get("metadata", {})
    duration = meta.get("papermill", {}).get("duration")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0:
        return float(duration)
    timing = meta.get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"])
        end = datetime.fromisoformat(timing["shell.execute_reply"])
    except (KeyError, TypeError, ValueError):
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds >= 0 else None


@register
class Runtime(Criterion):
    kind = "runtime"
    Spec = RuntimeSpec
    spec: RuntimeSpec
    advice = {"fail": "Make it run faster (fewer epochs, a smaller model, NumPy operations instead of Python "
                      "loops) and hand in again."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        seconds: float | None
        if s.cell is None:
            run = evidence.execution
            if run is None:
                return self.result("error", "The notebook was not run.")
            if run.status != "ok":
                raise EvidenceMissing("not measured: the notebook did not run to the end", student=True)
            seconds, what = run.duration_s, "The notebook"
        else:
            cell = find_cell(executed_notebook(evidence), s.cell)
            if cell is None:
                return self.result("fail", missing_cell(s.cell), None, s.max_seconds,
                                   advice="Copy the cell back from the notebook you were given and hand in again.")
            seconds = cell_duration(cell)
            name = cell_name(cell, s.cell)
            if seconds is None:
                raise EvidenceMissing(f"{name} has no recorded run time (is it a code cell?)", student=False)
            what = name[:1].upper() + name[1:]
        seconds = round(seconds, 2)
        status = s.status(seconds <= s.max_seconds, seconds - s.max_seconds)
        message = {
            "pass": f"{what} ran in {seconds:.1f} s (at most {s.max_seconds:g} s allowed).",
            "review": f"{what} ran in {seconds:.1f} s, more than the {s.max_seconds:g} s allowed but {BORDERLINE}.",
            "fail": f"{what} ran in {seconds:.1f} s, more than the {s.max_seconds:g} s allowed.",
        }[status]
        return self.result(status, message, seconds, s.max_seconds)
