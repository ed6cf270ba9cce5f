"""Metrics beyond accuracy on real executed notebooks: reconstructions (MSE, PSNR, their gap) and
text outputs (CER), with labels that are strings, through the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PROBES = '''
import numpy as np


def probe_scores(exports, inputs):
    return {split: np.asarray(exports["predict"](x)) for split, x in inputs.items()}


def probe_recon(exports, inputs):
    return {split: np.asarray(exports["reconstruct"](x), dtype=np.float32) for split, x in inputs.items()}


def probe_text(exports, inputs):
    return {"words": np.asarray(exports["read_text"](inputs["words"]), dtype=str)}
'''

RUBRIC = """
lab: toy
criteria:
  - {id: runs, kind: notebook-runs}
  - {id: balanced, kind: metric, metric: balanced-accuracy, min: 0.9}
  - {id: f1, kind: metric, metric: macro-f1, min: 0.9}
  - {id: mse, kind: metric, metric: mse, probe: recon, target: inputs, max: 0.01}
  - {id: psnr, kind: metric, metric: psnr, probe: recon, target: inputs, data_range: 8, min: 30}
  - {id: recon-gap, kind: generalization-gap, metric: mse, probe: recon, target: inputs, max: 0.005}
  - {id: cer, kind: metric, metric: cer, probe: text, split: words, max: 0.1}
"""

GOOD = '''
def predict(X):
    return (X[:, 0] > 0).astype(int)

def reconstruct(X):
    return X.copy()

def read_text(X):
    return ["pos" if x > 0 else "neg" for x in X[:, 0]]
'''

# Wrong on every fourth point, a blurry reconstruction that memorised the training set, and a
# misspelt word.
BAD = '''
train_X = np.asarray(train["X"])

def predict(X):
    y = (X[:, 0] > 0).astype(int)
    y[::4] = 1 - y[::4]
    return y

def reconstruct(X):
    if X.shape == train_X.shape and np.allclose(X, train_X):
        return X.copy()
    return X * 0.5

def read_text(X):
    return ["ps" if x > 0 else "neg" for x in X[:, 0]]
'''


@pytest.fixture
def metric_course(course):
    """The toy course with a reconstruction export, a text export and a hidden split of words."""
    spec = course / "assignments" / "toy" / "lab.yaml"
    spec.write_text(spec.read_text().replace("exports: [predict]", "exports: [predict, reconstruct, read_text]")
                    .replace("  test: hidden", "  test: hidden\n  words: hidden"))
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 2)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "pos", "neg")
    np.savez(course / "reference" / "toy" / "data" / "words.npz", X=X, y=y)
    (course / "reference" / "toy" / "probes.py").write_text(PROBES)
    (course / "rubrics" / "toy.yaml").write_text(RUBRIC)
    return course


def by_id(result):
    return {c.id: c for c in result.criteria}


def test_reconstruction_and_text_metrics_on_real_runs(metric_course, submissions, grade):
    submissions("good", GOOD)
    submissions("bad", BAD)
    results = grade(submissions.folder)
    assert results["good"].verdict == "G", [c.message for c in results["good"].criteria if c.status != "pass"]
    good = by_id(results["good"])
    assert good["mse"].value == 0.0 and good["psnr"].value == 100.0 and good["cer"].value == 0.0

    bad = by_id(results["bad"])
    assert results["bad"].verdict == "U"
    assert {i for i, c in bad.items() if c.status == "fail"} == {"balanced", "f1", "mse", "psnr", "recon-gap"}
    positives = np.mean(np.load(metric_course / "reference/toy/data/words.npz")["y"] == "pos")
    assert bad["cer"].value == pytest.approx(positives / 3, abs=1e-6)  # one letter of three lost, on "pos" only
    # 60 words: the error rate's 95% interval holds the 0.1 bar, so under the default policy a teacher decides
    low, high = bad["cer"].details["interval"]
    assert bad["cer"].status == "review" and low <= 0.1 <= high and "holds the bar 0.10" in \
        bad["cer"].details["uncertain"]
    assert "Mean squared error on the hidden test set" in bad["mse"].message
    assert bad["recon-gap"].message.startswith("Overfitting: mean squared error 0")
    assert bad["recon-gap"].details["train"] == 0.0 and bad["recon-gap"].details["test"] > 0.1
