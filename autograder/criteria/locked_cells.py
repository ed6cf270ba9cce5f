"""The cells nbgrader locked are as handed out.

Edited locked cells were restored from the release before the notebook ran (`restore.py`), so an edit
changes nothing and the criterion passes, naming them. A deleted graded or locked cell can't be put
back with confidence: that goes to a human (or U, as the rubric says).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing
from autograder.notebooks import load_notebook
from autograder.restore import restore
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from nbformat import NotebookNode


class LockedCellsSpec(CriterionSpec):
    kind: Literal["locked-cells"]
    on_fail: Literal["U", "review"] = Field(
        "review", description="What a deleted locked or graded cell means: `review` (default) or U.")


def changed_cells(released: NotebookNode, submitted: NotebookNode) -> tuple[list[str], list[str]]:
    """(edited, deleted) grade_ids of the released notebook's locked and graded cells."""
    restored = restore(submitted, released)
    return restored.edited, restored.deleted


@register
class LockedCells(Criterion):
    kind = "locked-cells"
    Spec = LockedCellsSpec
    spec: LockedCellsSpec
    advice = {"fail": "Copy the deleted cells back from the notebook you were given, unedited, and hand in again.",
              "pass": "Nothing to do; next time leave the locked cells as they are."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        if evidence.submitted is None:
            raise EvidenceMissing("the notebook could not be read", student=True)
        released = load_notebook(evidence.lab.notebook_path)
        if released is None:
            return self.result("error", "The released student notebook could not be read.")
        edited, deleted = changed_cells(released, evidence.submitted)
        if not deleted:
            if not edited:
                return self.result("pass", "All locked cells are as handed out.", 0, 0, advice=DEFAULT_PASS)
            return self.result("pass", f"Locked cells you edited ({', '.join(edited)}) were restored from the "
                               "handed-out notebook before it ran; your edits were not used.", 0, 0, edited=edited)
        action = "a teacher will look at it" if self.spec.on_fail == "review" else "hand in a complete notebook"
        more = f"; edited cells were restored ({', '.join(edited)})" if edited else ""
        return self.result(
            "fail", f"Cells that must stay in the notebook were deleted ({', '.join(deleted)}): {action}{more}.",
            len(deleted), 0, edited=edited, deleted=deleted,
        )


DEFAULT_PASS = "Nothing to do."
