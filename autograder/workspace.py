"""Fresh, private work dirs for sandbox runs, removed afterwards whatever happened.

A work dir's name says who made it (`autograder-<what>.<host>.<pid>.<start time>.<random>`), so
what a killed grading run left behind (a SIGKILL runs no `finally`) is found and removed when the
next one starts (`sweep`), with the sandbox processes still running in it. The owner is in the name,
not in a file inside, which the student's code could rewrite (in a container it cannot rename the
dir: that is its mount point).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OWNED = re.compile(r"^autograder-[a-z][a-z0-9_]*\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.(?P<started>\d+)\.")
_owner: tuple[int, str] | None = None  # (pid, its tag): a forked child computes its own


def owner_tag() -> str:
    """`<host>.<pid>.<start time>` of this process: the pid alone could be a later process's."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:
        _owner = (pid, f"{_HOST}.{pid}.{int(psutil.Process(pid).create_time())}")
    return _owner[1]


def new_workdir(prefix: str, root: Path | None = None) -> Path:
    """A fresh, private dir named for this process (`prefix`: lowercase letters, digits, `_`), which
    `sweep` removes once this process is gone; the caller removes it when done."""
    if root is not None:  # a scratch folder named on the command line may not exist yet
        Path(root).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"autograder-{prefix}.{owner_tag()}.", dir=root))


@contextmanager
def workdir(prefix: str, root: Path | None = None) -> Iterator[Path]:
    path = new_workdir(prefix, root)
    try:
        yield path
    finally:
        remove_tree(path)


def _alive(pid: int, started: int) -> bool:
    try:
        return int(psutil.Process(pid).create_time()) == started
    except psutil.Error:
        return False


def orphaned(root: Path | None = None) -> list[Path]:
    """Work dirs under `root` (default: the system temp dir) made on this host by a process that is gone."""
    folder = Path(root) if root is not None else Path(tempfile.gettempdir())
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        m = _OWNED.match(path.name)
        if (m and m["host"] == _HOST and not _alive(int(m["pid"]), int(m["started"]))
                and path.is_dir() and not path.is_symlink()):
            found.append(path)
    return found


def _inside(value: str | None, folders: list[str]) -> bool:
    return value is not None and any(value == f or value.startswith(f + os.sep) for f in folders)


def stray_processes(folders: list[Path]) -> list[psutil.Process]:
    """Processes still working in these folders: a local run's runner and kernel (and whatever they
    started) keep running after the grading process that watched them was killed. Found by their
    working folder or the HOME and TMPDIR the local backend gave them."""
    names = [str(f) for f in folders]
    if not names:
        return []
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if _inside(proc.cwd(), names):
                found.append(proc)
                continue
            env = proc.environ()
        except psutil.Error:
            continue
        if _inside(env.get("HOME"), names) or _inside(env.get("TMPDIR"), names):
            found.append(proc)
    return found


def sweep(root: Path | None = None) -> list[Path]:
    """Kill what still runs in the work dirs of gone grading processes on this host, then remove the
    dirs; returns the dirs removed. Called when a batch starts: a run killed with SIGKILL left them."""
    folders = orphaned(root)
    procs = stray_processes(folders)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    for path in folders:
        remove_tree(path)
    return [p for p in folders if not p.exists()]


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
