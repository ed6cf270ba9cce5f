"""Nothing lost when anything dies: a grading run killed with SIGKILL, and a sandbox killed from inside.

A rerun after `kill -9` finishes the batch, grading again only the students without a recorded result,
with one result per student, and removes what the dead run left: its work dirs, the local backend's
processes still running in them, the docker backend's containers. A run that kills its own sandbox is
run once more, then judged with the reason; a harness failure is `error`, never the student's U.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from make_course import SOLUTION, notebook

from autograder.grading.intake import IntakeSpec, discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.lab import load_lab
from autograder.sandbox.base import SandboxBackend, SandboxJob, SandboxRun
from autograder.workspace import orphaned, sweep, workdir


def by_id(result):
    return {c.id: c for c in result.criteria}


# --- work dirs carry their owner; the next start sweeps those of dead owners ----------------------------------


def _dead_owner_dir(root: Path, what: str = "execute") -> Path:
    """A work dir named as a process that has exited would have named it."""
    import autograder.workspace as ws

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = int(psutil.Process(child.pid).create_time())
    child.wait()
    return Path(tempfile.mkdtemp(prefix=f"autograder-{what}.{ws._HOST}.{child.pid}.{started}.", dir=root))


def test_sweep_removes_dead_owners_dirs_and_kills_what_runs_in_them(tmp_path):
    dead = _dead_owner_dir(tmp_path)
    (dead / "data").mkdir()
    (dead / "data" / "x.npz").write_bytes(b"x")
    os.chmod(dead / "data", 0o555)  # a sandbox made it read-only
    stray = subprocess.Popen(["sleep", "30"], cwd=dead)  # a run that outlived its grader
    old_style = tmp_path / "autograder-execute-abcd1234"  # made before work dirs named their owner: kept
    old_style.mkdir()
    other = tmp_path / "not-ours"
    other.mkdir()
    with workdir("probe", tmp_path) as live:  # this process is alive: its dirs are never touched
        assert orphaned(tmp_path) == [dead]
        assert sweep(tmp_path) == [dead]
        assert live.is_dir()
    stray.wait(timeout=10)  # it would sleep on for 30 s had the sweep not killed it
    assert not psutil.pid_exists(stray.pid)
    assert not dead.exists() and old_style.is_dir() and other.is_dir()
    assert orphaned(tmp_path) == []


def test_a_scratch_folder_that_does_not_exist_yet_is_made(tmp_path):
    """--scratch (Options.scratch) naming a new folder: every run was a harness `error` before."""
    scratch = tmp_path / "not" / "yet"
    with workdir("execute", scratch) as wd:
        assert wd.is_dir() and wd.parent == scratch
    assert scratch.is_dir() and not wd.exists()


def test_a_dir_of_a_reused_pid_is_still_swept(tmp_path):
    """The pid of the dead owner now belongs to another process (here: this one, started at another time)."""
    import autograder.workspace as ws

    path = tmp_path / f"autograder-execute.{ws._HOST}.{os.getpid()}.12345.abcdefgh"
    path.mkdir()
    assert sweep(tmp_path) == [path]


def test_another_hosts_dirs_are_left_alone(tmp_path):
    """A scratch folder shared between hosts (NFS): a pid means nothing on another host."""
    path = tmp_path / "autograder-execute.00000000.1.12345.abcdefgh"
    path.mkdir()
    assert sweep(tmp_path) == [] and path.is_dir()


# --- a sandbox that dies is run once more, then judged; a harness failure is `error` ----------------------------


class Scripted(SandboxBackend):
    """Answers every run with the given outcome without running anything, counting the runs per stage."""

    name = "scripted"

    def __init__(self, *outcomes: SandboxRun) -> None:
        super().__init__()
        self.outcomes = list(outcomes)
        self.runs: dict[str, int] = {}

    def run(self, job: SandboxJob) -> SandboxRun:
        stage = job.request["stage"]
        self.runs[stage] = self.runs.get(stage, 0) + 1
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]


def _grade_with(backend, course, submissions, store, tmp_path, name="ana", body=SOLUTION):
    submissions(name, body)
    lab = load_lab("toy", course)
    grader = Grader(lab, store, backend, Options(scratch=tmp_path))
    return grader.grade_all(discover(submissions.folder, IntakeSpec.of(lab.spec)))[0]


def test_a_sandbox_that_dies_twice_is_run_twice_then_failed_with_the_reason(course, submissions, store, tmp_path):
    died = SandboxRun(status="crashed", message="the run ended without a report (exit code -9)", exit_code=-9)
    backend = Scripted(died)
    result = _grade_with(backend, course, submissions, store, tmp_path)
    assert backend.runs == {"execute": 2}
    assert result.execution.status == "crashed"
    runs = by_id(result)["runs"]
    assert runs.status == "fail" and result.verdict == "U"
    assert "without a report" in runs.message and "both runs" in runs.message
    assert store.latest("toy")[0].execution.message == result.execution.message


def test_a_sandbox_that_dies_once_counts_its_second_run(course, submissions, store, tmp_path):
    died = SandboxRun(status="crashed", message="the run ended without a report (exit code -9)", exit_code=-9)
    harness = SandboxRun(status="harness-error", message="the engine failed during the run: boom")
    backend = Scripted(died, harness)
    result = _grade_with(backend, course, submissions, store, tmp_path)
    assert backend.runs == {"execute": 2}
    assert result.execution.status == "harness-error"
    assert by_id(result)["runs"].status == "error" and result.verdict == "error"  # never U for our failure


def test_a_harness_failure_is_error_and_not_run_again_in_the_batch(course, submissions, store, tmp_path):
    backend = Scripted(SandboxRun(status="harness-error", message="could not create the container: no space"))
    result = _grade_with(backend, course, submissions, store, tmp_path)
    assert backend.runs == {"execute": 1}
    assert result.verdict == "error" and by_id(result)["runs"].status == "error"
    assert "no space" in by_id(result)["runs"].message


def test_a_stage_killed_half_way_never_replaces_what_its_record_points_to(course, submissions, store, tmp_path):
    """A forced regrade dies in the middle of a stage (here: raises after writing half its files). The folder
    a recorded stage points to is written only once a run is over, so the record still reads whole files,
    and what the dead run wrote is never taken for a stage's output."""
    from autograder.artifacts import stage_folder
    from autograder.results import ExecutionResult, SubmissionResult
    from autograder.store import StageRecord

    submissions("ana")
    lab = load_lab("toy", course)
    sub = discover(submissions.folder, IntakeSpec.of(lab.spec))[0]
    grader = Grader(lab, store, Scripted(SandboxRun(status="ok")), Options(force=True, scratch=tmp_path))
    key = "k" * 64
    folder = stage_folder(store.artifacts_root, "toy", sub.sha256, "execute", key)  # where the stage writes
    folder.mkdir(parents=True)
    (folder / "executed.ipynb").write_text("whole")
    store.record(SubmissionResult(lab="toy", student="ana", submission_hash=sub.sha256, lab_version="1",
                                  rubric_hash="r", verdict="G", criteria=[]),
                 [StageRecord(key=key, stage="execute", lab="toy", submission_hash=sub.sha256,
                              result=ExecutionResult(status="ok").model_dump(mode="json"), artifacts=folder)])
    written = []

    def dies_half_way(into: Path) -> ExecutionResult:
        (into / "executed.ipynb").write_text("half")
        written.append(into)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        grader._stage("execute", sub, key, ExecutionResult, dies_half_way)
    recorded = store.stage(key)
    assert recorded is not None and (recorded.artifacts / "executed.ipynb").read_text() == "whole"
    assert written and all(p != recorded.artifacts for p in written)


KILL_RUNNER = "import os\nos.kill(os.getppid(), 9)\n"  # the kernel's parent is the runner (local backend)


@pytest.mark.slow
def test_a_notebook_that_kills_its_runner_is_retried_once_then_u(course, submissions, store, tmp_path):
    from autograder.sandbox import get_backend

    count = tmp_path / "runs.txt"
    body = f"open({str(count)!r}, 'a').write('run\\n')\n" + KILL_RUNNER + SOLUTION
    result = _grade_with(get_backend("local"), course, submissions, store, tmp_path, body=body)
    assert count.read_text().count("run") == 2  # retried at most once
    assert result.execution.status == "crashed" and result.verdict == "U"
    assert "without a report" in by_id(result)["runs"].message and "both runs" in by_id(result)["runs"].message
    assert by_id(result)["test-accuracy"].status == "skipped"


@pytest.mark.slow
def test_a_sandbox_killed_once_from_outside_the_students_code_is_graded_on_its_second_run(
        course, submissions, store, tmp_path):
    """The first run dies (as if the host's OOM killer took the runner); the second runs to the end: G."""
    from autograder.sandbox import get_backend

    mark = tmp_path / "killed-once"
    body = (f"import pathlib\nif not pathlib.Path({str(mark)!r}).exists():\n"
            f"    pathlib.Path({str(mark)!r}).write_text('x')\n" + "    " + KILL_RUNNER.replace("\n", "\n    ", 1)
            + SOLUTION)
    result = _grade_with(get_backend("local"), course, submissions, store, tmp_path, body=body)
    assert mark.exists()
    assert result.execution.status == "ok" and result.verdict == "G", by_id(result)["runs"].message
    assert "run twice" in result.execution.message


def test_a_notebook_that_kills_its_kernel_in_a_container_is_retried_once_then_u(
        docker_backend, course, submissions, store, tmp_path):
    """In a container the runner is PID 1, which nothing inside can kill (nor does `kill -1` reach it); the
    kernel can kill itself: the runner reports the dead kernel, twice."""
    result = _grade_with(docker_backend, course, submissions, store, tmp_path,
                         body="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n" + SOLUTION)
    assert result.execution.status == "crashed" and result.verdict == "U"
    runs = by_id(result)["runs"]
    assert runs.message.startswith("Cell 4 crashed the notebook's kernel") and "both runs" in runs.message


# --- kill -9 the grading process mid-batch; the rerun finishes it -------------------------------------------


MARK = "765432"  # a process each notebook starts, to find the runs the killed grader left running
STUDENTS = [f"s{i}" for i in range(8)]


def _marked() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if MARK in (p.info["cmdline"] or []):
            found.append(p)
    return found


def _rows(db: Path, sql: str) -> list[tuple]:
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return []


def _containers_of(pid: int) -> list:
    from autograder.sandbox.containers import engine
    from autograder.sandbox.engine import LABEL

    client = engine()
    return [c for c in client.containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(f"{LABEL}.owner", "").split(":")[1:2] == [str(pid)]]


def _kill_mid_batch_then_rerun(backend: str, course: Path, tmp_path: Path) -> None:
    folder = tmp_path / "submissions"
    folder.mkdir()
    for student in STUDENTS:  # distinct content: no stage shared between students
        body = (f"# {student}\nimport subprocess, time\nsubprocess.Popen(['sleep', '{MARK}'])\ntime.sleep(3)\n"
                + SOLUTION)
        nbformat.write(notebook(body), folder / f"{student}.ipynb")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    db = tmp_path / "db" / "grades.db"
    env = {**os.environ, "TMPDIR": str(scratch)}  # where the grader's work dirs go
    cmd = [sys.executable, "-m", "autograder", "grade", "toy", str(folder), "--root", str(course), "--db", str(db),
           "--backend", backend, "--jobs", "2"]
    assert not _marked(), "a marked process of an earlier run is still about"

    grader = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and grader.poll() is None:
        if len(_rows(db, "SELECT id FROM results")) >= 2 and _marked():
            break
        time.sleep(0.1)
    assert grader.poll() is None, f"the batch ended before it was killed: {grader.stderr.read().decode()[-2000:]}"
    grader.kill()  # SIGKILL: no finally, no atexit
    grader.wait()
    grader.stderr.close()

    before = dict(_rows(db, "SELECT student, id FROM results"))
    stages_before = set(_rows(db, "SELECT key, created_at FROM stages"))
    assert 2 <= len(before) < len(STUDENTS)
    assert orphaned(scratch), "the killed run left no work dir: nothing was in flight"
    if backend == "local":
        assert _marked(), "the killed run's sandboxes died with it: nothing for the sweep to do"
    else:
        assert _containers_of(grader.pid), "the killed run left no container"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{len(before)} of {len(STUDENTS)} were already graded" in rerun.stderr

    results = _rows(db, "SELECT student, id, verdict FROM results")
    assert sorted(s for s, _, _ in results) == STUDENTS  # everyone, once: none lost, none twice
    assert all(verdict == "G" for _, _, verdict in results), results
    assert {s: i for s, i, _ in results if s in before} == before  # the finished ones were not graded again
    assert stages_before <= set(_rows(db, "SELECT key, created_at FROM stages"))  # nor their stages run again
    stage_students = _rows(db, "SELECT stage, submission_hash FROM stages WHERE stage IN ('execute', 'probe')")
    assert len(stage_students) == 2 * len(STUDENTS)  # execute and probe, once each

    assert not any(p.name.startswith("autograder-") for p in scratch.iterdir()), list(scratch.iterdir())
    assert not _marked()
    if backend == "docker":
        assert not _containers_of(grader.pid)
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.slow
def test_kill_9_mid_batch_local_rerun_finishes_it(course, tmp_path):
    _kill_mid_batch_then_rerun("local", course, tmp_path)


@pytest.mark.slow
@pytest.mark.docker
def test_kill_9_mid_batch_docker_rerun_finishes_it(docker_backend, course, tmp_path):
    _kill_mid_batch_then_rerun("docker", course, tmp_path)
