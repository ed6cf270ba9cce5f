"""What a grading produces; every model here is stored as JSON and exported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["pass", "fail", "review", "error", "skipped"]
Verdict = Literal["G", "U", "review", "error"]
ExecutionStatus = Literal[
    "ok", "error", "cell-timeout", "timeout", "memory", "pids", "disk", "crashed", "invalid", "harness-error"
]
# How a sandbox run ended, as its backend saw it from outside (SandboxRun.status).
SandboxStatus = Literal["ok", "timeout", "memory", "pids", "disk", "crashed", "harness-error", "cancelled"]


def now() -> datetime:
    return datetime.now(UTC)


class Override(BaseModel):
    """A TA's decision on one criterion; it outlives regrades until removed."""

    status: Literal["pass", "fail"]
    note: str
    by: str
    at: datetime = Field(default_factory=now)
    was: Status | None = Field(None, description="What the grader said before the decision was applied.")


class CriterionResult(BaseModel):
    id: str
    kind: str
    status: Status
    value: float | int | str | None = None
    threshold: float | int | str | None = None
    message: str = Field(description="One line the student understands.")
    advice: str = Field("", description="One sentence on what to do next.")
    required: bool = True
    details: dict[str, Any] = Field(default_factory=dict, description="Evidence for the TA; not all of it is "
                                    "shown to the student.")
    override: Override | None = None
    estimate: str = Field("", description="Set by the self-check: why grading may measure this differently.")
    close: bool = Field(False, description="Set by the self-check: an estimate within the safe margin of its bar.")


class ExecutionResult(BaseModel):
    """How the notebook run went, read from the sandbox's own state, not from the student's files."""

    status: ExecutionStatus
    message: str = ""
    cell: int | None = Field(None, description="1-based index of the failing cell, as the student sees it.")
    duration_s: float = 0.0
    cpu_s: float | None = Field(None, description="User + system CPU seconds of the run, measured from outside.")
    peak_memory_mb: float | None = None
    device: str = Field("cpu", description="What the notebook was given as `device`: cpu or cuda.")
    gpus: list[str] = Field(default_factory=list, description="Host GPU ids the run used.")
    peak_gpu_memory_mb: float | None = Field(None, description="Measured from outside with nvidia-smi.")
    output_truncated_bytes: int = 0
    exports: list[str] = Field(default_factory=list, description="Declared exports that were saved.")
    stderr_tail: str = ""
    environment: Environment | None = Field(
        None, description="The stamp taken when this run ran, kept with its stage record: a result judged from "
        "a recorded run is stamped with that run's image and versions, not with today's. The pipeline moves it "
        "into SubmissionResult.environment.")


class ProbeStatus(BaseModel):
    status: Literal["ok", "failed"]
    error: str = Field("", description="Why it failed, as the student may read it: for a hidden probe, or once "
                       "hidden inputs were in reach of the student's code, the exception's type only.")
    detail: str = Field("", description="The whole text, for staff only (show, review, the cohort report).")
    keys: list[str] = Field(default_factory=list)


class ModelStats(BaseModel):
    """Size of one exported torch module: counted in the probe sandbox, bounded by what the host measured."""

    parameters: int = Field(ge=0, description="Registered parameters (numel), trainable or not.")
    trainable: int = Field(ge=0)
    bytes: int = Field(ge=0, description="Size of its state_dict as torch.save writes it.")
    stored: int | None = Field(None, ge=0, description="Every number reachable from the export, however stored: "
                               "tensors, arrays, floats, bytes (as float32), registered or not.")
    stored_complete: bool = Field(True, description="False when the object graph was too large to walk to its end.")
    saved_bytes: int | None = Field(None, ge=0, description="Size of the export's pickle, measured on the host.")

    @property
    def counted(self) -> int:
        """What a parameter budget is held against: the larger of the registered and the stored count."""
        return max(self.parameters, self.stored or 0)


class ProbeReport(BaseModel):
    status: Literal["ok", "skipped", "timeout", "memory", "pids", "disk", "crashed", "harness-error"]
    message: str = ""
    duration_s: float = 0.0
    cpu_s: float | None = Field(None, description="User + system CPU seconds of the probe run, measured from outside.")
    peak_memory_mb: float | None = Field(None, description="Host peak memory of the probe run, where measured.")
    probes: dict[str, ProbeStatus] = Field(default_factory=dict)
    exports: dict[str, str] = Field(default_factory=dict, description="export -> 'ok' or why it failed to load")
    models: dict[str, ModelStats] = Field(default_factory=dict, description="Exports that are torch modules.")


class HiddenTestResult(BaseModel):
    name: str
    outcome: Literal["passed", "failed", "error", "skipped"]
    message: str = Field("", description="Shown to the student only when the test is public.")
    public: bool = Field(False, description="Marked @pytest.mark.public: its failure message may be shown.")
    weight: float = Field(1.0, ge=0, description="From @pytest.mark.weight(w), for partial credit.")
    kit: bool = Field(False, description="One of the public tests the students have (assignments/<lab>/tests).")


class Lateness(BaseModel):
    """A hand-in after its deadline: by the course's deadline (the student's extension where they have
    one), or by the LMS's own mark (Canvas's `_LATE`) where course.yaml sets none."""

    deadline: datetime | None = Field(None, description="The deadline it missed; None when only the LMS said so.")
    by_s: float | None = Field(None, ge=0, description="How long after the deadline, in seconds, where known.")
    extended: bool = Field(False, description="The deadline is the student's extension.")
    marked_by: str = Field("", description="The LMS that marked it late (canvas), or '' when the times say so.")
    policy: Literal["mark", "review", "fail"] = Field("mark", description="The course's late policy for the lab.")

    def describe(self) -> str:
        """'handed in 2 h 5 min after the deadline (2026-02-13 17:00 +0100, an extension)'."""
        how = f"handed in {_duration(self.by_s)} after the deadline" if self.by_s is not None else \
            "handed in after the deadline"
        if self.deadline is not None:
            how += f" ({self.deadline:%Y-%m-%d %H:%M %z}{', an extension' if self.extended else ''})"
        if self.marked_by:
            how += f"; {self.marked_by.capitalize()} marked it late"
        return how


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes)
    return " ".join(parts[:2])


class Environment(BaseModel):
    """The reproducibility stamp: the conditions a result was graded under, read by the host from outside
    student code (the engine, the image's build-time labels, the host's interpreter, /proc, nvidia-smi), so
    a notebook that rewrites torch.__version__ cannot change it."""

    seed_parameter: str | None = Field(None, description="Which of the lab's parameters is the seed.")
    seeds: list[int] = Field(default_factory=list, description="The first run's seed, then every re-run's.")
    image: str = Field("", description="The sandbox image's name (docker), or '' on the local backend.")
    image_digest: str = Field("", description="The image's id from the engine (sha256:...), or ''.")
    python: str = ""
    torch: str = ""
    cuda: str | None = Field(None, description="The CUDA version torch was built for; None for a CPU build.")
    driver: str | None = Field(None, description="The NVIDIA driver version, when GPUs were used.")
    gpu: str | None = Field(None, description="The GPU model(s), when GPUs were used.")
    cpu: str = Field("", description="The host's CPU model.")
    platform: str = Field("", description="The operating system and machine, e.g. Linux-6.8 x86_64.")
    backend: str = ""
    deterministic: dict[str, str] = Field(default_factory=dict, description="Settings the harness puts in force "
                                          "in the sandbox (thread counts, PYTHONHASHSEED, CUBLAS_WORKSPACE_CONFIG).")
    harness_version: str = ""
    limits: dict[str, Any] = Field(default_factory=dict, description="The notebook run's limits as they applied "
                                   "(the lab's, with the command line's overrides): `rerun` applies them again.")

    def lines(self) -> list[str]:
        """What `show` and the feedback page say of it, one fact a line; nothing here is hidden."""
        seeds = ", ".join(str(s) for s in self.seeds) or "none recorded"
        software = f"Python {self.python or '?'}" + (f", torch {self.torch}" if self.torch else "") + \
            (f", CUDA {self.cuda}" if self.cuda else "")
        hardware = self.gpu + (f" (driver {self.driver})" if self.driver else "") if self.gpu else self.cpu
        image = f"{self.image} ({self.image_digest[:19] or 'id unknown'})" if self.image else \
            f"none: the {self.backend or 'local'} backend, on the grader's own Python"
        said = [f"seed{'s' if len(self.seeds) > 1 else ''}: {seeds}" +
                (f" (parameter `{self.seed_parameter}`)" if self.seed_parameter else ""),
                f"image: {image}", f"software: {software}", f"hardware: {hardware or 'unknown'}"]
        if self.platform:
            said.append(f"platform: {self.platform}")
        if self.deterministic:
            said.append("settings: " + ", ".join(f"{k}={v}" for k, v in sorted(self.deterministic.items())))
        said.append(f"grader: autograder {self.harness_version or '?'}, {self.backend or '?'} backend")
        return said


class Compute(BaseModel):
    """What grading one hand-in cost, summed over its sandbox runs (cached stages count what they cost when
    they ran). GPU-seconds are wall time times the GPUs held: a held GPU is spent whether busy or not."""

    wall_s: float = Field(0.0, ge=0)
    cpu_s: float | None = Field(None, ge=0, description="User + system CPU time; None where unmeasured.")
    gpu_s: float = Field(0.0, ge=0, description="Wall time x GPUs held, over runs that held GPUs.")
    peak_memory_mb: float | None = Field(None, ge=0, description="Largest host peak over the runs.")
    peak_gpu_memory_mb: float | None = Field(None, ge=0, description="Largest GPU peak over the runs.")
    runs: int = Field(0, ge=0, description="Sandbox runs counted (execute and probe, re-runs included).")

    def line(self) -> str:
        """'2 runs: 41.2 s wall, 38.9 CPU-s, 0 GPU-s; peak memory 812 MB'."""
        cpu = "CPU-s unmeasured" if self.cpu_s is None else f"{self.cpu_s:.1f} CPU-s"
        runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        said = f"{runs}: {self.wall_s:.1f} s wall, {cpu}, {self.gpu_s:.0f} GPU-s"
        if self.peak_memory_mb is not None:
            said += f"; peak memory {self.peak_memory_mb:.0f} MB"
        if self.peak_gpu_memory_mb is not None:
            said += f", GPU {self.peak_gpu_memory_mb:.0f} MB"
        return said


class SubmissionResult(BaseModel):
    lab: str
    student: str
    submission_hash: str
    lab_version: str
    rubric_hash: str
    verdict: Verdict
    criteria: list[CriterionResult]
    execution: ExecutionResult | None = None
    probes: ProbeReport | None = None
    tests: list[HiddenTestResult] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    backend: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    stages: dict[str, str] = Field(default_factory=dict, description="stage -> the key of the recorded stage output "
                                   "this result was judged from (its artifacts: the executed notebook, probe outputs).")
    graded_at: datetime = Field(default_factory=now)
    harness_version: str = ""
    handed_in: datetime | None = Field(None, description="When the graded work was handed in (the LMS's time, a "
                                       "--handed-in CSV, the zip or file time); None where intake had none.")
    late: Lateness | None = Field(None, description="Set when the hand-in was late.")
    environment: Environment | None = Field(None, description="The reproducibility stamp (seeds, image, versions, "
                                            "hardware); None for results graded before it existed.")
    compute: Compute | None = Field(None, description="CPU/GPU seconds and peak memory of the sandbox runs.")

    def failed(self) -> list[CriterionResult]:
        """Criteria that keep the verdict from G, in rubric order."""
        return [c for c in self.criteria if c.required and c.status != "pass"]


ExecutionResult.model_rebuild()  # its stamp (Environment) is defined below it
