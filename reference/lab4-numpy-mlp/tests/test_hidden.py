"""Hidden tests of lab4-numpy-mlp, run on the host against the hidden probes `functions` and `gradients`.

The student's functions on the secret-seed cases of reference/lab4-numpy-mlp/probes.py (a batch of
one, deeper and shallower networks, logits far beyond what exp() holds), judged by the public
tests' own checks, so that both tiers judge alike. The messages name the call's shapes and layer
widths, never the input values, so they are shown to students. The accuracy on the hidden test set
is a rubric criterion, not a test.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.public


@pytest.fixture
def public_checks(lab):
    """The public tests' module (assignments/lab4-numpy-mlp/tests/test_public.py), for its checks."""
    path = lab.public_tests_dir / "test_public.py"
    spec = importlib.util.spec_from_file_location("lab4_numpy_mlp_public_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fn", ["relu", "softmax", "cross_entropy", "forward"])
def test_function_matches_pytorch_on_hidden_inputs(fn, probe_outputs, probes_module, public_checks):
    public_checks.check_function(fn, probe_outputs["functions"], probes_module.function_cases())


def test_count_parameters_on_hidden_networks(probe_outputs, probes_module, public_checks):
    public_checks.check_function("count_parameters", probe_outputs["functions"], probes_module.function_cases())


def test_gradients_match_finite_differences_on_a_deeper_network(probe_outputs, probes_module, public_checks):
    public_checks.check_gradients(probe_outputs["gradients"], probes_module.gradient_case())
