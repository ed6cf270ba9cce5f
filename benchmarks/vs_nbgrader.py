"""Side by side with nbgrader's `autograde`: the same cohort graded by both, alternating in one run.

Two workloads: the toy lab's trivial notebook x N (distinct copies), and lab1-mlp's sample cohort
replicated to N (each copy made distinct by a comment in a student cell, so no stage is shared).
nbgrader grades them as a course does: its own course directory, nbgrader_config.py and gradebook
set up here, the assignment made by its own `generate_assignment` from a source that matches the
lab (lab1: the reference solution itself; toy: the solution with an autograded test cell on
`predict`), then `nbgrader autograde` over `submitted/`: unsandboxed, one notebook at a time.
autograder grades the same notebooks with `autograder grade` on the local and docker backends,
`--jobs 1` and `--jobs` = the CPUs here. Both through their command lines, each from scratch
(a fresh gradebook or store), configurations rotating from round to round.

Reports medians over the rounds: seconds per submission (wall time of the batch / N), submissions
per minute and the ratio to nbgrader's, and what one late hand-in costs: grading one more student
into the already-graded cohort (nbgrader `--student`; autograder the whole folder again, which
skips what is on record), against that notebook's own run time. Not a test: run on a quiet
machine (`--rounds 3 -n 20` takes about an hour on 2 cores).

    python benchmarks/vs_nbgrader.py [-n 20] [--rounds 3] [--workloads toy lab1] [--configs ...] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from make_course import SOLUTION, notebook  # noqa: E402

from autograder.store import Store  # noqa: E402

CPUS = len(os.sched_getaffinity(0))
BIN = Path(sys.executable).parent  # nbgrader calls `alembic` by name: the venv's bin goes first on PATH
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
CONFIGS = ["nbgrader", "local-1", f"local-{CPUS}", "docker-1", f"docker-{CPUS}"]
LATE = "late"


@dataclass
class Workload:
    """One cohort as both graders see it."""

    key: str
    label: str  # in the table
    lab: str
    root: Path  # the course folder autograder reads the lab from
    source: nbformat.NotebookNode  # nbgrader's source notebook (with solutions and tests)
    files: Path  # what the assignment folder holds beside the notebook (data/)
    students: dict[str, nbformat.NotebookNode]
    late: nbformat.NotebookNode
    cell_timeout: int


@dataclass
class Run:
    batch_s: float
    late_s: float
    late_notebook_s: float | None = None  # the late hand-in's own run, as autograder measured it


@dataclass
class Figures:
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def add(self, config: str, run: Run) -> None:
        self.runs.setdefault(config, []).append(run)

    def median(self, config: str, what: Callable[[Run], float | None]) -> float | None:
        values = [v for v in (what(r) for r in self.runs.get(config, [])) if v is not None]
        return statistics.median(values) if values else None


# --- the workloads ------------------------------------------------------------------------------------------


def _distinct(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    """A copy whose content differs from every other copy (a comment in the student's last solution cell)."""
    nb = nbformat.from_dict(nb)
    cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    target = cells[-1] if cells else next(c for c in reversed(nb.cells) if c.cell_type == "code")
    target.source += f"\n# {tag}"
    return nb


def toy(tmp: Path, n: int) -> Workload:
    root = tmp / "toy-course"
    shutil.copytree(REPO / "tests" / "fixtures" / "course", root)
    source = nbformat.read(root / "reference" / "toy" / "solution.ipynb", as_version=4)
    test = new_code_cell("assert (predict(train['X']) == train['y']).mean() > 0.9")
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "test_predict", "locked": True, "points": 1,
                                 "solution": False, "schema_version": 3}
    source.cells.insert(4, test)  # after the solution cell, as an nbgrader author would write it
    students = {f"s{i:03d}": notebook(f"# copy {i}\n{SOLUTION}") for i in range(n)}
    return Workload("toy", f"trivial notebook x {n}", "toy", root, source, root / "assignments" / "toy",
                    students, notebook(f"# {LATE}\n{SOLUTION}"), 30)


def lab1(tmp: Path, n: int) -> Workload:
    cohort = sorted((REPO / "examples" / "submissions" / "lab1-mlp").glob("*.ipynb"))
    students = {}
    for i in range(n):
        path = cohort[i % len(cohort)]
        students[f"{path.stem}-{i:03d}"] = _distinct(nbformat.read(path, as_version=4), f"copy {i}")
    late = _distinct(nbformat.read(cohort[0].with_name("good.ipynb"), as_version=4), LATE)
    source = nbformat.read(REPO / "reference" / "lab1-mlp" / "solution.ipynb", as_version=4)
    names = ", ".join(sorted({p.stem for p in cohort[:n]}))
    return Workload("lab1", f"lab1-mlp sample cohort ({names}) to {n}", "lab1-mlp", REPO, source,
                    REPO / "assignments" / "lab1-mlp", students, late, 30)


WORKLOADS = {"toy": toy, "lab1": lab1}


# --- nbgrader -----------------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, ok: Callable[[subprocess.CompletedProcess], bool] | None = None) -> float:
    """Seconds the command took; a RuntimeError with its output when it failed."""
    t = time.perf_counter()  # TMPDIR: the graders' work dirs go in the run's own folder, removed with it
    proc = subprocess.run(cmd, cwd=cwd, env={**ENV, "TMPDIR": str(cwd)}, capture_output=True, text=True)
    took = time.perf_counter() - t
    if not (ok(proc) if ok else proc.returncode == 0):
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return took


def for_nbgrader(student: nbformat.NotebookNode, release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What the student would have handed in to nbgrader: their notebook as it is when it holds every
    graded cell of nbgrader's release (lab1's cohort came from the same source), else nbgrader's release
    with the student's answers in its solution cells (the toy notebooks lack nbgrader's test cell)."""
    def ids(nb):
        return {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}

    if ids(release) <= ids(student):
        return student
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in student.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def nbgrader_course(work: Workload, tmp: Path) -> tuple[Path, nbformat.NotebookNode]:
    """A course directory with the assignment generated by nbgrader itself (untimed); (root, release)."""
    root = tmp / "nbgrader"
    assignment = root / "source" / work.key
    assignment.mkdir(parents=True)
    for item in work.files.iterdir():
        if item.is_dir() and item.name == "data":
            shutil.copytree(item, assignment / "data")
    nbformat.write(work.source, assignment / f"{work.key}.ipynb")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'bench'\n"
        f"c.CourseDirectory.db_url = {f'sqlite:///{root}/gradebook.db'!r}\n"
        f"c.Execute.timeout = {work.cell_timeout}\n")
    _run([sys.executable, "-m", "nbgrader", "generate_assignment", work.key, "--force"], root,
         ok=lambda p: p.returncode == 0 and "ERROR" not in p.stdout + p.stderr)
    return root, nbformat.read(root / "release" / work.key / f"{work.key}.ipynb", as_version=4)


def _hand_in(root: Path, key: str, student: str, nb: nbformat.NotebookNode, release) -> None:
    folder = root / "submitted" / student / key
    folder.mkdir(parents=True)
    nbformat.write(for_nbgrader(nb, release), folder / f"{key}.ipynb")


def _autograded(root: Path, key: str) -> int:
    return len(list((root / "autograded").glob(f"*/{key}/{key}.ipynb")))


def run_nbgrader(work: Workload, tmp: Path) -> Run:
    root, release = nbgrader_course(work, tmp)
    for student, nb in work.students.items():
        _hand_in(root, work.key, student, nb, release)
    cmd = [sys.executable, "-m", "nbgrader", "autograde", work.key, "--force"]
    batch = _run(cmd, root)
    if _autograded(root, work.key) != len(work.students):
        raise RuntimeError(f"nbgrader autograded {_autograded(root, work.key)} of {len(work.students)}")
    _hand_in(root, work.key, LATE, work.late, release)
    late = _run([*cmd, "--student", LATE], root)
    if not (root / "autograded" / LATE / work.key / f"{work.key}.ipynb").is_file():
        raise RuntimeError("nbgrader did not grade the late hand-in")
    if not _scored(root, work.key, LATE):  # a solved notebook earns its test cells' points
        raise RuntimeError("nbgrader gave the late hand-in (a solved notebook) no points: check the course setup")
    return Run(batch, late)


def _scored(root: Path, key: str, student: str) -> float:
    """The autograded score nbgrader recorded in its gradebook for one student."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root}/gradebook.db") as gradebook:
        return float(gradebook.find_submission(key, student).score)


# --- autograder ---------------------------------------------------------------------------------------------


def run_autograder(work: Workload, backend: str, jobs: int, tmp: Path) -> Run:
    folder = tmp / "submissions"
    folder.mkdir()
    for student, nb in work.students.items():
        nbformat.write(nb, folder / f"{student}.ipynb")
    db = tmp / "db" / "grades.db"
    cmd = [sys.executable, "-m", "autograder", "grade", work.lab, str(folder), "--root", str(work.root),
           "--db", str(db), "--backend", backend, "--jobs", str(jobs)]
    graded = lambda p: p.returncode in (0, 1)  # noqa: E731 - 1: some verdict is `error`, still a result
    batch = _run(cmd, tmp, ok=graded)
    nbformat.write(work.late, folder / f"{LATE}.ipynb")
    late = _run(cmd, tmp, ok=graded)
    store = Store.reader(db)
    try:
        results = {r.student: r for r in store.latest(work.lab)}
    finally:
        store.close()
    if len(results) != len(work.students) + 1:
        raise RuntimeError(f"autograder recorded {len(results)} results for {len(work.students) + 1} hand-ins")
    execution = results[LATE].execution
    return Run(batch, late, execution.duration_s if execution is not None else None)


def docker_answers() -> str | None:
    """Why the docker configurations can't run here, or None."""
    from autograder.errors import UserError
    from autograder.sandbox import get_backend

    try:
        get_backend("docker")
    except UserError as exc:
        return exc.message
    return None


def run_config(config: str, work: Workload, tmp: Path) -> Run:
    if config == "nbgrader":
        return run_nbgrader(work, tmp)
    backend, jobs = config.split("-")
    return run_autograder(work, backend, int(jobs), tmp)


# --- the table ----------------------------------------------------------------------------------------------


def heading(config: str) -> str:
    if config == "nbgrader":
        return "nbgrader"
    backend, jobs = config.split("-")
    return f"{backend} --jobs {jobs}"


def table(figures: dict[str, Figures], works: list[Workload], configs: list[str], n: int) -> list[str]:
    lines = ["| workload | " + " | ".join(heading(c) for c in configs) + " |",
             "|---" * (len(configs) + 1) + "|"]
    for work in works:
        fig = figures[work.key]
        base = fig.median("nbgrader", lambda r: r.batch_s)
        per, rate, late = [], [], []
        for c in configs:
            batch = fig.median(c, lambda r: r.batch_s)
            if batch is None:
                per.append("")
                rate.append("")
                late.append("")
                continue
            ratio = f" ({base / batch:.2f}x)" if base and c != "nbgrader" else ""
            per.append(f"{batch / n:.2f}{ratio}")
            rate.append(f"{60 * n / batch:.1f}")
            late_s = fig.median(c, lambda r: r.late_s)
            own = fig.median(c, lambda r: r.late_notebook_s)
            late.append(f"{late_s:.1f}" + (f" (notebook {own:.1f})" if own is not None else ""))
        lines.append(f"| {work.label}, s per submission | " + " | ".join(per) + " |")
        lines.append(f"| {work.label}, submissions per minute | " + " | ".join(rate) + " |")
        lines.append(f"| {work.key}: one late hand-in into the graded cohort, s | " + " | ".join(late) + " |")
    return lines


def targets(figures: dict[str, Figures], works: list[Workload], n: int) -> list[str]:
    """The issue's targets, each said as met or not from these figures."""
    out = []
    many, one = f"docker-{CPUS}", "docker-1"
    for work in works:
        fig = figures[work.key]
        base = fig.median("nbgrader", lambda r: r.batch_s)
        for config, bar, what in ((many, 2.0, f"docker --jobs {CPUS} at least 2x nbgrader's rate"),
                                  (one, 1.0, "docker --jobs 1 no slower than nbgrader")):
            batch = fig.median(config, lambda r: r.batch_s)
            if base and batch:
                ratio = base / batch
                out.append(f"- {work.key}: {what}: {ratio:.2f}x, {'met' if ratio >= bar else 'not met'}")
        late = fig.median(one, lambda r: r.late_s)
        own = fig.median(one, lambda r: r.late_notebook_s)
        if late is not None and own is not None:
            met = "met" if late <= own + 2 else "not met"
            out.append(f"- {work.key}: one late hand-in (docker --jobs 1) at most its notebook time + 2 s: "
                       f"{late:.1f} s against {own:.1f} + 2 s, {met}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="submissions per workload (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["toy", "lab1"])
    ap.add_argument("--configs", nargs="+", choices=CONFIGS, default=CONFIGS,
                    help="which graders (backend-jobs; default all; nbgrader always, as every ratio is to it)")
    ap.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md")
    args = ap.parse_args()
    configs = list(args.configs)
    skipped = ""
    if any(c.startswith("docker") for c in configs) and (why := docker_answers()):
        configs = [c for c in configs if not c.startswith("docker")]
        skipped = f"docker left out: {why}"
        print(f"note: {skipped}", file=sys.stderr)
    if "nbgrader" not in configs:
        configs.insert(0, "nbgrader")  # every ratio is to it

    figures = {w: Figures() for w in args.workloads}
    with tempfile.TemporaryDirectory(prefix="bench-vs-nbgrader-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "workloads").mkdir()
        works = [WORKLOADS[w](tmp / "workloads", args.n) for w in args.workloads]
        for r in range(args.rounds):
            for work in works:
                order = configs[r % len(configs):] + configs[:r % len(configs)]  # who goes first rotates
                for config in order:
                    scratch = tmp / f"round{r}-{work.key}-{config}"
                    scratch.mkdir()
                    run = run_config(config, work, scratch)
                    figures[work.key].add(config, run)
                    print(f"round {r + 1} {work.key} {config}: {run.batch_s:.1f} s for {args.n}, late hand-in "
                          f"{run.late_s:.1f} s", file=sys.stderr, flush=True)
                    shutil.rmtree(scratch, ignore_errors=True)

    lines = [
        f"## Side by side with nbgrader, {date.today().isoformat()}",
        "",
        f"`benchmarks/vs_nbgrader.py -n {args.n} --rounds {args.rounds}`: the same notebooks graded by nbgrader "
        f"{_version('nbgrader')} (`autograde`, its own course directory and gradebook; unsandboxed, one notebook "
        "at a time) and by `autograder grade` (each from scratch, through the command lines), configurations "
        f"alternating in one run; {platform.machine()}, {CPUS} CPUs, Python {platform.python_version()}. "
        f"Medians over {args.rounds} rounds. Ratio = our submissions per minute / nbgrader's. A late hand-in: "
        "one more student graded into the graded cohort (nbgrader `--student`; autograder the folder again, "
        "what is on record skipped), with its notebook's own run time where autograder measured it."
        + (f" ({skipped}.)" if skipped else ""),
        "",
        *table(figures, works, configs, args.n),
        "",
        *targets(figures, works, args.n),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with (REPO / "docs" / "benchmarks.md").open("a") as f:
            f.write(text + "\n")
        print(f"appended to {REPO / 'docs' / 'benchmarks.md'}", file=sys.stderr)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
