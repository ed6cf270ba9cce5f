"""A copy of each graded hand-in, so `autograder rerun` can run it again without the download.

Kept under the store's artifacts beside the submission's stage folders, by the submission's hash:

    <root>/<lab>/<sha256[:16]>/handin/
        handin.ipynb            the notebook as handed in (not as restored: restore runs again)
        <module>.py             each of the lab's student modules, under the lab's name
        <report><suffix>        the written report, where the lab asks for one

Only what intake took is copied, read through intake's size caps, under the lab's names, so the copy
read back by intake (`take_folder`) hashes to the same submission hash, which `kept` checks. It is
written once (a hand-in with the same hash is the same bytes) and whole (renamed into place).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from autograder.grading.intake import IntakeSpec, Submission, take_folder
from autograder.labs.lab import Lab
from autograder.workspace import remove_tree

log = logging.getLogger(__name__)
FOLDER = "handin"
NOTEBOOK = "handin.ipynb"


def copy_folder(root: Path, lab: str, sha256: str) -> Path:
    return root / lab / sha256[:16] / FOLDER


def keep(root: Path, lab: Lab, sub: Submission) -> Path | None:
    """Copy what was graded of `sub` (once per hash); None for a hand-in intake could not read."""
    if sub.problem:
        return None
    folder = copy_folder(root, lab.name, sub.sha256)
    if folder.is_dir():
        return folder
    files: dict[str, bytes] = {}
    if sub.has_notebook:
        files[NOTEBOOK] = sub.notebook_bytes()
    for name in sub.files:
        files[name] = sub.file_bytes(name)
    if sub.report is not None:
        files[f"{lab.spec.files.report or 'report'}{PurePosixPath(sub.report).suffix.lower()}"] = sub.report_bytes()
    partial = folder.with_name(FOLDER + ".partial")
    remove_tree(partial)
    partial.mkdir(parents=True)
    for name, data in files.items():
        (partial / name).write_bytes(data)
    try:
        partial.rename(folder)
    except OSError:  # another grader of the same hash got there first: its copy is the same bytes
        remove_tree(partial)
    return folder


def kept(root: Path, lab: Lab, student: str, sha256: str) -> Submission | None:
    """The kept copy as intake reads it, when there is one and it hashes to `sha256`."""
    folder = copy_folder(root, lab.name, sha256)
    if not folder.is_dir():
        return None
    sub = take_folder(student, folder, IntakeSpec.of(lab.spec))
    if sub.sha256 != sha256:
        log.warning("the kept copy in %s does not hash to %s", folder, sha256[:16])
        return None
    return sub.model_copy(update={"student": student})
