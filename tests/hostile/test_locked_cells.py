"""Attack 7: locked cells by position and content. A locked cell a student moved is put back where it
was handed out; a copy of it without its lock (or with a forged grade_id) is found, reported and not
run; a student adding cells of their own between locked cells is left alone."""

from __future__ import annotations

import copy

import nbformat
import pytest
from conftest import REPO
from nbformat.v4 import new_code_cell, new_markdown_cell

from autograder.criteria import build
from autograder.criteria.base import Evidence, ProbeData
from autograder.labs.lab import load_lab
from autograder.notebooks import find_cell, nbgrader_checksum
from autograder.notebooks.restore import restore
from autograder.results import ExecutionResult, ProbeReport

RELEASED = REPO / "assignments" / "lab1-mlp" / "lab1-mlp.ipynb"
GOOD = REPO / "examples" / "submissions" / "lab1-mlp" / "good.ipynb"  # the release, answered
CHEAT = 'X_val, y_val = load_split("train")  # validate on the training data'


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def position(nb, gid: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if grade_id(c) == gid)


def stripped(cell, source: str | None = None):
    """The cell as a student's own: same source (or `source`), no nbgrader metadata."""
    return new_code_cell(cell.source if source is None else source)


def sources(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


@pytest.fixture(scope="module")
def released():
    return nbformat.read(RELEASED, as_version=4)


@pytest.fixture
def good():
    return nbformat.read(GOOD, as_version=4)


@pytest.fixture(scope="module")
def lab():
    return load_lab("lab1-mlp", REPO)


def judge(lab, submitted):
    """The lab's own locked-cells criterion (on_fail: review), as the judge runs it."""
    spec = next(c for c in lab.rubric.criteria if c.kind == "locked-cells")
    evidence = Evidence(lab=lab, execution=ExecutionResult(status="ok", duration_s=1.0), notebook=submitted,
                        probes=ProbeData(ProbeReport(status="ok")), labels={}, submitted=submitted)
    return build(spec).check(evidence)


def released_order(nb, released) -> list[str]:
    ids = [grade_id(c) for c in released.cells]
    return [g for g in (grade_id(c) for c in nb.cells) if g in ids]


def test_the_measured_attack_pristine_setup_on_top_and_an_edited_stripped_copy_in_its_place(released, good, lab):
    setup = good.cells[position(good, "setup")]
    assert setup.source == released.cells[position(released, "setup")].source
    edited = setup.source.replace('X_val, y_val = load_split("val")', CHEAT)
    at = position(good, "setup")
    good.cells[at] = stripped(setup, edited)
    good.cells.insert(0, setup)  # the pristine locked cell, moved to the top
    assert CHEAT in sources(good) and grade_id(good.cells[0]) == "setup"

    restored = restore(good, released)
    nb = restored.notebook
    assert CHEAT not in sources(nb)  # the edit does not run
    assert released_order(nb, released) == released_order(released, released)
    assert grade_id(nb.cells[position(nb, "parameters") + 1]) == "setup"  # back after the cell it followed
    assert nb.cells[position(nb, "setup")].source == setup.source
    assert restored.moved == ["setup"] and restored.edited == [] and restored.deleted == []
    [copy_] = restored.impostors
    assert (copy_.grade_id, copy_.cell, copy_.forged, copy_.stands_in) == ("setup", at + 2, False, False)
    assert 0.8 <= copy_.similarity < 1.0
    assert len(nb.cells) == len(good.cells)  # the copy is emptied, not dropped: later cells keep their numbers

    result = judge(lab, good)
    message = result.message.lower()
    assert result.status == "review" and result.details["failed"]
    assert f"an edited copy of the locked cell `setup` without its lock was found at cell {at + 2}" in message
    assert "locked cells must stay as handed out" in message and "a teacher will look at it" in message
    assert result.details["moved"] == ["setup"] and result.details["impostors"][0]["grade_id"] == "setup"


def test_a_locked_cell_moved_to_the_end_is_put_back_and_named(released, good, lab):
    report = good.cells.pop(position(good, "report"))
    good.cells.append(report)
    restored = restore(good, released)
    assert restored.moved == ["report"] and restored.impostors == [] and restored.edited == []
    assert [c.source for c in restored.notebook.cells] == [c.source for c in nbformat.read(GOOD, as_version=4).cells]
    result = judge(lab, good)
    assert result.status == "pass" and "(report) were put back where they were handed out" in result.message.lower()
    assert result.details["moved"] == ["report"]


def test_a_moved_locked_cell_goes_back_before_the_students_own_cells_in_its_gap(released, good):
    at = position(good, "report")
    report = good.cells[at]
    mine = [new_code_cell("import matplotlib.pyplot as plt"), new_code_cell("plt.plot(history['val_accuracy'])")]
    good.cells[at:at + 1] = mine
    good.cells.insert(0, report)
    restored = restore(good, released)
    nb = restored.notebook
    at = position(nb, "report")
    assert restored.moved == ["report"] and grade_id(nb.cells[at - 1]) == "train_model"
    assert [c.source for c in nb.cells[at + 1:at + 3]] == [c.source for c in mine]


def test_a_stripped_exact_copy_is_reported_and_not_run(released, good, lab):
    report = good.cells[position(good, "report")]
    good.cells.append(stripped(report))  # an unlocked twin of the report, after the reflection
    restored = restore(good, released)
    [copy_] = restored.impostors
    assert (copy_.grade_id, copy_.cell, copy_.similarity) == ("report", len(good.cells), 1.0)
    assert restored.notebook.cells[-1].source.startswith("# Not run by the autograder")
    assert restored.notebook.cells[-1].metadata == {} and restored.notebook.cells[-1].outputs == []
    assert sources(restored.notebook).count(report.source) == 1
    result = judge(lab, good)
    assert result.status == "review"
    assert f"a copy of the locked cell `report` without its lock was found at cell {len(good.cells)}" in (
        result.message.lower())


def test_a_locked_cell_whose_lock_was_stripped_in_place_runs_as_released(released, good, lab):
    at = position(good, "setup")
    good.cells[at] = stripped(good.cells[at], good.cells[at].source.replace('X_val, y_val = load_split("val")', CHEAT))
    restored = restore(good, released)
    assert CHEAT not in sources(restored.notebook)
    assert restored.notebook.cells[at].source == released.cells[position(released, "setup")].source
    assert grade_id(restored.notebook.cells[at]) == "setup"
    assert restored.deleted == [] and restored.moved == []
    [copy_] = restored.impostors
    assert (copy_.grade_id, copy_.cell, copy_.stands_in) == ("setup", at + 1, True)
    result = judge(lab, good)
    assert result.status == "review" and "the locked cell `setup` had lost its lock" in result.message.lower()


@pytest.mark.parametrize("locked", ["parameters", "setup", "test_mlp_forward", "report"])
def test_a_stripped_copy_with_one_changed_line_is_found(released, good, lab, locked):
    at = position(good, locked)
    source = good.cells[at].source
    lines = source.split("\n")
    changed = next(i for i, line in reversed(list(enumerate(lines))) if line.strip())
    lines[changed] = "pass  # " + lines[changed]
    good.cells.insert(at + 1, stripped(good.cells[at], "\n".join(lines)))  # just below the pristine cell
    restored = restore(good, released)
    [copy_] = restored.impostors
    assert (copy_.grade_id, copy_.cell, copy_.forged) == (locked, at + 2, False)
    assert "\n".join(lines) not in sources(restored.notebook)
    assert restored.notebook.cells[at].source == source and restored.moved == []
    result = judge(lab, good)
    assert result.status == "review"
    assert f"copy of the locked cell `{locked}` without its lock" in result.message.lower()


def test_cells_a_student_adds_between_locked_cells_are_no_finding(released, good, lab):
    mine = {
        "setup": ["print(X_train[:3], y_train[:3])", 'X_train, y_train = load_split("train")  # fresh copy'],
        "test_mlp_forward": ["p = mlp_forward(x, weights, biases)\nprint(p.sum(axis=1))"],
        "train_model": ["# my own check\nprint(model)"],
        "report": ['print(f"final val accuracy: {val_acc:.3f}")\nprint(len(history["val_accuracy"]))'],
    }
    for gid, cells in mine.items():
        at = position(good, gid)
        good.cells[at + 1:at + 1] = [new_code_cell(source) for source in cells]
    good.cells.insert(position(good, "reflection"), new_markdown_cell("My notes: the gap grows after epoch 10."))
    restored = restore(good, released)
    assert (restored.edited, restored.deleted, restored.moved, restored.impostors) == ([], [], [], [])
    assert restored.notebook == good
    result = judge(lab, good)
    assert result.status == "pass" and result.message == "All locked cells are as handed out."


@pytest.mark.parametrize("where", ["end", "top"])
def test_a_forged_grade_id_of_a_locked_cell_elsewhere_is_a_second_copy_and_not_run(released, good, lab, where):
    setup = good.cells[position(good, "setup")]
    forged = copy.deepcopy(setup)
    forged.source = setup.source.replace('X_val, y_val = load_split("val")', CHEAT)
    forged.metadata.nbgrader.checksum = nbgrader_checksum(forged)  # its own checksum, to look untouched
    del forged["id"]
    good.cells.insert(len(good.cells) if where == "end" else 0, forged)
    restored = restore(good, released)
    nb = restored.notebook
    assert CHEAT not in sources(nb)
    assert [grade_id(c) for c in nb.cells].count("setup") == 1  # the copy no longer claims the id
    assert find_cell(nb, "setup") is nb.cells[position(nb, "setup")]
    assert grade_id(nb.cells[position(nb, "parameters") + 1]) == "setup"
    assert restored.moved == [] and restored.edited == []
    [twin] = restored.impostors
    assert (twin.grade_id, twin.forged, twin.cell) == ("setup", True, len(good.cells) if where == "end" else 1)
    assert nb.cells[position(nb, "setup")].source == setup.source
    result = judge(lab, good)
    assert result.status == "review" and "carries the id of the locked cell `setup`" in result.message.lower()
