"""What several verbs share: option types, the parent parsers, and turning options into models."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ByteSize, TypeAdapter, ValidationError

from autograder.errors import UserError
from autograder.store import DEFAULT_DB, Store

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


def epilog(text: str = EXIT_CODES) -> dict[str, Any]:
    """add_parser() arguments that print the exit codes under a verb's help."""
    return {"epilog": text, "formatter_class": argparse.RawDescriptionHelpFormatter}


def size(text: str) -> int:
    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 2GiB or 512MiB") from None


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


@dataclass(frozen=True)
class Parents:
    """Option groups verbs inherit: `common` (every verb), `db` (the results store), `run` (sandboxes)."""

    common: argparse.ArgumentParser
    db: argparse.ArgumentParser
    run: argparse.ArgumentParser


def parents() -> Parents:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, help="course folder (default: the nearest with assignments/ and rubrics/)")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, help="results store (default: .autograder/grades.db in the current folder)")
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--backend", default=os.environ.get("AUTOGRADER_BACKEND", "auto"),
                     help="sandbox backend: docker (isolated), local (no isolation), or auto: docker whenever an "
                     "engine answers, else local (default: $AUTOGRADER_BACKEND or auto). With --executor ray, each "
                     "node's backend, and auto is docker")
    run.add_argument("--image", help="docker backend: the sandbox image (default: autograder-sandbox:latest)")
    run.add_argument("--runtime", help="docker backend: the OCI runtime, e.g. runsc for gVisor")
    run.add_argument("--jobs", "-j", type=int, help="submissions graded at once (default 1; with --executor ray, "
                     "the cluster's CPUs over the lab's cpus)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where the sandboxes run: local (this machine; the default) or ray (as Ray tasks on a "
                     "cluster, each node with its own Docker engine and image; needs autograder[ray]). Judging "
                     "and the results store stay on this machine")
    run.add_argument("--address", metavar="ADDR", help="--executor ray: the cluster's head node as HOST:PORT "
                     "(what `ray start --head` printed; default: $RAY_ADDRESS, else a cluster started on this machine "
                     "with `ray start`, else Ray started for this command alone)")
    run.add_argument("--gpus", help="GPU ids runs may use, e.g. 0,1, or 'none' (default: every GPU nvidia-smi "
                     "lists; with --executor ray, each node's GPUs are those its `ray start --num-gpus` declares)")
    run.add_argument("--jobs-per-gpu", type=int, default=1, help="runs that share one GPU at once (default 1; "
                     "with --executor ray, a run asks Ray for 1/JOBS_PER_GPU of a GPU)")
    run.add_argument("--timeout", type=positive, help="override the lab's whole-run time limit, in seconds")
    run.add_argument("--cell-timeout", type=positive, help="override the lab's per-cell time limit, in seconds")
    run.add_argument("--memory", type=size, help="override the lab's memory limit, e.g. 2GiB")
    run.add_argument("--cpus", type=positive, help="override the lab's CPU limit")
    run.add_argument("--pids", type=int, help="override the lab's limit on processes and threads (docker)")
    run.add_argument("--shm", type=size, help="override the lab's /dev/shm size, e.g. 1GiB (docker)")
    run.add_argument("--disk", type=size, help="override what a run may write into its folder, e.g. 8GiB")
    run.add_argument("--gpu-memory-gb", type=positive, help="override the lab's per-process GPU memory cap")
    return Parents(common, db, run)


def option_error(exc: ValidationError) -> UserError:
    """A CLI value the models refuse, named as the option the user typed."""
    problem = exc.errors()[0]
    return UserError(f"--{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}")


def limits(args: argparse.Namespace) -> dict[str, Any]:
    """The limits the command line overrides (the lab's own apply to the rest)."""
    overrides = {"timeout": args.timeout, "cell_timeout": args.cell_timeout, "memory": args.memory,
                 "cpus": args.cpus, "pids": args.pids, "shm": args.shm, "disk": args.disk,
                 "gpu_memory_gb": args.gpu_memory_gb}
    return {k: v for k, v in overrides.items() if v is not None}


def store(args: argparse.Namespace) -> Store:
    return Store(args.db or DEFAULT_DB)


def require_lab(store: Store, lab: str) -> None:
    """A usage error naming the labs that do have results, when `lab` has none."""
    if lab not in store.labs():
        raise UserError(f"no results for lab {lab!r} in {store.path}",
                        f"labs with results: {', '.join(store.labs()) or 'none'}")
