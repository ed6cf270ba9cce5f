"""The `autograder` command: verbs follow the course's lifecycle (assign, grade, export)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autograder import __version__
from autograder.errors import AutograderError, UserError
from autograder.publish.export import FORMATS

EXIT_CODES = """\
exit codes:
  0   every submission got a verdict (G, U or review); for validate-lab: the lab checks out
  1   some submissions got `error` (the harness could not grade them); validate-lab or
      sandbox doctor: a check failed
  2   a usage mistake or a malformed lab, rubric or path (the message says which and how to fix it)
  3   an internal error (a bug: rerun with --debug and report the traceback)
  130 interrupted (results recorded so far are kept)
"""

EXPORT_EXIT_CODES = """\
exit codes:
  0   everything was exported
  1   some students were held back (in review or error, without --allow-pending), unknown to the roster,
      or refused by Ladok: the lines on stderr name them
  2   a usage mistake or a malformed course.yaml or roster (the message says which and how to fix it)
  3   an internal error (a bug: rerun with --debug and report the traceback)
"""

CHECK_EXIT_CODES = """\
exit codes:
  0   everything the self-check can check passes (estimates close to a bar are warned about)
  1   something would keep the notebook from G: the table says what and what to do
  2   a usage mistake (wrong lab name or path): the message says how to fix it
  3   an internal error (a bug: rerun with --debug and report the traceback)
"""

err = Console(stderr=True)
# Piped output (CI logs, `| less`) gets a table wide enough to read rather than rich's 80 columns.
out = Console() if Console().is_terminal else Console(width=120)


def _size(text: str) -> int:
    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 2GiB or 512MiB") from None


def _date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, help="course folder (default: the nearest with assignments/ and rubrics/)")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, help="results store (default: .autograder/grades.db in the current folder)")
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--backend", default=os.environ.get("AUTOGRADER_BACKEND", "auto"),
                     help="sandbox backend: docker (isolated), local (no isolation), or auto: docker whenever an "
                     "engine answers, else local (default: $AUTOGRADER_BACKEND or auto)")
    run.add_argument("--image", help="docker backend: the sandbox image (default: autograder-sandbox:latest)")
    run.add_argument("--runtime", help="docker backend: the OCI runtime, e.g. runsc for gVisor")
    run.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    run.add_argument("--gpus", help="GPU ids runs may use, e.g. 0,1, or 'none' (default: every GPU nvidia-smi lists)")
    run.add_argument("--jobs-per-gpu", type=int, default=1, help="runs that share one GPU at once (default 1)")
    run.add_argument("--timeout", type=_positive, help="override the lab's whole-run time limit, in seconds")
    run.add_argument("--cell-timeout", type=_positive, help="override the lab's per-cell time limit, in seconds")
    run.add_argument("--memory", type=_size, help="override the lab's memory limit, e.g. 2GiB")
    run.add_argument("--cpus", type=_positive, help="override the lab's CPU limit")
    run.add_argument("--pids", type=int, help="override the lab's limit on processes and threads (docker)")
    run.add_argument("--shm", type=_size, help="override the lab's /dev/shm size, e.g. 1GiB (docker)")
    run.add_argument("--disk", type=_size, help="override what a run may write into its folder, e.g. 8GiB")
    run.add_argument("--gpu-memory-gb", type=_positive, help="override the lab's per-process GPU memory cap")

    p = argparse.ArgumentParser(
        prog="autograder", description="Grade deep-learning lab notebooks: U/G verdicts with reasons.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"autograder {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("grade", parents=[common, db, run], help="grade a folder of submissions",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("lab")
    g.add_argument("submissions", type=Path, help="a notebook, a folder of notebooks, or a folder per student")
    g.add_argument("--force", action="store_true", help="regrade even what is already graded")

    e = sub.add_parser("export", parents=[common, db],
                       help="export results: json, csv, Canvas gradebook, Gradescope, the Ladok list",
                       epilog=EXPORT_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("lab", nargs="?", help="the lab (leave out with --course for the lab module's grade)")
    e.add_argument("--format", "-f", choices=list(FORMATS), default="json")
    e.add_argument("-o", "--output", required=True,
                   help="file to write ('-' for stdout); for gradescope a folder (one <student>/results.json)")
    e.add_argument("--course", nargs="?", const="course.yaml", type=Path, default=None,
                   help="course.yaml (default when given bare: the course folder's): its roster, Canvas column and "
                   "Ladok codes; without a lab, export the lab module's grade")
    e.add_argument("--roster", type=Path, help="roster CSV mapping student ids to the LMS's and Ladok's")
    e.add_argument("--assignment", help="canvas: the gradebook column, e.g. 'Lab 1 (12345)'")
    e.add_argument("--points", type=_positive, default=1.0, help="canvas, gradescope: the points G is worth")
    e.add_argument("--canvas-grading", choices=["points", "complete"], default="points")
    e.add_argument("--allow-pending", action="store_true",
                   help="publish students in review or error as not G instead of holding them back")
    e.add_argument("--date", type=_date, help="ladok, module grades: the examination date (YYYY-MM-DD)")
    e.add_argument("--include-failed", action="store_true", help="ladok: report U too")
    e.add_argument("--student", action="append", help="only this student (repeatable)")
    e.add_argument("--visibility", choices=["hidden", "after_due_date", "after_published", "visible"],
                   default="visible", help="gradescope: when students see the results")
    e.add_argument("--send", action="store_true", help="ladok: report to Ladok through ladok3 (else a dry run)")
    e.add_argument("--finalize", action="store_true", help="ladok --send: mark the results ready for attestation")
    e.add_argument("--grader", action="append", default=[], help="ladok --finalize: 'Name <email>' (repeatable)")

    fb = sub.add_parser("feedback", parents=[common, db],
                        help="write each student's feedback: a self-contained HTML page and a Markdown file",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    fb.add_argument("lab")
    fb.add_argument("-o", "--output", type=Path, help="folder to write (default: feedback/<lab>)")
    fb.add_argument("--student", action="append", help="only this student (repeatable)")

    rp = sub.add_parser("report", parents=[common, db],
                        help="write the cohort report for staff: one self-contained HTML file",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("lab")
    rp.add_argument("-o", "--output", type=Path, help="file to write (default: feedback/<lab>/report.html)")
    rp.add_argument("--feedback-dir", default=".",
                    help="where the students' feedback pages are, relative to the report (default: beside it)")

    co = sub.add_parser("course", help="the lab module: each student's grade over the course's labs")
    co_sub = co.add_subparsers(dest="course_command", required=True, metavar="COURSE_COMMAND")
    cr = co_sub.add_parser("results", parents=[common, db],
                           help="each student's lab module grade: G only when every required lab is G",
                           epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    cr.add_argument("--course", type=Path, default=None, help="course.yaml (default: the course folder's)")
    cr.add_argument("--date", type=_date, help="the examination date (YYYY-MM-DD), over the course's rule")

    r = sub.add_parser("review", parents=[common, db], help="list what waits for a human, with the evidence",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("lab")

    o = sub.add_parser("override", parents=[common, db],
                       help="record a TA's decision on one criterion; it survives regrading",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    o.add_argument("lab")
    o.add_argument("student")
    o.add_argument("criterion", help="criterion id, as in the rubric")
    o.add_argument("decision", choices=["pass", "fail", "clear"], help="clear withdraws the standing decision")
    o.add_argument("--note", default="", help="why (required for pass and fail); the student may read it")
    o.add_argument("--by", default=None, help="who decides (default: $AUTOGRADER_USER or the login name)")

    sh = sub.add_parser("show", parents=[common, db], help="one student's current result, every criterion",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sh.add_argument("lab")
    sh.add_argument("student")

    v = sub.add_parser("validate-lab", parents=[common, run],
                       help="check a lab: it loads, the solved student notebook gets G, the blank one U",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("lab")

    a = sub.add_parser("assign", parents=[common],
                       help="generate the student notebook and module templates from the reference (nbgrader)")
    a.add_argument("lab")

    rel = sub.add_parser("release", parents=[common],
                         help="build the student kit; fails if anything hidden would leak into it",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    rel.add_argument("lab")
    rel.add_argument("-o", "--output", type=Path, help="kit folder (default: release/<lab>)")
    rel.add_argument("--force", action="store_true", help="replace the kit folder if it exists")
    rel.add_argument("--zip", action="store_true", help="also write <kit folder>.zip")

    c = sub.add_parser("check", parents=[common],
                       help="self-check: run your notebook as the grader will, offline, and see every criterion",
                       epilog=CHECK_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("lab")
    c.add_argument("path", type=Path, help="your notebook, or your submission folder or zip")

    box = sub.add_parser("sandbox", help="the docker backend's image and engine: build, doctor")
    box_sub = box.add_subparsers(dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND")
    b = box_sub.add_parser("build", parents=[common], help="build the sandbox image (wheels downloaded on the host)",
                           epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--tag", default=None, help="image name (default: autograder-sandbox:latest)")
    b.add_argument("--base-image", default=None,
                   help="FROM image, e.g. a CUDA image for GPU hosts (default: python:3.11-slim-bookworm; "
                   "bootstrapped from Debian with debootstrap when it can't be pulled)")
    b.add_argument("--torch", default=None, help="torch requirement, e.g. a CUDA build's ('' for none; "
                   "default: torch==2.13.0, the CPU build)")
    b.add_argument("--pip-arg", action="append", default=[], dest="pip_args",
                   help="extra argument for `pip download`, e.g. --pip-arg=--index-url=URL (repeatable)")
    b.add_argument("--no-cache", action="store_true", help="download the wheels again; build without layer cache")
    b.add_argument("--if-stale", action="store_true",
                   help="build only when the image is missing or older than sandbox/'s Dockerfile and requirements")
    d = box_sub.add_parser("doctor", parents=[common],
                           help="check the engine, the image, runtimes and GPUs, with the fix for each problem",
                           epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--image", default=None, help="image to check (default: autograder-sandbox:latest)")
    d.add_argument("--runtime", default=None, help="an OCI runtime you mean to use, e.g. runsc")

    s = sub.add_parser("schema", parents=[common], help="write the JSON Schemas of lab.yaml and rubric files")
    s.add_argument("-o", "--output", type=Path, default=Path("schemas"), help="folder (default: schemas/)")
    return p


def main(argv: list[str] | None = None) -> int:
    # As in the runner: jsonschema's optional IRI-format support (rfc3987_syntax) costs 1.4 s of
    # imports in every command that reads a notebook, for formats no notebook uses.
    sys.modules.setdefault("rfc3987_syntax", None)
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        from autograder.sandbox.base import CANCEL

        CANCEL.set()
        err.print("[yellow]interrupted[/]: results recorded so far are kept")
        return 130
    except AutograderError as exc:
        if args.debug:
            raise
        _say(f"error: {exc.message}", f"hint: {exc.hint}" if exc.hint else "")
        return exc.exit_code
    except Exception as exc:  # a bug; say so in one line unless --debug
        if args.debug:
            raise
        _say(f"internal error: {type(exc).__name__}: {exc}",
             "hint: rerun with --debug for the traceback, and report it")
        return 3


def _say(*lines: str) -> None:
    """Errors go out as plain lines, never wrapped or styled, so scripts and people read them alike."""
    sys.stderr.write("".join(f"{line}\n" for line in lines if line))


def _option_error(exc: ValidationError) -> UserError:
    """A CLI value the models refuse, named as the option the user typed."""
    problem = exc.errors()[0]
    return UserError(f"--{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}")


def _limits(args) -> dict:
    overrides = {"timeout": args.timeout, "cell_timeout": args.cell_timeout, "memory": args.memory,
                 "cpus": args.cpus, "pids": args.pids, "shm": args.shm, "disk": args.disk,
                 "gpu_memory_gb": args.gpu_memory_gb}
    return {k: v for k, v in overrides.items() if v is not None}


def _store(args):
    from autograder.store import DEFAULT_DB, Store

    return Store(args.db or DEFAULT_DB)


def _grade(lab, submissions, store, args, force: bool):
    from autograder.grading.pipeline import Grader, Options
    from autograder.sandbox import AUTO, BackendSettings, get_backend
    from autograder.sandbox.gpus import parse_ids

    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    try:
        limits = _limits(args)
        options = Options(force=force, jobs=args.jobs, limits=limits, jobs_per_gpu=args.jobs_per_gpu,
                          gpus=None if args.gpus is None else parse_ids(args.gpus))
        backend = get_backend(args.backend, BackendSettings(image=args.image, runtime=args.runtime))
        grader = Grader(lab, store, backend, options)
    except ValidationError as exc:
        raise _option_error(exc) from None
    if backend.name == "docker":
        _note_stale_image(backend, args.root)
    if not backend.isolates:
        why = "no Docker engine answers, so " if args.backend == AUTO else ""
        _say(f"note: {why}the {backend.name} backend runs student code without isolation; "
             "use it for your own notebooks and trusted samples")
    for note in grader.notes:
        _say(f"note: {note}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"grading {lab.name}", total=len(submissions), last="")
        reused: list[str] = []

        def done(result, cached):
            if cached:
                reused.append(result.student)
            last = f"{result.student}: {result.verdict}" + (" (already graded)" if cached else "")
            progress.update(task, advance=1, last=escape(last))  # a student id is a file name, not markup

        results = grader.grade_all(submissions, done)
    if reused:
        _say(f"note: {len(reused)} of {len(results)} were already graded with this content, lab version and "
             "rubric; their recorded results are shown (--force regrades)")
    return results


def _note_stale_image(backend, root: Path | None) -> None:
    """Grading goes on with an image older than sandbox/ (a TA may rebuild between batches), but says so."""
    from autograder.sandbox.build.image import image_status

    status = image_status(backend.client, backend.image, context_dir=_sandbox_context(root))
    if status.stale:
        _say(f"note: the sandbox image {backend.image} is stale ({status.reason}); "
             "rebuild it with `autograder sandbox build`")


def cmd_grade(args) -> int:
    from autograder.console import print_results
    from autograder.grading.intake import discover
    from autograder.labs.lab import load_lab

    lab = load_lab(args.lab, args.root)
    submissions = discover(args.submissions, lab.spec.files.student)
    store = _store(args)
    results = _grade(lab, submissions, store, args, args.force)
    backends = ", ".join(sorted({r.backend for r in results if r.backend})) or "no"
    print_results(out, results, f"{lab.name} (lab version {lab.version}; {backends} backend)")
    return 1 if any(r.verdict == "error" for r in results) else 0


def cmd_export(args) -> int:
    from autograder.console import clean
    from autograder.publish.course import load_course
    from autograder.publish.export import ExportOptions, export

    store = _store(args)
    if args.lab is not None and not store.latest(args.lab):
        known = ", ".join(store.labs()) or "none"
        raise UserError(f"no results for lab {args.lab!r} in {store.path}", f"labs with results: {known}")
    course = None
    if args.course is not None:
        course = load_course(None if args.course == Path("course.yaml") else args.course, args.root)
    options = ExportOptions(
        roster=args.roster, assignment=args.assignment, points=args.points, canvas_grading=args.canvas_grading,
        allow_pending=args.allow_pending, exam_date=args.date, include_failed=args.include_failed,
        students=args.student, root=args.root, visibility=args.visibility, send=args.send, finalize=args.finalize,
        graders=args.grader)
    report = export(store, args.format, args.output, lab=args.lab, course=course, options=options)
    for line in report.lines():
        err.print(clean(line))
    return 0 if report.complete else 1


def cmd_feedback(args) -> int:
    from autograder.labs.lab import load_lab
    from autograder.publish.feedback import write_feedback

    lab = load_lab(args.lab, args.root)
    folder = args.output or Path("feedback") / lab.name
    paths = write_feedback(lab, _store(args), folder, args.student or None)
    pages = sum(1 for p in paths if p.suffix == ".html" and p.name != "index.html")
    err.print(f"wrote feedback for {pages} students to {folder} (open {folder / 'index.html'})")
    return 0


def cmd_report(args) -> int:
    from autograder.labs.lab import load_lab
    from autograder.publish.cohort_report import write_report

    lab = load_lab(args.lab, args.root)
    target = args.output or Path("feedback") / lab.name / "report.html"
    write_report(lab, _store(args), target, args.feedback_dir)
    err.print(f"wrote the cohort report to {target}")
    return 0


def cmd_course(args) -> int:
    from autograder.console import clean
    from autograder.publish.course import course_results, load_course, results_table, summary

    course = load_course(args.course, args.root)
    grades = course_results(course, _store(args), on=args.date)
    out.print(results_table(course, grades))
    out.print(clean(summary(grades)))
    return 0


def cmd_review(args) -> int:
    from autograder.console import print_review
    from autograder.grading.decisions import waiting

    store = _store(args)
    if args.lab not in store.labs():
        raise UserError(f"no results for lab {args.lab!r} in {store.path}",
                        f"labs with results: {', '.join(store.labs()) or 'none'}")
    queue = waiting(store, args.lab)
    print_review(out, queue)
    if queue:
        out.print(f"decide with: autograder override {args.lab} STUDENT CRITERION pass|fail --note TEXT")
    return 0


def cmd_override(args) -> int:
    from autograder.console import criteria_table
    from autograder.grading.decisions import override

    result = override(_store(args), args.lab, args.student, args.criterion, args.decision, args.note, args.by)
    out.print(criteria_table(result))
    out.print(f"{args.student}: {result.verdict} (recorded; regrades keep this decision)")
    return 0


def cmd_show(args) -> int:
    from autograder.console import clean, criteria_table

    store = _store(args)
    result = store.latest_of(args.lab, args.student)
    if result is None:
        known = ", ".join(r.student for r in store.latest(args.lab)[:20]) or "none"
        raise UserError(f"no result for {args.student!r} in lab {args.lab!r} in {store.path}",
                        f"students with results: {known}")
    out.print(criteria_table(result))
    for note in result.notes:
        out.print(clean(f"note: {note}"))
    for name, status in (result.probes.probes.items() if result.probes else []):
        if status.detail and status.detail != status.error:  # what the student's message holds back
            out.print(clean(f"staff only: probe {name} failed with {status.detail}"))
    return 0


def cmd_validate_lab(args) -> int:
    from autograder.console import print_results
    from autograder.grading.intake import take_folder
    from autograder.grading.selfcheck import check
    from autograder.grading.validation import cell_problems, probe_problems
    from autograder.labs.assign import write_reference_submission, write_template_submission
    from autograder.labs.lab import load_lab
    from autograder.store import Store

    lab = load_lab(args.lab, args.root)
    out.print(f"[green]ok[/] {lab.spec_path} and {lab.rubric_path} load")
    if not lab.solution_path.is_file():
        raise UserError(f"{lab.solution_path} does not exist", "the reference solution is needed to validate a lab")
    problems = cell_problems(lab)
    if not problems:
        out.print("[green]ok[/] every cell the rubric names is in the student notebook and the solution")
    expected = {"reference-solution": "G", "student-template": "U"}
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as tmp:
        files = lab.spec.files.student
        reference = write_reference_submission(lab, Path(tmp) / "reference")
        subs = [take_folder("reference-solution", reference, files),
                take_folder("student-template", write_template_submission(lab, Path(tmp) / "template"), files)]
        results = _grade(lab, subs, Store(Path(tmp) / "grades.db"), args, force=True)
        # What students will see: the solution must pass the self-check too (public probes, tests, stand-ins).
        self_checked = check(load_lab(args.lab, args.root, public_only=True), reference / lab.spec.notebook)
    print_results(out, results, f"{lab.name}: validation")
    probe_found = probe_problems(lab, results[0])
    if not probe_found:
        out.print("[green]ok[/] the probes produce every metric and split the rubric names")
    for problem in problems + probe_found:
        out.print(f"[red]FAIL[/] {escape(str(problem))}")
    skipped = [c.id for c in self_checked.result.criteria if c.details.get("reason") == "hidden-only"]
    if skipped:
        out.print(f"[yellow]note[/] the students' self-check cannot measure {', '.join(skipped)} (hidden probes or "
                  "tests only): public probes in assignments/<lab>/probes.py and public tests would let it")
    if self_checked.passed:
        out.print("[green]ok[/] the solution passes the students' self-check (public probes and tests, "
                  "hidden splits stood in for)")
    else:
        names = ", ".join(f"{c.id} ({c.status}: {c.message})" for c in self_checked.problems) or "the run"
        out.print(f"[red]FAIL[/] the solution fails the students' self-check: {escape(names)}")
    bad = [r for r in results if _validation_verdict(r) != expected[r.student]]
    for r in bad:
        out.print(f"[red]FAIL[/] {r.student} got {r.verdict}, expected {expected[r.student]}")
    if not bad:
        out.print("[green]ok[/] the solved student notebook gets G and the untouched one gets U")
    return 1 if bad or problems or probe_found or not self_checked.passed else 0


def _validation_verdict(result) -> str:
    """The verdict, except that the solution's reflection is not held against it for matching itself
    (the rubric's reference_similarity check compares answers with exactly that text)."""
    from autograder.labs.rubric import decide

    if result.student != "reference-solution":
        return result.verdict
    return decide([c for c in result.criteria if c.details.get("reason") != "reference-copy"])


def cmd_assign(args) -> int:
    from autograder.labs.assign import write_student_module, write_student_notebook
    from autograder.labs.lab import find_root
    from autograder.labs.loading import load_model
    from autograder.labs.spec import LabSpec

    root = find_root(args.root)
    spec = load_model(root / "assignments" / args.lab / "lab.yaml", LabSpec)
    solution = root / "reference" / args.lab / "solution.ipynb"
    if not solution.is_file():
        raise UserError(f"{solution} does not exist", "write the nbgrader source notebook there first")
    target = root / "assignments" / args.lab / spec.notebook
    write_student_notebook(solution, target)
    out.print(f"wrote {target}")
    for name in spec.files.student:
        source = root / "reference" / args.lab / name
        if not source.is_file():
            raise UserError(f"{source} does not exist", f"write the reference {name} with solution markers there")
        try:
            write_student_module(source, target.parent / name)
        except ValueError as exc:
            raise UserError(str(exc), "mark the solution in the module as in the notebook") from exc
        out.print(f"wrote {target.parent / name}")
    return 0


def cmd_release(args) -> int:
    import shutil

    from autograder.labs.lab import load_lab
    from autograder.labs.release import release

    lab = load_lab(args.lab, args.root)
    target = args.output or lab.root / "release" / lab.name
    kit = release(lab, target, force=args.force)
    out.print(f"wrote the student kit for {lab.name} to {kit.folder} ({len(kit.files)} files)")
    for line in kit.checks:
        out.print(f"[green]ok[/] no leak of the {escape(line)}")
    if args.zip:
        archive = shutil.make_archive(str(kit.folder), "zip", root_dir=kit.folder.parent, base_dir=kit.folder.name)
        out.print(f"wrote {archive}")
    return 0


def cmd_check(args) -> int:
    from autograder.console import clean, criteria_table
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


def cmd_sandbox(args) -> int:
    return {"build": cmd_sandbox_build, "doctor": cmd_sandbox_doctor}[args.sandbox_command](args)


def cmd_sandbox_build(args) -> int:
    from autograder.sandbox.build.image import BuildOptions, build_image

    given = {"tag": args.tag, "base_image": args.base_image, "torch": args.torch}
    try:
        options = BuildOptions(**{k: v for k, v in given.items() if v is not None}, pip_args=args.pip_args,
                               no_cache=args.no_cache, context_dir=_sandbox_context(args.root))
    except ValidationError as exc:
        raise _option_error(exc) from None
    if args.if_stale:
        from autograder.sandbox.build.image import image_status
        from autograder.sandbox.engine import engine

        status = image_status(engine(), options.tag, context_dir=options.context_dir,
                              torch=options.torch if args.torch is not None else None)
        if status.present and not status.stale:
            out.print(f"[green]up to date[/] {options.tag}: {escape(status.reason) or 'built from sandbox/ as it is'}")
            return 0
        err.print(f"building {options.tag}: {status.reason or 'stale'}", markup=False, highlight=False)
    result = build_image(options, log=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    out.print(f"[green]built[/] {result.tag} ({result.image_id[:19]}, {result.size_bytes / 1024**3:.2f} GiB, "
              f"Python {result.python}, torch {result.torch or 'none'}) in {result.build_seconds:.0f} s")
    return 0


def _sandbox_context(root: Path | None) -> Path | None:
    """sandbox/ of the course folder when it has a Dockerfile; else the build's own default."""
    from autograder.labs.lab import find_root

    try:
        folder = find_root(root) / "sandbox"
    except UserError:
        return None
    return folder if (folder / "Dockerfile").is_file() else None


def cmd_sandbox_doctor(args) -> int:
    from rich.table import Table

    from autograder.sandbox.build.doctor import doctor
    from autograder.sandbox.engine import DEFAULT_IMAGE

    checks = doctor(args.image or DEFAULT_IMAGE, args.runtime, context_dir=_sandbox_context(args.root))
    table = Table(title="sandbox doctor", show_lines=False)
    for column in ("Check", "Status", "Detail", "Fix"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
    out.print(table)
    return 1 if any(c.status == "fail" for c in checks) else 0


def cmd_schema(args) -> int:
    from autograder.schema import write_schemas

    for path in write_schemas(args.output):
        out.print(f"wrote {path}")
    return 0


COMMANDS = {"grade": cmd_grade, "export": cmd_export, "review": cmd_review, "override": cmd_override,
            "show": cmd_show, "validate-lab": cmd_validate_lab, "assign": cmd_assign, "release": cmd_release,
            "course": cmd_course, "check": cmd_check, "feedback": cmd_feedback, "report": cmd_report,
            "sandbox": cmd_sandbox, "schema": cmd_schema}
