"""`autograder rerun LAB STUDENT`: a recorded hand-in graded again under its recorded conditions reproduces
its verdict and values (exactly, on the CPU), leaves the record alone, and refuses what it cannot rerun."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.cli.rerun import NOT_REPRODUCED
from autograder.grading import copies
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

REPO = Path(__file__).resolve().parents[1]
SEEDED = ("import numpy as np\nrng = np.random.default_rng(seed)\nw = rng.normal()\n"
          "def predict(X):\n    return (X[:, 0] > 0.1 * w).astype(int)")


def _rerun(course: Path, store: Store, student: str, *extra: str, lab: str = "toy") -> int:
    return main(["rerun", lab, student, "--root", str(course), "--db", str(store.path), *extra])


def _said(capsys) -> str:
    """What the command printed, errors (stderr) included."""
    got = capsys.readouterr()
    return got.out + got.err


def _folders(store: Store) -> dict[str, float]:
    root = store.artifacts_root
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


# --- the toy lab: fast ------------------------------------------------------------------------------------------

def test_rerun_reproduces_and_changes_nothing_on_record(grade, submissions, course, store, capsys):
    submissions("ana", SEEDED)
    recorded = grade(submissions.folder)["ana"]
    assert copies.copy_folder(store.artifacts_root, "toy", recorded.submission_hash).is_dir()  # kept on grading
    before, files = store.latest_of("toy", "ana"), _folders(store)
    capsys.readouterr()
    assert _rerun(course, store, "ana") == 0
    said = capsys.readouterr().out
    assert "Reproduced" in said and "Compared: the verdict (G as graded)" in said and "exactly" in said
    assert store.latest_of("toy", "ana") == before and _folders(store) == files  # no record, no artifact touched


def test_a_changed_value_is_not_reproduced_and_named(grade, submissions, course, store, capsys):
    submissions("ana", SEEDED)
    recorded = grade(submissions.folder)["ana"]
    tampered = recorded.model_copy(deep=True)
    acc = next(c for c in tampered.criteria if c.id == "test-accuracy")
    acc.value = float(acc.value) - 0.125  # as if the recorded run had measured another value
    tampered.metrics = {k: v - 0.125 for k, v in tampered.metrics.items()}
    store.record(tampered)
    capsys.readouterr()
    assert _rerun(course, store, "ana") == NOT_REPRODUCED
    said = capsys.readouterr().out
    assert "differs: criterion test-accuracy: value" in said and "Not reproduced" in said
    assert "differs: metric" in said
    # a relative tolerance as wide as the change lets it pass: the option does what it says
    assert _rerun(course, store, "ana", "--tolerance", "0.5") == 0


def test_a_verdict_that_changed_is_said_first(grade, submissions, course, store, capsys):
    submissions("ana", SEEDED)
    recorded = grade(submissions.folder)["ana"]
    tampered = recorded.model_copy(deep=True)
    tampered.criteria[1].status = "fail"
    tampered.verdict = "U"
    store.record(tampered)
    capsys.readouterr()
    assert _rerun(course, store, "ana") == NOT_REPRODUCED
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if "differs:" in line]
    assert lines[0] == "differs: verdict: U then, G now"


def test_a_ta_override_is_not_a_difference(grade, submissions, course, store, capsys):
    """What is compared is what grading said; a TA's later decision is not grading's to reproduce."""
    submissions("ana", SEEDED)
    grade(submissions.folder)
    assert main(["override", "toy", "ana", "reflection", "fail", "--note", "too thin", "--db", str(store.path)]) == 0
    capsys.readouterr()
    assert _rerun(course, store, "ana") == 0


def test_without_a_kept_copy_rerun_asks_for_the_hand_in_and_checks_it(grade, submissions, course, store, capsys,
                                                                      tmp_path):
    path = submissions("ana", SEEDED)
    recorded = grade(submissions.folder)["ana"]
    shutil.rmtree(copies.copy_folder(store.artifacts_root, "toy", recorded.submission_hash))  # an older store
    capsys.readouterr()
    assert _rerun(course, store, "ana") == 2
    said = _said(capsys)
    assert "keeps no copy of ana's hand-in" in said and "--from PATH" in said
    other = tmp_path / "other.ipynb"
    submissions("other", SEEDED.replace("0.1", "0.2"))
    shutil.copy(submissions.folder / "other.ipynb", other)
    assert _rerun(course, store, "ana", "--from", str(other)) == 2
    assert "is not the hand-in ana was graded on" in _said(capsys)
    assert _rerun(course, store, "ana", "--from", str(tmp_path / "nowhere.ipynb")) == 2
    assert _rerun(course, store, "ana", "--from", str(path)) == 0  # the very hand-in: reproduced


def test_unknown_or_path_like_students_an_unknown_lab_and_a_bad_tolerance_are_refused(grade, submissions, course,
                                                                                     store, capsys):
    submissions("ana", SEEDED)
    grade(submissions.folder)
    capsys.readouterr()
    for student, words in [("nobody", "no result for 'nobody'"), ("../ana", "is not a student id"),
                           ("ana/../../etc", "is not a student id"), ("", "is not a student id")]:
        assert _rerun(course, store, student) == 2
        assert words in _said(capsys)
    assert _rerun(course, store, "ana", lab="no-such-lab") == 2
    assert "no lab named 'no-such-lab'" in _said(capsys)
    assert _rerun(course, store, "ana", "--tolerance", "-1") == 2
    assert "--tolerance must be 0 or more" in _said(capsys)


def test_a_student_with_only_an_error_result_has_nothing_to_reproduce(grade, submissions, course, store, capsys):
    submissions("ana", SEEDED)
    recorded = grade(submissions.folder)["ana"]
    store.record(recorded.model_copy(update={"verdict": "error", "criteria": [CriterionResult(
        id="harness", kind="harness", status="error", message="The grader failed on this submission (not your fault)")
    ]}))
    capsys.readouterr()
    assert _rerun(course, store, "ana") == 2
    said = _said(capsys)
    assert "recorded result is `error`" in said and "--force" in said


def test_another_lab_version_is_refused(grade, submissions, course, store, capsys):
    submissions("ana", SEEDED)
    grade(submissions.folder)
    spec = course / "assignments" / "toy" / "lab.yaml"
    spec.write_text(spec.read_text().replace('version: "1"', 'version: "2"'))
    capsys.readouterr()
    assert _rerun(course, store, "ana") == 2
    assert "graded under lab version 1" in _said(capsys)


def test_a_result_from_before_stamps_warns_and_still_compares(grade, submissions, course, store, capsys):
    submissions("ana", SEEDED)
    recorded = grade(submissions.folder)["ana"]
    store.record(recorded.model_copy(update={"environment": None, "compute": None}))
    capsys.readouterr()
    assert _rerun(course, store, "ana") == 0
    assert "graded before stamps were recorded" in capsys.readouterr().err


# --- lab1's sample cohort on the CPU (slow) ----------------------------------------------------------------------

@pytest.mark.slow
def test_rerun_reproduces_lab1_sample_verdicts_and_values_on_the_cpu(tmp_path, capsys):
    """Three of lab1's sample hand-ins (a G, a U, a review), graded on the local backend and rerun: the same
    verdict, statuses and every value, exactly."""
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("good", "underfit", "no_reflection"):
        shutil.copy(REPO / "examples" / "submissions" / "lab1-mlp" / f"{name}.ipynb", folder)
    db = tmp_path / "grades.db"
    assert main(["grade", "lab1-mlp", str(folder), "--root", str(REPO), "--db", str(db), "--backend", "local",
                 "--cell-timeout", "25", "-j", "2"]) == 0
    store = Store(db)
    try:
        verdicts = {r.student: r.verdict for r in store.latest("lab1-mlp")}
    finally:
        store.close()
    assert len(set(verdicts.values())) >= 2, verdicts  # not all alike: the comparison has something to hold
    for student in verdicts:
        capsys.readouterr()
        code = main(["rerun", "lab1-mlp", student, "--root", str(REPO), "--db", str(db)])
        said = capsys.readouterr().out
        assert code == 0, said
        assert "Reproduced" in said


# --- docker, when an engine answers ------------------------------------------------------------------------------

def test_rerun_reproduces_on_docker(grade, submissions, course, store, docker_backend, capsys):
    submissions("ana", SEEDED)
    recorded: SubmissionResult = grade(submissions.folder, backend=docker_backend)["ana"]
    assert recorded.backend == "docker" and recorded.environment is not None
    capsys.readouterr()
    image = docker_backend.settings.image
    assert _rerun(course, store, "ana", *(["--image", image] if image else [])) == 0  # the recorded backend
    said = capsys.readouterr()
    assert "on the docker backend" in said.out and "Reproduced" in said.out
    assert "image_digest" not in said.err  # the same image: no warning
