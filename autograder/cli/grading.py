"""Verbs that run submissions: `grade`, `check` (a student's self-check) and `validate-lab`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autograder.cli import options
from autograder.cli.options import Parents, epilog
from autograder.cli.sandbox import prepare_lab_image, stale_image
from autograder.console import clean, criteria_table, err, out, print_results, say
from autograder.errors import UserError
from autograder.results import SubmissionResult
from autograder.store import Store

# The domain is imported where a verb runs, never at start-up: `--help`, `show` and the other
# quick verbs would pay for torch-era imports (numpy, pytest, the Docker SDK) they never use.
if TYPE_CHECKING:
    from autograder.grading.intake import Submission
    from autograder.grading.pipeline import Grader
    from autograder.labs.lab import Lab
    from autograder.sandbox import SandboxBackend


def add_grade(sub: argparse._SubParsersAction, p: Parents) -> None:
    g = sub.add_parser("grade", parents=[p.common, p.db, p.run], help="grade a folder of submissions", **epilog())
    g.add_argument("lab")
    g.add_argument("submissions", type=Path, help="a Canvas or Moodle download (zip or folder), a notebook, a folder "
                   "of notebooks, or a folder or zip per student")
    g.add_argument("--force", action="store_true", help="regrade even what is already graded")
    g.add_argument("--layout", choices=["canvas", "moodle", "plain"],
                   help="how the submissions are laid out (default: recognised from their names)")
    g.add_argument("--handed-in", type=Path, metavar="CSV",
                   help="the LMS's CSV of hand-in times (columns: course.yaml's handed_in_csv)")
    g.add_argument("--course", type=Path, help="course.yaml: roster, deadlines and late policy (default: the course "
                   "folder's, where there is one)")
    g.set_defaults(run=cmd_grade)


def course_of(args: argparse.Namespace):
    """course.yaml and its roster, where the course has them (None, None otherwise)."""
    from autograder.labs.course import DEFAULT_COURSE, load_course, load_roster
    from autograder.labs.lab import find_root

    path = args.course
    if path is None:
        path = find_root(args.root) / DEFAULT_COURSE
        if not path.is_file():
            return None, None
    course = load_course(path, args.root)
    return course, load_roster(course.roster_path) if course.roster_path is not None else None


def cmd_grade(args: argparse.Namespace) -> int:
    from autograder.grading.intake import IntakeSpec
    from autograder.grading.lms import read_download
    from autograder.labs.lab import load_lab

    lab = load_lab(args.lab, args.root)
    course, roster = course_of(args)
    intake = read_download(args.submissions, IntakeSpec.of(lab.spec), args.layout, course, roster, args.handed_in)
    results = grade(lab, intake.submissions, options.store(args), args, args.force, intake.report.lines())
    backends = ", ".join(sorted({r.backend for r in results if r.backend})) or "no"
    print_results(out, results, f"{lab.name} (lab version {lab.version}; {backends} backend)")
    return 1 if any(r.verdict == "error" for r in results) else 0


def grade(lab: Lab, submissions: list[Submission], store: Store, args: argparse.Namespace,
          force: bool, intake: list[str] | tuple[str, ...] = ()) -> list[SubmissionResult]:
    """Grade a batch as the options say, telling the TA what they should know first (the intake report,
    once the options are known to be good), with a progress bar."""
    grader = grader_from(lab, store, args, force)
    try:
        say(*intake)
        for note in backend_notes(grader.backend, args):
            say(f"note: {note}")
        for note in grader.notes:
            say(f"note: {note}")
        return with_progress(grader, lab, submissions)
    finally:
        grader.executor.close()


def grader_from(lab: Lab, store: Store, args: argparse.Namespace, force: bool) -> Grader:
    """The grader the options ask for; a usage error naming the option a model refuses."""
    from autograder.grading.pipeline import Grader, Options
    from autograder.sandbox.gpus import parse_ids

    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    ray = args.executor == "ray"
    if args.address is not None and not ray:
        raise UserError("--address is for --executor ray", "add --executor ray to grade on that Ray cluster")
    if ray and args.gpus is not None:
        raise UserError("--gpus is for the local executor: on Ray, each node's GPUs are the ones its "
                        "`ray start --num-gpus` declares", "leave out --gpus")
    try:
        opts = Options(force=force, jobs=args.jobs or (0 if ray else 1), limits=options.limits(args),
                       jobs_per_gpu=args.jobs_per_gpu, gpus=None if args.gpus is None else parse_ids(args.gpus),
                       executor=args.executor, address=args.address, gpu_budget_s=gpu_budget(lab, args))
        if ray:
            backend = node_backend(args)
        else:
            prepare_lab_image(lab, args)
            backend = local_backend(args)
        return Grader(lab, store, backend, opts)
    except ValidationError as exc:
        raise options.option_error(exc) from None


def gpu_budget(lab: Lab, args: argparse.Namespace) -> float | None:
    """The course's per-student GPU-seconds for the lab (course.yaml's gpu_budget_s), where the verb has a course."""
    if not hasattr(args, "course"):
        return None
    course, _ = course_of(args)
    entry = course.lab(lab.name) if course is not None else None
    return entry.gpu_budget_s if entry is not None else None


def local_backend(args: argparse.Namespace) -> SandboxBackend:
    from autograder.sandbox import BackendSettings, get_backend

    return get_backend(args.backend, BackendSettings(image=args.image, runtime=args.runtime))


def node_backend(args: argparse.Namespace) -> SandboxBackend:
    """The backend each Ray node runs the stages with, checked there and not here (this machine may have no
    engine at all). `auto` is docker: a cluster grades isolated unless --backend local says otherwise."""
    from autograder.sandbox import AUTO, BACKENDS, BackendSettings

    name = "docker" if args.backend == AUTO else args.backend
    if name not in BACKENDS:
        raise UserError(f"unknown sandbox backend {name!r}", f"choose one of: {', '.join([AUTO, *sorted(BACKENDS)])}")
    return BACKENDS[name](BackendSettings(image=args.image, runtime=args.runtime))


def backend_notes(backend: SandboxBackend, args: argparse.Namespace) -> list[str]:
    """What a TA should know about the backend before a batch: a stale image, no isolation."""
    from autograder.sandbox import AUTO

    notes = []
    if backend.name == "docker" and args.executor != "ray":  # on Ray, each node checks its own image
        stale = stale_image(backend, args.root)
        if stale:
            notes.append(stale)
    if not backend.isolates:
        why = "no Docker engine answers, so " if args.backend == AUTO and args.executor != "ray" else ""
        notes.append(f"{why}the {backend.name} backend runs student code without isolation; "
                     "use it for your own notebooks and trusted samples")
    return notes


def with_progress(grader: Grader, lab: Lab, submissions: list[Submission]) -> list[SubmissionResult]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"grading {lab.name}", total=len(submissions), last="")
        reused: list[str] = []

        def done(result: SubmissionResult, cached: bool) -> None:
            if cached:
                reused.append(result.student)
            last = f"{result.student}: {result.verdict}" + (" (already graded)" if cached else "")
            progress.update(task, advance=1, last=escape(last))  # a student id is a file name, not markup

        results = grader.grade_all(submissions, done)
    if reused:
        say(f"note: {len(reused)} of {len(results)} were already graded with this content, lab version and "
            "rubric; their recorded results are shown (--force regrades)")
    return results


def add_validate_lab(sub: argparse._SubParsersAction, p: Parents) -> None:
    v = sub.add_parser("validate-lab", parents=[p.common, p.run],
                       help="check a lab: it loads, the solved hand-in gets G, the untouched one U", **epilog())
    v.add_argument("lab")
    v.set_defaults(run=cmd_validate_lab)


def cmd_validate_lab(args: argparse.Namespace) -> int:
    from autograder.grading.validation import EXPECTED, validate
    from autograder.labs.lab import load_lab

    lab = load_lab(args.lab, args.root)
    out.print(f"[green]ok[/] {lab.spec_path} and {lab.rubric_path} load")
    v = validate(lab, args.root, lambda lab, subs, store: grade(lab, subs, store, args, force=True))
    if not v.cell_problems:
        out.print("[green]ok[/] every cell the rubric names is in the student notebook and the solution")
    print_results(out, v.results, f"{v.lab.name}: validation")
    if not v.probe_problems:
        out.print("[green]ok[/] the probes produce every metric and split the rubric names")
    if not v.import_problems:
        out.print("[green]ok[/] every module the solution and the templates import is in the lab's environment")
    for problem in v.import_problems + v.template_problems + v.cell_problems + v.probe_problems:
        out.print(f"[red]FAIL[/] {escape(str(problem))}")
    if v.hidden_only:
        out.print(f"[yellow]note[/] the students' self-check cannot measure {', '.join(v.hidden_only)} (hidden "
                  "probes or tests only): public probes in assignments/<lab>/probes.py and public tests would let it")
    if v.self_check.passed:
        out.print("[green]ok[/] the solution passes the students' self-check (public probes and tests, "
                  "hidden splits stood in for)")
    else:
        names = ", ".join(f"{c.id} ({c.status}: {c.message})" for c in v.self_check.problems) or "the run"
        out.print(f"[red]FAIL[/] the solution fails the students' self-check: {escape(names)}")
    for r in v.wrong_verdicts:
        out.print(f"[red]FAIL[/] {r.student} got {r.verdict}, expected {EXPECTED[r.student]}")
    if not v.wrong_verdicts:
        what = "notebook" if lab.spec.notebook else "modules"
        out.print(f"[green]ok[/] the solved student {what} get{'s' if what == 'notebook' else ''} G and the untouched "
                  f"one{'' if what == 'notebook' else 's'} U")
    return 0 if v.ok else 1


def add_check(sub: argparse._SubParsersAction, p: Parents) -> None:
    c = sub.add_parser("check", parents=[p.common],
                       help="self-check: run your notebook as the grader will, offline, and see every criterion",
                       **epilog(options.CHECK_EXIT_CODES))
    c.add_argument("lab")
    c.add_argument("path", type=Path, help="your notebook, or your submission folder or zip")
    c.set_defaults(run=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from autograder.grading.selfcheck import check
    from autograder.labs.lab import find_for_check

    lab = find_for_check(args.lab, args.path, args.root)
    out.print(f"Checking {args.path} against {lab.name} (lab version {lab.version}) on this computer; "
              "nothing in your folder is changed.")
    checked = check(lab, args.path)
    out.print(criteria_table(checked.result))
    for note in checked.result.notes:
        out.print(clean(f"note: {note}"))
    if checked.margin:
        out.print("[green]Everything the self-check can check passes, with a margin.[/] "
                  "Estimates are marked: grading measures them on hidden data.")
        return 0
    if checked.passed:
        names = ", ".join(c.id for c in checked.close)
        out.print(f"[yellow]Everything passes, but {names} {'is' if len(checked.close) == 1 else 'are'} close to "
                  "the bar:[/] grading on hidden data may decide the other way.")
        return 0
    names = ", ".join(c.id for c in checked.problems) or "notebook-runs"
    out.print(f"[red]Not yet: {names} would keep this from G.[/] See 'What to do' above.")
    return 1
