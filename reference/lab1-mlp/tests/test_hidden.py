"""Hidden tests of lab1-mlp, run on the host against the probe outputs.

Accuracy and generalization gap are rubric criteria computed from the `scores` probe; these tests
check what the rubric takes for granted (a correct forward pass, one score per class, a sane
history). Assert messages are read by students: they say what is wrong, not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest

# Every assert message here is written for students: show them when a test fails.
pytestmark = pytest.mark.public

FORWARD_ATOL = 1e-5
HISTORY_TOLERANCE = 0.05  # history's last val accuracy vs the exported model's; one epoch of slack


def reference_forward(x, weights, biases):
    """Trusted MLP forward pass: ReLU on hidden layers, numerically stable softmax on the output."""
    h = np.asarray(x, dtype=np.float64)
    for i, (W, b) in enumerate(zip(weights, biases)):
        h = h @ W + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def n_classes(labels) -> int:
    return int(max(int(y.max()) for y in labels.values())) + 1


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


def test_model_gives_one_score_per_class(probe_outputs, inputs, labels):
    k = n_classes(labels)
    for split, X in inputs.items():
        scores = probe_outputs["scores"][split]
        assert scores.shape == (len(X), k), (
            f"model returned shape {tuple(scores.shape)} for the {len(X)} points of the {split} "
            f"split; expected ({len(X)}, {k}): one score (logit) per class for each point"
        )
        assert np.all(np.isfinite(scores)), f"model returned NaN or infinite scores on the {split} split"


def test_history_is_per_epoch_accuracies(probe_outputs, record_metric):
    history = probe_outputs["history"]
    train, val = history["train_accuracy"], history["val_accuracy"]
    assert len(train) >= 1, "history['train_accuracy'] is empty; record one value per epoch"
    assert len(train) == len(val), (
        f"history has {len(train)} train accuracies but {len(val)} val accuracies; "
        "record both once per epoch"
    )
    for name, values in (("train_accuracy", train), ("val_accuracy", val)):
        assert np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0, (
            f"history['{name}'] must hold accuracies between 0 and 1 (fractions, not percentages); "
            f"found values from {values.min():.3g} to {values.max():.3g}"
        )
    record_metric("epochs", len(train))
    record_metric("train_accuracy_last", float(train[-1]))
    record_metric("val_accuracy_last", float(val[-1]))


def test_history_matches_model(probe_outputs, labels):
    val = probe_outputs["history"]["val_accuracy"]
    scores = probe_outputs["scores"]["val"]
    assert len(val) >= 1, "history['val_accuracy'] is empty; record one value per epoch"
    assert scores.ndim == 2, f"model returned scores of shape {scores.shape} on the val split"
    actual = float((scores.argmax(axis=1) == labels["val"]).mean())
    assert abs(val[-1] - actual) <= HISTORY_TOLERANCE, (
        f"the last val accuracy in history ({val[-1]:.3f}) does not match the exported model's "
        f"accuracy on the validation set ({actual:.3f}); history should describe the final `model`"
    )
