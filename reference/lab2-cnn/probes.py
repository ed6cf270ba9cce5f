"""Hidden probes of lab2-cnn (grading only): the student's NumPy layers on inputs they never see.

The public probes (assignments/lab2-cnn/probes.py) run the layers on a few cases from a public
seed; these use a secret seed and more of the shapes students get wrong: non-square images and
kernels, strides that do not divide the image, padding 2, 1x1 kernels, a kernel as large as the
image, overlapping and edge-dropping pooling windows, all-negative pooling windows. Runs on the
host and calls the student's `cnn` in its sandbox (`exports.module("cnn")`); the secret inputs go
there as arrays. The hidden tests rebuild the same inputs on the host from `layer_cases()` and
compare with torch there. The output follows the public probe's format: `<case>` or
`<case>__error`, whose text for a hidden probe is the exception's type only (the student's message
could quote the secret inputs).
"""

from __future__ import annotations

import numpy as np

LAYERS_SEED = 771_204_583  # secret: never reuse it in student-visible files

CASES = (  # (name, function, shapes, keyword arguments)
    ("conv2d_rect", "conv2d", {"x": (3, 2, 9, 7), "w": (4, 2, 2, 3), "b": (4,)}, {}),
    ("conv2d_stride2_pad1", "conv2d", {"x": (2, 3, 11, 10), "w": (5, 3, 3, 2), "b": (5,)},
     {"stride": 2, "padding": 1}),
    ("conv2d_stride3_pad2", "conv2d", {"x": (2, 1, 7, 9), "w": (3, 1, 5, 3), "b": (3,)},
     {"stride": 3, "padding": 2}),
    ("conv2d_1x1", "conv2d", {"x": (1, 4, 6, 5), "w": (2, 4, 1, 1), "b": (2,)}, {}),
    ("conv2d_single_window", "conv2d", {"x": (2, 2, 4, 5), "w": (3, 2, 4, 5), "b": (3,)}, {}),
    ("max_pool2d_odd", "max_pool2d", {"x": (2, 3, 9, 7)}, {"size": 2}),
    ("max_pool2d_overlap", "max_pool2d", {"x": (2, 2, 9, 11)}, {"size": 3, "stride": 2}),
    ("max_pool2d_size3", "max_pool2d", {"x": (1, 1, 6, 8)}, {"size": 3}),
    ("max_pool2d_negative", "max_pool2d", {"x": (2, 2, 6, 6)}, {"size": 2}),
    ("relu_odd", "relu", {"x": (2, 3, 5, 7)}, {}),
    ("dense_odd", "dense", {"x": (7, 13), "w": (13, 5), "b": (5,)}, {}),
    ("dense_single", "dense", {"x": (1, 3), "w": (3, 1), "b": (1,)}, {}),
)
OFFSET = {"max_pool2d_negative": -10.0}  # every value below zero: a running max that starts at 0 is wrong


def layer_cases():
    """The hidden cases with their inputs, drawn in order from the secret seed: the same on the host
    as in the sandbox."""
    rng = np.random.default_rng(LAYERS_SEED)
    return [(name, fn, {arg: rng.standard_normal(shape) + OFFSET.get(name, 0.0) for arg, shape in shapes.items()},
             dict(kwargs)) for name, fn, shapes, kwargs in CASES]


def probe_layers(exports, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The student's conv2d, max_pool2d, relu and dense on the hidden cases; one failing case does
    not hide the others."""
    cnn = exports.module("cnn")
    results = {}
    for name, fn, arrays, kwargs in layer_cases():
        try:
            results[name] = np.array(getattr(cnn, fn)(*arrays.values(), **kwargs), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - reported to the student by the hidden tests: its type only
            results[name + "__error"] = np.array(str(exc)[:500])
    return results
