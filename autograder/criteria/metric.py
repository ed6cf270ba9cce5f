"""A metric on a split against a bar, and the generalization gap between two splits, both computed by the
judge from probe outputs with a metric from autograder.criteria.analysis.metrics.

Each value comes with its 95% bootstrap interval over the split's items (analysis/bootstrap.py). A fail
whose interval holds the bar, or whose value is within the rubric's `borderline.margin` of it, is not
sure: one training run is one draw, and another seed may land on the other side. The rubric's
`borderline.policy` says what then happens: `review` (a teacher decides), `rerun` (the pipeline runs the
notebook again with other seeds and `judge_runs` judges the median), or `as-is` (judged as measured).
A pass is a pass, borderline or not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from autograder.criteria import register
from autograder.criteria.analysis import bootstrap
from autograder.criteria.analysis import metrics as registry  # the module, not its names: it imports this package first
from autograder.criteria.base import (
    BORDERLINE,
    DEFAULT_ADVICE,
    BorderlinePolicy,
    Criterion,
    CriterionSpec,
    Evidence,
    EvidenceMissing,
    LabProblem,
    Reference,
    ThresholdSpec,
    within,
)
from autograder.results import CriterionResult, Status

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


class BorderlineSpec(ThresholdSpec):
    """A measured bar: what to do when the measurement cannot tell which side of it the model is on."""

    borderline: BorderlinePolicy = Field(
        default_factory=BorderlinePolicy, description="What happens to a fail whose 95% interval holds the bar, "
        "or that is within `margin` of it: review (the default), rerun or as-is.")

    @model_validator(mode="after")
    def _margin_fits(self):
        """A margin so wide that most values are borderline would send every submission to a teacher."""
        margin, measured = self.borderline.margin, getattr(self, "measured", None)
        bars = [b for b in (getattr(self, "min", None), getattr(self, "max", None)) if b is not None]
        if not margin or measured is None or len(bars) != 1:
            return self
        low, high = measured().bounds
        widest = 0.1 * (high - low) if math.isfinite(high - low) else abs(bars[0])
        if margin > widest:
            raise ValueError(f"borderline.margin {margin:g} would make every value within {margin:g} of the bar "
                             f"borderline; at most {widest:g} here (a margin is a measurement's noise, e.g. 0.005 "
                             "for accuracy)")
        return self

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        if self.borderline.policy == "rerun" and getattr(lab.spec, "seed_parameter", None) is None:
            yield LabProblem("borderline.policy", "is rerun, which runs the notebook again with other seeds, but "
                             "lab.yaml names no seed parameter (`seed_parameter`)",
                             "add `seed_parameter: <name>` to lab.yaml, naming the one of its `parameters` that "
                             "seeds training, or use `policy: review`")


class MeasureSpec(Measures, BorderlineSpec):
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


class AccuracySpec(Measures, BorderlineSpec):
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
    return measure_items(evidence, spec, split, itemise=False)[0]


def measure_items(evidence: Evidence, spec: MeasureSpec | AccuracySpec, split: str,
                  itemise: bool = True) -> tuple[float, registry.Items | None]:
    """measure(), with what the value is made of item by item (for its interval)."""
    outputs = evidence.probes.get(spec.probe)
    if split not in outputs:
        raise EvidenceMissing(f"probe {spec.probe!r} gave no output for the {split!r} split", student=False)
    try:
        return spec.measured().measure(outputs[split], _target(evidence, spec, split), itemise=itemise, k=spec.k,
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


@dataclass(frozen=True)
class Bar:
    """A criterion's bar and which side of it passes (`upper`: at most the bar; else at least)."""

    value: float
    upper: bool

    def passes(self, x: float) -> bool:
        return x <= self.value if self.upper else x >= self.value

    def past(self, x: float) -> float:
        """How far `x` lies on the failing side (negative when it passes)."""
        return x - self.value if self.upper else self.value - x

    def held_by(self, interval: tuple[float, float] | list[float] | None) -> bool:
        return interval is not None and interval[0] <= self.value <= interval[1]


def judge(spec: BorderlineSpec, bar: Bar, value: float,
          interval: tuple[float, float] | None) -> tuple[Status, dict[str, Any]]:
    """The status of `value` against `bar` under the rubric's review margin and borderline policy, and the
    details that say how sure it is: interval, confidence, borderline, policy, and for a fail that is not
    sure, `uncertain` (why, student-safe) and, under `rerun`, `rerun_wanted`."""
    policy = spec.borderline
    status = spec.status(bar.passes(value), bar.past(value))
    near = within(abs(value - bar.value), policy.margin)
    details: dict[str, Any] = {"interval": list(interval) if interval is not None else None,
                               "confidence": bootstrap.CONFIDENCE, "borderline": near or bar.held_by(interval),
                               "policy": policy.policy}
    if status != "pass" and details["borderline"] and policy.policy != "as-is":
        details["uncertain"] = uncertain(bar, value, interval, policy.margin)
        if policy.policy == "rerun":
            details["rerun_wanted"] = True
        status = "review"
    return status, details


def uncertain(bar: Bar, value: float, interval: tuple[float, float] | list[float] | None, margin: float) -> str:
    """Why a value is not a sure fail, in words a student reads: its interval holds the bar, or it is
    within the rubric's borderline margin of it."""
    if bar.held_by(interval):
        assert interval is not None
        return f"the 95% interval {span(interval, bar.value)} holds the bar {_bar(bar.value)}"
    return f"{_value(value, bar.value)} is within the rubric's borderline margin ({margin:g}) of the bar " \
           f"{_bar(bar.value)}"


def _interval_text(interval: tuple[float, float] | list[float] | None, bar: float) -> str:
    """'95% interval 0.729-0.767', or '' where there is none or every resample gave the same value."""
    if interval is None or interval[0] == interval[1]:
        return ""
    return f"95% interval {span(interval, bar)}"


def _with(shown: str, interval: tuple[float, float] | list[float] | None, bar: float) -> str:
    """'0.748 (95% interval 0.729-0.767)', or the value alone where there is no interval to show."""
    text = _interval_text(interval, bar)
    return f"{shown} ({text})" if text else shown


def _then(details: dict[str, Any]) -> str:
    """What happens to a borderline fail, ending its message."""
    held = details["uncertain"].startswith("the 95% interval")
    why = "the interval holds the bar" if held else "that is within the rubric's borderline margin"
    if details.get("rerun_wanted"):
        return f"{why}, so the notebook is run again with other seeds"
    return f"{why}, so a teacher will decide"


@register
class MetricCriterion(Criterion):
    """A metric on one split must reach `min` (higher is better) or stay under `max` (lower is better)."""

    kind = "metric"
    Spec: ClassVar[type[MetricSpec] | type[AccuracySpec]] = MetricSpec
    spec: MetricSpec | AccuracySpec
    advice = {"fail": IMPROVE}

    def bar(self) -> Bar:
        s = self.spec
        if s.max is None:
            assert s.min is not None  # a spec gives exactly one of min and max
            return Bar(s.min, upper=False)
        return Bar(s.max, upper=True)

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        try:
            value, items = measure_items(evidence, s, s.split)
        except BadOutputs as bad:
            return self.result("fail", _capital(str(bad)), advice=OUTPUTS, metric=s.metric, split=s.split)
        bar = self.bar()
        where, name = _split_name(evidence, s.split), _capital(s.describe())
        side, needs = ("above", "allowed") if bar.upper else ("below", "needed")
        interval = bootstrap.interval(items)
        status, details = judge(s, bar, value, interval)
        shown, limit = _value(value, bar.value), _bar(bar.value)
        measured = f"{name} on {where}"
        if "uncertain" in details:
            message = f"{measured} is {_with(shown, interval, bar.value)}, {side} the {limit} {needs}; " \
                      f"{_then(details)}."
        else:
            spread = f"{text}; " if (text := _interval_text(interval, bar.value)) else ""
            message = {
                "pass": f"{measured} is {shown} ({spread}{'at most' if bar.upper else 'at least'} {limit} {needs}).",
                "review": f"{measured} is {_with(shown, interval, bar.value)}, {side} the {limit} {needs} but "
                          f"{BORDERLINE}.",
                "fail": f"{measured} is {_with(shown, interval, bar.value)}, {side} the {limit} {needs}.",
            }[status]
        return self.result(status, message, value, bar.value, metric=s.metric, split=s.split, measured=measured,
                           **details)


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

    def bar(self) -> Bar:
        return Bar(self.spec.max, upper=True)

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        try:
            (train, train_items), (test, test_items) = measure_items(evidence, s, s.train), \
                measure_items(evidence, s, s.test)
        except BadOutputs as bad:
            return self.result("fail", _capital(str(bad)), advice=OUTPUTS, metric=s.metric)
        higher = s.measured().higher_is_better
        gap = train - test if higher else test - train
        # Both splits resampled independently: each is a sample, and the gap carries the chance of both.
        interval = bootstrap.difference(train_items, test_items) if higher else \
            bootstrap.difference(test_items, train_items)
        details: dict[str, Any] = {"metric": s.metric, "train": train, "test": test, "splits": [s.train, s.test]}
        if s.metric == "accuracy":
            details |= {"train_accuracy": train, "test_accuracy": test}
        seen = "the training data" if s.train == "train" else _split_name(evidence, s.train)
        unseen = _split_name(evidence, s.test)
        name, bar = s.describe(), _bar(s.max)
        scores = f"{name} {_value(train)} on {seen}"
        status, judged = judge(s, self.bar(), gap, interval)
        details |= judged
        details["measured"] = f"The gap between {name} on {seen} and on {unseen}"
        shown = _with(_value(gap, s.max), interval, s.max)
        if "uncertain" in judged:
            message = f"Possible overfitting: {scores}, {_value(test)} on unseen data ({unseen}), a gap of {shown}, " \
                      f"above the {bar} allowed; {_then(judged)}."
        else:
            spread = f"{text}; " if (text := _interval_text(interval, s.max)) else ""
            message = {
                "pass": f"No sign of overfitting: {scores} and {_value(test)} on {unseen}, "
                        f"a gap of {_value(gap, s.max)} ({spread}at most {bar}).",
                "review": f"Possible overfitting: {scores}, {_value(test)} on unseen data ({unseen}), "
                          f"a gap of {shown}, above the {bar} allowed but {BORDERLINE}.",
                "fail": f"Overfitting: {scores}, {_value(test)} on unseen data ({unseen}), "
                        f"a gap of {shown} where at most {bar} is allowed.",
            }[status]
        return self.result(status, message, gap, s.max, **details)


class RunValue(BaseModel):
    """One run of a borderline submission's notebook (the first included) and what it measured."""

    seed: int
    value: float | None = Field(None, description="The criterion's value in this run; None where it gave none.")
    interval: list[float] | None = None
    status: str = Field(description="The criterion's status in this run, or why the run gave no value.")
    message: str = ""
    stages: dict[str, str] = Field(default_factory=dict, description="stage name -> key of its cached output.")


def judge_runs(criterion: Criterion, first: CriterionResult, runs: list[RunValue]) -> CriterionResult:
    """The criterion judged on the median of several runs' values (under `borderline.policy: rerun`).

    `first` is its result on the first run (a `review` with `rerun_wanted`); `runs` holds every run, the
    first included. The median decides pass or fail against the bar (the review margin still applies);
    the result keeps the first's details, with `runs` (the RunValue dumps), `median`, and `interval`
    and `borderline` of the run nearest the median. With fewer than two runs that gave a value it stays
    `review`, with `uncertain` saying so. The values of the student's own runs are shown: nothing beyond
    a value and its interval.
    """
    assert isinstance(criterion, (MetricCriterion, GeneralizationGap)), "judge_runs judges measured criteria"
    spec = criterion.spec
    bar = criterion.bar()
    dumps = [r.model_dump() for r in runs]
    valued = [r for r in runs if r.value is not None and math.isfinite(r.value)]
    details = {k: v for k, v in first.details.items() if k not in ("rerun_wanted", "uncertain", "failed")}
    details |= {"runs": dumps}
    measured = str(details.get("measured") or _capital(criterion.spec.title or criterion.spec.id))
    seeds = ", ".join(str(r.seed) for r in runs)
    if len(valued) < 2:
        details["uncertain"] = (f"only {len(valued)} of {len(runs)} runs (seeds {seeds}) gave a value, too few "
                                "to judge by")
        message = f"{measured} could be measured in only {len(valued)} of {len(runs)} runs with other seeds; " \
                  "a teacher will decide."
        result = criterion.result("review", message, first.value, first.threshold, **details)
    else:
        median = float(np.median([r.value for r in valued]))
        nearest = min(valued, key=lambda r: abs(float(r.value or 0) - median))
        status = spec.status(bar.passes(median), bar.past(median))
        details |= {"median": median, "interval": nearest.interval, "borderline": bar.held_by(nearest.interval)}
        values = ", ".join(f"{_value(float(r.value or 0), bar.value)} (seed {r.seed})" for r in valued)
        missed = f"; {len(runs) - len(valued)} run(s) gave no value" if len(valued) < len(runs) else ""
        verb = ("at most" if bar.upper else "at least") if status == "pass" else ("above" if bar.upper else "below")
        needs = "allowed" if bar.upper else "needed"
        tail = {"pass": f"{verb} {_bar(bar.value)} {needs}",
                "review": f"{verb} the {_bar(bar.value)} {needs} but {BORDERLINE}",
                "fail": f"{verb} the {_bar(bar.value)} {needs}"}[status]
        message = f"{measured} is {_value(median, bar.value)}, the median of {len(valued)} runs with different " \
                  f"seeds ({values}{missed}); {tail}."
        result = criterion.result(status, message, median, bar.value, **details)
    if result.status == "fail" and spec.on_fail == "review":
        result.status = "review"
        result.details.setdefault("failed", True)
    result.advice = criterion.advice.get(result.status) or DEFAULT_ADVICE[result.status]
    return result


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


def span(interval: tuple[float, float] | list[float], bar: float) -> str:
    """An interval's ends with as many decimals as tell them apart from each other and from the bar
    (3 to 6): '0.729-0.767'."""
    low, high = float(interval[0]), float(interval[1])
    for decimals in range(3, 7):
        a, b = f"{low:.{decimals}f}", f"{high:.{decimals}f}"
        if a != b and (float(a) == bar) == (low == bar) and (float(b) == bar) == (high == bar):
            break
    if max(abs(low), abs(high)) < 0.001 and (low, high) != (0, 0):
        a, b = f"{low:.3g}", f"{high:.3g}"
    return f"{a} to {b}" if low < 0 else f"{a}-{b}"
