"""Fresh, private work dirs for sandbox runs, removed afterwards whatever happened."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def workdir(prefix: str, root: Path | None = None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"autograder-{prefix}-", dir=root))
    try:
        yield path
    finally:
        remove_tree(path)


def remove_tree(path: Path) -> None:
    """rmtree that also removes what a sandbox made read-only."""

    def onerror(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    if path.exists():
        shutil.rmtree(path, onerror=onerror)


def copy_read_only(src: Path, dst: Path) -> None:
    """Copy files into a sandbox folder the student's code should not change (advisory locally)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.is_symlink():
            shutil.copyfile(f, dst / f.name)
            os.chmod(dst / f.name, 0o444)
    os.chmod(dst, 0o555)


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write named files (a submission's modules) into a sandbox folder, creating it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def read_capped(path: Path, cap: int) -> bytes | None:
    """The file's bytes, or None when it is missing, not a regular file, or larger than `cap`."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
        return None
    return path.read_bytes()
