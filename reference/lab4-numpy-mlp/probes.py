"""Hidden probes of lab4-numpy-mlp (grading only): the student's functions on cases they never see.

The public probes (assignments/lab4-numpy-mlp/probes.py) call them on a few cases from a public
seed; these use a secret seed and the cases students get wrong: a batch of one image, a deeper
and a one-layer network, logits in the tens of thousands of both signs, a correct class whose
logit lies far below the others (the loss is large but finite), a single output, and the gradient
check on a network with three hidden layers. Runs on the host, through the released helpers of
checks.py, and calls the student's `mlp` in its sandbox (`exports.module("mlp")`). The hidden
tests rebuild the same inputs on the host from `function_cases()` and compare with torch there.
A failed call keeps only the exception's type for the student (a hidden probe's rule).
"""

from __future__ import annotations

import checks
import numpy as np

SEED = 318_770_452  # secret: never reuse it in student-visible files


def function_cases(seed: int = SEED) -> list[tuple[str, str, tuple]]:
    """[(case name, function name, arguments)], drawn in order from the secret seed: the same on the
    host as in the sandbox."""
    rng = np.random.default_rng(seed)
    far = rng.standard_normal((5, 7))
    far_y = rng.integers(0, 7, 5)
    far[np.arange(5), far_y] -= 2_000.0  # the right class far below the rest: -log p is about 2000
    return [
        ("relu_column", "relu", (rng.standard_normal((9, 1)),)),
        ("softmax_huge", "softmax", (30_000.0 * rng.standard_normal((4, 6)),)),
        ("softmax_shifted", "softmax", (rng.standard_normal((3, 5)) - 800.0,)),
        ("softmax_one_class", "softmax", (rng.standard_normal((4, 1)),)),
        ("cross_entropy_far", "cross_entropy", (far, far_y)),
        ("cross_entropy_huge", "cross_entropy", (30_000.0 * rng.standard_normal((8, 3)), rng.integers(0, 3, 8))),
        ("cross_entropy_one_row", "cross_entropy", (rng.standard_normal((1, 10)), rng.integers(0, 10, 1))),
        ("forward_deep", "forward", (checks.random_params([9, 7, 6, 5, 2], rng), rng.standard_normal((5, 9)))),
        ("forward_single_image", "forward", (checks.random_params([8, 6, 4], rng), rng.standard_normal((1, 8)))),
        ("forward_one_layer", "forward", (checks.random_params([5, 3], rng), rng.standard_normal((4, 5)))),
        ("count_parameters_deep", "count_parameters", (checks.random_params([13, 11, 7, 5, 3], rng),)),
        ("count_parameters_one_layer", "count_parameters", (checks.random_params([20, 10], rng),)),
    ]


def gradient_case(seed: int = SEED) -> dict:
    """The network and batch of the hidden gradient check (keyword arguments of checks.gradient_check)."""
    return {"sizes": [5, 6, 4, 4, 3], "n": 7, "rng": np.random.default_rng(seed + 1)}


def probe_functions(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The student's relu, softmax, cross_entropy, forward and count_parameters on the hidden cases;
    one failing case does not hide the others."""
    mlp = exports.module("mlp")
    return checks.call_each([(name, checks.caller(mlp, fn, args)) for name, fn, args in function_cases()])


def probe_gradients(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The student's loss_and_grads() on the hidden network against finite differences of their loss()."""
    return checks.gradient_check(exports.module("mlp"), **gradient_case())
