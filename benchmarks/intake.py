"""Intake of a synthetic 300-student Canvas download of lab2-cnn, before any notebook runs.

Builds a Canvas "Download submissions" zip as Canvas names it (`<lastfirst>[_LATE]_<userid>_
<submissionid>_<original>[-N].<ext>`): each student hands in the notebook and cnn.py of one of the
sample cohort's works (examples/submissions/lab2-cnn), a third of them twice (`-1`), a few late,
and a roster of the 300. Times `lms.read_download` (recognise, group, map to the roster, read and
hash every notebook and module, validate the notebooks, date and mark late) over 3 runs and
appends the median to docs/benchmarks.md. Target: under 5 s. Not a test: run on demand.

    python benchmarks/intake.py [-n 300] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

from make_lms_downloads import work_files  # noqa: E402

from autograder.grading.intake import IntakeSpec  # noqa: E402
from autograder.grading.lms import read_download  # noqa: E402
from autograder.labs.course import CourseSpec, load_roster  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402

WORKS = ["good", "underfit", "overfit", "crash", "wrong_conv", "off_topic", "zipped"]


def build(folder: Path, n: int) -> tuple[Path, Path]:
    files = {w: work_files(w) for w in WORKS}
    download, roster = folder / "submissions.zip", folder / "roster.csv"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as z, roster.open("w", newline="") as r:
        w = csv.writer(r)
        w.writerow(["student", "name", "canvas_id"])
        for i in range(n):
            user, name = 500000 + i, f"student{i:03d}"
            w.writerow([f"s{i:03d}", f"Student{i:03d}, Test", user])
            prefix = f"{name}test{'_LATE' if i % 25 == 0 else ''}_{user}_{900000000 + i}"
            work = files[WORKS[i % len(WORKS)]]
            again = i % 3 == 0
            when = (2026, 2, 13, 12 + i % 8, i % 60, 0)
            for original, data in (("lab2-cnn.ipynb", work["lab2-cnn.ipynb"]), ("cnn.py", work["cnn.py"])):
                if again:  # handed in twice: the first copy stays, Canvas names the second `-1`
                    z.writestr(zipfile.ZipInfo(f"{prefix}_{original}", when), data)
                    stem, _, suffix = original.rpartition(".")
                    original = f"{stem}-1.{suffix}"
                z.writestr(zipfile.ZipInfo(f"{prefix}_{original}", when), data)
    return download, roster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="students in the download (default 300)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    lab = load_lab("lab2-cnn", REPO)
    course = CourseSpec.model_validate({"course": "DT9000", "module": "LAB1",
                                        "labs": [{"lab": "lab2-cnn", "deadline": "2026-02-13 17:00"}]})
    with tempfile.TemporaryDirectory() as tmp:
        download, roster_path = build(Path(tmp), args.n)
        size = download.stat().st_size
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            intake = read_download(download, IntakeSpec.of(lab.spec), None, course, load_roster(roster_path))
            runs.append(time.perf_counter() - t)
            assert len(intake.submissions) == args.n and len(intake.report.mapped) == args.n
            assert not any(s.problem for s in intake.submissions)
    median = statistics.median(runs)
    line = (f"| {args.n} students, {2 * args.n + 2 * ((args.n + 2) // 3)} files, {size / 1024**2:.1f} MB zip | "
            f"{median:.2f} s | {', '.join(f'{r:.2f}' for r in runs)} |")
    print(line)
    if args.no_write:
        return
    section = (
        f"\n## Intake of an LMS download, {date.today():%Y-%m-%d}\n\n"
        "`python benchmarks/intake.py`: a synthetic Canvas download of lab2-cnn (the sample cohort's works\n"
        "as loose files, a third handed in twice, a few `_LATE`) read by `lms.read_download` with a roster\n"
        f"of the same {args.n} students: recognised, grouped, mapped to the roster, every notebook and module\n"
        "read in place, hashed and validated, dated and marked late. Target: under 5 s, before any notebook\n"
        f"runs. Python {platform.python_version()}, {platform.machine()}.\n\n"
        "| download | median of 3 | runs |\n|---|---|---|\n" + line + "\n")
    with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
