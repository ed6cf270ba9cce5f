"""Public probes of lab3-autoencoder: turn the exported model and history into plain arrays.

They run at grading and in your self-check (`autograder check`). Your objects live in a sandbox of
their own: `exports["model"]` is a handle to your model there, and each call sends its arrays there
and brings back plain numbers (autograder.probing). The reconstructions are made in two steps, in two
separate sandboxes: `model.encode` sees the images and its codes (at most LATENT_MAX numbers per
image) are all that `model.decode`, in a fresh sandbox that never saw the images, gets. So only the
latent code can carry an image to its reconstruction. Hidden probes (grading only) add checks on
images you never see. A missing export raises KeyError, which the harness reports to you.

Every split's images X are uint8 arrays (n, 28, 28); the model sees them as the notebook's load_split
gives them: float32 (n, 1, 28, 28) with pixel values in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from autograder.probing import check_codes, is_instance, steps

HISTORY_KEYS = ("train_mse", "val_mse")
BATCH = 250  # images per forward pass: bounds the memory a large model needs
LATENT_MAX = 32  # numbers per image that may pass from the encoder to the decoder (the rubric's bar)


def model_input(X: np.ndarray) -> torch.Tensor:
    """uint8 images (n, 28, 28) as the model takes them: float32 (n, 1, 28, 28) in [0, 1]."""
    x = torch.as_tensor(np.asarray(X), dtype=torch.float32) / 255.0
    return x.reshape(len(x), 1, 28, 28)


def eval_model(exports):
    """`model` on the CPU in eval mode (dropout and batch-norm statistics off, as when deployed)."""
    model = exports["model"]
    if is_instance(model, "torch.nn.Module"):
        model = model.to("cpu").eval()
    return model


def as_array(out) -> np.ndarray:
    """A model's output (tensor or array) as float32; anything else fails here with its type."""
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().to(torch.float32).numpy()
    return np.asarray(out, dtype=np.float32)


def batched(fn, X: np.ndarray, prepare=model_input) -> np.ndarray:
    """fn applied to prepare(X) in batches, outputs stacked along the first dimension."""
    parts = [as_array(fn(prepare(X[start:start + BATCH]))) for start in range(0, len(X), BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0, 28, 28), dtype=np.float32)


def encode(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Step 1, in the sandbox that sees the images: per split, the codes as float32 (n, k), k at most
    LATENT_MAX, finite, and the shape of one code as model.encode gave it (`<split>_shape`)."""
    model = eval_model(exports)
    out = {}
    for split, X in inputs.items():
        z = batched(model.encode, X)
        out[split] = check_codes(z, len(X), LATENT_MAX, "model.encode(x)")
        out[f"{split}_shape"] = np.array(z.shape[1:], dtype=np.int64)
    return out


def decode(exports, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Step 2, in a fresh sandbox that never saw the images: model.decode of the codes, pixel values in
    [0, 1], float32 (n, 28, 28) like the images X. The channel axis of an (n, 1, 28, 28) output is
    dropped so that the mean squared error compares each reconstruction with its image; any other
    shape is kept as it is, and the rubric reports it."""
    model = eval_model(exports)
    out = {}
    for split, z in codes.items():
        if split.endswith("_shape"):
            continue
        shape = tuple(int(d) for d in codes[f"{split}_shape"])
        rec = batched(model.decode, z, lambda part, shape=shape: torch.from_numpy(part.reshape(len(part), *shape)))
        if rec.ndim == 4 and rec.shape[1:] == (1, 28, 28):
            rec = rec[:, 0]
        out[split] = rec
    return out


# model.decode(model.encode(x)) for every split, encoder and decoder in separate sandboxes.
probe_reconstructions = steps(encode, decode)


def probe_latent(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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
