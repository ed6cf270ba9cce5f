"""The `autograder` command: verbs follow the course's lifecycle (assign, grade, export).

Each verb is one small builder (`add_<verb>`, its options and help) and one handler (`cmd_<verb>`,
which calls the domain and prints), kept together by what the verb is about: grading.py,
decisions.py, publishing.py, authoring.py, sandbox.py. This module assembles them and turns a
user's mistake into one line with a hint (a traceback only with --debug).
"""

from __future__ import annotations

import argparse
import logging
import sys

from autograder import __version__
from autograder.cli import authoring, decisions, grading, publishing, rerun, sandbox, serve
from autograder.cli.options import EXIT_CODES, epilog, parents
from autograder.console import err, say
from autograder.errors import AutograderError

# In the order `autograder --help` lists them: the course's lifecycle, then the tools.
BUILDERS = (grading.add_grade, publishing.add_export, publishing.add_feedback, publishing.add_report,
            publishing.add_course, decisions.add_review, decisions.add_override, decisions.add_show, rerun.add_rerun,
            serve.add_serve,
            grading.add_validate_lab, authoring.add_assign, authoring.add_release, grading.add_check,
            sandbox.add_sandbox, authoring.add_schema)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autograder", description="Grade deep-learning lab notebooks: U/G verdicts "
                                "with reasons.", **epilog())
    p.add_argument("--version", action="version", version=f"autograder {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = parents()
    for build in BUILDERS:
        build(sub, shared)
    return p


def main(argv: list[str] | None = None) -> int:
    # As in the runner: jsonschema's optional IRI-format support (rfc3987_syntax) costs 1.4 s of
    # imports in every command that reads a notebook, for formats no notebook uses.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: "not installed", by design
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        from autograder.sandbox.base import CANCEL

        CANCEL.set()
        err.print("[yellow]interrupted[/]: results recorded so far are kept")
        return 130
    except AutograderError as exc:
        if args.debug:
            raise
        say(f"error: {exc.message}", f"hint: {exc.hint}" if exc.hint else "")
        return exc.exit_code
    except Exception as exc:  # a bug; say so in one line unless --debug
        if args.debug:
            raise
        say(f"internal error: {type(exc).__name__}: {exc}", "hint: rerun with --debug for the traceback, and report it")
        return 3


__all__ = ["EXIT_CODES", "main", "parser"]
