"""Hidden probes of lab1-mlp (grading only): the forward pass on weights students never see.

Runs on the host; `mlp_forward` is a handle to the student's function in its sandbox, which gets the
hidden inputs and weights as arrays and sends back numbers. It returns nothing but numeric arrays;
the judging is the hidden tests'. A missing export raises KeyError, which the harness reports to the
student.
"""

from __future__ import annotations

import numpy as np

N_CLASSES = 3
FORWARD_SEED = 20_240_901
FORWARD_SIZES = (2, 16, 16, N_CLASSES)


def forward_weights() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Deterministic (weights, biases) of a 2-16-16-3 MLP, shared with the hidden tests.

    He-scaled so that logits are of order one: large enough that a missing ReLU or a wrong
    softmax changes the probabilities clearly, small enough that a naive softmax does not overflow.
    """
    rng = np.random.default_rng(FORWARD_SEED)
    pairs = list(zip(FORWARD_SIZES[:-1], FORWARD_SIZES[1:]))
    weights = [rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out)) for n_in, n_out in pairs]
    biases = [rng.normal(0.0, 0.1, size=n_out) for _, n_out in pairs]
    return weights, biases


def probe_forward(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`mlp_forward` applied to the hidden test inputs with `forward_weights()`."""
    mlp_forward = exports["mlp_forward"]
    weights, biases = forward_weights()
    result = mlp_forward(inputs["test"], weights, biases)
    return {"test": np.asarray(result, dtype=np.float64)}
