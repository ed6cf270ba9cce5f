"""GPUs: which the host has, which run may use which, and how much memory a run used.

Read from `nvidia-smi` on the host, which sees every process, containers included, by its host
pid: what a run used is measured from outside, never reported by the student's own process.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pydantic import BaseModel

from autograder.errors import UserError

NVIDIA_SMI_TIMEOUT_S = 10


class GpuInfo(BaseModel):
    index: str
    name: str
    memory_mb: int


def _smi(*args: str) -> list[list[str]] | None:
    """Rows of nvidia-smi's CSV output, or None when there is no usable nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [[c.strip() for c in line.split(",")] for line in proc.stdout.splitlines() if line.strip()]


def detect() -> list[GpuInfo]:
    """The host's NVIDIA GPUs; empty when there is no driver or no GPU."""
    rows = _smi("--query-gpu=index,name,memory.total") or []
    gpus = []
    for row in rows:
        try:
            gpus.append(GpuInfo(index=row[0], name=row[1], memory_mb=int(float(row[2]))))
        except (IndexError, ValueError):
            continue
    return gpus


def memory_used(pids: Iterable[int]) -> int | None:
    """Bytes of GPU memory the given host pids hold now, or None when nvidia-smi can't tell."""
    wanted = set(pids)
    rows = _smi("--query-compute-apps=pid,used_memory")
    if rows is None:
        return None
    total = 0
    for row in rows:
        try:
            if int(row[0]) in wanted:
                total += int(float(row[1])) * 1024**2
        except (IndexError, ValueError):
            continue
    return total


def parse_ids(text: str) -> list[str]:
    """`--gpus 0,1` -> ["0", "1"]; `--gpus none` -> [] (run on the CPU where the lab allows it)."""
    if text.strip().lower() in ("", "none"):
        return []
    ids = [part.strip() for part in text.split(",")]
    if any(not i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise UserError(f"--gpus {text!r} is not a list of distinct GPU indices",
                        "write e.g. --gpus 0,1 or --gpus none")
    return ids


class GpuPool:
    """Places concurrent runs on GPUs: each GPU takes at most `jobs_per_gpu` runs at once, and a
    run that needs n GPUs gets n different ones, the least busy first."""

    def __init__(self, ids: list[str], jobs_per_gpu: int = 1) -> None:
        if jobs_per_gpu < 1:
            raise UserError("--jobs-per-gpu must be at least 1")
        self.ids = list(ids)
        self.jobs_per_gpu = jobs_per_gpu
        self._busy = {i: 0 for i in self.ids}
        self._cond = threading.Condition()

    @property
    def slots(self) -> int:
        return len(self.ids) * self.jobs_per_gpu

    @contextmanager
    def acquire(self, n: int) -> Iterator[list[str]]:
        """Wait until n GPUs have a free slot; yields their ids and frees them afterwards."""
        if n == 0:
            yield []
            return
        if n > len(self.ids):
            raise UserError(f"a run needs {n} GPUs but only {len(self.ids)} are available ({', '.join(self.ids)})")
        with self._cond:
            while True:
                free = sorted((i for i in self.ids if self._busy[i] < self.jobs_per_gpu), key=lambda i: self._busy[i])
                if len(free) >= n:
                    chosen = free[:n]
                    for i in chosen:
                        self._busy[i] += 1
                    break
                self._cond.wait()
        try:
            yield chosen
        finally:
            with self._cond:
                for i in chosen:
                    self._busy[i] -= 1
                self._cond.notify_all()
