"""Attack 6: one hand-in's name stops the whole batch.

File names that are not UTF-8 (old LMS downloads, zip tools), zip member names in any encoding,
names with control characters or a right-to-left override: each student gets a readable id and a
verdict with a reason, and no failure of one submission (looking it up, recording it) ends the batch.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import sqlite3
import unicodedata
import zipfile
from pathlib import Path

import nbformat
import pytest
from make_course import SOLUTION, notebook

from autograder.cli import main
from autograder.grading.intake import Submission, discover, student_id
from autograder.grading.pipeline import Grader, Options
from autograder.labs.lab import load_lab
from autograder.sandbox import get_backend

NOTEBOOK = nbformat.writes(notebook(SOLUTION)).encode()
UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def safe(text: str) -> bool:
    """Valid UTF-8 text without control or format characters."""
    text.encode("utf-8")  # raises on lone surrogates
    return not any(unicodedata.category(ch) in UNSAFE for ch in text)


def name(folder: Path, raw: bytes) -> Path:
    """The path of a file whose name is these raw bytes, as Python holds it (surrogateescape)."""
    return folder / os.fsdecode(raw)


def raw_zip(path: Path, members: dict[bytes, bytes], utf8_flag: bool = False) -> Path:
    """A zip whose member names are exactly these bytes (written with ASCII stand-ins of the same length,
    then the stand-ins replaced in the local headers and the central directory)."""
    buf = io.BytesIO()
    stand_ins = {}
    with zipfile.ZipFile(buf, "w") as z:
        for i, (raw, data) in enumerate(members.items()):
            # zipfile flags a name as UTF-8 exactly when it is not ASCII: é is two bytes of UTF-8
            stand_in = ("é" + "@" * (len(raw) - 3) if utf8_flag else "@" * (len(raw) - 1)) + chr(ord("A") + i)
            stand_ins[stand_in.encode()] = raw
            z.writestr(stand_in, data)
    blob = buf.getvalue()
    for stand_in, raw in stand_ins.items():
        assert blob.count(stand_in) == 2
        blob = blob.replace(stand_in, raw)
    path.write_bytes(blob)
    return path


def unescape(sid: str) -> str:
    """Read a student id back into the raw name (as Python holds it): the escapes are unambiguous."""
    def one(m: re.Match) -> str:
        s = m.group(0)
        if s == "\\\\":
            return "\\"
        if s[1] == "x":
            return chr(0xDC00 + int(s[2:], 16))
        return chr(int(s[2:], 16))
    return re.sub(r"\\\\|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}", one, sid)


def test_student_ids_are_readable_safe_and_tell_names_apart():
    for ordinary in ["ada", "åsa", "li.wei-2", "Anna Berg", "王芳", "o'brien", "Zoë_ü", "a+b=c"]:
        assert student_id(ordinary) == ordinary  # results already on record keep their ids
    shown = {
        b"caf\xe9": "caf\\xe9",  # latin-1 bytes from an old LMS download
        b"caf\xc3\xa9": "café",  # the same name in UTF-8
        b"ma\xf1ana\xff": "ma\\xf1ana\\xff",
        b"eve\xe2\x80\xaegnp.exe": "eve\\u202egnp.exe",  # a right-to-left override
        b"a\x1b[2Jb\x07": "a\\u001b[2Jb\\u0007",
        b"x\x7fy\xc2\x85z": "x\\u007fy\\u0085z",  # DEL and a C1 control
        b"zw\xe2\x80\x8bsp\xef\xbb\xbf": "zw\\u200bsp\\ufeff",
        b"tag\xf3\xa0\x80\x81": "tag\\U000e0001",
        b"new\nline": "new\\u000aline",
        b"back\\slash": "back\\\\slash",
    }
    for raw, expected in shown.items():
        assert student_id(raw) == expected
        assert student_id(os.fsdecode(raw)) == expected  # str as Python holds a file name, or bytes
        assert safe(expected)
    # Different names, different ids: the byte 0x9f, the character U+009F, the text '\x9f'; é as latin-1,
    # UTF-8, another byte, or spelled out; a backslash and its escape.
    tricky = [b"\x9f", b"\xc2\x9f", b"\\x9f", b"\\u009f", b"caf\xe9", b"caf\xe8", b"caf\xc3\xa9", b"caf\\xe9",
              b"caf\\\\xe9", b"a\\b", b"a\\\\b", b"a\\u005cb"]
    ids = [student_id(r) for r in tricky]
    assert len(set(ids)) == len(tricky)
    assert all(safe(i) for i in ids)
    # Any file name at all: a safe id that reads back into the name, so no two names share one.
    rng = random.Random(6)
    alphabet = [bytes([b]) for b in range(1, 256) if b != ord("/")] + ["\u202e".encode(), "å".encode(), b"\\x"]
    for _ in range(2000):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        sid = student_id(raw)
        assert safe(sid) and unescape(sid) == os.fsdecode(raw)
        assert student_id(raw) == sid  # stable


def test_hostile_names_on_disk_are_named_safely_at_intake(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    name(subs, b"caf\xe9.ipynb").write_bytes(NOTEBOOK)
    raw_zip(name(subs, b"zed\xff.zip"), {b"lab\xe9\x1b.ipynb": NOTEBOOK})  # cp437 member with odd bytes
    raw_zip(subs / "two.zip", {b"a\x1b[2J.ipynb": NOTEBOOK, b"b\xe2\x80\xae.ipynb": NOTEBOOK})
    raw_zip(subs / "flagged.zip", {b"lab\xe9\xe9.ipynb": NOTEBOOK}, utf8_flag=True)  # says UTF-8, is not
    dora = subs / "dora"
    dora.mkdir()
    name(dora, b"lab\xe9.ipynb").write_bytes(NOTEBOOK)
    name(dora, b"old\xe9.ipynb").write_bytes(NOTEBOOK)
    name(subs, b"empty\xe9").mkdir()
    name(subs, b"link\xe9.ipynb").symlink_to(subs / "two.zip")
    found = {s.student: s for s in discover(subs)}
    assert set(found) == {"caf\\xe9", "zed\\xff", "two", "flagged", "dora", "empty\\xe9", "link\\xe9"}
    for sub in found.values():
        assert safe(sub.student) and (sub.problem is None or safe(sub.problem))
    assert found["caf\\xe9"].problem is None and found["zed\\xff"].problem is None
    assert found["zed\\xff"].notebook_bytes() == NOTEBOOK  # the member is found by the name it carries
    assert "holds 2 notebooks (a\\u001b[2J.ipynb" in found["two"].problem
    assert "marked as UTF-8 but is not" in found["flagged"].problem
    assert "holds 2 notebooks (lab\\xe9.ipynb, old\\xe9.ipynb)" in found["dora"].problem
    assert "holds no notebook" in found["empty\\xe9"].problem
    assert "a symbolic link" in found["link\\xe9"].problem


def test_a_notebook_holding_half_a_character_gets_a_reason(tmp_path):
    path = tmp_path / "lone.ipynb"
    path.write_bytes(NOTEBOOK.replace(b"def predict", b"# \\udce9\\ud800\\ndef predict"))
    [sub] = discover(path)
    assert "not valid Unicode (U+DCE9" in sub.problem


def _grader(course: Path, store, tmp_path: Path) -> Grader:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return Grader(load_lab("toy", course), store, get_backend("local"), Options(jobs=2, scratch=scratch))


def _broken(tmp_path: Path, student: str, problem: str = "the file is not a Jupyter notebook") -> Submission:
    """A submission that intake already refused: judged at once, no sandbox."""
    digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()
    path = tmp_path / f"{digest[:12]}.ipynb"
    path.write_bytes(b"{}")
    return Submission(student=student, path=path, sha256=digest, size=2, problem=problem)


def test_what_the_store_refuses_of_one_submission_is_that_submissions_verdict(course, store, tmp_path, monkeypatch):
    grader = _grader(course, store, tmp_path)
    record, find = store.record, store.find

    def flaky_record(result, stages=()):
        if result.student == "bo" and result.verdict != "error":
            raise sqlite3.OperationalError("disk I/O error")
        return record(result, stages)

    def flaky_find(lab, student, *rest):
        if student == "cy":
            raise sqlite3.OperationalError("database disk image is malformed")
        return find(lab, student, *rest)

    monkeypatch.setattr(store, "record", flaky_record)
    monkeypatch.setattr(store, "find", flaky_find)
    subs = [_broken(tmp_path, s) for s in ("ana", "bo", "cy")]
    # A caller that skipped intake: a raw non-UTF-8 name, and a reason quoting one.
    subs.append(_broken(tmp_path, "caf\udce9", "a file named caf\udce9.py is not a notebook"))
    results = {r.student: r for r in grader.grade_all(subs)}
    assert set(results) == {"ana", "bo", "cy", "caf\\xe9"}
    assert results["ana"].verdict == "U" and results["caf\\xe9"].verdict == "U"
    assert "caf\\xe9.py is not a notebook" in results["caf\\xe9"].criteria[0].message
    for student, why in [("bo", "OperationalError: disk I/O error"), ("cy", "database disk image is malformed")]:
        assert results[student].verdict == "error"
        assert why in results[student].criteria[0].message
    assert {r.student: r.verdict for r in store.latest("toy")} == {"ana": "U", "bo": "error", "cy": "error",
                                                                   "caf\\xe9": "U"}
    # Looked up by the raw name, it is found under the id intake gives it.
    assert store.latest_of("toy", "caf\udce9").student == "caf\\xe9"


@pytest.mark.slow
def test_a_batch_of_hostile_names_gives_every_student_a_verdict(grade, store, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ana.ipynb").write_bytes(NOTEBOOK)
    good = {  # one notebook, so one run: each of these must get ana's verdict
        "caf\\xe9": name(subs, b"caf\xe9.ipynb"),
        "caf\\xe8": name(subs, b"caf\xe8.ipynb"),  # differs from the one above only in an undecodable byte
        "caf\\\\xe9": subs / "caf\\xe9.ipynb",  # and this one spells the first one's id out
        "eve\\u202egnp": subs / "eve\u202egnp.ipynb",
        "ctl\\u001b[2J\\u0007\\u000a": subs / "ctl\x1b[2J\x07\n.ipynb",
    }
    for path in good.values():
        path.write_bytes(NOTEBOOK)
    raw_zip(name(subs, b"zed\xff.zip"), {b"lab\xe9\x1b.ipynb": NOTEBOOK})
    dora = subs / "dora"
    dora.mkdir()
    name(dora, b"lab\xe9.ipynb").write_bytes(NOTEBOOK)
    name(dora, b"old\xe9.ipynb").write_bytes(NOTEBOOK)
    name(subs, b"link\xe9.ipynb").symlink_to(subs / "ana.ipynb")
    results = grade(subs)
    expected = {"ana", *good, "zed\\xff", "dora", "link\\xe9"}
    assert set(results) == expected
    assert {r.student for r in store.latest("toy")} == expected
    for student in [*good, "zed\\xff"]:
        assert results[student].verdict == results["ana"].verdict, student
    for student in ["dora", "link\\xe9"]:
        assert results[student].verdict == "U" and "can't be graded" in results[student].criteria[0].message
    for r in store.latest("toy"):
        assert safe(r.student) and r.verdict in {"G", "U", "review", "error"}
        assert r.verdict == "G" or any(c.message for c in r.failed())  # a reason


@pytest.mark.slow
def test_grade_on_the_command_line_survives_a_file_name_that_is_not_utf8(course, tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ana.ipynb").write_bytes(NOTEBOOK)
    name(subs, b"caf\xe9.ipynb").write_bytes(NOTEBOOK)
    db = tmp_path / "g.db"
    code = main(["grade", "toy", str(subs), "--root", str(course), "--db", str(db)])
    out = capsys.readouterr().out
    assert code in (0, 1)  # 3 is an internal error: the batch stopped
    assert "caf\\xe9" in out and "2 submissions" in out
    from autograder.store import Store

    s = Store(db)
    try:
        assert {r.student for r in s.latest("toy")} == {"ana", "caf\\xe9"}
    finally:
        s.close()


def test_a_zip_member_packed_with_lzma_is_refused_before_it_is_unpacked(tmp_path):
    """lzma (and bzip2) members decompress a whole block per read, whatever size is asked for: a
    38 KB member took 565 MiB. Only stored and deflated members are read; the student gets a reason."""
    from autograder.grading.intake import take_zip

    path = tmp_path / "ana.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_LZMA) as z:
        z.writestr("lab.ipynb", b" " * (64 * 1024**2))
    sub = take_zip("ana", path)
    assert sub.problem and "packed with a method" in sub.problem


def test_a_zip_whose_table_of_contents_is_huge_is_refused_before_it_is_parsed(tmp_path):
    """ZipFile parses its whole central directory into objects before anything can count them (a 10 MB
    directory took 81 MiB); its size is read from the end record first."""
    from autograder.grading.intake import MAX_ZIP_DIRECTORY_BYTES, take_zip

    path = tmp_path / "ana.zip"
    name_length = 200
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(MAX_ZIP_DIRECTORY_BYTES // (46 + name_length) + 10):
            z.writestr(f"{i:0{name_length}d}", b"")
    sub = take_zip("ana", path)
    assert sub.problem and "table of contents" in sub.problem
