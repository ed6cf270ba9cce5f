"""Build a Canvas and a Moodle download of lab2-cnn, as the LMSs name them, from the sample cohort.

23 students hand in the works of `examples/submissions/lab2-cnn` (made by make_cohort_lab2.py) as
separate files, the notebook and cnn.py, under the names students give them: `Lab2_final.ipynb`,
`my_cnn.py`, `CNN.py`, a browser's `lab2-cnn (1).ipynb`. In the Canvas zip some hand in again
(Canvas names the later file `lab2-cnn-1.ipynb`, `cnn-2.py`), one is late (`_LATE`), Canvas's
own "Test Student" is not on the roster, and one roster student's Canvas id is missing from the
roster (matched by name). In the Moodle zip each student has a folder, some with their files in a
subfolder and an online text beside them. `examples/lms/roster.csv` is the roster (Freja Lund
never hands in), and `moodle-times.csv` is Moodle's grading worksheet with the hand-in times.

`STUDENTS` says whose work each student hands in; tests/test_lms.py reads it to know the verdict
each should get. Deterministic: same bytes on every run. Run: `python examples/make_lms_downloads.py`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT / "examples" / "submissions" / "lab2-cnn"
OUT_DIR = ROOT / "examples" / "lms"
DEADLINE = "2026-02-13 17:00"  # Europe/Stockholm, as the tests' course.yaml sets it


@dataclass(frozen=True)
class Student:
    student: str  # the roster's id
    name: str  # 'Last, First' as the roster has it
    canvas_id: int
    moodle_id: int
    work: str  # whose work in the sample cohort this student hands in
    when: str = "2026-02-12 14:03"  # local time of the hand-in
    notebook: str = "lab2-cnn.ipynb"  # the names the student gives the files
    module: str | None = "cnn.py"  # None: hands in the notebook alone
    earlier: str | None = None  # whose work the student handed in first (Canvas: the file again, `-1`)
    late: bool = False  # Canvas marks it _LATE
    canvas_on_roster: bool = True  # False: the roster lacks this student's Canvas id
    on_roster: bool = True
    subfolder: str = ""  # Moodle: the student's files are in this folder
    online_text: bool = False  # Moodle: an online text beside the files


STUDENTS = [
    Student("astlin", "Lindqvist, Astrid", 340901, 5101, "good", earlier="underfit", when="2026-02-13 16:41"),
    Student("piokow", "Kowalski, Piotr", 340902, 5102, "zipped", notebook="Lab2_final.ipynb", module="my_cnn.py"),
    Student("johber", "Berg, Johan", 340903, 5103, "underfit", when="2026-02-14 09:12", late=True),
    Student("elinys", "Nyström, Elin", 340904, 5104, "overfit", subfolder="lab2"),
    Student("chioka", "Okafor, Chidi", 340905, 5105, "crash", online_text=True),
    Student("saraan", "Andersson, Sara", 340906, 5106, "wrong_conv", module="CNN.py"),
    Student("yuitan", "Tanaka, Yui", 340907, 5107, "missing_module", module=None),
    Student("karsve", "Svensson, Karl", 340908, 5108, "off_topic"),
    Student("aseode", "Ødegård, Åse", 340909, 5109, "crash", subfolder="Lab 2"),
    Student("jurmul", "Müller, Jürgen", 340910, 5110, "overfit", notebook="lab2-cnn-jurgen.ipynb"),
    Student("zeycel", "Çelik, Zeynep", 340911, 5111, "wrong_conv"),
    Student("lanngu", "Nguyễn, Thị Lan", 340912, 5112, "off_topic", online_text=True),
    Student("omaham", "Hamid, Omar", 340913, 5113, "underfit", when="2026-02-15 11:30"),  # has an extension
    Student("sofhol", "Holm, Sofia", 340914, 5114, "crash", notebook="lab2-cnn (1).ipynb"),
    Student("mateek", "Ek, Mattias", 340915, 5115, "overfit", module="lab2_cnn.py"),
    Student("idaber", "Bergström, Ida", 340916, 5116, "wrong_conv"),
    Student("leihad", "Haddad, Leila", 340917, 5117, "good", module=None),  # forgot cnn.py
    Student("ainvir", "Virtanen, Aino", 340918, 5118, "zipped", module=None),
    Student("darrah", "Rahimi, Darius", 340919, 5119, "overfit", module=None),
    Student("majek", "Ek, Maja", 340920, 5120, "underfit", module=None),
    Student("oskhol", "Holm, Oskar", 340921, 5121, "crash", canvas_on_roster=False),
    Student("fatdia", "Diallo, Fatou", 340922, 5122, "underfit", earlier="wrong_conv"),
    Student("teststudent", "Student, Test", 340999, 5199, "crash", module=None, on_roster=False),
]
ABSENT = Student("frelun", "Lund, Freja", 340923, 5123, "good")  # on the roster, never hands in


def expected_verdict_source(s: Student) -> str:
    """The cohort student whose verdict this one gets: a notebook without cnn.py is `missing_module`'s."""
    return "missing_module" if s.module is None else s.work


def work_files(work: str) -> dict[str, bytes]:
    """A cohort student's notebook and module (from their folder, or from inside their zip)."""
    folder = COHORT / work
    if folder.is_dir():
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    with zipfile.ZipFile(COHORT / f"{work}.zip") as z:
        return {Path(n).name: z.read(n) for n in z.namelist()}


def first_last(s: Student) -> str:
    last, _, first = s.name.partition(",")
    return f"{first.strip()} {last.strip()}"


def lastfirst(s: Student) -> str:
    """Canvas's name part: the sortable name in lowercase, letters only."""
    return "".join(ch for ch in s.name.lower() if ch.isalnum())


def _moment(text: str) -> tuple[int, int, int, int, int, int]:
    t = datetime.strptime(text, "%Y-%m-%d %H:%M")
    return (t.year, t.month, t.day, t.hour, t.minute, 0)


def _add(z: zipfile.ZipFile, name: str, data: bytes, when: str) -> None:
    info = zipfile.ZipInfo(name, date_time=_moment(when))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix, whatever the machine that builds it
    z.writestr(info, data)


def _handed_in(s: Student) -> list[tuple[str, bytes]]:
    """(the name the student gave, bytes) of the files of the student's last hand-in."""
    files = work_files(s.work)
    out = [(s.notebook, files["lab2-cnn.ipynb"])]
    if s.module is not None:
        out.append((s.module, files["cnn.py"]))
    return out


def canvas_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i, s in enumerate(STUDENTS):
            prefix = f"{lastfirst(s)}{'_LATE' if s.late else ''}_{s.canvas_id}_{208490100 + i}"
            names = []
            if s.earlier is not None:  # the first hand-in keeps the name; Canvas renames the later copies
                old = work_files(s.earlier)
                earlier = [(s.notebook, old["lab2-cnn.ipynb"])] + ([(s.module, old["cnn.py"])] if s.module else [])
                for original, data in earlier:
                    names.append((original, data))
            for original, data in _handed_in(s):
                if s.earlier is not None:
                    stem, _, suffix = original.rpartition(".")
                    again = 2 if s.student == "fatdia" and suffix == "py" else 1
                    if again == 2:  # cnn.py handed in three times: cnn.py, cnn-1.py, cnn-2.py
                        names.append((f"{stem}-1.{suffix}", work_files(s.earlier)["cnn.py"]))
                    original = f"{stem}-{again}.{suffix}"
                names.append((original, data))
            for original, data in names:
                _add(z, f"{prefix}_{original}", data, s.when)
    return buffer.getvalue()


def moodle_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for s in STUDENTS:
            folder = f"{first_last(s)}_{s.moodle_id}_assignsubmission_file_"
            for original, data in _handed_in(s):
                path = f"{s.subfolder}/{original}" if s.subfolder else original
                _add(z, f"{folder}/{path}", data, s.when)
            if s.online_text:
                text = f"<p>My notebook and cnn.py are attached. /{first_last(s)}</p>".encode()
                _add(z, f"{first_last(s)}_{s.moodle_id}_assignsubmission_onlinetext_/onlinetext.html", text, s.when)
    return buffer.getvalue()


def roster_csv() -> str:
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    w.writerow(["student", "name", "canvas_id", "moodle_id", "email", "sis_user_id", "section", "ladok_id"])
    for i, s in enumerate([*STUDENTS, ABSENT]):
        if s.on_roster:
            w.writerow([s.student, s.name, s.canvas_id if s.canvas_on_roster else "", s.moodle_id,
                        f"{s.student}@student.example.edu", f"S{91000 + i}", "A" if i % 2 else "B",
                        f"9b2d0000-0000-4000-8000-{i + 1:012d}"])
    return buffer.getvalue()


def moodle_times_csv() -> str:
    """Moodle's grading worksheet: an Identifier ('Participant 5101') and the last change to the hand-in."""
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    w.writerow(["Identifier", "Full name", "Email address", "Status", "Last modified (submission)"])
    for s in STUDENTS:
        t = datetime.strptime(s.when, "%Y-%m-%d %H:%M")
        w.writerow([f"Participant {s.moodle_id}", first_last(s), f"{s.student}@student.example.edu",
                    "Submitted for grading", t.strftime("%A, %d %B %Y, %I:%M %p")])
    return buffer.getvalue()


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "lab2-cnn-canvas.zip").write_bytes(canvas_zip())
    (OUT_DIR / "lab2-cnn-moodle.zip").write_bytes(moodle_zip())
    (OUT_DIR / "roster.csv").write_text(roster_csv(), encoding="utf-8")
    (OUT_DIR / "moodle-times.csv").write_text(moodle_times_csv(), encoding="utf-8")
    print(f"wrote {OUT_DIR.relative_to(ROOT)}: a Canvas and a Moodle download of {len(STUDENTS)} students")


if __name__ == "__main__":
    main()
