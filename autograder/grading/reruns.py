"""Re-runs: a borderline metric judged on the median of several seeds, never on one unlucky run.

One training run is one draw: the same notebook with another seed may land on the other side of a bar.
A criterion whose fail is not sure under `borderline: {policy: rerun}` (criteria/metric.py sets
details["rerun_wanted"]) has the notebook run again with the lab's seed parameter (lab.yaml's
`seed_parameter`) set to the first run's seed + 1, + 2, ... Each run is an execute and a probe stage of its
own (`execute@seed=1`, `probe@seed=1`), recorded under the hash of its inputs like the first run's, so a
regrade reuses them and runs nothing.

The runs stop at the rubric's `runs` (the first included); early, once the median can no longer change
its side of the bar (more than half of `runs` on one side); and before a run that would take the re-runs
past the rubric's time budget (their recorded durations: a regrade decides alike) or past a GPU budget
(the rubric's for the re-runs, the course's per student for the whole lab). Only the wanted criteria are
judged on each run, and `judge_runs` judges the median. A run that gave no value (its notebook stopped,
the grader failed) is listed with why and never counts against the student: a median the runs could not
settle (cut short, or runs without a value) is not a U but `review`, with the reason.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from autograder.criteria import build
from autograder.criteria.base import Criterion, Evidence, ProbeData
from autograder.criteria.metric import GeneralizationGap, MetricCriterion, RunValue, judge_runs
from autograder.grading.accounting import account
from autograder.labs.lab import Lab
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, ExecutionResult, ProbeReport, SubmissionResult
from autograder.sandbox.base import CANCEL
from autograder.store import StageRecord

NOT_YOURS = "the grader failed on this run (not your fault)"


@dataclass
class SeededRun:
    """One re-run of a notebook with another seed: how the notebook ran, what the probes gave (None when
    the notebook stopped), and the stage records, cached or fresh, it was made of."""

    seed: int
    execution: ExecutionResult
    probes: ProbeData | None = None
    records: list[StageRecord] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.execution.duration_s + (self.probes.report.duration_s if self.probes is not None else 0.0)

    @property
    def gpu_s(self) -> float:
        """GPU time as the accounting counts it: the notebook's wall time times the GPUs it held."""
        return self.execution.duration_s * len(self.execution.gpus)

    @property
    def stages(self) -> dict[str, str]:
        return {record.stage: record.key for record in self.records}

    def reports(self) -> list[ExecutionResult | ProbeReport]:
        return [self.execution] + ([self.probes.report] if self.probes is not None else [])


def seeded(lab: Lab, seed: int) -> Lab:
    """The lab as a re-run sees it: the same lab with its seed parameter set to `seed` (the execute
    stage's key holds the parameters, so each seed is a stage of its own)."""
    name = lab.spec.seed_parameter
    if name is None:
        raise ValueError(f"lab {lab.name} names no seed_parameter")
    lab.version  # noqa: B018  # cached before the copy: a re-run grades the same lab version, other seed or not
    view = copy.copy(lab)
    view.spec = lab.spec.model_copy(update={"parameters": {**lab.spec.parameters, name: seed}})
    return view


@dataclass
class Plan:
    """How far the re-runs of one submission may go: the most demanding of its wanted criteria."""

    runs: int
    time_budget_s: float
    gpu_budget_s: float | None  # the rubric's, for the re-runs
    course_gpu_budget_s: float | None  # the course's per student, for the whole lab (first run included)

    @classmethod
    def of(cls, criteria: Sequence[MetricCriterion | GeneralizationGap], course_gpu_budget_s: float | None) -> Plan:
        policies = [c.spec.borderline for c in criteria]
        gpu = [p.gpu_budget_s for p in policies if p.gpu_budget_s is not None]
        return cls(runs=max(p.runs for p in policies), time_budget_s=min(p.time_budget_s for p in policies),
                   gpu_budget_s=min(gpu) if gpu else None, course_gpu_budget_s=course_gpu_budget_s)

    def settled(self, criterion: MetricCriterion | GeneralizationGap, runs: list[RunValue]) -> str | None:
        """'pass' or 'fail' once more than half of the planned runs lie on one side of the bar (the
        median of all of them could no longer cross it), else None."""
        bar = criterion.bar()
        values = [r.value for r in runs if r.value is not None]
        passed = sum(bar.passes(v) for v in values)
        if passed > self.runs / 2:
            return "pass"
        if len(values) - passed > self.runs / 2:
            return "fail"
        return None


def rerun_borderline(lab: Lab, result: SubmissionResult, first: Sequence[ExecutionResult | ProbeReport | None],
                     run: Callable[[int], SeededRun], course_gpu_budget_s: float | None = None,
                     ) -> list[StageRecord]:
    """Re-run the notebook for the criteria of `result` that want it, judge them on the median, and set the
    verdict, the seeds of the stamp and the compute again; `first` the first run's stages, `run(seed)` one
    re-run. Returns the re-runs' stage records, to be recorded with the result."""
    wanted = [(i, c) for i, c in enumerate(result.criteria) if c.details.get("rerun_wanted")]
    if not wanted:
        return []
    specs = {spec.id: spec for spec in lab.rubric.criteria}
    judges: dict[str, MetricCriterion | GeneralizationGap] = {}
    for _, c in wanted:
        criterion: Criterion = build(specs[c.id])
        assert isinstance(criterion, (MetricCriterion, GeneralizationGap)), f"{c.id} asks for re-runs"
        judges[c.id] = criterion
    name = lab.spec.seed_parameter
    first_seed = lab.spec.parameters.get(name) if name is not None else None
    if not isinstance(first_seed, int) or isinstance(first_seed, bool):  # the lab check refuses this at load
        for i, c in wanted:
            result.criteria[i] = _undecided(c, "the lab names no seed parameter to run the notebook again with")
        result.verdict = decide(result.criteria)
        return []

    started = time.monotonic()
    plan = Plan.of(list(judges.values()), course_gpu_budget_s)
    values = {c.id: [_first_value(c, first_seed, result.stages)] for _, c in wanted}
    done: list[SeededRun] = []
    first_wall = sum(r.duration_s for r in first if r is not None)
    execution = next((r for r in first if isinstance(r, ExecutionResult)), None)
    gpus = len(execution.gpus) if execution is not None else 0
    spent_gpu_before = account(first).gpu_s  # what the course's budget has already paid for
    cut = ""
    while 1 + len(done) < plan.runs and not CANCEL.is_set():
        if all(plan.settled(judges[cid], runs) for cid, runs in values.items()):
            break
        cut = _over_budget(plan, done, max([first_wall] + [r.duration_s for r in done]), gpus, spent_gpu_before)
        if cut:
            break
        again = run(first_seed + len(done) + 1)
        done.append(again)
        for cid, runs in values.items():
            runs.append(_value(judges[cid], again, lab))

    for i, c in wanted:
        runs = values[c.id]
        judged = judge_runs(judges[c.id], c, runs)
        side = plan.settled(judges[c.id], runs)
        stopped = "settled" if side else cut or ("runs" if 1 + len(done) >= plan.runs else "cancelled")
        judged.details["rerun"] = {"planned": plan.runs, "done": len(runs), "stopped": stopped,
                                   "seed_parameter": name}
        if side is None and judged.status != "review":
            missing = sum(r.value is None for r in runs)
            if cut:
                why = f"the runs stopped after {len(runs)} of {plan.runs}: {cut}"
            elif missing and judged.status == "fail":
                why = f"{missing} of {len(runs)} runs gave no value, and they could have decided the median"
            else:
                why = ""
            if why:
                judged = _undecided(judged, why)
        result.criteria[i] = judged

    result.stages.update({stage: key for r in done for stage, key in r.stages.items()})
    if result.environment is not None:  # the stamp holds every seed that was run
        result.environment.seeds = [first_seed] + [r.seed for r in done]
    if done:  # the re-runs are the grader's cost, not the student's: held against no budget criterion
        result.compute = account([*first, *(report for r in done for report in r.reports())])
    result.timings["reruns"] = round(time.monotonic() - started, 3)
    result.verdict = decide(result.criteria)
    return [record for r in done for record in r.records]


def _over_budget(plan: Plan, done: list[SeededRun], expected_s: float, gpus: int, spent_gpu_before: float) -> str:
    """Why the next run may not start (its time taken as the longest run's so far), or ''."""
    spent = sum(r.duration_s for r in done)
    if spent + expected_s > plan.time_budget_s:
        return (f"another run (about {expected_s:.0f} s) would pass the rubric's time budget for re-runs "
                f"({plan.time_budget_s:g} s)")
    if not gpus:
        return ""
    spent_gpu = sum(r.gpu_s for r in done)
    expected_gpu = expected_s * gpus
    if plan.gpu_budget_s is not None and spent_gpu + expected_gpu > plan.gpu_budget_s:
        return (f"another run (about {expected_gpu:.0f} GPU-seconds) would pass the rubric's GPU budget for "
                f"re-runs ({plan.gpu_budget_s:g} GPU-seconds)")
    if plan.course_gpu_budget_s is not None and spent_gpu_before + spent_gpu + expected_gpu > plan.course_gpu_budget_s:
        return (f"another run (about {expected_gpu:.0f} GPU-seconds) would pass the course's GPU budget for this "
                f"lab ({plan.course_gpu_budget_s:g} GPU-seconds per student)")
    return ""


def _first_value(c: CriterionResult, seed: int, stages: dict[str, str]) -> RunValue:
    value = float(c.value) if isinstance(c.value, int | float) else None
    return RunValue(seed=seed, value=value, interval=c.details.get("interval"), status=c.status, message=c.message,
                    stages={k: v for k, v in stages.items() if k in ("execute", "probe")})


def _value(criterion: MetricCriterion | GeneralizationGap, run: SeededRun, lab: Lab) -> RunValue:
    """The criterion on one re-run's probe outputs, judged as the judge does (the evidence it reads: the
    run and the probes' arrays); a run that gave no value says why."""
    execution = run.execution
    if execution.status == "harness-error":
        return RunValue(seed=run.seed, status="harness-error", message=NOT_YOURS, stages=run.stages)
    if run.probes is None:
        return RunValue(seed=run.seed, status=execution.status, stages=run.stages,
                        message=f"the notebook did not run to the end: {execution.message}".rstrip(": "))
    evidence = Evidence(lab=lab, execution=execution, notebook=None, probes=run.probes, labels=lab.labels())
    got = criterion.check(evidence)
    measured = got.status not in ("error", "skipped") and isinstance(got.value, int | float)
    message = NOT_YOURS if got.status == "error" else got.message
    return RunValue(seed=run.seed, value=float(got.value) if measured else None,  # type: ignore[arg-type]
                    interval=got.details.get("interval") if measured else None, status=got.status,
                    message=message, stages=run.stages)


def _undecided(c: CriterionResult, why: str) -> CriterionResult:
    """`c` as a borderline result a teacher decides: review, with why in details["uncertain"]."""
    c = c.model_copy(deep=True)
    c.details.pop("rerun_wanted", None)
    c.details["uncertain"] = "; ".join(filter(None, (c.details.get("uncertain"), why)))
    c.status = "review"
    c.message = f"{c.message.rstrip('.')}; {why}, so a teacher will decide."
    c.advice = "Nothing to do for now: a teacher will look at this and contact you if needed."
    return c
