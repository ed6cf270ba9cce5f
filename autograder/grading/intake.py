"""Intake: find the submissions, name the students, hash and validate what each handed in.

A submission is a notebook, or (for labs where students also write Python modules) a folder or a
zip per student holding the notebook and the student's modules. Only the files the lab names are
taken; everything else in a folder or zip is ignored, and nothing in a zip is ever extracted by the
names it carries. A submission that can't be read still becomes a Submission (with `problem` set)
so that it gets a verdict with a reason instead of stopping the batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field, field_validator

from autograder.errors import UserError
from autograder.ids import readable, student_id
from autograder.labs.spec import human_size

MAX_NOTEBOOK_BYTES = 20 * 1024**2
MAX_MODULE_BYTES = 2 * 1024**2
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_DIRECTORY_BYTES = MAX_ZIP_MEMBERS * 512  # a directory entry is 46 bytes plus its name and extras
IGNORED_PARTS = {".ipynb_checkpoints", "__MACOSX", "__pycache__", ".git"}
# Shown as escapes, never as themselves: controls (C0, DEL, C1), format characters (bidi overrides such
# as U+202E, zero-width characters), lone surrogates, and line and paragraph separators.
class Submission(BaseModel):
    """What one student handed in. `path` is the notebook itself, or the student's folder or zip;
    `notebook` and `files` name the members used, relative to it."""

    student: str
    path: Path
    sha256: str
    size: int
    problem: str | None = None
    notebook: str | None = Field(None, description="The notebook inside a folder or zip; None when `path` is it.")
    files: dict[str, str] = Field(default_factory=dict, description="The lab's student module -> where it is.")

    @field_validator("problem")
    @classmethod
    def _readable_problem(cls, problem: str | None) -> str | None:
        # A reason may quote member names from a zip or folder, in any encoding.
        return None if problem is None else readable(problem)

    def notebook_bytes(self) -> bytes:
        return _read(self.path, self.notebook, MAX_NOTEBOOK_BYTES)

    def file_bytes(self, name: str) -> bytes:
        return _read(self.path, self.files[name], MAX_MODULE_BYTES)


def discover(source: Path, student_files: list[str] | tuple[str, ...] = ()) -> list[Submission]:
    """A notebook, a folder of notebooks (student = file stem), or a folder with a folder or a zip
    per student. `student_files` are the modules the lab asks students to hand in with the notebook."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist", "pass a notebook, a student's folder or a folder of submissions")
    if source.is_file():  # raw names throughout: take* and _problem's callers make them student ids
        if source.suffix == ".zip":
            return [take_zip(source.stem, source, student_files)]
        if source.suffix != ".ipynb":
            raise UserError(f"{source} is not a notebook (.ipynb) or a zip",
                            "pass a notebook or a folder of submissions")
        return [take(source.stem, source, student_files)]
    if _is_one_submission(source, student_files):
        return [take_folder(source.name, source, student_files)]
    found: list[Submission] = []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name in IGNORED_PARTS:
            continue
        if entry.is_symlink():
            found.append(_problem(student_id(entry.stem), entry,
                                  "a symbolic link, which is not graded: hand in the file itself"))
        elif entry.is_file() and entry.suffix == ".ipynb":
            found.append(take(entry.stem, entry, student_files))
        elif entry.is_file() and entry.suffix == ".zip":
            found.append(take_zip(entry.stem, entry, student_files))
        elif entry.is_dir():
            found.append(take_folder(entry.name, entry, student_files))
    if not found:
        raise UserError(f"no submissions in {source}", "expected .ipynb files, or a folder or .zip per student")
    seen: dict[str, Path] = {}
    for sub in found:
        if sub.student in seen:
            raise UserError(f"two submissions for student {sub.student!r}: {readable(str(seen[sub.student]))} and "
                            f"{readable(str(sub.path))}",
                            "keep one notebook, folder or zip per student")
        seen[sub.student] = sub.path
    return found


def _is_one_submission(folder: Path, student_files) -> bool:
    """A student's own folder (one notebook with the lab's modules beside it), rather than a folder
    of submissions; for a lab without modules a folder is always a folder of submissions."""
    notebooks = [p for p in folder.glob("*.ipynb") if not p.is_symlink()]
    return len(notebooks) == 1 and any((folder / name).is_file() for name in student_files)


def take(student: str, path: Path, student_files=()) -> Submission:
    """Hash and validate one notebook file handed in alone; `student` is the raw name (see `student_id`)."""
    student = student_id(student)
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return _problem(student, path, f"the notebook is {size / 1024**2:.0f} MB; the limit is "
                        f"{MAX_NOTEBOOK_BYTES // 1024**2} MB (clear its outputs before handing in)", size)
    data = path.read_bytes()
    sub = Submission(student=student, path=path, sha256=_digest(data, {}), size=size, problem=notebook_problem(data))
    if student_files and not sub.problem:
        sub.problem = _missing(list(student_files), None)
    return sub


def take_folder(student: str, folder: Path, student_files=()) -> Submission:
    """A student's folder: exactly one notebook anywhere in it, and the lab's modules by name
    (beside the notebook first, else anywhere in the folder if there is only one of that name)."""
    student = student_id(student)
    members = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))
               if not (set(p.relative_to(folder).parts) & IGNORED_PARTS) and p.is_file() and not p.is_symlink()]
    return _assemble(student, folder, members, student_files)


def take_zip(student: str, path: Path, student_files=()) -> Submission:
    """A student's zip, read in place: members are looked up by name, never extracted by it."""
    student = student_id(student)
    try:
        with path.open("rb") as f:
            # What ZipFile reads first; private, but the very same record (typeshed leaves it out).
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
        directory_bytes = end[zipfile._ECD_SIZE] if end else 0  # type: ignore[attr-defined]
        if end and directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
            # ZipFile turns its whole directory into objects (several times its size) before we can count
            return _problem(student, path, f"the zip's table of contents takes {human_size(directory_bytes)}; "
                            "hand in the notebook and your modules only")
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                return _problem(student, path, f"the zip holds {len(infos):,} entries; hand in the notebook and "
                                "your modules only")
            if any(i.flag_bits & 0x1 for i in infos):
                return _problem(student, path, "the zip is encrypted; hand it in without a password")
            members = [i.filename for i in infos if not i.is_dir() and _plain_member(i)]
    except UnicodeDecodeError as exc:  # a member name flagged as UTF-8 that is not
        return _problem(student, path, f"a file name in the zip is marked as UTF-8 but is not ({exc}); zip the "
                        "notebook and your modules again, with another zip tool")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return _problem(student, path, f"the file is not a readable zip ({exc})")
    return _assemble(student, path, members, student_files)


def _plain_member(info: zipfile.ZipInfo) -> bool:
    """A regular file at a safe relative path, outside the folders tools leave behind."""
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return False
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    return bool(parts) and not info.filename.startswith("/") and ".." not in parts and not set(parts) & IGNORED_PARTS


def _assemble(student: str, path: Path, members: list[str], student_files) -> Submission:
    notebooks = [m for m in members if m.endswith(".ipynb")]
    if not notebooks:
        return _problem(student, path, f"the {_kind(path)} holds no notebook (.ipynb)")
    if len(notebooks) > 1:
        names = ", ".join(notebooks[:3])
        return _problem(student, path, f"the {_kind(path)} holds {len(notebooks)} notebooks ({names}); hand in one")
    notebook = notebooks[0]
    home = PurePosixPath(notebook).parent
    files: dict[str, str] = {}
    for name in student_files:
        beside = (home / name).as_posix()
        anywhere = [m for m in members if PurePosixPath(m).name == name]
        if beside in members:
            files[name] = beside
        elif len(anywhere) == 1:
            files[name] = anywhere[0]
        elif len(anywhere) > 1:
            return _problem(student, path, f"the {_kind(path)} holds {len(anywhere)} files named {name} "
                            f"({', '.join(anywhere[:3])}); keep the one beside the notebook")
    missing = [n for n in student_files if n not in files]
    try:
        data = _read(path, notebook, MAX_NOTEBOOK_BYTES)
        modules = {name: _read(path, where, MAX_MODULE_BYTES) for name, where in files.items()}
    except _TooLarge as big:
        return _problem(student, path, str(big))
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        return _problem(student, path, f"a file in the {_kind(path)} could not be read ({exc})")
    size = len(data) + sum(len(v) for v in modules.values())
    problem = notebook_problem(data) or (_missing(missing, f"the {_kind(path)}") if missing else None)
    if problem is None:
        problem = next((f"{name} is not UTF-8 text" for name, v in modules.items() if not _utf8(v)), None)
    return Submission(student=student, path=path, sha256=_digest(data, modules), size=size, problem=problem,
                      notebook=notebook, files=files)


def _missing(names, where: str | None) -> str:
    """Why a submission without the lab's modules can't be graded, and what to hand in instead."""
    listed = " and ".join(names)
    need = f"this lab needs {listed} beside the notebook: hand in a folder or zip with the notebook and {listed}"
    if where is None:
        return f"the notebook was handed in alone, without {listed}; {need}"
    return f"{listed} {'is' if len(names) == 1 else 'are'} missing from {where}; {need}"


class _TooLarge(Exception):
    pass


def _read(path: Path, member: str | None, cap: int) -> bytes:
    """A member's bytes, at most `cap`: the size a zip declares is not trusted."""
    if member is None:
        return path.read_bytes()
    if path.is_dir():
        target = path / member
        if target.stat().st_size > cap:
            raise _TooLarge(f"{member} is {human_size(target.stat().st_size)}; the limit is {human_size(cap)}")
        return target.read_bytes()
    with zipfile.ZipFile(path) as z:
        if z.getinfo(member).compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and lzma members decompress without a bound on each read: a small one can ask for GBs
            raise _TooLarge(f"{member} is packed with a method the grader does not unpack (only stored or "
                            "deflated, the zip tools' default)")
        with z.open(member) as f:
            data = f.read(cap + 1)
    if len(data) > cap:
        raise _TooLarge(f"{member} is larger than the {human_size(cap)} limit")
    return data


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _digest(notebook: bytes, modules: dict[str, bytes]) -> str:
    """The notebook's sha256 alone when it was handed in alone, so a lab without modules keeps its
    hashes; with modules, their names and contents count too."""
    h = hashlib.sha256(notebook)
    if not modules:
        return h.hexdigest()
    for name in sorted(modules):
        h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(modules[name]).digest())
    return h.hexdigest()


def _kind(path: Path) -> str:
    return "zip" if path.suffix == ".zip" and path.is_file() else "folder"


def notebook_problem(data: bytes) -> str | None:
    """Why these bytes are not a gradable notebook, or None."""
    import nbformat

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"the file is not a Jupyter notebook (invalid JSON: {exc})"
    if not isinstance(doc, dict) or "cells" not in doc or doc.get("nbformat") != 4:
        return "the file is not a version-4 Jupyter notebook"
    try:  # JSON may escape what is no text at all: half of a character (a lone surrogate, "\\udce9")
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"the notebook holds text that is not valid Unicode (U+{ord(exc.object[exc.start]):04X}, half of a "
                "character); save it again from Jupyter")
    try:
        nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as exc:  # nbformat raises several kinds for malformed documents
        return f"the notebook is malformed: {str(exc).splitlines()[0][:200]}"
    return None


def _problem(student: str, path: Path, problem: str, size: int = 0) -> Submission:
    regular = path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_NOTEBOOK_BYTES
    digest = hashlib.sha256(path.read_bytes() if regular
                            else os.fsencode(path) + f":{problem}".encode("utf-8", "surrogateescape")).hexdigest()
    return Submission(student=student, path=path, sha256=digest, size=size, problem=problem)


def take_beside(student: str, notebook: Path, student_files=()) -> Submission:
    """A notebook with the lab's modules found beside it by name (the self-check's view of a student's
    working folder, which also holds data, tests and scratch notebooks that are not handed in)."""
    student = student_id(student)
    folder = notebook.parent
    present = [name for name in student_files if (folder / name).is_file() and not (folder / name).is_symlink()]
    sub = _assemble(student, folder, [notebook.name, *present], student_files)
    return sub
