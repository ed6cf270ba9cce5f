"""The one small interface every sandbox backend implements."""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from autograder.labs.spec import Limits, human_size
from autograder.results import SandboxStatus
from autograder.sandbox.runner import JOB_FILE, TAKEN, Job, Report

RUNNER = Path(__file__).with_name("runner.py")
# Bytes read back from the runner's report pipe (report line and executed notebook); more is an error.
REPORT_CAP = 64 * 1024**2
STREAM_CAP = 64 * 1024  # bytes of the runner's stdout/stderr kept, each
GPU_SAMPLE_S = 1.0  # how often a run's GPU memory is sampled with nvidia-smi
DISK_CHECK_S = 0.5  # how often the size of a run's work dir is measured
MAX_FILES = 100_000  # entries a run may leave in its work dir
# Set on Ctrl-C: backends stop their runs at once instead of letting them finish.
CANCEL = threading.Event()


class SandboxJob(BaseModel):
    """One run of the in-sandbox runner over one work dir, which holds everything it may see."""

    workdir: Path
    request: Job = Field(discriminator="stage", description="The runner's job (runner.ExecuteJob or ProbeJob): "
                         "paths relative to the work dir.")
    limits: Limits
    gpu_ids: list[str] = Field(default_factory=list, description="Host GPU ids this run may use.")
    packages: list[str] = Field(default_factory=list, description="The lab's packages (lab.yaml): the docker "
                                "backend runs the image built for them.")
    preload: list[str] = Field(default_factory=list, description="Modules a warm sandbox imports before its job "
                               "arrives (the probe stage: torch, when the exports hold torch objects).")

    @property
    def stage(self) -> Literal["execute", "probe"]:
        return self.request["stage"]


def job_payload(job: SandboxJob, rlimits: dict[str, int] | None = None) -> bytes:
    """The job as the runner reads it."""
    payload: Job = job.request.copy()
    if rlimits is not None:
        payload["rlimits"] = rlimits
    if job.gpu_ids and job.limits.gpu_memory_gb:
        payload["gpu_memory_bytes"] = int(job.limits.gpu_memory_gb * 1024**3)
    return json.dumps(payload).encode()


def write_job_file(job: SandboxJob, rlimits: dict[str, int] | None = None, folder: Path | None = None) -> str:
    """The runner's job file in the work dir (or `folder`), renamed into place whole, since a warm
    runner starts on the file's appearance; returns its name relative to the work dir."""
    folder = folder or job.workdir
    partial = folder / (JOB_FILE + ".partial")
    partial.write_bytes(job_payload(job, rlimits))
    os.replace(partial, folder / JOB_FILE)
    return JOB_FILE


def taken(channel: CappedBuffer) -> bool:
    """Whether a warm runner took its job (it sends TAKEN first); strips the byte from the channel."""
    if bytes(channel.data[:1]) != TAKEN:
        return False
    del channel.data[:1]
    channel.total -= 1
    return True


class SandboxRun(BaseModel):
    """How a run ended, as the backend saw it from outside."""

    status: SandboxStatus
    message: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    peak_memory_bytes: int | None = None
    cpu_s: float | None = Field(None, description="User + system CPU seconds of the run's processes, measured "
                                "from outside (rusage, /proc, the container's cgroup); None where unmeasured.")
    gpu_ids: list[str] = Field(default_factory=list)
    peak_gpu_memory_bytes: int | None = None
    stdout: str = ""
    stderr: str = ""
    report: Report | None = Field(None, description="The runner's JSON report, when it wrote one.")
    attachment: bytes = Field(b"", exclude=True, repr=False, description="What the runner sent after its report.")


# Settings in the sandbox's environment that make a run repeatable: the reproducibility stamp records
# them (grading/stamp.py). PYTHONHASHSEED fixes set and dict-of-str order; CUBLAS_WORKSPACE_CONFIG lets
# torch.use_deterministic_algorithms(True) run cuBLAS deterministically (it fixes no other CUDA kernel).
DETERMINISTIC = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS")


def deterministic(env: dict[str, str]) -> dict[str, str]:
    """The repeatability settings among a sandbox environment's variables."""
    return {key: env[key] for key in DETERMINISTIC if key in env}


def sandbox_env(home: str, tmp: str, cpus: float, visible_gpus: str, path: str) -> dict[str, str]:
    """A clean environment, the same in every backend: its own home, config, cache and temp
    folders (the runner creates them), thread counts from the CPU limit, and only the GPUs given."""
    threads = str(max(1, int(cpus)))
    return {
        "PYTHONHASHSEED": "0",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "HOME": home,
        "MPLCONFIGDIR": f"{home}/matplotlib",
        "IPYTHONDIR": f"{home}/ipython",
        "JUPYTER_CONFIG_DIR": f"{home}/jupyter/config",
        "JUPYTER_DATA_DIR": f"{home}/jupyter/data",
        "JUPYTER_RUNTIME_DIR": f"{home}/jupyter/runtime",
        "XDG_CACHE_HOME": f"{home}/cache",
        "TMPDIR": tmp,
        "PATH": path,
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "CUDA_VISIBLE_DEVICES": visible_gpus,
    }


def over_disk_limit(workdir: Path, limit: int) -> str:
    """Why the work dir holds more than a run may write ('' when it doesn't): the host's disk is
    shared by every submission, and a per-file cap alone doesn't stop many files."""
    total = entries = 0
    stack = [str(workdir)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > MAX_FILES:
                        return f"left more than {MAX_FILES:,} files in its folder"
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
        if total > limit:
            return f"wrote more than the {human_size(limit)} disk limit"
    return ""


class CappedBuffer:
    """Keeps the first `cap` bytes of a stream and counts the rest, so a flood can't bloat the host."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.data) < self.cap:
            self.data += chunk[: self.cap - len(self.data)]

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.total > len(self.data):
            text += f"\n[{self.total - len(self.data)} more bytes dropped]"
        return text


def read_report(run: SandboxRun, channel: CappedBuffer) -> None:
    """Fill `run` from the runner's report channel: one JSON line, then the attachment."""
    if channel.total > REPORT_CAP:
        run.status, run.message = "harness-error", "the runner's report exceeded its size cap"
        return
    head, _, run.attachment = bytes(channel.data).partition(b"\n")
    try:
        raw = json.loads(head) if head else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        # The runner died before reporting: killed from inside (os._exit, a signal) or broken.
        run.status = "crashed"
        run.message = f"the run ended without a report (exit code {run.exit_code})"
        return
    try:
        run.report = _REPORT.validate_python(raw)
    except ValidationError as exc:  # the runner sent the wrong shape: ours to fix, never the student's
        run.status, run.message = "harness-error", f"the runner's report is malformed: {exc}"[:500]


_REPORT: TypeAdapter[Report] = TypeAdapter(Report)


class BackendSettings(BaseModel):
    """Choices the CLI passes to a backend; each backend rejects what it can't honour."""

    image: str | None = None
    runtime: str | None = None
    warm: bool = Field(True, description="Start each kind of run's next sandbox while the current one runs "
                       "(sandbox.warm); off, every run starts cold.")


class SandboxBackend(ABC):
    name: ClassVar[str]
    isolates: ClassVar[bool] = False

    def __init__(self, settings: BackendSettings | None = None) -> None:
        self.settings = settings or BackendSettings()

    @abstractmethod
    def run(self, job: SandboxJob) -> SandboxRun:
        """Run the runner on `job.workdir` under `job.limits`; never raise for the student's doing."""

    def unavailable(self) -> str | None:
        """Why this backend can't run here, or None when it can."""
        return None

    def prepare(self, packages: Sequence[str]) -> None:
        """Before a lab's batch: raise a UserError naming what is missing when this backend can't run code
        that needs `packages` (lab.yaml), so no student is blamed for the lab's environment."""
        return None

    def close(self) -> None:
        """After the batch: destroy the spare sandboxes (sandbox.warm). Idempotent; also run at exit."""
        return None
