"""Reading notebooks as data: under a size cap, never trusting what a submission says of itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat

from autograder.workspace import read_capped

MAX_NOTEBOOK_BYTES = 50 * 1024**2


def load_notebook(path: Path, cap: int = MAX_NOTEBOOK_BYTES) -> nbformat.NotebookNode | None:
    """Parse a notebook as data, under a size cap; None when it is missing or unreadable."""
    data = read_capped(path, cap)
    if data is None:
        return None
    try:
        return nbformat.reads(data.decode("utf-8", "replace"), as_version=4)
    except Exception:  # malformed JSON or schema: treat as absent
        return None


def find_cell(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode | None:
    """A cell by nbgrader grade_id, else by tag (rubrics name cells either way); None when absent."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id:
            return cell
    for cell in nb.cells:
        if cell_id in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def nbgrader_checksum(cell: nbformat.NotebookNode) -> str:
    """nbgrader's `utils.compute_checksum`, without importing nbgrader (2 s of server extensions).

    A test pins it to nbgrader's own result, so a change in nbgrader shows up there.
    """
    meta = cell.metadata["nbgrader"]
    m = hashlib.md5()  # noqa: S324 - nbgrader's choice; a fingerprint, not a security boundary
    grade, solution, locked = bool(meta.get("grade")), bool(meta.get("solution")), bool(meta.get("locked"))
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        m.update(part.encode("utf-8"))
    if grade:
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()
