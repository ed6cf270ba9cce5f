"""Public tests of lab1-mlp: run at grading and by `autograder check` on your own machine.

They check what the rubric takes for granted: one score per class, and a training history that
describes the exported model. The hidden tests (grading only) check the forward pass on inputs
you never see. Assert messages say what is wrong, not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.public

HISTORY_TOLERANCE = 0.05  # history's last val accuracy vs the exported model's; one epoch of slack


def n_classes(labels) -> int:
    return int(max(int(y.max()) for y in labels.values())) + 1


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
