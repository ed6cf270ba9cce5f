"""An exported PyTorch model stays within a size budget: parameters and/or bytes saved.

Counted in the probe sandbox, where the student's objects are loaded (the judge never unpickles
them): the registered parameters, and every number reachable from the export however it is
stored (tensors and arrays outside `_parameters`, floats, bytes); the larger count is held against
the bar. That count is made in the student's own process, so it is also bounded from outside: the
export's pickle, measured on the host, may hold at most `max_saved_bytes` (by default 8 bytes, a
float64, per allowed parameter plus 256 KiB for the code pickled with it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ByteSize, Field, model_validator

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing, ProbeData, Reference
from autograder.labs.spec import Identifier, human_size
from autograder.results import CriterionResult

CODE_ALLOWANCE = 256 * 1024


class ModelSizeSpec(CriterionSpec):
    kind: Literal["model-size"]
    export: Identifier = Field("model", description="The export (lab.yaml `exports`) that is a torch.nn.Module.")
    max_parameters: int | None = Field(None, ge=1, description="Most parameters (trainable or not) that pass.")
    max_bytes: ByteSize | None = Field(None, description="Largest state_dict as torch.save writes it, e.g. 2MiB.")
    max_saved_bytes: ByteSize | None = Field(
        None, description="Largest pickle of the export, measured on the host (default: 8 bytes per allowed "
        "parameter, or max_bytes, plus 256 KiB for the code saved with it).")

    def references(self) -> list[Reference]:
        return [Reference("export", "export", self.export)]

    def saved_bar(self) -> int:
        if self.max_saved_bytes is not None:
            return int(self.max_saved_bytes)
        return max(8 * (self.max_parameters or 0), int(self.max_bytes or 0)) + CODE_ALLOWANCE

    @model_validator(mode="after")
    def _has_a_bar(self) -> ModelSizeSpec:
        if self.max_parameters is None and self.max_bytes is None:
            raise ValueError("give max_parameters, max_bytes or both")
        return self


@register
class ModelSize(Criterion):
    kind = "model-size"
    Spec = ModelSizeSpec
    spec: ModelSizeSpec
    advice = {"fail": "Make the model smaller (fewer or narrower layers) and hand in again."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        if s.export not in evidence.lab.spec.exports:
            return self.result("error", f"The rubric measures `{s.export}`, which lab.yaml does not export.")
        report = evidence.probes.report
        if report.status != "ok":
            ProbeData(report).get(s.export)  # holds no arrays: raises why the probes did not run
        stats = report.models.get(s.export)
        if stats is None:
            why = report.exports.get(s.export, "ok")
            if why != "ok":
                raise EvidenceMissing(f"`{s.export}` {why}", student=True)
            raise EvidenceMissing(f"`{s.export}` is not a PyTorch module (torch.nn.Module) whose size could be "
                                  "measured", student=True)
        over = []
        counted = stats.counted
        if s.max_parameters is not None and counted > s.max_parameters:
            hidden = counted - stats.parameters
            also = f" ({hidden:,} of them outside its registered parameters)" if hidden > 0 else ""
            over.append(f"{counted:,} parameters{also}, more than the {s.max_parameters:,} allowed")
        if s.max_bytes is not None and stats.bytes > s.max_bytes:
            over.append(f"{human_size(stats.bytes)} saved, more than the {human_size(s.max_bytes)} allowed")
        if stats.saved_bytes is not None and stats.saved_bytes > s.saved_bar():
            over.append(f"a saved size of {human_size(stats.saved_bytes)}, more than the {human_size(s.saved_bar())} "
                        "a model within the budget takes")
        if s.max_parameters is not None:
            value, bar = counted, s.max_parameters
        else:
            assert s.max_bytes is not None  # the spec gives max_parameters, max_bytes or both
            value, bar = stats.bytes, int(s.max_bytes)
        details = stats.model_dump()
        if over:
            return self.result("fail", f"`{s.export}` has {' and '.join(over)}.", value, bar, **details)
        if not stats.stored_complete:
            return self.result("review", f"`{s.export}` holds too many objects to count every number in it; a "
                               "teacher will check its size.", value, bar, **details)
        bars = [f"{s.max_parameters:,} parameters" if s.max_parameters is not None else "",
                human_size(s.max_bytes) if s.max_bytes is not None else ""]
        return self.result(
            "pass", f"`{s.export}` has {counted:,} parameters ({human_size(stats.bytes)} saved); at most "
            f"{' and '.join(b for b in bars if b)} allowed.", value, bar, **details)
