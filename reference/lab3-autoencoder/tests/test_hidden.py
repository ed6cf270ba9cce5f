"""Hidden tests of lab3-autoencoder (grading only), run on the host against the probe outputs.

The reconstruction error, its generalization gap and the latent size are rubric criteria; these tests
check what those measurements take for granted, on the hidden test images: that the model's output is
decode(encode(x)) (so the latent code the rubric limits is the only way through the model), that a
reconstruction depends on its own image only and is the same every time, and that the latent code
carries information about the image. Assert messages are read by students: they say what is wrong,
not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.public

ATOL = 1e-4  # float32 rounding; batched and single-image convolutions may differ in the last bits
MIN_LATENT_STD = 1e-4  # a latent dimension whose spread over the hidden images is below this is constant


def worst(diff: np.ndarray) -> float:
    """The largest difference; NaN or infinity (a model that returns them) counts as infinitely far."""
    if diff.size == 0:
        return 0.0
    return float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")


def shown(diff: float) -> str:
    return f"{diff:.3g}" if np.isfinite(diff) else "NaN or infinity"


def test_forward_is_decode_of_encode(probe_outputs):
    diff = worst(probe_outputs["roundtrip"]["decode"])
    assert diff <= ATOL, (
        f"on hidden test images, model(x) differs from model.decode(model.encode(x)) by up to {shown(diff)}; "
        "the reconstruction must be made from the latent code alone"
    )


def test_reconstruction_is_deterministic(probe_outputs):
    diff = worst(probe_outputs["roundtrip"]["repeat"])
    assert diff <= ATOL, (
        f"in eval mode, reconstructing the same hidden test images twice gave results that differ by up to "
        f"{shown(diff)}; the model should give the same reconstruction every time"
    )


def test_reconstruction_does_not_depend_on_the_batch(probe_outputs):
    diff = worst(probe_outputs["roundtrip"]["single"])
    assert diff <= ATOL, (
        f"reconstructing hidden test images one at a time gave results that differ by up to {shown(diff)} from "
        "reconstructing them in a batch; an image's reconstruction should depend on that image only"
    )


def test_latent_code_varies_between_images(probe_outputs, record_metric):
    z = probe_outputs["latent"]["test"].astype(np.float64)
    assert z.ndim == 2 and len(z) > 1, f"model.encode returned shape {z.shape} on the hidden test images"
    assert np.all(np.isfinite(z)), "model.encode returned NaN or infinite values on hidden test images"
    spread = z.std(axis=0)
    used = int(np.sum(spread > MIN_LATENT_STD))
    record_metric("latent_dims_used", used)
    assert used >= 1, (
        "model.encode gives the same code for every hidden test image: the latent code carries no "
        "information about the image"
    )
