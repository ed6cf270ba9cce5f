"""How sure a measured value is: a 95% bootstrap interval over the items it was measured on.

A hidden test set is a sample of the data a model will meet; a model measured on another sample of the
same size would score a little differently. Resampling the hidden items with replacement and measuring
again shows how much (the percentile bootstrap); the interval holds the middle 95% of those values. It
is seeded, so the same outputs always give the same interval, and a regrade never moves a verdict.

What each metric gets, by the form its registry entry gives (`metrics.Counts` or `metrics.Means`):

- Counts (accuracy and top-k: hit or miss; balanced accuracy and macro-F1: the occupied cells of the
  confusion matrix). Resampling n items is exactly a multinomial draw of the category counts, so the
  counts are drawn directly: a binomial for hit/miss (10,000 resamples, well under a millisecond for any
  n), a multinomial over the occupied cells otherwise (4,000 resamples up to 25 cells, fewer above:
  1,000 for a full 10-class confusion matrix, never under 200). The bootstrap distribution is the same as
  resampling item indices, without touching n items.
- Means (mse, psnr through its MSE, cer through each item's edit distance and reference length): a
  gather of rows by random indices, in chunks, with as many resamples as keep the work near 2 million
  row reads (2,000 up to 1,000 items, 200 at 10,000). Fewer resamples make the interval's ends a little
  noisier, not biased; the coverage test in tests/test_bootstrap.py runs at the counts graded here.

A metric without an `items` form gets no interval (None), and its criterion judges as before.
"""

from __future__ import annotations

import numpy as np

from autograder.criteria.analysis.metrics import Counts, Items

CONFIDENCE = 0.95
SEED = 17  # fixed: the interval is a function of the outputs alone
# Work per resample is one binomial (hit/miss), one binomial per occupied cell (multinomial), or one read
# per item (gather); the resamples are as many as keep the work near its budget, within bounds.
BUDGET = {"binomial": 10_000, "multinomial": 100_000, "gather": 2_000_000}
BOUNDS = {"binomial": (10_000, 10_000), "multinomial": (200, 4_000), "gather": (200, 2_000)}
CHUNK = 200_000  # indices drawn at once when gathering rows: what they gather stays in cache (1.6 MB)


def resamples(items: Items) -> int:
    """How many resamples `items` gets: as many as keep the work near its budget, within the kind's bounds."""
    if isinstance(items, Counts):
        kind, size = ("binomial", 1) if len(items.counts) <= 2 else ("multinomial", len(items.counts))
    else:
        kind, size = "gather", len(items.values)
    low, high = BOUNDS[kind]
    return int(np.clip(BUDGET[kind] // max(size, 1), low, high))


def draws(items: Items, b: int, rng: np.random.Generator) -> np.ndarray:
    """The metric on `b` resamples of the items, shape (b,); nan where a resample leaves it undefined."""
    if isinstance(items, Counts):
        counts = np.asarray(items.counts, dtype=np.int64)
        n = int(counts.sum())
        if len(counts) == 1:
            drawn = np.full((b, 1), n)
        elif len(counts) == 2:
            first = rng.binomial(n, counts[0] / n, size=b)
            drawn = np.stack([first, n - first], axis=1)
        else:
            drawn = rng.multinomial(n, counts / n, size=b)
        return np.asarray(items.of_counts(drawn.astype(np.float64)), dtype=np.float64)
    values = np.asarray(items.values, dtype=np.float64)
    n = len(values)
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max else np.int64
    means = np.empty((b, values.shape[1]))
    step = max(1, CHUNK // n)
    for start in range(0, b, step):
        rows = min(step, b - start)
        picks = rng.integers(0, n, size=(rows, n), dtype=dtype)
        for column in range(values.shape[1]):
            means[start:start + rows, column] = values[:, column][picks].mean(axis=1)
    with np.errstate(all="ignore"):
        return np.asarray(items.of_means(means), dtype=np.float64)


def interval(items: Items | None, confidence: float = CONFIDENCE, seed: int = SEED) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the metric made of `items`, or None without items."""
    if items is None:
        return None
    return _percentiles(draws(items, resamples(items), np.random.default_rng(seed)), confidence)


def difference(first: Items | None, second: Items | None, confidence: float = CONFIDENCE,
               seed: int = SEED) -> tuple[float, float] | None:
    """The interval of (metric on first) - (metric on second), the two item sets resampled independently:
    two splits are two samples, and each one's chance adds to the difference's."""
    if first is None or second is None:
        return None
    b = min(resamples(first), resamples(second))
    one, two = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    return _percentiles(draws(first, b, one) - draws(second, b, two), confidence)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
