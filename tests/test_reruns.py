"""Re-running a borderline notebook with other seeds (grading/reruns.py, lab.yaml's seed_parameter).

The toy lab's notebooks run in a second or two, so most cases grade real notebooks whose accuracy on the
hidden split is chosen per seed; the budget, GPU and harness-failure cases drive rerun_borderline with
runs made to order; lab1's borderline sample is graded once, as the sample cohort (conftest.py).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from conftest import COHORT_LIMITS, REPO
from make_course import notebook

from autograder.cli import main
from autograder.criteria.base import ProbeData
from autograder.errors import ConfigError
from autograder.grading.intake import IntakeSpec, discover
from autograder.grading.judge import judge
from autograder.grading.pipeline import Grader, Options
from autograder.grading.reruns import SeededRun, rerun_borderline, seeded
from autograder.labs.lab import load_lab
from autograder.labs.spec import LabSpec
from autograder.results import ExecutionResult, ProbeReport
from autograder.sandbox import get_backend
from autograder.store import Store

# --- lab.yaml's seed_parameter ------------------------------------------------------------------------------------

BASE = {"name": "x", "version": "1", "notebook": "x.ipynb", "parameters": {"seed": 0, "lr": 0.1, "name": "a"}}


def test_seed_parameter_names_an_int_parameter():
    spec = LabSpec.model_validate({**BASE, "seed_parameter": "seed"})
    assert spec.seed_parameter == "seed"
    assert LabSpec.model_validate(BASE).seed_parameter is None  # optional: labs without a seed keep working


@pytest.mark.parametrize("seed_parameter, parameters, words", [
    ("name", None, "'a', not a whole number"),            # a string parameter
    ("lr", None, "0.1, not a whole number"),              # a float
    ("flag", {"flag": True}, "True, not a whole number"),  # a bool is not a seed
    ("sed", None, "'sed' is not one of `parameters` (parameters: seed, lr, name)"),  # a typo
    ("seed", {}, "not one of `parameters` (parameters: none)"),
    ("device", None, "set by the harness"),               # reserved: the harness sets it
    ("data_dir", None, "set by the harness"),
    ("1seed", None, "should match pattern"),              # not an identifier
])
def test_a_careless_seed_parameter_fails_at_load(seed_parameter, parameters, words):
    data = {**BASE, "seed_parameter": seed_parameter}
    if parameters is not None:
        data["parameters"] = parameters
    with pytest.raises(ValueError, match="seed_parameter") as info:
        LabSpec.model_validate(data)
    assert words in str(info.value)


def test_a_lab_without_a_notebook_has_no_seed():
    data = {"name": "x", "version": "1", "files": {"student": ["m.py"]}, "parameters": {"seed": 0},
            "seed_parameter": "seed"}
    with pytest.raises(ValueError, match="without a notebook has no parameters to seed"):
        LabSpec.model_validate(data)


def test_the_labs_name_their_seed():
    for name in ("lab1-mlp", "lab2-cnn", "lab3-autoencoder"):
        spec = load_lab(name, REPO).spec
        assert spec.seed_parameter == "seed" and isinstance(spec.parameters["seed"], int)


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _criterion(data: dict, cid: str) -> dict:
    return next(c for c in data["criteria"] if c["id"] == cid)


def test_load_names_file_and_field_of_a_bad_seed_parameter(course):
    _edit_yaml(course / "assignments/toy/lab.yaml", lambda d: d.update(seed_parameter="seeds"))
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    text = str(info.value)
    assert "lab.yaml" in text and "seed_parameter" in text and "'seeds' is not one of `parameters`" in text


def test_rerun_policy_without_a_seed_parameter_fails_at_load(course):
    """A rubric that asks for re-runs in a lab that names no seed: the TA hears it at load, not at grading."""
    _edit_yaml(course / "rubrics/toy.yaml",
               lambda d: _criterion(d, "test-accuracy").update(borderline={"policy": "rerun"}))
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    text = str(info.value)
    assert "toy.yaml" in text and "borderline.policy" in text and "seed_parameter" in text
    _edit_yaml(course / "assignments/toy/lab.yaml", lambda d: d.update(seed_parameter="seed"))
    assert load_lab("toy", course).spec.seed_parameter == "seed"


def test_seeded_view_changes_the_seed_only(course):
    _edit_yaml(course / "assignments/toy/lab.yaml", lambda d: d.update(seed_parameter="seed"))
    lab = load_lab("toy", course)
    view = seeded(lab, 3)
    assert view.spec.parameters == {"seed": 3} and lab.spec.parameters == {"seed": 0}
    assert view.version == lab.version and view.rubric is lab.rubric and view.name == lab.name


def test_a_reruns_view_of_the_lab_reaches_ray_nodes_with_its_seed(course):
    """The Ray executor ships the lab to its nodes once per lab_key: a re-run's view must not get the first
    run's archive (seed 0) and silently run the same notebook again."""
    import io
    import json
    import tarfile

    from autograder.grading.executors import lab_archive, lab_key

    _edit_yaml(course / "assignments/toy/lab.yaml", lambda d: d.update(seed_parameter="seed"))
    lab = load_lab("toy", course)
    view = seeded(lab, 2)
    assert lab_key(view) != lab_key(lab) and lab_key(seeded(lab, 2)) == lab_key(view)
    digest, data = lab_archive(view)
    assert digest != lab_archive(lab)[0]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("spec.json"))
        spec = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
    assert spec["parameters"] == {"seed": 2}


# --- the toy lab, graded for real: accuracy on the hidden split chosen per seed ------------------------------------

# predict() gets `rate` of the inputs wrong, the first ones, so the accuracy on the 200 hidden items is exactly
# 1 - rate: 0.885 is below the bar 0.9 with a 95% interval (about 0.84-0.93) that holds it.
RATES_BODY = """
RATES = {rates!r}
rate = RATES.get({seed}, {default})


def predict(X):
    y = (X[:, 0] > 0).astype(int)
    wrong = np.arange(len(X)) < round(rate * len(X))
    return np.where(wrong, 1 - y, y)
"""


def body(rates: dict[int, float], default: float = 0.05, seed: str = "seed") -> str:
    return RATES_BODY.format(rates=rates, default=default, seed=seed)


def policy(course: Path, **borderline) -> None:
    """The toy lab with a seed parameter and test-accuracy's borderline policy as given."""
    lab_yaml = course / "assignments/toy/lab.yaml"
    if "seed_parameter" not in lab_yaml.read_text():
        _edit_yaml(lab_yaml, lambda d: d.update(seed_parameter="seed"))
    _edit_yaml(course / "rubrics/toy.yaml", lambda d: _criterion(d, "test-accuracy").update(borderline=borderline))


def grade_one(course: Path, store: Store, path: Path, tmp_path: Path) -> tuple:
    lab = load_lab("toy", course)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    grader = Grader(lab, store, get_backend("local"), Options(jobs=1, scratch=scratch))
    (result,) = grader.grade_all(discover(path, IntakeSpec.of(lab.spec)))
    return result, grader


def accuracy(result):
    return next(c for c in result.criteria if c.id == "test-accuracy")


def seeds_and_values(c) -> list[tuple[int, float | None]]:
    return [(r["seed"], r["value"]) for r in c.details["runs"]]


@pytest.mark.slow
def test_rerun_judges_the_median_and_a_second_grading_runs_nothing(course, store, submissions, tmp_path):
    policy(course, policy="rerun", runs=5)
    path = submissions("unlucky", body({0: 0.115, 1: 0.08, 2: 0.07, 3: 0.12, 4: 0.05}))
    result, grader = grade_one(course, store, path, tmp_path)
    c = accuracy(result)
    assert seeds_and_values(c) == [(0, 0.885), (1, 0.92), (2, 0.93), (3, 0.88), (4, 0.95)]
    assert c.status == "pass" and c.value == pytest.approx(0.92) and c.details["median"] == pytest.approx(0.92)
    assert result.verdict == "G" and "uncertain" not in c.details and "rerun_wanted" not in c.details
    assert c.details["rerun"] == {"planned": 5, "done": 5, "stopped": "settled", "seed_parameter": "seed"}
    assert "median of 5 runs" in c.message and "0.885 (seed 0)" in c.message
    # Each re-run is a stage of its own, recorded with the result, and the stamp holds every seed.
    for seed in (1, 2, 3, 4):
        for stage in ("execute", "probe"):
            key = result.stages[f"{stage}@seed={seed}"]
            assert store.stage(key) is not None and c.details["runs"][seed]["stages"][f"{stage}@seed={seed}"] == key
    assert result.environment is not None and result.environment.seeds == [0, 1, 2, 3, 4]
    assert result.compute is not None and result.compute.runs == 10  # 5 executes and 5 probes
    assert len(grader._fresh) == 10

    # A new rubric re-judges from the recorded stages: the re-runs are found, none runs again.
    _edit_yaml(course / "rubrics/toy.yaml", lambda d: _criterion(d, "test-accuracy").update(title="Accuracy"))
    again, grader = grade_one(course, store, path, tmp_path)
    assert grader._fresh == {} and accuracy(again).details["runs"] == c.details["runs"]
    assert again.verdict == "G" and again.stages == result.stages


@pytest.mark.slow
def test_review_waits_for_a_teacher_and_as_is_is_todays_u(course, store, submissions, tmp_path):
    path = submissions("unlucky", body({0: 0.115}))
    policy(course, policy="review")
    result, grader = grade_one(course, store, path, tmp_path)
    c = accuracy(result)
    assert result.verdict == "review" and c.status == "review" and "holds the bar" in c.details["uncertain"]
    assert set(result.stages) == {"execute", "probe"} and "runs" not in c.details  # no re-runs under review
    policy(course, policy="as-is")
    result, grader = grade_one(course, store, path, tmp_path)
    assert result.verdict == "U" and accuracy(result).status == "fail" and grader._fresh == {}


@pytest.mark.slow
def test_runs_stop_once_the_median_is_settled(course, store, submissions, tmp_path):
    policy(course, policy="rerun", runs=5)
    path = submissions("unlucky", body({0: 0.115}, default=0.04))  # every other seed: 0.96
    result, _ = grade_one(course, store, path, tmp_path)
    c = accuracy(result)
    assert [s for s, _ in seeds_and_values(c)] == [0, 1, 2, 3]  # 3 of 5 pass: the 5th could not change it
    assert c.status == "pass" and c.details["rerun"]["stopped"] == "settled"
    assert "execute@seed=4" not in result.stages


@pytest.mark.slow
def test_a_notebook_that_ignores_the_seed_parameter_gets_its_one_value(course, store, submissions, tmp_path):
    """Its runs are identical (it seeds from an environment variable the harness never sets): the median is
    that value, a fail decided once 3 of 5 runs say so, not a review."""
    policy(course, policy="rerun", runs=5)
    ignoring = body({0: 0.115, 1: 0.05, 2: 0.05}, seed='int(__import__("os").environ.get("MY_SEED", "0"))')
    result, _ = grade_one(course, store, submissions("stubborn", ignoring), tmp_path)
    c = accuracy(result)
    assert seeds_and_values(c) == [(0, 0.885), (1, 0.885), (2, 0.885)]
    assert c.status == "fail" and result.verdict == "U" and c.details["rerun"]["stopped"] == "settled"
    assert "median of 3 runs" in c.message


@pytest.mark.slow
def test_runs_that_crash_count_for_nothing(course, store, submissions, tmp_path):
    """A re-run whose notebook raises gives no value and is listed with why; the others decide."""
    policy(course, policy="rerun", runs=5)
    crashing = "if seed in (1, 3):\n    raise RuntimeError('unlucky seed')\n" + body({0: 0.115, 2: 0.12, 4: 0.11})
    result, _ = grade_one(course, store, submissions("flaky", crashing), tmp_path)
    c = accuracy(result)
    assert seeds_and_values(c) == [(0, 0.885), (1, None), (2, 0.88), (3, None), (4, 0.89)]
    crashed = c.details["runs"][1]
    assert crashed["status"] == "error" and "RuntimeError: unlucky seed" in crashed["message"]
    # Three values, all below the bar: more than half of the five planned runs, so the median's side is sure.
    assert c.status == "fail" and result.verdict == "U"


# --- rerun_borderline with runs made to order: budgets, GPUs, the grader's own failures ----------------------------


@pytest.fixture
def toy_rerun(course):
    """(lab, first result, first runs) of a toy hand-in whose first run measured 0.885 under policy rerun."""
    def make(**borderline):
        policy(course, **{"policy": "rerun", **borderline})
        lab = load_lab("toy", course)
        sub = discover_one(course, lab)
        execution = ExecutionResult(status="ok", duration_s=10.0, gpus=["0"])
        probes = ProbeData(report=ProbeReport(status="ok", duration_s=2.0), arrays=scores(lab, 0.885))
        result = judge(lab, sub, execution, None, probes, "local")
        result.stages = {"execute": "e0", "probe": "p0"}
        return lab, result, [execution, probes.report]
    return make


def discover_one(course: Path, lab):
    folder = course.parent / "one"
    folder.mkdir(exist_ok=True)
    nbformat.write(notebook("def predict(X):\n    return X[:, 0] > 0"), folder / "ann.ipynb")
    (sub,) = discover(folder, IntakeSpec.of(lab.spec))
    return sub


def scores(lab, acc: float) -> dict:
    """The `scores` probe's outputs with about the given accuracy on each split (no gap between them)."""
    outputs = {}
    for split in ("train", "test"):
        y = lab.split(split)[1]
        wrong = np.arange(len(y)) < round((1 - acc) * len(y))
        outputs[split] = np.where(wrong, 1 - y, y)
    return {"scores": outputs}


def made(lab, values: dict[int, float | str], duration_s: float = 10.0, gpus: int = 1):
    """run(seed) giving the value for the seed, or an execute that ended with the status given as text."""
    asked: list[int] = []

    def run(seed: int) -> SeededRun:
        asked.append(seed)
        value = values[seed]
        ids = [str(i) for i in range(gpus)]
        if isinstance(value, str):
            return SeededRun(seed=seed, execution=ExecutionResult(status=value, message="Runner lost: /srv/x",
                                                                  duration_s=duration_s, gpus=ids))
        probes = ProbeData(report=ProbeReport(status="ok", duration_s=0.0), arrays=scores(lab, value))
        return SeededRun(seed=seed, execution=ExecutionResult(status="ok", duration_s=duration_s, gpus=ids),
                         probes=probes)

    run.asked = asked  # type: ignore[attr-defined]
    return run


def test_nothing_happens_without_a_wanted_rerun(toy_rerun):
    lab, result, first = toy_rerun(policy="rerun")
    run = made(lab, {})
    accuracy(result).details.pop("rerun_wanted")
    assert rerun_borderline(lab, result, first, run) == [] and run.asked == []


def test_the_time_budget_cuts_the_runs_short_and_the_result_stays_review(toy_rerun):
    lab, result, first = toy_rerun(runs=5, time_budget_s=20)  # the first run took 12 s: one re-run fits, not two
    assert accuracy(result).details.get("rerun_wanted")
    run = made(lab, {1: 0.95, 2: 0.95})
    rerun_borderline(lab, result, first, run)
    c = accuracy(result)
    assert run.asked == [1] and c.status == "review" and result.verdict == "review"
    assert "time budget for re-runs (20 s)" in c.details["uncertain"] and "stopped after 2 of 5" in c.message
    assert c.details["rerun"]["stopped"].startswith("another run")


def test_the_rubric_gpu_budget_and_the_courses_stop_the_runs(toy_rerun):
    lab, result, first = toy_rerun(runs=5, gpu_budget_s=15)  # each run holds 1 GPU for 10 s
    run = made(lab, {1: 0.88, 2: 0.88})
    rerun_borderline(lab, result, first, run)
    assert run.asked == [1] and "rubric's GPU budget" in accuracy(result).details["uncertain"]
    assert result.verdict == "review"

    lab, result, first = toy_rerun(runs=5)
    run = made(lab, {s: 0.95 for s in range(1, 5)})
    rerun_borderline(lab, result, first, run, course_gpu_budget_s=35)  # the first run took 10 of them
    assert run.asked == [1, 2] and "course's GPU budget" in accuracy(result).details["uncertain"]


def test_a_harness_error_never_makes_a_u(toy_rerun):
    lab, result, first = toy_rerun(runs=5)
    run = made(lab, {1: "harness-error", 2: 0.88, 3: "harness-error", 4: "harness-error"})
    rerun_borderline(lab, result, first, run)
    c = accuracy(result)
    # Two values, both below: the median is below, but three runs that gave nothing could have decided it.
    assert [r["value"] for r in c.details["runs"]] == [0.885, None, 0.88, None, None]
    assert c.status == "review" and result.verdict == "review" and "gave no value" in c.details["uncertain"]
    lost = c.details["runs"][1]
    assert lost["status"] == "harness-error" and "not your fault" in lost["message"] and "/srv" not in lost["message"]


def test_runs_that_all_fail_to_run_leave_it_to_a_teacher(toy_rerun):
    lab, result, first = toy_rerun(runs=3)
    run = made(lab, {1: "timeout", 2: "memory"})
    rerun_borderline(lab, result, first, run)
    c = accuracy(result)
    assert c.status == "review" and "only 1 of 3 runs" in c.details["uncertain"]


def test_compute_and_stamp_count_the_reruns_but_the_budget_criterion_does_not(toy_rerun):
    lab, result, first = toy_rerun(runs=3)
    result.compute = None
    run = made(lab, {1: 0.95, 2: 0.95})
    records = rerun_borderline(lab, result, first, run)
    assert records == []  # made-to-order runs have no stage records of their own
    assert result.compute is not None and result.compute.runs == 2 * 3 and result.compute.gpu_s == 30
    assert all(c.id != "compute-budget" for c in result.criteria) and result.verdict == "G"
    assert accuracy(result).details["rerun"]["done"] == 3


# --- lab1's borderline sample, the show command and the review app -------------------------------------------------


@pytest.mark.slow
def test_lab1_borderline_sample_gets_the_median_of_five_seeds(graded_cohort, tmp_path, capsys):
    results, store = graded_cohort("lab1-mlp")
    result = results["borderline"]
    c = accuracy(result)
    values = [v for _, v in seeds_and_values(c)]
    assert values == pytest.approx([0.736, 0.732, 0.8015, 0.827, 0.7545])  # seed 0 alone would have been a U
    assert c.status == "pass" and result.verdict == "G" and c.value == pytest.approx(0.7545)
    assert result.environment is not None and result.environment.seeds == [0, 1, 2, 3, 4]

    db = tmp_path / "grades.db"  # the shared store stays as it is: show reads a copy
    with sqlite3.connect(store.path) as source, sqlite3.connect(db) as copied:
        source.backup(copied)  # the write-ahead log included, which a file copy would leave behind
    assert main(["show", "lab1-mlp", "borderline", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "runs of test-accuracy, 5 of 5 planned, median 0.7545 (stopped: settled):" in shown
    assert "seed 0: 0.736 (95% " in shown and "execute@seed=4" in shown

    # Under `review` the same hand-in waits for a TA, judged from the recorded first run without a new run.
    root = tmp_path / "course"
    for part in ("assignments", "reference"):
        shutil.copytree(REPO / part / "lab1-mlp", root / part / "lab1-mlp")
    (root / "rubrics").mkdir()
    shutil.copy(REPO / "rubrics/lab1-mlp.yaml", root / "rubrics")
    _edit_yaml(root / "rubrics/lab1-mlp.yaml",
               lambda d: _criterion(d, "test-accuracy").update(borderline={"policy": "review"}))
    copy = Store(db)
    try:
        lab = load_lab("lab1-mlp", root)
        # The cohort's own limits: other limits would be another run of the notebook, not a re-judge.
        grader = Grader(lab, copy, get_backend("local"), Options(limits=COHORT_LIMITS["lab1-mlp"],
                                                                  scratch=tmp_path / "scratch"))
        (waiting,) = grader.grade_all(discover(REPO / "examples/submissions/lab1-mlp/borderline.ipynb",
                                               IntakeSpec.of(lab.spec)))
    finally:
        copy.close()
    assert grader._fresh == {}
    assert waiting.verdict == "review" and accuracy(waiting).status == "review"
    assert "0.736" in accuracy(waiting).message and "teacher" in accuracy(waiting).message


def _store_with_runs(tmp_path: Path) -> Path:
    """A store holding one toy result whose accuracy was judged on three seeds, one of which gave no value
    and whose message is a payload for the TA's browser and terminal."""
    from autograder.criteria.metric import RunValue
    from autograder.results import CriterionResult, SubmissionResult

    runs = [RunValue(seed=0, value=0.885, interval=[0.84, 0.93], status="review", message="below the bar",
                     stages={"execute": "e0" * 20, "probe": "p0" * 20}),
            RunValue(seed=1, value=None, status="error", message=f"the notebook did not run to the end: {PAYLOAD}",
                     stages={"execute@seed=1": "e1" * 20}),
            RunValue(seed=2, value=0.93, interval=[0.895, 0.965], status="pass", message="above",
                     stages={"execute@seed=2": "e2" * 20, "probe@seed=2": "p2" * 20})]
    c = CriterionResult(id="test-accuracy", kind="accuracy", status="review", value=0.9075, threshold=0.9,
                        message="Accuracy is 0.9075, the median of 2 runs; a teacher will decide.",
                        details={"metric": "accuracy", "runs": [r.model_dump() for r in runs], "median": 0.9075,
                                 "uncertain": "the runs stopped after 3 of 5",
                                 "rerun": {"planned": 5, "done": 3, "stopped": "another run would pass the "
                                           "rubric's time budget", "seed_parameter": "seed"}})
    db = tmp_path / "db" / "grades.db"
    store = Store(db)
    try:
        store.record(SubmissionResult(lab="toy", student="ann", submission_hash="h", lab_version="1",
                                      rubric_hash="r", verdict="review", criteria=[c]))
    finally:
        store.close()
    return db


PAYLOAD = "<script>alert(1)</script>\x1b[2J"


def test_show_lists_the_runs(tmp_path, capsys):
    db = _store_with_runs(tmp_path)
    assert main(["show", "toy", "ann", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "runs of test-accuracy, 3 of 5 planned, median 0.9075 (stopped: another run would pass" in shown
    assert "seed 0: 0.885 (95% 0.840-0.930), review [execute e0e0e0e0e0e0, probe p0p0p0p0p0p0]" in shown
    assert "seed 1: no value, error: the notebook did not run to the end: <script>" in shown
    assert "seed 2: 0.93 (95% 0.895-0.965), pass" in shown
    assert "\x1b" not in shown  # the terminal's escapes are shown, not obeyed


def test_the_review_apps_evidence_page_lists_the_runs(tmp_path):
    from fastapi.testclient import TestClient

    from autograder.serve.app import create_app
    from autograder.serve.views import evidence_url

    db = _store_with_runs(tmp_path)
    token = "a-token-for-the-rerun-tests-0123"
    client = TestClient(create_app(db, token=token, out=tmp_path / "exports", user="tove"),
                        base_url="http://127.0.0.1:8000")
    assert client.get(f"/?token={token}").status_code == 200
    page = client.get(evidence_url("toy", "ann", "test-accuracy"))
    assert page.status_code == 200
    html = page.text
    assert "Runs with other seeds" in html and "3 of 5 planned runs; median 0.9075; stopped: another run" in html
    table = html[html.index('<table id="runs">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 4  # the header and the three runs, in seed order
    assert table.index("<td>0</td>") < table.index("<td>1</td>") < table.index("<td>2</td>")
    assert "<td>0.885</td><td>0.84 to 0.93</td>" in table and "<td>no value</td>" in table
    assert "execute@seed=2 e2e2e2e2e2e2" in table
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in table  # a payload stays text
    details = html[html.index("Details (staff only)"):] if "Details (staff only)" in html else ""
    assert "seed_parameter" not in details  # shown in its own table, not again among the details
