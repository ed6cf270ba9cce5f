"""Verbs for the course's staff between terms: `assign`, `release` and `schema`."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.markup import escape

from autograder.cli.options import Parents, epilog
from autograder.console import out


def add_assign(sub: argparse._SubParsersAction, p: Parents) -> None:
    a = sub.add_parser("assign", parents=[p.common],
                       help="generate the student notebook and module templates from the reference (nbgrader)")
    a.add_argument("lab")
    a.set_defaults(run=cmd_assign)


def cmd_assign(args: argparse.Namespace) -> int:
    from autograder.labs.assign import assign

    for path in assign(args.lab, args.root):
        out.print(f"wrote {path}")
    return 0


def add_release(sub: argparse._SubParsersAction, p: Parents) -> None:
    rel = sub.add_parser("release", parents=[p.common],
                         help="build the student kit; fails if anything hidden would leak into it", **epilog())
    rel.add_argument("lab")
    rel.add_argument("-o", "--output", type=Path, help="kit folder (default: release/<lab>)")
    rel.add_argument("--force", action="store_true", help="replace the kit folder if it exists")
    rel.add_argument("--zip", action="store_true", help="also write <kit folder>.zip")
    rel.set_defaults(run=cmd_release)


def cmd_release(args: argparse.Namespace) -> int:
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


def add_schema(sub: argparse._SubParsersAction, p: Parents) -> None:
    s = sub.add_parser("schema", parents=[p.common], help="write the JSON Schemas of lab.yaml and rubric files")
    s.add_argument("-o", "--output", type=Path, default=Path("schemas"), help="folder (default: schemas/)")
    s.set_defaults(run=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from autograder.schema import write_schemas

    for path in write_schemas(args.output):
        out.print(f"wrote {path}")
    return 0
