"""What the reproducibility stamp and the compute accounting cost per result.

The stamp (grading/stamp.py) is read once per host, interpreter, image and set of GPUs and cached;
each result then pays a lookup (local) or one engine call for the image's id (docker, so a rebuilt
image is noticed). Measures, for the tests' toy lab: the first stamp of a process (the host read:
/proc/cpuinfo, importlib.metadata, torch's version.py; on docker one throwaway container), the
stamp of each later result, `account()` over a result's runs, and `copies.keep` of a hand-in
(the copy rerun reads; written once per hash). Medians of N. Not a test: run on demand.

    python benchmarks/stamp.py [-n 200] [--docker]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from make_course import SOLUTION, notebook  # noqa: E402

from autograder.grading import copies, stamp  # noqa: E402
from autograder.grading.accounting import account  # noqa: E402
from autograder.grading.intake import IntakeSpec, discover  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.results import ExecutionResult, ProbeReport  # noqa: E402
from autograder.sandbox import BackendSettings, get_backend  # noqa: E402


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--docker", action="store_true", help="also the docker backend (needs an engine and the image)")
    args = ap.parse_args()
    lab = load_lab("toy", REPO / "tests" / "fixtures" / "course")
    names = ["local"] + (["docker"] if args.docker else [])
    for name in names:
        backend = get_backend(name, BackendSettings())
        stamp.forget()
        t = time.perf_counter()
        stamp.environment(lab, backend, lab.spec.limits)
        first = (time.perf_counter() - t) * 1000
        later = median_ms(lambda b=backend: stamp.environment(lab, b, lab.spec.limits), args.n)
        print(f"{name}: first stamp of a process {first:.1f} ms; each later result {later:.3f} ms")
    runs = [ExecutionResult(status="ok", duration_s=30.0, cpu_s=28.0, peak_memory_mb=800.0),
            ProbeReport(status="ok", duration_s=2.0, cpu_s=1.5, peak_memory_mb=400.0)]
    print(f"account() over execute + probe: {median_ms(lambda: account(runs), args.n) * 1000:.1f} us")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        for i in range(args.n):
            nbformat.write(notebook(SOLUTION + f"\n# {i}"), folder / f"s{i}.ipynb")
        subs = discover(folder, IntakeSpec.of(lab.spec))
        root = Path(tmp) / "artifacts"
        times = []
        for sub in subs:
            t = time.perf_counter()
            copies.keep(root, lab, sub)
            times.append(time.perf_counter() - t)
        again = median_ms(lambda: copies.keep(root, lab, subs[0]), args.n)
        print(f"copies.keep: first copy of a hand-in {statistics.median(times) * 1000:.2f} ms; "
              f"already kept {again:.3f} ms")


if __name__ == "__main__":
    main()
