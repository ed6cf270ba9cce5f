"""Locked cells are restored from the release before a notebook runs; deleted ones are reported."""

from __future__ import annotations

import copy

import nbformat
import pytest
from conftest import REPO

from autograder.grading.intake import discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.lab import load_lab
from autograder.notebooks.restore import restore
from autograder.sandbox import get_backend
from autograder.store import Store

RELEASED = REPO / "assignments" / "lab1-mlp" / "lab1-mlp.ipynb"
GOOD = REPO / "examples" / "submissions" / "lab1-mlp" / "good.ipynb"


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture
def released():
    return nbformat.read(RELEASED, as_version=4)


def test_an_untouched_notebook_comes_back_unchanged(released):
    submitted = nbformat.read(GOOD, as_version=4)
    restored = restore(submitted, released)
    assert restored.edited == [] and restored.deleted == []
    assert restored.notebook == submitted and restored.notebook is not submitted


def test_an_edited_locked_cell_gets_the_released_source_back(released):
    submitted = nbformat.read(GOOD, as_version=4)
    cell(submitted, "test_mlp_forward").source = "pass  # the test was in my way"
    cell(submitted, "setup").cell_type = "markdown"  # retyped, and its checksum metadata forged to match
    answer = cell(submitted, "mlp_forward").source
    restored = restore(submitted, released)
    assert restored.edited == ["setup", "test_mlp_forward"]
    assert cell(restored.notebook, "test_mlp_forward").source == cell(released, "test_mlp_forward").source
    assert cell(restored.notebook, "setup").cell_type == "code"
    assert cell(restored.notebook, "mlp_forward").source == answer  # the student's own cells are theirs
    assert cell(submitted, "test_mlp_forward").source.startswith("pass")  # the input is not modified


def test_forged_checksums_in_the_submission_do_not_hide_an_edit(released):
    submitted = nbformat.read(GOOD, as_version=4)
    target = cell(submitted, "report")
    target.source = "print('all good')"
    target.metadata["nbgrader"]["checksum"] = "0" * 32
    assert restore(submitted, released).edited == ["report"]


def test_deleted_graded_and_locked_cells_are_reported_not_invented(released):
    submitted = nbformat.read(GOOD, as_version=4)
    submitted.cells = [c for c in submitted.cells
                       if c.metadata.get("nbgrader", {}).get("grade_id") not in ("test_mlp_forward", "reflection")]
    restored = restore(submitted, released)
    assert restored.deleted == ["test_mlp_forward", "reflection"]
    assert len(restored.notebook.cells) == len(submitted.cells)


@pytest.mark.slow
def test_graded_end_to_end_an_edit_changes_nothing_and_a_deletion_goes_to_a_teacher(tmp_path):
    lab = load_lab("lab1-mlp", REPO)
    subs = tmp_path / "subs"
    subs.mkdir()
    edited = nbformat.read(GOOD, as_version=4)
    cell(edited, "report").source = "raise SystemExit('sabotage')"  # would fail the run if it were kept
    nbformat.write(edited, subs / "edited.ipynb")
    deleted = copy.deepcopy(nbformat.read(GOOD, as_version=4))
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "report"]
    nbformat.write(deleted, subs / "deleted.ipynb")
    store = Store(tmp_path / "grades.db")
    try:
        grader = Grader(lab, store, get_backend("local"), Options(jobs=2, scratch=tmp_path))
        # One by one: the cohort pass would (rightly) flag the two identical reflections.
        results = {sub.student: grader.grade(sub)[0] for sub in discover(subs)}
    finally:
        store.close()
    assert results["edited"].verdict == "G"
    locked = {c.id: c for c in results["edited"].criteria}["locked-cells"]
    assert locked.status == "pass" and "were restored" in locked.message and locked.details["edited"] == ["report"]
    assert results["deleted"].verdict == "review"
    locked = {c.id: c for c in results["deleted"].criteria}["locked-cells"]
    assert locked.status == "review" and locked.details["deleted"] == ["report"]
