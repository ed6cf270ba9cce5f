"""Per-submission overhead of each backend, warm sandboxes against cold, as ratios from one run.

Grades N distinct copies of a trivial notebook (the tests' toy course: NumPy only) on four
configurations, local and docker, each with warm sandboxes (sandbox.warm: the next run's sandbox
started while the current one runs) and cold (each sandbox started when its run begins),
alternating submission by submission so that drift in the machine's load hits all alike, one job
at a time. The harness overhead of a submission is its wall time minus the notebook's own cells
(papermill's per-cell durations). Then throughput at `--jobs 1` and `--jobs 2` in each
configuration (a batch each, first submission and last spares included); and lab1-mlp's good
notebook (trains a small MLP with torch) graded M times per configuration: its probe stage (torch
loaded, the model unpickled) and everything outside the notebook's cells. Appends the medians to
docs/benchmarks.md unless --no-write. Not a test: run on demand (`make bench`); needs a Docker
engine and the sandbox image.

    python benchmarks/backends.py [-n 10] [--lab1 4] [--throughput 12] [--image TAG] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from make_course import SOLUTION, notebook  # noqa: E402

from autograder.errors import UserError  # noqa: E402
from autograder.grading.intake import IntakeSpec, discover  # noqa: E402
from autograder.grading.pipeline import Grader, Options  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.notebooks import load_notebook  # noqa: E402
from autograder.sandbox import BackendSettings, get_backend  # noqa: E402
from autograder.store import Store  # noqa: E402

CONFIGS = ("local cold", "local warm", "docker cold", "docker warm")


def container_round_trip(backend, n: int = 5) -> float:
    """Median seconds to create, start, wait for and remove a container that runs `true`."""
    client = backend.client
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        c = client.containers.create(backend.image, ["true"], network_mode="none")
        c.start()
        c.wait()
        c.remove(force=True)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def cell_seconds(store: Store, sub) -> float:
    """The notebook's own cells: papermill's per-cell durations in the executed notebook kept."""
    path = next(store.artifacts_root.rglob(f"{sub.sha256[:16]}/execute-*/executed.ipynb"))
    return sum((c.metadata.get("papermill", {}).get("duration") or 0.0) for c in load_notebook(path).cells)


def backend_for(config: str, image: str | None):
    name, mode = config.split()
    return get_backend(name, BackendSettings(image=image if name == "docker" else None, warm=mode == "warm"))


def alternate(graders: dict, store: Store, folder: Path, spec=None, expect: str = "G") -> dict[str, list[dict]]:
    """Grade every submission in `folder` (named `<i>-<config>`) on its configuration's grader, after one
    unmeasured submission per configuration (what a process loads once: the embedding model, imports)."""
    rows: dict[str, list[dict]] = {c: [] for c in graders}
    subs = discover(folder, spec)
    for sub in subs[:len(graders)]:
        graders[sub.student.split("-", 1)[1].replace("_", " ")].grade(sub)
    for sub in subs[len(graders):]:
        config = sub.student.split("-", 1)[1].replace("_", " ")
        t = time.perf_counter()
        result, _ = graders[config].grade(sub)
        wall = time.perf_counter() - t
        assert result.verdict == expect, (config, result.verdict, [c.message for c in result.criteria])
        cells = cell_seconds(store, sub)
        rows[config].append({"wall": wall, "cells": cells, "overhead": wall - cells, **result.timings})
    return rows


def throughput(lab, store: Store, backend, tmp: Path, n: int, jobs: int) -> float:
    """Submissions per minute grading n fresh toy submissions with `jobs` at a time."""
    batch = Path(tempfile.mkdtemp(prefix=f"batch-{backend.name}-{jobs}-", dir=tmp))
    for i in range(n):
        nbformat.write(notebook(f"# {batch.name} copy {i}\n{SOLUTION}"), batch / f"b{i:03d}.ipynb")
    t = time.perf_counter()
    Grader(lab, store, backend, Options(jobs=jobs, scratch=tmp)).grade_all(discover(batch))
    return 60 * n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="toy submissions per configuration (default 10)")
    parser.add_argument("--lab1", type=int, default=4, help="lab1-mlp submissions per configuration (default 4; 0: "
                        "skip)")
    parser.add_argument("--throughput", type=int, default=12, help="toy submissions per throughput batch (default 12; "
                        "0: skip)")
    parser.add_argument("--image", help="sandbox image (default: autograder-sandbox:latest)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    try:
        backends = {c: backend_for(c, args.image) for c in CONFIGS}
    except UserError as exc:
        raise SystemExit(f"benchmarks/backends.py: {exc.message}") from None
    docker = backends["docker warm"]

    with tempfile.TemporaryDirectory(prefix="autograder-bench-") as tmp_name:
        tmp = Path(tmp_name)
        course = tmp / "course"
        shutil.copytree(REPO / "tests" / "fixtures" / "course", course)
        lab = load_lab("toy", course)
        store = Store(tmp / "grades.db")
        graders = {c: Grader(lab, store, b, Options(jobs=1, scratch=tmp)) for c, b in backends.items()}
        subs = tmp / "subs"
        subs.mkdir()
        for i in range(args.n + 1):
            for config in CONFIGS:  # distinct content, so no stage is reused from the store
                nbformat.write(notebook(f"# {config} copy {i}\n{SOLUTION}"),
                               subs / f"{i:03d}-{config.replace(' ', '_')}.ipynb")
        toy = alternate(graders, store, subs)
        rates = {}
        if args.throughput:
            for config in CONFIGS:
                for jobs in (1, 2):
                    rates[config, jobs] = throughput(lab, store, backends[config], tmp, args.throughput, jobs)
        lab1_rows: dict[str, list[dict]] = {}
        if args.lab1:
            lab1 = load_lab("lab1-mlp", REPO)
            good = nbformat.read(REPO / "examples" / "submissions" / "lab1-mlp" / "good.ipynb", as_version=4)
            folder = tmp / "lab1"
            folder.mkdir()
            for i in range(args.lab1 + 1):
                for config in CONFIGS:
                    good.metadata["bench_copy"] = f"{config} {i}"  # distinct bytes, the same notebook
                    nbformat.write(good, folder / f"{i:03d}-{config.replace(' ', '_')}.ipynb")
            lab1_graders = {c: Grader(lab1, store, b, Options(jobs=1, scratch=tmp)) for c, b in backends.items()}
            lab1_rows = alternate(lab1_graders, store, folder, IntakeSpec.of(lab1.spec))
        for backend in backends.values():
            backend.close()
        round_trip = container_round_trip(docker)

    text = report(args, toy, rates, lab1_rows, round_trip, docker.image)
    print(text)
    if not args.no_write:
        with (REPO / "docs" / "benchmarks.md").open("a") as f:
            f.write(text + "\n")
        print(f"appended to {REPO / 'docs' / 'benchmarks.md'}")


def report(args, toy: dict, rates: dict, lab1: dict, round_trip: float, image: str) -> str:
    def med(rows: dict, config: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[config])

    lines = [
        f"### Backends, warm sandboxes against cold, {date.today().isoformat()}",
        "",
        f"`benchmarks/backends.py -n {args.n} --lab1 {args.lab1} --throughput {args.throughput}`: one job at a "
        f"time, submissions alternating between the four configurations; {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPUs, image {image}. Medians per submission.",
        "",
        "| toy notebook, seconds per submission | " + " | ".join(CONFIGS) + " |",
        "|---|" + "---|" * len(CONFIGS),
    ]
    for key, label in (("wall", "wall time"), ("cells", "the notebook's own cells"),
                       ("overhead", "**harness overhead** (wall minus cells)"), ("execute", "execute stage"),
                       ("probe", "probe stage"), ("judge", "judge (host, same code)")):
        lines.append(f"| {label} | " + " | ".join(f"{med(toy, c, key):.2f}" for c in CONFIGS) + " |")
    lines += [
        "",
        "Ratios within this run, harness overhead warm / cold: local "
        f"{med(toy, 'local warm', 'overhead') / med(toy, 'local cold', 'overhead'):.2f}, docker "
        f"{med(toy, 'docker warm', 'overhead') / med(toy, 'docker cold', 'overhead'):.2f}. For scale: creating, "
        f"starting, waiting for and removing a container that runs `true` takes {round_trip:.2f} s (median of 5).",
        "",
    ]
    if rates:
        lines += ["| submissions per minute (toy, one batch each) | `--jobs 1` | `--jobs 2` | ratio |",
                  "|---|---|---|---|"]
        for config in CONFIGS:
            one, two = rates[config, 1], rates[config, 2]
            lines.append(f"| {config} | {one:.0f} | {two:.0f} | {two / one:.2f} |")
        lines += ["", "Warm `--jobs 2` against cold `--jobs 1`: local "
                  f"{rates['local warm', 2] / rates['local cold', 1]:.2f}x, docker "
                  f"{rates['docker warm', 2] / rates['docker cold', 1]:.2f}x.", ""]
    if lab1:
        lines += ["| lab1-mlp good notebook, seconds per submission | " + " | ".join(CONFIGS) + " |",
                  "|---|" + "---|" * len(CONFIGS)]
        for key, label in (("wall", "wall time"), ("cells", "the notebook's own cells"),
                           ("overhead", "**everything outside the cells**"), ("execute", "execute stage"),
                           ("probe", "**probe stage**"), ("judge", "judge")):
            lines.append(f"| {label} | " + " | ".join(f"{med(lab1, c, key):.2f}" for c in CONFIGS) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
