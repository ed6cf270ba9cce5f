"""What grading a hand-in cost: CPU- and GPU-seconds and peak memory, summed over its sandbox runs.

Read from what the backends measured from outside (SandboxRun), never from the notebook. A cached stage's
ExecutionResult/ProbeReport carries what it cost when it ran, so a regrade from cache reports the same cost.
"""

from __future__ import annotations

from collections.abc import Iterable

from autograder.labs.rubric import decide
from autograder.results import Compute, CriterionResult, ExecutionResult, ProbeReport, SubmissionResult


def account(runs: Iterable[ExecutionResult | ProbeReport | None]) -> Compute:
    """Sum the cost of the given runs (execute and probe stages, re-runs included; None and skipped
    probes are not runs). cpu_s is None only when no run measured it."""
    wall = gpu = 0.0
    cpu: float | None = None
    peak: float | None = None
    peak_gpu: float | None = None
    count = 0
    for run in runs:
        if run is None or (isinstance(run, ProbeReport) and run.status == "skipped"):
            continue
        count += 1
        wall += run.duration_s
        if run.cpu_s is not None:
            cpu = (cpu or 0.0) + run.cpu_s
        if run.peak_memory_mb is not None:
            peak = max(peak or 0.0, run.peak_memory_mb)
        if isinstance(run, ExecutionResult):
            gpu += run.duration_s * len(run.gpus)
            if run.peak_gpu_memory_mb is not None:
                peak_gpu = max(peak_gpu or 0.0, run.peak_gpu_memory_mb)
    return Compute(wall_s=round(wall, 3), cpu_s=None if cpu is None else round(cpu, 3), gpu_s=round(gpu, 3),
                   peak_memory_mb=peak, peak_gpu_memory_mb=peak_gpu, runs=count)


def budget_result(compute: Compute, budget_s: float | None) -> CriterionResult | None:
    """The `compute-budget` criterion when the GPU-seconds exceed the course's per-student budget for the
    lab; None when there is no budget or it holds (a CPU-only run spends no GPU-seconds)."""
    if budget_s is None or compute.gpu_s <= budget_s:
        return None
    return CriterionResult(
        id="compute-budget", kind="compute-budget", status="fail", value=round(compute.gpu_s),
        threshold=budget_s, required=True,
        message=f"The notebook used {compute.gpu_s:.0f} GPU-seconds; the course allows {budget_s:g} per "
                "student for this lab.",
        advice="Train for fewer epochs or a smaller model so the run fits the GPU time the course allows.",
        details={"gpu_s": compute.gpu_s, "budget_s": budget_s, "runs": compute.runs})


def charge(result: SubmissionResult, runs: Iterable[ExecutionResult | ProbeReport | None],
           budget_s: float | None) -> SubmissionResult:
    """Set result.compute from `runs` and hold it against the GPU budget: a `compute-budget` criterion
    (replacing an earlier one) and the verdict decided again. Call it again with re-runs added."""
    result.compute = account(runs)
    kept = [c for c in result.criteria if c.id != "compute-budget"]
    over = budget_result(result.compute, budget_s)
    if over is not None or len(kept) != len(result.criteria):
        result.criteria = kept + ([over] if over is not None else [])
        result.verdict = decide(result.criteria)
    return result
