"""One submission's way through: intake -> execute -> probe -> judge -> record.

Each stage's output is recorded under the hash of its inputs, so a rerun repeats only what
changed: a new rubric or hidden test re-judges from recorded outputs, a new probe re-probes, and
only a new submission or execute configuration re-runs the notebook.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from autograder import __version__
from autograder.artifacts import stage_folder
from autograder.criteria.base import DEFAULT_ADVICE, ProbeData
from autograder.errors import UserError
from autograder.grading.cohort import cross_check
from autograder.grading.decisions import apply_overrides
from autograder.grading.execute import Executed, execute, modules
from autograder.grading.execute import request as execute_request
from autograder.grading.intake import Submission
from autograder.grading.judge import judge
from autograder.grading.lateness import stamp
from autograder.grading.probe import load_outputs, probe
from autograder.labs.lab import Lab, sha256_files
from autograder.labs.spec import Limits
from autograder.notebooks import load_notebook
from autograder.results import CriterionResult, ExecutionResult, ProbeReport, SubmissionResult
from autograder.sandbox import SandboxBackend
from autograder.sandbox.base import CANCEL, RUNNER
from autograder.sandbox.gpus import GpuPool
from autograder.sandbox.gpus import detect as detect_gpus
from autograder.sandbox.runner import scrub_paths
from autograder.store import HandIn, StageRecord, Store, storable
from autograder.workspace import remove_tree

log = logging.getLogger(__name__)
StageResult = TypeVar("StageResult", ExecutionResult, ProbeReport)
_RUNNER_HASH = sha256_files([RUNNER])[:16]


@dataclass
class Options:
    force: bool = False
    jobs: int = 1
    limits: dict = field(default_factory=dict)  # CLI overrides of the lab's execute limits
    scratch: Path | None = None  # where work dirs go (default: the system temp dir)
    gpus: list[str] | None = None  # host GPU ids runs may use (default: every GPU nvidia-smi lists)
    jobs_per_gpu: int = 1  # runs sharing one GPU at once


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Grader:
    """Grades submissions of one lab on one backend into one store."""

    def __init__(self, lab: Lab, store: Store, backend: SandboxBackend, options: Options | None = None) -> None:
        self.lab, self.store, self.backend = lab, store, backend
        self.options = options or Options()
        backend.prepare(lab.spec.packages)  # the lab's packages: missing ones stop the batch, never a student
        self.notes: list[str] = []  # said once per batch, e.g. that a GPU lab runs on the CPU here
        limits = Limits.model_validate({**lab.spec.limits.model_dump(), **self.options.limits})
        self.gpu_pool = self._gpu_pool(max(limits.gpus, lab.spec.probe_limits.gpus))
        self.limits = self._placed(limits, "the notebook")
        self.probe_limits = self._placed(lab.spec.probe_limits, "the probes")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._fresh: dict[str, StageRecord] = {}  # stages run by this grader, by input hash

    def _gpu_pool(self, needed: int) -> GpuPool:
        if needed == 0:
            return GpuPool([])
        ids = self.options.gpus if self.options.gpus is not None else [g.index for g in detect_gpus()]
        return GpuPool(ids, self.options.jobs_per_gpu)

    def _placed(self, limits: Limits, what: str) -> Limits:
        """Limits as they will run here: a GPU lab on a host without enough GPUs runs on the CPU
        where the lab allows it, and otherwise stops before the batch starts."""
        have = len(self.gpu_pool.ids)
        if limits.gpus <= have:
            return limits
        found = f"only {have} GPU(s) are available" if have else "no GPU is available (nvidia-smi lists none)"
        if limits.cpu_fallback:
            note = f"{self.lab.name} asks for {limits.gpus} GPU(s) for {what}, but {found}: running on the CPU"
            if note not in self.notes:
                self.notes.append(note + ", as the lab allows")
            return limits.model_copy(update={"gpus": 0})
        raise UserError(f"lab {self.lab.name} needs {limits.gpus} GPU(s) for {what}, but {found}",
                        "grade on a GPU host (see `autograder sandbox doctor`), pass --gpus IDS, or set "
                        "limits.cpu_fallback: true in lab.yaml if the lab can run on a CPU")

    def grade_all(self, submissions: Iterable[Submission],
                  on_done: Callable[[SubmissionResult, bool], None] | None = None) -> list[SubmissionResult]:
        """Grade every submission (jobs in parallel); results come back in the given order."""
        subs = list(submissions)

        def one(sub: Submission) -> SubmissionResult:
            result, cached = self.grade(sub)
            if on_done:
                try:
                    on_done(result, cached)
                except Exception as exc:  # showing progress must not stop the batch
                    log.warning("reporting progress on %s failed (%s: %s)", result.student, type(exc).__name__, exc,
                                exc_info=log.isEnabledFor(logging.DEBUG))
            return result

        pool = ThreadPoolExecutor(max_workers=max(1, self.options.jobs))
        try:
            futures = [pool.submit(one, sub) for sub in subs]
            results = [f.result() for f in futures]
        except BaseException:  # Ctrl-C: stop the running sandboxes instead of waiting for them
            CANCEL.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        # The cohort's part: reflections that look copied from another student's go to review.
        try:
            changed = cross_check(self.lab, self.store)
        except Exception as exc:  # the batch's own results are recorded; say what was not checked
            log.warning("the cohort-wide originality check failed (%s: %s); each result stands as judged alone",
                        type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            changed = {}
        return [changed.get(r.student, r) for r in results]

    def grade(self, sub: Submission) -> tuple[SubmissionResult, bool]:
        """Grade one submission and record it; (result, True) when an identical result was on record.
        Nothing one submission does raises from here: a failure, looking up and recording included,
        becomes its `error` verdict, recorded where the store takes it."""
        lab = self.lab
        cached = False
        stages: list[StageRecord] = []
        try:
            if not self.options.force:
                found = self.store.find(lab.name, sub.student, sub.sha256, lab.version, lab.rubric_hash)
                if found is not None:  # the hand-in's time and the late policy may have changed since
                    result, cached = stamp(found, sub), True
                    if result == found:
                        self._keep_handin(sub)
                        return found, True
            if not cached:
                result, stages = self._grade(sub)
                result = stamp(result, sub)  # the hand-in's time, and the course's late policy
        except Exception as exc:  # a harness bug must not stop the batch nor be blamed on the student
            log.debug("grading %s failed", sub.student, exc_info=True)
            result, stages, cached = self._internal_error(sub, exc), [], False
        if CANCEL.is_set():  # interrupted half-way: record nothing rather than a false `error`
            return storable(result), False
        try:
            self._keep_handin(sub)
            result = storable(apply_overrides(result, self.store))
            self.store.record(result, stages)
        except Exception as exc:  # the store refused it: record the failure instead, without the stages
            log.debug("recording %s failed", sub.student, exc_info=True)
            result = storable(self._internal_error(sub, exc))
            try:
                self.store.record(result)
            except Exception as again:  # still shown in this run's table, with why it is not on record
                log.warning("could not record the result of %s (%s: %s)", result.student, type(again).__name__, again)
        return result, cached

    def _keep_handin(self, sub: Submission) -> None:
        """Every hand-in is kept with its time (store.handins), graded afresh or found on record."""
        self.store.add_handin(HandIn(lab=self.lab.name, student=sub.student, submission_hash=sub.sha256,
                                     handed_in=sub.handed_in, late=sub.late, originals=sub.originals,
                                     source=" ".join(filter(None, (sub.lms.get("layout"), sub.handed_in_from)))))

    def _grade(self, sub: Submission) -> tuple[SubmissionResult, list[StageRecord]]:
        timings: dict[str, float] = {}
        stages: list[StageRecord] = []
        if sub.problem:
            invalid = ExecutionResult(status="invalid", message=f"The submission can't be graded: {sub.problem}.")
            result = judge(self.lab, sub, invalid, None, _skipped("the submission could not be read"),
                           self.backend.name)
            return result, stages

        execution: ExecutionResult | None = None  # a lab without a notebook has no execute stage
        notebook = None
        executed: Executed | None = None
        if self.lab.spec.notebook is not None:
            t = time.monotonic()
            executed, record = self._execute(sub)
            timings["execute"] = time.monotonic() - t
            stages.append(record)
            execution, notebook = executed.result, load_notebook(executed.notebook_path)

        t = time.monotonic()
        if executed is None or execution is not None and execution.status == "ok":
            report, record = self._probe(sub, executed, stages[0].key if stages else None)
            stages.append(record)
            probes = load_outputs(report, record.artifacts)
        elif self.lab.spec.files.student and execution is not None and execution.status != "harness-error":
            # The notebook stopped: the probes still judge the student's modules (exports: not saved).
            report, record = self._probe(sub, None, None)
            stages.append(record)
            probes = load_outputs(report, record.artifacts)
        else:
            probes = _skipped("the notebook did not run to the end")
        timings["probe"] = time.monotonic() - t
        if self.lab.spec.notebook is None:
            probes.evaluated = "your " + " and ".join(self.lab.spec.files.student)

        t = time.monotonic()
        result = judge(self.lab, sub, execution, notebook, probes, self.backend.name)
        timings["judge"] = time.monotonic() - t
        result.timings = {k: round(v, 3) for k, v in timings.items()}
        result.stages = {record.stage: record.key for record in stages}
        return result, stages

    def _execute(self, sub: Submission) -> tuple[Executed, StageRecord]:
        key = _key("execute", sub.sha256, execute_request(self.lab, self.limits), self.limits.model_dump(),
                   self.lab.data_hash, self.lab.release_hash, _RUNNER_HASH, self.backend.name, __version__)

        def run(folder: Path) -> ExecutionResult:
            with self.gpu_pool.acquire(self.limits.gpus) as gpu_ids:
                return execute(self.lab, sub, self.backend, self.limits, folder, self.options.scratch,
                               gpu_ids).result

        result, record = self._stage("execute", sub, key, ExecutionResult, run)
        return Executed(result=result, folder=record.artifacts), record

    def _probe(self, sub: Submission, executed: Executed | None, execute_key: str | None,
               ) -> tuple[ProbeReport, StageRecord]:
        """Probe the run's exports, or (executed None) the student's modules alone: in a lab without a
        notebook, or after the notebook stopped (execute_key None), keyed by the modules themselves."""
        source = execute_key if execute_key is not None else ["modules", sub.sha256, self.lab.release_hash,
                                                               self.lab.spec.notebook is None]
        key = _key("probe", source, self.lab.probes_hash, self.lab.data_hash,
                   self.probe_limits.model_dump(), _RUNNER_HASH, __version__)

        def run(folder: Path) -> ProbeReport:
            with self.gpu_pool.acquire(self.probe_limits.gpus) as gpu_ids:
                return probe(self.lab, executed.exports_dir if executed is not None else None, self.backend,
                             self.probe_limits, folder, self.options.scratch, gpu_ids, modules(self.lab, sub))

        return self._stage("probe", sub, key, ProbeReport, run)

    def _stage(self, stage: str, sub: Submission, key: str, model: type[StageResult],
               run: Callable[[Path], StageResult]) -> tuple[StageResult, StageRecord]:
        """Run a stage once per input hash: reuse a recorded result unless --force, and let identical
        submissions graded at the same time share one run instead of racing in one folder."""
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._fresh:
                record = self._fresh[key]
                return model.model_validate(record.result), record
            recorded = None if self.options.force else self.store.stage(key)
            if recorded is not None:
                result = model.model_validate(recorded.result)
                if result.status != "harness-error":  # our own failures are always retried
                    return result, recorded
            folder = stage_folder(self.store.artifacts_root, self.lab.name, sub.sha256, stage, key)
            remove_tree(folder)
            result = run(folder)
            record = StageRecord(key=key, stage=stage, lab=self.lab.name, submission_hash=sub.sha256,
                                 result=result.model_dump(mode="json"), artifacts=folder)
            self._fresh[key] = record
            return result, record

    def _internal_error(self, sub: Submission, exc: Exception) -> SubmissionResult:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        text = scrub_paths(f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")
        return SubmissionResult(
            lab=self.lab.name, student=sub.student, submission_hash=sub.sha256, lab_version=self.lab.version,
            rubric_hash=self.lab.rubric_hash, verdict="error", backend=self.backend.name,
            harness_version=__version__,
            criteria=[CriterionResult(id="harness", kind="harness", status="error",
                                      message=f"The grader failed on this submission (not your fault): {text}",
                                      advice=DEFAULT_ADVICE["error"])],
        )


def _skipped(why: str) -> ProbeData:
    return ProbeData(report=ProbeReport(status="skipped", message=why))
