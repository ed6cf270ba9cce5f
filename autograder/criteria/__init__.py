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


def _import_builtin_kinds() -> None:
    """Every module of this package but base defines kinds that register themselves on import
    (the analysis/ subpackage holds what they read with, and defines none)."""
    import importlib
    import pkgutil

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg):
        if module != "base":
            importlib.import_module(f"{__name__}.{module}")


_import_builtin_kinds()

__all__ = ["CRITERIA", "Criterion", "CriterionSpec", "Evidence", "EvidenceMissing", "ProbeData", "build", "register"]
