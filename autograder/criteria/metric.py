"""A metric on a split against a bar, and the generalization gap between two splits, both computed by the
judge from probe outputs with a metric from autograder.criteria.analysis.metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field, field_validator, model_validator

from autograder.criteria import register
from autograder.criteria.analysis import metrics as registry  # the module, not its names: it imports this package first
from autograder.criteria.base import (
    BORDERLINE,
    Criterion,
    CriterionSpec,
    Evidence,
    EvidenceMissing,
    LabProblem,
    Reference,
    ThresholdSpec,
)
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from autograder.labs.lab import Lab

IMPROVE = "Improve the model (architecture, training length, learning rate) and check it on the validation set " \
          "before handing in."
REGULARISE = "Try regularisation such as dropout, data augmentation, weight decay or early stopping, or a smaller " \
             "model."
OUTPUTS = "Make your exported objects return what the notebook asks for (one row per input, numbers without NaN) " \
          "and try them on the validation set before handing in."


class _Named(Protocol):
    """What Measures needs of the spec it is mixed into."""

    @property
    def metric(self) -> str: ...

    @property
    def k(self) -> int: ...

    def measured(self) -> registry.Metric: ...


class Measures:
    """What MeasureSpec and AccuracySpec share: the metric they name (`metric`, `k`), looked up in the registry."""

    def measured(self: _Named) -> registry.Metric:
        return registry.METRICS[self.metric]

    def describe(self: _Named) -> str:
        """The metric in plain words, e.g. `top-5 accuracy`."""
        return self.measured().describe(k=self.k)


def label_problems(spec: CriterionSpec, target: str, lab: Lab) -> Iterator[LabProblem]:
    """A metric against labels on a split whose file holds inputs only (no y), named with the file."""
    if target != "labels":
        return
    for ref in spec.references():
        if ref.kind == "split" and ref.name in lab.spec.splits and not lab.has_labels(ref.name):
            path = lab.split_path(ref.name)
            yield LabProblem(ref.field, f"measures against the labels of split {ref.name!r}, but {path} holds no "
                             "labels (no array y)", f"add y to {path.name}, or measure on a split that has labels")


class MeasureSpec(Measures, ThresholdSpec):
    """What to measure: a registered metric of a probe's output against the split's labels or inputs."""

    metric: str = Field("accuracy", description=(
        "A metric name; `autograder.criteria.analysis.metrics.METRICS` lists them."))
    probe: str = Field("scores", description="Probe whose output holds the predictions per split.")
    target: Literal["labels", "inputs"] = Field(
        "labels", description="Compare with the split's labels y, or with its inputs X (reconstructions).")
    k: int = Field(5, ge=1, description="For top-k-accuracy: how many of the highest scores may hold the answer.")
    data_range: float = Field(1.0, gt=0, description="For psnr: max minus min of the possible values (1 or 255).")
    input_scale: float = Field(1.0, gt=0, description="For target: inputs: X is divided by this before the comparison, "
                               "e.g. 255 where X holds uint8 pixels and the model's outputs are in [0, 1].")

    def references(self) -> list[Reference]:
        return [Reference("probe", "probe", self.probe)]

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        yield from label_problems(self, self.target, lab)

    @field_validator("metric")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in registry.METRICS:
            raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(registry.METRICS))}")
        return name

    @model_validator(mode="after")
    def _target_fits(self):
        m = registry.METRICS[self.metric]
        if self.target == "inputs" and m.compares != "values":
            values = ", ".join(sorted(n for n, v in registry.METRICS.items() if v.compares == "values"))
            raise ValueError(f"target: inputs compares the outputs with the inputs X, which only these metrics "
                             f"do: {values}; {self.metric} compares with the labels: use target: labels")
        if self.target != "inputs" and self.input_scale != 1:
            raise ValueError("input_scale divides the inputs X, which only target: inputs compares with; remove it")
        return self


class MetricSpec(MeasureSpec):
    """A metric on one split against a bar: `min` where higher is better, `max` where lower is."""

    kind: Literal["metric"]
    metric: str = Field(description="A metric name; `autograder.criteria.analysis.metrics.METRICS` lists them.")
    split: str = Field("test", description="Split to measure on; usually the hidden test set.")
    min: float | None = Field(None, description="Lowest value that passes, for metrics where higher is better.")
    max: float | None = Field(None, description="Highest value that passes, for metrics where lower is better.")

    def references(self) -> list[Reference]:
        return [*super().references(), Reference("split", "split", self.split)]

    @model_validator(mode="after")
    def _one_bar(self):
        m = self.measured()
        if (self.min is None) == (self.max is None):
            raise ValueError(f"give exactly one of `min` and `max`: `{'min' if m.higher_is_better else 'max'}` "
                             f"for {m.name}, where {'higher' if m.higher_is_better else 'lower'} is better")
        if (self.min is not None) != m.higher_is_better:
            given, bar, most = ("max", "min", "lowest") if m.higher_is_better else ("min", "max", "highest")
            raise ValueError(f"{m.name} is better when {'higher' if m.higher_is_better else 'lower'}: give `{bar}` "
                             f"(the {most} {self.describe()} that passes) instead of `{given}`")
        bar, value = ("min", self.min) if self.min is not None else ("max", self.max)
        assert value is not None  # exactly one of the two is given, as checked above
        low, high = m.bounds
        if not low <= value <= high:
            raise ValueError(f"`{bar}: {value}` is outside the range of {m.name}, {low:g} to {high:g}")
        return self


class AccuracySpec(Measures, ThresholdSpec):
    """Shorthand for `kind: metric` with `metric: accuracy`."""

    kind: Literal["accuracy"]
    probe: str = Field("scores", description="Probe whose output holds class scores per split.")
    split: str = Field("test", description="Split to measure on; usually the hidden test set.")
    min: float = Field(ge=0, le=1, description="Lowest accuracy that passes.")
    # What a MetricSpec says in fields, fixed here; the criterion reads both alike.
    metric: ClassVar[str] = "accuracy"
    target: ClassVar[str] = "labels"
    k: ClassVar[int] = 5
    data_range: ClassVar[float] = 1.0
    input_scale: ClassVar[float] = 1.0
    max: ClassVar[None] = None

    def references(self) -> list[Reference]:
        return [Reference("probe", "probe", self.probe), Reference("split", "split", self.split)]

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        yield from label_problems(self, self.target, lab)


def measure(evidence: Evidence, spec: MeasureSpec | AccuracySpec, split: str) -> float:
    """The spec's metric on one split; the student's outputs being unusable raises BadOutputs, other missing
    evidence EvidenceMissing."""
    outputs = evidence.probes.get(spec.probe)
    if split not in outputs:
        raise EvidenceMissing(f"probe {spec.probe!r} gave no output for the {split!r} split", student=False)
    try:
        return spec.measured().compute(outputs[split], _target(evidence, spec, split), k=spec.k,
                                       data_range=spec.data_range)
    except EvidenceMissing as missing:
        message = f"{spec.describe()} on {_split_name(evidence, split)}: {missing.message}"
        if missing.student:
            raise BadOutputs(message) from missing
        raise EvidenceMissing(message, student=False) from missing


class BadOutputs(Exception):
    """The student's outputs cannot be measured; a failure with advice on the outputs, not on the model."""


def _target(evidence: Evidence, spec: MeasureSpec | AccuracySpec, split: str) -> np.ndarray:
    if spec.target == "inputs":
        X = evidence.lab.split(split)[0]
        return X if spec.input_scale == 1 else np.asarray(X, dtype=np.float64) / spec.input_scale
    if split not in evidence.labels:
        raise EvidenceMissing(f"the lab has no labels for the {split!r} split", student=False)
    return evidence.labels[split]


@register
class MetricCriterion(Criterion):
    """A metric on one split must reach `min` (higher is better) or stay under `max` (lower is better)."""

    kind = "metric"
    Spec: ClassVar[type[MetricSpec] | type[AccuracySpec]] = MetricSpec
    spec: MetricSpec | AccuracySpec
    advice = {"fail": IMPROVE}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        try:
            value = measure(evidence, s, s.split)
        except BadOutputs as bad:
            return self.result("fail", _capital(str(bad)), advice=OUTPUTS, metric=s.metric, split=s.split)
        where, name = _split_name(evidence, s.split), _capital(s.describe())
        if s.max is None:
            bar, side, needs = s.min, "below", "needed"
            assert bar is not None  # a spec gives exactly one of min and max
            status = s.status(value >= bar, bar - value)
        else:
            bar, side, needs = s.max, "above", "allowed"
            status = s.status(value <= bar, value - bar)
        shown, limit = _value(value, bar), _bar(bar)
        message = {
            "pass": f"{name} on {where} is {shown} ({'at least' if s.max is None else 'at most'} {limit} {needs}).",
            "review": f"{name} on {where} is {shown}, {side} the {limit} {needs} but {BORDERLINE}.",
            "fail": f"{name} on {where} is {shown}, {side} the {limit} {needs}.",
        }[status]
        return self.result(status, message, value, bar, metric=s.metric, split=s.split)


@register
class Accuracy(MetricCriterion):
    """`kind: accuracy`, the shorthand the first rubrics use."""

    kind = "accuracy"
    Spec = AccuracySpec


class GapSpec(MeasureSpec):
    """How much worse the metric is on `test` than on `train`; a large gap means overfitting."""

    kind: Literal["generalization-gap"]
    train: str = Field("train", description="The split the student trained on (or `val`).")
    test: str = Field("test", description="The held-out split, usually hidden.")

    def references(self) -> list[Reference]:
        return [*super().references(), Reference("train", "split", self.train), Reference("test", "split", self.test)]
    max: float = Field(ge=0, description="Largest gap that passes, measured as how much worse `test` is than "
                       "`train` (train minus test where higher is better, test minus train where lower is).")

    @model_validator(mode="after")
    def _gap_in_range(self):
        low, high = self.measured().bounds
        if self.max > high - low:
            raise ValueError(f"`max: {self.max}` is a larger gap than {self.metric} can show (at most {high - low:g})")
        return self


@register
class GeneralizationGap(Criterion):
    """Overfitting shows as a model clearly worse on unseen data than on the data it trained on."""

    kind = "generalization-gap"
    Spec = GapSpec
    spec: GapSpec
    advice = {"fail": REGULARISE}

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        try:
            train, test = measure(evidence, s, s.train), measure(evidence, s, s.test)
        except BadOutputs as bad:
            return self.result("fail", _capital(str(bad)), advice=OUTPUTS, metric=s.metric)
        gap = train - test if s.measured().higher_is_better else test - train
        details: dict[str, Any] = {"metric": s.metric, "train": train, "test": test, "splits": [s.train, s.test]}
        if s.metric == "accuracy":
            details |= {"train_accuracy": train, "test_accuracy": test}
        seen = "the training data" if s.train == "train" else _split_name(evidence, s.train)
        unseen = _split_name(evidence, s.test)
        name, bar = s.describe(), _bar(s.max)
        scores = f"{name} {_value(train)} on {seen}"
        status = s.status(gap <= s.max, gap - s.max)
        message = {
            "pass": f"No sign of overfitting: {scores} and {_value(test)} on {unseen}, "
                    f"a gap of {_value(gap, s.max)} (at most {bar}).",
            "review": f"Possible overfitting: {scores}, {_value(test)} on unseen data ({unseen}), "
                      f"a gap of {_value(gap, s.max)}, above the {bar} allowed but {BORDERLINE}.",
            "fail": f"Overfitting: {scores}, {_value(test)} on unseen data ({unseen}), "
                    f"a gap of {_value(gap, s.max)} where at most {bar} is allowed.",
        }[status]
        return self.result(status, message, gap, s.max, **details)


def _split_name(evidence: Evidence, split: str) -> str:
    return evidence.lab.split_label(split)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _bar(bar: float) -> str:
    """A threshold as the rubric wrote it, with at least two decimals: 0.90, 0.025, 30.00."""
    for decimals in range(2, 7):
        if float(f"{bar:.{decimals}f}") == bar:
            return f"{bar:.{decimals}f}"
    return f"{bar:.4g}"


def _value(value: float, bar: float | None = None) -> str:
    """A measurement with three decimals, or more where three would round it onto the bar it missed."""
    for decimals in range(3, 7):
        shown = f"{value:.{decimals}f}"
        if bar is None or (float(shown) == bar) == (value == bar):
            break
    if value != 0 and abs(value) < 0.001:
        return f"{value:.3g}"
    return shown
