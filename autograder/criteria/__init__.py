"""Criterion kinds, one registry: a rubric's `kind` names the class that judges it."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing, ProbeData

CRITERIA: dict[str, type[Criterion]] = {}


def register(cls: type[Criterion]) -> type[Criterion]:
    """Class decorator: make a criterion kind available to rubrics by its `kind`."""
    if cls.kind in CRITERIA and CRITERIA[cls.kind] is not cls:
        raise ValueError(f"criterion kind {cls.kind!r} is registered twice")
    CRITERIA[cls.kind] = cls
    return cls


def build(spec: CriterionSpec) -> Criterion:
    return CRITERIA[spec.kind](spec)


def spec_union() -> object:
    """The discriminated union of every registered kind's spec, for the rubric model."""
    specs = tuple(cls.Spec for cls in CRITERIA.values())
    return Annotated[Union[specs], Field(discriminator="kind")]  # noqa: UP007


# Built-in kinds register themselves on import.
from autograder.criteria import accuracy, hidden_tests, locked_cells, notebook_runs, reflection  # noqa: E402,F401

__all__ = ["CRITERIA", "Criterion", "CriterionSpec", "Evidence", "EvidenceMissing", "ProbeData", "build", "register"]
