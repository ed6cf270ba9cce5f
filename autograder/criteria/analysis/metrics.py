"""One registry of the metrics rubrics may name, computed by the judge in NumPy from probe outputs.

A metric checks its inputs before measuring: a wrong shape, text where numbers belong, NaN or infinity
in the outputs is the student's doing and raises EvidenceMissing(student=True) saying what was expected
and what was got; a problem with the lab's own reference data (empty split, non-integer labels) is
the course's, raised with student=False.

Each metric also says what it is made of item by item (`Counts` or `Means`, its `items` hook), which is
what `bootstrap.py` resamples to give the value's confidence interval.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from autograder.criteria.base import EvidenceMissing

Compares = Literal["classes", "values", "text"]

PSNR_CAP_DB = 100.0  # what a perfect reconstruction scores: finite, so results stay valid JSON and gaps subtract


@dataclass(frozen=True)
class Counts:
    """A metric as a function of how many items fall in each of K categories (accuracy: hit or miss;
    macro-F1: the cells of the confusion matrix), so resampling the items is a multinomial draw of counts."""

    counts: np.ndarray  # (K,) items per category, only categories that occur
    of_counts: Callable[[np.ndarray], np.ndarray]  # (B, K) counts -> (B,) values; nan where undefined


@dataclass(frozen=True)
class Means:
    """A metric as a function of the means of per-item columns (mse: each item's mean squared error; cer:
    each item's edit distance and reference length), so resampling the items is a gather of rows."""

    values: np.ndarray  # (n, m) float64, one row per item
    of_means: Callable[[np.ndarray], np.ndarray]  # (B, m) column means -> (B,) values; nan where undefined


Items = Counts | Means


@dataclass(frozen=True)
class Metric:
    """A registered metric; `compute` checks the arrays and measures, `fn` only measures, `items` (where
    set) gives what the metric is made of item by item, for the bootstrap interval."""

    name: str
    label: str  # plain words for messages; may hold {k}
    higher_is_better: bool
    compares: Compares  # classes: scores (n, C) or labels (n,) vs int labels; values: same shapes; text: strings
    fn: Callable[..., float]
    params: tuple[str, ...] = ()
    bounds: tuple[float, float] = (0.0, 1.0)  # the values it can take, for checking a rubric's thresholds
    items: Callable[..., Items] | None = None  # same arguments as fn
    from_items: Callable[[Items], float] | None = None  # the value from items, where fn would repeat their work

    def describe(self, **params: object) -> str:
        return self.label.format(**params)

    def compute(self, predicted: object, target: object, **params: object) -> float:
        """The metric of `predicted` against `target`; parameters it does not take are ignored."""
        return self.measure(predicted, target, itemise=False, **params)[0]

    def measure(self, predicted: object, target: object, itemise: bool = True,
                **params: object) -> tuple[float, Items | None]:
        """The metric and, with `itemise`, its items (None where the metric has no `items` hook); the
        arrays are checked once for both."""
        prepare = {"classes": _classes, "values": _values, "text": _texts}[self.compares]
        p, t = prepare(np.asarray(predicted), np.asarray(target))
        taken = {k: params[k] for k in self.params if k in params}
        items = self.items(p, t, **taken) if self.items is not None and (itemise or self.from_items) else None
        if items is not None and self.from_items is not None:
            value = float(self.from_items(items))
        else:
            value = float(self.fn(p, t, **taken))
        if not math.isfinite(value):
            raise EvidenceMissing(f"the outputs are so far off that {self.describe(**params)} is not a finite "
                                  "number", student=True)
        return value, items if itemise else None


METRICS: dict[str, Metric] = {}


def metric(name: str, label: str, compares: Compares, higher_is_better: bool,
           params: tuple[str, ...] = (), bounds: tuple[float, float] = (0.0, 1.0)):
    """Function decorator: register a metric under `name` (the name rubrics use)."""

    def decorate(fn: Callable[..., float]) -> Callable[..., float]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = Metric(name, label, higher_is_better, compares, fn, params, bounds)
        return fn

    return decorate


def items_of(name: str, from_items: Callable[[Items], float] | None = None):
    """Function decorator: give the registered metric `name` its per-item form (and, where computing the
    items already does the metric's work, the value from them)."""

    def decorate(fn: Callable[..., Items]) -> Callable[..., Items]:
        METRICS[name] = replace(METRICS[name], items=fn, from_items=from_items)
        return fn

    return decorate


# --- checking what the student's outputs look like ------------------------------------------------------------


def _n_rows(target: np.ndarray) -> int:
    if target.ndim == 0 or len(target) == 0:
        raise EvidenceMissing("the lab's reference data for this split is empty", student=False)
    return len(target)


def _numbers(predicted: np.ndarray) -> np.ndarray:
    if predicted.dtype.kind not in "biuf":
        got = "text" if predicted.dtype.kind in "US" else f"values of type {predicted.dtype}"
        raise EvidenceMissing(f"expected numbers from the model, got {got}", student=True)
    values = predicted.astype(np.float64)
    if not np.all(np.isfinite(values)):
        bad = int(np.sum(~np.isfinite(values)))
        raise EvidenceMissing(f"the model's outputs contain NaN or infinity ({bad} of {values.size} values)",
                              student=True)
    return values


def _classes(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n, C) or class labels (n,), integer labels (n,)); scores need a column for every label."""
    n = _n_rows(target)
    if target.ndim != 1 or target.dtype.kind not in "biu":
        raise EvidenceMissing(f"the lab's labels are not whole class numbers (shape {target.shape}, "
                              f"type {target.dtype})", student=False)
    labels = target.astype(np.int64)
    if predicted.ndim not in (1, 2) or predicted.shape[0] != n:
        raise EvidenceMissing(f"expected one row of class scores per input ({n} rows), got an array of shape "
                              f"{predicted.shape}", student=True)
    values = _numbers(predicted)
    if predicted.ndim == 2:
        needed = int(labels.max()) + 1
        if values.shape[1] < needed:
            raise EvidenceMissing(f"expected a score for each of the {needed} classes, got {values.shape[1]} "
                                  f"column{'s' if values.shape[1] != 1 else ''}", student=True)
        return values, labels
    if not np.all(values == np.round(values)):
        raise EvidenceMissing("expected whole class numbers (or one row of scores per input), got fractions",
                              student=True)
    return values.astype(np.int64), labels


def _values(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same-shape float arrays; an (n, 1) column is accepted for (n,) targets, nothing else is reshaped."""
    _n_rows(target)
    if target.dtype.kind not in "biuf" or not np.all(np.isfinite(target)):
        raise EvidenceMissing("the lab's reference values are not finite numbers", student=False)
    if predicted.ndim == 2 and predicted.shape[1] == 1 and target.ndim == 1:
        predicted = predicted[:, 0]
    if predicted.shape != target.shape:
        raise EvidenceMissing(f"expected outputs of the same shape as the reference, {target.shape}, got "
                              f"{predicted.shape}", student=True)
    return _numbers(predicted), target.astype(np.float64)


def _texts(predicted: np.ndarray, target: np.ndarray) -> tuple[list[str], list[str]]:
    """Lists of NFC-normalized strings, so an å typed as one character or as a + ring counts the same."""
    n = _n_rows(target)
    if target.ndim != 1 or target.dtype.kind != "U":
        raise EvidenceMissing(f"the lab's reference texts are not strings (type {target.dtype})", student=False)
    if predicted.dtype.kind != "U":
        got = "bytes" if predicted.dtype.kind == "S" else f"values of type {predicted.dtype}"
        raise EvidenceMissing(f"expected one text string (str) per input, got {got}", student=True)
    if predicted.shape != (n,):
        raise EvidenceMissing(f"expected one text string per input ({n} strings), got an array of shape "
                              f"{predicted.shape}", student=True)
    return [unicodedata.normalize("NFC", str(s)) for s in predicted], [
        unicodedata.normalize("NFC", str(s)) for s in target]


def predicted_labels(predicted: np.ndarray) -> np.ndarray:
    """Class labels: the highest-scoring class (the first on ties), or the labels as given."""
    return predicted.argmax(axis=1) if predicted.ndim == 2 else predicted


# --- the metrics ----------------------------------------------------------------------------------------------


@metric("accuracy", "accuracy", "classes", higher_is_better=True)
def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of inputs whose predicted class (argmax of the scores) is the true one."""
    return float(np.mean(predicted_labels(predicted) == labels))


@metric("balanced-accuracy", "balanced accuracy", "classes", higher_is_better=True)
def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in the labels of the recall (fraction of that class found);
    a model that always answers the majority class scores 1/classes, not the majority's share."""
    guesses = predicted_labels(predicted)
    return float(np.mean([np.mean(guesses[labels == c] == c) for c in np.unique(labels)]))


@metric("macro-f1", "macro-F1", "classes", higher_is_better=True)
def macro_f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean over the classes that occur in the labels or the predictions of
    F1 = 2 TP / (2 TP + FP + FN); a class never predicted but present scores 0."""
    guesses = predicted_labels(predicted)
    scores = []
    for c in np.union1d(labels, guesses):
        tp = np.sum((guesses == c) & (labels == c))
        wrong = np.sum(guesses != labels, where=(guesses == c) | (labels == c))  # FP + FN
        scores.append(2 * tp / (2 * tp + wrong))  # never 0/0: c occurs in the labels or the predictions
    return float(np.mean(scores))


@metric("top-k-accuracy", "top-{k} accuracy", "classes", higher_is_better=True, params=("k",))
def top_k_accuracy(predicted: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Fraction of inputs whose true class is among the k highest scores. Ties count against the
    student: a hit needs fewer than k other classes scoring at least as high as the true one."""
    if predicted.ndim != 2:
        raise EvidenceMissing(f"top-{k} accuracy needs one row of class scores per input (shape (inputs, "
                              f"classes)), got class labels of shape {predicted.shape}", student=True)
    if k >= predicted.shape[1]:
        raise EvidenceMissing(f"top-{k} accuracy needs more than {k} classes, but the outputs have "
                              f"{predicted.shape[1]}: every answer would count", student=False)
    true_scores = predicted[np.arange(len(labels)), labels]
    rivals = np.sum(predicted >= true_scores[:, None], axis=1) - 1
    return float(np.mean(rivals < k))


@metric("mse", "mean squared error", "values", higher_is_better=False, bounds=(0.0, math.inf))
def mse(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean over every value of (predicted - target)^2."""
    with np.errstate(over="ignore"):  # huge outputs give inf, which compute() reports
        return float(np.mean((predicted - target) ** 2))


@metric("psnr", "PSNR (dB)", "values", higher_is_better=True, params=("data_range",),
        bounds=(-math.inf, PSNR_CAP_DB))
def psnr(predicted: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB, from the MSE over the whole split
    (not averaged per image); capped at 100 dB, which a perfect reconstruction gets."""
    error = mse(predicted, target)
    if error == 0:
        return PSNR_CAP_DB
    return float(min(PSNR_CAP_DB, 10 * np.log10(data_range**2 / error)))


@metric("cer", "character error rate", "text", higher_is_better=False, bounds=(0.0, math.inf))
def cer(predicted: list[str], references: list[str]) -> float:
    """Character error rate: the sum of Levenshtein distances (insertions, deletions, substitutions)
    over the sum of reference lengths; exact, case- and space-sensitive. It can exceed 1."""
    return _cer_of(cer_items(predicted, references))


def _cer_of(items: Items) -> float:
    assert isinstance(items, Means)
    total = items.values[:, 1].sum()
    if total == 0:
        raise EvidenceMissing("the lab's reference texts are all empty", student=False)
    return float(items.values[:, 0].sum() / total)


def levenshtein(a: str, b: str) -> int:
    """Edit distance, one DP row per character of the longer string, each row computed in NumPy:
    row[j] = min(up + 1, diagonal + cost, row[j-1] + 1), the last term as a running minimum."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    chars = np.array([ord(c) for c in b])
    cols = np.arange(len(b) + 1)
    row = cols.copy()
    for i, c in enumerate(a, start=1):
        best = np.empty_like(row)
        best[0] = i
        best[1:] = np.minimum(row[1:] + 1, row[:-1] + (chars != ord(c)))
        row = np.minimum.accumulate(best - cols) + cols
    return int(row[-1])


# --- what each metric is made of, item by item (resampled by bootstrap.py) ----------------------------------


def _hits(hit: np.ndarray) -> Counts:
    """0/1 per item: counts of (miss, hit); the metric is the share of hits."""
    hits = int(np.count_nonzero(hit))
    return Counts(np.array([len(hit) - hits, hits]), lambda c: c[:, 1] / c.sum(axis=1))


@items_of("accuracy")
def accuracy_items(predicted: np.ndarray, labels: np.ndarray) -> Counts:
    return _hits(predicted_labels(predicted) == labels)


@items_of("top-k-accuracy")
def top_k_items(predicted: np.ndarray, labels: np.ndarray, k: int = 5) -> Counts:
    top_k_accuracy(predicted, labels, k)  # its checks, in the same words
    true_scores = predicted[np.arange(len(labels)), labels]
    return _hits(np.sum(predicted >= true_scores[:, None], axis=1) - 1 < k)


def _cells(labels: np.ndarray, guesses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The confusion matrix's occupied cells: their counts, and one-hot (cells, classes) matrices of each
    cell's true class and of its predicted class (classes: those in the labels or the predictions)."""
    classes, codes = np.unique(np.concatenate([labels, guesses]), return_inverse=True)
    true, guessed = codes[: len(labels)], codes[len(labels):]
    cells, counts = np.unique(true * len(classes) + guessed, return_counts=True)
    eye = np.eye(len(classes))
    return counts, eye[cells // len(classes)], eye[cells % len(classes)]


@items_of("balanced-accuracy")
def balanced_accuracy_items(predicted: np.ndarray, labels: np.ndarray) -> Counts:
    """Confusion cells; recall per class present in the (resampled) labels, averaged as the metric does."""
    counts, true, guessed = _cells(labels, predicted_labels(predicted))
    diagonal = true * guessed

    def of_counts(c: np.ndarray) -> np.ndarray:
        found, total = c @ diagonal, c @ true
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nanmean(np.where(total > 0, found / total, np.nan), axis=1)

    return Counts(counts, of_counts)


@items_of("macro-f1")
def macro_f1_items(predicted: np.ndarray, labels: np.ndarray) -> Counts:
    """Confusion cells; F1 = 2 TP / (true + predicted of the class) per class that occurs in the resample."""
    counts, true, guessed = _cells(labels, predicted_labels(predicted))
    diagonal = true * guessed

    def of_counts(c: np.ndarray) -> np.ndarray:
        tp, seen = c @ diagonal, c @ true + c @ guessed
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nanmean(np.where(seen > 0, 2 * tp / seen, np.nan), axis=1)

    return Counts(counts, of_counts)


def _row_errors(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each item's mean squared error (an item is a row: one image, one vector); the mean of these is the
    MSE over every value, as every row holds as many values."""
    with np.errstate(over="ignore"):
        return ((predicted - target) ** 2).reshape(len(target), -1).mean(axis=1)


@items_of("mse")
def mse_items(predicted: np.ndarray, target: np.ndarray) -> Means:
    return Means(_row_errors(predicted, target)[:, None], lambda m: m[:, 0])


@items_of("psnr")
def psnr_items(predicted: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> Means:
    """The items' MSE, turned into PSNR after the mean as the metric does (capped alike)."""

    def of_means(m: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.minimum(PSNR_CAP_DB, 10 * np.log10(data_range**2 / m[:, 0]))

    return Means(_row_errors(predicted, target)[:, None], of_means)


@items_of("cer", from_items=_cer_of)
def cer_items(predicted: list[str], references: list[str]) -> Means:
    """Each item's edit distance and reference length; the rate is the ratio of their sums (of their means)."""
    return Means(np.array([[levenshtein(p, r), len(r)] for p, r in zip(predicted, references)], dtype=np.float64),
                 lambda m: np.where(m[:, 1] > 0, m[:, 0] / np.where(m[:, 1] > 0, m[:, 1], 1), np.nan))
