"""Public probes of lab1-mlp: turn the exported model and history into plain arrays.

They run at grading and in your self-check (`autograder check`). Your objects live in a sandbox of
their own: `exports["model"]` is a handle to yours there, and each call on it sends the inputs there
and brings back plain numbers (autograder.probing). Hidden probes (grading only) add checks on inputs
you never see. A missing export raises KeyError, which the harness reports to you.
"""

from __future__ import annotations

import numpy as np
import torch

from autograder.probing import is_instance

HISTORY_KEYS = ("train_accuracy", "val_accuracy")


def probe_scores(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits of `model` (eval mode, CPU) for every split: float32 arrays (n, n_classes)."""
    model = exports["model"]
    if is_instance(model, "torch.nn.Module"):
        model = model.to("cpu").eval()  # dropout and batch-norm statistics off, as when deployed
    scores = {}
    for split, X in inputs.items():
        out = model(torch.as_tensor(np.asarray(X), dtype=torch.float32))
        scores[split] = torch.as_tensor(out).detach().cpu().numpy().astype(np.float32)
    return scores


def probe_history(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-epoch accuracies in `history`, as float arrays."""
    history = exports["history"]
    missing = [key for key in HISTORY_KEYS if key not in history]
    if missing:
        raise KeyError(f"history has no {missing}; it needs the lists {list(HISTORY_KEYS)}")
    return {key: np.asarray([float(v) for v in history[key]], dtype=np.float64) for key in HISTORY_KEYS}
