"""The notebook ran from top to bottom, within its limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, LabProblem, needs_notebook
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from autograder.labs.lab import Lab


class NotebookRunsSpec(CriterionSpec):
    kind: Literal["notebook-runs"]

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        yield from needs_notebook(self, lab, "that the notebook runs")


@register
class NotebookRuns(Criterion):
    kind = "notebook-runs"
    Spec = NotebookRunsSpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        run = evidence.execution
        if run is None:
            return self.result("error", "The notebook was not run.")
        duration = round(run.duration_s, 1)
        if run.status == "ok":
            return self.result("pass", f"The notebook ran from top to bottom in {duration:.0f} s.", duration)
        if run.status == "harness-error":
            return self.result("error", f"The grader could not run the notebook: {run.message}")
        return self.result("fail", run.message, duration, cell=run.cell, run_status=run.status)
