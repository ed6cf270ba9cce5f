"""`autograder rerun LAB STUDENT`: grade a recorded hand-in again under its recorded conditions and say
whether the verdict and the values came out the same (grading/reproduce.py); the record is untouched."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from autograder.cli import options
from autograder.cli.options import Parents, epilog
from autograder.console import clean, out, say

NOT_REPRODUCED = 4
# The run limits the command line can set (cli.options.limits), taken from the stamp when it does not.
LIMIT_OPTIONS = ("timeout", "cell_timeout", "memory", "cpus", "pids", "shm", "disk", "gpu_memory_gb")

RERUN_EXIT_CODES = """\
exit codes:
  0   reproduced: the same verdict, statuses and values as recorded
  2   a usage mistake: unknown lab or student, no kept copy and no --from, a result that is `error`,
      another lab version (the message says which and how to fix it)
  3   an internal error (a bug: rerun with --debug and report the traceback)
  4   not reproduced: the lines say what came out otherwise
"""


def add_rerun(sub: argparse._SubParsersAction, p: Parents) -> None:
    r = sub.add_parser("rerun", parents=[p.common, p.db, p.run],
                       help="grade a student's recorded hand-in again as it was graded; say if it reproduces",
                       description="Grade the student's recorded hand-in again under the recorded conditions (the "
                       "recorded backend unless --backend names another, the image and limits on its stamp) into a "
                       "throwaway store, and compare verdict, statuses and values with the record.",
                       **epilog(RERUN_EXIT_CODES))
    r.add_argument("lab")
    r.add_argument("student")
    r.add_argument("--from", dest="source", type=Path, metavar="PATH",
                   help="the hand-in, where the store keeps no copy of it (results graded before copies were kept)")
    r.add_argument("--tolerance", type=float, default=0.0, metavar="REL",
                   help="relative difference allowed in values (default 0: exact, as on the CPU; a GPU's "
                   "nondeterministic kernels may need e.g. 1e-3)")
    r.add_argument("--course", type=Path, help="course.yaml, for the lab's GPU budget (default: the course folder's)")
    r.set_defaults(run=cmd_rerun)  # never a default of the shared run options: set_defaults would change it for all


def cmd_rerun(args: argparse.Namespace) -> int:
    from autograder.cli.grading import grader_from
    from autograder.errors import UserError
    from autograder.grading.reproduce import hand_in, recorded_result, rerun
    from autograder.labs.lab import load_lab

    if args.tolerance < 0 or args.tolerance != args.tolerance:
        raise UserError("--tolerance must be 0 or more", "leave it out for an exact comparison")
    lab = load_lab(args.lab, args.root)
    store = options.store(args)
    recorded = recorded_result(store, lab, args.student)
    sub = hand_in(store, lab, recorded, args.source)
    env = recorded.environment
    if args.backend == os.environ.get("AUTOGRADER_BACKEND", "auto"):  # the option's default: the recorded backend
        args.backend = recorded.backend or args.backend
    if env is not None:
        if args.image is None and env.image and args.backend == "docker":
            args.image = env.image
        for name in LIMIT_OPTIONS:  # the recorded limits, where the command line sets none
            if getattr(args, name) is None and env.limits.get(name) is not None:
                setattr(args, name, env.limits[name])

    def grade(scratch_store):
        grader = grader_from(lab, scratch_store, args, force=True)
        try:
            from autograder.criteria.analysis import embeddings

            embeddings.remember(store)  # the recorded text's vectors: a rerun loads no model for them
            result, _ = grader.grade(sub)
            return result
        finally:
            grader._close_backend()
            grader.executor.close()

    out.print(f"Rerunning {clean(recorded.student)}'s hand-in {recorded.submission_hash[:12]} of {lab.name} "
              f"(lab version {lab.version}) on the {args.backend} backend; the recorded result is not changed.")
    cmp = rerun(lab, store, recorded, sub, grade, args.tolerance)
    for warning in cmp.warnings:
        say(f"warning: {warning}")
    if env is not None and (env.gpu or (cmp.rerun.environment and cmp.rerun.environment.gpu)):
        say("note: on a GPU, nondeterministic kernels (atomic adds in convolutions' backward, scatter, index_add) "
            "can move values even with the same seed; --tolerance allows a relative difference")
    out.print("Compared: " + "; ".join(cmp.compared) + ".")
    if cmp.reproduced:
        out.print(f"[green]Reproduced[/]: {cmp.rerun.verdict}, with the same statuses and values.")
        return 0
    for line in cmp.differences:
        out.print(clean(f"  differs: {line}"))
    out.print(f"[red]Not reproduced[/]: {len(cmp.differences)} difference{'s' if len(cmp.differences) != 1 else ''}.")
    return NOT_REPRODUCED
