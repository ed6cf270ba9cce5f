"""lab4-numpy-mlp end to end: a lab without a notebook whose students hand in mlp.py and a report, whose
code imports scipy and scikit-image. The lab loads and releases, its template is what assign makes of
the reference, its probes and tests pass the reference module and fail each broken sample for the
reason intended (in-process, fast), and its sample cohort gets the intended verdicts on both backends.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml
from conftest import REPO, cohort_folder

from autograder.cli import main
from autograder.criteria.base import ProbeData
from autograder.grading.probe import probe_functions
from autograder.grading.pytest_plugin import TestContext as Context
from autograder.grading.pytest_plugin import run_tests
from autograder.labs.assign import make_student_module
from autograder.labs.lab import load_lab
from autograder.labs.release import release
from autograder.results import ProbeReport

LAB = "lab4-numpy-mlp"
COHORT = cohort_folder(LAB)

# student -> the criteria that fail (U); every other required one passes
EXPECTED = {
    "good": set(),
    "pdf_report": set(),
    "wrong_param_count": {"hidden-tests"},
    "bad_activation": {"hidden-tests"},
    "untouched": {"hidden-tests", "test-accuracy", "reflection"},
}
# student -> the tests that fail when the probes call their module in-process (tests of both tiers)
COUNT_TESTS = {"test_count_parameters_counts_weights_and_biases", "test_count_parameters_of_the_trained_network",
               "test_count_parameters_on_hidden_networks"}
UNSTABLE_TESTS = {f"{name}[{fn}]" for name in ("test_function_matches_pytorch",
                                               "test_function_matches_pytorch_on_hidden_inputs")
                  for fn in ("softmax", "cross_entropy")}


@pytest.fixture(scope="module")
def lab():
    return load_lab(LAB, REPO)


def needs_the_labs_packages() -> None:
    """The lab's code imports scipy and scikit-image: without them (`make install` does not bring
    scikit-image) the in-process tests skip, saying what to install."""
    for module, package in (("scipy.special", "scipy"), ("skimage.feature", "scikit-image")):
        pytest.importorskip(module, reason=f"{package} is not installed: pip install 'scipy>=1.10' "
                            "'scikit-image>=0.21'")


def import_module(path: Path) -> ModuleType:
    """A student's (or the reference) mlp.py, imported under a name of its own: in-process, as trusted
    sample code, never as the grader treats a submission."""
    spec = importlib.util.spec_from_file_location(f"lab4_mlp_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DirectExports(dict):
    """What a probe gets as `exports`: here no exports, and the module itself in place of a handle to it
    in a sandbox."""

    def __init__(self, mlp: ModuleType) -> None:
        super().__init__()
        self._mlp = mlp

    def module(self, name: str) -> ModuleType:
        assert name == "mlp", name
        return self._mlp


def failed_tests(lab, path: Path) -> set[str]:
    """Run every probe (public and hidden) on the module at `path`, called directly, then the lab's
    tests through the harness's own pytest plugin; the names of the tests that did not pass."""
    mlp = import_module(path)
    exports, inputs = DirectExports(mlp), lab.inputs()
    arrays = {}
    with np.errstate(all="ignore"):  # the unstable softmax overflows, as intended
        for name, fn, _ in probe_functions(lab):
            try:
                arrays[name] = {k: np.asarray(v) for k, v in fn(exports, inputs).items()}
            except Exception:  # noqa: BLE001 - a probe that raises leaves no output, as in grading
                pass
    context = Context(lab=lab, probes=ProbeData(ProbeReport(status="ok"), arrays=arrays), notebook=None)
    results, error = run_tests(lab.test_files(), context)
    assert not error, error
    assert len(results) == 17, [r.name for r in results]
    return {r.name.split("::")[-1] for r in results if r.outcome != "passed"}


# --- the lab's files -----------------------------------------------------------------------------


def test_the_lab_has_no_notebook_and_names_its_module_report_helper_and_packages(lab):
    spec = lab.spec
    assert spec.notebook is None and spec.exports == []
    assert (spec.files.student, spec.files.helpers, spec.files.report) == (["mlp.py"], ["checks.py"], "report")
    assert spec.packages == ["scipy>=1.10", "scikit-image>=0.21"]
    assert [c.id for c in lab.rubric.criteria] == ["hidden-tests", "test-accuracy", "own-code", "code-originality",
                                                     "reflection"]
    reflection = lab.rubric.criteria[-1]
    assert (reflection.source, reflection.section) == ("report", "Ethics reflection")
    assert (lab.assignment_dir / "report.md").is_file()


def test_the_template_is_what_assign_makes_of_the_reference(lab):
    assert make_student_module(lab.source_path("mlp.py")) == lab.template_path("mlp.py").read_text(encoding="utf-8"), (
        "run `autograder assign lab4-numpy-mlp`"
    )
    template = lab.template_path("mlp.py").read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" not in template and template.count("raise NotImplementedError()") == 9
    compile(template, "mlp.py", "exec")  # the template imports, so the untouched hand-in is graded, not refused


def test_the_data_is_small_public_with_labels_and_hidden_apart(lab):
    sizes = {s: len(lab.split(s)[0]) for s in lab.spec.splits}
    assert sizes == {"train": 900, "val": 300, "test": 597}
    for split in lab.spec.splits:
        X, y = lab.split(split)
        assert X.dtype == np.uint8 and X.shape[1:] == (8, 8) and X.max() <= 16 and set(np.unique(y)) == set(range(10))
    assert not (lab.assignment_dir / "data" / "test.npz").exists()
    public = {x.tobytes() for s in ("train", "val") for x in lab.split(s)[0]}
    assert not any(x.tobytes() in public for x in lab.split("test")[0])
    total = sum(p.stat().st_size for p in [*lab.public_data_dir.glob("*.npz"), *(lab.hidden / "data").glob("*.npz")])
    assert total < 1_000_000


def test_the_release_leaks_nothing_and_holds_the_helper(lab, tmp_path):
    kit = release(lab, tmp_path / LAB).folder
    assert (kit / "mlp.py").read_bytes() == lab.template_path("mlp.py").read_bytes()
    for name in ("checks.py", "probes.py", "tests/test_public.py", "data/train.npz", "data/val.npz"):
        assert (kit / name).is_file(), name
    assert not (kit / "data" / "test.npz").exists()
    # the report template in the working folder and pristine in handout/, which the self-check reads
    template = (lab.assignment_dir / "report.md").read_bytes()
    assert (kit / "report.md").read_bytes() == template == (kit / "handout" / "report.md").read_bytes()
    readme = (kit / "README.md").read_text()
    assert "hand in mlp.py and your report (report.pdf, report.md or report.txt), together" in readme
    assert "notebook" not in readme.split("## Check")[0]
    assert "scikit-image" in readme


def test_the_model_report_is_hidden_text_the_release_refuses_to_leak(lab, tmp_path):
    from autograder.errors import UserError
    from autograder.labs.lab import load_lab

    root = tmp_path / "course"
    for folder in ("assignments", "reference", "rubrics"):
        shutil.copytree(REPO / folder / LAB if folder != "rubrics" else REPO / folder, root / folder / LAB
                        if folder != "rubrics" else root / folder)
    model = (root / "reference" / LAB / "report.md").read_text()
    line = next(x for x in model.splitlines() if len(x) > 60 and x not in (root / "assignments" / LAB /
                                                                         "report.md").read_text())
    with (root / "assignments" / LAB / "checks.py").open("a") as f:  # a released file quoting the model answer
        f.write('\nNOTE = """\n' + line + '\n"""\n')
    with pytest.raises(UserError, match="lines of the solution"):
        release(load_lab(LAB, root), tmp_path / "kit")


def test_the_lab_imports_only_its_environment_and_without_its_list_names_what_is_missing(lab, tmp_path):
    from autograder.grading.validation import import_problems

    assert import_problems(lab) == []
    root = tmp_path / "course"
    for part in (f"assignments/{LAB}", f"reference/{LAB}", f"rubrics/{LAB}.yaml"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy)(REPO / part, root / part)
    spec_path = root / "assignments" / LAB / "lab.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    del spec["packages"]
    spec_path.write_text(yaml.safe_dump(spec))
    problems = {p.problem.split(",")[0]: p for p in import_problems(load_lab(LAB, root))}
    assert set(problems) == {"imports scipy", "imports skimage"}
    assert problems["imports skimage"].hint == "scikit-image provides it: add it to packages: in lab.yaml"


# --- the reference and the sample cohort, called in-process --------------------------------------


def test_the_reference_module_passes_every_test(lab):
    needs_the_labs_packages()
    assert failed_tests(lab, lab.source_path("mlp.py")) == set()


@pytest.mark.slow
def test_hidden_tests_judged_at_once_in_several_threads_do_not_disturb_each_other(lab):
    """`grade --jobs N` judges in threads; the in-process pytest run changes sys.path, sys.modules and the
    environment, and compiles (assertion rewriting) with CPython's per-interpreter AST state: two at once
    made one submission's hidden tests a harness error ("AST constructor recursion depth mismatch")."""
    import threading

    needs_the_labs_packages()
    mlp = import_module(lab.source_path("mlp.py"))
    exports, inputs = DirectExports(mlp), lab.inputs()
    arrays = {name: {k: np.asarray(v) for k, v in fn(exports, inputs).items()} for name, fn, _ in probe_functions(lab)}
    outcomes: list[tuple[str, int, int]] = []
    start = threading.Barrier(4)

    def judge() -> None:
        start.wait()
        for _ in range(2):
            context = Context(lab=lab, probes=ProbeData(ProbeReport(status="ok"), arrays=arrays), notebook=None)
            results, error = run_tests(lab.test_files(), context)
            outcomes.append((error, len(results), sum(r.outcome == "passed" for r in results)))

    threads = [threading.Thread(target=judge) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [("", 17, 17)] * 8


# pytest.main per module: seconds each, so these run with the slow tests; the reference stays in the fast loop.
@pytest.mark.slow
@pytest.mark.parametrize("student, failing", [
    ("good", set()), ("pdf_report", set()), ("wrong_param_count", COUNT_TESTS), ("bad_activation", UNSTABLE_TESTS),
])
def test_each_sample_module_fails_the_tests_intended(lab, student, failing):
    needs_the_labs_packages()
    assert failed_tests(lab, COHORT / student / "mlp.py") == failing


@pytest.mark.slow
def test_the_untouched_template_fails_every_test(lab):
    needs_the_labs_packages()
    assert len(failed_tests(lab, lab.template_path("mlp.py"))) == 17


def test_the_cohort_is_what_its_script_makes(tmp_path):
    root = tmp_path / "repo"
    for part in (f"assignments/{LAB}", "examples/answering.py", "examples/make_cohort_lab4.py"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy)(REPO / part, root / part)
    import subprocess

    subprocess.run([sys.executable, str(root / "examples" / "make_cohort_lab4.py")], check=True, capture_output=True)
    made = root / "examples" / "submissions" / LAB
    files = sorted(p.relative_to(made) for p in made.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(COHORT) for p in COHORT.rglob("*") if p.is_file())
    for rel in files:
        assert (made / rel).read_bytes() == (COHORT / rel).read_bytes(), rel


def test_the_pdf_report_holds_its_reflection_as_text():
    from pypdf import PdfReader

    text = PdfReader(COHORT / "pdf_report" / "report.pdf").pages[0].extract_text()
    assert "\nEthics reflection\n" in text and "human in the loop" in text


# --- the cohort graded -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[pytest.param("local", marks=pytest.mark.slow),
                                        pytest.param("docker", marks=[pytest.mark.slow, pytest.mark.docker])])
def cohort(request):
    """The sample cohort graded once per backend: the session's gradings (conftest.py). The docker
    backend grades in the lab's own image (the sandbox image with scipy and scikit-image)."""
    return request.getfixturevalue("graded_cohort" if request.param == "local" else "docker_graded_cohort")(LAB)


def failed(result) -> set[str]:
    return {c.id for c in result.criteria if c.status == "fail"}


def test_each_student_gets_the_verdict_for_the_reason_intended(cohort):
    results, _ = cohort
    assert set(results) == set(EXPECTED)
    got = {s: (r.verdict, failed(r)) for s, r in results.items()}
    assert got == {s: ("U" if reasons else "G", reasons) for s, reasons in EXPECTED.items()}


def test_the_reasons_read_as_intended(cohort):
    results, _ = cohort
    by = {s: {c.id: c for c in r.criteria} for s, r in results.items()}
    assert by["good"]["test-accuracy"].value >= 0.95 and by["pdf_report"]["test-accuracy"].value >= 0.95
    assert by["pdf_report"]["reflection"].details["report"] == "report.pdf"
    assert "count_parameters" in by["wrong_param_count"]["hidden-tests"].message
    assert "NaN or infinite" in by["bad_activation"]["hidden-tests"].message
    assert by["bad_activation"]["test-accuracy"].status == "pass"  # it trains well: only large logits break it
    assert "NotImplementedError" in by["untouched"]["hidden-tests"].message


@pytest.mark.slow
def test_validate_lab():
    assert main(["validate-lab", LAB, "--root", str(REPO)]) == 0
