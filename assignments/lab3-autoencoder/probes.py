"""Public probes of lab3-autoencoder: turn the exported model and history into plain arrays.

They run at grading and in your self-check (`autograder check`), inside the probe sandbox next to your
objects, and import only numpy and torch. Hidden probes (grading only) add checks on images you never
see. A missing export raises KeyError, which the harness reports to you.

Every split's images X are uint8 arrays (n, 28, 28); the model sees them as the notebook's load_split
gives them: float32 (n, 1, 28, 28) with pixel values in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

HISTORY_KEYS = ("train_mse", "val_mse")
BATCH = 250  # images per forward pass: bounds the memory a large model needs


def model_input(X: np.ndarray) -> torch.Tensor:
    """uint8 images (n, 28, 28) as the model takes them: float32 (n, 1, 28, 28) in [0, 1]."""
    x = torch.as_tensor(np.asarray(X), dtype=torch.float32) / 255.0
    return x.reshape(len(x), 1, 28, 28)


def eval_model(exports: dict):
    """`model` on the CPU in eval mode (dropout and batch-norm statistics off, as when deployed)."""
    model = exports["model"]
    if isinstance(model, torch.nn.Module):
        model = model.to("cpu").eval()
    return model


def as_array(out) -> np.ndarray:
    """A model's output (tensor or array) as float32; anything else fails here with its type."""
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().to(torch.float32).numpy()
    return np.asarray(out, dtype=np.float32)


def batched(fn, X: np.ndarray) -> np.ndarray:
    """fn applied to the model inputs of X in batches, outputs stacked along the first dimension."""
    with torch.no_grad():
        parts = [as_array(fn(model_input(X[start:start + BATCH]))) for start in range(0, len(X), BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0, 28, 28), dtype=np.float32)


def probe_reconstructions(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """model(x) for every split, pixel values in [0, 1]: float32 (n, 28, 28) like the images X.

    The channel axis of an (n, 1, 28, 28) output is dropped so that the mean squared error compares
    each reconstruction with its image; any other shape is kept as it is, and the rubric reports it.
    """
    model = eval_model(exports)
    out = {}
    for split, X in inputs.items():
        rec = batched(model, X)
        if rec.ndim == 4 and rec.shape[1:] == (1, 28, 28):
            rec = rec[:, 0]
        out[split] = rec
    return out


def probe_latent(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """model.encode(x) for every split, one flattened row per image: float32 (n, numbers per code)."""
    model = eval_model(exports)
    out = {}
    for split, X in inputs.items():
        z = batched(model.encode, X)
        out[split] = z.reshape(len(z), -1) if z.ndim >= 1 and len(z) == len(X) else z
    return out


def probe_history(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-epoch MSEs in `history`, as float arrays."""
    history = exports["history"]
    missing = [key for key in HISTORY_KEYS if key not in history]
    if missing:
        raise KeyError(f"history has no {missing}; it needs the lists {list(HISTORY_KEYS)}")
    return {key: np.asarray([float(v) for v in history[key]], dtype=np.float64) for key in HISTORY_KEYS}
