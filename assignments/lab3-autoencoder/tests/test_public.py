"""Public tests of lab3-autoencoder: run at grading and by `autograder check` on your own machine.

They check what the rubric takes for granted: one reconstruction per image, of the image's shape and
pixel range, one latent code per image, and a training history that describes the exported model.
The hidden tests (grading only) check the model on images you never see. Assert messages say what is
wrong, not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.public

RANGE_SLACK = 1e-3  # float rounding at the edges of [0, 1]
HISTORY_ATOL, HISTORY_RTOL = 0.002, 0.15  # history's last val MSE vs the exported model's


def pixels(X) -> np.ndarray:
    """A split's uint8 images as the model sees them: float (n, 28, 28) in [0, 1]."""
    return np.asarray(X, dtype=np.float64) / 255.0


def test_reconstructions_are_images(probe_outputs, inputs):
    for split, X in inputs.items():
        rec = probe_outputs["reconstructions"][split]
        assert rec.shape == (len(X), 28, 28), (
            f"model returned an output of shape {tuple(rec.shape)} for the {len(X)} images of the {split} "
            f"split; expected ({len(X)}, 1, 28, 28): one reconstructed image per input, shaped like the input"
        )
        assert np.all(np.isfinite(rec)), f"model returned NaN or infinite pixel values on the {split} split"
        low, high = float(rec.min()), float(rec.max())
        assert low >= -RANGE_SLACK and high <= 1 + RANGE_SLACK, (
            f"model's reconstructions of the {split} split have pixel values from {low:.3g} to {high:.3g}; "
            "expected values in [0, 1], like the images"
        )


def test_one_latent_code_per_image(probe_outputs, inputs, record_metric):
    sizes = set()
    for split, X in inputs.items():
        z = probe_outputs["latent"][split]
        assert z.ndim == 2 and z.shape[0] == len(X), (
            f"model.encode returned shape {tuple(z.shape)} for the {len(X)} images of the {split} split; "
            "expected one latent code per image along the first dimension"
        )
        assert np.all(np.isfinite(z)), f"model.encode returned NaN or infinite values on the {split} split"
        sizes.add(z.shape[1])
    assert len(sizes) == 1, f"model.encode returned codes of different sizes on different splits: {sorted(sizes)}"
    record_metric("latent_size", sizes.pop())


def test_history_is_per_epoch_mse(probe_outputs, record_metric):
    history = probe_outputs["history"]
    train, val = history["train_mse"], history["val_mse"]
    assert len(train) >= 1, "history['train_mse'] is empty; record one value per epoch"
    assert len(train) == len(val), (
        f"history has {len(train)} train MSEs but {len(val)} val MSEs; record both once per epoch"
    )
    for name, values in (("train_mse", train), ("val_mse", val)):
        assert np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0, (
            f"history['{name}'] must hold mean squared errors of pixel values in [0, 1] (between 0 and 1); "
            f"found values from {values.min():.3g} to {values.max():.3g}"
        )
    record_metric("epochs", len(train))
    record_metric("train_mse_last", float(train[-1]))
    record_metric("val_mse_last", float(val[-1]))


def test_history_matches_model(probe_outputs, inputs):
    val = probe_outputs["history"]["val_mse"]
    rec = probe_outputs["reconstructions"]["val"]
    assert len(val) >= 1, "history['val_mse'] is empty; record one value per epoch"
    target = pixels(inputs["val"])
    assert rec.shape == target.shape, f"model returned reconstructions of shape {rec.shape} on the val split"
    actual = float(np.mean((rec.astype(np.float64) - target) ** 2))
    assert abs(val[-1] - actual) <= max(HISTORY_ATOL, HISTORY_RTOL * actual), (
        f"the last val MSE in history ({val[-1]:.4f}) does not match the exported model's MSE on the "
        f"validation set ({actual:.4f}); history should describe the final `model`"
    )
