"""The submitted notebook and the student's modules do not use what the lab bans (a ready-made
classifier, a pretrained model, a library's convolution where the lab asks for one in NumPy).

Read statically from the notebook and modules as handed in (criteria/analysis/calls.py), never by running it: the
code cannot hide from a reader it does not control. What text alone cannot settle goes to a human.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from nbformat import NotebookNode
from pydantic import Field

from autograder.criteria import register
from autograder.criteria.analysis.calls import find_uses
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing
from autograder.results import CriterionResult

DottedName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")]
SHOWN = 3  # names (or dynamic finds) named in the message; the details keep all


class ForbiddenCallsSpec(CriterionSpec):
    kind: Literal["forbidden-calls"]
    calls: list[DottedName] = Field(
        min_length=1, description="Dotted names the notebook may not import, call or refer to; a module bans "
        "everything in it (sklearn, torchvision.models, sklearn.neural_network.MLPClassifier).")
    reason: str = Field("", description="Shown to the student after the finding: why, or what to do instead.")
    on_dynamic: Literal["review", "ignore"] = Field(
        "review", description="Imports or code the check cannot see through (importlib, exec, pip install of a "
        "banned package): `review` sends the submission to a human, `ignore` lets it pass.")


@register
class ForbiddenCalls(Criterion):
    kind = "forbidden-calls"
    Spec = ForbiddenCallsSpec
    spec: ForbiddenCallsSpec
    advice = {"fail": "Remove every use of what the message names, imports included, do that part yourself "
                      "and hand in again."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        if evidence.submitted is None and evidence.lab.spec.notebook is not None:
            raise EvidenceMissing("the notebook could not be read", student=True)
        # A lab without a notebook: the modules alone.
        found = find_uses(evidence.submitted or NotebookNode(cells=[]), s.calls, evidence.modules)
        details: dict[str, Any] = dict(
            banned=list(s.calls),
            uses=[{"name": u.name, "banned": u.banned, "how": u.how, "cell": u.cell, "line": u.line}
                  for u in found.uses],
            dynamic=[{"what": d.what, "cell": d.cell, "line": d.line} for d in found.dynamic],
            unparsed_cells=found.unparsed,
        )
        if found.uses:
            first: dict[str, str] = {}
            for use in found.uses:
                first.setdefault(use.name, use.place)
            named = [f"{name} ({place})" for name, place in list(first.items())[:SHOWN]]
            if len(first) > SHOWN:
                named.append(f"{len(first) - SHOWN} more")
            listed = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]
            why = f": {s.reason.strip().rstrip('.')}" if s.reason.strip() else ""
            return self.result("fail", f"Uses {listed}, which this lab does not allow{why}.", len(found.uses), 0,
                               **details)
        if found.dynamic and s.on_dynamic == "review":
            shown = "; ".join(f"{d.what} ({d.place})" for d in found.dynamic[:SHOWN])
            more = f"; and {len(found.dynamic) - SHOWN} more" if len(found.dynamic) > SHOWN else ""
            return self.result("review", f"The grader cannot tell from the code alone whether the notebook uses "
                               f"what this lab bans: {shown}{more}.", len(found.dynamic), 0, **details)
        return self.result("pass", f"Uses nothing this lab bans ({', '.join(s.calls)}).", 0, 0, **details)
