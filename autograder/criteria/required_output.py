"""A cell of the executed notebook shows what the lab asks for: a figure, printed text or a table.

The outputs are those of the grader's own run: papermill clears every code cell's outputs before it
runs them, so what a student saved in the notebook counts for nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing, Reference
from autograder.notebooks import find_cell
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from nbformat import NotebookNode

IMAGES = ("image/png", "image/jpeg", "image/svg+xml")
RICH = ("display_data", "execute_result")
HTML_TABLE = re.compile(r"<table\b", re.I)
MARKDOWN_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$", re.M)
PANDAS_FOOTER = re.compile(r"^\[\d+ rows x \d+ columns\]$", re.M)


def executed_notebook(evidence: Evidence) -> NotebookNode:
    """The notebook as the grader's run left it, never the one handed in (its outputs and metadata
    are the student's to write)."""
    run = evidence.execution
    if run is None or run.status != "ok":
        raise EvidenceMissing("not checked: the notebook did not run to the end", student=True)
    if evidence.notebook is None or evidence.notebook is evidence.submitted:
        raise EvidenceMissing("the grader kept no executed notebook to look at", student=False)
    return evidence.notebook


def cell_name(cell: NotebookNode, cell_id: str) -> str:
    """How the student knows the cell: 'the cell tagged 'x'' when its tag found it."""
    by_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id
    return f"the cell {cell_id!r}" if by_id else f"the cell tagged {cell_id!r}"


def missing_cell(cell_id: str) -> str:
    return (f"There is no cell with the tag or grade_id {cell_id!r}: restore it from the notebook you were given "
            "and put your answer there.")


def figures(cell: NotebookNode) -> int:
    return sum(1 for out in cell.get("outputs", []) if out.get("output_type") in RICH
               and any(kind in out.get("data", {}) for kind in IMAGES))


def texts(cell: NotebookNode) -> int:
    """stdout and plain-text results; stderr is warnings and progress bars, not an answer."""
    count = 0
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stdout" and _text(out.get("text")).strip():
            count += 1
        elif kind in RICH and _text(out.get("data", {}).get("text/plain")).strip():
            count += 1
    return count


def tables(cell: NotebookNode) -> int:
    """HTML or Markdown tables, and a pandas DataFrame as `print` shows it."""
    count = 0
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        data = out.get("data", {}) if kind in RICH else {}
        if HTML_TABLE.search(_text(data.get("text/html"))) or MARKDOWN_RULE.search(_text(data.get("text/markdown"))):
            count += 1
        elif kind == "stream" and out.get("name") == "stdout" and _looks_like_frame(_text(out.get("text"))):
            count += 1
        elif kind in RICH and _looks_like_frame(_text(data.get("text/plain"))):
            count += 1
    return count


def _looks_like_frame(text: str) -> bool:
    """pandas' text layout: an indented header over at least two rows that each start with their
    index and have one more column than the header (or the `[n rows x m columns]` footer)."""
    if PANDAS_FOOTER.search(text):
        return True
    lines = text.splitlines()
    for i, header in enumerate(lines):
        if not header[:1].isspace() or not header.strip():
            continue
        width = len(header.split()) + 1
        rows = 0
        for line in lines[i + 1:]:
            if line[:1].isspace() or len(line.split()) != width:
                break
            rows += 1
        if rows >= 2:
            return True
    return False


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


COUNTERS = {"figure": figures, "text": texts, "table": tables}
NOUNS = {"figure": ("figure", "figures"), "text": ("printed text", "printed texts"), "table": ("table", "tables")}


class RequiredOutputSpec(CriterionSpec):
    kind: Literal["required-output"]
    cell: str = Field(description="nbgrader grade_id or tag of the cell that must show the output.")
    output: Literal["figure", "text", "table"] = Field(
        description="figure: an image (PNG, JPEG or SVG); text: printed text or a plain-text result; table: an "
        "HTML/Markdown table or a printed pandas DataFrame.")
    min_count: int = Field(1, ge=1, description="How many such outputs the cell must show at least.")
    what: str = Field("", description="What the output is, for the student: e.g. 'the training curve'.")

    def references(self) -> list[Reference]:
        return [Reference("cell", "cell", self.cell)]


@register
class RequiredOutput(Criterion):
    kind = "required-output"
    Spec = RequiredOutputSpec
    spec: RequiredOutputSpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        nb = executed_notebook(evidence)
        cell = find_cell(nb, s.cell)
        if cell is None:
            return self.result("fail", missing_cell(s.cell), 0, s.min_count,
                               advice="Copy the cell back from the notebook you were given and hand in again.")
        found = COUNTERS[s.output](cell) if cell.get("cell_type") == "code" else 0
        one, many = NOUNS[s.output]
        where = cell_name(cell, s.cell)
        where = where[:1].upper() + where[1:]
        if found >= s.min_count:
            return self.result("pass", f"{where} shows {found} {one if found == 1 else many}.", found, s.min_count)
        if found == 0:
            shows = f"shows no {one}"
        else:
            shows = f"shows {found} {one if found == 1 else many}, {s.min_count} are expected"
        return self.result("fail", f"{where} {shows}; {self._how()}.", found, s.min_count)

    def _how(self) -> str:
        what = self.spec.what
        return {
            "figure": f"plot {what or 'the figure'} there, e.g. with matplotlib",
            "text": f"print {what or 'the result'} there",
            "table": f"show {what or 'the table'} there, e.g. as a pandas DataFrame on the cell's last line",
        }[self.spec.output]
