"""Verbs that publish from the store: `export`, `feedback`, `report` and `course results`."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.cli import options
from autograder.cli.options import EXPORT_EXIT_CODES, Parents, epilog
from autograder.console import clean, err, out
from autograder.publish.export import FORMATS


def add_export(sub: argparse._SubParsersAction, p: Parents) -> None:
    e = sub.add_parser("export", parents=[p.common, p.db],
                       help="export results: json, csv, Canvas gradebook, Gradescope, the Ladok list",
                       **epilog(EXPORT_EXIT_CODES))
    e.add_argument("lab", nargs="?", help="the lab (leave out with --course for the lab module's grade)")
    e.add_argument("--format", "-f", choices=list(FORMATS), default="json")
    e.add_argument("-o", "--output", required=True,
                   help="file to write ('-' for stdout); for gradescope a folder (one <student>/results.json)")
    e.add_argument("--course", nargs="?", const="course.yaml", type=Path, default=None,
                   help="course.yaml (default when given bare: the course folder's): its roster, Canvas column and "
                   "Ladok codes; without a lab, export the lab module's grade")
    e.add_argument("--roster", type=Path, help="roster CSV mapping student ids to the LMS's and Ladok's")
    e.add_argument("--assignment", help="canvas: the gradebook column, e.g. 'Lab 1 (12345)'")
    e.add_argument("--points", type=options.positive, default=1.0, help="canvas, gradescope: the points G is worth")
    e.add_argument("--canvas-grading", choices=["points", "complete"], default="points")
    e.add_argument("--allow-pending", action="store_true",
                   help="publish students in review or error as not G instead of holding them back")
    e.add_argument("--date", type=options.day, help="ladok, module grades: the examination date (YYYY-MM-DD)")
    e.add_argument("--include-failed", action="store_true", help="ladok: report U too")
    e.add_argument("--student", action="append", help="only this student (repeatable)")
    e.add_argument("--visibility", choices=["hidden", "after_due_date", "after_published", "visible"],
                   default="visible", help="gradescope: when students see the results")
    e.add_argument("--send", action="store_true", help="ladok: report to Ladok through ladok3 (else a dry run)")
    e.add_argument("--finalize", action="store_true", help="ladok --send: mark the results ready for attestation")
    e.add_argument("--grader", action="append", default=[], help="ladok --finalize: 'Name <email>' (repeatable)")
    e.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from autograder.publish.course import load_course
    from autograder.publish.export import ExportOptions, export

    store = options.store(args)
    if args.lab is not None:
        options.require_lab(store, args.lab)
    course = None
    if args.course is not None:
        course = load_course(None if args.course == Path("course.yaml") else args.course, args.root)
    opts = ExportOptions(
        roster=args.roster, assignment=args.assignment, points=args.points, canvas_grading=args.canvas_grading,
        allow_pending=args.allow_pending, exam_date=args.date, include_failed=args.include_failed,
        students=args.student, root=args.root, visibility=args.visibility, send=args.send, finalize=args.finalize,
        graders=args.grader)
    report = export(store, args.format, args.output, lab=args.lab, course=course, options=opts)
    for line in report.lines():
        err.print(clean(line))
    return 0 if report.complete else 1


def add_feedback(sub: argparse._SubParsersAction, p: Parents) -> None:
    fb = sub.add_parser("feedback", parents=[p.common, p.db],
                        help="write each student's feedback: a self-contained HTML page and a Markdown file",
                        **epilog())
    fb.add_argument("lab")
    fb.add_argument("-o", "--output", type=Path, help="folder to write (default: feedback/<lab>)")
    fb.add_argument("--student", action="append", help="only this student (repeatable)")
    fb.set_defaults(run=cmd_feedback)


def cmd_feedback(args: argparse.Namespace) -> int:
    from autograder.labs.lab import load_lab
    from autograder.publish.feedback import write_feedback

    lab = load_lab(args.lab, args.root)
    folder = args.output or Path("feedback") / lab.name
    paths = write_feedback(lab, options.store(args), folder, args.student or None)
    pages = sum(1 for p in paths if p.suffix == ".html" and p.name != "index.html")
    err.print(f"wrote feedback for {pages} students to {folder} (open {folder / 'index.html'})")
    return 0


def add_report(sub: argparse._SubParsersAction, p: Parents) -> None:
    rp = sub.add_parser("report", parents=[p.common, p.db],
                        help="write the cohort report for staff: one self-contained HTML file (and leaderboard.html "
                        "beside it, for a lab whose rubric has a leaderboard)", **epilog())
    rp.add_argument("lab")
    rp.add_argument("-o", "--output", type=Path, help="file to write (default: feedback/<lab>/report.html)")
    rp.add_argument("--feedback-dir", default=".",
                    help="where the students' feedback pages are, relative to the report (default: beside it)")
    rp.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from autograder.errors import UserError
    from autograder.labs.lab import load_lab
    from autograder.publish.cohort_report import write_report
    from autograder.publish.leaderboard import write_leaderboard

    lab = load_lab(args.lab, args.root)
    target = args.output or Path("feedback") / lab.name / "report.html"
    if lab.rubric.leaderboard is not None and target.name == "leaderboard.html":
        raise UserError(f"-o {target}: the leaderboard goes beside the report under that name",
                        "name the report otherwise, e.g. report.html")
    store = options.store(args)
    write_report(lab, store, target, args.feedback_dir)
    err.print(f"wrote the cohort report to {target}")
    board = write_leaderboard(lab, store, target.parent / "leaderboard.html")  # a lab with `leaderboard:` only
    if board is not None:
        err.print(f"wrote the leaderboard to {board}")
    return 0


def add_course(sub: argparse._SubParsersAction, p: Parents) -> None:
    co = sub.add_parser("course", help="the lab module: each student's grade over the course's labs")
    co_sub = co.add_subparsers(dest="course_command", required=True, metavar="COURSE_COMMAND")
    cr = co_sub.add_parser("results", parents=[p.common, p.db],
                           help="each student's lab module grade: G only when every required lab is G", **epilog())
    cr.add_argument("--course", type=Path, default=None, help="course.yaml (default: the course folder's)")
    cr.add_argument("--date", type=options.day, help="the examination date (YYYY-MM-DD), over the course's rule")
    cr.set_defaults(run=cmd_course_results)


def cmd_course_results(args: argparse.Namespace) -> int:
    from autograder.publish.course import course_results, load_course, missing_lines, results_table, summary

    course = load_course(args.course, args.root)
    grades = course_results(course, options.store(args), on=args.date)
    # Nine columns and a sentence each: where the terminal is narrower, what is missing goes under the table.
    wide = out.width >= 140
    out.print(results_table(course, grades, missing=wide))
    if not wide and any(g.missing for g in grades):
        out.print("\nMissing:")
        for line in missing_lines(grades):
            out.print(line)
    out.print(clean(summary(grades)))
    return 0
