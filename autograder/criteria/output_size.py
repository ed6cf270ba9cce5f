"""A probe's output per input stays within a size: a latent code of at most 32 numbers, say.

Counted on the probe's arrays for one split (numbers per item: the product of every dimension but
the first), so it measures what the model produces, not what the student says its size is.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing, Reference
from autograder.results import CriterionResult


class OutputSizeSpec(CriterionSpec):
    kind: Literal["output-size"]
    probe: str = Field(description="Probe whose output per split is measured, e.g. the latent codes.")
    split: str = Field("test", description="Split whose output is measured.")
    max_per_item: int = Field(ge=1, description="Most numbers per input item that pass.")
    what: str = Field("output", description="What the output is, for the student: e.g. 'latent code'.")

    def references(self) -> list[Reference]:
        return [Reference("probe", "probe", self.probe), Reference("split", "split", self.split)]


@register
class OutputSize(Criterion):
    kind = "output-size"
    Spec = OutputSizeSpec
    spec: OutputSizeSpec
    advice = {"fail": "Make the output smaller (e.g. a narrower bottleneck layer) and hand in again."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        outputs = evidence.probes.get(s.probe)
        if s.split not in outputs:
            raise EvidenceMissing(f"probe {s.probe!r} gave no output for the {s.split!r} split", student=False)
        shape = tuple(outputs[s.split].shape)
        n_inputs = len(evidence.lab.split(s.split)[0])
        if len(shape) < 2 or shape[0] != n_inputs:
            return self.result("fail", f"The {s.what} has shape {shape} for {n_inputs} inputs; expected one row "
                               f"per input (shape ({n_inputs}, ...)).", None, s.max_per_item, shape=list(shape),
                               advice="Return one output per input, with the inputs along the first dimension.")
        size = math.prod(shape[1:])
        details: dict[str, Any] = {"shape": list(shape)}
        if size > s.max_per_item:
            return self.result("fail", f"The {s.what} has {size:,} numbers per input, more than the "
                               f"{s.max_per_item:,} allowed.", size, s.max_per_item, **details)
        return self.result("pass", f"The {s.what} has {size:,} numbers per input; at most {s.max_per_item:,} "
                           "allowed.", size, s.max_per_item, **details)
