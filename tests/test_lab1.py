"""lab1-mlp end to end: the sample cohort's verdicts, validate-lab, and the generated student notebook."""

from __future__ import annotations

import nbformat
import pytest
from conftest import REPO

from autograder.cli import main
from autograder.grading.intake import discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.assign import make_student_notebook
from autograder.labs.lab import load_lab
from autograder.sandbox import get_backend
from autograder.store import Store

COHORT = REPO / "examples" / "submissions" / "lab1-mlp"


@pytest.fixture(scope="module", params=[pytest.param("local", marks=pytest.mark.slow),
                                        pytest.param("docker", marks=[pytest.mark.slow, pytest.mark.docker])])
def cohort(request):
    """The sample cohort graded once per backend (the per-cell limit shortened for the loop): every
    test below holds on both, so the two backends give the same verdicts for the same reasons. The
    gradings are the session's (conftest.py), shared with the other tests of lab1's cohort."""
    return request.getfixturevalue("graded_cohort" if request.param == "local" else "docker_graded_cohort")(
        "lab1-mlp")


def failed(result) -> set[str]:
    return {c.id for c in result.criteria if c.status == "fail"}


def test_cohort_verdicts(cohort):
    results, _ = cohort
    assert {s: r.verdict for s, r in results.items()} == {
        "good": "G", "flood_output": "G", "underfit": "U", "overfit": "U", "crash": "U", "timeout": "U",
        "no_reflection": "U", "off_topic": "U", "copycat": "review", "borderline": "G",  # the median of 5 seeds
    }


def test_each_failure_has_its_reason(cohort):
    results, _ = cohort
    assert "test-accuracy" in failed(results["underfit"])
    assert "generalization-gap" not in failed(results["underfit"])
    assert "generalization-gap" in failed(results["overfit"])
    assert failed(results["crash"]) == {"runs"}
    assert results["crash"].execution.status == "error"
    assert failed(results["timeout"]) == {"runs"}
    assert results["timeout"].execution.status == "cell-timeout"
    assert failed(results["no_reflection"]) == {"reflection"}
    assert failed(results["off_topic"]) == {"reflection"}
    off_topic = {c.id: c for c in results["off_topic"].criteria}["reflection"]
    assert off_topic.details["reason"] == "themes-missing" and "harm people" in off_topic.message


def test_a_copied_reflection_waits_for_a_teacher_naming_both(cohort):
    results, _ = cohort
    copycat = {c.id: c for c in results["copycat"].criteria}["reflection"]
    source = {c.id: c for c in results["overfit"].criteria}["reflection"]
    assert copycat.status == "review" and [m["student"] for m in copycat.details["similar_to"]] == ["overfit"]
    # Who copied whom is for a teacher to find out: both are flagged; overfit is U for its model anyway.
    assert source.status == "review" and [m["student"] for m in source.details["similar_to"]] == ["copycat"]
    assert "overfit" not in copycat.message


def test_good_student_measures(cohort):
    results, _ = cohort
    good = {c.id: c for c in results["good"].criteria}
    assert good["test-accuracy"].value >= 0.8
    assert good["generalization-gap"].value <= 0.1
    assert good["hidden-tests"].status == "pass"
    overfit = {c.id: c for c in results["overfit"].criteria}
    assert overfit["generalization-gap"].details["train_accuracy"] > 0.95


def test_flood_is_truncated_and_recorded(cohort):
    results, store = cohort
    flood = results["flood_output"]
    assert flood.execution.output_truncated_bytes > 50 * 1024**2
    assert flood.notes
    assert [r.student for r in store.latest("lab1-mlp")][:2] == ["borderline", "copycat"]  # sorted by student


@pytest.mark.slow
def test_validate_lab(capsys):
    assert main(["validate-lab", "lab1-mlp", "--root", str(REPO)]) == 0
    assert "the solved student notebook gets G" in capsys.readouterr().out


def test_student_notebook_is_what_assign_makes_of_the_solution():
    lab = load_lab("lab1-mlp", REPO)
    made = make_student_notebook(lab.solution_path)
    committed = nbformat.read(lab.notebook_path, as_version=4)
    assert nbformat.writes(made) == nbformat.writes(committed), "run `autograder assign lab1-mlp`"
    sources = "\n".join(c.source for c in committed.cells)
    assert "### BEGIN SOLUTION" not in sources and "BEGIN HIDDEN TESTS" not in sources
    assert "YOUR ANSWER HERE" in sources


def test_no_hidden_data_is_released():
    """A quick guard; the release's leak check (tests/test_release.py) looks row by row."""
    root = REPO / "assignments"
    released = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert not [p for p in released if p.endswith("data/test.npz") or "hidden" in p]


def test_our_checksum_is_nbgraders():
    from nbgrader.utils import compute_checksum

    from autograder.notebooks import nbgrader_checksum

    lab = load_lab("lab1-mlp", REPO)
    for path in (lab.notebook_path, lab.solution_path):
        cells = [c for c in nbformat.read(path, as_version=4).cells if "nbgrader" in c.metadata]
        assert cells
        for cell in cells:
            assert nbgrader_checksum(cell) == compute_checksum(cell), cell.metadata["nbgrader"]["grade_id"]


@pytest.mark.slow
def test_edited_or_deleted_locked_cells_go_to_review(tmp_path):
    good = nbformat.read(COHORT / "good.ipynb", as_version=4)
    setup = next(c for c in good.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    setup.source += "\n# tweaked"
    good.cells = [c for c in good.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_mlp_forward"]
    folder = tmp_path / "subs"
    folder.mkdir()
    nbformat.write(good, folder / "tinkerer.ipynb")
    lab = load_lab("lab1-mlp", REPO)
    grader = Grader(lab, Store(tmp_path / "g.db"), get_backend("local"), Options(scratch=tmp_path))
    result, _ = grader.grade(discover(folder)[0])
    locked = {c.id: c for c in result.criteria}["locked-cells"]
    assert result.verdict == "review"
    assert locked.status == "review"
    assert (locked.details["edited"], locked.details["deleted"]) == (["setup"], ["test_mlp_forward"])
    assert "a teacher will look at it" in locked.message


def test_every_result_lists_every_criterion_with_what_to_do(cohort):
    results, _ = cohort
    ids = [c.id for c in load_lab("lab1-mlp", REPO).rubric.criteria]
    for result in results.values():
        assert [c.id for c in result.criteria] == ids
        for c in result.criteria:
            assert c.message and c.advice, (result.student, c.id)
            if c.status in ("fail", "review") and c.kind not in ("notebook-runs", "locked-cells"):
                assert c.value is not None and c.threshold is not None, (result.student, c.id)
