"""The metric registry and the metric, accuracy and generalization-gap kinds, judged on crafted probe outputs."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from sklearn import metrics as sk

from autograder.criteria import build
from autograder.criteria.analysis.metrics import METRICS, PSNR_CAP_DB, levenshtein
from autograder.criteria.base import BORDERLINE, DEFAULT_ADVICE, Evidence, EvidenceMissing, ProbeData
from autograder.criteria.metric import IMPROVE, OUTPUTS, REGULARISE, GapSpec, MetricSpec
from autograder.errors import ConfigError
from autograder.labs.lab import load_lab
from autograder.labs.rubric import Rubric
from autograder.results import ExecutionResult, ProbeReport

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 4, size=60)
SCORES = RNG.normal(size=(60, 4))  # continuous: no ties
SPLITS = {"train": "public", "val": "public", "test": "hidden"}


class FakeLab:
    """What a criterion reads of a lab: split visibility and, for reconstructions, the inputs X."""

    public_only = False  # the grader's view of the lab, not the self-check's

    def __init__(self, inputs: dict[str, np.ndarray] | None = None) -> None:
        self.spec = SimpleNamespace(splits=SPLITS)
        self.inputs = inputs or {}

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        return self.inputs[split], np.zeros(len(self.inputs[split]))

    def split_label(self, split: str) -> str:
        return f"the hidden {split} set" if SPLITS.get(split) == "hidden" else f"the {split} set"


def evidence(outputs: dict[str, object], labels: dict[str, object] | None = None, inputs=None) -> Evidence:
    return Evidence(
        lab=FakeLab(inputs), execution=ExecutionResult(status="ok"), notebook=None,
        probes=ProbeData(report=ProbeReport(status="ok"), arrays={"scores": {k: np.asarray(v) for k, v in
                                                                              outputs.items()}}),
        labels={k: np.asarray(v) for k, v in (labels or {}).items()},
    )


def check(kind: str, ev: Evidence, **fields):
    spec = Rubric.model_validate({"lab": "x", "criteria": [{"id": "c", "kind": kind, **fields}]}).criteria[0]
    result = build(spec).check(ev)
    assert result.advice and result.message and "\n" not in result.message
    return result


def compute(name: str, predicted, target, **params) -> float:
    return METRICS[name].compute(np.asarray(predicted), np.asarray(target), **params)


# --- values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "reference"), [
    ("accuracy", sk.accuracy_score),
    ("balanced-accuracy", sk.balanced_accuracy_score),
    ("macro-f1", lambda y, p: sk.f1_score(y, p, average="macro")),
])
def test_class_metrics_match_scikit_learn(name, reference):
    predicted = SCORES.argmax(axis=1)
    assert compute(name, SCORES, LABELS) == pytest.approx(reference(LABELS, predicted))
    assert compute(name, predicted, LABELS) == pytest.approx(reference(LABELS, predicted))


def test_macro_f1_counts_classes_only_predicted_and_skips_classes_nobody_has():
    labels, predicted = [0, 0, 1, 1], [0, 2, 1, 1]  # class 2 only predicted (F1 0); class 3 nowhere
    assert compute("macro-f1", predicted, labels) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert compute("macro-f1", predicted, labels) == pytest.approx(sk.f1_score(labels, predicted, average="macro"))


def test_balanced_accuracy_sees_through_a_majority_guess():
    labels = np.array([0] * 9 + [1])
    assert compute("accuracy", np.zeros(10, int), labels) == 0.9
    assert compute("balanced-accuracy", np.zeros(10, int), labels) == 0.5


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_matches_scikit_learn_without_ties(k):
    expected = sk.top_k_accuracy_score(LABELS, SCORES, k=k, labels=range(4))
    assert compute("top-k-accuracy", SCORES, LABELS, k=k) == pytest.approx(expected)


def test_top_k_ties_do_not_help():
    constant = np.ones((4, 5))
    assert compute("top-k-accuracy", constant, [0, 1, 2, 3], k=3) == 0.0
    tied = np.array([[3.0, 2.0, 2.0, 2.0, 0.0]])  # true class 3 ties with classes 1 and 2 for second place
    assert compute("top-k-accuracy", tied, [3], k=3) == 0.0
    assert compute("top-k-accuracy", tied, [3], k=4) == 1.0


def test_mse_and_psnr():
    target = RNG.random((10, 3, 4))
    predicted = target + RNG.normal(scale=0.1, size=target.shape)
    mse = sk.mean_squared_error(target.ravel(), predicted.ravel())
    assert compute("mse", predicted, target) == pytest.approx(mse)
    assert compute("psnr", predicted, target) == pytest.approx(10 * np.log10(1 / mse))
    assert compute("psnr", predicted * 255, target * 255, data_range=255) == pytest.approx(10 * np.log10(1 / mse))
    assert compute("psnr", [[0.0, 0.5]], [[0.0, 1.0]]) == pytest.approx(10 * np.log10(1 / 0.125))


def test_perfect_reconstruction_gets_the_psnr_cap_not_infinity():
    target = RNG.random((5, 8))
    assert compute("psnr", target.copy(), target) == PSNR_CAP_DB


def test_cer_counts_edits_per_reference_character():
    assert levenshtein("kitten", "sitting") == 3
    assert compute("cer", ["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 10)
    assert compute("cer", ["", "ab"], ["xyz", ""]) == pytest.approx((3 + 2) / 3)  # may exceed 1


def test_cer_on_swedish_text_counts_characters_not_bytes_and_ignores_how_å_is_typed():
    assert compute("cer", ["hälsa"], ["halsa"]) == pytest.approx(1 / 5)
    assert compute("cer", ["smörgåsbord"], ["smorgasbord"]) == pytest.approx(2 / 11)
    decomposed = unicodedata.normalize("NFD", "Åsa äter öl")
    assert len(decomposed) > len("Åsa äter öl")
    assert compute("cer", [decomposed], ["Åsa äter öl"]) == 0.0


def test_levenshtein_agrees_with_the_textbook_recurrence():
    def textbook(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    alphabet = list("abåäö ")
    for _ in range(200):
        a, b = ("".join(RNG.choice(alphabet, size=RNG.integers(0, 9))) for _ in range(2))
        assert levenshtein(a, b) == textbook(a, b), (a, b)


def test_every_metric_says_what_it_is():
    for m in METRICS.values():
        assert m.fn.__doc__ and m.describe(k=3) and m.compares in ("classes", "values", "text")
    assert METRICS["top-k-accuracy"].describe(k=3) == "top-3 accuracy"


# --- what the student's outputs may look like ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "predicted", "target", "words"), [
    ("accuracy", [[0.1, np.nan], [0.3, 0.2]], [0, 1], "NaN or infinity (1 of 4 values)"),
    ("accuracy", [1, 0], [0, 1, 1], "expected one row of class scores per input (3 rows), got an array of shape (2,)"),
    ("accuracy", ["cat", "dog"], [0, 1], "expected numbers from the model, got text"),
    ("accuracy", [0.2, 0.7], [0, 1], "got fractions"),
    ("accuracy", [[0.2], [0.7]], [0, 1], "a score for each of the 2 classes, got 1 column"),
    ("top-k-accuracy", [0, 1], [0, 1], "needs one row of class scores per input"),
    ("mse", [[1.0, 2.0]], [[1.0], [2.0]], "same shape as the reference, (2, 1), got (1, 2)"),
    ("mse", [np.inf, 1.0], [1.0, 1.0], "NaN or infinity"),
    ("mse", [1e200, 1.0], [1.0, 1.0], "not a finite number"),
    ("cer", [1, 2], ["a", "b"], "one text string (str) per input, got values of type int"),
    ("cer", [b"a", b"b"], ["a", "b"], "got bytes"),
    ("cer", ["a"], ["a", "b"], "one text string per input (2 strings)"),
])
def test_unusable_outputs_are_the_students_and_say_what_was_expected(name, predicted, target, words):
    with pytest.raises(EvidenceMissing) as info:
        compute(name, predicted, target)
    assert info.value.student
    assert words in info.value.message


def test_a_column_is_accepted_for_one_value_per_input():
    assert compute("mse", [[1.0], [3.0]], [1.0, 1.0]) == 2.0


@pytest.mark.parametrize(("name", "predicted", "target"), [
    ("accuracy", [], []),
    ("accuracy", [0, 1], [0.5, 1.0]),  # the lab's labels, not the student's outputs
    ("top-k-accuracy", [[0.1, 0.9]], [1]),  # k=5 of 2 classes: the rubric asks the impossible
    ("cer", ["a"], [""]),
])
def test_problems_with_the_labs_data_are_not_the_students(name, predicted, target):
    with pytest.raises(EvidenceMissing) as info:
        compute(name, predicted, target)
    assert not info.value.student


# --- the criteria, as the grader sees them ---------------------------------------------------------------------


def test_accuracy_passes_and_fails_with_plain_messages():
    ev = evidence({"test": [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]}, {"test": [0, 1, 1, 1]})
    good = check("metric", ev, metric="accuracy", min=0.75)
    assert (good.status, good.value, good.threshold) == ("pass", 0.75, 0.75)
    assert good.message == "Accuracy on the hidden test set is 0.750 (95% interval 0.250-1.000; at least 0.75 needed)."
    assert good.details == {"metric": "accuracy", "split": "test", "measured": "Accuracy on the hidden test set",
                            "interval": [0.25, 1.0], "confidence": 0.95, "borderline": True, "policy": "review"}
    bad = check("metric", ev, metric="accuracy", min=0.9, borderline="as-is")
    assert bad.status == "fail" and bad.advice == IMPROVE
    assert bad.message == "Accuracy on the hidden test set is 0.750 (95% interval 0.250-1.000), below the 0.90 needed."
    unsure = check("metric", ev, metric="accuracy", min=0.9)  # four items cannot tell: a teacher decides
    assert unsure.status == "review"
    assert unsure.message.endswith("the interval holds the bar, so a teacher will decide.")


def test_the_accuracy_shorthand_is_the_accuracy_metric():
    ev = evidence({"train": SCORES}, {"train": LABELS})
    for bar in (0.1, 0.5, 0.9):
        short = check("accuracy", ev, split="train", min=bar)
        long = check("metric", ev, metric="accuracy", split="train", min=bar)
        assert short.model_dump(exclude={"kind"}) == long.model_dump(exclude={"kind"})
        assert short.kind == "accuracy"


def test_lower_is_better_metric_uses_max():
    target = np.zeros((4, 2))
    ev = evidence({"test": target + 0.1}, {"test": target})
    ok = check("metric", ev, metric="mse", max=0.02)
    assert ok.status == "pass" and ok.value == pytest.approx(0.01)
    assert ok.message == "Mean squared error on the hidden test set is 0.010 (at most 0.02 allowed)."
    bad = check("metric", ev, metric="mse", max=0.005)
    assert bad.status == "fail"
    assert bad.message == "Mean squared error on the hidden test set is 0.010, above the 0.005 allowed."


def test_reconstructions_are_compared_with_the_inputs():
    X = RNG.random((6, 2, 2))
    ev = evidence({"val": X}, inputs={"val": X})
    perfect = check("metric", ev, metric="psnr", target="inputs", split="val", min=30)
    assert perfect.status == "pass" and perfect.value == PSNR_CAP_DB
    assert perfect.message == "PSNR (dB) on the val set is 100.000 (at least 30.00 needed)."
    noisy = evidence({"val": X + 0.1}, inputs={"val": X})
    assert check("metric", noisy, metric="psnr", target="inputs", split="val", min=30).status == "fail"
    assert check("metric", noisy, metric="mse", target="inputs", split="val", max=0.02).status == "pass"


def test_cer_criterion_on_text_outputs():
    ev = evidence({"test": ["hej på dig", "tack så mycket"]}, {"test": ["hej på dig", "tack så mycke"]})
    r = check("metric", ev, metric="cer", max=0.1)
    assert r.status == "pass" and r.value == pytest.approx(1 / 23)
    assert r.message.startswith("Character error rate on the hidden test set is 0.043")


def test_review_margin_sends_near_misses_to_a_teacher_on_both_sides():
    ev = evidence({"test": [0, 1, 1, 1, 1, 1, 1, 1, 1, 0]}, {"test": [1] * 10})  # accuracy 0.8
    # borderline: as-is, so the review margin alone decides (ten items leave a wide interval, which under the
    # default policy would send both to a teacher: tests/test_bootstrap.py covers that)
    near = check("metric", ev, metric="accuracy", min=0.85, review_margin=0.05, borderline="as-is")
    assert near.status == "review" and BORDERLINE in near.message
    assert near.advice == DEFAULT_ADVICE["review"]
    assert check("metric", ev, metric="accuracy", min=0.86, review_margin=0.05, borderline="as-is").status == "fail"
    assert check("metric", ev, metric="accuracy", min=0.86, review_margin=0.05).status == "review"
    target = np.zeros(4)
    mse = evidence({"test": target + 0.2}, {"test": target})  # 0.04, the same for every item: a sure value
    assert check("metric", mse, metric="mse", max=0.035, review_margin=0.01).status == "review"
    assert check("metric", mse, metric="mse", max=0.025, review_margin=0.01).status == "fail"


def test_unusable_outputs_fail_with_advice_on_the_outputs():
    ev = evidence({"test": [[0.5, np.nan], [0.1, 0.2]]}, {"test": [0, 1]})
    r = check("accuracy", ev, min=0.5)
    assert r.status == "fail" and r.advice == OUTPUTS
    assert r.message == "Accuracy on the hidden test set: the model's outputs contain NaN or infinity (1 of 4 values)"
    assert check("accuracy", ev, min=0.5, on_fail="review").status == "review"
    text = check("metric", evidence({"test": [1.0, 2.0]}, {"test": ["a", "b"]}), metric="cer", max=0.1)
    assert text.status == "fail" and "expected one text string (str) per input, got values of type float" in \
        text.message


def test_missing_split_or_empty_labels_are_errors_of_the_course():
    assert check("accuracy", evidence({"train": [0]}, {"train": [0]}), min=0.5).status == "error"
    empty = check("accuracy", evidence({"test": np.zeros((0, 2))}, {"test": np.zeros(0, int)}), min=0.5)
    assert empty.status == "error" and "reference data for this split is empty" in empty.message
    assert empty.advice == DEFAULT_ADVICE["error"]


def test_gap_on_accuracy_reads_as_overfitting():
    train, test = [1] * 100, [1] * 81 + [0] * 19
    ev = evidence({"train": [1] * 100, "test": [1] * 100}, {"train": train, "test": test})
    r = check("generalization-gap", ev, max=0.1)
    assert r.status == "fail" and r.value == pytest.approx(0.19) and r.threshold == 0.1
    assert r.message == ("Overfitting: accuracy 1.000 on the training data, 0.810 on unseen data (the hidden test "
                         "set), a gap of 0.190 (95% interval 0.120-0.270) where at most 0.10 is allowed.")
    assert r.advice == REGULARISE
    assert r.details["train_accuracy"] == 1.0 and r.details["test_accuracy"] == pytest.approx(0.81)
    assert r.details | {"splits": None, "interval": None} == {
        "metric": "accuracy", "train": 1.0, "test": pytest.approx(0.81), "train_accuracy": 1.0,
        "test_accuracy": pytest.approx(0.81), "splits": None, "interval": None, "confidence": 0.95,
        "borderline": False, "policy": "review",
        "measured": "The gap between accuracy on the training data and on the hidden test set"}
    ok = check("generalization-gap", ev, max=0.2)
    assert ok.status == "pass" and ok.message == (
        "No sign of overfitting: accuracy 1.000 on the training data and 0.810 on the hidden test set, "
        "a gap of 0.190 (95% interval 0.120-0.270; at most 0.20).")
    near = check("generalization-gap", ev, max=0.15, review_margin=0.05, borderline="as-is")
    assert near.status == "review" and BORDERLINE in near.message


def test_gap_of_a_lower_is_better_metric_is_test_minus_train():
    target = np.zeros(10)
    ev = evidence({"val": target + 0.1, "test": target + 0.3}, {"val": target, "test": target})  # 0.01, 0.09
    r = check("generalization-gap", ev, metric="mse", train="val", max=0.05)
    assert r.status == "fail" and r.value == pytest.approx(0.08)
    assert r.details["metric"] == "mse" and "train_accuracy" not in r.details
    assert r.message.startswith("Overfitting: mean squared error 0.010 on the val set, 0.090 on unseen data")
    better_on_test = evidence({"val": target + 0.3, "test": target + 0.1}, {"val": target, "test": target})
    r = check("generalization-gap", better_on_test, metric="mse", train="val", max=0.05)
    assert r.status == "pass" and r.value == pytest.approx(-0.08)


def test_gap_of_psnr_is_train_minus_test():
    X = RNG.random((4, 3))
    ev = evidence({"train": X, "test": X + 0.1}, inputs={"train": X, "test": X})
    r = check("generalization-gap", ev, metric="psnr", target="inputs", max=50)
    assert r.status == "fail" and r.value == pytest.approx(PSNR_CAP_DB - 20)


# --- the rubric fields -----------------------------------------------------------------------------------------


def spec_error(model, **fields) -> str:
    with pytest.raises(ValidationError) as info:
        model(id="c", **fields)
    return info.value.errors()[0]["msg"]


def test_unknown_metric_lists_the_known_ones():
    message = spec_error(MetricSpec, kind="metric", metric="acuracy", min=0.5)
    assert "unknown metric 'acuracy'" in message
    assert all(name in message for name in METRICS)
    assert "unknown metric" in spec_error(GapSpec, kind="generalization-gap", metric="f1", max=0.1)


def test_exactly_one_bar_in_the_right_direction():
    assert "exactly one of `min` and `max`" in spec_error(MetricSpec, kind="metric", metric="mse")
    assert "exactly one of" in spec_error(MetricSpec, kind="metric", metric="accuracy", min=0.5, max=0.9)
    assert "give `max`" in spec_error(MetricSpec, kind="metric", metric="cer", min=0.1)
    assert "give `min`" in spec_error(MetricSpec, kind="metric", metric="macro-f1", max=0.1)
    assert "outside the range" in spec_error(MetricSpec, kind="metric", metric="accuracy", min=75)
    assert "use target: labels" in spec_error(MetricSpec, kind="metric", metric="accuracy", target="inputs", min=0.5)
    assert "larger gap" in spec_error(GapSpec, kind="generalization-gap", max=1.5)
    assert GapSpec(id="c", kind="generalization-gap", metric="psnr", max=5).max == 5


def bad_metric_in_rubric(course) -> ConfigError:
    path = course / "rubrics" / "toy.yaml"
    data = yaml.safe_load(path.read_text())
    data["criteria"][1] = {"id": "test-accuracy", "kind": "metric", "metric": "top5", "min": 0.5}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    return info.value


def test_a_bad_metric_in_a_rubric_file_lists_the_known_ones(course):
    err = bad_metric_in_rubric(course)
    assert err.field.startswith("criteria[1]") and "known metrics: accuracy," in err.problem


def test_a_bad_metric_in_a_rubric_file_names_the_field(course):
    assert bad_metric_in_rubric(course).field == "criteria[1].metric"


def test_split_names_are_checked_against_the_lab(course):
    path = course / "rubrics" / "toy.yaml"
    data = yaml.safe_load(path.read_text())
    data["criteria"][2] = {"id": "gap", "kind": "generalization-gap", "metric": "balanced-accuracy", "max": 0.1,
                           "train": "val"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_lab("toy", course)
    assert info.value.field == "criteria[2].train"


def test_metrics_can_be_imported_first():
    code = ("import autograder.criteria.analysis.metrics as m, autograder.criteria as c; "
            "assert 'metric' in c.CRITERIA and m.METRICS")
    subprocess.run([sys.executable, "-c", code], check=True)
