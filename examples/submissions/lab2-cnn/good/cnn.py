"""The layers of a convolutional network, written with NumPy only.

Each function computes what the PyTorch layer of the same name computes in its forward pass, so
that you know what `nn.Conv2d`, `nn.MaxPool2d`, `nn.ReLU` and `nn.Linear` do inside. Use NumPy only:
no torch, scipy or other libraries. The grader calls these functions on inputs you have not seen,
with other shapes, strides and paddings than the notebook's examples, and compares the results
with PyTorch's; write them for any valid shape, not only for square images or square kernels.
"""

from __future__ import annotations

import numpy as np


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """2-D convolution as in `torch.nn.functional.conv2d` (a cross-correlation: no kernel flip).

    x: array (N, C, H, W), a batch of N images with C channels.
    w: array (F, C, KH, KW), F filters of KH x KW pixels over all C channels.
    b: array (F,), one bias per filter.
    stride: step between neighbouring windows, the same along both axes.
    padding: zeros added on every side of each image before sliding the windows.

    Returns an array (N, F, H_out, W_out) with
    H_out = (H + 2 * padding - KH) // stride + 1 and W_out = (W + 2 * padding - KW) // stride + 1,
    where out[n, f, i, j] = b[f] + sum over c, di, dj of
    x_padded[n, c, i * stride + di, j * stride + dj] * w[f, c, di, dj].
    """
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    s0, s1, s2, s3 = x.strides
    windows = np.lib.stride_tricks.as_strided(
        x, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * stride, s3 * stride, s2, s3), writeable=False)
    result = np.tensordot(windows, w, axes=[(1, 4, 5), (1, 2, 3)])  # n, oh, ow, f
    return result.transpose(0, 3, 1, 2) + b.reshape(1, f, 1, 1)


def max_pool2d(x: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Max pooling as in `torch.nn.functional.max_pool2d(x, size, stride)`.

    x: array (N, C, H, W). size: the window is size x size pixels. stride: step between windows
    (default: `size`, so windows do not overlap). Windows that would run over the edge are left
    out, so H_out = (H - size) // stride + 1, and W_out likewise. Returns (N, C, H_out, W_out).
    """
    step = size if stride is None else stride
    n, c, h, wd = x.shape
    oh, ow = (h - size) // step + 1, (wd - size) // step + 1
    views = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::step, ::step]
    return views[:, :, :oh, :ow].max(axis=(-2, -1))


def relu(x: np.ndarray) -> np.ndarray:
    """The rectified linear unit, max(x, 0), element by element; the output has the shape of x."""
    return np.clip(x, 0, None)


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A fully connected layer: x @ w + b.

    x: array (N, D), w: array (D, K), b: array (K,). Returns (N, K).
    (PyTorch's `nn.Linear` stores its weight transposed, as (K, D).)
    """
    return np.einsum("nd,dk->nk", x, w) + b
