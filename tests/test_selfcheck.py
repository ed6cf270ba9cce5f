"""The self-check agrees with grading: on every sample cohort, a student whose check passes with a margin
gets G, and one whose check fails clearly gets U. Plus what the check says and what it never does."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import COHORT_LIMITS, REPO, cohort_folder

from autograder.grading.intake import discover
from autograder.grading.pipeline import Options
from autograder.grading.selfcheck import CheckResult, check
from autograder.labs.lab import load_lab

pytestmark = pytest.mark.slow
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


def test_a_result_close_to_its_bar_is_flagged(tmp_path):
    """The good student's val accuracy (0.827) against a bar moved to 0.82: passes, but within 5% of it."""
    lab = load_lab("lab1-mlp", REPO, public_only=True)
    accuracy = next(c for c in lab.rubric.criteria if c.id == "test-accuracy")
    accuracy.min = 0.82
    c = check(lab, cohort_folder("lab1-mlp") / "good.ipynb", Options(scratch=tmp_path))
    assert c.passed and not c.margin
    assert [x.id for x in c.close] == ["test-accuracy"]
