"""Grade the sample cohorts and write every export, with what changes run to run taken out.

A refactor that moves code must not change what a course publishes. This script drives only the
`autograder` command (never its modules), so the same script runs on the code before and after a
change; two snapshots are compared with `diff -r`:

    python scripts/snapshot_exports.py --out /tmp/before   # on the old checkout
    python scripts/snapshot_exports.py --out /tmp/after    # on the new one
    diff -r /tmp/before /tmp/after

What it writes per lab: the JSON, CSV, Canvas, Gradescope and Ladok exports, `review` and `show`
of every student, and the course's module grades. Timestamps, durations (the run-time criteria's
values among them), paths of temporary folders and the harness version are replaced by
placeholders: they differ on every run by design. The terminal tables (`.txt`) are kept as their
words, counted: a duration one digit longer rewraps a table without changing what it says.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABS = ["lab1-mlp", "lab2-cnn", "lab3-autoencoder"]

# Values that differ from run to run by design, in JSON keys and in free text.
VOLATILE_KEYS = {"graded_at", "duration_s", "seconds", "started_at", "finished_at", "decided_at", "version",
                 "harness_version", "created_at", "wall_s", "peak_rss_mb", "runtime_s", "elapsed_s",
                 "execution_time", "peak_memory_mb"}
# The sample rubrics' criteria whose value is a time (how long the notebook ran).
TIME_CRITERIA = {"runs", "runtime"}
VOLATILE_TEXT = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?"), "<time>"),
    (re.compile(r"\d+(\.\d+)? ?s\b"), "<secs>"),
    (re.compile(r"/tmp/[^\s\"']+"), "<tmp>"),
]


def scrub_text(text: str) -> str:
    for pattern, placeholder in VOLATILE_TEXT:
        text = pattern.sub(placeholder, text)
    return text


def scrub(value):
    if isinstance(value, dict):
        out = {k: ("<volatile>" if k in VOLATILE_KEYS else scrub(v)) for k, v in sorted(value.items())}
        timed = out.get("id") in TIME_CRITERIA or "<secs>" in str(out.get("message", ""))
        if timed and "value" in out:  # a criterion that measures time
            out["value"] = "<volatile>"
        return out
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def run(args: list[str], env: dict[str, str], check: bool = False) -> str:
    proc = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if check and proc.returncode not in (0, 1):
        raise SystemExit(f"autograder {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def scrub_csv(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    timed = {i for i, name in enumerate(rows[0]) if name.split(":")[0] in TIME_CRITERIA and name.endswith("value")}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for n, row in enumerate(rows):
        writer.writerow([("<volatile>" if n and i in timed else scrub_text(cell)) for i, cell in enumerate(row)])
    return out.getvalue()


def words(text: str) -> str:
    """A table's words, counted, one per line: rich wraps a cell differently when a run time has one digit
    more, which moves words between lines (and between the lines of other columns), never changes them."""
    text = re.sub(r"\d+(\.\d+)?", "<n>", text.replace("<secs>", "<n> s"))
    counts = Counter(re.sub(r"[\u2500-\u257f]", " ", text).split())
    return "".join(f"{count} {word}\n" for word, count in sorted(counts.items()))


def normalise_file(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".json":
        path.write_text(json.dumps(scrub(json.loads(text)), indent=1, sort_keys=True) + "\n")
    elif path.suffix == ".csv":
        path.write_text(scrub_csv(text))
    elif path.suffix == ".txt":
        path.write_text(words(scrub_text(text)))
    else:
        path.write_text(scrub_text(text))


def normalise_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            normalise_file(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the snapshot (replaced)")
    parser.add_argument("--backend", default="local", help="sandbox backend (default: local)")
    parser.add_argument("--labs", nargs="*", default=LABS)
    parser.add_argument("--jobs", default="2")
    args = parser.parse_args()

    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="snapshot-"))
    env = dict(os.environ, AUTOGRADER_BACKEND=args.backend, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    db = str(work / "grades.db")
    for lab in args.labs:
        grade = run(["grade", lab, f"examples/submissions/{lab}", "--db", db, "--jobs", args.jobs], env, check=True)
        write(out / lab / "grade.txt", grade)
        files = {"json": "results.json", "csv": "results.csv", "canvas": "canvas.csv", "ladok": "ladok.txt"}
        for fmt, name in files.items():
            extra = ["--course", "--allow-pending", "--date", "2026-01-15"] if fmt in ("canvas", "ladok") else []
            log = run(["export", lab, "--db", db, "-f", fmt, "-o", str(out / lab / name), *extra], env)
            write(out / lab / f"export-{fmt}.log", log)
        log = run(["export", lab, "--db", db, "-f", "gradescope", "-o", str(out / lab / "gradescope"),
                   "--allow-pending"], env)
        write(out / lab / "export-gradescope.log", log)
        write(out / lab / "review.txt", run(["review", lab, "--db", db], env))
        students = sorted(p.stem for p in (ROOT / "examples/submissions" / lab).iterdir())
        for student in students:
            write(out / lab / "show" / f"{student}.txt", run(["show", lab, student, "--db", db], env))
    write(out / "course-results.txt", run(["course", "results", "--db", db], env))
    write(out / "course-export.log",
          run(["export", "--course", "--db", db, "-f", "csv", "-o", str(out / "course.csv"),
               "--date", "2026-01-15", "--allow-pending"], env))
    normalise_tree(out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"snapshot written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
