"""lab2-cnn and lab3-autoencoder end to end: their cohorts' verdicts and reasons on both backends,
validate-lab, the release, and that every committed file is what its script makes."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, cohort_folder

from autograder.cli import main
from autograder.labs.assign import make_student_module, make_student_notebook
from autograder.labs.lab import load_lab
from autograder.labs.release import release

FASHION = Path("/usr/share/datasets/fashion-mnist")

# student -> the criteria that fail (U), or the verdict's reason in words
EXPECTED = {
    "lab2-cnn": {
        "good": set(), "zipped": set(), "overfit": {"generalization-gap"}, "underfit": {"test-accuracy"},
        "crash": {"runs"}, "wrong_conv": {"hidden-tests"}, "missing_module": {"runs"}, "off_topic": {"reflection"},
    },
    "lab3-autoencoder": {
        "good": set(), "edited_plotting": set(), "overfit": {"generalization-gap"},
        # A code over the limit cannot pass to the decoder's sandbox, so nothing is reconstructed from it either.
        "underfit": {"test-reconstruction"}, "crash": {"runs"},
        "big_latent": {"latent-size", "test-reconstruction", "generalization-gap", "hidden-tests"},
        "no_reflection": {"reflection"}, "off_topic": {"reflection"},
    },
}
LABS = list(EXPECTED)


@pytest.fixture(scope="module", ids=lambda p: f"{p[0]}-{p[1]}", params=[
    pytest.param((lab, backend), marks=[pytest.mark.slow, *([pytest.mark.docker] if backend == "docker" else [])])
    for lab in LABS for backend in ("local", "docker")])
def cohort(request):
    """Each cohort graded once per backend: the session's gradings (conftest.py)."""
    name, backend = request.param
    graded = request.getfixturevalue("graded_cohort" if backend == "local" else "docker_graded_cohort")
    return name, graded(name)[0]


def failed(result) -> set[str]:
    return {c.id for c in result.criteria if c.status == "fail"}


def test_each_student_gets_the_verdict_for_the_reason_intended(cohort):
    name, results = cohort
    expected = EXPECTED[name]
    assert set(results) == set(expected)
    got = {s: (r.verdict, failed(r)) for s, r in results.items()}
    want = {s: ("U" if reasons else "G", reasons) for s, reasons in expected.items()}
    assert got == want


def test_the_reasons_read_as_intended(cohort):
    name, results = cohort
    by = {s: {c.id: c for c in r.criteria} for s, r in results.items()}
    if name == "lab2-cnn":
        assert "cnn.py is missing" in by["missing_module"]["runs"].message
        assert "Overfitting" in by["overfit"]["generalization-gap"].message
        assert by["good"]["training-curve"].status == "pass"
        assert results["good"].probes.probes["layers"].status == "ok"  # the hidden probe imported cnn.py
    else:
        assert "128 numbers per input, more than the 32 allowed" in by["big_latent"]["latent-size"].message
        assert "at most 32 may pass to the decoder" in by["big_latent"]["test-reconstruction"].message
        assert by["good"]["reconstructions-figure"].status == "pass"
        # The provided plotting.py the student edited (it saved to a path of their own laptop) was replaced.
        assert results["edited_plotting"].execution.status == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("name", LABS)
def test_validate_lab(name, capsys):
    assert main(["validate-lab", name, "--root", str(REPO)]) == 0
    text = capsys.readouterr().out
    assert "the solved student notebook gets G" in text and "passes the students' self-check" in text


@pytest.mark.parametrize("name", LABS)
def test_student_files_are_what_assign_makes_of_the_reference(name):
    lab = load_lab(name, REPO)
    if lab.notebook_path is not None:  # a module-only lab has its templates alone
        assert nbformat.writes(make_student_notebook(lab.solution_path)) == nbformat.writes(
            nbformat.read(lab.notebook_path, as_version=4))
    for module in lab.spec.files.student:
        assert make_student_module(lab.source_path(module)) == lab.template_path(module).read_text()


@pytest.mark.parametrize("name", LABS)
def test_release_leaks_nothing(name, tmp_path):
    kit = release(load_lab(name, REPO), tmp_path / name)
    lab = load_lab(name, REPO)
    if lab.spec.notebook is not None:
        assert (kit.folder / lab.spec.notebook).is_file() and (kit.folder / "handout" / lab.spec.notebook).is_file()
    for helper in lab.spec.files.helpers:
        assert (kit.folder / helper).read_bytes() == lab.helper_path(helper).read_bytes()
    for module in lab.spec.files.all:
        assert (kit.folder / module).read_bytes() == lab.template_path(module).read_bytes()
    assert not (kit.folder / "data" / "test.npz").exists()


def _run_copy(script: Path, parts: list[str], tmp_path: Path, *args: str) -> Path:
    """Run a generator script from a copy of the repo parts it reads, so its output lands in tmp_path."""
    root = tmp_path / "repo"
    for part in parts:
        src = REPO / part
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / part)
    target = root / script.relative_to(REPO)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(script, target)
    subprocess.run([sys.executable, str(target), *args], check=True, capture_output=True, cwd=root)
    return root


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


@pytest.mark.parametrize("name", ["lab1-mlp", *LABS])
def test_the_cohort_is_what_its_script_makes(name, tmp_path):
    script = REPO / "examples" / f"make_cohort_{name.split('-')[0]}.py"
    root = _run_copy(script, [f"assignments/{name}", "examples/answering.py"], tmp_path)
    _same_tree(root / "examples" / "submissions" / name, cohort_folder(name))


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (CI installs it)")
@pytest.mark.parametrize("name", LABS)
def test_the_data_is_what_its_script_makes_of_fashion_mnist(name, tmp_path):
    root = _run_copy(REPO / "reference" / name / "make_data.py", [], tmp_path)
    for split, where in load_lab(name, REPO).spec.splits.items():
        base = "reference" if where == "hidden" else "assignments"
        made = root / base / name / "data" / f"{split}.npz"
        assert made.read_bytes() == (REPO / base / name / "data" / f"{split}.npz").read_bytes(), split


@pytest.mark.slow
def test_a_student_checks_lab2_from_the_kit_with_their_module(tmp_path, monkeypatch, capsys):
    """The kit of a lab with a student module, used as a student would: work in the kit's files, check
    the folder. The check restores from the kit's handout/, imports the student's cnn.py, runs the
    public tests, and changes nothing."""
    kit = release(load_lab("lab2-cnn", REPO), tmp_path / "kit").folder
    monkeypatch.chdir(kit)
    for student, code in (("good", 0), ("wrong_conv", 1)):
        for name in ("lab2-cnn.ipynb", "cnn.py"):
            shutil.copy(cohort_folder("lab2-cnn") / student / name, kit / name)
        before = {p: p.read_bytes() for p in kit.rglob("*") if p.is_file()}
        assert main(["check", "lab2-cnn", "."]) == code, capsys.readouterr().out
        assert {p: p.read_bytes() for p in kit.rglob("*") if p.is_file()} == before
        out = capsys.readouterr().out
        if code:
            assert "Not yet: hidden-tests would keep this from G" in out
