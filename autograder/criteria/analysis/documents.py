"""The text of a student's written report (Markdown, plain text or PDF) and a section of it by heading.

A report is read on the grading host, outside the sandbox. Markdown and text are decoded here (UTF-8,
or UTF-16 with its byte-order mark); a PDF is hostile input, so pypdf parses it in a child process
(`pdf_worker.py`) under a wall-clock timeout, address-space and CPU limits, and caps on pages and
characters: a decompression bomb, an endless content stream, an encrypted or malformed file becomes a
`Problem` with a verdict and a reason, never a hang or a crash of the batch. What could be the grader's
limit rather than the student's error (a file too complex to read, an encryption pypdf can't open, a
scan with no text) goes to `review`; only what is surely the student's (not a PDF at all, a password,
not UTF-8, no pages) fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ValidationError

from autograder.criteria.analysis.text import WORD
from autograder.ids import readable
from autograder.labs.spec import REPORT_SUFFIXES

WORKER = Path(__file__).with_name("pdf_worker.py")
PDF_TIMEOUT = 20.0  # seconds of wall clock for the whole child process
PDF_CPU = 15  # seconds of CPU; the worker stops reading pages after half of it and keeps what it has
PDF_MEMORY = 1024**3  # address space of the child (Python and pypdf take about 60 MB of it)
MAX_PAGES = 200  # pages read; a lab report has 5-30
MAX_CHARS = 400_000  # characters kept (about 150 dense pages)
CACHE_ENTRIES = 64

Kind = Literal["markdown", "text", "pdf"]
KINDS: dict[str, Kind] = {".md": "markdown", ".txt": "text", ".pdf": "pdf"}
assert set(KINDS) == set(REPORT_SUFFIXES)


@dataclass(frozen=True)
class ReportFile:
    """The report as handed in, read on the host by the judge: its member name and bytes, or why the
    bytes could not be read although intake found the file."""

    name: str
    data: bytes = b""
    error: str = ""

    @property
    def shown(self) -> str:
        """Its base name as the student may see it (escapes for anything unprintable)."""
        name = readable(PurePosixPath(self.name.replace("\\", "/")).name)
        return name if len(name) <= 80 else name[:79] + "…"


class Problem(BaseModel):
    """Why a report's text can't be judged: `fail` when surely the student's doing, else `review`."""

    status: Literal["fail", "review"]
    reason: str
    message: str  # for the student: names the file, never a host path or a parser's traceback
    detail: str = ""  # for staff


class Document(BaseModel):
    """A report's text as read. `cut` says why reading stopped early (pages, characters, time)."""

    name: str
    kind: Kind
    text: str = ""
    pages: int | None = None
    pages_read: int | None = None
    cut: str = ""
    seconds: float = 0.0
    problem: Problem | None = None


class _WorkerAnswer(BaseModel):
    status: Literal["ok", "encrypted", "too-big", "unreadable"]
    text: str = ""
    pages: int = 0
    read: int = 0
    cut: Literal["", "pages", "characters", "time"] = ""
    errors: list[str] = []
    password: bool = False
    error: str = ""


def kind_of(name: str) -> Kind | None:
    return KINDS.get(PurePosixPath(name.lower()).suffix)


_cache: OrderedDict[tuple[str, str], Document] = OrderedDict()  # (sha256, name) -> what was read
_cache_lock = threading.Lock()


def read_document(report: ReportFile) -> Document:
    """The report's text, or the problem that keeps it from being read; a PDF is read once per content
    (per process), so the same file judged again is not parsed again."""
    shown = report.shown
    kind = kind_of(report.name)
    if kind is None:
        return Document(name=shown, kind="text", problem=Problem(
            status="fail", reason="report-kind", message=f"{shown} is not a report the grader reads: hand it in as "
            f"{_suffixes()}."))
    if report.error:
        return Document(name=shown, kind=kind, problem=Problem(
            status="review", reason="report-unreadable", message=f"{shown} could not be read: a teacher will read "
            "it.", detail=report.error))
    key = (hashlib.sha256(report.data).hexdigest(), shown)  # the messages name the file
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    document = _read_pdf(shown, report.data) if kind == "pdf" else _read_text(shown, kind, report.data)
    with _cache_lock:
        _cache[key] = document
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return document


def _suffixes() -> str:
    return ", ".join(REPORT_SUFFIXES[:-1]) + " or " + REPORT_SUFFIXES[-1]


def _read_text(name: str, kind: Kind, data: bytes) -> Document:
    """UTF-8 (a byte-order mark allowed), or UTF-16 with its mark, as Windows' Notepad may save it."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16")
        else:
            text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Document(name=name, kind=kind, problem=Problem(
            status="fail", reason="not-utf8", message=f"{name} is not UTF-8 text (byte {exc.start} can't be read): "
            "save it as UTF-8 (in most editors: Save as, Encoding UTF-8) and hand it in again.", detail=str(exc)))
    if "\0" in text:
        return Document(name=name, kind=kind, problem=Problem(
            status="fail", reason="not-text", message=f"{name} is not a text file (it holds binary data): hand in "
            f"the report as {_suffixes()}."))
    return Document(name=name, kind=kind, text=text)


def _read_pdf(name: str, data: bytes) -> Document:
    start = time.monotonic()
    if b"%PDF-" not in data[:1024]:  # the header may follow up to 1 KB of junk, as readers allow
        what = "an empty file" if not data.strip() else "not a PDF file"
        return Document(name=name, kind="pdf", problem=Problem(
            status="fail", reason="not-pdf", message=f"{name} is {what}: export the report as a PDF (or hand it "
            "in as Markdown or text) and hand it in again."))
    args = [sys.executable, "-I", str(WORKER), str(MAX_PAGES), str(MAX_CHARS), str(PDF_MEMORY), str(PDF_CPU)]
    try:
        run = subprocess.run(args, input=data, capture_output=True, timeout=PDF_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return _too_complex(name, start, f"reading it took more than {PDF_TIMEOUT:.0f} s; the reader was stopped")
    except OSError as exc:  # the grader could not start a process: ours, not the student's
        return _too_complex(name, start, f"the PDF reader could not start: {exc}", reason="reader-error")
    seconds = round(time.monotonic() - start, 3)
    try:
        answer = _WorkerAnswer.model_validate(json.loads(run.stdout))
    except (ValueError, ValidationError):
        why = (f"the reader was stopped by signal {-run.returncode} (a limit on memory or CPU time)"
               if run.returncode < 0 else f"the reader exited with {run.returncode}")
        tail = run.stderr.decode("utf-8", "replace").strip()[-500:]
        return _too_complex(name, start, why + (f": {tail}" if tail else ""))
    return _answer(name, answer, seconds)


def _answer(name: str, answer: _WorkerAnswer, seconds: float) -> Document:
    """The worker's answer as a document, or the problem it reports."""
    def problem(status: Literal["fail", "review"], reason: str, message: str, detail: str = "") -> Document:
        return Document(name=name, kind="pdf", seconds=seconds,
                        problem=Problem(status=status, reason=reason, message=message, detail=detail))

    if answer.status == "encrypted" and answer.password:
        return problem("fail", "password", f"{name} is protected by a password, so nobody can read it: hand it in "
                       "again without one (export or print it to PDF with no password).", answer.error)
    if answer.status == "encrypted":
        return problem("review", "encrypted", f"{name} is encrypted in a way the grader can't open: a teacher will "
                       "read it.", answer.error)
    if answer.status == "too-big":
        return problem("review", "too-complex", f"{name} is too large or complex to read automatically: a teacher "
                       "will read it.", answer.error)
    if answer.status == "unreadable":
        return problem("review", "unreadable", f"{name} could not be read automatically (it may be damaged): a "
                       "teacher will read it.", answer.error)
    if answer.pages == 0:
        return problem("fail", "no-pages", f"{name} has no pages: export the report again and hand it in.")
    if not WORD.search(answer.text):
        return problem("review", "scan", "The report's PDF holds no text, only images: a teacher will read it.",
                       f"{answer.pages} pages, no extractable text (a scan or a photo?)")
    return Document(name=name, kind="pdf", text=answer.text, pages=answer.pages, pages_read=answer.read,
                    cut=answer.cut, seconds=seconds)


def _too_complex(name: str, start: float, detail: str, reason: str = "too-complex") -> Document:
    return Document(name=name, kind="pdf", seconds=round(time.monotonic() - start, 3), problem=Problem(
        status="review", reason=reason, message=f"{name} is too large or complex to read automatically: a teacher "
        "will read it.", detail=detail))


# --- sections ----------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[A-Z]\.|[ivxIVX]+\.)\s+")


def normalise(heading: str) -> str:
    """A heading as compared: no Markdown marks or section number, any case, single spaces
    ("## 3.2 **Ethics**:" -> "ethics")."""
    text = re.sub(r"[*_`]", "", heading.strip().strip("#").strip())
    text = _NUMBERING.sub("", text)
    return " ".join(text.rstrip(":.").split()).casefold()


def markdown_headings(text: str) -> dict[int, tuple[int, str]]:
    """line index -> (level, text) of every Markdown heading (ATX `#` or setext underlines), outside code."""
    lines = text.splitlines()
    found: dict[int, tuple[int, str]] = {}
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = _ATX.match(line)
        if m:
            found[i] = (len(m.group(1)), m.group(2) or "")
        elif (i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1])
              and not _SETEXT.match(line)):
            found[i] = (1 if lines[i + 1].strip().startswith("=") else 2, line.strip())
    return found


class Section(BaseModel):
    text: str
    ends_at: str  # where the section stops: "the next heading 'Results'" or "the end of the report"


def find_section(text: str, kind: Kind, heading: str, known: Iterable[str] = ()) -> Section | None:
    """The text under `heading`: a Markdown heading (in .md and .txt) or, in any report, a line that is
    the heading alone (numbering and a colon allowed). It ends at the next Markdown heading of the same or
    a higher level, or at a line that is one of the `known` headings (the released template's), else at
    the end. Where the heading occurs more than once (a table of contents), the longest section wins."""
    wanted = normalise(heading)
    lines = text.splitlines()
    marked = markdown_headings(text) if kind != "pdf" else {}
    ends = {normalise(h) for h in known} - {wanted, ""}
    best: Section | None = None
    best_words = -1
    for i, line in enumerate(lines):
        level = marked[i][0] if i in marked else None
        if normalise(marked[i][1] if i in marked else line) != wanted:
            continue
        body_start = i + (2 if i in marked and level is not None and not _ATX.match(line) else 1)
        end, ends_at = len(lines), "the end of the report"
        for j in range(body_start, len(lines)):
            if j in marked and (level is None or marked[j][0] <= level):
                end, ends_at = j, f"the next heading {marked[j][1].strip()!r}"
                break
            if normalise(lines[j]) in ends:
                end, ends_at = j, f"the next heading {lines[j].strip()!r}"
                break
        body = "\n".join(lines[body_start:end])
        words = len(WORD.findall(body))
        if words > best_words:
            best, best_words = Section(text=body, ends_at=ends_at[:120]), words
    return best
