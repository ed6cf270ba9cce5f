"""What a lab's probes.py may use besides numpy and torch: the probe author's API.

A probe is `probe_<name>(exports, inputs) -> dict of arrays`. It runs on the host; `exports[...]`
are the student's objects, each living in a sandbox of its own and reached as a `Remote` (calls,
attributes and items go there as messages; numbers, strings, arrays and tensors come back), and
`inputs` maps each split to its X. Write probes as plain Python calls on the objects:

    def probe_scores(exports, inputs):
        model = exports["model"]
        return {split: model(torch.as_tensor(X)) for split, X in inputs.items()}

Where what is judged is computed from the inputs themselves (reconstruction, denoising,
compression), no single sandbox may hold both the inputs and what comes out: split the probe into
`steps`, each run in a fresh sandbox that gets only the previous step's arrays.

    probe_reconstructions = steps(encode, decode)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autograder.grading.remote import Remote, StudentCodeError, is_instance

__all__ = ["ProbeFailure", "Remote", "Steps", "StudentCodeError", "check_codes", "is_instance", "steps"]

Step = Callable[[Mapping[str, Any], Mapping[str, np.ndarray]], dict[str, Any]]


class ProbeFailure(Exception):
    """Raised by probe code to fail a probe with a message the author vouches is safe to show the
    student, even in a hidden probe (where other exceptions show only their type)."""


@dataclass(frozen=True)
class Steps:
    """A probe in steps: step 1 gets the inputs in the stage's first sandbox; step k > 1 runs in a
    fresh sandbox of its own and gets, as `inputs`, only the arrays step k-1 returned (checked and
    converted to plain numpy arrays on the host on the way)."""

    functions: tuple[Step, ...]

    def __call__(self, exports: Mapping[str, Any], inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        raise TypeError("a probe in steps is run by the probe stage, one sandbox per step")


def steps(*functions: Step) -> Steps:
    """A probe whose steps run in separate sandboxes; see `Steps`."""
    if len(functions) < 2 or not all(callable(f) for f in functions):
        raise TypeError("steps() takes two or more functions (exports, inputs) -> dict of arrays")
    return Steps(tuple(functions))


def check_codes(codes: Any, n: int, max_per_item: int, what: str = "the code") -> np.ndarray:
    """The output of an encoding step as float32 (n, k) with k <= max_per_item, finite: what may
    pass to the next sandbox. Anything else is a ProbeFailure saying what was wrong."""
    try:
        array = np.asarray(codes.detach().cpu().numpy() if hasattr(codes, "detach") else codes)
    except Exception as exc:  # noqa: BLE001 - whatever came back, it is not an array of numbers
        raise ProbeFailure(f"{what} is not an array of numbers") from exc
    if array.dtype.kind not in "biuf":
        raise ProbeFailure(f"{what} is not an array of numbers (dtype {array.dtype})")
    if array.ndim < 1 or len(array) != n:
        raise ProbeFailure(f"{what} has shape {array.shape}; expected one code per image ({n})")
    array = array.reshape(n, -1).astype(np.float32)
    if array.shape[1] > max_per_item:
        raise ProbeFailure(f"{what} has {array.shape[1]} numbers per image; at most {max_per_item} may pass to "
                           "the decoder")
    if not np.all(np.isfinite(array)):
        raise ProbeFailure(f"{what} holds NaN or infinite values")
    return array
