"""The wheelhouse: every wheel the sandbox image installs, downloaded on the host beforehand.

So the image build needs no package index, and torch (hundreds of MB) is fetched once for many
rebuilds. Wheels are chosen for the *image's* interpreter and glibc (a `Target`, asked of the
image itself), never the host's, and cached under a key of everything that decides them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from autograder.errors import UserError

Log = Callable[[str], None]


def quiet(_: str) -> None:
    pass


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Target(BaseModel):
    """The image's interpreter, as far as choosing wheels goes."""

    python: str  # "3.11"
    abi: str  # "cp311"
    glibc: str  # "2.36"
    arch: str  # "x86_64"

    def platforms(self) -> list[str]:
        return manylinux_platforms(self.glibc, self.arch)

    def pip_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp", "--abi", self.abi]
        for platform in self.platforms():
            args += ["--platform", platform]
        return args


def manylinux_platforms(glibc: str | tuple[int, int], arch: str) -> list[str]:
    """`pip download --platform` tags for wheels that run on this glibc, newest first.

    pip does not widen a `manylinux_2_X` platform to older ones by itself (it does only for the
    legacy manylinux2014/2010 names), so every compatible tag is passed, with the legacy aliases.
    """
    major, minor = (int(p) for p in glibc.split(".")[:2]) if isinstance(glibc, str) else glibc
    if major != 2:
        raise UserError(f"glibc {major}.{minor} is not a glibc 2.x; manylinux wheels can't be chosen for it")
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    old_arches = {"x86_64", "i686"}
    lowest = 5 if arch in old_arches else 17
    tags = []
    for m in range(minor, lowest - 1, -1):
        tags.append(f"manylinux_2_{m}_{arch}")
        if m in legacy and (arch in old_arches or m == 17):
            tags.append(f"{legacy[m]}_{arch}")
    return tags


# pip's complaints about index locations a machine's pip.conf names but doesn't have: one per
# package, and nothing to do with the build.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")


def stream(cmd: list[str], log: Log, keep: int = 20) -> tuple[int, str]:
    """Run a command, passing its output lines to `log`; its exit code and last lines."""
    tail: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            line = line.rstrip()
            if line and not _PIP_NOISE.match(line):
                tail.append(line)
                log(line)
    return proc.returncode, "\n".join(tail)


def download_wheelhouse(
    requirements: str,
    target: Target,
    cache_dir: Path,
    pip_args: Sequence[str] = (),
    log: Log = quiet,
    no_cache: bool = False,
) -> tuple[Path, bool]:
    """Wheels for `requirements` on `target`, downloaded on the host; (folder, reused?).

    Kept under a key of everything that decides which wheels come, so a rebuild reuses them. A
    folder appears under its key only once complete (downloaded beside it, then renamed).
    """
    key = sha256_text(json.dumps([requirements, target.model_dump(), list(pip_args)], sort_keys=True))[:16]
    final = cache_dir / key
    if final.is_dir() and not no_cache:
        wheels = list(final.glob("*.whl"))
        log(f"wheelhouse: reusing {final} ({len(wheels)} wheels, {_mb(sum(w.stat().st_size for w in wheels))})")
        return final, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=cache_dir))
    try:
        (partial / "requirements.txt").write_text(requirements)
        cmd = [sys.executable, "-m", "pip", "download", "--dest", str(partial), "--progress-bar", "off",
               *target.pip_args(), "-r", str(partial / "requirements.txt"), *pip_args]
        log(f"wheelhouse: downloading for {target.abi}, glibc {target.glibc}, {target.arch} into {final}")
        code, tail = stream(cmd, log)
        if code:
            raise UserError(
                f"pip could not download the sandbox's wheels for Python {target.python}, glibc {target.glibc}, "
                f"{target.arch} (exit {code}):\n{tail}",
                "check the names and versions in sandbox/requirements.txt and --torch: only binary wheels for the "
                "image's platform can be used; pass --pip-arg=--index-url=URL (or --extra-index-url) for another "
                "index",
            )
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return final, False


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"

