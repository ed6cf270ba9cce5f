"""The cells nbgrader locked are as handed out, where they were handed out, and not copied.

Before the notebook ran (`restore.py`), edited locked cells got the released source back and moved
ones were put back in their released place, so an edit or a move changes nothing and the criterion
passes, naming them. A deleted graded or locked cell can't be put back with confidence, and a cell
that copies a locked one without its lock (or forges its grade_id) is tampering that was undone but
should be seen: those go to a human (or U, as the rubric says).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing, LabProblem, needs_notebook
from autograder.notebooks import load_notebook
from autograder.notebooks.restore import Impostor, restore
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from autograder.labs.lab import Lab


class LockedCellsSpec(CriterionSpec):
    kind: Literal["locked-cells"]
    on_fail: Literal["U", "review"] = Field(
        "review", description="What a deleted locked or graded cell, or a copy of a locked cell without its lock, "
        "means: `review` (default) or U.")

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        yield from needs_notebook(self, lab, "the notebook's locked cells")


def changed_cells(released: NotebookNode, submitted: NotebookNode) -> tuple[list[str], list[str]]:
    """(edited, deleted) grade_ids of the released notebook's locked and graded cells."""
    restored = restore(submitted, released)
    return restored.edited, restored.deleted


def describe(impostor: Impostor) -> str:
    """What a student reads about a cell that looks like a locked cell without being it."""
    locked, where = f"the locked cell `{impostor.grade_id}`", f"cell {impostor.cell}"
    if impostor.stands_in:
        return f"{locked} had lost its lock at {where} and was run as handed out"
    if impostor.forged:
        return f"{where} carries the id of {locked} but is a second copy of it and was not run"
    kind = "a copy" if impostor.similarity == 1.0 else "an edited copy"
    return f"{kind} of {locked} without its lock was found at {where} and was not run"


@register
class LockedCells(Criterion):
    kind = "locked-cells"
    Spec = LockedCellsSpec
    spec: LockedCellsSpec
    advice = {"fail": "Copy the deleted locked cells back from the notebook you were given, unedited and in their "
                      "place, delete any copies you made of locked cells, and hand in again.",
              "pass": "Nothing to do; next time leave the locked cells as they are, where they are."}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        if evidence.submitted is None:
            raise EvidenceMissing("the notebook could not be read", student=True)
        released = load_notebook(evidence.lab.released_notebook)
        if released is None:
            return self.result("error", "The released student notebook could not be read.")
        restored = restore(evidence.submitted, released)
        edited, deleted, moved, impostors = restored.edited, restored.deleted, restored.moved, restored.impostors
        extra: dict[str, Any] = {"moved": moved} if moved else {}
        if impostors:
            extra["impostors"] = [imp.asdict() for imp in impostors]
        if not deleted and not impostors:
            if not edited and not moved:
                return self.result("pass", "All locked cells are as handed out.", 0, 0, advice=DEFAULT_PASS)
            said = []
            if edited:
                said.append(f"Locked cells you edited ({', '.join(edited)}) were restored from the handed-out "
                            "notebook before it ran; your edits were not used.")
            if moved:
                said.append(f"Locked cells you moved ({', '.join(moved)}) were put back where they were handed "
                            "out before the notebook ran.")
            return self.result("pass", " ".join(said), 0, 0, edited=edited, **extra)
        action = ("a teacher will look at it" if self.spec.on_fail == "review" else
                  "delete the copies and hand in again" if impostors and not deleted else "hand in a complete notebook")
        found = [f"Cells that must stay in the notebook were deleted ({', '.join(deleted)})"] if deleted else []
        found += [describe(imp) for imp in impostors]
        if impostors:
            found.append("locked cells must stay as handed out")
        more = f"; edited cells were restored ({', '.join(edited)})" if edited else ""
        more += f"; moved cells were put back where they were handed out ({', '.join(moved)})" if moved else ""
        message = "; ".join(found)
        return self.result(
            "fail", f"{message[0].upper()}{message[1:]}: {action}{more}.",
            len(deleted) + len(impostors), 0, edited=edited, deleted=deleted, **extra,
        )


DEFAULT_PASS = "Nothing to do."
