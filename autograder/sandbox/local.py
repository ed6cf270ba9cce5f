"""The `local` backend: a process tree with limits. It does not isolate: for students and development.

What it does enforce: a fresh work dir as cwd, a clean environment (its own HOME, MPLCONFIGDIR,
IPYTHONDIR and Jupyter dirs; nothing of the host's environment), the whole-run timeout and the
memory limit over the whole process tree (killed as a tree, orphans included), per-process data
limit, no core files, a cap on file size, and capped stdout/stderr. What it cannot: hide the rest
of the file system or the network. The Docker backend does that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from autograder.errors import UserError
from autograder.labs.environment import Environment
from autograder.labs.spec import Limits, human_size
from autograder.results import SandboxStatus
from autograder.sandbox.base import (
    CANCEL,
    DISK_CHECK_S,
    GPU_SAMPLE_S,
    REPORT_CAP,
    RUNNER,
    STREAM_CAP,
    BackendSettings,
    CappedBuffer,
    SandboxBackend,
    SandboxJob,
    SandboxRun,
    over_disk_limit,
    read_report,
    sandbox_env,
    write_job_file,
)
from autograder.sandbox.gpus import memory_used as gpu_memory_used

POLL_S = 0.05


def process_limits(limits: Limits, gpu_ids: list[str]) -> dict[str, int]:
    """Per-process ceilings the RSS watchdog can't react to in time; the runner sets them on itself
    (a preexec_fn is not safe while other threads run) and the kernel inherits them. A run with a GPU
    gets no data-segment limit: CUDA maps device memory and its libraries into the address space, and
    under one cuBLAS fails with "CUDA error: out of memory" (seen on an H200 with 1 GiB); the RSS
    watchdog still holds the memory limit."""
    rlimits = {"fsize": int(limits.disk), "core": 0}
    if not gpu_ids:
        rlimits["data"] = int(limits.memory)
    return rlimits


def local_env(workdir: Path, cpus: float, gpu_ids: list[str]) -> dict[str, str]:
    """Nothing inherited from the host but the interpreter's location and two machine quirks."""
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env = sandbox_env(str(workdir / ".home"), str(workdir / ".tmp"), cpus, ",".join(gpu_ids), path)
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine quirks, not secrets
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class _CappedReader(threading.Thread):
    """Drains a pipe to the end, keeping only the first `cap` bytes, so a flood can't block or bloat us."""

    def __init__(self, stream, cap: int) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.buffer = CappedBuffer(cap)

    def run(self) -> None:
        while chunk := self.stream.read(65536):
            self.buffer.add(chunk)
        self.stream.close()


class LocalBackend(SandboxBackend):
    name = "local"
    isolates = False

    def __init__(self, settings: BackendSettings | None = None) -> None:
        super().__init__(settings)
        for option in ("image", "runtime"):
            if getattr(self.settings, option):
                raise UserError(f"--{option} applies to the docker backend, not to local",
                                "drop it, or pass --backend docker")

    def prepare(self, packages: Sequence[str]) -> None:
        """Stop before any run when this Python lacks the lab's packages: a student's code would fail
        with a ModuleNotFoundError that reads like their fault."""
        Environment.of(packages).check(sys.executable, where=f"the local backend's Python ({sys.executable})")

    def run(self, job: SandboxJob) -> SandboxRun:
        limits = job.limits
        job_file = write_job_file(job, rlimits=process_limits(limits, job.gpu_ids))
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-I", "-B", str(RUNNER), job_file, "--report-fd", str(write_fd)]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd, cwd=job.workdir, env=local_env(job.workdir, limits.cpus, job.gpu_ids),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), start_new_session=True,
            )
        except OSError as exc:
            os.close(read_fd)
            return SandboxRun(status="harness-error", message=f"could not start the runner: {exc}")
        finally:
            os.close(write_fd)
        out = _CappedReader(proc.stdout, STREAM_CAP)
        err = _CappedReader(proc.stderr, STREAM_CAP)
        report = _CappedReader(os.fdopen(read_fd, "rb"), REPORT_CAP + 1)
        for reader in (out, err, report):
            reader.start()
        status, message, peak, peak_gpu = self._watch(proc, job)
        for reader in (out, err, report):
            reader.join(timeout=10)
        run = SandboxRun(
            status=status, message=message, exit_code=proc.returncode,
            duration_s=round(time.monotonic() - started, 3), peak_memory_bytes=peak,
            gpu_ids=job.gpu_ids, peak_gpu_memory_bytes=peak_gpu, stdout=out.buffer.text(), stderr=err.buffer.text(),
        )
        if status == "ok":
            read_report(run, report.buffer)
        return run

    def _watch(self, proc: subprocess.Popen, job: SandboxJob) -> tuple[SandboxStatus, str, int, int | None]:
        """Poll until exit, killing the whole tree at the time, memory or disk limit;
        returns (status, why, peak memory, peak GPU memory)."""
        limits, gpus = job.limits, bool(job.gpu_ids)
        next_disk_check = time.monotonic() + DISK_CHECK_S
        root = psutil.Process(proc.pid)
        seen: dict[int, psutil.Process] = {proc.pid: root}
        deadline = time.monotonic() + limits.timeout
        peak = 0
        peak_gpu: int | None = None
        next_gpu_sample = time.monotonic()
        status: SandboxStatus = "ok"
        message = ""
        while proc.poll() is None:
            if gpus and time.monotonic() >= next_gpu_sample:
                used = gpu_memory_used(seen)
                if used is not None:
                    peak_gpu = max(peak_gpu or 0, used)
                next_gpu_sample = time.monotonic() + GPU_SAMPLE_S
            rss = 0
            try:
                for child in root.children(recursive=True):
                    seen.setdefault(child.pid, child)
            except psutil.Error:
                pass
            for p in list(seen.values()):
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            peak = max(peak, rss)
            if rss > limits.memory:
                status, message = "memory", f"used more than the {human_size(limits.memory)} memory limit"
                break
            if CANCEL.is_set():
                status, message = "cancelled", "grading was interrupted"
                break
            if time.monotonic() >= next_disk_check:
                why = over_disk_limit(job.workdir, int(limits.disk))
                if why:
                    status, message = "disk", why
                    break
                next_disk_check = time.monotonic() + DISK_CHECK_S
            if time.monotonic() > deadline:
                status, message = "timeout", f"ran longer than the {limits.timeout:g} s time limit"
                break
            try:
                proc.wait(timeout=POLL_S)  # wakes at once when the run ends
            except subprocess.TimeoutExpired:
                pass
        _kill_all(seen, proc.pid)
        proc.wait()
        return status, message, peak, peak_gpu


def _kill_all(processes: dict[int, psutil.Process], group: int) -> None:
    """SIGKILL the runner's process group and every process seen in the tree (psutil guards
    against reused pids: the kernel starts a session of its own), then reap."""
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
    for p in processes.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(processes.values()), timeout=5)
