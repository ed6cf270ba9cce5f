"""Labs where students hand in Python modules beside the notebook, graded end to end on the toy lab."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml
from make_course import notebook

from autograder.cli import main
from autograder.errors import ConfigError
from autograder.grading.intake import discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.assign import make_student_module
from autograder.labs.lab import load_lab
from autograder.sandbox import get_backend
from autograder.store import Store

RULES = '''"""The student's rule, imported by the notebook and by the probes."""

from given import THRESHOLD


def predict(X):
    """0 or 1 per row of X."""
    ### BEGIN SOLUTION
    return (X[:, 0] > THRESHOLD).astype(int)
    ### END SOLUTION
'''
GIVEN = "THRESHOLD = 0.0  # provided: grading always uses this copy\n"
BODY = "from rules import predict"
PUBLIC_PROBES = '''import numpy as np


def probe_rule(exports, inputs):
    rules = exports.module("rules")  # the student's module, as imported in the probe sandbox

    return {split: np.asarray(rules.predict(x)) for split, x in inputs.items()}
'''


@pytest.fixture
def modular(course: Path) -> Path:
    """The toy course turned into a lab with a student module (rules.py) and a provided one (given.py)."""
    lab_dir, ref = course / "assignments" / "toy", course / "reference" / "toy"
    spec = yaml.safe_load((lab_dir / "lab.yaml").read_text())
    spec["files"] = {"student": ["rules.py"], "provided": ["given.py"]}
    (lab_dir / "lab.yaml").write_text(yaml.safe_dump(spec))
    (ref / "rules.py").write_text(RULES)
    (lab_dir / "rules.py").write_text(make_student_module(ref / "rules.py"))
    (lab_dir / "given.py").write_text(GIVEN)
    (lab_dir / "probes.py").write_text(PUBLIC_PROBES)
    nbformat.write(notebook(BODY), ref / "solution.ipynb")
    nbformat.write(notebook(BODY, "YOUR ANSWER HERE"), lab_dir / "toy.ipynb")
    return course


def hand_in(folder: Path, rules: str | None = RULES, given: str | None = None) -> Path:
    folder.mkdir(parents=True)
    nbformat.write(notebook(BODY), folder / "toy.ipynb")
    if rules is not None:
        (folder / "rules.py").write_text(rules)
    if given is not None:
        (folder / "given.py").write_text(given)
    return folder


def grade(course: Path, source: Path, tmp_path: Path) -> dict:
    lab = load_lab("toy", course)
    store = Store(tmp_path / "grades.db")
    try:
        grader = Grader(lab, store, get_backend("local"), Options(jobs=2, scratch=tmp_path))
        return {r.student: r for r in grader.grade_all(discover(source, lab.spec.files.student))}
    finally:
        store.close()


def test_the_template_is_made_by_nbgrader_from_the_reference_module():
    from autograder.labs.assign import CODE_STUB

    template = make_student_module_text(RULES)
    assert "X[:, 0] > THRESHOLD" not in template and "BEGIN SOLUTION" not in template
    assert "    " + CODE_STUB.replace("\n", "\n    ") in template  # indented like the solution it replaces
    assert '"""0 or 1 per row of X."""' in template


def make_student_module_text(text: str, tmp: Path = Path("/tmp")) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m.py").write_text(text)
        return make_student_module(Path(d) / "m.py")


@pytest.mark.slow
def test_modules_travel_with_the_notebook_and_provided_ones_are_restored(modular, tmp_path):
    subs = tmp_path / "subs"
    hand_in(subs / "good")
    hand_in(subs / "tampered", given="THRESHOLD = 100.0  # everything is 0 now\n")  # restored: still G
    hand_in(subs / "missing", rules=None)
    hand_in(subs / "broken", rules="def predict(X):\n    return X[:, 0] >\n")
    zipped = hand_in(tmp_path / "zipped")
    with zipfile.ZipFile(subs / "zipped.zip", "w") as z:
        for f in sorted(zipped.iterdir()):
            z.write(f, f"zipped/{f.name}")
    results = grade(modular, subs, tmp_path / "run")
    assert {s: r.verdict for s, r in results.items()} == {
        "good": "G", "tampered": "G", "missing": "U", "broken": "U", "zipped": "G"}
    missing = {c.id: c for c in results["missing"].criteria}["runs"]
    assert "rules.py is missing from the folder" in missing.message
    broken = {c.id: c for c in results["broken"].criteria}["runs"]
    assert "SyntaxError" in broken.message
    # The probes imported the student's module in their sandbox (and the exported `predict`, pickled by
    # reference to it, loaded there).
    assert results["good"].probes.probes["rule"].status == "ok"


@pytest.mark.slow
def test_validate_lab_assembles_the_reference_and_the_template_folders(modular, capsys):
    assert main(["validate-lab", "toy", "--root", str(modular)]) == 0
    assert "the solved student notebook gets G" in capsys.readouterr().out


def test_a_lab_missing_its_module_files_fails_at_load(modular):
    (modular / "assignments" / "toy" / "rules.py").unlink()
    with pytest.raises(ConfigError, match=r"files\.student\[0\]: .*rules.py does not exist") as exc:
        load_lab("toy", modular)
    assert "autograder assign toy" in exc.value.hint
    shutil.copy(modular / "reference" / "toy" / "rules.py", modular / "assignments" / "toy" / "rules.py")
    (modular / "assignments" / "toy" / "given.py").unlink()
    with pytest.raises(ConfigError, match=r"files\.provided\[0\]"):
        load_lab("toy", modular)


def test_a_module_may_not_shadow_what_the_harness_imports(modular):
    path = modular / "assignments" / "toy" / "lab.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["files"] = {"student": ["numpy.py"]}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="shadow"):
        load_lab("toy", modular)


def test_assign_writes_the_module_templates(modular, capsys):
    (modular / "assignments" / "toy" / "rules.py").unlink()
    assert main(["assign", "toy", "--root", str(modular)]) == 0
    assert (modular / "assignments" / "toy" / "rules.py").read_text() == make_student_module_text(RULES)
    (modular / "reference" / "toy" / "rules.py").write_text("def predict(X):\n    return X\n")  # no markers
    assert main(["assign", "toy", "--root", str(modular)]) == 2
    assert "no ### BEGIN SOLUTION" in capsys.readouterr().err


def test_forbidden_calls_read_the_students_modules_too():
    from make_course import notebook as toy_notebook

    from autograder.criteria.analysis.calls import find_uses

    modules = {"rules.py": "import numpy as np\nfrom scipy import signal as s\n\n\ndef conv(x, w):\n"
                           "    return s.correlate(x, w)\n"}
    found = find_uses(toy_notebook("from rules import conv"), ["scipy.signal"], modules)
    assert [(u.name, u.place) for u in found.uses] == [("scipy.signal", "rules.py, line 2"),
                                                        ("scipy.signal.correlate", "rules.py, line 6")]
    # Each module is its own namespace: an alias made in the notebook means nothing there.
    found = find_uses(toy_notebook("import scipy.signal as np"), ["scipy.signal"], {"rules.py": "np.zeros(3)\n"})
    assert [u.place for u in found.uses] == ["cell 4, line 1"]
    assert find_uses(toy_notebook(BODY), ["x"], {"rules.py": "def (:\n"}).unparsed == ["rules.py"]


@pytest.mark.slow
def test_the_self_check_says_what_only_grading_checks(modular, tmp_path):
    """The toy lab's accuracy comes from a hidden probe and its tests are all hidden: the check says so
    for each, and passes on what it can see (the public probe importing the student's module)."""
    from autograder.grading.pipeline import Options
    from autograder.grading.selfcheck import check

    work = hand_in(tmp_path / "work")
    lab = load_lab("toy", modular, public_only=True)
    checked = check(lab, work, Options(scratch=tmp_path))
    by_id = {c.id: c for c in checked.result.criteria}
    assert by_id["test-accuracy"].status == "skipped" and "hidden probe (scores)" in by_id["test-accuracy"].message
    assert by_id["hidden-tests"].status == "skipped" and "all hidden" in by_id["hidden-tests"].message
    assert checked.passed and checked.result.verdict == "G"
    assert checked.result.probes.probes["rule"].status == "ok"


MODULE_TEST = '''import numpy as np


def test_the_rule_gives_labels(probe_outputs):
    assert set(np.unique(probe_outputs["rule"]["train"])) <= {0, 1}, "the rule must give 0 or 1"


def test_the_notebook_printed_nothing_odd(notebook):
    assert notebook.cells
'''


@pytest.mark.slow
def test_tests_of_the_modules_run_though_the_notebook_stops(modular, tmp_path):
    """The notebook stops after importing the rule: the probes still evaluate rules.py, the test that reads
    that probe runs (and fails a wrong rule), and the tests that need the notebook wait for it."""
    (modular / "reference" / "toy" / "tests" / "test_module.py").write_text(MODULE_TEST)
    stop = BODY + "\nraise RuntimeError('unfinished notebook')"
    subs = tmp_path / "subs"
    for name, rules in (("right", RULES), ("wrong", RULES.replace(".astype(int)", ".astype(int) * 2"))):
        folder = hand_in(subs / name, rules)
        nbformat.write(notebook(stop), folder / "toy.ipynb")
    results = grade(modular, subs, tmp_path / "run")
    for name in ("right", "wrong"):
        r = results[name]
        assert r.verdict == "U" and {c.id: c for c in r.criteria}["runs"].status == "fail"
        outcomes = {t.name.split("::")[-1]: t.outcome for t in r.tests}
        assert outcomes["test_the_notebook_printed_nothing_odd"] == "skipped"
        assert outcomes["test_predicts_one_label_per_input"] == "skipped"  # reads the export's probe
        assert r.probes.probes["rule"].status == "ok" and r.probes.exports["predict"].startswith("was not saved")
        accuracy = {c.id: c for c in r.criteria}["test-accuracy"]
        assert accuracy.status == "skipped" and "did not run to the end" in accuracy.message
    right = {c.id: c for c in results["right"].criteria}["hidden-tests"]
    assert results["right"].tests and {t.name.split("::")[-1]: t.outcome for t in results["right"].tests}[
        "test_the_rule_gives_labels"] == "passed"
    assert right.status == "skipped" and "need only your modules pass" in right.message
    wrong = {c.id: c for c in results["wrong"].criteria}["hidden-tests"]
    assert wrong.status == "fail" and wrong.message.startswith("1 of 1 hidden tests failed")
    assert "need the notebook" in wrong.message


@pytest.mark.slow
def test_a_failing_module_leaves_no_host_path_on_the_page(modular, tmp_path):
    """The notebook calls the student's module, which fails reading a file by its absolute path: the
    message and the traceback on the page name rules.py and the file, never the work dir."""
    from autograder.publish.feedback import write_feedback

    failing = RULES.replace('"""0 or 1 per row of X."""', '"""0 or 1 per row of X."""\n'
                            '    import os\n    open(os.path.abspath("weights.bin"))')
    folder = hand_in(tmp_path / "subs" / "reader", failing)
    nbformat.write(notebook(BODY + "\nimport numpy as np\npredict(np.zeros((2, 2)))"), folder / "toy.ipynb")
    lab = load_lab("toy", modular)
    store = Store(tmp_path / "grades.db")
    (tmp_path / "scratch").mkdir()
    try:
        (result,) = Grader(lab, store, get_backend("local"), Options(scratch=tmp_path / "scratch")).grade_all(
            discover(tmp_path / "subs", lab.spec.files.student))
        pages = {p.name: p.read_text() for p in write_feedback(lab, store, tmp_path / "feedback")}
    finally:
        store.close()
    assert result.execution is not None, result.criteria[0].message
    assert result.execution.status == "error" and "weights.bin" in result.execution.message
    page = pages["reader.html"]
    stopped = page[page.index("Where the notebook stopped"):]
    assert "rules.py" in stopped and "weights.bin" in stopped
    for text in (result.execution.message, page, pages["reader.md"]):
        assert str(tmp_path) not in text and "/tmp/" not in text and "autograder-execute" not in text
