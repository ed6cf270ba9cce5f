"""Per-submission overhead of the docker backend against the local one, as a ratio from one run.

Grades N distinct copies of a trivial notebook (the tests' toy course: NumPy only) on both
backends, alternating local and docker submission by submission so that drift in the machine's
load hits both alike, one job at a time. Appends the medians to docs/benchmarks.md. Not a test:
run on demand (`make bench`); needs a Docker engine and the sandbox image.

    python benchmarks/backends.py [-n 10] [--image TAG] [--no-write]
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
from autograder.grading.intake import discover  # noqa: E402
from autograder.grading.pipeline import Grader, Options  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.sandbox import BackendSettings, get_backend  # noqa: E402
from autograder.store import Store  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="submissions per backend (default 10)")
    parser.add_argument("--image", help="sandbox image (default: autograder-sandbox:latest)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    try:
        docker = get_backend("docker", BackendSettings(image=args.image))
    except UserError as exc:
        raise SystemExit(f"benchmarks/backends.py: {exc.message}") from None
    local = get_backend("local")

    rows: dict[str, list[dict]] = {"local": [], "docker": []}
    with tempfile.TemporaryDirectory(prefix="autograder-bench-") as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        shutil.copytree(REPO / "tests" / "fixtures" / "course", course)
        lab = load_lab("toy", course)
        store = Store(tmp / "grades.db")
        graders = {b.name: Grader(lab, store, b, Options(jobs=1, scratch=tmp)) for b in (local, docker)}
        subs = tmp / "subs"
        subs.mkdir()
        for i in range(args.n):
            for name in ("local", "docker"):  # distinct content, so no stage is reused from the store
                nbformat.write(notebook(f"# {name} copy {i}\n{SOLUTION}"), subs / f"{name}-{i:03d}.ipynb")
        for sub in discover(subs):
            name = sub.student.split("-")[0]
            t = time.perf_counter()
            result, _ = graders[name].grade(sub)
            wall = time.perf_counter() - t
            assert result.verdict == "G", result
            rows[name].append({"wall": wall, **result.timings})
        round_trip = container_round_trip(docker)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    ratio = med("docker", "wall") / med("local", "wall")
    lines = [
        f"### Docker backend against local, {date.today().isoformat()}",
        "",
        f"`benchmarks/backends.py -n {args.n}`: the toy lab's trivial notebook, one job at a time, submissions "
        f"alternating between the backends; {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, image "
        f"{docker.image}. Medians over {args.n} submissions per backend.",
        "",
        "| seconds per submission | local | docker | docker minus local |",
        "|---|---|---|---|",
    ]
    for key, label in (("wall", "wall time"), ("execute", "execute stage"), ("probe", "probe stage"),
                       ("judge", "judge (host, same code)")):
        a, b = med("local", key), med("docker", key)
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    lines += [
        "",
        f"**Ratio docker / local, wall time per submission: {ratio:.2f}.** For scale: creating, starting, "
        f"waiting for and removing a container that runs `true` takes {round_trip:.2f} s (median of 5); "
        "each submission pays for two containers (execute, then probe).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (REPO / "docs" / "benchmarks.md").open("a") as f:
            f.write(text + "\n")
        print(f"appended to {REPO / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
