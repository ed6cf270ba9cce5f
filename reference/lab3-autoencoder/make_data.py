"""Write the lab3-autoencoder data splits: a fixed subset of Fashion-MNIST.

Public train (2000) and val (500) images come from Fashion-MNIST's training file, the hidden test
images (1000) from its separate test file, so no hidden image is ever in a student's hands. Each
split is class-balanced (a tenth per class), drawn with a fixed seed; the images stay uint8 (n, 28, 28),
as in the original files, and the labels int64 (unused by the grading, kept for the curious).

Reads the idx files of Debian's `dataset-fashion-mnist` (`apt-get install dataset-fashion-mnist`), or
of the folder given as the first argument. Run from anywhere:
`python reference/lab3-autoencoder/make_data.py [FOLDER]`. The output is deterministic.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path("/usr/share/datasets/fashion-mnist")
N_CLASSES = 10
SEED = 3_000_003  # one draw for all splits; train and val are disjoint by construction

PUBLIC = ROOT / "assignments" / "lab3-autoencoder" / "data"
HIDDEN = ROOT / "reference" / "lab3-autoencoder" / "data"
SPLITS = {  # name: (folder, source file prefix, images per class, skip per class)
    "train": (PUBLIC, "train", 200, 0),
    "val": (PUBLIC, "train", 50, 200),  # the next 50 of the same shuffled order: disjoint from train
    "test": (HIDDEN, "t10k", 100, 0),
}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped) as a uint8 array: images (n, 28, 28) or labels (n,)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    rng = np.random.default_rng(SEED)
    for name, (folder, prefix, per_class, skip) in SPLITS.items():
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        chosen = []
        for c in range(N_CLASSES):
            members = np.flatnonzero(labels == c)
            # A permutation per (file, class) that does not depend on which split asks first.
            perm = np.random.default_rng([SEED, c, 0 if prefix == "train" else 1]).permutation(members)
            chosen.append(perm[skip: skip + per_class])
        index = rng.permutation(np.concatenate(chosen))  # classes interleaved, not in blocks
        X = np.ascontiguousarray(images[index], dtype=np.uint8)
        y = labels[index].astype(np.int64)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.npz"
        np.savez_compressed(path, X=X, y=y)  # zip members stamped 1980-01-01: same bytes each run
        print(f"{path.relative_to(ROOT)}: X{X.shape} {X.dtype}, per class {np.bincount(y).tolist()}, "
              f"{path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
