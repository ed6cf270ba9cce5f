"""Public probes of lab2-cnn: turn your exports and your `cnn.py` into plain arrays.

They run at grading and in your self-check (`autograder check`). Your objects and your `cnn` module
live in a sandbox of their own: `exports["model"]` and `exports.module("cnn")` are handles to them
there, and each call sends its arrays there and brings back plain numbers (autograder.probing).
Hidden probes (grading only) call your layers on inputs you never see, with other shapes, strides
and paddings. A missing export raises KeyError, which the harness reports to you.
"""

from __future__ import annotations

import numpy as np
import torch

from autograder.probing import is_instance

HISTORY_KEYS = ("train_accuracy", "val_accuracy")
BATCH = 500  # images per forward pass: keeps memory small whatever the split's size
LAYERS_SEED = 2_026  # public: these inputs are no secret

# The layer cases: (name, function, shapes, keyword arguments). A case's inputs are drawn from
# LAYERS_SEED in this order by `layer_cases`, on the host as in the sandbox.
CASES = (
    ("conv2d_basic", "conv2d", {"x": (2, 3, 8, 8), "w": (4, 3, 3, 3), "b": (4,)}, {}),
    ("conv2d_rectangular", "conv2d", {"x": (2, 2, 7, 9), "w": (3, 2, 2, 3), "b": (3,)}, {}),
    ("conv2d_stride_padding", "conv2d", {"x": (2, 3, 8, 8), "w": (4, 3, 3, 3), "b": (4,)},
     {"stride": 2, "padding": 1}),
    ("max_pool2d_basic", "max_pool2d", {"x": (2, 3, 8, 8)}, {"size": 2}),
    ("relu_basic", "relu", {"x": (3, 2, 4, 4)}, {}),
    ("dense_basic", "dense", {"x": (5, 12), "w": (12, 7), "b": (7,)}, {}),
)


def layer_cases(cases=CASES, seed=LAYERS_SEED):
    """[(name, function name, arrays, keyword arguments)]: standard-normal inputs, the same every time."""
    rng = np.random.default_rng(seed)
    return [(name, fn, {k: rng.standard_normal(shape) for k, shape in shapes.items()}, dict(kwargs))
            for name, fn, shapes, kwargs in cases]


def run_layers(cnn, cases) -> dict[str, np.ndarray]:
    """Call the student's `cnn` functions (a handle to the module in the sandbox) on each case:
    `<name>` holds the output as float64, or `<name>__error` the error as text, so that one failing
    case does not hide the others."""
    out = {}
    for name, fn, arrays, kwargs in cases:
        try:
            result = getattr(cnn, fn)(*arrays.values(), **kwargs)
            out[name] = np.array(result, dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - the message goes back to the student
            out[f"{name}__error"] = np.array(str(exc)[:500])
    return out


def probe_layers_public(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Your conv2d, max_pool2d, relu and dense on the public cases above."""
    return run_layers(exports.module("cnn"), layer_cases())


def probe_scores(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits of `model` (eval mode, CPU) for every split: float32 arrays (n, 10).

    The splits hold uint8 images (n, 28, 28); the model gets float32 (n, 1, 28, 28) in [0, 1],
    as the notebook's `load_split` gives them.
    """
    model = exports["model"]
    if is_instance(model, "torch.nn.Module"):
        model = model.to("cpu").eval()  # dropout and batch-norm statistics off, as when deployed
    scores = {}
    for split, X in inputs.items():
        images = np.asarray(X, dtype=np.float32)[:, None] / 255.0
        parts = [torch.as_tensor(model(torch.from_numpy(images[i : i + BATCH]))).detach().cpu().float()
                 for i in range(0, len(images), BATCH)]
        scores[split] = torch.cat(parts).numpy() if parts else np.zeros((0, 0), np.float32)
    return scores


def probe_history(exports: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-epoch accuracies in `history`, as float arrays."""
    history = exports["history"]
    missing = [key for key in HISTORY_KEYS if key not in history]
    if missing:
        raise KeyError(f"history has no {missing}; it needs the lists {list(HISTORY_KEYS)}")
    return {key: np.asarray([float(v) for v in history[key]], dtype=np.float64) for key in HISTORY_KEYS}
