"""What keeping the student's objects apart from their judge costs: this checkout against an earlier one.

Runs, in alternating rounds so that drift in the machine's load hits both alike:
- `benchmarks/backends.py --no-write` of each checkout (the toy lab's trivial notebook, both backends);
- each checkout's grading of K distinct copies of the lab1-mlp and lab3-autoencoder `good` samples
  (a markdown cell apart) on docker, one job, in one command, reading each result's stage timings
  from its store; a batch, so that what a grading process does once (importing torch on the host)
  counts as it does for a cohort.
Each checkout runs its own code (`PYTHONPATH` names it first) with this environment's packages.
Prints medians and, unless --no-write, appends them to docs/benchmarks.md. Not a test: run on demand.

    git worktree add /tmp/before 8e5a91a
    python benchmarks/separation.py --before /tmp/before [--rounds 3] [-n 6] [-k 3] [--no-write]
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


def copies(name: str, k: int, folder: Path) -> Path:
    """k hand-ins of the lab's `good` sample that differ by one markdown cell, so no stage is shared."""
    import shutil

    import nbformat

    sample = REPO / "examples" / "submissions" / name / LABS[name]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(k):
        target = folder / (f"good{i}.ipynb" if sample.is_file() else f"good{i}")
        if sample.is_dir():
            shutil.copytree(sample, target)
            path = next(target.glob("*.ipynb"))
        else:
            path = target
            shutil.copyfile(sample, path)
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell(f"copy {i}"))
        nbformat.write(nb, path)
    return folder


def lab(tree: Path, name: str, tmp: Path, k: int) -> list[dict[str, float]]:
    db = tmp / f"{tree.name}-{name}.db"
    subs = copies(name, k, tmp / f"{tree.name}-{name}-subs")
    run(tree, ["-m", "autograder", "grade", name, str(subs), "--backend", "docker", "--jobs", "1", "--force",
               "--db", str(db), "--root", str(tree)])
    with sqlite3.connect(db) as c:
        rows = c.execute("select result from results order by rowid desc limit ?", (k,)).fetchall()
    results = [json.loads(raw) for (raw,) in rows]
    # Copies share their reflection, so the cohort pass sends them to review; every other criterion passes.
    assert all(r["verdict"] in ("G", "review") for r in results), (tree, name, [r["verdict"] for r in results])
    return [r["timings"] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=6, help="toy submissions per backend per round")
    parser.add_argument("-k", type=int, default=3, help="copies of each lab's good sample per round")
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
                    labs.setdefault((which, name), []).extend(lab(tree, name, Path(tmp) / f"r{r}", args.k))
                print(f"round {r + 1}/{args.rounds}: {which} done", file=sys.stderr)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    lines = [f"## The probe stage apart from its judge, {date.today().isoformat()}", "",
             f"`benchmarks/separation.py --rounds {args.rounds} -n {args.n}`: before = the checkout without the "
             f"separation, after = this one; {args.rounds} alternating rounds; {platform.machine()}, "
             f"{len(os.sched_getaffinity(0))} CPUs. Medians over the rounds (each toy figure is itself the "
             f"median of {args.n} submissions; each lab figure is the median over every copy graded, "
             f"{args.k} a round).", "",
             "| seconds per submission | before | after | after minus before |", "|---|---|---|---|"]
    for label in ("probe stage", "wall time"):
        for i, backend in enumerate(("local", "docker")):
            a = med([t[label][i] for t in toys["before"]])
            b = med([t[label][i] for t in toys["after"]])
            lines.append(f"| toy lab, {backend}: {label} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    for name in LABS:
        for key in ("probe", "judge", "probe + judge"):
            parts = key.split(" + ")
            a = med([sum(t[p] for p in parts) for t in labs[("before", name)]])
            b = med([sum(t[p] for p in parts) for t in labs[("after", name)]])
            lines.append(f"| {name} `good`, docker: {key} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with (REPO / "docs" / "benchmarks.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
