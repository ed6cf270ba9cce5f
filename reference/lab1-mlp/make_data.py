"""Write the lab1-mlp data splits: public train/val for students, hidden test for grading.

Three interleaved spiral arms with heavy angular noise: a hidden layer is needed (a linear model
stays near chance), and the small, noisy training set can be memorised by a large network, which
then loses accuracy on the hidden test set; the gap is what the rubric checks. The test seed is
secret: it appears only here, in the staff-only reference folder.

Run from anywhere: `python reference/lab1-mlp/make_data.py`. The output is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datagen import generate

ROOT = Path(__file__).resolve().parents[2]
N_CLASSES = 3
LAYOUT = "polar"
SPREAD = 0.7
TEST_SEED = 804_133_271  # secret: never reuse it in student-visible files

SPLITS = {  # name: (folder, n, seed)
    "train": (ROOT / "assignments" / "lab1-mlp" / "data", 300, 1),
    "val": (ROOT / "assignments" / "lab1-mlp" / "data", 300, 2),
    "test": (ROOT / "reference" / "lab1-mlp" / "data", 2000, TEST_SEED),
}


def main() -> None:
    for name, (folder, n, seed) in SPLITS.items():
        X, y = generate(n, N_CLASSES, LAYOUT, SPREAD, seed)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.npz"
        np.savez(path, X=X, y=y)  # numpy stamps zip members 1980-01-01: same bytes each run
        print(f"{path.relative_to(ROOT)}: X{X.shape} {X.dtype}, classes {np.bincount(y).tolist()}")


if __name__ == "__main__":
    main()
