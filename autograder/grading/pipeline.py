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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from autograder import __version__
from autograder.artifacts import stage_folder
from autograder.criteria.analysis import embeddings
from autograder.criteria.base import DEFAULT_ADVICE, ProbeData
from autograder.errors import UserError
from autograder.grading import copies, pytest_plugin
from autograder.grading.accounting import charge
from autograder.grading.cohort import cross_check
from autograder.grading.decisions import record_decided
from autograder.grading.execute import Executed, modules
from autograder.grading.execute import request as execute_request
from autograder.grading.executors import ExecutorSettings, get_executor
from autograder.grading.intake import Submission
from autograder.grading.judge import TestsRecord, judge
from autograder.grading.lateness import stamp
from autograder.grading.probe import load_outputs
from autograder.grading.reruns import SeededRun, rerun_borderline, seeded
from autograder.grading.stamp import environment
from autograder.labs.lab import Lab, sha256_files
from autograder.labs.spec import Limits
from autograder.notebooks import load_notebook
from autograder.results import CriterionResult, ExecutionResult, ProbeReport, SubmissionResult
from autograder.sandbox import SandboxBackend
from autograder.sandbox.base import CANCEL, RUNNER
from autograder.sandbox.runner import scrub_paths
from autograder.store import HandIn, StageRecord, Store, storable
from autograder.workspace import remove_tree, sweep

log = logging.getLogger(__name__)
StageResult = TypeVar("StageResult", ExecutionResult, ProbeReport)
_RUNNER_HASH = sha256_files([RUNNER])[:16]
_TESTS_HASH = sha256_files([Path(pytest_plugin.__file__)])[:16]  # how hidden tests are run and read


@dataclass
class Options:
    force: bool = False
    jobs: int = 1
    limits: dict = field(default_factory=dict)  # CLI overrides of the lab's execute limits
    scratch: Path | None = None  # where work dirs go (default: the system temp dir)
    gpus: list[str] | None = None  # host GPU ids runs may use (default: every GPU nvidia-smi lists)
    jobs_per_gpu: int = 1  # runs sharing one GPU at once
    executor: str = "local"  # where the sandbox stages run: this process, or Ray tasks (executors.EXECUTORS)
    address: str | None = None  # ray: the cluster's address (default: $RAY_ADDRESS, else Ray on this machine)
    gpu_budget_s: float | None = None  # the course's GPU-seconds per student for this lab (course.yaml)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Grader:
    """Grades submissions of one lab on one backend into one store."""

    def __init__(self, lab: Lab, store: Store, backend: SandboxBackend, options: Options | None = None) -> None:
        self.lab, self.store, self.backend = lab, store, backend
        self.options = options or Options()
        self.executor = get_executor(self.options.executor, backend, ExecutorSettings(
            address=self.options.address, gpus=self.options.gpus, jobs_per_gpu=self.options.jobs_per_gpu,
            scratch=self.options.scratch))
        self.notes: list[str] = []  # said once per batch, e.g. that a GPU lab runs on the CPU here
        # Whether judging reads reflections by meaning (themes, the reference, the cohort's copy search).
        self._reflects = any(
            c.kind == "reflection" and bool(getattr(c, "themes", None) or getattr(c, "originality", False)
                                            or getattr(c, "reference_similarity", None) is not None)
            for c in lab.rubric.criteria)
        embeddings.remember(store)  # sentence vectors are kept by their text: a re-judge loads no model
        try:
            limits = Limits.model_validate({**lab.spec.limits.model_dump(), **self.options.limits})
            needed = max(limits.gpus, lab.spec.probe_limits.gpus)
            self._gpus_here = self.executor.gpu_count() if needed else 0  # nvidia-smi or Ray asked only for GPU labs
            self.limits = self._placed(limits, "the notebook")
            self.probe_limits = self._placed(lab.spec.probe_limits, "the probes")
            # the lab's packages, image or cluster: what can't run stops the batch, never blames a student
            self.executor.prepare(lab, [self.limits, self.probe_limits])
        except BaseException:
            self.executor.close()  # a cluster connection made for nothing
            raise
        if self.options.jobs < 1:  # not chosen: as many as the executor can run at once
            self.options = replace(self.options, jobs=self.executor.default_jobs(self.limits))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._fresh: dict[str, StageRecord] = {}  # stages run by this grader, by input hash

    def _placed(self, limits: Limits, what: str) -> Limits:
        """Limits as they will run here: a GPU lab on a host without enough GPUs runs on the CPU
        where the lab allows it, and otherwise stops before the batch starts."""
        have = self._gpus_here
        if limits.gpus <= have:
            return limits
        ray = self.executor.name == "ray"
        where = "on any one node of the Ray cluster" if ray else ""
        found = (f"only {have} GPU(s) are available {where}".rstrip() if have else
                 f"no GPU is available {where or '(nvidia-smi lists none)'}")
        fix = "add nodes with GPUs to the cluster (`ray start --num-gpus N`)" if ray else \
            "grade on a GPU host (see `autograder sandbox doctor`), pass --gpus IDS"
        if limits.cpu_fallback:
            note = f"{self.lab.name} asks for {limits.gpus} GPU(s) for {what}, but {found}: running on the CPU"
            if note not in self.notes:
                self.notes.append(note + ", as the lab allows")
            return limits.model_copy(update={"gpus": 0})
        raise UserError(f"lab {self.lab.name} needs {limits.gpus} GPU(s) for {what}, but {found}",
                        f"{fix}, or set limits.cpu_fallback: true in lab.yaml if the lab can run on a CPU")

    def grade_all(self, submissions: Iterable[Submission],
                  on_done: Callable[[SubmissionResult, bool], None] | None = None) -> list[SubmissionResult]:
        """Grade every submission (jobs in parallel); results come back in the given order."""
        subs = list(submissions)
        # What a grading killed with SIGKILL left (work dirs, the local backend's runs in them); the
        # docker backend removes such a run's containers when it starts (containers.remove_leftovers).
        for path in sweep(self.options.scratch):
            log.info("removed %s, left by a grading run that was killed", path)

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
            self._close_backend()
        # The cohort's part: reflections that look copied from another student's go to review.
        try:
            changed = cross_check(self.lab, self.store)
        except Exception as exc:  # the batch's own results are recorded; say what was not checked
            log.warning("the cohort-wide originality check failed (%s: %s); each result stands as judged alone",
                        type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            changed = {}
        return [changed.get(r.student, r) for r in results]

    def _close_backend(self) -> None:
        """No warm sandbox outlives its batch (the backend starts new ones if it is used again)."""
        try:
            self.backend.close()
        except Exception as exc:  # the batch's results stand; the spares go at exit or at the next start
            log.warning("could not stop the spare sandboxes (%s: %s)", type(exc).__name__, exc)

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
            result = record_decided(self.store, result, stages)
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
        try:  # its bytes too, so `autograder rerun` needs no download (grading/copies.py)
            copies.keep(self.store.artifacts_root, self.lab, sub)
        except Exception as exc:  # noqa: BLE001 - the grading stands; rerun will ask for --from
            log.warning("could not keep a copy of %s's hand-in (%s: %s)", sub.student, type(exc).__name__, exc)
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
        tests_key = _key("tests", [r.key for r in stages], self.lab.version, _TESTS_HASH, __version__)
        recorded = self.store.stage(tests_key) if stages and not self.options.force else None
        tests = TestsRecord(recorded=recorded.result if recorded is not None else None)
        result = judge(self.lab, sub, execution, notebook, probes, self.backend.name, tests)
        timings["judge"] = time.monotonic() - t
        result.timings = {k: round(v, 3) for k, v in timings.items()}
        result.stages = {record.stage: record.key for record in stages}
        # The stamp and the cost, read from outside the sandbox (grading/stamp.py, grading/accounting.py).
        # A recorded run carries the stamp taken when it ran; only a lab without a notebook is stamped now.
        ran = execution.environment if execution is not None else None
        result.environment = ran or environment(self.lab, self.backend, self.limits,
                                                execution.gpus if execution else [])
        if execution is not None:
            execution.environment = None  # said once, in result.environment
        charge(result, [execution, probes.report], self.options.gpu_budget_s)
        if tests.fresh is not None and stages:  # kept beside the stages it read, whose folder it names
            stages.append(StageRecord(key=tests_key, stage="tests", lab=self.lab.name, submission_hash=sub.sha256,
                                      result=tests.fresh, artifacts=stages[-1].artifacts))
        if not self.lab.public_only:  # a borderline metric under `borderline: {policy: rerun}`: other seeds
            stages += rerun_borderline(self.lab, result, [execution, probes.report],
                                       lambda seed: self._seeded(sub, seed), self.options.gpu_budget_s)
        return result, stages

    def _execute(self, sub: Submission, lab: Lab | None = None, stage: str = "execute",
                 ) -> tuple[Executed, StageRecord]:
        """Run the notebook; `lab` a re-run's view of the lab (another seed), recorded as `stage`."""
        lab = lab or self.lab
        key = _key("execute", sub.sha256, execute_request(lab, self.limits), self.limits.model_dump(),
                   self.lab.data_hash, self.lab.release_hash, _RUNNER_HASH, self.backend.name, __version__)

        def run(folder: Path) -> ExecutionResult:
            if self._reflects:  # a new hand-in's reflection is new text: load the model while the notebook runs
                embeddings.warm_up()
            done = self.executor.execute(lab, sub, self.limits, folder)
            done.environment = environment(lab, self.backend, self.limits, done.gpus)
            return done

        result, record = self._stage(stage, sub, key, ExecutionResult, run)
        return Executed(result=result, folder=record.artifacts), record

    def _probe(self, sub: Submission, executed: Executed | None, execute_key: str | None, stage: str = "probe",
               ) -> tuple[ProbeReport, StageRecord]:
        """Probe the run's exports, or (executed None) the student's modules alone: in a lab without a
        notebook, or after the notebook stopped (execute_key None), keyed by the modules themselves."""
        source = execute_key if execute_key is not None else ["modules", sub.sha256, self.lab.release_hash,
                                                               self.lab.spec.notebook is None]
        key = _key("probe", source, self.lab.probes_hash, self.lab.data_hash,
                   self.probe_limits.model_dump(), _RUNNER_HASH, __version__)

        def run(folder: Path) -> ProbeReport:
            return self.executor.probe(self.lab, executed.exports_dir if executed is not None else None,
                                       self.probe_limits, folder, modules(self.lab, sub))

        return self._stage(stage, sub, key, ProbeReport, run)

    def _seeded(self, sub: Submission, seed: int) -> SeededRun:
        """One more run of the notebook with the lab's seed parameter set to `seed`: execute and probe as
        stages of their own (`execute@seed=1`), cached by their inputs like the first run's."""
        executed, record = self._execute(sub, seeded(self.lab, seed), f"execute@seed={seed}")
        run = SeededRun(seed=seed, execution=executed.result, records=[record])
        if executed.result.status == "ok":
            report, probed = self._probe(sub, executed, record.key, f"probe@seed={seed}")
            run.records.append(probed)
            run.probes = load_outputs(report, probed.artifacts)
        return run

    def _stage(self, stage: str, sub: Submission, key: str, model: type[StageResult],
               run: Callable[[Path], StageResult]) -> tuple[StageResult, StageRecord]:
        """Run a stage once per input hash: reuse a recorded result unless --force, and let identical
        submissions graded at the same time share one run instead of racing in one folder.

        A run whose sandbox died (`crashed`: no report, or a dead kernel) runs once more in a fresh
        sandbox before it counts: the first death may be the host's doing (the engine, the OOM
        killer), a second is the submission's, and its message says it happened twice. Each run
        writes into a folder of its own, moved into place only when the run is over, so a grading
        killed half-way never leaves a half-written folder where a recorded stage points."""
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

            def once() -> StageResult:
                partial = folder.with_name(folder.name + ".partial")
                remove_tree(partial)
                partial.mkdir(parents=True)
                done = run(partial)
                remove_tree(folder)
                partial.rename(folder)
                return done

            result = once()
            if result.status == "crashed" and not CANCEL.is_set():
                first = result.message
                log.info("%s stage of %s crashed (%s); running it once more", stage, sub.student, first)
                result = once()
                if result.status == "crashed":
                    result.message = (f"{result.message.rstrip('.')}; it happened on both runs (the grader ran it "
                                      "a second time in a fresh sandbox).")
                elif not result.message:
                    result.message = f"run twice: the first run's sandbox died ({first.rstrip('.')})"
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
