"""Answer a released notebook or module as a student would: fill nbgrader's code stubs, write the text cells.

Shared by the make_cohort_<lab>.py scripts, so that every sample cohort is made the same way from
what students receive (the released files), never from the solution.
"""

from __future__ import annotations

import copy
from textwrap import dedent

import nbformat

STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's code stub, as released


def fill_code(source: str, bodies: str | list[str]) -> str:
    """Replace the code stubs in `source`, in order, by `bodies`, each indented like its stub (e.g.
    inside a def). Every stub must be answered: a student leaving one would be a different sample."""
    lines = source.split("\n")
    for body in [bodies] if isinstance(bodies, str) else bodies:
        for i in range(len(lines) - 1):
            if [lines[i].strip(), lines[i + 1].strip()] == STUB:
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                new = [indent + line if line else line for line in dedent(body).strip("\n").split("\n")]
                lines = lines[:i] + new + lines[i + 2:]
                break
        else:
            raise ValueError("fewer code stubs in the cell than bodies to fill in")
    if any([a.strip(), b.strip()] == STUB for a, b in zip(lines, lines[1:])):
        raise ValueError("a code stub was left unfilled")
    return "\n".join(lines)


def make_submission(template: nbformat.NotebookNode, answers: dict[str, str | list[str]]) -> nbformat.NotebookNode:
    """The released notebook with each answered cell (by nbgrader grade_id) filled in, saved as from
    a freshly restarted kernel: no outputs."""
    nb = copy.deepcopy(template)
    cells = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell for cell in nb.cells}
    for grade_id, content in answers.items():
        cell = cells[grade_id]
        if cell.cell_type == "code":
            cell.source = fill_code(cell.source, content)
        else:
            cell.source = dedent(content).strip("\n")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb
