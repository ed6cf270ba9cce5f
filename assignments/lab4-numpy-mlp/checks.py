"""Helpers shared by the public probes (probes.py) and the grader's hidden ones: how the cases are
drawn, how your functions are called, and the finite-difference check of your gradients.

Runs on the grading host (in the self-check, on your machine), never beside your code: `mlp` below
is a handle to your module in its sandbox (autograder.probing), so every call sends its arrays
there and brings the result back as plain arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autograder.probing import ProbeFailure

EPS = 1e-6  # the step of the central differences; the networks are float64


def random_params(sizes: list[int], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """A network of layer widths `sizes` with standard-normal weights and biases (biases not zero, so
    that a gradient that leaves them out shows), scaled down so the ReLUs are neither all on nor off."""
    return [(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), 0.5 * rng.standard_normal(n_out))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def as_params(value: Any, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """`value` as a list of (W, b) float64 arrays, or a ProbeFailure saying what is wrong with it."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ProbeFailure(f"{what} is not a non-empty list of (W, b) pairs")
    params = []
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ProbeFailure(f"layer {i} of {what} is not a pair (W, b)")
        try:
            W, b = (np.asarray(p, dtype=np.float64) for p in pair)
        except (TypeError, ValueError) as exc:
            raise ProbeFailure(f"layer {i} of {what} does not hold arrays of numbers") from exc
        if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[1]:
            raise ProbeFailure(f"layer {i} of {what} has W of shape {W.shape} and b of shape {b.shape}; expected "
                               "(n_in, n_out) and (n_out,)")
        if params and params[-1][0].shape[1] != W.shape[0]:
            raise ProbeFailure(f"layer {i} of {what} takes {W.shape[0]} inputs but layer {i - 1} gives "
                               f"{params[-1][0].shape[1]}")
        params.append((W, b))
    return params


def flatten(params: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """{"W0": ..., "b0": ..., "W1": ...}: a network as named arrays, for a probe's output."""
    out = {}
    for i, (W, b) in enumerate(params):
        out[f"W{i}"], out[f"b{i}"] = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return out


def caller(mlp: Any, fn: str, args: tuple) -> Callable[[], Any]:
    """A call of your function `fn` on `args`, to run later; of forward()'s (logits, cache), the logits."""
    if fn == "forward":
        return lambda: _first(mlp.forward(*args), "forward()")
    return lambda: getattr(mlp, fn)(*args)


def _first(value: Any, what: str) -> Any:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ProbeFailure(f"{what} did not return a pair (logits, cache)")
    return value[0]


def error_text(exc: Exception) -> np.ndarray:
    """What a failed call leaves in a probe's output: the message (a hidden probe's: the type only)."""
    return np.array((str(exc) or type(exc).__name__)[:500])


def call_each(cases: list[tuple[str, Callable[[], Any]]]) -> dict[str, np.ndarray]:
    """Run each case's call: `<name>` holds the result as float64, or `<name>__error` the error as
    text, so that one failing case does not hide the others."""
    out = {}
    for name, call in cases:
        try:
            out[name] = np.array(call(), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - the message goes back to the student (hidden: its type only)
            out[f"{name}__error"] = error_text(exc)
    return out


def numerical_gradients(loss: Callable[[list], float], params: list[tuple[np.ndarray, np.ndarray]],
                        eps: float = EPS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Central differences (loss(p + eps) - loss(p - eps)) / (2 eps) for every weight and bias, one
    entry at a time: the gradient backward() should give."""
    grads = []
    for i in range(len(params)):
        pair = []
        for j in range(2):
            g = np.zeros_like(params[i][j])
            for k in np.ndindex(g.shape):
                values = []
                for step in (eps, -eps):
                    shifted = [[W.copy(), b.copy()] for W, b in params]
                    shifted[i][j][k] += step
                    values.append(float(loss([tuple(p) for p in shifted])))
                g[k] = (values[0] - values[1]) / (2 * eps)
            pair.append(g)
        grads.append((pair[0], pair[1]))
    return grads


def gradient_check(mlp: Any, sizes: list[int], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Your loss_and_grads() on a random network and batch against finite differences of your loss():
    `analytic_W0`, `numeric_W0`, ... per array, or `gradients__error` when a call failed."""
    params = random_params(sizes, rng)
    X = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    try:
        _, grads = mlp.loss_and_grads(params, X, y)
        analytic = as_params(grads, "the gradients loss_and_grads() returned")
        if [tuple(W.shape) for W, _ in analytic] != [tuple(W.shape) for W, _ in params] or \
                [tuple(b.shape) for _, b in analytic] != [tuple(b.shape) for _, b in params]:
            raise ProbeFailure(f"backward() returned gradients of shapes "
                               f"{[(W.shape, b.shape) for W, b in analytic]}; expected those of params, "
                               f"{[(W.shape, b.shape) for W, b in params]}")
        numeric = numerical_gradients(lambda p: mlp.loss(p, X, y), params)
    except Exception as exc:  # noqa: BLE001 - the message goes back to the student (hidden: its type only)
        return {"gradients__error": error_text(exc)}
    out = {f"analytic_{k}": v for k, v in flatten(analytic).items()}
    out.update({f"numeric_{k}": v for k, v in flatten(numeric).items()})
    return out

