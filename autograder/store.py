"""The embedded store: one SQLite file, results and stage outputs, each submission in one transaction.

Results are appended, never updated, so a regrade keeps the history; the latest row per
student is the current result. Stage rows record what each stage produced under the hash of its
inputs, so a changed rubric re-judges from recorded outputs instead of re-running notebooks.
Embedding rows keep the reflections' sentence vectors by the hash of the text and the model, so a
rerun or a re-judge does not load the model for texts it has seen (criteria/analysis/embeddings.py).
Override rows are appended too: a decision, a withdrawal (`clear`), or an undo that names the row it
withdraws and carries the decision it restores, so the latest row per criterion is what stands.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import PydanticSerializationError

from autograder.errors import UserError
from autograder.ids import readable, student_id
from autograder.results import Lateness, Override, SubmissionResult, now

SCHEMA_VERSION = 5  # 2: TA overrides; 3: hand-ins; 4: sentence embeddings; 5: undo (overrides.withdraws, .recorded_by)
DEFAULT_DB = Path(".autograder") / "grades.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lab TEXT NOT NULL,
    student TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    lab_version TEXT NOT NULL,
    rubric_hash TEXT NOT NULL,
    verdict TEXT NOT NULL,
    result TEXT NOT NULL,
    graded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_student ON results (lab, student);
CREATE TABLE IF NOT EXISTS stages (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    lab TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lab TEXT NOT NULL,
    student TEXT NOT NULL,
    criterion TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    at TEXT NOT NULL,
    withdraws INTEGER,
    recorded_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS overrides_by_student ON overrides (lab, student);
CREATE TABLE IF NOT EXISTS handins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lab TEXT NOT NULL,
    student TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    handed_in TEXT NOT NULL,
    late TEXT NOT NULL,
    originals TEXT NOT NULL,
    source TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    UNIQUE (lab, student, submission_hash, handed_in)
);
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model, text_sha256)
);
"""
# The embeddings table's columns, in order: a table of that name laid out otherwise (an older or foreign
# layout) is a cache, so it is dropped and made again rather than read wrongly.
_EMBEDDING_COLUMNS = ["model", "text_sha256", "dim", "vector", "created_at"]
# Columns the overrides table gained after it was first made (schema 5), added to an older store's table.
_OVERRIDE_COLUMNS = {"withdraws": "INTEGER", "recorded_by": "TEXT NOT NULL DEFAULT ''"}
_LOOKUP_CHUNK = 500  # keys per query: under SQLite's limit on bound parameters in every version


def _text(student: str) -> str:
    """A student id as SQLite can bind it: one holding lone surrogates (a raw file name that is not UTF-8,
    from a caller that skipped intake) as intake would name it, so it finds what intake recorded."""
    try:
        student.encode("utf-8")
    except UnicodeEncodeError:
        return student_id(student)
    return student


def _scrubbed(value):
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def storable(result: SubmissionResult) -> SubmissionResult:
    """The result as it can be stored and shown: itself, or where some text in it is not valid UTF-8
    (lone surrogates: a name or message from a file name or a student's output), a copy with that text
    escaped readably (`readable`; the student id as `student_id` makes it)."""
    try:
        result.model_dump_json()
        return result
    except (PydanticSerializationError, UnicodeEncodeError):
        pass
    data = _scrubbed(result.model_dump(exclude={"student"}))
    return SubmissionResult.model_validate({**data, "student": _text(result.student)})


class StageRecord(BaseModel):
    key: str
    stage: str
    lab: str
    submission_hash: str
    result: dict
    artifacts: Path


class HandIn(BaseModel):
    """One hand-in of one student as a batch found it: every one is kept, so a student's history (and
    which hand-in earned a result) survives later hand-ins and regrades."""

    lab: str
    student: str
    submission_hash: str
    handed_in: datetime | None = None
    late: Lateness | None = None
    originals: list[str] = Field(default_factory=list, description="The file names as handed in.")
    source: str = Field("", description="Where it came from: canvas, moodle or plain, and how its time is known.")
    seen_at: datetime = Field(default_factory=now)


class OverrideRow(BaseModel):
    """One row of the overrides table: a decision (`decision`), a withdrawal (`decision` None), or an undo
    (`withdraws`: the id of the row it takes back; `decision`: what stands again, None for nothing)."""

    id: int
    criterion: str
    submission_hash: str
    decision: Override | None
    at: datetime
    withdraws: int | None = None
    by: str = Field("", description="Who recorded the row (for an undo: who undid).")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if _text(str(self.path)) != str(self.path):
            raise UserError(f"{readable(str(self.path))}: the results store's path is not valid UTF-8",
                            "pass --db with a path whose name is plain text")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA.split(";", 1)[0])  # meta first: its version decides the rest
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise UserError(f"{self.path} was written by a newer autograder (schema {row[0]})",
                                "upgrade autograder")
            # Older stores gain the new tables (CREATE ... IF NOT EXISTS) and keep their rows.
            self._migrate_embeddings()
            self._db.executescript(_SCHEMA)
            self._migrate_overrides()
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except (sqlite3.Error, OSError) as exc:
            raise UserError(f"{self.path}: cannot open the results store: {exc}",
                            "pass --db with a writable path to an autograder database") from exc
        # Re-entrant: a write transaction (`write`) holds it while the methods it calls take it again.
        self._lock = threading.RLock()

    def _migrate_overrides(self) -> None:
        """An overrides table from before undo (schema < 5) gains its columns; its rows keep their meaning."""
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(overrides)")}
        for name, kind in _OVERRIDE_COLUMNS.items():
            if name not in columns:
                self._db.execute(f"ALTER TABLE overrides ADD COLUMN {name} {kind}")

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: SQLite's write lock from the start) around a read-modify-write,
        so a second writer, in this process or another, waits rather than writing between our read and our
        write. Store methods called inside join it; nested `write`s are one transaction."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate_embeddings(self) -> None:
        """An embeddings table laid out otherwise than this version's is only a cache: made again, empty."""
        columns = [r[1] for r in self._db.execute("PRAGMA table_info(embeddings)")]
        if columns and columns != _EMBEDDING_COLUMNS:
            self._db.execute("DROP TABLE embeddings")

    @classmethod
    def reader(cls, path: Path, timeout: float = 5.0) -> Store:
        """The store opened read-only, for staff's own analysis: it never creates, upgrades or writes the file,
        so a grading batch may write it meanwhile (WAL: a reader sees the last committed results and does not
        wait for the writer). Only the read methods work on it."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no results store there",
                            "grade a lab first, or pass the path of its grades.db (default .autograder/grades.db)")
        self = cls.__new__(cls)
        self.path, self._lock = path, threading.RLock()
        try:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                                       check_same_thread=False, isolation_level=None)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise UserError(f"{path}: the results store stayed locked for {timeout:g} s: {exc}",
                                "try again once the grading batch that holds it has finished") from exc
            raise UserError(f"{path}: cannot read the results store: {exc}",
                            "pass the path of an autograder database (grades.db)") from exc
        except sqlite3.Error as exc:
            raise UserError(f"{path}: cannot read the results store: {exc}",
                            "pass the path of an autograder database (grades.db)") from exc
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            self._db.close()
            raise UserError(f"{path} was written by a newer autograder (schema {row[0]})", "upgrade autograder")
        return self

    @property
    def artifacts_root(self) -> Path:
        return self.path.parent / "artifacts"

    def close(self) -> None:
        self._db.close()

    def record(self, result: SubmissionResult, stages: Iterable[StageRecord] = ()) -> None:
        """Write a result and the stage outputs it used, all or nothing. Text that is not valid UTF-8 is
        stored escaped (`storable`); callers that show the result should show `storable(result)`."""
        result = storable(result)
        with self.write():
            for s in stages:
                self._db.execute(
                    "INSERT OR REPLACE INTO stages VALUES (?,?,?,?,?,?,?)",
                    (s.key, s.stage, s.lab, s.submission_hash, json.dumps(s.result), str(s.artifacts),
                     now().isoformat()),
                )
            self._db.execute(
                "INSERT INTO results (lab, student, submission_hash, lab_version, rubric_hash, verdict, result,"
                " graded_at) VALUES (?,?,?,?,?,?,?,?)",
                (result.lab, result.student, result.submission_hash, result.lab_version, result.rubric_hash,
                 result.verdict, result.model_dump_json(), result.graded_at.isoformat()),
            )

    def secret(self, name: str) -> bytes:
        """A random secret of this store (32 bytes), made the first time it is asked for under `name` and kept
        in the meta table: what keys the leaderboard's pseudonyms (publish/leaderboard.py), so they stay the
        same on every publish and no one without the store file can compute a student's."""
        key = f"secret:{name}"
        query = "SELECT value FROM meta WHERE key=?"
        with self._lock:
            row = self._db.execute(query, (key,)).fetchone()
            if row is None:
                try:
                    with self.write():  # INSERT OR IGNORE: two publishers at once keep the first one's
                        self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, secrets.token_hex(32)))
                except sqlite3.OperationalError as exc:  # a read-only store (Store.reader) or file
                    raise UserError(f"{self.path}: cannot keep the {name} secret in the results store: {exc}",
                                    "publish once with a writable store (it makes the secret), then read it "
                                    "again") from exc
                row = self._db.execute(query, (key,)).fetchone()
        return bytes.fromhex(row[0])

    def find(self, lab: str, student: str, submission_hash: str, lab_version: str, rubric_hash: str
             ) -> SubmissionResult | None:
        """The latest graded (not `error`) result for exactly this content, lab version and rubric."""
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM results WHERE lab=? AND student=? AND submission_hash=? AND lab_version=?"
                " AND rubric_hash=? AND verdict != 'error' ORDER BY id DESC LIMIT 1",
                (lab, _text(student), submission_hash, lab_version, rubric_hash),
            ).fetchone()
        return SubmissionResult.model_validate_json(row[0]) if row else None

    def latest(self, lab: str) -> list[SubmissionResult]:
        """The current result of every student of a lab, by student."""
        with self._lock:
            rows = self._db.execute(
                "SELECT result FROM results WHERE id IN (SELECT MAX(id) FROM results WHERE lab=? GROUP BY student)"
                " ORDER BY student",
                (lab,),
            ).fetchall()
        return [SubmissionResult.model_validate_json(r[0]) for r in rows]

    def labs(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT lab FROM results ORDER BY lab")]

    def history(self, lab: str | None = None, student: str | None = None) -> list[SubmissionResult]:
        """Every recorded result (each grading, regrade and decision), oldest first: of one lab, one student, or
        all of them. The last one per lab and student is that student's current result."""
        where = [(col, value) for col, value in (("lab", lab), ("student", student)) if value is not None]
        sql = "SELECT result FROM results" + (" WHERE " + " AND ".join(f"{c}=?" for c, _ in where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", [_text(v) for _, v in where]).fetchall()
        return [SubmissionResult.model_validate_json(r[0]) for r in rows]

    def artifacts(self, result: SubmissionResult) -> dict[str, Path]:
        """stage -> the folder of what that stage left (executed.ipynb, exports/, outputs/<probe>.npz) for a
        result, where it is still on disk; empty for results recorded before results named their stages."""
        found = {}
        for stage, key in result.stages.items():
            record = self.stage(key)
            if record is not None:
                found[stage] = record.artifacts
        return found

    def stage(self, key: str) -> StageRecord | None:
        """A recorded stage output whose artifacts are still on disk."""
        with self._lock:
            row = self._db.execute(
                "SELECT key, stage, lab, submission_hash, result, artifacts FROM stages WHERE key=?", (key,)
            ).fetchone()
        if row is None or not Path(row[5]).is_dir():
            return None
        return StageRecord(key=row[0], stage=row[1], lab=row[2], submission_hash=row[3],
                           result=json.loads(row[4]), artifacts=Path(row[5]))

    def add_override(self, lab: str, student: str, criterion: str, submission_hash: str,
                     decision: Override | None, withdraws: int | None = None, by: str = "") -> None:
        """Record a TA's decision on one criterion of one submission; None withdraws the last one. An undo
        names the row it takes back (`withdraws`) and carries the decision that stands again (or None)."""
        payload = decision.model_dump_json() if decision is not None else "null"
        with self._lock:
            self._db.execute(
                "INSERT INTO overrides (lab, student, criterion, submission_hash, decision, at, withdraws,"
                " recorded_by) VALUES (?,?,?,?,?,?,?,?)",
                (lab, _text(student), criterion, submission_hash, payload, now().isoformat(), withdraws,
                 by or (decision.by if decision is not None else "")),
            )

    def override_rows(self, lab: str, student: str, criterion: str | None = None) -> list[OverrideRow]:
        """Every override row of a student in a lab (one criterion's, with `criterion`), oldest first."""
        query = "SELECT id, criterion, submission_hash, decision, at, withdraws, recorded_by FROM overrides" \
                " WHERE lab=? AND student=?" + (" AND criterion=?" if criterion is not None else "") + " ORDER BY id"
        params = (lab, _text(student)) + ((criterion,) if criterion is not None else ())
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [OverrideRow(id=r[0], criterion=r[1], submission_hash=r[2],
                            decision=None if r[3] == "null" else Override.model_validate_json(r[3]), at=r[4],
                            withdraws=r[5], by=r[6]) for r in rows]

    def overrides(self, lab: str, student: str) -> dict[str, tuple[str, Override]]:
        """criterion -> (submission hash, decision): the latest standing decision per criterion."""
        with self._lock:
            rows = self._db.execute(
                "SELECT criterion, submission_hash, decision FROM overrides WHERE lab=? AND student=? ORDER BY id",
                (lab, _text(student)),
            ).fetchall()
        current: dict[str, tuple[str, Override]] = {}
        for criterion, sha, payload in rows:
            if payload == "null":
                current.pop(criterion, None)
            else:
                current[criterion] = (sha, Override.model_validate_json(payload))
        return current

    def latest_of(self, lab: str, student: str) -> SubmissionResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT result FROM results WHERE lab=? AND student=? ORDER BY id DESC LIMIT 1", (lab, _text(student))
            ).fetchone()
        return SubmissionResult.model_validate_json(row[0]) if row else None

    def add_handin(self, handin: HandIn) -> None:
        """Keep a hand-in; the same content at the same time (a batch run again) is kept once."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO handins (lab, student, submission_hash, handed_in, late, originals, source,"
                " seen_at) VALUES (?,?,?,?,?,?,?,?)",
                (handin.lab, _text(handin.student), handin.submission_hash,
                 handin.handed_in.astimezone(UTC).isoformat() if handin.handed_in else "",
                 handin.late.model_dump_json() if handin.late else "null",
                 json.dumps([readable(n) for n in handin.originals]), handin.source, handin.seen_at.isoformat()),
            )

    def handins(self, lab: str, student: str | None = None) -> list[HandIn]:
        """A lab's hand-ins (one student's, with `student`), oldest first; unknown times first of all."""
        query = "SELECT lab, student, submission_hash, handed_in, late, originals, source, seen_at FROM handins" \
                " WHERE lab=?" + (" AND student=?" if student is not None else "") + " ORDER BY handed_in, id"
        params = (lab,) if student is None else (lab, _text(student))
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [HandIn(lab=r[0], student=r[1], submission_hash=r[2], handed_in=r[3] or None,
                       late=None if r[4] == "null" else Lateness.model_validate_json(r[4]),
                       originals=json.loads(r[5]), source=r[6], seen_at=r[7]) for r in rows]

    def embeddings(self, model: str, keys: Sequence[str]) -> dict[str, tuple[Any, Any]]:
        """key -> (dimensions, vector bytes) of the texts' vectors kept for this model, as stored: the caller
        checks them (a row of the wrong size is a miss). Empty on a store without the table (read-only, old)."""
        found: dict[str, tuple[Any, Any]] = {}
        keys = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start:start + _LOOKUP_CHUNK]
                try:
                    rows = self._db.execute(
                        "SELECT text_sha256, dim, vector FROM embeddings WHERE model=? AND text_sha256 IN"
                        f" ({','.join('?' * len(chunk))})", (model, *chunk)).fetchall()
                except sqlite3.OperationalError:  # no such table (a reader on an older store)
                    return {}
                found.update({key: (dim, vector) for key, dim, vector in rows})
        return found

    def add_embeddings(self, model: str, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Keep vectors (key, dimensions, float32 bytes) for this model in one transaction, replacing a row
        under the same key (one found corrupt and recomputed)."""
        at = now().isoformat()
        values = [(model, key, dim, sqlite3.Binary(vector), at) for key, dim, vector in rows]
        if not values:
            return
        with self.write():
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?,?,?)", values)
