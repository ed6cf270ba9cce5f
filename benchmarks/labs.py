"""What each lab's reference solution costs and scores: the run a student's laptop and the grader make.

For every lab, the reference submission (the released notebook answered with the solution, and the
reference modules) is graded on the local backend, `--repeat` times from scratch, and checked once
with the students' self-check. Reports the notebook's run time, the whole grading time, the hidden
metric against its bar and the self-check's time, as medians. The course asks that each reference
reaches its bar in at most 2 minutes on 2 CPU cores; the labs run on one thread (`cpus: 1`).
Appends to docs/benchmarks.md. Not a test: run on demand (`make bench`).

    python benchmarks/labs.py [--repeat 3] [--labs lab2-cnn ...] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from autograder.grading.intake import take_folder
from autograder.grading.pipeline import Grader, Options
from autograder.grading.selfcheck import check
from autograder.labs.assign import write_reference_submission
from autograder.labs.lab import load_lab
from autograder.sandbox import get_backend
from autograder.store import Store

REPO = Path(__file__).resolve().parents[1]
LABS = ["lab1-mlp", "lab2-cnn", "lab3-autoencoder"]
HEADLINE = {"accuracy", "metric"}  # the first criterion of these kinds is the lab's headline metric


def grade_once(name: str, tmp: Path) -> tuple[float, float, float, float]:
    """(notebook run s, whole grading s, headline value, its bar) of one fresh grading."""
    lab = load_lab(name, REPO)
    folder = write_reference_submission(lab, tmp / "reference")
    store = Store(tmp / "grades.db")
    try:
        t = time.perf_counter()
        result, _ = Grader(lab, store, get_backend("local"), Options(force=True, scratch=tmp)).grade(
            take_folder("reference", folder, lab.spec.files.student))
        total = time.perf_counter() - t
    finally:
        store.close()
    headline = next(c for c in result.criteria if c.kind in HEADLINE)
    assert result.execution is not None and result.execution.status == "ok", result.execution
    return result.execution.duration_s, total, float(headline.value), float(headline.threshold)


def self_check_once(name: str, tmp: Path) -> float:
    lab = load_lab(name, REPO)
    folder = write_reference_submission(lab, tmp / "reference")
    t = time.perf_counter()
    checked = check(load_lab(name, REPO, public_only=True), folder / lab.spec.notebook, Options(scratch=tmp))
    assert checked.passed, [c.message for c in checked.problems]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--labs", nargs="+", default=LABS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in args.labs:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-labs-") as tmp:
                runs.append(grade_once(name, Path(tmp)))
        with tempfile.TemporaryDirectory(prefix="bench-labs-") as tmp:
            checked = self_check_once(name, Path(tmp))
        run_s, total_s, value, bar = (statistics.median(x) for x in zip(*runs, strict=True))
        rows.append(f"| {name} | {run_s:.1f} s | {total_s:.1f} s | {value:.4g} (bar {bar:g}) | {checked:.1f} s |")
        print(rows[-1], flush=True)
    lines = [f"## The labs' reference solutions, {date.today().isoformat()}", "",
             f"`benchmarks/labs.py --repeat {args.repeat}`: each reference submission graded from scratch on "
             f"the local backend, {platform.machine()}, {os.cpu_count()} CPUs (the labs train on one thread), "
             f"Python {platform.python_version()}. Medians of {args.repeat} gradings; the self-check once.", "",
             "| lab | notebook run | whole grading | hidden metric | self-check |", "|---|---|---|---|---|",
             *rows, ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
