"""The harness's own time per submission, net of the notebook's work, on the local backend.

Grades N distinct copies of a trivial notebook (the toy course of the tests: NumPy only), one at
a time, with warm sandboxes (sandbox.warm) and cold ones, alternating submission by submission, and
splits each submission's wall time into the stages the harness records, minus the time the
notebook's own cells took (papermill's per-cell durations). Appends the medians to
docs/benchmarks.md. Not a test: run on demand (`make bench`).

    python benchmarks/overhead.py [-n 10] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from make_course import SOLUTION, notebook  # noqa: E402

from autograder.grading.intake import discover  # noqa: E402
from autograder.grading.pipeline import Grader, Options  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.notebooks import load_notebook  # noqa: E402
from autograder.sandbox import BackendSettings, get_backend  # noqa: E402
from autograder.store import Store  # noqa: E402


def cell_seconds(nb) -> float:
    return sum((c.metadata.get("papermill", {}).get("duration") or 0.0) for c in nb.cells)


# What the in-sandbox runner does before importing papermill (see runner._skip_slow_optional_imports).
RUNNER_PRELUDE = "import sys; sys.modules['rfc3987_syntax'] = None; "


def python_seconds(code: str) -> float:
    """Median wall time of `python -I -c CODE` over 5 runs (interpreter start included)."""
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", code], check=True)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="submissions to grade (default 10)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    modes = ("warm", "cold")
    with tempfile.TemporaryDirectory(prefix="autograder-bench-") as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        shutil.copytree(REPO / "tests" / "fixtures" / "course", course)
        subs = tmp / "subs"
        subs.mkdir()
        for i in range(args.n + 1):  # distinct content, so no stage is reused from the store
            for mode in modes:
                nbformat.write(notebook(f"# {mode} copy {i}\n{SOLUTION}"), subs / f"s{i:03d}-{mode}.ipynb")
        store = Store(tmp / "grades.db")
        lab = load_lab("toy", course)
        backends = {mode: get_backend("local", BackendSettings(warm=mode == "warm")) for mode in modes}
        graders = {mode: Grader(lab, store, backends[mode], Options(jobs=1, scratch=tmp)) for mode in modes}
        rows: dict[str, list[dict]] = {mode: [] for mode in modes}
        for k, sub in enumerate(discover(subs)):
            mode = sub.student.rsplit("-", 1)[1]
            t = time.perf_counter()
            result, _ = graders[mode].grade(sub)
            wall = time.perf_counter() - t
            assert result.verdict == "G", result
            if k < len(modes):
                continue  # one unmeasured submission each: what a process loads once
            executed = load_notebook(next(store.artifacts_root.rglob(f"{sub.sha256[:16]}/execute-*/executed.ipynb")))
            cells = cell_seconds(executed)
            rows[mode].append({"wall": wall, "cells": cells, "overhead": wall - cells, **result.timings})

        # Throughput: the same number of fresh submissions, graded one at a time and two at a time.
        throughput = {}
        for mode in modes:
            for jobs in (1, 2):
                batch = tmp / f"batch-{mode}-{jobs}"
                batch.mkdir()
                for i in range(args.n):
                    nbformat.write(notebook(f"# batch {mode} {jobs} copy {i}\n{SOLUTION}"), batch / f"b{i:03d}.ipynb")
                t = time.perf_counter()
                Grader(lab, store, backends[mode], Options(jobs=jobs, scratch=tmp)).grade_all(discover(batch))
                throughput[mode, jobs] = args.n / (time.perf_counter() - t)
        for backend in backends.values():
            backend.close()

    def med(key: str, mode: str = "warm") -> float:
        return statistics.median(r[key] for r in rows[mode])

    bare = python_seconds("pass")
    runner_imports = python_seconds(RUNNER_PRELUDE + "import papermill")
    plain_imports = python_seconds("import papermill")
    kernel_imports = python_seconds("import ipykernel.kernelapp")
    lines = [
        f"## Harness overhead per submission, {date.today().isoformat()}",
        "",
        f"`benchmarks/overhead.py -n {args.n}`: local backend, one job at a time, {platform.machine()}, "
        f"{_cpus()} CPUs, Python {platform.python_version()}. Medians over {args.n} trivial submissions per column, "
        "warm and cold alternating.",
        "",
        "| what | warm | cold |",
        "|---|---|---|",
        f"| wall time per submission | {med('wall'):.2f} | {med('wall', 'cold'):.2f} |",
        f"| the notebook's own cells | {med('cells'):.2f} | {med('cells', 'cold'):.2f} |",
        f"| **harness overhead** (wall minus cells) | **{med('overhead'):.2f}** | **{med('overhead', 'cold'):.2f}** |",
        f"| execute stage (runner, papermill, kernel start and stop, capture) | {med('execute'):.2f} "
        f"| {med('execute', 'cold'):.2f} |",
        f"| probe stage (runner, load exports, probes) | {med('probe'):.2f} | {med('probe', 'cold'):.2f} |",
        f"| judge (hidden tests through pytest, criteria) | {med('judge'):.2f} | {med('judge', 'cold'):.2f} |",
        f"| submissions per minute, `--jobs 1` | {60 * throughput['warm', 1]:.0f} | {60 * throughput['cold', 1]:.0f} |",
        f"| submissions per minute, `--jobs 2` | {60 * throughput['warm', 2]:.0f} | {60 * throughput['cold', 2]:.0f} |",
        f"| ratio `--jobs 2` / `--jobs 1` | {throughput['warm', 2] / throughput['warm', 1]:.2f} "
        f"| {throughput['cold', 2] / throughput['cold', 1]:.2f} |",
        f"| ratio warm / cold, harness overhead | {med('overhead') / med('overhead', 'cold'):.2f} | |",
        f"| for scale: a bare interpreter start (`python -I -c pass`) | {bare:.2f} | |",
        f"| for scale: start + `import papermill` as the runner does it | {runner_imports:.2f} | |",
        f"| for scale: start + `import papermill` without skipping `rfc3987_syntax` | {plain_imports:.2f} | |",
        f"| for scale: start + `import ipykernel.kernelapp` (each kernel) | {kernel_imports:.2f} | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        path = REPO / "docs" / "benchmarks.md"
        if not path.exists():
            path.write_text("# Benchmarks\n\nFigures appended by the scripts in benchmarks/; newest last.\n\n")
        with path.open("a") as f:
            f.write(text + "\n")
        print(f"appended to {path}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
