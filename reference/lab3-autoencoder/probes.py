"""Hidden probes of lab3-autoencoder (grading only): how the model behaves on the hidden test images.

Runs on the host; `exports["model"]` is a handle to the student's model in its sandbox, which gets
the hidden images as arrays and sends back numbers. It returns nothing but numeric arrays; the
judging is the hidden tests'. The public probes (assignments/lab3-autoencoder/probes.py) are a
separate module: nothing is imported from them. Messages about shapes are ProbeFailures, which
the student may read; anything else the student's code raises here reaches them as its type only.
"""

from __future__ import annotations

import numpy as np
import torch

from autograder.probing import ProbeFailure, is_instance

SPLIT = "test"
BATCH = 250
N_SINGLE = 32  # images also reconstructed one at a time


def model_input(X: np.ndarray) -> torch.Tensor:
    """uint8 images (n, 28, 28) as the model takes them: float32 (n, 1, 28, 28) in [0, 1]."""
    x = torch.as_tensor(np.asarray(X), dtype=torch.float32) / 255.0
    return x.reshape(len(x), 1, 28, 28)


def flat(out, what: str, n: int) -> np.ndarray:
    """An output as float64 (n, numbers per image), or a ProbeFailure naming `what` and its shape."""
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().to(torch.float64).numpy()
    array = np.asarray(out, dtype=np.float64)
    if array.ndim < 1 or len(array) != n:
        raise ProbeFailure(f"{what} returned shape {array.shape} for {n} images; expected one output per image")
    return array.reshape(n, -1)


def max_abs_diff(a: np.ndarray, b: np.ndarray, what: str) -> np.ndarray:
    """Per image, the largest absolute difference between two (n, k) arrays of the same shape."""
    if a.shape != b.shape:
        raise ProbeFailure(f"{what}: shapes {a.shape} and {b.shape} differ")
    with np.errstate(invalid="ignore"):
        return np.abs(a - b).max(axis=1)


def probe_roundtrip(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """On the hidden test images, per image, the largest absolute difference between
    - `decode`: model(x) and model.decode(model.encode(x));
    - `repeat`: model(x) and model(x) computed a second time (eval mode should be deterministic);
    - `single`: model(x) in batches and model(x[i:i+1]) on its own, for the first N_SINGLE images
      (a reconstruction must not depend on the other images in the batch)."""
    model = exports["model"]
    if is_instance(model, "torch.nn.Module"):
        model = model.to("cpu").eval()
    X = inputs[SPLIT]
    decode, repeat = [], []
    batched = []
    with torch.no_grad():
        for start in range(0, len(X), BATCH):
            x = model_input(X[start:start + BATCH])
            n = len(x)
            first = flat(model(x), "model(x)", n)
            again = flat(model(x), "model(x)", n)
            via_code = flat(model.decode(model.encode(x)), "model.decode(model.encode(x))", n)
            decode.append(max_abs_diff(first, via_code, "model(x) and model.decode(model.encode(x))"))
            repeat.append(max_abs_diff(first, again, "model(x) twice"))
            batched.append(first)
        whole = np.concatenate(batched)
        k = min(N_SINGLE, len(X))
        single = [flat(model(model_input(X[i:i + 1])), "model(x) of one image", 1)[0] for i in range(k)]
    one_by_one = np.stack(single) if single else np.zeros((0, whole.shape[1]))
    return {
        "decode": np.concatenate(decode),
        "repeat": np.concatenate(repeat),
        "single": max_abs_diff(whole[:k], one_by_one, "model(x) in a batch and on its own"),
    }
