"""Accuracy on a split and the generalization gap, both computed by the judge from probe outputs."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from autograder.criteria import register
from autograder.criteria.base import BORDERLINE, Criterion, Evidence, EvidenceMissing, ThresholdSpec
from autograder.results import CriterionResult


def predicted_classes(scores: np.ndarray, n: int, what: str) -> np.ndarray:
    """Class indices from scores (n, k) or labels (n,); shape errors are the student's, said plainly."""
    scores = np.asarray(scores)
    if scores.ndim == 2 and scores.shape[0] == n:
        if not np.issubdtype(scores.dtype, np.number):
            raise EvidenceMissing(f"{what}: the model's outputs are not numbers", student=True)
        if not np.all(np.isfinite(scores)):
            raise EvidenceMissing(f"{what}: the model's outputs contain NaN or infinity", student=True)
        return scores.argmax(axis=1)
    if scores.ndim == 1 and scores.shape[0] == n:
        return scores
    raise EvidenceMissing(
        f"{what}: expected one row of class scores per input ({n} rows), got an array of shape {scores.shape}",
        student=True,
    )


def accuracy(evidence: Evidence, probe: str, split: str) -> float:
    outputs = evidence.probes.get(probe)
    if split not in outputs:
        raise EvidenceMissing(f"probe {probe!r} gave no output for the {split!r} split", student=False)
    labels = evidence.labels[split]
    predicted = predicted_classes(outputs[split], len(labels), f"on the {split} split")
    return float(np.mean(predicted == labels))


class AccuracySpec(ThresholdSpec):
    kind: Literal["accuracy"]
    probe: str = Field("scores", description="Probe whose output holds class scores per split.")
    split: str = Field("test", description="Split to measure on; usually the hidden test set.")
    min: float = Field(ge=0, le=1, description="Lowest accuracy that passes.")


@register
class Accuracy(Criterion):
    kind = "accuracy"
    Spec = AccuracySpec
    spec: AccuracySpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        acc = accuracy(evidence, s.probe, s.split)
        where = _split_name(evidence, s.split)
        status = s.status(acc >= s.min, s.min - acc)
        message = {
            "pass": f"Accuracy on {where} is {acc:.3f} (at least {s.min:.2f} needed).",
            "review": f"Accuracy on {where} is {acc:.3f}, below the {s.min:.2f} needed but {BORDERLINE}.",
            "fail": f"Accuracy on {where} is {acc:.3f}, below the {s.min:.2f} needed.",
        }[status]
        return self.result(status, message, acc, s.min)


class GapSpec(ThresholdSpec):
    kind: Literal["generalization-gap"]
    probe: str = "scores"
    train: str = Field("train", description="The split the student trained on.")
    test: str = Field("test", description="The held-out split, usually hidden.")
    max: float = Field(ge=0, le=1, description="Largest train-minus-test accuracy that passes.")


@register
class GeneralizationGap(Criterion):
    """Overfitting shows as train accuracy well above held-out accuracy."""

    kind = "generalization-gap"
    Spec = GapSpec
    spec: GapSpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        train = accuracy(evidence, s.probe, s.train)
        test = accuracy(evidence, s.probe, s.test)
        gap = train - test
        details = {"train_accuracy": train, "test_accuracy": test}
        where = _split_name(evidence, s.test)
        text = f"accuracy {train:.3f} on the training data and {test:.3f} on {where}, a gap of {gap:.3f}"
        status = s.status(gap <= s.max, gap - s.max)
        message = {
            "pass": f"Generalization gap is fine: {text} (at most {s.max:.2f}).",
            "review": f"The model may overfit: {text}, above the {s.max:.2f} allowed but {BORDERLINE}.",
            "fail": f"The model overfits: {text}, above the {s.max:.2f} allowed "
                    "(regularisation, a smaller network or early stopping may help).",
        }[status]
        return self.result(status, message, gap, s.max, **details)


def _split_name(evidence: Evidence, split: str) -> str:
    hidden = evidence.lab.spec.splits.get(split) == "hidden"
    return f"the hidden {split} set" if hidden else f"the {split} set"
