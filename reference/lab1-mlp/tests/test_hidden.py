"""Hidden tests of lab1-mlp (grading only), run on the host against the probe outputs.

Accuracy and generalization gap are rubric criteria computed from the `scores` probe; these tests
check the forward pass on weights and inputs students never see; the public tests in
assignments/lab1-mlp/tests check the scores and the history. Assert messages are read by
students: they say what is wrong, not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest

# Every assert message here is written for students: show them when a test fails.
pytestmark = pytest.mark.public

FORWARD_ATOL = 1e-5


def reference_forward(x, weights, biases):
    """Trusted MLP forward pass: ReLU on hidden layers, numerically stable softmax on the output."""
    h = np.asarray(x, dtype=np.float64)
    for i, (W, b) in enumerate(zip(weights, biases)):
        h = h @ W + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_forward_returns_probabilities(probe_outputs, inputs, probes_module):
    p = probe_outputs["forward"]["test"]
    n_out = probes_module.forward_weights()[0][-1].shape[1]
    expected_shape = (len(inputs["test"]), n_out)
    assert p.shape == expected_shape, (
        f"mlp_forward returned shape {p.shape} for {expected_shape[0]} inputs and a network with "
        f"{n_out} outputs; expected {expected_shape}, one row of class probabilities per input"
    )
    assert np.all(np.isfinite(p)), "mlp_forward returned NaN or infinite values on hidden inputs"
    assert p.min() >= 0.0, f"mlp_forward returned a negative probability ({p.min():.3g})"
    worst = float(np.abs(p.sum(axis=1) - 1.0).max())
    assert worst <= FORWARD_ATOL, (
        f"the rows of mlp_forward's output should sum to 1 but are off by up to {worst:.3g}; "
        "check the softmax on the output layer"
    )


def test_forward_matches_reference(probe_outputs, inputs, probes_module):
    weights, biases = probes_module.forward_weights()
    expected = reference_forward(inputs["test"], weights, biases)
    p = probe_outputs["forward"]["test"]
    assert p.shape == expected.shape, f"mlp_forward returned shape {p.shape}, expected {expected.shape}"
    diff = float(np.abs(p - expected).max()) if np.all(np.isfinite(p)) else float("inf")
    assert diff <= FORWARD_ATOL, (
        f"mlp_forward's output differs from the expected probabilities by up to {diff:.3g} on hidden "
        f"inputs (tolerance {FORWARD_ATOL:g}); check the ReLU on hidden layers only, the weight "
        "shapes (x @ W + b) and the softmax on the output layer"
    )
