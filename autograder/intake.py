"""Intake: find the submissions, name the students, hash and validate each notebook.

A submission that can't be read still becomes a Submission (with `problem` set) so that it gets
a verdict with a reason instead of stopping the batch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from autograder.errors import UserError

MAX_NOTEBOOK_BYTES = 20 * 1024**2


class Submission(BaseModel):
    student: str
    path: Path
    sha256: str
    size: int
    problem: str | None = None


def discover(source: Path) -> list[Submission]:
    """A notebook, a folder of notebooks (student = file stem) or a folder per student."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist", "pass a notebook or a folder of submissions")
    if source.is_file():
        if source.suffix != ".ipynb":
            raise UserError(f"{source} is not a notebook (.ipynb)", "pass a notebook or a folder of submissions")
        return [take(source.stem, source)]
    found: list[Submission] = []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            found.append(_problem(entry.stem, entry, "a symbolic link, which is not graded: hand in the file itself"))
        elif entry.is_file() and entry.suffix == ".ipynb":
            found.append(take(entry.stem, entry))
        elif entry.is_dir():
            notebooks = sorted(p for p in entry.rglob("*.ipynb")
                               if ".ipynb_checkpoints" not in p.parts and not p.is_symlink())
            if len(notebooks) == 1:
                found.append(take(entry.name, notebooks[0]))
            elif not notebooks:
                found.append(_problem(entry.name, entry, "the folder holds no notebook (.ipynb)"))
            else:
                names = ", ".join(p.name for p in notebooks[:3])
                problem = f"the folder holds {len(notebooks)} notebooks ({names}); hand in one"
                found.append(_problem(entry.name, entry, problem))
    if not found:
        raise UserError(f"no submissions in {source}", "expected .ipynb files or one folder per student")
    seen: dict[str, Path] = {}
    for sub in found:
        if sub.student in seen:
            raise UserError(f"two submissions for student {sub.student!r}: {seen[sub.student]} and {sub.path}",
                            "keep one notebook per student")
        seen[sub.student] = sub.path
    return found


def take(student: str, path: Path) -> Submission:
    """Hash and validate one notebook file."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return _problem(student, path, f"the notebook is {size / 1024**2:.0f} MB; the limit is "
                        f"{MAX_NOTEBOOK_BYTES // 1024**2} MB (clear its outputs before handing in)", size)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    problem = notebook_problem(data)
    return Submission(student=student, path=path, sha256=digest, size=size, problem=problem)


def notebook_problem(data: bytes) -> str | None:
    """Why these bytes are not a gradable notebook, or None."""
    import nbformat

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"the file is not a Jupyter notebook (invalid JSON: {exc})"
    if not isinstance(doc, dict) or "cells" not in doc or doc.get("nbformat") != 4:
        return "the file is not a version-4 Jupyter notebook"
    try:
        nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as exc:  # nbformat raises several kinds for malformed documents
        return f"the notebook is malformed: {str(exc).splitlines()[0][:200]}"
    return None


def _problem(student: str, path: Path, problem: str, size: int = 0) -> Submission:
    regular = path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_NOTEBOOK_BYTES
    digest = hashlib.sha256(path.read_bytes() if regular else f"{path}:{problem}".encode()).hexdigest()
    return Submission(student=student, path=path, sha256=digest, size=size, problem=problem)
