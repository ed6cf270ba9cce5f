"""The review app's pages at course scale: how long a TA waits for each page and for a decision.

A synthetic lab of N students (default 300) with 10 criteria each, recorded in a fresh store: every
student's accuracy, gap and reflection, and one student in five with a reflection and code that wait
for review (a copied pair each, with both texts and both code files), so the queue holds 2N/5 items.
Each page is asked for through Starlette's TestClient (the app in this process, no network), R times,
and the median is quoted: the labs, the cohort, the cohort filtered, the queue, an evidence page (a
reflection copy and a code copy, side by side), a student's page without the lab's files (404 page,
the cheapest path through the guard) and a decision (POST, recorded, the redirect to the next item).
Not a test: run on demand.

    python benchmarks/serve_pages.py [--students 300] [--repeat 15]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from autograder.labs.rubric import decide
from autograder.results import CriterionResult, SubmissionResult
from autograder.serve.app import create_app
from autograder.store import Store

TOKEN = "benchmark-token-0123456789"
ORIGIN = "http://127.0.0.1:8000"
WORDS = ("model data people harm bias fair test train deploy trust media image face consent risk error "
         "society clinic loan vote news").split()


def text(i: int, words: int = 180) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words)) + "."


def code(i: int, lines: int = 120) -> str:
    body = [f"# ---- cell {3 + k // 30} ----" if k % 30 == 0 else f"    x{k} = w{i % 5}[{k}] * 0.5 + b" for k in
            range(lines)]
    return "\n".join(body) + "\n"


def student(i: int, n: int) -> SubmissionResult:
    copied = i % 5 == 0
    partner = f"s{(i + 5) % n:03d}"
    similar = [{"student": partner, "similarity": 0.93, "lexical": 0.9, "semantic": 0.97, "by": "both"}]
    passages = [{"mine": [2, 40], "theirs": [2, 40]}, {"mine": [60, 90], "theirs": [61, 91]}]
    criteria = [
        CriterionResult(id="runs", kind="notebook-runs", status="pass", message="It ran."),
        CriterionResult(id="test-accuracy", kind="metric", status="pass", value=0.8 + (i % 17) / 100, threshold=0.8,
                        message="Accuracy above the bar.", details={"metric": "accuracy", "split": "test"}),
        CriterionResult(id="generalization-gap", kind="generalization-gap", status="pass", value=0.03, threshold=0.1,
                        message="No overfitting.", details={"train": 0.9, "test": 0.87}),
        *(CriterionResult(id=f"test-{k}", kind="hidden-tests", status="pass", message="Passed.") for k in range(4)),
        CriterionResult(id="runtime", kind="runtime", status="pass", value=30.0, threshold=600, message="Fast."),
        CriterionResult(id="code-originality", kind="code-originality", status="review" if copied else "pass",
                        message="Your code is very similar to another student's." if copied else "Your own code.",
                        details={"code": code(i // 5 if copied else i), "own_status": "pass",
                                 **({"similar_to": [{"student": partner, "similarity": 0.9, "passages": passages}]}
                                    if copied else {})}),
        CriterionResult(id="reflection", kind="reflection", status="review" if copied else "pass",
                        message="Very similar to another student's." if copied else "Covers the themes.",
                        details={"text": text(i // 5 if copied else i), "own_status": "pass",
                                 **({"similar_to": similar} if copied else {})}),
    ]
    return SubmissionResult(lab="bench", student=f"s{i:03d}", submission_hash=f"sha{i}", lab_version="1",
                            rubric_hash="r", verdict=decide(criteria), criteria=criteria)


def timed(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        db = Path(tmp) / "grades.db"
        store = Store(db)
        for i in range(args.students):
            store.record(student(i, args.students))
        store.close()
        client = TestClient(create_app(db, token=TOKEN, out=Path(tmp) / "exports", user="bench"), base_url=ORIGIN)
        assert client.get(f"/?token={TOKEN}").status_code == 200

        def get(url: str):
            def call():
                response = client.get(url)
                assert response.status_code in (200, 404), (url, response.status_code)
            return call

        queue = client.get("/lab/bench/review").text
        items = len(re.findall(r'class="item"', queue))
        rows = [
            ("labs (`/`)", get("/")),
            ("the cohort (`/lab/LAB`)", get("/lab/bench")),
            ("the cohort filtered (`?status=review&q=s0`)", get("/lab/bench?status=review&q=s0")),
            (f"the queue ({items} items)", get("/lab/bench/review")),
            ("evidence: a copied reflection, side by side", get("/lab/bench/review/s000/reflection")),
            ("evidence: copied code, side by side", get("/lab/bench/review/s000/code-originality")),
            ("a student's page, no lab files (404)", get("/lab/bench/student/s001")),
        ]
        figures = [(name, timed(call, args.repeat)) for name, call in rows]
        form = client.get("/lab/bench/review/s000/reflection").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)[1]
        decided = [f"s{i:03d}" for i in range(0, args.students, 5)][: args.repeat]

        def decision():
            who = decided.pop()
            response = client.post("/lab/bench/decide", headers={"Origin": ORIGIN}, follow_redirects=False, data={
                "csrf": csrf, "student": who, "criterion": "reflection", "decision": "pass", "note": "Written alone."})
            assert response.status_code == 303, response.text[:300]
        figures.append(("a decision (POST, recorded, redirect to the next)", timed(decision, len(decided))))
    print(f"{args.students} students, {platform.processor() or platform.machine()}, Python {platform.python_version()},"
          f" median of {args.repeat}")
    print("| page | median |\n|---|---|")
    for name, seconds in figures:
        print(f"| {name} | {seconds * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
