"""The self-check agrees with grading: on every sample cohort, a student whose check passes with a margin
gets G, and one whose check fails clearly gets U. Plus what the check says and what it never does."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import COHORT_LIMITS, REPO, cohort_folder

from autograder.criteria import build
from autograder.criteria.base import BorderlinePolicy, Evidence, ProbeData
from autograder.grading.intake import discover
from autograder.grading.pipeline import Options
from autograder.grading.selfcheck import CheckResult, check, mark_estimates
from autograder.labs.lab import load_lab
from autograder.results import ExecutionResult, ProbeReport, SubmissionResult

LABS = ["lab1-mlp", "lab2-cnn", "lab3-autoencoder"]


def checked_cohort(name: str) -> dict[str, CheckResult]:
    lab = load_lab(name, REPO, public_only=True)
    subs = discover(cohort_folder(name), lab.spec.files.student)

    def one(sub):
        return check(lab, sub.path, Options(limits=COHORT_LIMITS.get(name, {})))

    with ThreadPoolExecutor(2) as pool:
        return dict(zip((s.student for s in subs), pool.map(one, subs), strict=True))


def only_cohort_doubts(result) -> bool:
    """Held back only by what no self-check can see: a reflection or code too similar to another student's."""
    doubts = [c for c in result.criteria if c.required and c.status != "pass"]
    return bool(doubts) and all(c.kind in ("reflection", "code-originality") and c.details.get("similar_to")
                                for c in doubts)


@pytest.mark.slow
@pytest.mark.parametrize("name", LABS)
def test_the_self_check_agrees_with_grading(name, graded_cohort):
    if not (REPO / "assignments" / name).is_dir():
        pytest.skip(f"{name} is not in this course")
    graded, _ = graded_cohort(name)
    checked = checked_cohort(name)
    assert set(checked) == set(graded)
    confident_pass = confident_fail = 0
    for student, c in checked.items():
        verdict = graded[student].verdict
        if c.margin:
            confident_pass += 1
            assert verdict == "G" or only_cohort_doubts(graded[student]), (student, verdict, c.result.criteria)
        failing = [x for x in c.problems if x.status == "fail"]
        if failing and not any(x.close for x in failing):
            confident_fail += 1
            assert verdict == "U", (student, verdict, [x.id for x in failing])
    # Not vacuous: each cohort has students on both sides of the bar.
    assert confident_pass >= 1 and confident_fail >= 2, (confident_pass, confident_fail)


@pytest.mark.slow
def test_the_check_marks_estimates_and_never_touches_the_notebook(tmp_path):
    lab = load_lab("lab1-mlp", REPO, public_only=True)
    path = cohort_folder("lab1-mlp") / "good.ipynb"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    c = check(lab, path, Options(scratch=tmp_path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert c.margin and c.result.verdict == "G"
    by_id = {x.id: x for x in c.result.criteria}
    assert "val set (standing in for the hidden test set)" in by_id["test-accuracy"].message
    assert by_id["test-accuracy"].estimate == "measured on val in place of the hidden test set"
    assert by_id["hidden-tests"].message == "All 3 public tests pass."
    assert "hidden tests" in by_id["hidden-tests"].estimate
    assert "other students" in by_id["reflection"].estimate
    assert not by_id["model-size"].estimate and not by_id["locked-cells"].estimate  # exact, not estimated
    # Nothing hidden was used: the hidden probe never ran, no hidden test ran.
    assert "forward" not in c.result.probes.probes
    assert all(t.kit for t in c.result.tests)


@pytest.mark.slow
def test_a_result_close_to_its_bar_is_flagged(tmp_path):
    """The good student's val accuracy (0.827) against a bar moved to 0.82: passes, but within 5% of it."""
    lab = load_lab("lab1-mlp", REPO, public_only=True)
    accuracy = next(c for c in lab.rubric.criteria if c.id == "test-accuracy")
    accuracy.min = 0.82
    c = check(lab, cohort_folder("lab1-mlp") / "good.ipynb", Options(scratch=tmp_path))
    assert c.passed and not c.margin
    assert [x.id for x in c.close] == ["test-accuracy"]


# --- fast: what the check says of a borderline estimate (mark_estimates on crafted probe outputs) ---------------


def estimated(accuracy: float, policy: str = "review", gap: bool = False):
    """lab1's test-accuracy (or its gap) measured by the self-check on the val stand-in (300 points) from
    scores right for round(accuracy * 300) of them, after mark_estimates."""
    lab = load_lab("lab1-mlp", REPO, public_only=True)
    spec = next(c for c in lab.rubric.criteria if c.id == ("generalization-gap" if gap else "test-accuracy"))
    spec.borderline = BorderlinePolicy(policy=policy)
    (_, y), (_, y_train) = lab.split("test"), lab.split("train")
    wrong = np.random.default_rng(0).permutation(len(y))[: len(y) - round(accuracy * len(y))]
    guesses = y.copy()
    guesses[wrong] = (guesses[wrong] + 1) % (int(y.max()) + 1)
    ev = Evidence(lab=lab, execution=ExecutionResult(status="ok"), notebook=None,
                  probes=ProbeData(report=ProbeReport(status="ok"), arrays={"scores": {"test": guesses,
                                                                                       "train": y_train}}),
                  labels={"test": y, "train": y_train})
    result = build(spec).check(ev)
    submission = SubmissionResult(lab="lab1-mlp", student="s", submission_hash="h", lab_version="1",
                                  rubric_hash="r", verdict="review", criteria=[result])
    mark_estimates(lab, submission)
    return submission.criteria[0]


def test_a_borderline_estimate_says_what_grading_will_do():
    c = estimated(0.74)
    assert c.status == "review" and c.close and c.details["borderline"]
    assert c.estimate.startswith("measured on val in place of the hidden test set; borderline, its 95% interval")
    assert "holds the bar 0.75" in c.estimate and c.estimate.endswith("misses the bar too, a teacher will decide")
    rerun = estimated(0.74, "rerun")
    assert rerun.estimate.endswith("grading will run your notebook with up to 5 seeds and judge the median")
    assert estimated(0.74, "as-is").estimate.endswith("it is judged as measured: a fail")


def test_a_borderline_pass_is_flagged_too_and_a_clear_one_is_not():
    close = estimated(0.77)
    assert close.status == "pass" and close.close and "borderline" in close.estimate
    assert "if grading's value misses the bar, a teacher will decide" in close.estimate
    clear = estimated(0.95)
    assert clear.status == "pass" and not clear.close and "borderline" not in clear.estimate
    far = estimated(0.50)
    assert far.status == "fail" and "borderline" not in far.estimate


def test_a_borderline_gap_estimate_is_said_too():
    c = estimated(0.905, gap=True)  # training accuracy 1.0: a gap of 0.095 against the 0.10 allowed
    assert c.details["borderline"] and "borderline, its 95% interval" in c.estimate
