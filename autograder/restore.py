"""Restore what the student was handed, as nbgrader's autograde does, before the notebook runs.

Locked cells (setup, public tests, prompts) that a student edited get the released source back,
judged by nbgrader's own checksum against the released notebook in assignments/<lab>/ (trusted),
never against the checksums a submission carries in its own metadata. A graded or locked cell the
student deleted is not guessed back into place (nbgrader's default too); it is reported. Provided
modules are always taken from the release, whatever the student handed in under their names.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nbformat

from autograder.notebooks import nbgrader_checksum


@dataclass
class Restoration:
    notebook: nbformat.NotebookNode
    edited: list[str] = field(default_factory=list)  # grade_ids restored from the release
    deleted: list[str] = field(default_factory=list)  # grade_ids of graded or locked cells no longer there


def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def watched(released: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """grade_id -> released cell, for every cell that is locked or graded."""
    out = {}
    for cell in released.cells:
        meta = _meta(cell)
        if meta.get("grade_id") and (meta.get("locked") or meta.get("grade")):
            out.setdefault(meta["grade_id"], cell)
    return out


def _checksum(cell) -> str:
    try:
        return nbgrader_checksum(cell)
    except (KeyError, TypeError, ValueError, AttributeError):  # metadata mangled: it no longer matches
        return ""


def restore(submitted: nbformat.NotebookNode, released: nbformat.NotebookNode) -> Restoration:
    """A copy of `submitted` with every locked cell as released; what was edited or deleted."""
    nb = copy.deepcopy(submitted)
    cells = watched(released)
    result = Restoration(notebook=nb)
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        grade_id = _meta(cell).get("grade_id")
        source = cells.get(grade_id) if isinstance(grade_id, str) else None
        if source is None:
            continue
        seen.add(grade_id)
        if not _meta(source).get("locked"):
            continue  # graded but the student's to write (e.g. the reflection): only its presence counts
        if _checksum(cell) == _meta(source).get("checksum") and cell.get("cell_type") == source.cell_type:
            continue
        fresh = copy.deepcopy(source)
        if fresh.cell_type == "code":
            fresh.outputs, fresh.execution_count = [], None
        if cell.get("id"):
            fresh["id"] = cell["id"]
        nb.cells[index] = fresh
        if grade_id not in result.edited:
            result.edited.append(grade_id)
    result.deleted = [g for g in cells if g not in seen]
    return result
