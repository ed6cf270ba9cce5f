"""2-D multi-class point clouds for lab1-mlp.

Two layouts: "linear" (Gaussian blobs whose centres lie on a line, separable by a linear model,
useful as a sanity check) and "polar" (one spiral arm per class, interleaved around the origin,
so a linear model fails and a hidden layer is really needed). `spread` is the noise that makes
classes overlap, and so sets how far a network can memorise the training set beyond what
generalises. Everything is drawn from `seed` alone, so a split is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np

LAYOUTS = ("linear", "polar")

# Polar layout: arms start off the origin (where all arms meet and nothing is learnable) and turn
# by TWIST radians from the inner to the outer end.
INNER_RADIUS = 0.1
TWIST = 1.5 * np.pi


def generate(
    n: int, n_classes: int, layout: str = "polar", spread: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return `(X, y)`: `X` float32 of shape (n, 2), `y` int64 labels in [0, n_classes).

    Classes are as balanced as `n` allows and the rows are shuffled, so any prefix is a fair
    sample. `spread` is the noise scale: the blob standard deviation for "linear", the angular
    noise in radians for "polar".
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    if n < n_classes:
        raise ValueError(f"n={n} is smaller than n_classes={n_classes}: some class would be empty")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    try:
        spread = float(spread)
    except (TypeError, ValueError):
        raise ValueError(f"spread must be a number, got {spread!r}") from None
    if not np.isfinite(spread) or spread < 0:
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")

    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % n_classes
    rng.shuffle(y)
    if layout == "linear":
        centres = np.stack([np.linspace(-1.0, 1.0, n_classes), np.zeros(n_classes)], axis=1)
        X = centres[y] + spread * rng.standard_normal((n, 2))
    else:
        t = rng.uniform(0.0, 1.0, n)  # position along the arm, inner to outer end
        radius = INNER_RADIUS + (1.0 - INNER_RADIUS) * t
        angle = 2 * np.pi * y / n_classes + TWIST * t + spread * rng.standard_normal(n)
        X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return X.astype(np.float32), y
