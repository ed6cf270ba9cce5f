"""Intake: find the submissions, name the students, hash and validate what each handed in.

A submission is a notebook, or (for labs where students also write Python modules) a folder or a
zip per student holding the notebook and the student's modules, and the written report where the
lab asks for one; a module-only lab's submission is the modules alone. Only the files the lab names
are taken (found by name, or by suffix and name inside whatever the student called them);
everything else in a folder or zip is ignored, and nothing in a zip is ever extracted by the names
it carries. A submission that can't be read still becomes a Submission (with `problem` set) so that
it gets a verdict with a reason instead of stopping the batch. LMS downloads (Canvas, Moodle) are
grouped per student by `lms.py`, which hands each group to `assemble` here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field, field_validator

from autograder.errors import UserError
from autograder.ids import readable, student_id
from autograder.labs.spec import REPORT_SUFFIXES, LabSpec, human_size
from autograder.results import Lateness

MAX_NOTEBOOK_BYTES = 20 * 1024**2
MAX_MODULE_BYTES = 2 * 1024**2
MAX_REPORT_BYTES = 20 * 1024**2
MAX_ORIGINALS = 50  # file names kept per submission for staff
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_DIRECTORY_BYTES = MAX_ZIP_MEMBERS * 512  # a directory entry is 46 bytes plus its name and extras
IGNORED_PARTS = {".ipynb_checkpoints", "__MACOSX", "__pycache__", ".git"}


class IntakeSpec(BaseModel):
    """What intake needs of a lab (`IntakeSpec.of(lab.spec)`); a bare list of module names is read as
    `student_files` alone, for callers that know nothing else of the lab."""

    lab: str = Field("", description="The lab's name: a notebook named after it is told from others.")
    notebook: str | None = Field(None, description="The lab's notebook file name; None: any one notebook.")
    modules_only: bool = Field(False, description="A lab without a notebook: the modules are the submission and a "
                               "stray notebook is ignored.")
    student_files: list[str] = Field(default_factory=list, description="The modules students hand in.")
    report: str | None = Field(None, description="The written report's stem: report.pdf, .md or .txt.")

    @classmethod
    def of(cls, spec: LabSpec) -> IntakeSpec:
        return cls(lab=spec.name, notebook=PurePosixPath(spec.notebook).name if spec.notebook else None,
                   modules_only=spec.notebook is None, student_files=list(spec.files.student),
                   report=spec.files.report)


def intake_spec(spec: IntakeSpec | Iterable[str] | None) -> IntakeSpec:
    if isinstance(spec, IntakeSpec):
        return spec
    return IntakeSpec(student_files=list(spec or ()))


class Submission(BaseModel):
    """What one student handed in. `path` is the notebook itself, or the student's folder or zip (for an
    LMS download, the download itself); `notebook`, `files` and `report` name the members used,
    relative to it."""

    student: str
    path: Path
    sha256: str
    size: int
    problem: str | None = None
    notebook: str | None = Field(None, description="The notebook inside a folder or zip; None when `path` is it, "
                                 "or when a module-only lab's submission has none.")
    files: dict[str, str] = Field(default_factory=dict, description="The lab's student module -> where it is.")
    report: str | None = Field(None, description="The written report (report.pdf/.md/.txt) inside the folder or "
                               "zip; None when the lab asks for none or none was handed in.")
    handed_in: datetime | None = Field(None, description="When it was handed in (timezone-aware), where known.")
    handed_in_from: str = Field("", description="How that is known: canvas, moodle, csv, zip time, file time.")
    late: Lateness | None = None
    originals: list[str] = Field(default_factory=list, description="The file names as handed in, for staff.")
    lms: dict[str, str] = Field(default_factory=dict, description="The LMS's own names for it: layout, user_id, "
                                "submission_id, participant_id, name.")
    notes: list[str] = Field(default_factory=list, description="What intake chose for the student (which report "
                             "of several, a module found under another name), said on the result.")

    @property
    def has_notebook(self) -> bool:
        return self.notebook is not None or self.path.suffix == ".ipynb" and not self.path.is_dir()

    @field_validator("problem")
    @classmethod
    def _readable_problem(cls, problem: str | None) -> str | None:
        # A reason may quote member names from a zip or folder, in any encoding.
        return None if problem is None else readable(problem)

    def notebook_bytes(self) -> bytes:
        if not self.has_notebook:
            raise LookupError(f"{self.student}'s submission has no notebook (a module-only lab)")
        return _read(self.path, self.notebook, MAX_NOTEBOOK_BYTES)

    def file_bytes(self, name: str) -> bytes:
        return _read(self.path, self.files[name], MAX_MODULE_BYTES)

    def report_bytes(self) -> bytes:
        """The report as handed in, at most MAX_REPORT_BYTES; LookupError when there is none."""
        if self.report is None:
            raise LookupError(f"{self.student} handed in no report")
        return _read(self.path, self.report, MAX_REPORT_BYTES)


def discover(source: Path, spec: IntakeSpec | Iterable[str] | None = None) -> list[Submission]:
    """A notebook, a folder of notebooks (student = file stem), or a folder with a folder or a zip
    per student. `spec` says what the lab takes (IntakeSpec.of(lab.spec)); a list is the modules the
    lab asks students to hand in with the notebook."""
    spec = intake_spec(spec)
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist", "pass a notebook, a student's folder or a folder of submissions")
    if source.is_file():  # raw names throughout: take* and _problem's callers make them student ids
        if source.suffix == ".zip":
            return [take_zip(source.stem, source, spec)]
        if source.suffix != ".ipynb":
            raise UserError(f"{source} is not a notebook (.ipynb) or a zip",
                            "pass a notebook or a folder of submissions")
        return [take(source.stem, source, spec)]
    if _is_one_submission(source, spec):
        return [take_folder(source.name, source, spec)]
    found: list[Submission] = []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name in IGNORED_PARTS:
            continue
        if entry.is_symlink():
            found.append(_problem(student_id(entry.stem), entry,
                                  "a symbolic link, which is not graded: hand in the file itself"))
        elif entry.is_file() and entry.suffix == ".ipynb":
            found.append(take(entry.stem, entry, spec))
        elif entry.is_file() and entry.suffix == ".zip":
            found.append(take_zip(entry.stem, entry, spec))
        elif entry.is_dir():
            found.append(take_folder(entry.name, entry, spec))
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


def _is_one_submission(folder: Path, spec: IntakeSpec) -> bool:
    """A student's own folder (one notebook with the lab's modules beside it; for a module-only lab, the
    modules), rather than a folder of submissions; for a lab without modules a folder is always a folder
    of submissions."""
    has_modules = any((folder / name).is_file() for name in spec.student_files)
    if spec.modules_only:
        return has_modules
    notebooks = [p for p in folder.glob("*.ipynb") if not p.is_symlink()]
    return len(notebooks) == 1 and has_modules


def take(student: str, path: Path, spec: IntakeSpec | Iterable[str] | None = None) -> Submission:
    """Hash and validate one notebook file handed in alone; `student` is the raw name (see `student_id`)."""
    spec = intake_spec(spec)
    student = student_id(student)
    if spec.modules_only:
        listed = " and ".join(spec.student_files)
        return _problem(student, path, f"this lab is handed in as {listed}, without a notebook: hand in a "
                        f"folder or zip with {listed}")
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return _problem(student, path, f"the notebook is {size / 1024**2:.0f} MB; the limit is "
                        f"{MAX_NOTEBOOK_BYTES // 1024**2} MB (clear its outputs before handing in)", size)
    data = path.read_bytes()
    sub = Submission(student=student, path=path, sha256=_digest(data, {}), size=size, problem=notebook_problem(data),
                     originals=[readable(path.name)])
    if spec.student_files and not sub.problem:
        sub.problem = _missing(list(spec.student_files), None)
    return sub


def take_folder(student: str, folder: Path, spec: IntakeSpec | Iterable[str] | None = None) -> Submission:
    """A student's folder: exactly one notebook anywhere in it (or the one named as the lab's), and the
    lab's modules by name (beside the notebook first, else anywhere in the folder if there is only one
    of that name, else one whose name holds the module's)."""
    student = student_id(student)
    return assemble(student, folder, folder_members(folder), intake_spec(spec))


def folder_members(folder: Path) -> list[str]:
    """Every regular file under a folder, relative to it, outside the folders tools leave behind."""
    return [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))
            if not (set(p.relative_to(folder).parts) & IGNORED_PARTS) and p.is_file() and not p.is_symlink()]


def take_zip(student: str, path: Path, spec: IntakeSpec | Iterable[str] | None = None) -> Submission:
    """A student's zip, read in place: members are looked up by name, never extracted by it."""
    student = student_id(student)
    infos = zip_members(path)
    if isinstance(infos, str):
        return _problem(student, path, infos)
    return assemble(student, path, [i.filename for i in infos], intake_spec(spec))


def zip_members(path: Path, max_members: int = MAX_ZIP_MEMBERS) -> list[zipfile.ZipInfo] | str:
    """The plain members of a zip (regular files at safe relative paths), or why it can't be read."""
    try:
        with path.open("rb") as f:
            # What ZipFile reads first; private, but the very same record (typeshed leaves it out).
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
        directory_bytes = end[zipfile._ECD_SIZE] if end else 0  # type: ignore[attr-defined]
        if end and directory_bytes > max_members * 512:
            # ZipFile turns its whole directory into objects (several times its size) before we can count
            return (f"the zip's table of contents takes {human_size(directory_bytes)}; "
                    "hand in the notebook and your modules only")
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > max_members:
                return f"the zip holds {len(infos):,} entries; hand in the notebook and your modules only"
            if any(i.flag_bits & 0x1 for i in infos):
                return "the zip is encrypted; hand it in without a password"
            return [i for i in infos if not i.is_dir() and _plain_member(i)]
    except UnicodeDecodeError as exc:  # a member name flagged as UTF-8 that is not
        return (f"a file name in the zip is marked as UTF-8 but is not ({exc}); zip the notebook and your modules "
                "again, with another zip tool")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return f"the file is not a readable zip ({exc})"


def _plain_member(info: zipfile.ZipInfo) -> bool:
    """A regular file at a safe relative path, outside the folders tools leave behind."""
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return False
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    return bool(parts) and not info.filename.startswith("/") and ".." not in parts and not set(parts) & IGNORED_PARTS


# A copy's marks on a name: Canvas's resubmission `-1`, a browser's ` (1)`; compared without them.
_COPY_MARK = re.compile(r"(-\d+| ?\(\d+\))$")


def plain_name(name: str) -> str:
    """A file's base name as compared: lowercase, without the marks copies and resubmissions add."""
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        return _COPY_MARK.sub("", base)
    return f"{_COPY_MARK.sub('', stem)}.{suffix}"


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", plain_name(name).rpartition(".")[0]) if w]


def _fits(wanted: str, name: str) -> bool:
    """`name` could be the lab's `wanted` file: the same suffix, and the wanted stem's words in a row
    among its words (cnn.py in Lab2_cnn_final.py, lab2-cnn.ipynb in lab2_cnn_ok.ipynb)."""
    if plain_name(name).rpartition(".")[2] != wanted.lower().rpartition(".")[2]:
        return False
    want, have = _words(wanted), _words(name)
    return bool(want) and any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))


class _Pick(BaseModel):
    member: str | None = None
    problem: str | None = None
    note: str | None = None


def _pick_notebook(notebooks: list[str], named: dict[str, str], spec: IntakeSpec, kind: str) -> _Pick:
    if not notebooks:
        return _Pick(problem=f"the {kind} holds no notebook (.ipynb)")
    if len(notebooks) == 1:
        return _Pick(member=notebooks[0])
    if spec.notebook:
        same = [m for m in notebooks if plain_name(named[m]) == spec.notebook.lower()]
        if len(same) != 1:
            same = [m for m in notebooks if _fits(spec.notebook, named[m])]
        if len(same) == 1:
            others = ", ".join(readable(named[m]) for m in notebooks if m != same[0])
            return _Pick(member=same[0], note=f"{len(notebooks)} notebooks were handed in; {readable(named[same[0]])} "
                         f"was graded, as the lab's, and not {others}")
    names = ", ".join(readable(named[m]) for m in notebooks[:3])
    return _Pick(problem=f"the {kind} holds {len(notebooks)} notebooks ({names}); hand in one")


def _pick_module(name: str, members: list[str], named: dict[str, str], home: PurePosixPath, kind: str) -> _Pick:
    """Where the lab's module `name` is: beside the notebook, else the only file of that name, else
    the only one of that name as copies and resubmissions mark it, else the only .py whose name
    holds it (said in a note). Two candidates are never chosen between silently."""
    beside = (home / name).as_posix()
    if beside in members:
        return _Pick(member=beside)
    exact = [m for m in members if PurePosixPath(m).name == name]
    if len(exact) == 1:
        return _Pick(member=exact[0])
    if len(exact) > 1:
        return _Pick(problem=f"the {kind} holds {len(exact)} files named {name} ({', '.join(exact[:3])}); keep the "
                     "one beside the notebook")
    for fits, how in ((lambda m: plain_name(named[m]) == name.lower(), "as"),
                      (lambda m: _fits(name, named[m]), "from")):
        found = [m for m in members if fits(m)]
        if len(found) > 1:
            near = [m for m in found if PurePosixPath(m).parent == home]
            found = near if len(near) == 1 else found
        if len(found) == 1:
            same = plain_name(named[found[0]]) == name.lower()  # only case or a copy's mark differ: no news
            note = None if same else f"{name} was read {how} {readable(named[found[0]])}"
            return _Pick(member=found[0], note=note)
        if len(found) > 1:
            names = ", ".join(readable(named[m]) for m in found[:3])
            return _Pick(problem=f"{len(found)} files in the {kind} could be {name} ({names}); keep one")
    return _Pick()


def _pick_report(stem: str, members: list[str], named: dict[str, str], home: PurePosixPath) -> _Pick:
    """The report: the files named `stem` with a report suffix (the first in REPORT_SUFFIXES' order if
    there are several, beside the notebook first), else the one document in the group."""
    docs = [m for m in members if plain_name(named[m]).rpartition(".")[2] in {s[1:] for s in REPORT_SUFFIXES}]
    named_so = [m for m in docs if plain_name(named[m]).rpartition(".")[0] == stem.lower()]
    if not named_so:
        if len(docs) == 1:
            return _Pick(member=docs[0], note=None if plain_name(named[docs[0]]).startswith(stem.lower()) else
                         f"the report was read from {readable(named[docs[0]])}, the one document handed in")
        if docs:
            names = ", ".join(readable(named[m]) for m in docs[:4])
            return _Pick(note=f"no {stem}.pdf, .md or .txt was handed in, and {len(docs)} other documents were "
                         f"({names}); none was read as the report")
        return _Pick()
    order = [s[1:] for s in REPORT_SUFFIXES]
    named_so.sort(key=lambda m: (order.index(plain_name(named[m]).rpartition(".")[2]),
                                 PurePosixPath(m).parent != home, m))
    note = None
    if len(named_so) > 1:
        others = ", ".join(readable(named[m]) for m in named_so[1:])
        note = f"several reports were handed in; {readable(named[named_so[0]])} was read, not {others}"
    return _Pick(member=named_so[0], note=note)


def assemble(student: str, path: Path, members: list[str], spec: IntakeSpec,
             named: dict[str, str] | None = None) -> Submission:
    """One student's submission from the members of a folder or zip (`path`); `named` gives each member
    the name the student gave it where the container renamed it (an LMS's prefix), for finding the
    lab's files by name."""
    shared = named is not None  # a group in an LMS download: the file holds other students' work too
    named = named or {m: m for m in members}
    kind = "download" if shared else _kind(path)
    notes: list[str] = []
    originals = [readable(m) for m in members[:MAX_ORIGINALS]]

    def fail(problem: str) -> Submission:
        return _problem(student, path, problem, originals=originals, shared=shared)

    notebook = None
    if not spec.modules_only:
        pick = _pick_notebook([m for m in members if m.lower().endswith(".ipynb")], named, spec, kind)
        if pick.problem:
            return fail(pick.problem)
        notebook = pick.member
        notes += [pick.note] if pick.note else []
    home = PurePosixPath(notebook).parent if notebook else _home(members, spec)
    files: dict[str, str] = {}
    for name in spec.student_files:
        pick = _pick_module(name, members, named, home, kind)
        if pick.problem:
            return fail(pick.problem)
        if pick.member is not None:
            twice = next((other for other, m in files.items() if m == pick.member), None)
            if twice is not None:
                return fail(f"{readable(named[pick.member])} could be {twice} or {name}; hand them in under the "
                            "lab's names")
            files[name] = pick.member
            notes += [pick.note] if pick.note else []
    missing = [n for n in spec.student_files if n not in files]
    report = None
    if spec.report:
        pick = _pick_report(spec.report, members, named, home)
        report = pick.member
        notes += [pick.note] if pick.note else []
    try:
        data = _read(path, notebook, MAX_NOTEBOOK_BYTES) if notebook is not None else b""
        modules = {name: _read(path, where, MAX_MODULE_BYTES) for name, where in files.items()}
    except _TooLarge as big:
        return fail(str(big))
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        return fail(f"a file in the {kind} could not be read ({exc})")
    document = None
    if report is not None:
        try:
            document = _read(path, report, MAX_REPORT_BYTES)
        except (_TooLarge, OSError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
            notes.append(f"the report {readable(named[report])} could not be read ({exc})")
            report = None
    size = len(data) + sum(len(v) for v in modules.values()) + len(document or b"")
    problem = notebook_problem(data) if notebook is not None else None
    if problem is None and missing:
        problem = _missing(missing, f"the {kind}", notebook is not None)
    if problem is None:
        problem = next((f"{name} is not UTF-8 text" for name, v in modules.items() if not _utf8(v)), None)
    return Submission(student=student, path=path, sha256=_digest(data, modules, document), size=size, problem=problem,
                      notebook=notebook, files=files, report=report, originals=originals, notes=notes)


def _home(members: list[str], spec: IntakeSpec) -> PurePosixPath:
    """Where a module-only submission's modules are: the folder of the first that has a lab name."""
    for m in members:
        if PurePosixPath(m).name in spec.student_files:
            return PurePosixPath(m).parent
    return PurePosixPath(".")


def _missing(names, where: str | None, notebook: bool = True) -> str:
    """Why a submission without the lab's modules can't be graded, and what to hand in instead."""
    listed = " and ".join(names)
    need = f"this lab needs {listed} beside the notebook: hand in a folder or zip with the notebook and {listed}" \
        if notebook else f"this lab is graded from {listed}: hand in a folder or zip with {listed}"
    if where is None:
        return f"the notebook was handed in alone, without {listed}; {need}"
    return f"{listed} {'is' if len(names) == 1 else 'are'} missing from {where}; {need}"


class _TooLarge(Exception):
    pass


# Zips held open while intake reads many members of one (an LMS download): opening a zip parses its
# whole table of contents, which for a 300-student download is most of intake's time.
_HELD: dict[Path, zipfile.ZipFile] = {}


@contextmanager
def held_open(path: Path) -> Iterator[None]:
    """Keep a zip open for the reads inside the block (one parse of its table of contents)."""
    if not (path.suffix == ".zip" and path.is_file()) or path in _HELD:
        yield
        return
    with zipfile.ZipFile(path) as z:
        _HELD[path] = z
        try:
            yield
        finally:
            _HELD.pop(path, None)


def _read(path: Path, member: str | None, cap: int) -> bytes:
    """A member's bytes, at most `cap`: the size a zip declares is not trusted."""
    if member is None:
        return path.read_bytes()
    if path.is_dir():
        target = path / member
        if target.stat().st_size > cap:
            raise _TooLarge(f"{member} is {human_size(target.stat().st_size)}; the limit is {human_size(cap)}")
        return target.read_bytes()
    held = _HELD.get(path)
    with nullcontext(held) if held is not None else zipfile.ZipFile(path) as z:
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


def _digest(notebook: bytes, modules: dict[str, bytes], report: bytes | None = None) -> str:
    """The notebook's sha256 alone when it was handed in alone, so a lab without modules keeps its
    hashes; with modules, their names and contents count too, and so does a report (by the lab's
    names, never the student's, so the same work hashes alike in a folder, a zip or an LMS download)."""
    h = hashlib.sha256(notebook)
    if not modules and report is None:
        return h.hexdigest()
    for name in sorted(modules):
        h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(modules[name]).digest())
    if report is not None:
        h.update(b"\1report\0" + hashlib.sha256(report).digest())
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


def _problem(student: str, path: Path, problem: str, size: int = 0, originals: list[str] | None = None,
             shared: bool = False) -> Submission:
    # A whole download (an LMS zip) is one file for many students: its bytes are no student's own.
    regular = path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_NOTEBOOK_BYTES
    digest = hashlib.sha256(path.read_bytes() if regular and not shared
                            else os.fsencode(path) + f":{student}:{problem}".encode("utf-8", "surrogateescape")
                            ).hexdigest()
    return Submission(student=student, path=path, sha256=digest, size=size, problem=problem,
                      originals=originals if originals is not None else [readable(path.name)])


def take_beside(student: str, notebook: Path, spec: IntakeSpec | Iterable[str] | None = None) -> Submission:
    """A notebook with the lab's modules (and report) found beside it by name: the self-check's view of a
    student's working folder, which also holds data, tests and scratch notebooks that are not handed in.
    For a module-only lab `notebook` may be the folder itself."""
    spec = intake_spec(spec)
    student = student_id(student)
    folder = notebook if notebook.is_dir() else notebook.parent
    present = [name for name in spec.student_files if (folder / name).is_file() and not (folder / name).is_symlink()]
    if spec.report:
        documents = [f"{spec.report}{suffix}" for suffix in REPORT_SUFFIXES]
        present += [d for d in documents if (folder / d).is_file() and not (folder / d).is_symlink()]
    first = [] if notebook.is_dir() or spec.modules_only else [notebook.name]
    return assemble(student, folder, [*first, *present], spec)
