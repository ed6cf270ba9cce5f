"""Checks `validate-lab` makes beyond loading: the rubric and the lab's files agree.

Static checks read the notebooks (trusted staff files); the probe check reads how the reference
solution's probes ran, so a rubric that names a metric no probe produces is found before a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from autograder.labs.lab import Lab
from autograder.notebooks import find_cell, load_notebook
from autograder.results import SubmissionResult

CELL_FIELDS = ("cell", "prompt")  # spec fields that name a notebook cell by grade_id or tag


@dataclass
class Problem:
    where: str  # file and field
    problem: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" + (f" ({self.hint})" if self.hint else "")


def cell_problems(lab: Lab) -> list[Problem]:
    """Every cell a criterion names exists in the student notebook and in the solution."""
    problems = []
    notebooks = {"student notebook": lab.notebook_path, "solution": lab.solution_path}
    loaded = {name: load_notebook(path) for name, path in notebooks.items() if path.is_file()}
    for i, c in enumerate(lab.rubric.criteria):
        for attr in CELL_FIELDS:
            cell_id = getattr(c, attr, None)
            if not isinstance(cell_id, str) or not cell_id:
                continue
            for name, nb in loaded.items():
                if nb is None or find_cell(nb, cell_id) is None:
                    problems.append(Problem(
                        f"{lab.rubric_path}: criteria[{i}].{attr}",
                        f"criterion {c.id!r} names cell {cell_id!r}, which the {name} ({notebooks[name].name}) "
                        "does not have",
                        "give the cell that nbgrader grade_id or cell tag, or fix the name"))
    return problems


def probe_problems(lab: Lab, reference: SubmissionResult) -> list[Problem]:
    """Every metric the rubric names is produced by the lab's probes on the reference solution."""
    problems = []
    report = reference.probes
    sources = {name: path.relative_to(lab.root) for name, path in lab.probes.items()}
    for i, c in enumerate(lab.rubric.criteria):
        probe = getattr(c, "probe", None)
        if probe is None:
            continue
        status = report.probes.get(probe) if report is not None else None
        where = f"{lab.rubric_path}: criteria[{i}].probe"
        if status is None or status.status != "ok":
            why = status.error if status is not None else (report.message if report is not None else "no report")
            problems.append(Problem(where, f"probe {probe!r} did not run on the reference solution: {why}",
                                    f"fix probe_{probe}() in {sources.get(probe, 'the probes')}"))
            continue
        for attr in ("split", "train", "test"):
            split = getattr(c, attr, None)
            if split is not None and split not in status.keys:
                problems.append(Problem(
                    f"{lab.rubric_path}: criteria[{i}].{attr}",
                    f"probe {probe!r} gives no output for split {split!r} (it gives: {', '.join(status.keys)})",
                    f"return {{'{split}': ...}} from probe_{probe}()"))
    return problems
