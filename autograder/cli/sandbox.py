"""`sandbox build`, `doctor` and `packages`: the docker backend's images and engine, and the labs' packages."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from autograder.cli import options
from autograder.cli.options import Parents, epilog
from autograder.console import err, out, say
from autograder.errors import UserError

if TYPE_CHECKING:
    from autograder.labs.lab import Lab


def add_sandbox(sub: argparse._SubParsersAction, p: Parents) -> None:
    box = sub.add_parser("sandbox", help="the docker backend's images and engine, the labs' packages: build, "
                         "doctor, packages")
    box_sub = box.add_subparsers(dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND")
    b = box_sub.add_parser("build", parents=[p.common], help="build the sandbox image and each lab's image (the "
                           "sandbox image plus the lab's packages; wheels downloaded on the host)", **epilog())
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
                   help="build only when the image is missing or older than sandbox/'s Dockerfile and requirements "
                   "(a lab's image: missing, or built on an older sandbox image)")
    b.add_argument("--no-labs", action="store_true", help="build the sandbox image only, not the labs' images")
    b.set_defaults(run=cmd_build)
    k = box_sub.add_parser("packages", parents=[p.common],
                           help="the packages every lab of the course lists (lab.yaml packages:), for the local "
                           "backend: print them, or --pip to install them into this Python", **epilog())
    k.add_argument("--pip", action="store_true", help="install what this Python lacks (pip install ...)")
    k.set_defaults(run=cmd_packages)
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
        current = status.present and not status.stale
        if current:
            out.print(f"[green]up to date[/] {opts.tag}: {escape(status.reason) or 'built from sandbox/ as it is'}")
        else:
            err.print(f"building {opts.tag}: {status.reason or 'stale'}", markup=False, highlight=False)
    if not (args.if_stale and current):
        result = build_image(opts, log=_log)
        out.print(f"[green]built[/] {result.tag} ({result.image_id[:19]}, {result.size_bytes / 1024**3:.2f} GiB, "
                  f"Python {result.python}, torch {result.torch or 'none'}) in {result.build_seconds:.0f} s")
    if not args.no_labs:
        build_lab_images(args, opts.tag, opts.pip_args, opts.no_cache, if_stale=True)
    return 0


def _log(line: str) -> None:
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def course_packages(root: Path | None) -> dict[str, list[str]]:
    """lab name -> the packages its lab.yaml lists, for every lab of the course (none outside a course)."""
    from autograder.labs.lab import find_root
    from autograder.labs.loading import load_model
    from autograder.labs.spec import LabSpec

    try:
        folder = find_root(root) / "assignments"
    except UserError:
        return {}
    return {p.parent.name: load_model(p, LabSpec).packages for p in sorted(folder.glob("*/lab.yaml"))}


def build_lab_images(args: argparse.Namespace, base: str, pip_args: list[str], no_cache: bool,
                     if_stale: bool) -> None:
    """One image per distinct package list among the course's labs, on `base`; labs without packages use `base`."""
    from autograder.labs.environment import Environment
    from autograder.sandbox.build.lab_image import build_lab_image

    environments: dict[str, tuple[Environment, list[str]]] = {}
    for lab, packages in course_packages(args.root).items():
        if packages:
            env = Environment.of(packages)
            environments.setdefault(env.key, (env, []))[1].append(lab)
    for env, labs in environments.values():
        result = build_lab_image(env, base, pip_args=pip_args, log=_log, no_cache=no_cache, if_stale=if_stale)
        what = f"{', '.join(labs)}: {', '.join(env.packages)}"
        if result.built:
            out.print(f"[green]built[/] {result.tag} ({escape(what)}; +{result.added_bytes / 1024**2:.0f} MiB on "
                      f"{base}) in {result.seconds:.0f} s")
        else:
            out.print(f"[green]up to date[/] {result.tag} ({escape(what)})")


def cmd_packages(args: argparse.Namespace) -> int:
    from autograder.labs.environment import union

    by_lab = course_packages(args.root)
    env = union(by_lab.values())
    if not env.packages:
        out.print("no lab lists packages: the base (torch, numpy, matplotlib) is all they need")
        return 0
    for lab, packages in by_lab.items():
        if packages:
            out.print(f"{escape(lab)}: {escape(', '.join(packages))}", highlight=False)
    missing = env.missing()
    if not missing:
        out.print(f"[green]ok[/] this Python ({escape(sys.executable)}) has them all")
        return 0
    command = env.install_command(missing, sys.executable)
    if not args.pip:
        out.print(f"this Python lacks: {escape(', '.join(str(m) for m in missing))}\ninstall them: "
                  f"{escape(command)}", highlight=False)
        return 1
    err.print(command, markup=False, highlight=False)
    wanted = env.install_list(missing)
    with tempfile.TemporaryDirectory() as tmp:
        keep = _keep_torch(wanted, Path(tmp))
        return subprocess.call([sys.executable, "-m", "pip", "install", *keep, *wanted])


def _keep_torch(wanted: list[str], folder: Path) -> list[str]:
    """pip's `-c` pinning the torch this Python has, unless the labs ask for torch themselves: a package
    that admits a newer torch would otherwise pull a multi-GB CUDA build over the pinned CPU one."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    if any(canonicalize_name(Requirement(w).name) in ("torch", "torchvision") for w in wanted):
        return []
    try:
        have = version("torch")
    except PackageNotFoundError:
        return []
    pins = folder / "keep-torch.txt"
    pins.write_text(f"torch=={have}\n")
    return ["-c", str(pins)]


def prepare_lab_image(lab: Lab, args: argparse.Namespace) -> None:
    """Before a docker batch, build the lab's image when it is missing or its base was rebuilt (once, before
    any submission runs, so --jobs never races a build); with a note, as the build takes a minute or more."""
    from autograder.labs.environment import Environment
    from autograder.sandbox import AUTO
    from autograder.sandbox.containers import engine

    if not lab.spec.packages or args.image or args.backend not in ("docker", AUTO):
        return
    client = engine()
    if client is None:
        return  # auto goes local; docker says itself that no engine answers
    from autograder.sandbox.build.lab_image import build_lab_image, status
    from autograder.sandbox.engine import DEFAULT_IMAGE, has_image

    env = Environment.of(lab.spec.packages)
    present, why = status(client, env)
    if (present and not why) or not has_image(client, DEFAULT_IMAGE):
        return  # current; or no base, which the backend reports with the command that builds it
    say(f"note: building {lab.name}'s image {env.image} ({why}; once per package list, `autograder sandbox "
        "build` does it ahead)")
    result = build_lab_image(env, DEFAULT_IMAGE, log=_log, client=client)
    say(f"note: built {result.tag} in {result.seconds:.0f} s")


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

    base = backend.image  # the base (a lab's image is layered on it and rebuilt with it), or the TA's --image
    status = image_status(backend.client, base, context_dir=context_dir(root))
    if status.stale:
        return (f"the sandbox image {base} is stale ({status.reason}); "
                "rebuild it with `autograder sandbox build`")
    return None
