"""What keeping the student's objects apart from their judge costs: this checkout against an earlier one.

Runs, in alternating rounds so that drift in the machine's load hits both alike:
- `benchmarks/backends.py --no-write` of each checkout (the toy lab's trivial notebook, both backends);
- each checkout's grading of the lab1-mlp and lab3-autoencoder `good` samples on docker, one job,
  `--force`, reading each result's stage timings from its store.
Each checkout runs its own code (`PYTHONPATH` names it first) with this environment's packages.
Prints medians and, unless --no-write, appends them to docs/benchmarks.md. Not a test: run on demand.

    git worktree add /tmp/before 8e5a91a
    python benchmarks/separation.py --before /tmp/before [--rounds 3] [-n 6] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABS = {"lab1-mlp": "good.ipynb", "lab3-autoencoder": "good"}
ROW = re.compile(r"^\| (wall time|execute stage|probe stage|judge \(host, same code\)) \| ([\d.]+) \| ([\d.]+) \|")


def run(tree: Path, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{tree}: {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def toy(tree: Path, n: int) -> dict[str, tuple[float, float]]:
    """label -> (local, docker) medians from backends.py's table."""
    out = run(tree, [str(tree / "benchmarks" / "backends.py"), "-n", str(n), "--no-write"])
    return {m.group(1): (float(m.group(2)), float(m.group(3))) for m in map(ROW.match, out.splitlines()) if m}


def lab(tree: Path, name: str, tmp: Path) -> dict[str, float]:
    db = tmp / f"{tree.name}-{name}.db"
    run(tree, ["-m", "autograder", "grade", name, str(REPO / "examples" / "submissions" / name / LABS[name]),
               "--backend", "docker", "--jobs", "1", "--force", "--db", str(db), "--root", str(tree)])
    with sqlite3.connect(db) as c:
        (raw,) = c.execute("select result from results order by rowid desc limit 1").fetchone()
    result = json.loads(raw)
    assert result["verdict"] == "G", (tree, name, result["verdict"])
    return result["timings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=6, help="toy submissions per backend per round")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": REPO}
    toys: dict[str, list[dict]] = {k: [] for k in trees}
    labs: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="autograder-separation-") as tmp:
        for r in range(args.rounds):
            for which, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
                toys[which].append(toy(tree, args.n))
                for name in LABS:
                    labs.setdefault((which, name), []).append(lab(tree, name, Path(tmp)))
                print(f"round {r + 1}/{args.rounds}: {which} done", file=sys.stderr)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    lines = [f"## The probe stage apart from its judge, {date.today().isoformat()}", "",
             f"`benchmarks/separation.py --rounds {args.rounds} -n {args.n}`: before = the checkout without the "
             f"separation, after = this one; {args.rounds} alternating rounds; {platform.machine()}, "
             f"{len(os.sched_getaffinity(0))} CPUs. Medians over the rounds (each toy figure is itself the "
             f"median of {args.n} submissions).", "",
             "| seconds per submission | before | after | after minus before |", "|---|---|---|---|"]
    for label in ("probe stage", "wall time"):
        for i, backend in enumerate(("local", "docker")):
            a = med([t[label][i] for t in toys["before"]])
            b = med([t[label][i] for t in toys["after"]])
            lines.append(f"| toy lab, {backend}: {label} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    for name in LABS:
        for key in ("probe", "judge"):
            a = med([t[key] for t in labs[("before", name)]])
            b = med([t[key] for t in labs[("after", name)]])
            lines.append(f"| {name} `good`, docker: {key} stage | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with (REPO / "docs" / "benchmarks.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
