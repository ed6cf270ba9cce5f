"""`sandbox build` and `sandbox doctor`: the docker backend's image and engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from autograder.cli import options
from autograder.cli.options import Parents, epilog
from autograder.console import err, out
from autograder.errors import UserError


def add_sandbox(sub: argparse._SubParsersAction, p: Parents) -> None:
    box = sub.add_parser("sandbox", help="the docker backend's image and engine: build, doctor")
    box_sub = box.add_subparsers(dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND")
    b = box_sub.add_parser("build", parents=[p.common], help="build the sandbox image (wheels downloaded on the host)",
                           **epilog())
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
    b.set_defaults(run=cmd_build)
    d = box_sub.add_parser("doctor", parents=[p.common],
                           help="check the engine, the image, runtimes and GPUs, with the fix for each problem",
                           **epilog())
    d.add_argument("--image", default=None, help="image to check (default: autograder-sandbox:latest)")
    d.add_argument("--runtime", default=None, help="an OCI runtime you mean to use, e.g. runsc")
    d.set_defaults(run=cmd_doctor)


def cmd_build(args: argparse.Namespace) -> int:
    from autograder.sandbox.build.image import BuildOptions, build_image, image_status
    from autograder.sandbox.engine import engine

    given = {"tag": args.tag, "base_image": args.base_image, "torch": args.torch}
    try:
        opts = BuildOptions(**{k: v for k, v in given.items() if v is not None}, pip_args=args.pip_args,
                            no_cache=args.no_cache, context_dir=context_dir(args.root))
    except ValidationError as exc:
        raise options.option_error(exc) from None
    if args.if_stale:
        status = image_status(engine(), opts.tag, context_dir=opts.context_dir,
                              torch=opts.torch if args.torch is not None else None)
        if status.present and not status.stale:
            out.print(f"[green]up to date[/] {opts.tag}: {escape(status.reason) or 'built from sandbox/ as it is'}")
            return 0
        err.print(f"building {opts.tag}: {status.reason or 'stale'}", markup=False, highlight=False)
    result = build_image(opts, log=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    out.print(f"[green]built[/] {result.tag} ({result.image_id[:19]}, {result.size_bytes / 1024**3:.2f} GiB, "
              f"Python {result.python}, torch {result.torch or 'none'}) in {result.build_seconds:.0f} s")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from autograder.sandbox.build.doctor import doctor
    from autograder.sandbox.engine import DEFAULT_IMAGE

    checks = doctor(args.image or DEFAULT_IMAGE, args.runtime, context_dir=context_dir(args.root))
    table = Table(title="sandbox doctor", show_lines=False)
    for column in ("Check", "Status", "Detail", "Fix"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
    out.print(table)
    return 1 if any(c.status == "fail" for c in checks) else 0


def context_dir(root: Path | None) -> Path | None:
    """sandbox/ of the course folder when it has a Dockerfile; else the build's own default."""
    from autograder.labs.lab import find_root

    try:
        folder = find_root(root) / "sandbox"
    except UserError:
        return None
    return folder if (folder / "Dockerfile").is_file() else None


def stale_image(backend, root: Path | None) -> str | None:
    """Grading goes on with an image older than sandbox/ (a TA may rebuild between batches), but says so."""
    from autograder.sandbox.build.image import image_status

    status = image_status(backend.client, backend.image, context_dir=context_dir(root))
    if status.stale:
        return (f"the sandbox image {backend.image} is stale ({status.reason}); "
                "rebuild it with `autograder sandbox build`")
    return None
