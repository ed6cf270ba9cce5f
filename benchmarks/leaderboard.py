"""What a leaderboard costs to publish: lab2-cnn's board for a made-up cohort of N students recorded in a real
store, as medians: the page (`write_leaderboard`: the store's current results read, ranked, pseudonyms made,
rendered, written) and the board's part of every student's feedback page (`section` for each student, and
its table rendered as on the page). Not a test: run on demand and copy the table into docs/benchmarks.md.

    python benchmarks/leaderboard.py [-n 300] [--repeat 21]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from page_checks import made_up  # noqa: E402

from autograder.labs.lab import load_lab  # noqa: E402
from autograder.publish import leaderboard  # noqa: E402
from autograder.publish.html import render  # noqa: E402
from autograder.results import CriterionResult, ExecutionResult  # noqa: E402
from autograder.store import Store  # noqa: E402


def median_ms(f: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="students in the cohort")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    lab = load_lab("lab2-cnn", REPO)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "grades.db")
        for i in range(args.n):
            value = round(rng.uniform(0.6, 0.9) * 2000) / 2000  # a 2000-image test set: ties happen
            store.record(made_up(lab, f"student-{i:04d}", "G", [
                CriterionResult(id="runs", kind="notebook-runs", status="pass", message="ran"),
                CriterionResult(id="test-accuracy", kind="accuracy", status="pass", value=value, threshold=0.8,
                                message="m")], ExecutionResult(status="ok", duration_s=10)))
        store.secret(leaderboard.SECRET)  # made once, on the first publish
        results = store.latest(lab.name)
        board = leaderboard.build(lab.name, lab.rubric, results, store.secret(leaderboard.SECRET))
        assert board is not None

        def sections() -> None:
            for r in results:
                part = leaderboard.section(board, r.student)
                render("leaderboard_table.html", board_title=part.title, rows=part.rows)

        rows = [("the page (`write_leaderboard`)", median_ms(
                    lambda: leaderboard.write_leaderboard(lab, store, Path(tmp) / "leaderboard.html"), args.repeat)),
                ("the board alone (`build`, from results already read)", median_ms(
                    lambda: leaderboard.build(lab.name, lab.rubric, results, b"k" * 32), args.repeat)),
                (f"{args.n} feedback sections, tables rendered", median_ms(sections, max(3, args.repeat // 4)))]
        store.close()
    print(f"| lab2-cnn, {args.n} students | median |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} ms |")


if __name__ == "__main__":
    main()
