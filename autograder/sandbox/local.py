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
from pathlib import Path

import psutil

from autograder.sandbox.base import CANCEL, REPORT_CAP, RUNNER, STREAM_CAP, SandboxBackend, SandboxJob, SandboxRun
from autograder.spec import human_size

POLL_S = 0.05
FILE_SIZE_CAP = 2 * 1024**3


def sandbox_env(workdir: Path, cpus: float, gpus: int) -> dict[str, str]:
    """A clean environment: nothing inherited from the host but the interpreter's location."""
    home = workdir / ".home"
    dirs = {
        "HOME": home,
        "MPLCONFIGDIR": home / "matplotlib",
        "IPYTHONDIR": home / "ipython",
        "JUPYTER_CONFIG_DIR": home / "jupyter" / "config",
        "JUPYTER_DATA_DIR": home / "jupyter" / "data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter" / "runtime",
        "TMPDIR": workdir / ".tmp",
        "XDG_CACHE_HOME": home / "cache",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    threads = str(max(1, int(cpus)))
    env = {k: str(v) for k, v in dirs.items()}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        LANG="C.UTF-8",
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        JUPYTER_PLATFORM_DIRS="1",
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        OPENBLAS_NUM_THREADS=threads,
        CUDA_VISIBLE_DEVICES="" if gpus == 0 else ",".join(str(i) for i in range(gpus)),
    )
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine quirks, not secrets
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class _CappedReader(threading.Thread):
    """Drains a pipe to the end, keeping only the first `cap` bytes, so a flood can't block or bloat us."""

    def __init__(self, stream, cap: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.data = bytearray()
        self.total = 0

    def run(self) -> None:
        while chunk := self.stream.read(65536):
            self.total += len(chunk)
            if len(self.data) < self.cap:
                self.data += chunk[: self.cap - len(self.data)]
        self.stream.close()

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.total > len(self.data):
            text += f"\n[{self.total - len(self.data)} more bytes dropped]"
        return text


class LocalBackend(SandboxBackend):
    name = "local"
    isolates = False

    def run(self, job: SandboxJob) -> SandboxRun:
        limits = job.limits
        job_file = job.workdir / ".job.json"
        # Per-process ceilings the RSS watchdog can't react to in time; the runner sets them on itself
        # (a preexec_fn is not safe while other threads run) and the kernel inherits them.
        rlimits = {"data": int(limits.memory), "fsize": FILE_SIZE_CAP, "core": 0}
        job_file.write_text(json.dumps({"stage": job.stage, "rlimits": rlimits, **job.request}))
        read_fd, write_fd = os.pipe()
        cmd = [sys.executable, "-I", "-B", str(RUNNER), str(job_file), "--report-fd", str(write_fd)]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd, cwd=job.workdir, env=sandbox_env(job.workdir, limits.cpus, limits.gpus),
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
        status, message, peak = self._watch(proc, limits)
        for reader in (out, err, report):
            reader.join(timeout=10)
        run = SandboxRun(
            status=status, message=message, exit_code=proc.returncode,
            duration_s=round(time.monotonic() - started, 3), peak_memory_bytes=peak,
            stdout=out.text(), stderr=err.text(),
        )
        if status == "ok":
            self._read_report(run, report)
        return run

    @staticmethod
    def _read_report(run: SandboxRun, report: _CappedReader) -> None:
        if report.total > REPORT_CAP:
            run.status, run.message = "harness-error", "the runner's report exceeded its size cap"
            return
        head, _, run.attachment = bytes(report.data).partition(b"\n")
        try:
            run.report = json.loads(head) if head else None
        except ValueError:
            run.report = None
        if run.report is None:
            # The runner died before reporting: killed from inside (os._exit, a signal) or broken.
            run.status = "crashed"
            run.message = f"the run ended without a report (exit code {run.exit_code})"

    def _watch(self, proc: subprocess.Popen, limits) -> tuple[str, str, int]:
        """Poll until exit, killing the whole tree at the time or memory limit; returns (status, why, peak)."""
        root = psutil.Process(proc.pid)
        seen: dict[int, psutil.Process] = {proc.pid: root}
        deadline = time.monotonic() + limits.timeout
        peak = 0
        status, message = "ok", ""
        while proc.poll() is None:
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
            if time.monotonic() > deadline:
                status, message = "timeout", f"ran longer than the {limits.timeout:g} s time limit"
                break
            try:
                proc.wait(timeout=POLL_S)  # wakes at once when the run ends
            except subprocess.TimeoutExpired:
                pass
        _kill_all(seen, proc.pid)
        proc.wait()
        return status, message, peak


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
