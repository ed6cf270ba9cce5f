"""Public tests of lab4-numpy-mlp: run at grading and by `autograder check` on your own machine.

They compare what your functions in `mlp.py` returned on the public cases of probes.py with what
PyTorch computes, check your gradients against finite differences of your own loss, and check what
the rubric takes for granted: one score per class for every image, a network within the parameter
budget that your count_parameters() counts right. The hidden tests (grading only) run the same
checks on other cases. Assert messages say what is wrong, not how to fix the code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.public

N_CLASSES = 10
MAX_PARAMETERS = 20_000  # as in mlp.py
RTOL, ATOL = 1e-6, 1e-8  # against PyTorch, in float64
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6  # against central differences, whose own error is about 1e-10
LARGE = 100.0  # an input this large in size is named in the message: exp() of it overflows or underflows
INIT_STD_TOLERANCE = 0.15  # He initialisation: the weights' standard deviation within 15% of sqrt(2 / n_in)


def to_torch(value):
    if isinstance(value, (list, tuple)):
        return [to_torch(v) for v in value]
    return torch.from_numpy(np.asarray(value))


def expected(fn: str, args: tuple) -> np.ndarray:
    """What PyTorch computes for the case, in float64."""
    if fn == "relu":
        out = torch.relu(to_torch(args[0]))
    elif fn == "softmax":
        out = torch.softmax(to_torch(args[0]), dim=1)
    elif fn == "cross_entropy":
        out = F.cross_entropy(to_torch(args[0]), to_torch(args[1]).long())
    elif fn == "forward":
        params, a = to_torch(args[0]), to_torch(args[1])
        for i, (W, b) in enumerate(params):
            a = a @ W + b
            a = a if i == len(params) - 1 else torch.relu(a)
        out = a
    elif fn == "count_parameters":
        return np.array(float(sum(np.size(W) + np.size(b) for W, b in args[0])))  # no torch needed to count
    else:
        raise ValueError(f"unknown function {fn!r}")
    return out.numpy()


def describe(fn: str, args: tuple) -> str:
    """The call as the student reads it: shapes and sizes, never the values."""
    parts = []
    for arg in args:
        if isinstance(arg, list):
            sizes = [arg[0][0].shape[0], *(W.shape[1] for W, _ in arg)]
            parts.append(f"params of a network with layer widths {sizes}")
        else:
            largest = float(np.abs(arg).max()) if np.size(arg) else 0.0
            big = f" with values up to {largest:.0e} in size" if largest >= LARGE else ""
            parts.append(f"an array of shape {tuple(np.shape(arg))}{big}")
    return f"{fn}({', '.join(parts)})"


def check_function(fn: str, outputs, cases) -> None:
    """Fail with the first case of `fn` whose result is missing, of the wrong shape or wrong."""
    ran = [case for case in cases if case[1] == fn]
    assert ran, f"no cases for {fn}"
    for name, _, args in ran:
        call = describe(fn, args)
        error = outputs.get(f"{name}__error")
        assert error is None, f"{call} raised {error}"
        assert name in outputs, f"{call} returned nothing the grader could read"
        got, want = outputs[name], expected(fn, args)
        if fn == "count_parameters":
            assert got.shape == () and got == want, (
                f"{call} returned {got.item():g}; the network has {int(want):,} weights and biases"
            )
            continue
        if fn == "forward":
            call += " (its logits)"
        assert got.shape == want.shape, f"{call} returned shape {got.shape}; expected {want.shape}"
        assert np.all(np.isfinite(got)), f"{call} returned NaN or infinite values"
        diff = float(np.abs(got - want).max()) if got.size else 0.0
        assert np.allclose(got, want, rtol=RTOL, atol=ATOL), f"{call} differs from PyTorch's by up to {diff:.3g}"


def check_gradients(outputs, case: dict) -> None:
    """Every gradient loss_and_grads() gave matches the central differences of loss()."""
    error = outputs.get("gradients__error")
    sizes = case["sizes"]
    assert error is None, f"the gradient check on a network with layer widths {sizes} failed: {error}"
    names = sorted(k.removeprefix("analytic_") for k in outputs if k.startswith("analytic_"))
    assert names, "backward() returned no gradients the grader could read"
    for name in names:
        got, want = outputs[f"analytic_{name}"], outputs[f"numeric_{name}"]
        what = f"d{name} of a network with layer widths {sizes}"
        assert np.all(np.isfinite(got)), f"{what} holds NaN or infinite values"
        diff = float(np.abs(got - want).max())
        assert np.allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL), (
            f"{what} differs from the finite differences of your loss() by up to {diff:.3g}"
        )


@pytest.mark.parametrize("fn", ["relu", "softmax", "cross_entropy", "forward"])
def test_function_matches_pytorch(fn, probe_outputs, probes_module):
    check_function(fn, probe_outputs["functions_public"], probes_module.function_cases())


def test_count_parameters_counts_weights_and_biases(probe_outputs, probes_module):
    check_function("count_parameters", probe_outputs["functions_public"], probes_module.function_cases())


def test_gradients_match_finite_differences(probe_outputs, probes_module):
    check_gradients(probe_outputs["gradients_public"], probes_module.gradient_case())


def test_init_params_is_he_initialisation(probe_outputs, probes_module):
    outputs, sizes = probe_outputs["functions_public"], probes_module.INIT_SIZES
    call = f"init_params({sizes}, seed)"
    for prefix in probes_module.INIT_SEEDS:
        assert f"{prefix}__error" not in outputs, f"{call} raised {outputs[f'{prefix}__error']}"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W, b = outputs[f"init_W{i}"], outputs[f"init_b{i}"]
        assert W.shape == (n_in, n_out) and b.shape == (n_out,), (
            f"{call} gave layer {i} W of shape {W.shape} and b of shape {b.shape}; expected {(n_in, n_out)} and "
            f"{(n_out,)}"
        )
        assert np.all(b == 0), f"{call} gave layer {i} biases that are not zero"
        std, want = float(W.std()), float(np.sqrt(2.0 / n_in))
        assert abs(std - want) <= INIT_STD_TOLERANCE * want and abs(float(W.mean())) <= 0.1 * want, (
            f"{call} gave layer {i} weights of mean {W.mean():.3g} and standard deviation {std:.3g}; "
            f"He initialisation has mean 0 and standard deviation sqrt(2 / {n_in}) = {want:.3g}"
        )
        assert np.array_equal(W, outputs[f"init_again_W{i}"]), f"{call} gave other weights for the same seed"
        assert not np.array_equal(W, outputs[f"init_other_W{i}"]), f"{call} gave the same weights for another seed"


def test_features_depend_on_each_image_alone(probe_outputs, probes_module):
    outputs = probe_outputs["functions_public"]
    many, few = probes_module.FEATURE_IMAGES
    for n in (many, few):
        error = outputs.get(f"preprocess_{n}__error")
        assert error is None, f"preprocess() of {n} images raised {error}"
    a, b = outputs[f"preprocess_{many}"], outputs[f"preprocess_{few}"]
    assert a.ndim == 2 and len(a) == many, (
        f"preprocess() of {many} images returned shape {a.shape}; expected ({many}, d)"
    )
    assert np.all(np.isfinite(a)), "preprocess() returned NaN or infinite features"
    assert b.shape == (few, a.shape[1]), (
        f"preprocess() of {few} images returned shape {b.shape}; expected {(few, a.shape[1])}"
    )
    assert np.allclose(a[:few], b, rtol=1e-9, atol=1e-12), (
        f"the features of the same {few} images differ when they are preprocessed alone and in a batch of {many}: "
        "each image's features must not depend on the other images of the batch"
    )


def test_network_gives_one_score_per_class(probe_outputs, inputs):
    for split, X in inputs.items():
        scores = probe_outputs["scores"][split]
        assert scores.shape == (len(X), N_CLASSES), (
            f"predict() returned shape {tuple(scores.shape)} for the {len(X)} images of the {split} split; "
            f"expected ({len(X)}, {N_CLASSES}): one score (logit) per class for each image"
        )
        assert np.all(np.isfinite(scores)), f"predict() returned NaN or infinite scores on the {split} split"


def test_trained_network_within_the_parameter_budget(probe_outputs, labels, record_metric):
    scores = probe_outputs["scores"]
    parameters = int(scores["parameters"])
    record_metric("parameters", parameters)
    record_metric("val_accuracy", float((scores["val"].argmax(axis=1) == labels["val"]).mean()))
    assert parameters <= MAX_PARAMETERS, (
        f"the network train() returned has {parameters:,} weights and biases, more than the {MAX_PARAMETERS:,} "
        f"allowed (layer widths {scores['layers'].tolist()})"
    )


def test_count_parameters_of_the_trained_network(probe_outputs):
    scores = probe_outputs["scores"]
    error = scores.get("counted__error")
    assert error is None, f"count_parameters() of the trained network raised {error}"
    counted, parameters = float(scores["counted"]), int(scores["parameters"])
    assert counted == parameters, (
        f"count_parameters() says the trained network (layer widths {scores['layers'].tolist()}) has {counted:g} "
        f"parameters; its weights and biases hold {parameters:,} numbers"
    )
