"""Compute accounting: CPU- and GPU-seconds and peak memory per result, measured from outside the
sandbox, and the course's per-student GPU budget per lab (course.yaml's gpu_budget_s)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import yaml

from autograder.errors import ConfigError
from autograder.grading.accounting import account, budget_result, charge
from autograder.grading.intake import IntakeSpec, discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.course import load_course
from autograder.labs.lab import load_lab
from autograder.results import Compute, CriterionResult, ExecutionResult, ProbeReport, SubmissionResult
from autograder.sandbox import get_backend

REPO = Path(__file__).resolve().parents[1]
BUSY = ("import time\nstart = time.process_time()\nwhile time.process_time() - start < 1.5:\n    pass\n"
        "def predict(X):\n    return (X[:, 0] > 0).astype(int)")
SLEEPY = "import time\ntime.sleep(2.0)\ndef predict(X):\n    return (X[:, 0] > 0).astype(int)"


def _result(criteria: list[CriterionResult] | None = None) -> SubmissionResult:
    criteria = criteria or [CriterionResult(id="acc", kind="metric", status="pass", message="ok")]
    return SubmissionResult(lab="toy", student="ana", submission_hash="0" * 64, lab_version="1", rubric_hash="r",
                            verdict="G", criteria=criteria)


# --- account(): what is summed, what is the largest, what is not a run ------------------------------------------

def test_account_sums_time_and_takes_the_largest_peak():
    runs = [ExecutionResult(status="ok", duration_s=10.0, cpu_s=8.5, peak_memory_mb=900.0, gpus=["0", "1"],
                            peak_gpu_memory_mb=3000.0),
            ProbeReport(status="ok", duration_s=2.0, cpu_s=1.25, peak_memory_mb=1200.0)]
    c = account(runs)
    assert (c.wall_s, c.cpu_s, c.gpu_s, c.peak_memory_mb, c.peak_gpu_memory_mb, c.runs) == \
        (12.0, 9.75, 20.0, 1200.0, 3000.0, 2)


def test_a_skipped_probe_and_a_missing_stage_are_not_runs_and_unmeasured_stays_none():
    c = account([None, ProbeReport(status="skipped", duration_s=5.0, cpu_s=3.0),
                 ExecutionResult(status="error", duration_s=1.0)])
    assert c.runs == 1 and c.wall_s == 1.0
    assert c.cpu_s is None and c.peak_memory_mb is None and c.peak_gpu_memory_mb is None  # not a made-up 0
    assert c.gpu_s == 0.0


def test_a_cpu_only_run_spends_no_gpu_seconds_however_long():
    c = account([ExecutionResult(status="ok", duration_s=10_000.0, cpu_s=9_000.0)])
    assert c.gpu_s == 0.0
    assert budget_result(c, 1.0) is None


def test_compute_refuses_negative_figures():
    with pytest.raises(ValueError):
        Compute(wall_s=-1.0)


# --- the budget verdict -----------------------------------------------------------------------------------------

def test_over_the_budget_is_a_required_fail_with_both_numbers():
    over = budget_result(Compute(wall_s=812.0, gpu_s=812.0, runs=1), 600)
    assert over is not None and over.id == "compute-budget" and over.status == "fail" and over.required
    assert over.message == "The notebook used 812 GPU-seconds; the course allows 600 per student for this lab."
    assert budget_result(Compute(gpu_s=600.0), 600) is None  # at the budget is within it
    assert budget_result(Compute(gpu_s=10_000.0), None) is None  # no budget, no criterion


def test_charge_fails_the_verdict_and_a_later_charge_within_budget_lifts_it():
    result = _result()
    charge(result, [ExecutionResult(status="ok", duration_s=700.0, gpus=["0"])], 600)
    assert result.verdict == "U" and [c.id for c in result.criteria] == ["acc", "compute-budget"]
    charge(result, [ExecutionResult(status="ok", duration_s=500.0, gpus=["0"])], 600)  # e.g. recounted
    assert result.verdict == "G" and [c.id for c in result.criteria] == ["acc"]
    assert result.compute is not None and result.compute.gpu_s == 500.0


def test_charge_leaves_a_review_verdict_alone_within_budget():
    result = _result([CriterionResult(id="acc", kind="metric", status="review", message="a teacher decides")])
    result.verdict = "review"
    charge(result, [ExecutionResult(status="ok", duration_s=5.0)], 600)
    assert result.verdict == "review" and result.compute is not None and result.compute.runs == 1


# --- course.yaml -------------------------------------------------------------------------------------------------

def _course(tmp_path: Path, budget) -> Path:
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["roster"] = str(REPO / "examples" / "roster.csv")
    data["labs"][0]["gpu_budget_s"] = budget
    path = tmp_path / "course.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_budget_loads_from_course_yaml(tmp_path):
    spec = load_course(_course(tmp_path, 600), REPO)
    assert spec.labs[0].gpu_budget_s == 600
    assert all(entry.gpu_budget_s is None for entry in spec.labs[1:])  # absent: no budget


@pytest.mark.parametrize("budget, words", [
    (0, "positive number of GPU-seconds"),
    (-60, "positive number of GPU-seconds"),
    (1e9, "more than a week"),
    (".nan", "positive number of GPU-seconds"),
    ("ten minutes", "valid number"),
])
def test_a_careless_budget_fails_at_load_with_field_and_hint(tmp_path, budget, words):
    path = _course(tmp_path, budget)
    if budget == ".nan":  # YAML's own NaN, as a TA could type it
        path.write_text(path.read_text().replace("'.nan'", ".nan"))
    with pytest.raises(ConfigError) as info:
        load_course(path, REPO)
    assert info.value.field == "labs[0].gpu_budget_s" and words in info.value.problem
    assert str(path) in str(info.value)


def test_the_cli_hands_the_courses_budget_for_the_lab_to_the_grader(tmp_path):
    from autograder.cli.grading import gpu_budget

    path = _course(tmp_path, 900)
    first = yaml.safe_load(path.read_text())["labs"][0]["lab"]
    args = argparse.Namespace(course=path, root=REPO)
    assert gpu_budget(load_lab(first, REPO), args) == 900
    assert gpu_budget(load_lab(first, REPO), argparse.Namespace(root=REPO)) is None  # a verb without a course
    other = yaml.safe_load(path.read_text())["labs"][1]["lab"]
    assert gpu_budget(load_lab(other, REPO), args) is None


# --- measured on real runs (local backend) -----------------------------------------------------------------------

def test_cpu_seconds_are_measured_for_a_busy_notebook_and_not_for_a_sleeping_one(grade, submissions):
    submissions("busy", BUSY)
    submissions("sleepy", SLEEPY)
    results = grade(submissions.folder)
    busy, sleepy = results["busy"], results["sleepy"]
    assert busy.execution is not None and busy.execution.cpu_s is not None
    assert busy.execution.cpu_s >= 1.4  # the loop's own 1.5 s, measured from outside
    assert busy.execution.cpu_s <= busy.execution.duration_s * 2 + 1  # not a made-up figure
    assert sleepy.execution is not None and sleepy.execution.cpu_s is not None
    assert sleepy.execution.cpu_s < busy.execution.cpu_s - 1.0  # sleeping costs wall time, not CPU
    assert sleepy.execution.duration_s >= 2.0
    for r in (busy, sleepy):
        c = r.compute
        assert c is not None and c.runs == 2 and c.gpu_s == 0.0  # execute and probe, no GPU held
        assert r.probes is not None and r.probes.cpu_s is not None and r.probes.peak_memory_mb
        assert math.isclose(c.cpu_s, r.execution.cpu_s + r.probes.cpu_s, abs_tol=0.01)
        assert c.peak_memory_mb == max(r.execution.peak_memory_mb, r.probes.peak_memory_mb)
        assert "compute-budget" not in {x.id for x in r.criteria}


def test_a_run_over_the_gpu_budget_is_failed_with_the_reason(course, store, submissions, tmp_path):
    """The pipeline holds the measured GPU-seconds against Options.gpu_budget_s. No GPU here: the
    execute stage's result is made to say it held one GPU for 812 s; the rest of the grading is real."""
    submissions("ana")
    lab = load_lab("toy", course)
    grader = Grader(lab, store, get_backend("local"), Options(scratch=tmp_path, gpu_budget_s=600))
    real = grader.executor.execute

    def on_a_gpu(*args, **kwargs):
        result = real(*args, **kwargs)
        return result.model_copy(update={"gpus": ["0"], "duration_s": 812.0})

    grader.executor.execute = on_a_gpu  # type: ignore[method-assign]
    (result,) = grader.grade_all(discover(submissions.folder, IntakeSpec.of(lab.spec)))
    assert result.verdict == "U"
    over = next(c for c in result.criteria if c.id == "compute-budget")
    assert over.message == "The notebook used 812 GPU-seconds; the course allows 600 per student for this lab."
    assert store.latest_of("toy", "ana").verdict == "U"  # recorded so


def test_cpu_seconds_are_measured_on_docker_from_the_containers_cgroup(grade, submissions, docker_backend):
    submissions("busy", BUSY)
    submissions("sleepy", SLEEPY)
    results = grade(submissions.folder, backend=docker_backend)
    busy, sleepy = results["busy"].execution, results["sleepy"].execution
    assert busy is not None and busy.status == "ok" and busy.cpu_s is not None
    assert busy.cpu_s >= 1.3  # the loop's 1.5 s, less at most one sampling interval at the end
    assert sleepy is not None and sleepy.cpu_s is not None and sleepy.cpu_s < busy.cpu_s - 1.0
    assert results["busy"].compute is not None and results["busy"].compute.cpu_s >= busy.cpu_s
