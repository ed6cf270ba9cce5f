"""The rubric, `rubrics/<lab>.yaml`: the criteria and the rule that turns them into a verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

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


# The criterion kinds whose value is one measurement a cohort can be ranked on (a leaderboard's `criterion`).
RANKED_KINDS = ("metric", "accuracy")


class LeaderboardSpec(BaseModel):
    """An opt-in cohort ranking of one measured criterion (publish/leaderboard.py): a page beside the report,
    each student's own row on their feedback page, and Gradescope's `leaderboard` field."""

    model_config = ConfigDict(extra="forbid")

    criterion: str = Field(description="The id of the metric or accuracy criterion whose measured value is ranked; "
                           "higher or lower is better as its metric says.")
    title: str = Field("", max_length=80, description="What the board is called, e.g. `Hidden-test accuracy` "
                       "(default: the metric in words).")
    names: Literal["pseudonym", "student"] = Field(
        "pseudonym", description="pseudonym: each student is shown under a stable made-up name only they can "
        "tell is theirs; student: the student ids, on every board (only with the students' consent).")
    top: int = Field(50, ge=1, le=10000, description="Rows shown; a student's own row is always shown on their "
                     "feedback page.")


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lab: str = Field(description="The lab this rubric grades; must match the lab's name.")
    criteria: list[AnyCriterion] = Field(min_length=1)
    verdict: VerdictRule = Field(default_factory=VerdictRule)
    # Presentation only: left out of the dump, so the rubric's hash (which decides which results are stale and
    # which recorded judgements are reused) does not change when a board is added, renamed or removed.
    leaderboard: LeaderboardSpec | None = Field(None, exclude=True, description=(
        "Opt-in: rank the cohort on one metric or accuracy criterion (docs/publishing.md, Leaderboard)."))

    @field_validator("criteria")
    @classmethod
    def _unique_ids(cls, criteria: list) -> list:
        seen: set[str] = set()
        for c in criteria:
            if c.id in seen:
                raise ValueError(f"criterion id {c.id!r} is used twice; ids must be unique")
            seen.add(c.id)
        return criteria

    @field_validator("leaderboard")
    @classmethod
    def _ranks_a_measurement(cls, board: LeaderboardSpec | None, info: ValidationInfo) -> LeaderboardSpec | None:
        criteria = info.data.get("criteria")
        if board is None or criteria is None:  # criteria that failed validation are reported on their own
            return board
        ranked = [c.id for c in criteria if c.kind in RANKED_KINDS]
        use = f"use one of: {', '.join(ranked)}" if ranked else \
            "this rubric has none: add one, or remove the leaderboard"
        kinds = " or ".join(f"`kind: {k}`" for k in RANKED_KINDS)
        found = next((c for c in criteria if c.id == board.criterion), None)
        if found is None:
            raise ValueError(f"`criterion: {board.criterion}` names no criterion of this rubric; a leaderboard ranks "
                             f"a criterion of {kinds}: {use}")
        if found.kind not in RANKED_KINDS:
            raise ValueError(f"`criterion: {board.criterion}` is of `kind: {found.kind}`, which measures no value to "
                             f"rank; a leaderboard ranks a criterion of {kinds}: {use}")
        return board


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
