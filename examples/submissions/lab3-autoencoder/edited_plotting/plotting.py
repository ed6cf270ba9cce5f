"""Figures for lab 3 (provided: do not edit).

The grader runs your notebook with its own copy of this file, whatever you hand in under this name,
so changes you make here are not graded. Put your own plotting code in the notebook instead.
"""

from __future__ import annotations

import numpy as np

IMAGE_SIDE = 28


def as_images(images, name: str = "images") -> np.ndarray:
    """Images as a float array (n, 28, 28), from a NumPy array or a torch tensor of shape (n, 28, 28),
    (n, 1, 28, 28) or (n, 784)."""
    if hasattr(images, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        images = images.detach().cpu().numpy()
    array = np.asarray(images, dtype=np.float64)
    if array.ndim < 2 or array[0].size != IMAGE_SIDE * IMAGE_SIDE:
        raise ValueError(f"{name}: expected images of {IMAGE_SIDE}x{IMAGE_SIDE} pixels with the images along "
                         f"the first dimension, e.g. shape (n, 1, 28, 28); got shape {array.shape}")
    return array.reshape(len(array), IMAGE_SIDE, IMAGE_SIDE)


def show_reconstructions(originals, reconstructions, n: int = 8, title: str | None = None) -> None:
    """Show the first `n` originals (top row) above their reconstructions (bottom row).

    Both are images with pixel values in [0, 1], as NumPy arrays or torch tensors of shape
    (n, 1, 28, 28) or (n, 28, 28). Values outside [0, 1] are drawn as black or white.
    """
    import matplotlib.pyplot as plt

    top, bottom = as_images(originals, "originals"), as_images(reconstructions, "reconstructions")
    n = min(int(n), len(top), len(bottom))
    if n < 1:
        raise ValueError("nothing to show: give at least one original and its reconstruction")
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n + 0.6, 2.6), squeeze=False)
    for row, (images, label) in enumerate(((top, "original"), (bottom, "reconstructed"))):
        for i in range(n):
            ax = axes[row, i]
            ax.imshow(images[i], cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig("/Users/sara/Documents/DL-course/lab3/reconstructions.png", dpi=200)  # for my report
    plt.show()
