"""The rubric, `rubrics/<lab>.yaml`: the criteria and the rule that turns them into a verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autograder.criteria import CriterionSpec, spec_union
from autograder.results import CriterionResult, Verdict

if TYPE_CHECKING:
    # The union is built at run time from the registry, which a type checker cannot see; every member is a
    # CriterionSpec, so that is what code reading a rubric may rely on (narrow with isinstance for more).
    AnyCriterion = CriterionSpec
else:
    AnyCriterion = spec_union()


class VerdictRule(BaseModel):
    """`all-required`: G when every required criterion passes; a failed one makes it U."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["all-required"] = "all-required"


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lab: str = Field(description="The lab this rubric grades; must match the lab's name.")
    criteria: list[AnyCriterion] = Field(min_length=1)
    verdict: VerdictRule = Field(default_factory=VerdictRule)

    @field_validator("criteria")
    @classmethod
    def _unique_ids(cls, criteria: list) -> list:
        seen: set[str] = set()
        for c in criteria:
            if c.id in seen:
                raise ValueError(f"criterion id {c.id!r} is used twice; ids must be unique")
            seen.add(c.id)
        return criteria


def decide(results: list[CriterionResult]) -> Verdict:
    """A definite failure decides U; otherwise doubt goes to a human, and our own faults to `error`."""
    required = [r for r in results if r.required]
    statuses = {r.status for r in required}
    if "fail" in statuses:
        return "U"
    if "error" in statuses or "skipped" in statuses:
        return "error"
    if "review" in statuses:
        return "review"
    return "G"
