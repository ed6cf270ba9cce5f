"""Execute: papermill runs the notebook in a fresh sandbox; the harness saves the declared exports.

The verdict on how the run went comes from the backend (time, memory, exit) and the runner's
report, never from files the student's code could have written. A lab without a notebook has no
execute stage at all (the pipeline goes straight to the probes, which import the modules); what a
student reads of a failed cell names no host path (`runner.scrub_paths`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from autograder.artifacts import EXECUTED, EXPORTS, ExecuteArtifacts
from autograder.grading.intake import Submission
from autograder.labs.lab import Lab
from autograder.labs.spec import Limits, human_size
from autograder.notebooks.restore import restore
from autograder.results import ExecutionResult
from autograder.sandbox import SandboxBackend, SandboxJob, SandboxRun
from autograder.sandbox.runner import ExecuteJob, scrub_paths
from autograder.workspace import copy_read_only, read_capped, workdir, write_files

MAX_EXPORT_BYTES = 2 * 1024**3


@dataclass
class Executed:
    result: ExecutionResult
    folder: Path  # artifacts.ExecuteArtifacts: executed.ipynb (when readable) and exports/<name>.pkl

    @property
    def notebook_path(self) -> Path:
        return ExecuteArtifacts(self.folder).notebook

    @property
    def exports_dir(self) -> Path:
        return ExecuteArtifacts(self.folder).exports


def request(lab: Lab, limits: Limits) -> ExecuteJob:
    """The runner's job; everything in it is relative to the work dir, so any backend can mount it."""
    parameters = {**lab.spec.parameters, "data_dir": "data", "device": "cuda" if limits.gpus else "cpu"}
    return {
        "stage": "execute",
        "notebook": "submission.ipynb",
        "output": EXECUTED,  # in the work dir; the host keeps the copy from the runner's pipe
        "parameters": parameters,
        "exports": lab.spec.exports,
        "exports_dir": EXPORTS,  # the capture cell writes there; the host copies the declared ones
        "cell_timeout": limits.cell_timeout,
        "output_cap": int(limits.output),
        "output_total_cap": 16 * int(limits.output),
    }


def modules(lab: Lab, sub: Submission) -> dict[str, bytes]:
    """The Python modules that sit beside the notebook: the student's, and the provided ones as released."""
    files = {name: sub.file_bytes(name) for name in lab.spec.files.student if name in sub.files}
    files.update({name: lab.template_path(name).read_bytes() for name in lab.spec.files.provided})
    return files


def prepared_notebook(lab: Lab, sub: Submission) -> bytes:
    """The student's notebook with its locked cells restored from the release, as it will run."""
    submitted = nbformat.reads(sub.notebook_bytes().decode("utf-8"), as_version=4)
    released = nbformat.read(lab.released_notebook, as_version=4)
    return nbformat.writes(restore(submitted, released).notebook).encode()


def execute(lab: Lab, sub: Submission, backend: SandboxBackend, limits: Limits, artifacts: Path,
            scratch: Path | None = None, gpu_ids: list[str] | None = None) -> Executed:
    with workdir("execute", scratch) as wd:
        (wd / "submission.ipynb").write_bytes(prepared_notebook(lab, sub))
        write_files(wd, modules(lab, sub))
        copy_read_only(lab.public_data_dir, wd / "data")
        job = SandboxJob(workdir=wd, request=request(lab, limits), limits=limits, gpu_ids=gpu_ids or [],
                         packages=lab.spec.packages)
        run = backend.run(job)
        artifacts.mkdir(parents=True, exist_ok=True)
        result = interpret(run, limits)
        # From the runner's pipe, never from the work dir, where the student's processes could rewrite it.
        kept = ExecuteArtifacts(artifacts)
        if run.attachment:
            kept.notebook.write_bytes(run.attachment)
        _keep_exports(wd / EXPORTS, kept.exports, lab.spec.exports, result)
    return Executed(result=result, folder=artifacts)


def _mb(n: int | None) -> float | None:
    return round(n / 1024**2, 1) if n else None


def interpret(run: SandboxRun, limits: Limits) -> ExecutionResult:
    base: dict[str, Any] = dict(
        duration_s=run.duration_s, cpu_s=run.cpu_s, peak_memory_mb=_mb(run.peak_memory_bytes),
        stderr_tail=run.stderr[-2000:],
        device="cuda" if limits.gpus else "cpu", gpus=run.gpu_ids, peak_gpu_memory_mb=_mb(run.peak_gpu_memory_bytes))
    if run.status == "timeout":
        return ExecutionResult(status="timeout", message=(
            f"The notebook was stopped after {limits.timeout:g} s, the lab's time limit for the whole run "
            "(an endless loop, or training for too long?)."), **base)
    if run.status == "memory":
        return ExecutionResult(status="memory", message=(
            f"The notebook was stopped for using more than {human_size(limits.memory)} of memory, "
            "the lab's limit."), **base)
    if run.status == "pids":
        return ExecutionResult(status="pids", message=(
            f"The notebook was stopped for starting more than {limits.pids} processes and threads at once, "
            "the lab's limit (a fork bomb, or too many data-loader workers?)."), **base)
    if run.status == "disk":
        return ExecutionResult(status="disk", message=(
            f"The notebook was stopped: it {run.message} (the lab allows {human_size(limits.disk)} "
            "in its folder)."), **base)
    if run.status == "crashed":
        return ExecutionResult(status="crashed", message=f"The notebook's process died: {run.message}.", **base)
    if run.status in ("harness-error", "cancelled"):
        return ExecutionResult(status="harness-error", message=run.message, **base)
    report = run.report or {}
    status = report.get("status", "harness-error")
    cell = report.get("cell")
    where = f"Cell {cell}" if cell else "A cell"
    base.update(cell=cell, output_truncated_bytes=int(report.get("output_truncated_bytes", 0)))
    if status == "ok":
        return ExecutionResult(status="ok", **base)
    if status == "error" and report.get("ename") == "StdinNotImplementedError":
        return ExecutionResult(status="error", message=(
            f"{where} asks for keyboard input (input()), which is not available when grading."), **base)
    if status == "error":
        evalue = scrub_paths(str(report.get("evalue", ""))).strip().splitlines()
        first = evalue[0][:300] if evalue else ""
        return ExecutionResult(status="error", message=f"{where} raised {report.get('ename')}: {first}".rstrip(": "),
                               **base)
    if status == "memory":
        return ExecutionResult(status="memory", message=(
            f"{where} ran out of memory (MemoryError); the lab's limit is {human_size(limits.memory)}."), **base)
    if status == "cell-timeout":
        return ExecutionResult(status="cell-timeout", message=(
            f"{where} ran longer than {limits.cell_timeout:g} s, the lab's time limit per cell "
            "(an endless loop?)."), **base)
    if status == "crashed":
        return ExecutionResult(status="crashed", message=f"{where} crashed the notebook's kernel.", **base)
    text = str(report.get("message", "")).strip().splitlines() or ["the runner sent no report"]
    base["stderr_tail"] = str(report.get("message", ""))[-2000:] or base["stderr_tail"]
    return ExecutionResult(status="harness-error", message=text[-1][:300], **base)


def _keep_exports(src: Path, dst: Path, names: list[str], result: ExecutionResult) -> None:
    """Move the declared exports (only those, only regular files) into the artifacts, under a size cap."""
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in names:
        path = src / f"{name}.pkl"
        if not (path.is_file() and not path.is_symlink()):
            why = read_capped(src / f"{name}.error", 4096)  # the capture cell's reason it could not save
            if why is not None:
                (dst / f"{name}.error").write_bytes(why)
            continue
        total += path.stat().st_size
        if total > MAX_EXPORT_BYTES:
            break
        shutil.move(path, dst / path.name)
        result.exports.append(name)
