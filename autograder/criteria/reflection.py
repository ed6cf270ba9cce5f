"""The written reflection is there, long enough, and not the template's placeholder."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from nbformat import NotebookNode

WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


class ReflectionSpec(CriterionSpec):
    kind: Literal["reflection"]
    cell: str = Field("reflection", description="nbgrader grade_id (or cell tag) of the answer cell.")
    min_words: int = Field(50, ge=1)
    placeholders: list[str] = Field(
        default_factory=lambda: ["YOUR ANSWER HERE"], description="Template text that does not count as an answer."
    )


def find_cell(nb: NotebookNode, cell_id: str) -> NotebookNode | None:
    """The answer cell by nbgrader grade_id, else by tag: students rarely touch metadata."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id:
            return cell
    for cell in nb.cells:
        if cell_id in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def strip_markdown(text: str) -> str:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\(https?://[^)]*\)", " ", text)


@register
class Reflection(Criterion):
    kind = "reflection"
    Spec = ReflectionSpec
    spec: ReflectionSpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        nb = evidence.submitted or evidence.notebook  # the answer as written, not as the run left it
        if nb is None:
            raise EvidenceMissing("the notebook could not be read", student=True)
        cell = find_cell(nb, s.cell)
        if cell is None:
            return self.result(
                "fail", f"The reflection cell ({s.cell!r}) is missing: restore it from the original notebook.",
                0, s.min_words,
            )
        text = strip_markdown(cell.get("source", ""))
        for placeholder in s.placeholders:
            text = text.replace(placeholder, " ")
        words = len(WORD.findall(text))
        if words == 0:
            return self.result("fail", "The reflection is not written yet (only the template's placeholder).",
                               0, s.min_words)
        if words < s.min_words:
            return self.result(
                "fail", f"The reflection has {words} words; at least {s.min_words} are needed.", words, s.min_words
            )
        return self.result("pass", f"The reflection is written ({words} words).", words, s.min_words)
