"""Public probes of lab4-numpy-mlp: call the functions of your `mlp.py` and keep what they return.

They run at grading and in your self-check (`autograder check`). Your module lives in a sandbox of
its own: `exports.module("mlp")` is a handle to it there, and each call sends its arrays there and
brings back plain numbers (autograder.probing). The tests (tests/test_public.py) then compare what
came back with PyTorch. Hidden probes (grading only) call the same functions on other cases: other
layer sizes, batches of one, larger logits. The shared helpers are in checks.py.
"""

from __future__ import annotations

from pathlib import Path

import checks
import numpy as np

SEED = 4_004  # public: these inputs are no secret
TRAIN_SEED = 0  # the seed the grader passes to your train()
INIT_SIZES = [64, 128, 10]  # init_params() is called with these widths, twice with INIT_SEED, once with another
INIT_SEEDS = {"init": 7, "init_again": 7, "init_other": 8}
FEATURE_IMAGES = (12, 3)  # preprocess() of the first 12 training images, then of the first 3 alone
DATA = Path(__file__).resolve().with_name("data")  # the public splits, beside this file (course and kit alike)


def function_cases(seed: int = SEED) -> list[tuple[str, str, tuple]]:
    """[(case name, function name, arguments)]: standard-normal inputs drawn from `seed` in this order,
    the same on the host as in the sandbox. `*_large` cases hold logits in the thousands."""
    rng = np.random.default_rng(seed)
    return [
        ("relu", "relu", (rng.standard_normal((4, 7)),)),
        ("softmax", "softmax", (rng.standard_normal((5, 10)),)),
        ("softmax_large", "softmax", (1000.0 * rng.standard_normal((5, 10)),)),
        ("cross_entropy", "cross_entropy", (rng.standard_normal((6, 10)), rng.integers(0, 10, 6))),
        ("cross_entropy_large", "cross_entropy", (1000.0 * rng.standard_normal((6, 10)), rng.integers(0, 10, 6))),
        ("forward", "forward", (checks.random_params([6, 5, 4, 3], rng), rng.standard_normal((4, 6)))),
        ("count_parameters", "count_parameters", (checks.random_params([12, 8, 8, 4], rng),)),
    ]


def gradient_case(seed: int = SEED) -> dict:
    """The network and batch of the public gradient check: keyword arguments of checks.gradient_check."""
    return {"sizes": [4, 5, 3], "n": 6, "rng": np.random.default_rng(seed + 1)}


def training_data() -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of the public training split, as the grader passes them to your train()."""
    with np.load(DATA / "train.npz") as data:
        return data["X"], data["y"]


def probe_functions_public(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Your relu, softmax, cross_entropy, forward (its logits) and count_parameters on the cases above;
    init_params(INIT_SIZES, seed) as `init_W0`, `init_b0`, ...; preprocess() on a few training images."""
    mlp = exports.module("mlp")
    out = checks.call_each([(name, checks.caller(mlp, fn, args)) for name, fn, args in function_cases()])
    for prefix, seed in INIT_SEEDS.items():
        try:
            params = checks.as_params(mlp.init_params(INIT_SIZES, seed), f"init_params({INIT_SIZES}, {seed})")
            out.update({f"{prefix}_{k}": v for k, v in checks.flatten(params).items()})
        except Exception as exc:  # noqa: BLE001 - the message goes back to the student
            out[f"{prefix}__error"] = checks.error_text(exc)
    images = inputs["train"]
    out.update(checks.call_each([(f"preprocess_{n}", checks.caller(mlp, "preprocess", (images[:n],)))
                                 for n in FEATURE_IMAGES]))
    return out


def probe_gradients_public(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Your loss_and_grads() on a small random network against finite differences of your loss()."""
    return checks.gradient_check(exports.module("mlp"), **gradient_case())


def probe_scores(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Your train() on the training split, then predict(): logits (n, 10) for every split. Also
    `parameters`, the number of weights and biases of the trained network as counted here, and
    `counted`, what your count_parameters() says of it."""
    mlp = exports.module("mlp")
    X, y = training_data()
    params = checks.as_params(mlp.train(X, y, seed=TRAIN_SEED), "what train() returned")
    out: dict[str, np.ndarray] = {
        "parameters": np.array(sum(W.size + b.size for W, b in params)),
        "layers": np.array([params[0][0].shape[0], *(W.shape[1] for W, _ in params)]),
    }
    out.update(checks.call_each([("counted", lambda: mlp.count_parameters(params))]))
    for split, images in inputs.items():  # lab.yaml's order: the hidden split comes last
        out[split] = np.asarray(mlp.predict(params, images), dtype=np.float32)
    return out
