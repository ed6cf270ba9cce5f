"""The one small interface every sandbox backend implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from autograder.spec import Limits

RUNNER = Path(__file__).with_name("runner.py")
# Bytes read back from the runner's report pipe (report line and executed notebook); more is an error.
REPORT_CAP = 64 * 1024**2
STREAM_CAP = 64 * 1024  # bytes of the runner's stdout/stderr kept, each
# Set on Ctrl-C: backends stop their runs at once instead of letting them finish.
CANCEL = threading.Event()


class SandboxJob(BaseModel):
    """One run of the in-sandbox runner over one work dir, which holds everything it may see."""

    stage: Literal["execute", "probe"]
    workdir: Path
    request: dict[str, Any] = Field(description="The runner's job: paths relative to the work dir.")
    limits: Limits


class SandboxRun(BaseModel):
    """How a run ended, as the backend saw it from outside."""

    status: Literal["ok", "timeout", "memory", "crashed", "harness-error", "cancelled"]
    message: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    peak_memory_bytes: int | None = None
    stdout: str = ""
    stderr: str = ""
    report: dict[str, Any] | None = Field(None, description="The runner's JSON report, when it wrote one.")
    attachment: bytes = Field(b"", exclude=True, repr=False, description="What the runner sent after its report.")


class SandboxBackend(ABC):
    name: ClassVar[str]
    isolates: ClassVar[bool] = False

    @abstractmethod
    def run(self, job: SandboxJob) -> SandboxRun:
        """Run the runner on `job.workdir` under `job.limits`; never raise for the student's doing."""

    def unavailable(self) -> str | None:
        """Why this backend can't run here, or None when it can."""
        return None
