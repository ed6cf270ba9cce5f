"""`autograder release` builds the student kit and refuses to leak; `autograder check` works from the kit
as a student uses it: in a temporary folder, offline, without Docker, changing nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import REPO

from autograder.cli import main
from autograder.errors import UserError
from autograder.labs.lab import load_kit, load_lab
from autograder.labs.release import find_leaks, release

LAB = "lab1-mlp"
COHORT = REPO / "examples" / "submissions" / LAB


@pytest.fixture
def course(tmp_path) -> Path:
    """A writable course holding lab1 only."""
    root = tmp_path / "course"
    for part in (f"assignments/{LAB}", f"reference/{LAB}"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "rubrics").mkdir()
    shutil.copy(REPO / "rubrics" / f"{LAB}.yaml", root / "rubrics")
    return root


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit") / LAB
    release(load_lab(LAB, REPO), out)
    return out


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_kit_holds_what_a_student_needs_and_nothing_hidden(kit):
    assert sorted(digest(kit)) == [
        "README.md", "data/train.npz", "data/val.npz", "handout/lab1-mlp.ipynb", "lab.yaml", "lab1-mlp.ipynb",
        "probes.py", "rubric.yaml", "tests/test_public.py"]
    lab = load_kit(kit)
    assert lab.public_only and lab.name == LAB and lab.test_files() == [kit / "tests" / "test_public.py"]
    assert (kit / "lab1-mlp.ipynb").read_bytes() == (REPO / "assignments" / LAB / "lab1-mlp.ipynb").read_bytes()
    assert "autograder check lab1-mlp lab1-mlp.ipynb" in (kit / "README.md").read_text()
    assert find_leaks(load_lab(LAB, REPO), kit) == []


def test_the_cli_reports_what_the_leak_check_covered(course, capsys):
    assert main(["release", LAB, "--root", str(course), "--zip"]) == 0
    text = capsys.readouterr().out
    assert "no leak of the names of 1 hidden test files" in text and "hidden input rows" in text
    assert (course / "release" / f"{LAB}.zip").is_file()
    assert main(["release", LAB, "--root", str(course)]) == 2  # an existing kit is not overwritten silently
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("leak, found", [
    ("hidden-test", "names the hidden test test_forward_matches_reference"),
    ("hidden-probes", "definitions of hidden reference/lab1-mlp/probes.py"),
    ("hidden-data", "inputs of the hidden test set"),
    ("hidden-file", "is the hidden test data file"),
    ("solution", "lines of the solution"),
    ("outputs", "holds cell outputs"),
])
def test_each_kind_of_leak_fails_the_release_and_leaves_no_kit(course, leak, found):
    lab_dir, ref = course / "assignments" / LAB, course / "reference" / LAB
    if leak == "hidden-test":
        shutil.copy(ref / "tests" / "test_hidden.py", lab_dir / "tests" / "test_extra.py")
    elif leak == "hidden-probes":
        hidden = (ref / "probes.py").read_text().split('"""', 2)[2].replace("def probe_", "def probe_copied_")
        (lab_dir / "probes.py").write_text((lab_dir / "probes.py").read_text() + "\n\n" + hidden)
    elif leak == "hidden-data":
        with np.load(ref / "data" / "test.npz") as hidden, np.load(lab_dir / "data" / "val.npz") as val:
            X = np.concatenate([val["X"], hidden["X"][:10]])
            y = np.concatenate([val["y"], hidden["y"][:10]])
        np.savez(lab_dir / "data" / "val.npz", X=X, y=y)
    elif leak == "solution":
        nb = nbformat.read(lab_dir / "lab1-mlp.ipynb", as_version=4)
        solution = nbformat.read(ref / "solution.ipynb", as_version=4)
        answer = next(c for c in solution.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "train_model")
        nb.cells.append(nbformat.v4.new_markdown_cell("Hint:\n" + answer.source))
        nbformat.write(nb, lab_dir / "lab1-mlp.ipynb")
    lab = load_lab(LAB, course)
    kit = course / "release" / LAB
    if leak in ("solution",):  # the committed notebook is no longer what nbgrader makes: caught before writing
        with pytest.raises(UserError, match="differ from what the reference makes"):
            release(lab, kit)
        # Were it released anyway (a hand-made kit), the leak check still finds the solution text.
        shutil.copytree(lab_dir, kit)
        assert any(found in leak_.what for leak_ in find_leaks(lab, kit))
        return
    if leak == "outputs":
        shutil.copytree(lab_dir, kit)
        nb = nbformat.read(kit / "lab1-mlp.ipynb", as_version=4)
        code = next(c for c in nb.cells if c.cell_type == "code")
        code.outputs = [nbformat.v4.new_output("stream", text="final val accuracy: 0.861\n")]
        nbformat.write(nb, kit / "lab1-mlp.ipynb")
        assert any(found in leak_.what for leak_ in find_leaks(lab, kit))
        return
    if leak == "hidden-file":
        shutil.copy(ref / "data" / "test.npz", lab_dir / "data" / "extra.npz")
        shutil.copytree(lab_dir, kit)
        assert any(found in leak_.what for leak_ in find_leaks(lab, kit))
        return
    with pytest.raises(UserError, match="would leak what is hidden") as exc:
        release(lab, kit)
    assert found in str(exc.value)
    assert not kit.exists()


HELPER = '''"""Shared by the public and the hidden probes (released with the kit)."""

import numpy as np


def as_probabilities(values, n_classes):
    """The student's outputs as float64 rows of n_classes, whatever array type came back."""
    return np.asarray(values, dtype=np.float64).reshape(-1, n_classes)
'''


def test_hidden_probes_may_import_or_repeat_a_released_helper(course):
    """A helper in files.helpers is released, so the hidden probes importing it (or holding a copy of one of
    its definitions, as the public probes may) leak nothing; a helper holding hidden code still leaks."""
    lab_dir, ref = course / "assignments" / LAB, course / "reference" / LAB
    (lab_dir / "checks.py").write_text(HELPER)
    helper_def = HELPER.split("\n\n\n", 1)[1]
    hidden = (ref / "probes.py").read_text()
    (ref / "probes.py").write_text(hidden.replace("import numpy as np\n", "import numpy as np\nimport checks\n", 1)
                                   .replace('np.asarray(result, dtype=np.float64)}',
                                            'checks.as_probabilities(result, N_CLASSES)}')
                                   + "\n\n" + helper_def)
    spec = (lab_dir / "lab.yaml").read_text()
    (lab_dir / "lab.yaml").write_text(spec + "files:\n  helpers: [checks.py]\n")
    lab = load_lab(LAB, course)
    kit = release(lab, course / "kit")
    assert "checks.py" in kit.files and (course / "kit" / "checks.py").read_text() == HELPER
    assert find_leaks(lab, course / "kit") == []
    from autograder.grading.probe import probe_functions

    probes = {name: fn for name, fn, _ in probe_functions(lab)}  # the hidden probes import the helper
    assert probes["forward"].__globals__["checks"].as_probabilities([0, 1, 2], 3).shape == (1, 3)
    assert "checks" not in __import__("sys").modules  # put back after the import: another lab has its own
    # Hidden code that is not shared: the hidden tests' own check copied into the helper is found there.
    secret = (ref / "tests" / "test_hidden.py").read_text()
    (lab_dir / "checks.py").write_text(HELPER + "\n\n" + secret.split("\n\n\n", 1)[1])
    with pytest.raises(UserError, match="checks.py: names the hidden test test_forward"):
        release(load_lab(LAB, course), course / "kit2")


def test_a_stale_student_notebook_is_not_released(course):
    nb = nbformat.read(course / "reference" / LAB / "solution.ipynb", as_version=4)
    nb.cells[0].source += "\n\nOne more sentence of instructions."
    nbformat.write(nb, course / "reference" / LAB / "solution.ipynb")
    with pytest.raises(UserError, match="differ from what the reference makes now") as exc:
        release(load_lab(LAB, course), course / "kit")
    assert "autograder assign lab1-mlp" in exc.value.hint


@pytest.mark.slow
def test_a_student_checks_from_the_kit(kit, tmp_path, monkeypatch, capsys):
    work = tmp_path / "student"
    shutil.copytree(kit, work)
    monkeypatch.chdir(work)
    for student, code in (("good", 0), ("underfit", 1)):
        shutil.copy(COHORT / f"{student}.ipynb", work / "lab1-mlp.ipynb")
        before = digest(work)
        assert main(["check", LAB, "lab1-mlp.ipynb"]) == code, student
        assert digest(work) == before  # nothing written, nothing changed: not even a store
        text = capsys.readouterr().out
        assert "Estimate:" in text  # the table wraps; the wording is tested on the API in test_selfcheck
        if code:
            assert "Not yet: test-accuracy would keep this from G" in text
        else:
            assert "Everything the self-check can check passes, with a margin" in text
    assert main(["check", LAB, "missing.ipynb"]) == 2
    assert main(["check", "lab9", "lab1-mlp.ipynb"]) == 2
