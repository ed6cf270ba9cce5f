"""Write the lab2-cnn data splits: a fixed, class-balanced subset of Fashion-MNIST.

The full set ships in Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist), which
students on laptops do not have, so the subset is committed and this script says how it was made.
Public train and val come from Fashion-MNIST's training images, the hidden test split from its own
test images, so no hidden image was ever a public one. The selection seed is fixed and
`np.savez_compressed` stamps zip members 1980-01-01: the same bytes on every run.

Run from anywhere: `python reference/lab2-cnn/make_data.py [--source DIR]`.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path("/usr/share/datasets/fashion-mnist")
N_CLASSES = 10
SELECTION_SEED = 20_260_202

# name: (folder, Fashion-MNIST file prefix, images per class); train and val are disjoint draws
# from the same 60,000 training images.
SPLITS = {
    "train": (ROOT / "assignments" / "lab2-cnn" / "data", "train", 300),
    "val": (ROOT / "assignments" / "lab2-cnn" / "data", "train", 100),
    "test": (ROOT / "reference" / "lab2-cnn" / "data", "t10k", 200),
}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped) as a uint8 array: (n, 28, 28) images or (n,) labels."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def balanced_pick(y: np.ndarray, per_class: int, rng: np.random.Generator, taken: np.ndarray) -> np.ndarray:
    """Indices of `per_class` images of each class not yet `taken`, shuffled."""
    picked = []
    for c in range(N_CLASSES):
        free = np.flatnonzero((y == c) & ~taken)
        picked.append(rng.choice(free, size=per_class, replace=False))
    idx = np.concatenate(picked)
    rng.shuffle(idx)
    taken[idx] = True
    return idx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder with Fashion-MNIST's *-ubyte.gz files")
    source = parser.parse_args().source
    rng = np.random.default_rng(SELECTION_SEED)
    cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, (folder, prefix, per_class) in SPLITS.items():
        if prefix not in cache:
            X = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
            y = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
            cache[prefix] = (X, y, np.zeros(len(y), dtype=bool))
        X, y, taken = cache[prefix]
        idx = balanced_pick(y, per_class, rng, taken)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.npz"
        np.savez_compressed(path, X=np.ascontiguousarray(X[idx]), y=y[idx])
        print(f"{path.relative_to(ROOT)}: X{X[idx].shape} {X.dtype}, {path.stat().st_size / 1e6:.2f} MB, "
              f"classes {np.bincount(y[idx]).tolist()}")


if __name__ == "__main__":
    main()
