"""The `autograder` command: verbs follow the course's lifecycle (assign, grade, export)."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autograder import __version__
from autograder.errors import AutograderError, UserError

EXIT_CODES = """\
exit codes:
  0   every submission got a verdict (G, U or review); for validate-lab: the lab checks out
  1   some submissions got `error` (the harness could not grade them); validate-lab: a check failed
  2   a usage mistake or a malformed lab, rubric or path (the message says which and how to fix it)
  3   an internal error (a bug: rerun with --debug and report the traceback)
  130 interrupted (results recorded so far are kept)
"""

err = Console(stderr=True)
# Piped output (CI logs, `| less`) gets a table wide enough to read rather than rich's 80 columns.
out = Console() if Console().is_terminal else Console(width=120)


def _size(text: str) -> int:
    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 2GiB or 512MiB") from None


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
    run.add_argument("--backend", default="local", help="sandbox backend (default: local, which does not isolate)")
    run.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    run.add_argument("--timeout", type=_positive, help="override the lab's whole-run time limit, in seconds")
    run.add_argument("--cell-timeout", type=_positive, help="override the lab's per-cell time limit, in seconds")
    run.add_argument("--memory", type=_size, help="override the lab's memory limit, e.g. 2GiB")

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

    e = sub.add_parser("export", parents=[common, db], help="export recorded results",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("lab")
    e.add_argument("--format", "-f", choices=["json", "csv"], default="json")
    e.add_argument("-o", "--output", type=Path, required=True, help="file to write ('-' for stdout)")

    v = sub.add_parser("validate-lab", parents=[common, run],
                       help="check a lab: it loads, the solved student notebook gets G, the blank one U",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("lab")

    a = sub.add_parser("assign", parents=[common], help="generate the student notebook from the solution (nbgrader)")
    a.add_argument("lab")

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


def _limits(args) -> dict:
    overrides = {"timeout": args.timeout, "cell_timeout": args.cell_timeout, "memory": args.memory}
    return {k: v for k, v in overrides.items() if v is not None}


def _store(args):
    from autograder.store import DEFAULT_DB, Store

    return Store(args.db or DEFAULT_DB)


def _grade(lab, submissions, store, args, force: bool):
    from autograder.pipeline import Grader, Options
    from autograder.sandbox import get_backend

    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    backend = get_backend(args.backend)
    if not backend.isolates:
        _say(f"note: the {backend.name} backend does not isolate student code; "
             "use it for your own notebooks and trusted samples")
    grader = Grader(lab, store, backend, Options(force=force, jobs=args.jobs, limits=_limits(args)))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"grading {lab.name}", total=len(submissions), last="")
        reused: list[str] = []

        def done(result, cached):
            if cached:
                reused.append(result.student)
            last = f"{result.student}: {result.verdict}" + (" (already graded)" if cached else "")
            progress.update(task, advance=1, last=last)

        results = grader.grade_all(submissions, done)
    if reused:
        _say(f"note: {len(reused)} of {len(results)} were already graded with this content, lab version and "
             "rubric; their recorded results are shown (--force regrades)")
    return results


def cmd_grade(args) -> int:
    from autograder.intake import discover
    from autograder.lab import load_lab
    from autograder.report import print_results

    lab = load_lab(args.lab, args.root)
    submissions = discover(args.submissions)
    store = _store(args)
    results = _grade(lab, submissions, store, args, args.force)
    print_results(out, results, f"{lab.name} (lab version {lab.version})")
    return 1 if any(r.verdict == "error" for r in results) else 0


def cmd_export(args) -> int:
    from autograder.export import to_csv, to_json, write

    store = _store(args)
    results = store.latest(args.lab)
    if not results:
        known = ", ".join(store.labs()) or "none"
        raise UserError(f"no results for lab {args.lab!r} in {store.path}", f"labs with results: {known}")
    if str(args.output) == "-":
        sys.stdout.write(to_json(results) if args.format == "json" else to_csv(results))
    else:
        write(results, args.format, args.output)
        err.print(f"wrote {len(results)} results to {args.output}")
    return 0


def cmd_validate_lab(args) -> int:
    import nbformat

    from autograder.assign import reference_submission
    from autograder.intake import take
    from autograder.lab import load_lab
    from autograder.report import print_results
    from autograder.store import Store

    lab = load_lab(args.lab, args.root)
    out.print(f"[green]ok[/] {lab.spec_path} and {lab.rubric_path} load")
    if not lab.solution_path.is_file():
        raise UserError(f"{lab.solution_path} does not exist", "the reference solution is needed to validate a lab")
    expected = {"reference-solution": "G", "student-template": "U"}
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as tmp:
        reference = Path(tmp) / "reference-solution.ipynb"
        nbformat.write(reference_submission(lab.solution_path, lab.notebook_path), reference)
        subs = [take("reference-solution", reference), take("student-template", lab.notebook_path)]
        results = _grade(lab, subs, Store(Path(tmp) / "grades.db"), args, force=True)
    print_results(out, results, f"{lab.name}: validation")
    bad = [r for r in results if r.verdict != expected[r.student]]
    for r in bad:
        out.print(f"[red]FAIL[/] {r.student} got {r.verdict}, expected {expected[r.student]}")
    if not bad:
        out.print("[green]ok[/] the solved student notebook gets G and the untouched one gets U")
    return 1 if bad else 0


def cmd_assign(args) -> int:
    from autograder.assign import write_student_notebook
    from autograder.lab import find_root
    from autograder.loading import load_model
    from autograder.spec import LabSpec

    root = find_root(args.root)
    spec = load_model(root / "assignments" / args.lab / "lab.yaml", LabSpec)
    solution = root / "reference" / args.lab / "solution.ipynb"
    if not solution.is_file():
        raise UserError(f"{solution} does not exist", "write the nbgrader source notebook there first")
    target = root / "assignments" / args.lab / spec.notebook
    write_student_notebook(solution, target)
    out.print(f"wrote {target}")
    return 0


def cmd_schema(args) -> int:
    from autograder.schema import write_schemas

    for path in write_schemas(args.output):
        out.print(f"wrote {path}")
    return 0


COMMANDS = {"grade": cmd_grade, "export": cmd_export, "validate-lab": cmd_validate_lab, "assign": cmd_assign,
            "schema": cmd_schema}
