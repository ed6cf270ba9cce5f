"""Where each stage keeps what it produced, and the one way a probe's arrays are read back.

A stage's folder lives under the store's artifacts root, one per submission and stage run:

    <root>/<lab>/<sha256[:16]>/<stage>-<key[:12]>/
        executed.ipynb          execute: the notebook as papermill ran it (from the runner's pipe)
        exports/<name>.pkl      execute: each declared export, pickled by the capture cell
        outputs/<probe>.npz     probe: each probe's arrays, written by the host

Every reader and writer (the stages, the pipeline, the feedback pages) goes through these names,
so the layout is spelled once. The arrays came through student code: they are read only with
`arrays.load_npz`, every header checked before any data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autograder.arrays import load_npz

EXECUTED = "executed.ipynb"
EXPORTS = "exports"
OUTPUTS = "outputs"
MAX_OUTPUT_BYTES = 256 * 1024**2  # all arrays of one probe's output


def stage_folder(root: Path, lab: str, sha256: str, stage: str, key: str) -> Path:
    """The folder of one stage run: keyed by the submission and by everything the stage's result depends on."""
    return root / lab / sha256[:16] / f"{stage}-{key[:12]}"


@dataclass(frozen=True)
class ExecuteArtifacts:
    folder: Path

    @property
    def notebook(self) -> Path:
        return self.folder / EXECUTED

    @property
    def exports(self) -> Path:
        return self.folder / EXPORTS


@dataclass(frozen=True)
class ProbeArtifacts:
    folder: Path

    @property
    def outputs(self) -> Path:
        return self.folder / OUTPUTS

    def output(self, probe: str) -> Path:
        return self.outputs / f"{probe}.npz"

    def write(self, probe: str, arrays: dict[str, Any]) -> None:  # Any: numpy types **kwds as its own keywords
        self.outputs.mkdir(parents=True, exist_ok=True)
        np.savez(self.output(probe), **arrays)

    def read(self, probe: str, keys: Iterable[str] | None = None, max_bytes: int = MAX_OUTPUT_BYTES,
             ) -> dict[str, np.ndarray]:
        """A probe's arrays (all, or the named keys), plain numbers and text only, each header checked
        first; ArrayRefused for what the host will not read, OSError when the file is missing."""
        return load_npz(self.output(probe), keys=keys, max_total_bytes=max_bytes,
                        max_array_bytes=min(max_bytes, MAX_OUTPUT_BYTES))
