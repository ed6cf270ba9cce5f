"""The lab's hidden pytest tests, run on the host by the judge, all pass."""

from __future__ import annotations

from typing import Literal

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence
from autograder.results import CriterionResult


class HiddenTestsSpec(CriterionSpec):
    kind: Literal["hidden-tests"]


@register
class HiddenTests(Criterion):
    kind = "hidden-tests"
    Spec = HiddenTestsSpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        run = evidence.execution
        if run is None or run.status != "ok":
            # The tests need the notebook's objects; the stopped run is reported once, by notebook-runs.
            return self.result("skipped", "Not run: the notebook did not run to the end.")
        if evidence.tests_error:
            return self.result("error", f"The grader could not run the hidden tests: {evidence.tests_error}")
        tests = evidence.tests or []
        if not tests:
            return self.result("error", "The lab has no hidden tests to run.")
        counted = [t for t in tests if t.outcome != "skipped"]
        failed = [t for t in counted if t.outcome != "passed"]
        value = f"{len(counted) - len(failed)}/{len(counted)}"
        names = {t.name: t.outcome for t in tests}
        if not failed:
            return self.result("pass", f"All {len(counted)} hidden tests pass.", value, tests=names)
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return self.result(
            "fail",
            f"{len(failed)} of {len(counted)} hidden tests failed; {first.name}: {first.message}{more}",
            value,
            tests=names,
        )
