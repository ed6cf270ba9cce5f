"""What re-running a borderline notebook costs (grading/reruns.py), on lab1-mlp's borderline sample.

Grades examples/submissions/lab1-mlp/borderline.ipynb (seed 0: hidden-test accuracy 0.736, a fail whose
95% interval holds the bar 0.75) on the local backend, each repetition into a fresh store:

  (a) under lab1's rubric (`borderline: {policy: rerun, runs: 5}`): the first run, then the re-runs until
      the median is settled. The re-runs' extra wall time is the result's timings["reruns"]; their extra
      CPU time is the sum of the re-run stages' own cpu_s (measured from outside the sandbox);
  (b) the same hand-in graded again after a rubric change, from the recorded stages: what the re-run step
      costs when every re-run is found on record;
  (c) the step on a result that wants no re-run (every submission but the borderline ones), timed alone
      over 10,000 calls.

Prints a Markdown table of medians; the figures go to docs/benchmarks.md by hand. Not a test: run on demand.

    python benchmarks/reruns.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "submissions" / "lab1-mlp" / "borderline.ipynb"

from autograder.grading.intake import IntakeSpec, discover  # noqa: E402
from autograder.grading.pipeline import Grader, Options  # noqa: E402
from autograder.grading.reruns import rerun_borderline  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.sandbox import get_backend  # noqa: E402
from autograder.store import Store  # noqa: E402


def course_copy(tmp: Path) -> Path:
    """lab1-mlp alone in a course folder of its own, whose rubric the benchmark may change."""
    root = tmp / "course"
    for part in ("assignments", "reference"):
        shutil.copytree(REPO / part / "lab1-mlp", root / part / "lab1-mlp")
    (root / "rubrics").mkdir()
    shutil.copy(REPO / "rubrics" / "lab1-mlp.yaml", root / "rubrics")
    return root


def grade(root: Path, store: Store, scratch: Path):
    lab = load_lab("lab1-mlp", root)
    grader = Grader(lab, store, get_backend("local"), Options(scratch=scratch))
    started = time.perf_counter()
    (result,) = grader.grade_all(discover(SAMPLE, IntakeSpec.of(lab.spec)))
    return result, time.perf_counter() - started, grader


def one_round(tmp: Path) -> dict[str, float]:
    root = course_copy(tmp)
    scratch = tmp / "scratch"
    scratch.mkdir()
    store = Store(tmp / "db" / "grades.db")
    try:
        result, wall, grader = grade(root, store, scratch)
        c = next(c for c in result.criteria if c.id == "test-accuracy")
        keys = [key for stage, key in result.stages.items() if "@seed=" in stage]
        cpu = 0.0
        for key in keys:
            record = store.stage(key)
            cpu += float((record.result.get("cpu_s") or 0.0) if record is not None else 0.0)
        first = sum(result.timings.get(k, 0.0) for k in ("execute", "probe"))
        # (b): a rubric change re-judges from the record: the re-runs are found, none runs.
        path = root / "rubrics" / "lab1-mlp.yaml"
        data = yaml.safe_load(path.read_text())
        data["criteria"][0]["title"] = "The notebook runs"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        again, again_wall, regrader = grade(root, store, scratch)
        assert not regrader._fresh, "a regrade ran a stage again"
        return {"runs": len(c.details.get("runs", [])), "verdict": result.verdict == "G",
                "first_s": first, "reruns_s": result.timings.get("reruns", 0.0), "reruns_cpu_s": cpu,
                "total_s": wall, "cached_reruns_s": again.timings.get("reruns", 0.0), "cached_total_s": again_wall}
    finally:
        store.close()


def no_rerun_cost(n: int = 10_000) -> float:
    """Seconds per call of the step on a result that wants no re-run (the common case)."""
    from autograder.results import CriterionResult, SubmissionResult

    lab = load_lab("lab1-mlp", REPO)
    result = SubmissionResult(lab=lab.name, student="s", submission_hash="h", lab_version=lab.version,
                              rubric_hash=lab.rubric_hash, verdict="G",
                              criteria=[CriterionResult(id=s.id, kind=s.kind, status="pass", message="ok")
                                        for s in lab.rubric.criteria])
    started = time.perf_counter()
    for _ in range(n):
        rerun_borderline(lab, result, [], lambda seed: None)  # type: ignore[arg-type,return-value]
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-reruns-") as tmp:
            rounds.append(one_round(Path(tmp)))
        print(f"round {i + 1}: {rounds[-1]}", file=sys.stderr)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    per_call = no_rerun_cost()
    cpu = platform.processor() or platform.machine()
    print(f"lab1-mlp borderline sample, local backend, {args.repeat} rounds, {cpu}")
    print()
    print("| what | median |")
    print("|---|---|")
    print(f"| runs judged (first included) | {med('runs'):.0f}, verdict G in {sum(r['verdict'] for r in rounds)} "
          f"of {len(rounds)} |")
    print(f"| the first run (execute + probe) | {med('first_s'):.1f} s |")
    print(f"| the re-runs, wall time | {med('reruns_s'):.1f} s |")
    print(f"| the re-runs, CPU time (their sandboxes) | {med('reruns_cpu_s'):.1f} s |")
    print(f"| the whole grading with re-runs | {med('total_s'):.1f} s |")
    print(f"| regrade from the record: the re-run step | {med('cached_reruns_s') * 1000:.0f} ms |")
    print(f"| regrade from the record: the whole grading | {med('cached_total_s'):.1f} s |")
    print(f"| the step where no criterion wants a re-run | {per_call * 1e6:.1f} us |")


if __name__ == "__main__":
    main()
