"""What the 95% bootstrap intervals cost: per metric at 10,000 items, and per lab1 submission.

1. Each registered metric on 10,000 items (10 classes; 8 values per item for mse/psnr; 20-character texts
   for cer): the median time of `bootstrap.interval` over the items (the measuring itself, which grading
   did before, is timed beside it). Target: at most 50 ms per metric.
2. lab1's two measured criteria (test-accuracy, generalization-gap) judged on crafted probe outputs for
   its real splits (2,000 hidden test items, the training split), with intervals and with the interval
   turned off, alternating, in one process: the extra judging time per submission, as a median and a
   ratio. Target: under 0.05 s.

3. With --coverage: the share of 95% intervals holding the truth over repeated samples from known
   distributions (what tests/test_bootstrap.py checks, at more sizes), for docs/analysis.md.

Not a test: run on demand; prints Markdown for docs/benchmarks.md.

    python benchmarks/bootstrap.py [-n 21] [--coverage]
"""

from __future__ import annotations

import argparse
import statistics
import string
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from autograder.criteria import build  # noqa: E402
from autograder.criteria.analysis import bootstrap  # noqa: E402
from autograder.criteria.analysis.metrics import METRICS  # noqa: E402
from autograder.criteria.base import Evidence, ProbeData  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.results import ExecutionResult, ProbeReport  # noqa: E402

N = 10_000


def median_ms(fn, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        started = clock()
        fn()
        times.append(clock() - started)
    return 1000 * statistics.median(times)


def metric_inputs() -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, N)
    scores = rng.normal(size=(N, 10))
    scores[np.arange(N), labels] += 1.5
    target = rng.random((N, 8))
    predicted = target + rng.normal(scale=0.1, size=target.shape)
    letters = np.array(list(string.ascii_lowercase))
    texts = np.array(["".join(rng.choice(letters, 20)) for _ in range(N)])
    read = np.array([t[:-2] + "xy" if i % 4 == 0 else t for i, t in enumerate(texts)])
    return {"accuracy": (scores, labels, {}), "top-k-accuracy": (scores, labels, {"k": 5}),
            "balanced-accuracy": (scores, labels, {}), "macro-f1": (scores, labels, {}),
            "mse": (predicted, target, {}), "psnr": (predicted, target, {}), "cer": (read, texts, {})}


def per_metric(repeats: int) -> list[tuple[str, int, float, float, float]]:
    """(metric, resamples, interval wall ms, interval CPU ms, measuring wall ms): CPU time (the process's,
    numpy runs on one core here) is what a busy machine inflates least."""
    rows = []
    for name, (predicted, target, params) in metric_inputs().items():
        metric = METRICS[name]
        _, items = metric.measure(predicted, target, **params)
        measuring = median_ms(lambda m=metric, p=predicted, t=target, kw=params: m.measure(p, t, **kw),
                              1 if name == "cer" else max(3, repeats // 4))  # cer: the edit distances take seconds
        rows.append((name, bootstrap.resamples(items), median_ms(lambda it=items: bootstrap.interval(it), repeats),
                     median_ms(lambda it=items: bootstrap.interval(it), repeats, time.process_time), measuring))
    return rows


def lab1_judging(repeats: int) -> tuple[float, float]:
    """Median judging time of lab1's measured criteria per submission, with and without intervals (ms)."""
    lab = load_lab("lab1-mlp", REPO)
    (_, y_test), (_, y_train) = lab.split("test"), lab.split("train")
    rng = np.random.default_rng(1)

    def scores(y: np.ndarray, accuracy: float) -> np.ndarray:
        out = rng.normal(size=(len(y), int(y.max()) + 1))
        right = rng.random(len(y)) < accuracy
        out[np.arange(len(y))[right], y[right]] += 10
        return out

    ev = Evidence(lab=lab, execution=ExecutionResult(status="ok"), notebook=None,
                  probes=ProbeData(report=ProbeReport(status="ok"),
                                   arrays={"scores": {"test": scores(y_test, 0.76), "train": scores(y_train, 0.83)}}),
                  labels={"test": y_test, "train": y_train})
    criteria = [build(c) for c in lab.rubric.criteria if c.kind in ("accuracy", "generalization-gap")]

    def judge() -> None:
        for c in criteria:
            c.check(ev)

    real = bootstrap.interval, bootstrap.difference
    with_ci, without = [], []
    for _ in range(repeats):
        with_ci.append(median_ms(judge, 1))
        bootstrap.interval, bootstrap.difference = (lambda *a, **k: None), (lambda *a, **k: None)
        try:
            without.append(median_ms(judge, 1))
        finally:
            bootstrap.interval, bootstrap.difference = real
    return statistics.median(with_ci), statistics.median(without)


def coverage(truth: float, draw, repetitions: int) -> float:
    rng = np.random.default_rng(2026)
    held = 0
    for _ in range(repetitions):
        interval = bootstrap.interval(draw(rng))
        held += interval is not None and interval[0] <= truth <= interval[1]
    return held / repetitions


def accuracy_sample(n: int, p: float):
    def draw(rng):
        labels = rng.integers(0, 3, n)
        guesses = np.where(rng.random(n) < p, labels, (labels + 1) % 3)
        return METRICS["accuracy"].measure(guesses, labels)[1]
    return draw


def mse_sample(n: int):
    def draw(rng):
        target = rng.random((n, 4))
        return METRICS["mse"].measure(target + rng.normal(scale=0.3, size=target.shape), target)[1]
    return draw


def macro_f1_sample(n: int):
    def draw(rng):
        labels = rng.integers(0, 3, n)
        guesses = np.where(rng.random(n) < 0.8, labels, (labels + rng.integers(1, 3, n)) % 3)
        return METRICS["macro-f1"].measure(guesses, labels)[1]
    return draw


def coverages() -> None:
    print("| sample | truth | samples | coverage of the 95% interval |")
    print("|---|---|---|---|")
    for label, truth, draw, reps in [
        ("accuracy, Bernoulli p=0.75, 400 items", 0.75, accuracy_sample(400, 0.75), 2000),
        ("accuracy, Bernoulli p=0.75, 2,000 items", 0.75, accuracy_sample(2000, 0.75), 2000),
        ("accuracy, Bernoulli p=0.95, 100 items", 0.95, accuracy_sample(100, 0.95), 2000),
        ("mse, Gaussian errors sd 0.3, 400 items x 4", 0.09, mse_sample(400), 1000),
        ("mse, Gaussian errors sd 0.3, 10,000 items x 4", 0.09, mse_sample(10_000), 300),
        ("macro-F1, 3 classes 80% right, 600 items", 0.8, macro_f1_sample(600), 1000),
    ]:
        print(f"| {label} | {truth} | {reps:,} | {coverage(truth, draw, reps):.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=21, help="repeats per figure (default 21)")
    parser.add_argument("--coverage", action="store_true", help="also simulate the intervals' coverage")
    args = parser.parse_args()
    if args.coverage:
        coverages()
        print()
    print(f"| metric (10,000 items) | resamples | interval, wall (median of {args.n}) | interval, CPU | "
          "measuring the value, wall |")
    print("|---|---|---|---|---|")
    for name, b, wall_ms, cpu_ms, measure_ms in per_metric(args.n):
        print(f"| {name} | {b:,} | {wall_ms:.1f} ms | {cpu_ms:.1f} ms | {measure_ms:.1f} ms |")
    with_ci, without = lab1_judging(args.n)
    print(f"\nlab1 test-accuracy + generalization-gap per submission: {with_ci:.2f} ms with intervals, "
          f"{without:.2f} ms without: +{with_ci - without:.2f} ms (x{with_ci / without:.2f})", file=sys.stdout)


if __name__ == "__main__":
    main()
