"""Public tests of lab2-cnn: run at grading and by `autograder check` on your own machine.

They compare your NumPy layers in `cnn.py` with PyTorch's own on the public cases of probes.py, and
check what the rubric takes for granted: one score per class, and a training history that
describes the exported model. The hidden tests (grading only) call your layers on other inputs,
shapes, strides and paddings. Assert messages say what is wrong, not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.public

N_CLASSES = 10
LAYER_RTOL, LAYER_ATOL = 1e-5, 1e-6
HISTORY_TOLERANCE = 0.05  # the exported model's val accuracy vs the closest one in history


def expected(fn: str, arrays: dict, kwargs: dict) -> np.ndarray:
    """What PyTorch computes for the case, in float64."""
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
    if fn == "conv2d":
        out = F.conv2d(t["x"], t["w"], t["b"], stride=kwargs.get("stride", 1), padding=kwargs.get("padding", 0))
    elif fn == "max_pool2d":
        size = kwargs.get("size", 2)
        out = F.max_pool2d(t["x"], size, kwargs.get("stride") or size)
    elif fn == "relu":
        out = F.relu(t["x"])
    elif fn == "dense":
        out = t["x"] @ t["w"] + t["b"]
    else:
        raise ValueError(f"unknown layer {fn!r}")
    return out.numpy()


def describe(fn: str, arrays: dict, kwargs: dict) -> str:
    shapes = ", ".join(f"{k} of shape {tuple(v.shape)}" for k, v in arrays.items())
    extra = "".join(f", {k}={v}" for k, v in kwargs.items())
    return f"{fn}({shapes}{extra})"


def check_layer(fn: str, outputs, cases) -> None:
    """Fail with the first case of `fn` whose output is missing, of the wrong shape or wrong."""
    ran = [case for case in cases if case[1] == fn]
    assert ran, f"no cases for {fn}"
    for name, _, arrays, kwargs in ran:
        call = describe(fn, arrays, kwargs)
        error = outputs.get(f"{name}__error")
        assert error is None, f"{call} raised {error}"
        assert name in outputs, f"{call} returned nothing the grader could read"
        got, want = outputs[name], expected(fn, arrays, kwargs)
        assert got.shape == want.shape, f"{call} returned shape {got.shape}; expected {want.shape}"
        assert np.all(np.isfinite(got)), f"{call} returned NaN or infinite values"
        diff = float(np.abs(got - want).max()) if got.size else 0.0
        assert np.allclose(got, want, rtol=LAYER_RTOL, atol=LAYER_ATOL), (
            f"{call} differs from PyTorch's {fn} by up to {diff:.3g}"
        )


@pytest.mark.parametrize("fn", ["conv2d", "max_pool2d", "relu", "dense"])
def test_layer_matches_pytorch(fn, probe_outputs, probes_module):
    check_layer(fn, probe_outputs["layers_public"], probes_module.layer_cases())


def test_model_gives_one_score_per_class(probe_outputs, inputs):
    for split, X in inputs.items():
        scores = probe_outputs["scores"][split]
        assert scores.shape == (len(X), N_CLASSES), (
            f"model returned shape {tuple(scores.shape)} for the {len(X)} images of the {split} split; "
            f"expected ({len(X)}, {N_CLASSES}): one score (logit) per class for each image"
        )
        assert np.all(np.isfinite(scores)), f"model returned NaN or infinite scores on the {split} split"


def test_history_is_per_epoch_accuracies(probe_outputs, record_metric):
    history = probe_outputs["history"]
    train, val = history["train_accuracy"], history["val_accuracy"]
    assert len(train) >= 1, "history['train_accuracy'] is empty; record one value per epoch"
    assert len(train) == len(val), (
        f"history has {len(train)} train accuracies but {len(val)} val accuracies; record both once per epoch"
    )
    for name, values in (("train_accuracy", train), ("val_accuracy", val)):
        assert np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0, (
            f"history['{name}'] must hold accuracies between 0 and 1 (fractions, not percentages); "
            f"found values from {values.min():.3g} to {values.max():.3g}"
        )
    record_metric("epochs", len(train))
    record_metric("train_accuracy_last", float(train[-1]))
    record_metric("val_accuracy_best", float(val.max()))


def test_history_matches_model(probe_outputs, labels):
    val = probe_outputs["history"]["val_accuracy"]
    scores = probe_outputs["scores"]["val"]
    assert len(val) >= 1, "history['val_accuracy'] is empty; record one value per epoch"
    assert scores.ndim == 2 and len(scores) == len(labels["val"]), (
        f"model returned scores of shape {scores.shape} on the val split"
    )
    actual = float((scores.argmax(axis=1) == labels["val"]).mean())
    closest = float(val[np.argmin(np.abs(val - actual))])
    assert abs(closest - actual) <= HISTORY_TOLERANCE, (
        f"the exported model's accuracy on the validation set is {actual:.3f}, but no epoch in "
        f"history['val_accuracy'] comes close (the closest is {closest:.3f}); history should describe the "
        "training of the final `model` (with early stopping: the epoch whose weights you kept)"
    )
