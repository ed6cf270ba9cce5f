"""Labs without a notebook: students hand in modules, which probes and tests reach in the sandbox.

A toy module-only lab (`mod`, built beside the toy lab in a copy of the fixture course): `rules.py`
is the student's; `checks.py` is a probe helper that the public and the hidden probes both import;
the public test names what failed, the hidden test counts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from autograder.cli import main
from autograder.errors import ConfigError, UserError
from autograder.grading.intake import IntakeSpec, discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.assign import assign, make_student_module, template_problems
from autograder.labs.lab import load_kit, load_lab
from autograder.sandbox import get_backend
from autograder.sandbox.runner import scrub_paths
from autograder.store import Store

RULES = '''"""The student's rule: a threshold on the first feature."""

import numpy as np


def predict(X):
    """0 or 1 per row of X."""
    ### BEGIN SOLUTION
    return (np.asarray(X)[:, 0] > 0).astype(int)
    ### END SOLUTION


def n_parameters():
    ### BEGIN SOLUTION
    return 1
    ### END SOLUTION
'''
# A wrong rule: one number for the whole batch (the public test names it), and a wrong count (hidden).
WRONG = RULES.replace("return (np.asarray(X)[:, 0] > 0).astype(int)", "return np.asarray([1])").replace(
    "return 1\n", "return 3\n")
# A solution region that held a whole block body: the template keeps a dangling `else`.
DANGLING = '''import numpy as np


def predict(X):
    ### BEGIN SOLUTION
    if len(X):
        return (np.asarray(X)[:, 0] > 0).astype(int)
    ### END SOLUTION
    else:
        return np.zeros(0, dtype=int)


def n_parameters():
    return 1
'''
CHECKS = '''"""Shared by the public and the hidden probes: what a prediction must look like."""

import numpy as np


def as_labels(values):
    return np.asarray(values).astype(np.int64).ravel()
'''
PUBLIC_PROBES = '''import checks


def probe_scores(exports, inputs):
    rules = exports.module("rules")
    return {split: checks.as_labels(rules.predict(x)) for split, x in inputs.items()}
'''
HIDDEN_PROBES = '''import numpy as np
from checks import as_labels


def probe_secret(exports, inputs):
    rules = exports.module("rules")
    return {"n": np.asarray(rules.n_parameters()), "flipped": as_labels(rules.predict(-inputs["test"]))}
'''
PUBLIC_TESTS = '''import numpy as np


def test_predicts_one_label_per_input(probe_outputs, inputs):
    out = probe_outputs["scores"]["train"]
    assert out.shape == (len(inputs["train"]),), f"predict returned shape {out.shape} for {len(inputs['train'])} rows"


def test_labels_are_binary(probe_outputs):
    assert set(np.unique(probe_outputs["scores"]["train"])) <= {0, 1}, "predict must return 0 or 1"
'''
HIDDEN_TESTS = '''def test_one_parameter(probe_outputs):
    assert int(probe_outputs["secret"]["n"]) == 1, "the rule has one parameter"
'''
SPEC = {"name": "mod", "version": "1", "title": "A rule in a module", "files": {"student": ["rules.py"],
        "helpers": ["checks.py"]}, "splits": {"train": "public", "test": "hidden"},
        "self_check": {"stand_ins": {"test": "train"}},
        "probe_limits": {"timeout": 60, "memory": "1GiB"}}
RUBRIC = {"lab": "mod", "criteria": [
    {"id": "tests", "kind": "hidden-tests"},
    {"id": "test-accuracy", "kind": "accuracy", "split": "test", "min": 0.9},
    {"id": "no-sklearn", "kind": "forbidden-calls", "calls": ["sklearn"]},
]}


def _data(path: Path, n: int, seed: int, labels: bool = True) -> None:
    X = np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)
    arrays = {"X": X, "y": (X[:, 0] > 0).astype(np.int64)} if labels else {"X": X}
    np.savez(path, **arrays)


@pytest.fixture
def mod(course: Path) -> Path:
    """The fixture course with a module-only lab `mod` beside the toy lab."""
    lab, ref = course / "assignments" / "mod", course / "reference" / "mod"
    for folder in (lab / "data", lab / "tests", ref / "data", ref / "tests"):
        folder.mkdir(parents=True)
    (lab / "lab.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))  # train before test: see the path test
    (course / "rubrics" / "mod.yaml").write_text(yaml.safe_dump(RUBRIC))
    (ref / "rules.py").write_text(RULES)
    (lab / "rules.py").write_text(make_student_module(ref / "rules.py"))
    (lab / "checks.py").write_text(CHECKS)
    (lab / "probes.py").write_text(PUBLIC_PROBES)
    (ref / "probes.py").write_text(HIDDEN_PROBES)
    (lab / "tests" / "test_public.py").write_text(PUBLIC_TESTS)
    (ref / "tests" / "test_hidden.py").write_text(HIDDEN_TESTS)
    _data(lab / "data" / "train.npz", 60, 1)
    _data(ref / "data" / "test.npz", 80, 2)
    return course


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def hand_in(folder: Path, rules: str | None = RULES) -> Path:
    folder.mkdir(parents=True)
    if rules is not None:
        (folder / "rules.py").write_text(rules)
    (folder / "notes.txt").write_text("not handed in to the sandbox")
    return folder


def grade(course: Path, source: Path, tmp_path: Path, public_only: bool = False) -> dict:
    lab = load_lab("mod", course, public_only=public_only)
    store = Store(tmp_path / "grades.db")
    try:
        grader = Grader(lab, store, get_backend("local"), Options(jobs=2, scratch=tmp_path))
        return {r.student: r for r in grader.grade_all(discover(source, IntakeSpec.of(lab.spec)))}
    finally:
        store.close()


def by_id(result) -> dict:
    return {c.id: c for c in result.criteria}


# --- loading ----------------------------------------------------------------------------------------------


def test_a_lab_without_a_notebook_loads_and_fingerprints_its_modules(mod):
    lab = load_lab("mod", mod)
    assert lab.notebook_path is None and lab.spec.exports == []
    assert lab.version.startswith("1+") and lab.release_hash
    before = lab.probes_hash
    (mod / "assignments" / "mod" / "checks.py").write_text(CHECKS + "\n# changed\n")
    assert load_lab("mod", mod).probes_hash != before  # a changed helper re-probes


@pytest.mark.parametrize(("criterion", "words"), [
    ({"id": "runs", "kind": "notebook-runs"}, "notebook-runs checks that the notebook runs"),
    ({"id": "locked", "kind": "locked-cells"}, "the notebook's locked cells"),
    ({"id": "fast", "kind": "runtime", "max_seconds": 10}, "the notebook's run time"),
    ({"id": "fig", "kind": "required-output", "cell": "plot", "output": "figure"}, "names cell 'plot'"),
    ({"id": "why", "kind": "reflection", "cell": "reflection", "min_words": 10}, "names cell 'reflection'"),
])
def test_criteria_that_need_a_notebook_are_refused_at_load(mod, criterion, words):
    edit_yaml(mod / "rubrics" / "mod.yaml", lambda d: d["criteria"].append(criterion))
    with pytest.raises(ConfigError) as info:
        load_lab("mod", mod)
    assert info.value.field.startswith("criteria[3]") and words in info.value.problem
    assert "module-only lab" in info.value.hint and "no notebook" in info.value.problem


def test_a_missing_helper_is_named(mod):
    (mod / "assignments" / "mod" / "checks.py").unlink()
    with pytest.raises(ConfigError, match=r"files\.helpers\[0\]: .*checks\.py does not exist"):
        load_lab("mod", mod)


def test_splits_of_inputs_only_load_unless_a_criterion_needs_their_labels(mod):
    test = mod / "reference" / "mod" / "data" / "test.npz"
    _data(test, 80, 2, labels=False)
    with pytest.raises(ConfigError) as info:
        load_lab("mod", mod)
    assert info.value.field == "criteria[1].split" and str(test) in info.value.problem
    assert "no labels" in info.value.problem and "add y to test.npz" in info.value.hint
    # Without the criterion that needs them, the split is inputs only: X is there, y is not.
    edit_yaml(mod / "rubrics" / "mod.yaml", lambda d: d["criteria"].pop(1))
    lab = load_lab("mod", mod)
    X, y = lab.split("test")
    assert X.shape == (80, 2) and y is None
    assert set(lab.labels()) == {"train"} and set(lab.inputs()) == {"train", "test"}
    # A gap between a labelled split and an unlabelled one names the one without.
    edit_yaml(mod / "rubrics" / "mod.yaml", lambda d: d["criteria"].append(
        {"id": "gap", "kind": "generalization-gap", "max": 0.1}))
    with pytest.raises(ConfigError, match=r"criteria\[2\]\.test: .*test\.npz holds no labels"):
        load_lab("mod", mod)


def test_a_split_without_inputs_is_refused_with_its_file(mod):
    path = mod / "assignments" / "mod" / "data" / "train.npz"
    np.savez(path, y=np.zeros(3))
    lab = load_lab("mod", mod)
    with pytest.raises(ConfigError, match="no array X"):
        lab.split("train")
    hidden = mod / "reference" / "mod" / "data" / "test.npz"
    hidden.write_bytes(b"not a zip")  # read at load: the accuracy criterion needs its labels
    with pytest.raises(ConfigError, match="cannot read split 'test'"):
        load_lab("mod", mod)


# --- templates ---------------------------------------------------------------------------------------------


def test_a_template_that_does_not_import_is_reported(mod, capsys):
    (mod / "reference" / "mod" / "rules.py").write_text(DANGLING)
    with pytest.raises(UserError) as info:
        list(assign("mod", mod))
    assert "does not import" in info.value.message and "line" in info.value.message
    lab = load_lab("mod", mod)
    problems = template_problems(lab)
    assert [Path(p).name for p, _ in problems] == ["rules.py"]
    assert "the template rules.py does not import: invalid syntax" in problems[0][1]
    assert main(["assign", "mod", "--root", str(mod)]) == 2
    assert "does not import" in capsys.readouterr().err


def test_assign_makes_the_module_templates_of_a_lab_without_a_notebook(mod):
    (mod / "assignments" / "mod" / "rules.py").unlink()
    assert [p.name for p in assign("mod", mod)] == ["rules.py"]
    assert "raise NotImplementedError()" in (mod / "assignments" / "mod" / "rules.py").read_text()


# --- grading ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_modules_are_graded_without_a_notebook(mod, tmp_path):
    subs = tmp_path / "subs"
    hand_in(subs / "good")
    hand_in(subs / "wrong", WRONG)
    hand_in(subs / "template", (mod / "assignments" / "mod" / "rules.py").read_text())
    hand_in(subs / "missing", rules=None)
    hand_in(subs / "dangling", make_student_module_text(DANGLING, tmp_path))
    zipped = hand_in(tmp_path / "zipped")
    with zipfile.ZipFile(subs / "zipped.zip", "w") as z:
        z.write(zipped / "rules.py", "rules.py")
    results = grade(mod, subs, tmp_path / "run")
    assert {s: r.verdict for s, r in results.items()} == {
        "good": "G", "zipped": "G", "wrong": "U", "template": "U", "missing": "U", "dangling": "U"}
    good = results["good"]
    assert good.execution is None and set(good.stages) == {"probe"}  # no notebook: no execute stage
    assert {t.name.split("::")[-1]: t.outcome for t in good.tests} == {
        "test_predicts_one_label_per_input": "passed", "test_labels_are_binary": "passed",
        "test_one_parameter": "passed"}  # the hidden test ran, though there is no notebook
    assert good.probes.probes["secret"].status == "ok"  # the hidden probe imported the helper too

    wrong = by_id(results["wrong"])
    assert wrong["tests"].status == "fail"
    assert "test_predicts_one_label_per_input (predict returned shape (1,) for 60 rows)" in wrong["tests"].message
    assert "and 1 hidden test" in wrong["tests"].message and "one parameter" not in wrong["tests"].message
    hidden = next(t for t in results["wrong"].tests if t.name.endswith("test_one_parameter"))
    assert (hidden.outcome, hidden.public) == ("failed", False)

    template = by_id(results["template"])
    assert template["tests"].status == "fail" and "NotImplementedError" in template["tests"].message
    missing = by_id(results["missing"])
    assert missing["handed-in"].status == "fail" and "rules.py" in missing["handed-in"].message
    assert missing["tests"].status == "skipped"
    dangling = results["dangling"].probes.probes["scores"]
    assert dangling.status == "failed" and "SyntaxError" in dangling.error and "rules.py" in dangling.error


@pytest.mark.slow
def test_a_failing_module_shows_no_host_path(mod, tmp_path):
    """A module that reads a file by its absolute path: the error names the file, not the work dir (the
    public probe reads the public split first, so the student may read the message)."""
    failing = RULES.replace('"""0 or 1 per row of X."""', '"""0 or 1 per row of X."""\n'
                            '    import os\n    np.load(os.path.abspath("weights.npy"))')
    subs = tmp_path / "subs"
    hand_in(subs / "reader", failing)
    result = grade(mod, subs, tmp_path / "run")["reader"]
    assert result.verdict == "U"
    status = result.probes.probes["scores"]
    assert "weights.npy" in status.error and "/" not in status.error.split("weights.npy")[0].split("'")[-1]
    shown = " ".join([status.error, *(c.message for c in result.criteria), *(t.message for t in result.tests)])
    assert "weights.npy" in shown
    for host in (str(tmp_path), "/tmp/", str(mod)):
        assert host not in shown


def test_scrub_paths_keeps_names_and_drops_host_folders():
    text = ('File "/work/course/.venv/lib/python3.12/site-packages/numpy/lib/npyio.py", line 427, in load\n'
            "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/autograder-probe-x1/weights.npy'\n"
            "see https://numpy.org/doc/stable/ and 3/4 of /home/ta/course/reference/mod/probes.py")
    clean = scrub_paths(text, ("/work/course",))
    assert 'File "numpy/lib/npyio.py", line 427' in clean
    assert "directory: 'weights.npy'" in clean and "of probes.py" in clean
    assert "https://numpy.org/doc/stable/" in clean and "3/4" in clean
    assert scrub_paths("in /tmp/wd/rules.py line 3 (/tmp/wd)", ("/tmp/wd",)) == "in rules.py line 3 (.)"


@pytest.mark.slow
def test_feedback_leaves_out_what_a_module_only_lab_has_no_data_for(mod, tmp_path):
    from autograder.publish.feedback import write_feedback

    subs = tmp_path / "subs"
    hand_in(subs / "wrong", WRONG)
    lab = load_lab("mod", mod)
    store = Store(tmp_path / "grades.db")
    try:
        Grader(lab, store, get_backend("local"), Options(scratch=tmp_path)).grade_all(
            discover(subs, IntakeSpec.of(lab.spec)))
        pages = {p.name: p.read_text() for p in write_feedback(lab, store, tmp_path / "feedback")}
    finally:
        store.close()
    for name in ("wrong.html", "wrong.md"):
        page = pages[name]
        assert "Training curves" not in page and "Not available" not in page
        assert "Time and memory" not in page and "Where the notebook stopped" not in page
        plain = page.replace("\\_", "_")  # Markdown escapes underscores
        assert "test_predicts_one_label_per_input" in plain and "test_one_parameter" not in plain


@pytest.mark.slow
def test_validate_lab_grades_the_modules_alone(mod, capsys):
    assert main(["validate-lab", "mod", "--root", str(mod)]) == 0
    out = capsys.readouterr().out
    assert "reference-solution" in out and "student-template" in out and "module-templates" not in out


@pytest.mark.slow
def test_validate_lab_names_a_template_that_does_not_import(mod, capsys):
    (mod / "reference" / "mod" / "rules.py").write_text(DANGLING)
    (mod / "assignments" / "mod" / "rules.py").write_text(make_student_module(mod / "reference" / "mod" / "rules.py"))
    assert main(["validate-lab", "mod", "--root", str(mod)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "the template rules.py does not import: invalid syntax at line" in out


@pytest.mark.slow
def test_the_kit_releases_the_helper_and_checks_a_module(mod, tmp_path, capsys):
    """Hidden probes import the released helper: no leak. The kit's self-check takes a module."""
    kit = tmp_path / "kit"
    assert main(["release", "mod", "--root", str(mod), "-o", str(kit)]) == 0
    assert (kit / "checks.py").read_text() == CHECKS and not (kit / "mod.ipynb").exists()
    readme = (kit / "README.md").read_text()
    assert "autograder check mod rules.py" in readme and "hand in rules.py" in readme
    lab = load_kit(kit)
    assert lab.notebook_path is None and lab.helper_files() == [kit / "checks.py"]
    (kit / "rules.py").write_text(RULES)
    capsys.readouterr()
    assert main(["check", "mod", str(kit / "rules.py")]) == 0
    out = capsys.readouterr().out
    assert "tests" in out and "test-accuracy" in out


def make_student_module_text(text: str, tmp: Path) -> str:
    source = tmp / "source" / "rules.py"
    source.parent.mkdir(exist_ok=True)
    source.write_text(text)
    return make_student_module(source)
