"""Write the lab4-numpy-mlp data splits: the 8x8 handwritten digits bundled with scikit-learn.

scikit-learn ships the digits (UCI's optdigits test set, 1797 images by 43 writers) inside its
wheel, so no download is needed; students do not have scikit-learn (nor need it), so the splits
are committed and this script says how they were made. One fixed shuffle divides the images into
public train and val splits and the hidden test split (labels for grading only). X holds the
images as uint8 (n, 8, 8) with intensities 0..16, y the digits as int64. The shuffle seed is
fixed and `np.savez_compressed` stamps zip members 1980-01-01: the same bytes on every run.

Run from anywhere, with scikit-learn installed (the course's own environment has it through the
`semantic` extra): `python reference/lab4-numpy-mlp/make_data.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHUFFLE_SEED = 20_260_404
SPLITS = {  # name: (folder, images), taken in this order from the shuffled set; test takes the rest
    "train": (ROOT / "assignments" / "lab4-numpy-mlp" / "data", 900),
    "val": (ROOT / "assignments" / "lab4-numpy-mlp" / "data", 300),
    "test": (ROOT / "reference" / "lab4-numpy-mlp" / "data", None),
}


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.images.astype(np.uint8)  # whole numbers 0..16 stored as floats
    assert np.array_equal(X, digits.images), "the digits are no longer whole numbers 0..16"
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(y))
    start = 0
    for name, (folder, n) in SPLITS.items():
        idx = order[start:] if n is None else order[start:start + n]
        start += len(idx)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.npz"
        np.savez_compressed(path, X=np.ascontiguousarray(X[idx]), y=y[idx])
        print(f"{path.relative_to(ROOT)}: X{X[idx].shape} {X.dtype}, {path.stat().st_size / 1e3:.0f} kB, "
              f"classes {np.bincount(y[idx], minlength=10).tolist()}")


if __name__ == "__main__":
    main()
