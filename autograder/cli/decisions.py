"""Verbs for what waits on a human: `review` (the queue), `override` (a decision), `show` (one student)."""

from __future__ import annotations

import argparse

from autograder.cli import options
from autograder.cli.options import Parents, epilog
from autograder.console import clean, criteria_table, handin_lines, out, print_review, run_lines
from autograder.errors import UserError


def add_review(sub: argparse._SubParsersAction, p: Parents) -> None:
    r = sub.add_parser("review", parents=[p.common, p.db], help="list what waits for a human, with the evidence",
                       **epilog())
    r.add_argument("lab")
    r.set_defaults(run=cmd_review)


def cmd_review(args: argparse.Namespace) -> int:
    from autograder.grading.decisions import waiting

    store = options.store(args)
    options.require_lab(store, args.lab)
    queue = waiting(store, args.lab)
    print_review(out, queue)
    if queue:
        out.print(f"decide with: autograder override {args.lab} STUDENT CRITERION pass|fail --note TEXT")
    return 0


def add_override(sub: argparse._SubParsersAction, p: Parents) -> None:
    o = sub.add_parser("override", parents=[p.common, p.db],
                       help="record a TA's decision on one criterion; it survives regrading", **epilog())
    o.add_argument("lab")
    o.add_argument("student")
    o.add_argument("criterion", help="criterion id, as in the rubric")
    o.add_argument("decision", choices=["pass", "fail", "clear"], help="clear withdraws the standing decision")
    o.add_argument("--note", default="", help="why (required for pass and fail); the student may read it")
    o.add_argument("--by", default=None, help="who decides (default: $AUTOGRADER_USER or the login name)")
    o.set_defaults(run=cmd_override)


def cmd_override(args: argparse.Namespace) -> int:
    from autograder.grading.decisions import override

    result = override(options.store(args), args.lab, args.student, args.criterion, args.decision, args.note, args.by)
    out.print(criteria_table(result))
    out.print(f"{args.student}: {result.verdict} (recorded; regrades keep this decision)")
    return 0


def add_show(sub: argparse._SubParsersAction, p: Parents) -> None:
    sh = sub.add_parser("show", parents=[p.common, p.db], help="one student's current result, every criterion",
                        **epilog())
    sh.add_argument("lab")
    sh.add_argument("student")
    sh.set_defaults(run=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    store = options.store(args)
    result = store.latest_of(args.lab, args.student)
    if result is None:
        known = ", ".join(r.student for r in store.latest(args.lab)[:20]) or "none"
        raise UserError(f"no result for {args.student!r} in lab {args.lab!r} in {store.path}",
                        f"students with results: {known}")
    out.print(criteria_table(result))
    for line in (line for c in result.criteria for line in run_lines(c)):  # a borderline metric's seeds
        out.print(clean(line))
    for note in result.notes:
        out.print(clean(f"note: {note}"))
    kept = [h for h in store.handins(args.lab, result.student) if h.submission_hash == result.submission_hash]
    for line in handin_lines(result, kept[-1].originals if kept else []):
        out.print(clean(line))
    if result.environment is not None:  # the reproducibility stamp (grading/stamp.py)
        out.print(clean("graded under: " + "; ".join(result.environment.lines())))
    if result.compute is not None:
        out.print(clean(f"compute: {result.compute.line()}"))
    for name, status in (result.probes.probes.items() if result.probes else []):
        if status.detail and status.detail != status.error:  # what the student's message holds back
            out.print(clean(f"staff only: probe {name} failed with {status.detail}"))
    return 0
