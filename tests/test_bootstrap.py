"""Bootstrap intervals of measured values, the borderline policy of the metric criteria, and judge_runs
(the median of a borderline submission's re-runs)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from test_metrics import check, evidence

from autograder.criteria import build
from autograder.criteria.analysis import bootstrap
from autograder.criteria.analysis.metrics import METRICS, Counts, Means
from autograder.criteria.base import BorderlinePolicy
from autograder.criteria.metric import RunValue, judge_runs
from autograder.errors import ConfigError
from autograder.labs.lab import load_lab
from autograder.labs.rubric import Rubric


def labels_and_guesses(n: int, accuracy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels and predictions that are right for exactly round(accuracy * n) items."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    guesses = labels.copy()
    wrong = rng.choice(n, size=n - round(accuracy * n), replace=False)
    guesses[wrong] = 1 - guesses[wrong]
    return labels, guesses


def accuracy_evidence(accuracy: float, n: int = 2000, train: float = 1.0):
    labels, guesses = labels_and_guesses(n, accuracy)
    train_labels, train_guesses = labels_and_guesses(n, train, seed=1)
    return evidence({"test": guesses, "train": train_guesses}, {"test": labels, "train": train_labels})


def spec_of(kind: str = "accuracy", **fields):
    return Rubric.model_validate({"lab": "x", "criteria": [{"id": "c", "kind": kind, **fields}]}).criteria[0]


# --- judge_runs: the median of several runs -------------------------------------------------------------------


def first_run(borderline=None, **fields):
    """A borderline first run under policy rerun (0.748 against 0.75), and its criterion."""
    spec = spec_of(min=0.75, borderline=borderline or {"policy": "rerun"}, **fields)
    criterion = build(spec)
    return criterion, criterion.check(accuracy_evidence(0.748))


def runs(*values, first_seed=0):
    return [RunValue(seed=first_seed + i, value=v, interval=None if v is None else [v - 0.02, v + 0.02],
                     status="review" if v is not None else "timeout",
                     stages={} if i == 0 else {f"execute@seed={first_seed + i}": f"k{i}"})
            for i, v in enumerate(values)]


def test_a_borderline_fail_under_rerun_asks_for_runs():
    _, first = first_run()
    assert first.status == "review" and first.details["rerun_wanted"] is True
    assert first.details["borderline"] and first.details["policy"] == "rerun"
    assert "run again with other seeds" in first.message and "95% interval" in first.message
    assert "holds the bar 0.75" in first.details["uncertain"]


def test_judge_runs_judges_the_median_not_the_first_run():
    criterion, first = first_run()
    passed = judge_runs(criterion, first, runs(0.748, 0.756, 0.752, 0.744, 0.761))
    assert passed.status == "pass" and passed.value == pytest.approx(0.752) and passed.threshold == 0.75
    assert passed.details["median"] == pytest.approx(0.752)
    assert [r["seed"] for r in passed.details["runs"]] == [0, 1, 2, 3, 4]
    assert passed.details["runs"][1]["stages"] == {"execute@seed=1": "k1"}
    assert "rerun_wanted" not in passed.details and "uncertain" not in passed.details
    assert passed.details["interval"] == pytest.approx([0.732, 0.772])  # the median run's
    assert "median of 5 runs" in passed.message and "0.756 (seed 1)" in passed.message
    assert passed.kind == "accuracy" and passed.advice

    failed = judge_runs(criterion, first, runs(0.748, 0.741, 0.739, 0.752, 0.745))
    assert failed.status == "fail" and failed.value == pytest.approx(0.745)
    assert "below the 0.75 needed" in failed.message and failed.advice


def test_judge_runs_keeps_the_review_margin_and_on_fail():
    criterion, first = first_run(review_margin=0.01)
    assert judge_runs(criterion, first, runs(0.748, 0.745, 0.744)).status == "review"
    assert judge_runs(criterion, first, runs(0.748, 0.735, 0.738)).status == "fail"
    criterion, first = first_run(on_fail="review")
    sent = judge_runs(criterion, first, runs(0.748, 0.70, 0.71))
    assert sent.status == "review" and sent.details["failed"] is True


def test_judge_runs_even_count_takes_the_middle_two():
    criterion, first = first_run()
    assert judge_runs(criterion, first, runs(0.748, 0.752)).details["median"] == pytest.approx(0.750)
    assert judge_runs(criterion, first, runs(0.748, 0.752)).status == "pass"  # 0.750 is at the bar


@pytest.mark.parametrize("values", [(0.748,), (0.748, None, None), (None, None), (0.748, math.nan)])
def test_judge_runs_with_fewer_than_two_values_waits_for_a_teacher(values):
    criterion, first = first_run()
    result = judge_runs(criterion, first, runs(*values))
    assert result.status == "review"
    assert "too few to judge by" in result.details["uncertain"]
    assert "rerun_wanted" not in result.details and "median" not in result.details
    assert len(result.details["runs"]) == len(values)


def test_judge_runs_on_a_generalization_gap():
    spec = spec_of("generalization-gap", max=0.25, borderline="rerun")
    criterion = build(spec)
    first = criterion.check(accuracy_evidence(0.745, train=0.999))
    assert first.status == "review" and first.details["rerun_wanted"]
    result = judge_runs(criterion, first, runs(0.254, 0.240, 0.245))
    assert result.status == "pass" and result.value == pytest.approx(0.245)
    assert "at most 0.25 allowed" in result.message and result.message.startswith("The gap between accuracy")
    assert judge_runs(criterion, first, runs(0.254, 0.262, 0.258)).status == "fail"


# --- the interval: coverage by simulation ---------------------------------------------------------------------


def coverage(truth: float, draw, repetitions: int = 1000) -> float:
    """The share of `repetitions` 95% intervals, each from a fresh sample by draw(rng) -> items, that hold
    the truth."""
    rng = np.random.default_rng(2026)
    held = 0
    for _ in range(repetitions):
        low, high = bootstrap.interval(draw(rng))
        held += low <= truth <= high
    return held / repetitions


def test_accuracy_interval_covers_95_percent_of_the_time():
    """Bernoulli p=0.75, 400 items, 1000 samples: the nominal 95% lands within 92-98%."""
    def draw(rng):
        labels = rng.integers(0, 3, 400)
        hit = rng.random(400) < 0.75
        guesses = np.where(hit, labels, (labels + 1) % 3)
        return METRICS["accuracy"].measure(guesses, labels)[1]

    assert 0.92 <= coverage(0.75, draw) <= 0.98


def test_mse_interval_covers_95_percent_of_the_time():
    """Gaussian errors (sd 0.3) on 400 items of 4 values: the MSE's truth is 0.09; skewed per item. 600
    samples (each interval is 2,000 resamples of 400 rows): 92-98% is still more than 3 standard errors."""
    def draw(rng):
        target = rng.random((400, 4))
        return METRICS["mse"].measure(target + rng.normal(scale=0.3, size=target.shape), target)[1]

    assert 0.92 <= coverage(0.09, draw, repetitions=600) <= 0.98


def test_macro_f1_interval_covers_its_truth():
    """Three classes, each predicted right with probability 0.8 (else one of the other two at random): the
    population's macro-F1 is 0.8. Macro-F1 is no mean of items: this checks the confusion-cell form."""
    def draw(rng):
        labels = rng.integers(0, 3, 600)
        guesses = np.where(rng.random(600) < 0.8, labels, (labels + rng.integers(1, 3, 600)) % 3)
        return METRICS["macro-f1"].measure(guesses, labels)[1]

    assert 0.92 <= coverage(0.8, draw, repetitions=400) <= 0.98


# --- the interval: what each metric's items are ---------------------------------------------------------------


def cases():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 5, 300)
    scores = rng.normal(size=(300, 5))
    scores[np.arange(300), labels] += 1.0
    target = rng.random((300, 2, 3))
    predicted = target + rng.normal(scale=0.2, size=target.shape)
    texts = np.array(["".join(rng.choice(list("abcde"), size=rng.integers(3, 9))) for _ in range(100)])
    read = np.array([t[:-1] + "x" if i % 3 == 0 else t for i, t in enumerate(texts)])
    return {"accuracy": (scores, labels, {}), "top-k-accuracy": (scores, labels, {"k": 2}),
            "balanced-accuracy": (scores, labels, {}), "macro-f1": (scores, labels, {}),
            "mse": (predicted, target, {}), "psnr": (predicted, target, {"data_range": 1.0}), "cer": (read, texts, {})}


def test_every_metric_has_items():
    assert set(cases()) == set(METRICS)
    assert all(m.items is not None for m in METRICS.values())


def naive(name, predicted, target, params, b=400):
    """The textbook bootstrap: resample item indices, measure again."""
    rng = np.random.default_rng(9)
    n = len(target)
    return np.array([METRICS[name].compute(predicted[i], target[i], **params)
                     for i in (rng.integers(0, n, n) for _ in range(b))])


@pytest.mark.parametrize("name", sorted(cases()))
def test_items_give_the_value_and_the_textbook_bootstrap(name):
    predicted, target, params = cases()[name]
    value, items = METRICS[name].measure(predicted, target, **params)
    assert value == METRICS[name].compute(predicted, target, **params)
    whole = items.of_counts(items.counts[None].astype(float)) if isinstance(items, Counts) else \
        items.of_means(items.values.mean(axis=0)[None])
    assert whole[0] == pytest.approx(value, rel=1e-12)
    ours = bootstrap.draws(items, 1500, np.random.default_rng(3))
    textbook = naive(name, predicted, target, params)
    spread = textbook.std()
    assert ours.mean() == pytest.approx(textbook.mean(), abs=0.15 * spread)
    assert ours.std() == pytest.approx(spread, rel=0.12)
    low, high = bootstrap.interval(items)
    assert low <= value <= high


def test_the_interval_is_seeded():
    predicted, target, params = cases()["mse"]
    items = METRICS["mse"].measure(predicted, target)[1]
    assert bootstrap.interval(items) == bootstrap.interval(METRICS["mse"].measure(predicted, target)[1])
    assert bootstrap.interval(items, seed=1) != bootstrap.interval(items)
    check_a = check("accuracy", accuracy_evidence(0.748), min=0.75)
    check_b = check("accuracy", accuracy_evidence(0.748), min=0.75)
    assert check_a.details["interval"] == check_b.details["interval"] and check_a.message == check_b.message


@pytest.mark.parametrize(("accuracy", "interval"), [(1.0, [1.0, 1.0]), (0.0, [0.0, 0.0])])
def test_all_right_or_all_wrong_is_sure(accuracy, interval):
    result = check("accuracy", accuracy_evidence(accuracy, n=200), min=0.75)
    assert result.details["interval"] == interval and result.details["borderline"] is False
    assert result.status == ("pass" if accuracy else "fail")


def test_a_single_item():
    result = check("accuracy", evidence({"test": [1]}, {"test": [0]}), min=0.75)
    assert result.status == "fail" and result.details["interval"] == [0.0, 0.0]
    assert bootstrap.interval(Means(np.array([[0.5]]), lambda m: m[:, 0])) == (0.5, 0.5)


def test_nan_in_the_outputs_is_the_students_bad_outputs_without_an_interval():
    scores = np.ones((50, 2))
    scores[3, 1] = np.nan
    result = check("accuracy", evidence({"test": scores}, {"test": np.zeros(50, int)}), min=0.75)
    assert result.status == "fail" and "NaN" in result.message and "interval" not in result.details


def test_a_huge_output_is_refused_before_any_resampling():
    huge = np.zeros(10**7, dtype=np.int8)
    started = time.perf_counter()
    result = check("accuracy", evidence({"test": huge}, {"test": np.zeros(2000, int)}), min=0.75)
    assert result.status == "fail" and "2000 rows" in result.message and "interval" not in result.details
    assert time.perf_counter() - started < 5  # refused on its shape, not measured


def test_a_perfect_reconstruction_stays_finite():
    target = np.random.default_rng(0).random((100, 4))
    result = check("metric", evidence({"test": target.copy()}, inputs=None, labels={"test": target}), metric="psnr",
                   min=30)
    assert result.status == "pass" and result.details["interval"] == [100.0, 100.0]
    assert yaml.safe_load(yaml.safe_dump(result.model_dump(mode="json")))  # finite: valid JSON and YAML


def test_a_gap_interval_holds_the_gap():
    result = check("generalization-gap", accuracy_evidence(0.80, train=0.95), max=0.10)
    low, high = result.details["interval"]
    assert low < 0.15 < high and high - low < 0.1 and result.status == "fail"  # far past 0.10: sure
    assert "95% interval" in result.message


# --- the borderline policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "status"), [("review", "review"), ("rerun", "review"), ("as-is", "fail")])
def test_a_borderline_fail_follows_the_policy(policy, status):
    result = check("accuracy", accuracy_evidence(0.745), min=0.75, borderline={"policy": policy})
    assert result.status == status and result.details["borderline"] and result.details["policy"] == policy
    assert result.details.get("rerun_wanted", False) == (policy == "rerun")
    assert ("uncertain" in result.details) == (policy != "as-is")
    if policy == "review":
        assert result.message.endswith("the interval holds the bar, so a teacher will decide.")


def test_the_default_policy_is_review():
    result = check("accuracy", accuracy_evidence(0.745), min=0.75)
    assert result.status == "review" and result.details["policy"] == "review"
    assert result.message.startswith("Accuracy on the hidden test set is 0.745 (95% interval 0.7")


def test_a_sure_fail_stays_a_fail_and_a_borderline_pass_a_pass():
    far = check("accuracy", accuracy_evidence(0.70), min=0.75)
    assert far.status == "fail" and not far.details["borderline"] and "uncertain" not in far.details
    close = check("accuracy", accuracy_evidence(0.755), min=0.75)
    assert close.status == "pass" and close.details["borderline"] and "uncertain" not in close.details


def test_the_margin_makes_a_value_borderline_whatever_its_interval():
    result = check("accuracy", accuracy_evidence(0.745, n=200_000), min=0.75)
    assert result.status == "fail"  # 200,000 items: the interval is tight, 0.745 is surely below
    wide = check("accuracy", accuracy_evidence(0.745, n=200_000), min=0.75, borderline={"margin": 0.005})
    assert wide.status == "review" and "borderline margin (0.005)" in wide.details["uncertain"]
    assert wide.message.endswith("that is within the rubric's borderline margin, so a teacher will decide.")


def test_the_review_margin_still_works_beside_it():
    result = check("accuracy", accuracy_evidence(0.745, n=200_000), min=0.75, review_margin=0.01,
                   borderline="as-is")
    assert result.status == "review" and "review margin" in result.message


def test_lower_is_better_metrics_are_borderline_too():
    rng = np.random.default_rng(4)
    target = rng.random((500, 3))
    predicted = target + rng.normal(scale=0.2, size=target.shape)  # MSE about 0.04
    value = METRICS["mse"].compute(predicted, target)
    result = check("metric", evidence({"test": predicted}, {"test": target}), metric="mse", max=value - 0.0005)
    assert result.status == "review" and "above the" in result.message and result.details["borderline"]


@pytest.mark.parametrize(("given", "words"), [
    ({"runs": 1}, "greater than or equal to 2"),
    ({"runs": 1000}, "less than or equal to 20"),
    ({"runs": 2.5}, "whole number"),
    ({"runs": True}, "whole number"),
    ({"policy": "Rerun"}, "'review', 'rerun' or 'as-is'"),
    ("sometimes", "'review', 'rerun' or 'as-is'"),
    ({"margin": -0.01}, "greater than or equal to 0"),
    ({"margin": float("nan")}, "finite number"),
    ({"time_budget_s": 0}, "greater than 0"),
    ({"gpu_budget_s": -5}, "greater than 0"),
    ({"run": 3}, "Extra inputs are not permitted"),
])
def test_a_careless_borderline_block_fails_at_load(given, words):
    with pytest.raises(ValidationError) as info:
        spec_of(min=0.75, borderline=given)
    assert words in str(info.value)


def test_borderline_fields_and_shorthand():
    policy = spec_of(min=0.75, borderline="rerun").borderline
    assert policy == BorderlinePolicy(policy="rerun") and policy.runs == 5 and policy.time_budget_s == 1800
    assert policy.gpu_budget_s is None
    assert spec_of(min=0.75).borderline.policy == "review"
    assert spec_of("metric", metric="mse", max=0.1, borderline={"policy": "as-is"}).borderline.policy == "as-is"
    assert spec_of("generalization-gap", max=0.1, borderline={"runs": 20}).borderline.runs == 20
    with pytest.raises(ValidationError):  # other kinds have no borderline
        spec_of("runtime", max_seconds=10, borderline="review")


def test_a_large_margin_is_refused():
    with pytest.raises(ValidationError) as info:
        spec_of(min=0.75, borderline={"margin": 0.5})
    assert "margin" in str(info.value) and "every" in str(info.value)


def test_interval_time_at_ten_thousand_items_is_bounded():
    """Not a benchmark (benchmarks/bootstrap.py is): a guard that the work stays bounded, generously."""
    rng = np.random.default_rng(0)
    target = rng.random((10_000, 8))
    items = METRICS["mse"].measure(target + 0.1, target)[1]
    assert bootstrap.resamples(items) == 200
    labels = rng.integers(0, 10, 10_000)
    cells = METRICS["macro-f1"].measure(rng.integers(0, 10, 10_000), labels)[1]
    assert bootstrap.resamples(cells) * len(cells.counts) <= bootstrap.BUDGET["multinomial"]


# --- the policy against the lab, at load --------------------------------------------------------------------


def toy_with(course, borderline, lab_yaml_extra: str = ""):
    path = course / "rubrics" / "toy.yaml"
    data = yaml.safe_load(path.read_text())
    data["criteria"][1]["borderline"] = borderline
    path.write_text(yaml.safe_dump(data))
    if lab_yaml_extra:
        lab_yaml = course / "assignments" / "toy" / "lab.yaml"
        lab_yaml.write_text(lab_yaml.read_text() + lab_yaml_extra)
    return load_lab("toy", course)


def test_rerun_needs_the_labs_seed_parameter(course):
    with pytest.raises(ConfigError) as info:
        toy_with(course, {"policy": "rerun", "runs": 3})
    err = info.value
    assert err.field == "criteria[1].borderline.policy" and "seed_parameter" in err.problem
    assert "seed_parameter: <name>" in err.hint and err.path.name == "toy.yaml"
    assert toy_with(course, "review").rubric.criteria[1].borderline.policy == "review"


def test_rerun_loads_where_the_lab_names_its_seed(course):
    lab = toy_with(course, {"policy": "rerun", "runs": 3}, "seed_parameter: seed\n")
    assert lab.rubric.criteria[1].borderline.runs == 3


def test_a_careless_borderline_in_a_rubric_file_names_file_and_field(course):
    with pytest.raises(ConfigError) as info:
        toy_with(course, {"policy": "rerun", "runs": 1})
    assert info.value.field == "criteria[1].borderline.runs" and info.value.path.name == "toy.yaml"


def test_interval_ends_are_shown_apart_from_the_bar():
    from autograder.criteria.metric import span
    assert span([0.7295, 0.7671], 0.75) == "0.730-0.767"
    assert span([0.7120, 0.7505], 0.75) == "0.7120-0.7505"  # 0.751 rounded would hide that it holds the bar
    assert span([0.70, 0.75], 0.75) == "0.700-0.750"  # an end on the bar shows as on it
    assert span([-0.0381, 0.0522], 0.1) == "-0.038 to 0.052"
    assert span([0.00012, 0.00031], 0.001) == "0.00012-0.00031"
