"""The `local` backend: a process tree with limits. It does not isolate: for students and development.

What it does enforce: a fresh work dir as cwd, a clean environment (its own HOME, MPLCONFIGDIR,
IPYTHONDIR and Jupyter dirs; nothing of the host's environment), the whole-run timeout and the
memory limit over the whole process tree (killed as a tree, orphans included), per-process data
limit, no core files, a cap on file size, and capped stdout/stderr. What it cannot: hide the rest
of the file system or the network. The Docker backend does that.
"""

from __future__ import annotations

import json
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
    job_payload,
    over_disk_limit,
    read_report,
    sandbox_env,
    taken,
    write_job_file,
)
from autograder.sandbox.gpus import memory_used as gpu_memory_used
from autograder.sandbox.warm import Spare, WarmPool, clean, give_back, move_in, run_with_spare, spare_dir
from autograder.workspace import remove_tree

POLL_S = 0.05
# What a local runner makes in its own work dir before its job arrives: its HOME and TMPDIR.
OWN_ENTRIES = (".home", ".tmp")


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


class _Started:
    """A runner process and the threads draining its pipes."""

    def __init__(self, proc: subprocess.Popen, read_fd: int) -> None:
        self.proc = proc
        self.out = _CappedReader(proc.stdout, STREAM_CAP)
        self.err = _CappedReader(proc.stderr, STREAM_CAP)
        self.report = _CappedReader(os.fdopen(read_fd, "rb"), REPORT_CAP + 1)
        for reader in (self.out, self.err, self.report):
            reader.start()

    def join(self) -> None:
        for reader in (self.out, self.err, self.report):
            reader.join(timeout=10)


class _LocalSpare(Spare):
    """A warm runner process waiting for its job on a pipe only the host holds."""

    def __init__(self, workdir: Path, started: _Started, job_fd: int) -> None:
        super().__init__(workdir)
        self.started = started
        self.job_fd: int | None = job_fd

    def alive(self) -> bool:
        return self.started.proc.poll() is None

    def send(self, payload: bytes) -> bool:
        """Hand over the job; False when the runner is gone."""
        fd, self.job_fd = self.job_fd, None
        try:
            if fd is None:
                return False
            with os.fdopen(fd, "wb") as pipe:
                pipe.write(payload)
            return True
        except OSError:  # BrokenPipeError: it died meanwhile
            return False

    def stop(self) -> None:
        if self.job_fd is not None:
            os.close(self.job_fd)
            self.job_fd = None
        proc = self.started.proc
        if proc.poll() is None:
            tree: dict[int, psutil.Process] = {}
            try:
                tree[proc.pid] = psutil.Process(proc.pid)
                for child in tree[proc.pid].children(recursive=True):  # the kernel: a session of its own
                    tree[child.pid] = child
            except psutil.Error:
                pass
            _kill_all(tree, proc.pid)
        proc.wait()
        self.started.join()


class LocalBackend(SandboxBackend):
    name = "local"
    isolates = False

    def __init__(self, settings: BackendSettings | None = None) -> None:
        super().__init__(settings)
        for option in ("image", "runtime"):
            if getattr(self.settings, option):
                raise UserError(f"--{option} applies to the docker backend, not to local",
                                "drop it, or pass --backend docker")
        self.pool = WarmPool(self._start_spare, enabled=self.settings.warm)

    def close(self) -> None:
        self.pool.close()

    def prepare(self, packages: Sequence[str]) -> None:
        """Stop before any run when this Python lacks the lab's packages: a student's code would fail
        with a ModuleNotFoundError that reads like their fault."""
        Environment.of(packages).check(sys.executable, where=f"the local backend's Python ({sys.executable})")

    def run(self, job: SandboxJob) -> SandboxRun:
        return run_with_spare(self.pool, job, self._run_warm, self._run_cold)

    def _launch(self, workdir: Path, job: SandboxJob, args: list[str], pass_fds: tuple[int, ...] = ()) -> _Started:
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-I", "-B", str(RUNNER), *args, "--report-fd", str(write_fd)]
        try:
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=local_env(workdir, job.limits.cpus, job.gpu_ids),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd, *pass_fds), start_new_session=True,
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return _Started(proc, read_fd)

    def _run_cold(self, job: SandboxJob) -> SandboxRun:
        job_file = write_job_file(job, rlimits=process_limits(job.limits, job.gpu_ids))
        started = time.monotonic()
        try:
            runner = self._launch(job.workdir, job, [job_file])
        except OSError as exc:
            return SandboxRun(status="harness-error", message=f"could not start the runner: {exc}")
        run = self._finish(runner, job, job.workdir, started)
        assert run is not None
        return run

    def _start_spare(self, job: SandboxJob) -> _LocalSpare:
        """A runner started in a fresh dir with what this job's kind fixes: rlimits, GPUs, preloads."""
        workdir = spare_dir(job)
        job_r, job_w = os.pipe()
        args = ["--warm", job.stage, "--job-fd", str(job_r),
                "--rlimits", json.dumps(process_limits(job.limits, job.gpu_ids))]
        for name in job.preload:
            args += ["--preload", name]
        try:
            runner = self._launch(workdir, job, args, pass_fds=(job_r,))
        except OSError:
            os.close(job_w)
            remove_tree(workdir)
            raise
        finally:
            os.close(job_r)
        return _LocalSpare(workdir, runner, job_w)

    def _run_warm(self, spare: _LocalSpare, job: SandboxJob) -> SandboxRun | None:
        """The job in a spare; None when the spare could not take it (the caller starts it cold)."""
        if not clean(spare.workdir, OWN_ENTRIES):  # something planted in it while it waited
            spare.destroy()
            return None
        move_in(job.workdir, spare.workdir)
        started = time.monotonic()
        if not spare.send(job_payload(job)):
            spare.stop()
            give_back(spare.workdir, job.workdir)
            return None
        run = self._finish(spare.started, job, spare.workdir, started, warm=True)
        give_back(spare.workdir, job.workdir)
        return run  # None: it died before it took the job, which starts cold

    def _finish(self, runner: _Started, job: SandboxJob, workdir: Path, started: float,
                warm: bool = False) -> SandboxRun | None:
        """Watch the started job to its end and read what it reported (None: a warm runner that
        ended without taking its job)."""
        proc = runner.proc
        status, message, peak, peak_gpu, cpu = self._watch(proc, job, workdir)
        runner.join()
        if warm and not taken(runner.report.buffer) and status != "cancelled":
            return None
        run = SandboxRun(
            status=status, message=message, exit_code=proc.returncode,
            duration_s=round(time.monotonic() - started, 3), peak_memory_bytes=peak, cpu_s=cpu,
            gpu_ids=job.gpu_ids, peak_gpu_memory_bytes=peak_gpu, stdout=runner.out.buffer.text(),
            stderr=runner.err.buffer.text(),
        )
        if status == "ok":
            read_report(run, runner.report.buffer)
        return run

    def _watch(self, proc: subprocess.Popen, job: SandboxJob,
               workdir: Path) -> tuple[SandboxStatus, str, int, int | None, float | None]:
        """Poll until exit, killing the whole tree at the time, memory or disk limit;
        returns (status, why, peak memory, peak GPU memory, CPU seconds)."""
        limits, gpus = job.limits, bool(job.gpu_ids)
        next_disk_check = time.monotonic() + DISK_CHECK_S
        root = psutil.Process(proc.pid)
        seen: dict[int, psutil.Process] = {proc.pid: root}
        cpu = _CpuClock(root)
        deadline = time.monotonic() + limits.timeout
        peak = 0
        peak_gpu: int | None = None
        next_gpu_sample = time.monotonic()
        status: SandboxStatus = "ok"
        message = ""
        while proc.returncode is None:
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
                    with p.oneshot():
                        rss += p.memory_info().rss
                        cpu.sample(p)
                except psutil.Error:
                    continue
            peak = max(peak, rss)
            if rss > limits.memory:
                status, message = "memory", f"used more than the {human_size(limits.memory)} memory limit"
                break
            if CANCEL.is_set():
                status, message = "cancelled", "grading was interrupted"
                self.pool.drain()
                break
            if time.monotonic() >= next_disk_check:
                why = over_disk_limit(workdir, int(limits.disk))
                if why:
                    status, message = "disk", why
                    break
                next_disk_check = time.monotonic() + DISK_CHECK_S
            if time.monotonic() > deadline:
                status, message = "timeout", f"ran longer than the {limits.timeout:g} s time limit"
                break
            cpu.reap(proc, POLL_S)  # wakes at once when the run ends
        _kill_all(seen, proc.pid)
        cpu.reap(proc, None)
        return status, message, peak, peak_gpu, cpu.seconds()


class _CpuClock:
    """CPU seconds of a run's process tree, measured from outside: the runner's rusage when it is
    reaped (its own time and that of every child it waited for, the kernel included), or, where
    that is less (a tree killed at a limit, whose orphans no one here reaps), the sum of each seen
    process's own time at its last sample. A warm runner's time before its job (imports while it
    waited) is not the run's: it is taken off."""

    def __init__(self, root: psutil.Process) -> None:
        self.own: dict[int, float] = {}
        self.usage: float | None = None
        try:
            t = root.cpu_times()
            self.before = t.user + t.system + t.children_user + t.children_system
            self.own[root.pid] = t.user + t.system
        except psutil.Error:
            self.before = 0.0
        self.own_before = self.own.get(root.pid, 0.0)

    def sample(self, p: psutil.Process) -> None:
        t = p.cpu_times()
        self.own[p.pid] = t.user + t.system

    def reap(self, proc: subprocess.Popen, timeout: float | None) -> None:
        """proc.wait(timeout) through os.wait4, which keeps the exited runner's rusage."""
        if proc.returncode is not None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while True:
            try:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline is not None else 0)
            except ChildProcessError:  # reaped elsewhere: its rusage is gone, the samples stand
                proc.poll()
                return
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.usage = usage.ru_utime + usage.ru_stime
                return
            assert deadline is not None
            left = deadline - time.monotonic()
            if left <= 0:
                return
            delay = min(delay * 2, left, POLL_S)
            time.sleep(delay)

    def seconds(self) -> float | None:
        sampled = sum(self.own.values()) - self.own_before
        if self.usage is None and not self.own:
            return None
        return round(max(sampled, (self.usage or 0.0) - self.before, 0.0), 3)


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
