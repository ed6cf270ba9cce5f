"""The criterion kinds hidden-tests, runtime, model-size, required-output and forbidden-calls: on
evidence built by hand for every status and edge, then a few on real notebooks graded end to end."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest
from make_course import notebook
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pydantic import ValidationError

from autograder.criteria import build
from autograder.criteria.analysis.calls import find_uses
from autograder.criteria.base import Evidence, ProbeData
from autograder.grading.pytest_plugin import TestContext as Context
from autograder.grading.pytest_plugin import run_tests
from autograder.labs.lab import load_lab
from autograder.labs.rubric import Rubric
from autograder.notebooks import load_notebook
from autograder.results import ExecutionResult, HiddenTestResult, ModelStats, ProbeReport, ProbeStatus

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture
def lab(course):
    return load_lab("toy", course)


def criterion(**spec):
    """A criterion as a rubric file would give it, validated by the rubric's own model."""
    spec.setdefault("id", "c")
    return build(Rubric.model_validate({"lab": "toy", "criteria": [spec]}).criteria[0])


def evidence(lab, status="ok", duration=10.0, notebook=None, submitted=None, probes=None, tests=None,
             tests_error="") -> Evidence:
    return Evidence(lab=lab, execution=ExecutionResult(status=status, duration_s=duration), notebook=notebook,
                    probes=probes or ProbeData(ProbeReport(status="ok")), labels={}, tests=tests,
                    tests_error=tests_error, submitted=submitted)


def cell(source="", tag=None, grade_id=None, outputs=(), duration=None):
    c = new_code_cell(source)
    if tag:
        c.metadata["tags"] = [tag]
    if grade_id:
        c.metadata["nbgrader"] = {"grade_id": grade_id, "solution": True, "grade": False, "locked": False}
    c.outputs = list(outputs)
    if duration is not None:
        c.metadata["papermill"] = {"duration": duration, "status": "completed"}
    return c


def nb(*cells):
    return new_notebook(cells=list(cells))


# --- hidden-tests ---------------------------------------------------------------------------

def t(name, outcome="passed", message="", public=False, weight=1.0):
    return HiddenTestResult(name=name, outcome=outcome, message=message, public=public, weight=weight)


SECRET = "expected 0.7312 at index 4 of the secret reference"


def test_all_hidden_tests_pass(lab):
    r = criterion(kind="hidden-tests").check(evidence(lab, tests=[t("test_a"), t("test_b")]))
    assert (r.status, r.value, r.threshold, r.message) == ("pass", 1.0, 1.0, "All 2 hidden tests pass.")


def test_a_hidden_failure_shows_neither_name_nor_message(lab):
    tests = [t("test_a"), t("test_secret_check", "failed", SECRET)]
    r = criterion(kind="hidden-tests").check(evidence(lab, tests=tests))
    assert r.status == "fail" and r.value == 0.5
    assert r.message == "1 of 2 hidden tests failed."
    assert SECRET not in r.message and "test_secret_check" not in r.message
    ta = {d["name"]: d for d in r.details["tests"]}
    assert ta["test_secret_check"]["message"] == SECRET and ta["test_secret_check"]["outcome"] == "failed"


def test_a_public_failure_is_named_with_its_message_and_hidden_ones_only_counted(lab):
    tests = [t("test_shape", "failed", "predict returned shape (3,)\n  for 200 inputs", public=True),
             t("test_secret", "failed", SECRET), t("test_other_secret", "error", "fixture broke: " + SECRET),
             t("test_ok")]
    r = criterion(kind="hidden-tests").check(evidence(lab, tests=tests))
    assert r.status == "fail"
    assert r.message == ("3 of 4 tests failed: test_shape (predict returned shape (3,) for 200 inputs); "
                         "and 2 hidden tests.")
    assert "secret" not in r.message.lower()


def test_every_failed_public_test_is_named_and_the_hidden_ones_counted(lab):
    tests = [t(f"test_public_{i}", "failed", f"wrong value {i}", public=True) for i in range(5)]
    tests += [t("test_secret", "failed", SECRET), t("test_ok")]
    r = criterion(kind="hidden-tests").check(evidence(lab, tests=tests))
    assert r.status == "fail" and "secret" not in r.message.lower()
    assert all(f"test_public_{i}" in r.message for i in range(5))
    assert "wrong value 0" in r.message and "wrong value 4" not in r.message  # messages of the first few only
    assert r.message.endswith("; and 1 hidden test.")
    assert r.message.startswith("6 of 7 tests failed: test_public_0 (wrong value 0); ")
    details = {d["name"]: d for d in r.details["tests"]}
    assert details["test_public_3"]["outcome"] == "failed" and details["test_public_3"]["public"] is True
    assert details["test_secret"]["public"] is False


def test_tests_that_need_the_notebook_wait_for_it_and_the_others_are_judged(lab):
    """The notebook stopped: the tests that ran (on the modules) decide a failure; a pass on them alone is
    no pass (skipped, as notebook-runs reports the stop)."""
    waiting = t("test_needs_notebook", "skipped", "Skipped: needs the notebook, which did not run to the end")
    failing = [t("test_module", "failed", "forward gives shape (3,)", public=True), waiting]
    r = criterion(kind="hidden-tests").check(evidence(lab, status="error", tests=failing))
    assert r.status == "fail"
    assert r.message == ("1 of 1 tests failed: test_module (forward gives shape (3,)) (1 more needs the "
                         "notebook, which did not run to the end).")
    passing = criterion(kind="hidden-tests").check(evidence(lab, status="error", tests=[t("test_module"), waiting]))
    assert passing.status == "skipped" and "need only your modules pass" in passing.message
    none_ran = criterion(kind="hidden-tests").check(evidence(lab, status="error", tests=[waiting]))
    assert (none_ran.status, none_ran.message) == ("skipped", "Not run: the notebook did not run to the end.")


def test_weights_give_partial_credit_and_skipped_tests_do_not_count(lab):
    tests = [t("test_big", weight=2.0), t("test_small", "failed", SECRET, weight=1.0), t("test_c"),
             t("test_skipped", "skipped", "Skipped: no GPU", weight=5.0)]
    passing = criterion(kind="hidden-tests", min_score=0.75).check(evidence(lab, tests=tests))
    assert (passing.status, passing.value, passing.threshold) == ("pass", 0.75, 0.75)
    assert passing.message == "Hidden tests score 0.75 (at least 0.75 needed); 1 of 3 hidden tests failed."
    assert passing.details["passed"] == "2/3"
    failing = criterion(kind="hidden-tests", min_score=0.8).check(evidence(lab, tests=tests))
    assert failing.status == "fail"
    assert failing.message == "Hidden tests score 0.75, below the 0.80 needed; 1 of 3 hidden tests failed."
    assert SECRET not in failing.message
    close = criterion(kind="hidden-tests", min_score=0.8, review_margin=0.1).check(evidence(lab, tests=tests))
    assert close.status == "review"


def test_a_weightless_test_fails_without_cost(lab):
    tests = [t("test_a"), t("test_info", "failed", SECRET, weight=0.0)]
    r = criterion(kind="hidden-tests").check(evidence(lab, tests=tests))
    assert r.status == "pass" and r.value == 1.0


def test_why_the_probes_failed_is_shown_though_the_test_is_hidden(lab):
    why = "evaluating your exported objects failed: `predict` not defined by the notebook"
    probes = ProbeData(ProbeReport(status="ok", probes={"scores": ProbeStatus(
        status="failed", error="`predict` not defined by the notebook")}))
    r = criterion(kind="hidden-tests").check(evidence(lab, probes=probes, tests=[t("test_x", "failed", why)]))
    assert r.message == f"1 of 1 hidden tests failed: {why}."


def test_hidden_tests_keep_their_skipped_and_error_paths(lab):
    assert criterion(kind="hidden-tests").check(evidence(lab, status="error")).status == "skipped"
    broken = criterion(kind="hidden-tests").check(evidence(lab, tests=[], tests_error="collecting x: boom"))
    assert broken.status == "error" and "could not run the hidden tests" in broken.message
    all_skipped = criterion(kind="hidden-tests").check(evidence(lab, tests=[t("test_a", "skipped")]))
    assert all_skipped.status == "error" and "all were skipped" in all_skipped.message
    with pytest.raises(ValidationError):
        criterion(kind="hidden-tests", min_score=1.5)


def test_the_plugin_records_public_and_weight_markers(lab, tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_marks.py").write_text(textwrap.dedent("""
        import pytest

        pytestmark = pytest.mark.weight(3)

        @pytest.mark.public
        def test_public():
            assert False, "shown"

        @pytest.mark.weight(0.5)
        def test_light():
            pass

        def test_module_weight():
            pass

        class TestGroup:
            pytestmark = pytest.mark.public

            def test_in_class(self):
                pass
    """))
    results, error = run_tests([tests / "test_marks.py"], Context(lab=lab, probes=ProbeData(
        ProbeReport(status="ok")), notebook=None))
    assert error == ""
    got = {r.name: (r.outcome, r.public, r.weight) for r in results}
    assert got == {"test_public": ("failed", True, 3.0), "test_light": ("passed", False, 0.5),
                   "test_module_weight": ("passed", False, 3.0), "TestGroup::test_in_class": ("passed", True, 3.0)}


def test_a_bad_weight_is_the_labs_error(lab, tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_bad.py").write_text("import pytest\n\n@pytest.mark.weight(-1)\ndef test_a():\n    pass\n")
    _, error = run_tests([tests / "test_bad.py"], Context(lab=lab, probes=ProbeData(ProbeReport(status="ok")),
                                                             notebook=None))
    assert "weight takes one number >= 0" in error


# --- runtime --------------------------------------------------------------------------------

def test_runtime_of_the_whole_notebook(lab):
    ok = criterion(kind="runtime", max_seconds=60).check(evidence(lab, duration=12.345))
    assert (ok.status, ok.value, ok.threshold) == ("pass", 12.35, 60)
    assert ok.message == "The notebook ran in 12.3 s (at most 60 s allowed)."
    slow = criterion(kind="runtime", max_seconds=10).check(evidence(lab, duration=12.3))
    assert slow.status == "fail" and slow.message == "The notebook ran in 12.3 s, more than the 10 s allowed."
    assert "faster" in slow.advice
    close = criterion(kind="runtime", max_seconds=10, review_margin=5).check(evidence(lab, duration=12.3))
    assert close.status == "review"
    stopped = criterion(kind="runtime", max_seconds=10).check(evidence(lab, status="timeout"))
    assert stopped.status == "skipped"


def test_runtime_of_one_cell_from_papermills_metadata(lab):
    executed = nb(cell("train()", grade_id="train", duration=4.5), cell("x", tag="eval", duration=0.2))
    ev = evidence(lab, notebook=executed, submitted=nb())
    r = criterion(kind="runtime", max_seconds=3, cell="train").check(ev)
    assert (r.status, r.value) == ("fail", 4.5)
    assert r.message == "The cell 'train' ran in 4.5 s, more than the 3 s allowed."
    tagged = criterion(kind="runtime", max_seconds=3, cell="eval").check(ev)
    assert tagged.status == "pass" and tagged.message.startswith("The cell tagged 'eval' ran in 0.2 s")


def test_runtime_falls_back_to_nbclients_timestamps(lab):
    c = cell("train()", tag="train")
    c.metadata["execution"] = {"iopub.execute_input": "2024-05-01T10:00:00.000000Z",
                               "shell.execute_reply": "2024-05-01T10:00:02.500000Z"}
    r = criterion(kind="runtime", max_seconds=3, cell="train").check(evidence(lab, notebook=nb(c), submitted=nb()))
    assert (r.status, r.value) == ("pass", 2.5)


def test_runtime_of_a_missing_or_untimed_cell(lab):
    executed = nb(cell("x", tag="other", duration=1.0), cell("y", tag="untimed"))
    gone = criterion(kind="runtime", max_seconds=3, cell="train").check(
        evidence(lab, notebook=executed, submitted=nb()))
    assert gone.status == "fail" and "'train'" in gone.message and "restore it" in gone.message
    untimed = criterion(kind="runtime", max_seconds=3, cell="untimed").check(
        evidence(lab, notebook=executed, submitted=nb()))
    assert untimed.status == "error"


def test_runtime_never_reads_the_students_own_metadata(lab):
    """Without the grader's executed notebook the judge falls back to the submitted one, whose
    papermill metadata the student could have written."""
    submitted = nb(cell("train()", tag="train", duration=0.01))
    r = criterion(kind="runtime", max_seconds=3, cell="train").check(
        evidence(lab, notebook=submitted, submitted=submitted))
    assert r.status == "error" and r.value is None


# --- model-size -----------------------------------------------------------------------------

def with_model(parameters=1000, trainable=900, size=4096, stored=None, saved=None, complete=True,
               **report) -> ProbeData:
    return ProbeData(ProbeReport(status="ok", exports={"model": "ok"}, models={"model": ModelStats(
        parameters=parameters, trainable=trainable, bytes=size, stored=stored, saved_bytes=saved,
        stored_complete=complete)}, **report))


@pytest.fixture
def model_lab(course):
    spec = course / "assignments" / "toy" / "lab.yaml"
    spec.write_text(spec.read_text().replace("exports: [predict]", "exports: [predict, model]"))
    return load_lab("toy", course)


def test_model_size_by_parameters_and_bytes(model_lab):
    ok = criterion(kind="model-size", max_parameters=1000).check(evidence(model_lab, probes=with_model()))
    assert (ok.status, ok.value, ok.threshold) == ("pass", 1000, 1000)
    assert ok.message == "`model` has 1,000 parameters (4 KiB saved); at most 1,000 parameters allowed."
    assert {k: ok.details[k] for k in ("parameters", "trainable", "bytes")} == {
        "parameters": 1000, "trainable": 900, "bytes": 4096}
    big = criterion(kind="model-size", max_parameters=999, max_bytes="2KiB").check(
        evidence(model_lab, probes=with_model()))
    assert big.status == "fail"
    assert big.message == ("`model` has 1,000 parameters, more than the 999 allowed and 4 KiB saved, more than "
                           "the 2 KiB allowed.")
    by_bytes = criterion(kind="model-size", max_bytes="2KiB").check(evidence(model_lab, probes=with_model()))
    assert (by_bytes.status, by_bytes.value, by_bytes.threshold) == ("fail", 4096, 2048)


def test_model_size_counts_numbers_kept_outside_the_registered_parameters(model_lab):
    """The sandbox's count of every number reachable from the export outranks the registered one."""
    r = criterion(kind="model-size", max_parameters=1000).check(
        evidence(model_lab, probes=with_model(parameters=0, stored=102_337)))
    assert (r.status, r.value) == ("fail", 102_337)
    assert "102,337 parameters (102,337 of them outside its registered parameters)" in r.message


def test_model_size_is_bounded_by_the_saved_size_measured_on_the_host(model_lab):
    """A count the student's process could forge is bounded by the pickle's size, measured outside it:
    8 bytes per allowed parameter plus 256 KiB for code, unless the rubric says otherwise."""
    spec = dict(kind="model-size", max_parameters=1000)
    assert criterion(**spec).check(evidence(model_lab, probes=with_model(saved=270_000))).status == "pass"
    over = criterion(**spec).check(evidence(model_lab, probes=with_model(parameters=0, stored=0, saved=300_000)))
    assert over.status == "fail" and "a saved size of 293 KiB, more than the 264 KiB" in over.message
    own = criterion(**spec, max_saved_bytes="100KiB").check(evidence(model_lab, probes=with_model(saved=200_000)))
    assert own.status == "fail"


def test_a_model_too_large_to_count_to_its_end_goes_to_review(model_lab):
    r = criterion(kind="model-size", max_parameters=1000).check(
        evidence(model_lab, probes=with_model(complete=False)))
    assert r.status == "review" and "too many objects to count" in r.message


def test_model_size_needs_a_bar_and_an_exported_name(model_lab):
    with pytest.raises(ValidationError, match="max_parameters, max_bytes or both"):
        criterion(kind="model-size")
    r = criterion(kind="model-size", export="net", max_parameters=10).check(evidence(model_lab, probes=with_model()))
    assert r.status == "error" and "does not export" in r.message


def test_model_size_when_there_is_no_module_to_measure(model_lab):
    not_module = ProbeData(ProbeReport(status="ok", exports={"model": "ok"}))
    r = criterion(kind="model-size", max_parameters=10).check(evidence(model_lab, probes=not_module))
    assert r.status == "fail" and r.message == ("`model` is not a PyTorch module (torch.nn.Module) whose size "
                                                "could be measured")
    undefined = ProbeData(ProbeReport(status="ok", exports={"model": "not defined by the notebook"}))
    r = criterion(kind="model-size", max_parameters=10).check(evidence(model_lab, probes=undefined))
    assert r.status == "fail" and r.message == "`model` not defined by the notebook"
    skipped = ProbeData(ProbeReport(status="skipped", message="the notebook did not run to the end"))
    r = criterion(kind="model-size", max_parameters=10).check(evidence(model_lab, status="error", probes=skipped))
    assert r.status == "skipped"
    ours = ProbeData(ProbeReport(status="harness-error", message="runner crashed"))
    assert criterion(kind="model-size", max_parameters=10).check(evidence(model_lab, probes=ours)).status == "error"


def runner_module():
    """The in-sandbox runner, loaded as the sandbox loads it: a script, not part of the package."""
    path = Path(__file__).resolve().parents[1] / "autograder" / "sandbox" / "runner.py"
    spec = importlib.util.spec_from_file_location("sandbox_runner_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_runner_measures_modules_and_sees_through_overrides():
    torch = pytest.importorskip("torch")
    runner = runner_module()

    class Hiding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(10, 5)
            self.b = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3))
            self.b[0].weight.requires_grad_(False)

        def state_dict(self, *args, **kwargs):
            return {}

        def parameters(self, *args, **kwargs):
            return iter([])

    class Liar:
        __class__ = torch.nn.Module  # isinstance() believes this; type() does not

    import io

    honest = Hiding()
    buffer = io.BytesIO()
    torch.save(torch.nn.Module.state_dict(honest), buffer)
    lazy = torch.nn.LazyLinear(3)  # its parameters have no size until a first forward pass
    measure = runner._Measurer(np, None)
    sizes = runner.model_sizes({"model": honest, "other": 3, "liar": Liar(), "lazy": lazy}, measure)
    linear, frozen, norm = 10 * 5 + 5, 5 * 3 + 3, 3 + 3
    running = 3 + 3 + 1 + 2  # batch norm's running mean, variance and batch count (buffers), eps and momentum
    assert sizes["model"] == {"parameters": linear + frozen + norm, "trainable": linear + 3 + norm,
                              "bytes": len(buffer.getvalue()), "stored": linear + frozen + norm + running,
                              "stored_complete": True}
    assert set(sizes) == {"model"}
    tied = torch.nn.Linear(4, 4)
    tied_sizes = runner.model_sizes({"m": torch.nn.Sequential(tied, tied)}, measure)["m"]
    assert tied_sizes["parameters"] == tied_sizes["stored"] == 20


def test_the_runner_leaves_out_a_module_that_breaks_while_measured(monkeypatch):
    torch = pytest.importorskip("torch")
    runner = runner_module()

    def refuse(*args, **kwargs):
        raise KeyboardInterrupt

    measure = runner._Measurer(np, None)
    monkeypatch.setattr(torch, "save", refuse)
    assert runner.model_sizes({"model": torch.nn.Linear(2, 2)}, measure) == {}
    monkeypatch.setitem(sys.modules, "torch", None)
    assert runner.model_sizes({"model": object()}, measure) == {}


def test_the_runner_counts_what_is_kept_outside_the_registered_parameters_with_tools_taken_first(monkeypatch):
    """Unregistered modules, tensors in closures and arrays in a by-value class's attributes are
    counted; patching torch's and numpy's methods after the tools were taken changes nothing."""
    torch = pytest.importorskip("torch")
    runner = runner_module()
    measure = runner._Measurer(np, None)
    weights = np.zeros((30, 30), np.float32)

    class Sneaky(torch.nn.Module):
        table = np.ones(50)  # a class attribute: this class is not importable, so it is walked

        def __init__(self):
            super().__init__()
            self.__dict__["net"] = torch.nn.Linear(10, 10)  # unregistered: 110 numbers
            self.closure = lambda x: x @ weights  # 900 numbers in a closure cell

    monkeypatch.setattr(torch.Tensor, "numel", lambda self: 0)
    assert measure.stored(Sneaky())["stored"] == 110 + 900 + 50


# --- required-output ------------------------------------------------------------------------

def figure():
    return new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480>"})


def stdout(text):
    return new_output("stream", name="stdout", text=text)


def result(**data):
    return new_output("execute_result", data=data, execution_count=1)


def shown(lab, spec, *cells):
    return criterion(kind="required-output", **spec).check(evidence(lab, notebook=nb(*cells), submitted=nb()))


def test_a_figure_in_the_tagged_cell(lab):
    spec = {"cell": "training-curve", "output": "figure", "what": "the training curve"}
    ok = shown(lab, spec, cell("plot()", tag="training-curve", outputs=[figure()]))
    assert (ok.status, ok.value, ok.threshold) == ("pass", 1, 1)
    none = shown(lab, spec, cell("plot()", tag="training-curve", outputs=[stdout("done\n")]), cell(
        "x", outputs=[figure()]))
    assert none.status == "fail"
    assert none.message == ("The cell tagged 'training-curve' shows no figure; plot the training curve there, "
                            "e.g. with matplotlib.")
    two = shown(lab, {**spec, "min_count": 2}, cell("plot()", grade_id="training-curve", outputs=[figure()]))
    assert two.status == "fail" and two.message.startswith("The cell 'training-curve' shows 1 figure, 2 are expected")
    svg = new_output("display_data", data={"image/svg+xml": "<svg/>"})
    assert shown(lab, {**spec, "min_count": 2}, cell(tag="training-curve", outputs=[svg, figure()])).status == "pass"


def test_printed_text_counts_stdout_not_warnings(lab):
    spec = {"cell": "report", "output": "text"}
    assert shown(lab, spec, cell(tag="report", outputs=[stdout("accuracy 0.93\n")])).status == "pass"
    assert shown(lab, spec, cell(tag="report", outputs=[result(**{"text/plain": "0.93"})])).status == "pass"
    warning = new_output("stream", name="stderr", text="UserWarning: something\n")
    r = shown(lab, spec, cell(tag="report", outputs=[warning, stdout("  \n")]))
    assert r.status == "fail" and r.message == "The cell tagged 'report' shows no printed text; print the result there."


def test_tables_html_markdown_or_a_printed_dataframe(lab):
    spec = {"cell": "results", "output": "table"}
    html = result(**{"text/html": "<div><TABLE border='1'><tr><td>1</td></tr></TABLE></div>", "text/plain": "x"})
    assert shown(lab, spec, cell(tag="results", outputs=[html])).status == "pass"
    markdown = new_output("display_data", data={"text/markdown": "| a | b |\n|---|---|\n| 1 | 2 |"})
    assert shown(lab, spec, cell(tag="results", outputs=[markdown])).status == "pass"
    frame = "   epoch  loss  accuracy\n0      1  0.90      0.61\n1      2  0.50      0.82\n"
    assert shown(lab, spec, cell(tag="results", outputs=[stdout(frame)])).status == "pass"
    log = "epoch 1 loss 0.90\nepoch 2 loss 0.50\n"
    r = shown(lab, spec, cell(tag="results", outputs=[stdout(log)]))
    assert r.status == "fail" and "shows no table" in r.message and "pandas DataFrame" in r.message


def test_required_output_of_a_missing_cell_or_without_the_graders_run(lab):
    spec = {"cell": "training-curve", "output": "figure"}
    gone = shown(lab, spec, cell("plot()", outputs=[figure()]))
    assert gone.status == "fail" and "'training-curve'" in gone.message and "restore it" in gone.message
    faked = nb(cell("pass", tag="training-curve", outputs=[figure()]))
    r = criterion(kind="required-output", **spec).check(evidence(lab, notebook=faked, submitted=faked))
    assert r.status == "error"
    r = criterion(kind="required-output", **spec).check(evidence(lab, status="error", notebook=nb(), submitted=nb()))
    assert r.status == "skipped"


# --- forbidden-calls ------------------------------------------------------------------------

MLP = "sklearn.neural_network.MLPClassifier"


def nested_exec(levels: int) -> str:
    source = "x = 1"
    for _ in range(levels):
        source = f"exec({source!r})"
    return source


def banned(lab, *sources, calls=(MLP,), **spec):
    """The forbidden-calls result on a notebook whose code cells are `sources`, after one markdown cell."""
    submitted = nb(new_markdown_cell("# Lab"), *[new_code_cell(s) for s in sources])
    return criterion(kind="forbidden-calls", calls=list(calls), **spec).check(evidence(lab, submitted=submitted))


@pytest.mark.parametrize("source, line", [
    ("import sklearn.neural_network as nn2\nclf = nn2.MLPClassifier()", 2),
    ("from sklearn.neural_network import MLPClassifier as M\nM()", 1),
    ("import numpy as np\nfrom sklearn import neural_network\nneural_network.MLPClassifier(hidden=(3,)).fit(X, y)", 3),
    ("import sklearn\nmake = sklearn.neural_network\nmake.MLPClassifier", 3),
    ("import sklearn\nsklearn.neural_network.MLPClassifier().fit(X, y)", 2),
    ("from sklearn.neural_network import *\nMLPClassifier()", 2),
    ("nn = __import__('sklearn.neural_network', fromlist=['x'])\nnn.MLPClassifier()", 2),
    ("import importlib as il\nm = il.import_module('sklearn.neural_network')\nm.MLPClassifier()", 3),
    ("m = __import__(name='sklearn.neural_network', fromlist=['x'])\nm.MLPClassifier", 2),
    ("%%timeit -n 1 from sklearn.neural_network import MLPClassifier\nMLPClassifier()", 1),
    ("import sklearn.neural_network as n\ngetattr(n, 'MLPClassifier')()", 2),
    ("x = 1\nexec('from sklearn.neural_network import MLPClassifier')", 2),
    ("%time from sklearn.neural_network import MLPClassifier", 1),
    ("%%time\nimport sklearn.neural_network as q\nq.MLPClassifier()", 3),
    ("%%writefile helper.py\nfrom sklearn.neural_network import MLPClassifier\n", 2),
])
def test_every_way_of_naming_it_is_found(lab, source, line):
    r = banned(lab, source, reason="write the classifier yourself")
    assert r.status == "fail", r.details
    first = r.details["uses"][0]
    assert (first["name"], first["cell"], first["line"]) == (MLP, 2, line)
    assert r.message.endswith("which this lab does not allow: write the classifier yourself.")


def test_the_fail_message_names_cell_and_line_as_jupyter_shows_them(lab):
    r = banned(lab, "import numpy as np", "x = 1\n\nfrom sklearn.neural_network import MLPClassifier\nMLPClassifier()",
               reason="Write the classifier yourself.")
    assert r.message == f"Uses {MLP} (cell 3, line 3), which this lab does not allow: Write the classifier yourself."
    assert [(u["how"], u["line"]) for u in r.details["uses"]] == [("import", 3), ("call", 4)]
    assert (r.value, r.threshold) == (2, 0)


def test_a_banned_module_bans_everything_under_it_and_nothing_beside_it(lab):
    r = banned(lab, "import torchvision\nm = torchvision.models.resnet18()\nimport torchvisionx\ntorchvision.io",
               calls=["torchvision.models"])
    assert [u["name"] for u in r.details["uses"]] == ["torchvision.models.resnet18"]
    r = banned(lab, "from torchvision import models", calls=["torchvision.models"])
    assert r.status == "fail" and r.details["uses"][0]["how"] == "import"
    several = banned(lab, "import sklearn\nfrom sklearn import svm, tree\nimport sklearn.linear_model as lm\n"
                          "lm.LogisticRegression()", calls=["sklearn"])
    assert several.message.startswith("Uses sklearn (cell 2, line 1), sklearn.svm (cell 2, line 2), sklearn.tree "
                                      "(cell 2, line 2) and 2 more, which")


@pytest.mark.parametrize("source", [
    "# from sklearn.neural_network import MLPClassifier",
    "print('sklearn.neural_network.MLPClassifier is not allowed')",
    "import sklearn.neural_network as nn\nnn = MyNet()\nnn.MLPClassifier",
    "class MLPClassifier:\n    pass\nMLPClassifier()",
    "from sklearn import svm\nsvm.SVC()",
    "import sklearn.neural_network\nsklearn.neural_network.MLPRegressor()",
    "def eval(model):\n    return model\neval(net)",
    "!pip install numpy\n%pip install -q pandas==2.1",
])
def test_lookalikes_pass(lab, source):
    r = banned(lab, source)
    assert r.status == "pass", r.details


def test_markdown_and_raw_cells_are_not_code(lab):
    submitted = nb(new_markdown_cell("```python\nfrom sklearn.neural_network import MLPClassifier\n```"),
                   nbformat.v4.new_raw_cell("import sklearn.neural_network"))
    r = criterion(kind="forbidden-calls", calls=[MLP]).check(evidence(lab, submitted=submitted))
    assert r.status == "pass"


@pytest.mark.parametrize("source, what", [
    ("import importlib\nm = importlib.import_module(name)", "importlib.import_module with a module name computed"),
    ("mod = __import__('skl' + 'earn')", "__import__ with a module name computed"),
    ("exec(code)", "exec of code computed at run time"),
    ("eval(compile(src, 'x', 'exec'))", "compile of code computed at run time"),
    ("import sklearn.neural_network as n\ngetattr(n, 'MLP' + 'Classifier')", "getattr on sklearn.neural_network"),
    ("import sys\nsys.modules['sklearn.neural_network']", "sys.modules"),
    ("!pip install scikit-learn==1.4", "installs scikit-learn"),
    ("%pip install -U scikit-learn", "installs scikit-learn"),
    ("!{sys.executable} -m pip install --quiet sklearn", "installs sklearn"),
    ("%conda install -c conda-forge scikit-learn", "installs scikit-learn"),
    ("%pip install {package}", "installs packages the grader cannot identify"),
    ("shell = get_ipython()\nshell.system(f'pip install {name}')", "installs packages the grader cannot identify"),
    ("import os\nos.system('pip install ' + 'scikit-learn')", "installs scikit-learn"),
    ("import os\nos.system(command)", "a shell command computed at run time"),
    ("import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'install', 'scikit-learn'])",
     "installs scikit-learn"),
    ("%%bash\ncd /tmp && pip install scikit-learn\n", "installs scikit-learn"),
    ("%run helper.py", "%run helper.py"),
    ("import runpy\nrunpy.run_path('x.py')", "runpy.run_path"),
    (nested_exec(4), "exec nested too deeply"),
    ("exec('def (:')", "exec of text that is not valid Python"),
])
def test_what_text_cannot_settle_goes_to_review(lab, source, what):
    r = banned(lab, "x = 1", source)
    assert r.status == "review", r.details
    assert what in r.message and "(cell 3, line" in r.message
    assert banned(lab, "x = 1", source, on_dynamic="ignore").status == "pass"


def test_a_definite_use_outweighs_doubt(lab):
    r = banned(lab, "exec(code)", "from sklearn.neural_network import MLPClassifier")
    assert r.status == "fail" and r.details["dynamic"][0]["what"] == "exec of code computed at run time"


def test_a_cell_that_does_not_parse_is_skipped_and_noted(lab):
    r = banned(lab, "def broken(:\n    pass", "import sklearn.neural_network as n\nn.MLPClassifier()")
    assert r.status == "fail" and r.details["unparsed_cells"] == [2]
    r = banned(lab, "def broken(:\n    from sklearn.neural_network import MLPClassifier")
    assert r.status == "pass" and r.details["unparsed_cells"] == [2]


def test_hostile_sources_do_not_break_the_check(lab):
    deep = "x = " + "+".join(["a"] * 50_000)  # an AST deeper than Python's recursion limit
    parens = "x = " + "(" * 500 + "1" + ")" * 500
    nul = "import os\x00\nimport sklearn.neural_network"
    r = banned(lab, deep, parens, nul, "%%writefile notes.txt\nimport sklearn.neural_network as n\nn.MLPClassifier()\n",
               "import os\nos.system(f'mkdir -p {out}')")
    assert r.status == "pass" and r.details["unparsed_cells"] == [2, 3, 4]
    # The visitor recurses; a statement deeper than it can go is for a human, and hides nothing after it.
    r = banned(lab, "x = " + "-" * 900 + "y\nfrom sklearn.neural_network import MLPClassifier")
    assert r.status == "fail" and r.details["dynamic"][0]["what"] == "code nested too deeply for the grader to read"
    assert banned(lab, "x = " + "-" * 900 + "y").status == "review"


def test_an_unreadable_notebook_is_not_checked(lab):
    r = criterion(kind="forbidden-calls", calls=[MLP]).check(evidence(lab, status="invalid", submitted=None))
    assert r.status == "skipped"
    with pytest.raises(ValidationError):
        criterion(kind="forbidden-calls", calls=["sklearn.neural network"])
    with pytest.raises(ValidationError):
        criterion(kind="forbidden-calls", calls=[])


def test_find_uses_reports_every_place():
    submitted = nb(new_code_cell("import sklearn.neural_network as a\na.MLPClassifier()\na.MLPClassifier"))
    found = find_uses(submitted, [MLP])
    assert [(u.how, u.cell, u.line) for u in found.uses] == [("call", 1, 2), ("reference", 1, 3)]


# --- on real notebooks ----------------------------------------------------------------------

def by_id(result):
    return {c.id: c for c in result.criteria}


RUBRIC = """\
lab: toy
criteria:
  - id: runs
    kind: notebook-runs
  - id: hidden-tests
    kind: hidden-tests
    min_score: 0.6
  - id: total-time
    kind: runtime
    max_seconds: 120
  - id: predict-time
    kind: runtime
    cell: predict
    max_seconds: 1
  - id: curve
    kind: required-output
    cell: training-curve
    output: figure
    what: the training curve
  - id: results-table
    kind: required-output
    cell: results
    output: table
  - id: no-polyfit
    kind: forbidden-calls
    calls: [numpy.polyfit]
    reason: fit the threshold yourself
"""

HIDDEN_TESTS = """\
import numpy as np
import pytest


@pytest.mark.public
def test_predicts_one_label_per_input(probe_outputs, inputs):
    out = probe_outputs["scores"]["test"]
    assert out.shape == (len(inputs["test"]),), f"predict returned shape {out.shape}"


@pytest.mark.weight(2)
def test_secret_accuracy(probe_outputs, labels):
    assert np.mean(probe_outputs["scores"]["test"] == labels["test"]) > 0.9, "the secret bar is 0.9"
"""


def lab_notebook(predict: str, plot: str, table: str, outputs=()) -> nbformat.NotebookNode:
    """The toy notebook plus a tagged plot cell and a results cell (as an nbgrader answer)."""
    nb_ = notebook(predict)
    nb_.cells.insert(4, cell(table, grade_id="results"))
    nb_.cells.insert(4, cell(plot, tag="training-curve", outputs=list(outputs)))
    return nb_


@pytest.mark.slow
def test_new_kinds_on_real_runs(course, submissions, grade, store):
    (course / "rubrics" / "toy.yaml").write_text(RUBRIC)
    (course / "reference" / "toy" / "tests" / "test_hidden.py").write_text(HIDDEN_TESTS)
    show_png = f"from IPython.display import display\ndisplay({{'image/png': '{PNG}'}}, raw=True)"
    frame = "import pandas as pd\npd.DataFrame({'epoch': [1, 2], 'loss': [0.9, 0.5]})"
    # The predict cell takes a measurable 0.1 s: a bare `def` takes a millisecond, which rounds to 0.0.
    good = lab_notebook("import time\ntime.sleep(0.1)\ndef predict(X):\n    return (X[:, 0] > 0).astype(int)",
                        show_png, frame)
    # A saved figure that the code does not make, a slow and wrong predict, polyfit under an alias.
    bad = lab_notebook("import time\nfrom numpy import polyfit as fit\ntime.sleep(1.5)\n"
                       "def predict(X):\n    return (X[:, 1] > 0).astype(int)",
                       "print('plotted')", "print('epoch loss')", outputs=[figure()])
    nbformat.write(good, submissions.folder / "good.ipynb")
    nbformat.write(bad, submissions.folder / "bad.ipynb")
    results = grade(submissions.folder)

    good_r, bad_r = by_id(results["good"]), by_id(results["bad"])
    assert results["good"].verdict == "G", {c.id: c.message for c in results["good"].criteria}
    assert 0.05 < good_r["predict-time"].value < 1
    assert good_r["total-time"].value > good_r["predict-time"].value
    assert good_r["curve"].message == "The cell tagged 'training-curve' shows 1 figure."
    assert good_r["results-table"].status == "pass"

    assert results["bad"].verdict == "U"
    tests = bad_r["hidden-tests"]
    assert tests.status == "fail" and tests.value == pytest.approx(1 / 3, abs=1e-3)
    assert "secret" not in tests.message and tests.message.endswith("1 of 2 hidden tests failed.")
    assert {d["name"]: d["message"] for d in tests.details["tests"]}["test_secret_accuracy"] == "the secret bar is 0.9"
    assert bad_r["predict-time"].status == "fail" and bad_r["predict-time"].value >= 1.5
    assert bad_r["curve"].message.startswith("The cell tagged 'training-curve' shows no figure")
    assert bad_r["results-table"].message.startswith("The cell 'results' shows no table")
    assert bad_r["no-polyfit"].message == ("Uses numpy.polyfit (cell 4, line 2), which this lab does not allow: fit "
                                           "the threshold yourself.")
    assert bad_r["runs"].status == "pass"

    # What papermill writes, which runtime reads: a duration per executed cell, and outputs of its own.
    executed = [load_notebook(p) for p in store.artifacts_root.rglob("executed.ipynb")]
    for nb_ in executed:
        for c in nb_.cells:
            if c.cell_type == "code":
                assert isinstance(c.metadata.papermill.duration, float)
                assert c.metadata.execution["shell.execute_reply"]
    plots = [c for nb_ in executed for c in nb_.cells if "training-curve" in c.metadata.get("tags", [])]
    assert sorted(len(c.outputs) for c in plots) == [1, 1]  # the saved figure was cleared, `print` remains


@pytest.mark.slow
def test_model_size_on_a_real_torch_export(course, submissions, grade):
    pytest.importorskip("torch")
    spec = course / "assignments" / "toy" / "lab.yaml"
    spec.write_text(spec.read_text().replace("exports: [predict]", "exports: [predict, model]"))
    (course / "rubrics" / "toy.yaml").write_text(
        "lab: toy\ncriteria:\n  - id: runs\n    kind: notebook-runs\n"
        "  - id: size\n    kind: model-size\n    max_parameters: 10\n    max_bytes: 4KiB\n")
    predict = "def predict(X):\n    return (X[:, 0] > 0).astype(int)\n"
    submissions("small", predict + "import torch\nmodel = torch.nn.Linear(2, 2)")
    submissions("large", predict + "import torch\nmodel = torch.nn.Sequential(torch.nn.Linear(2, 100))")
    submissions("array", predict + "import numpy as np\nmodel = np.zeros((2, 2))")
    results = grade(submissions.folder)
    small, large, array = (by_id(results[s])["size"] for s in ("small", "large", "array"))
    assert (small.status, small.value, small.details["trainable"]) == ("pass", 6, 6)
    assert results["small"].probes.models["model"].bytes == small.details["bytes"] > 0
    assert large.status == "fail" and large.message.startswith("`model` has 300 parameters, more than the 10 allowed")
    assert array.status == "fail" and "not a PyTorch module" in array.message


def test_reading_calls_waits_while_another_thread_makes_asts():
    """CPython 3.11 shares the AST constructor's depth between threads (gh-106905): pytest rewriting a
    test's asserts in one `--jobs` thread while forbidden-calls parses in another failed one of them with
    SystemError. Both take AST_LOCK; here the reader waits for a thread that holds it."""
    import threading

    from autograder.criteria.analysis.calls import AST_LOCK, find_uses

    done = threading.Event()

    def read() -> None:
        find_uses(new_notebook(cells=[new_code_cell("import sklearn\nsklearn.svm.SVC()")]), ["sklearn"])
        done.set()

    with AST_LOCK:
        reader = threading.Thread(target=read)
        reader.start()
        assert not done.wait(0.5)  # parked on the lock, not parsing beside its holder
    assert done.wait(30)
    reader.join()
