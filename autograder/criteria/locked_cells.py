"""The cells nbgrader locked are as handed out: an edited test or setup cell goes to a human.

The reference is the released student notebook in assignments/<lab>/ (trusted), not the
checksums a submission carries in its own metadata, which a student can edit along with the cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing
from autograder.notebooks import load_notebook, nbgrader_checksum
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from nbformat import NotebookNode


class LockedCellsSpec(CriterionSpec):
    kind: Literal["locked-cells"]
    on_fail: Literal["U", "review"] = Field(
        "review", description="What an edited or deleted locked cell means: `review` (default) or U.")


def locked_checksums(nb: NotebookNode) -> dict[str, str]:
    """grade_id -> nbgrader checksum of every locked cell of the released notebook."""
    out = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") and meta.get("grade_id") and meta.get("checksum"):
            out[meta["grade_id"]] = meta["checksum"]
    return out


def changed_cells(released: dict[str, str], submitted: NotebookNode) -> tuple[list[str], list[str]]:
    """(edited, deleted) grade_ids, judged by nbgrader's own checksum of the submitted cells."""
    seen: dict[str, str] = {}
    for cell in submitted.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in released and grade_id not in seen:
            try:
                seen[grade_id] = nbgrader_checksum(cell)
            except (KeyError, TypeError, ValueError):  # metadata mangled: it no longer matches
                seen[grade_id] = ""
    edited = [g for g in released if g in seen and seen[g] != released[g]]
    deleted = [g for g in released if g not in seen]
    return edited, deleted


@register
class LockedCells(Criterion):
    kind = "locked-cells"
    Spec = LockedCellsSpec
    spec: LockedCellsSpec
    advice = {"fail": "Copy the changed cells back from the notebook you were given, unedited, and hand in again."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        if evidence.submitted is None:
            raise EvidenceMissing("the notebook could not be read", student=True)
        released_nb = load_notebook(evidence.lab.notebook_path)
        if released_nb is None:
            return self.result("error", "The released student notebook could not be read.")
        released = locked_checksums(released_nb)
        edited, deleted = changed_cells(released, evidence.submitted)
        if not edited and not deleted:
            return self.result("pass", f"All {len(released)} locked cells are as handed out.", 0, 0)
        parts = []
        if edited:
            parts.append(f"edited: {', '.join(edited)}")
        if deleted:
            parts.append(f"deleted: {', '.join(deleted)}")
        action = "a teacher will look at it" if self.spec.on_fail == "review" else "restore them from the original"
        return self.result(
            "fail",
            f"Cells that must stay as handed out were changed ({'; '.join(parts)}): {action}.",
            len(edited) + len(deleted), 0, edited=edited, deleted=deleted,
        )
