"""Hidden tests of lab2-cnn, run on the host against the hidden probe `layers`.

The student's NumPy layers on the secret-seed cases of reference/lab2-cnn/probes.py (non-square
images and kernels, strides and paddings the public cases lack), compared with torch.nn.functional
by the public tests' own check, so that both tiers judge alike. The messages name the call's
shapes and arguments, never the input values, so they are shown to students. Accuracy, gap and
size are rubric criteria, not tests.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.public


@pytest.fixture
def public_checks(lab):
    """The public tests' module (assignments/lab2-cnn/tests/test_public.py), for its check_layer."""
    path = lab.public_tests_dir / "test_public.py"
    spec = importlib.util.spec_from_file_location("lab2_cnn_public_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fn", ["conv2d", "max_pool2d", "relu", "dense"])
def test_layer_matches_pytorch_on_hidden_inputs(fn, probe_outputs, probes_module, public_checks):
    public_checks.check_layer(fn, probe_outputs["layers"], probes_module.layer_cases())
