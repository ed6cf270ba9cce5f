"""Probes for lab1-mlp: turn the student's exports into plain arrays for the hidden tests.

Runs inside the probe sandbox next to untrusted objects, so it imports only numpy and torch, and
returns nothing but numeric arrays; all judging happens on the host. A missing export raises
KeyError, which the harness reports to the student.
"""

from __future__ import annotations

import numpy as np
import torch

N_CLASSES = 3
FORWARD_SEED = 20_240_901
FORWARD_SIZES = (2, 16, 16, N_CLASSES)
HISTORY_KEYS = ("train_accuracy", "val_accuracy")


def forward_weights() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Deterministic (weights, biases) of a 2-16-16-3 MLP, shared with the hidden tests.

    He-scaled so that logits are of order one: large enough that a missing ReLU or a wrong
    softmax changes the probabilities clearly, small enough that a naive softmax does not overflow.
    """
    rng = np.random.default_rng(FORWARD_SEED)
    pairs = list(zip(FORWARD_SIZES[:-1], FORWARD_SIZES[1:]))
    weights = [rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out)) for n_in, n_out in pairs]
    biases = [rng.normal(0.0, 0.1, size=n_out) for _, n_out in pairs]
    return weights, biases


def probe_scores(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits of `model` (eval mode, CPU) for every split: float32 arrays (n, n_classes)."""
    model = exports["model"]
    if isinstance(model, torch.nn.Module):
        model = model.to("cpu").eval()  # dropout and batch-norm statistics off, as when deployed
    scores = {}
    with torch.no_grad():
        for split, X in inputs.items():
            out = model(torch.as_tensor(np.asarray(X), dtype=torch.float32))
            scores[split] = torch.as_tensor(out).detach().cpu().numpy().astype(np.float32)
    return scores


def probe_forward(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`mlp_forward` applied to the hidden test inputs with `forward_weights()`."""
    mlp_forward = exports["mlp_forward"]
    weights, biases = forward_weights()
    result = mlp_forward(inputs["test"], weights, biases)
    return {"test": np.asarray(result, dtype=np.float64)}


def probe_history(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-epoch accuracies in `history`, as float arrays."""
    history = exports["history"]
    missing = [key for key in HISTORY_KEYS if key not in history]
    if missing:
        raise KeyError(f"history has no {missing}; it needs the lists {list(HISTORY_KEYS)}")
    return {key: np.asarray([float(v) for v in history[key]], dtype=np.float64) for key in HISTORY_KEYS}
