"""The GPU paths on real hardware: a run gets its GPU, its memory cap holds, its use is measured from
outside, and a model trained on the GPU is probed. Skips, saying why, on a host without an NVIDIA GPU
(CI has none; these ran on an H200 through the device tool, see docs/benchmarks.md)."""

from __future__ import annotations

import pytest
import yaml

from autograder.grading.intake import discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.lab import load_lab
from autograder.sandbox import get_backend
from autograder.sandbox.gpus import detect


def _cuda() -> str | None:
    if not detect():
        return "no NVIDIA GPU here (nvidia-smi lists none)"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "torch here has no CUDA"


pytestmark = [pytest.mark.slow, pytest.mark.gpu,
              pytest.mark.skipif(_cuda() is not None, reason=f"GPU tests: {_cuda()}")]

HOLD = """
import time
import torch
assert device == "cuda" and torch.cuda.is_available(), (device, torch.cuda.is_available())
block = torch.ones(256 * 1024**2 // 4, device=device)  # 256 MiB, within the 1 GiB cap
time.sleep(3)  # long enough for the outside sampling (once a second) to see it
def predict(X):
    return (X[:, 0] > 0).astype(int)
"""

GREEDY = """
import torch
block = torch.ones(2 * 1024**3 // 4, device=device)  # 2 GiB, over the 1 GiB cap
def predict(X):
    return (X[:, 0] > 0).astype(int)
"""

TRAINED = """
import numpy as np
import torch
torch.manual_seed(0)
X = torch.tensor(train["X"], device=device)
y = torch.tensor(train["y"], device=device)
model = torch.nn.Linear(2, 2).to(device)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for _ in range(200):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(X), y).backward()
    opt.step()
assert next(model.parameters()).is_cuda
def predict(X):
    # Probed in a sandbox without a GPU: the pickled CUDA weights must arrive on the CPU.
    p = next(model.parameters())
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(X), device=p.device)).argmax(1).cpu().numpy()
"""


@pytest.fixture
def gpu_lab(course):
    path = course / "assignments" / "toy" / "lab.yaml"
    spec = yaml.safe_load(path.read_text())
    # Host memory too: CUDA and cuBLAS take over 1 GiB resident in the kernel's process (seen on an H200).
    spec["limits"].update(gpus=1, gpu_memory_gb=1, memory="6GiB")
    path.write_text(yaml.safe_dump(spec))
    return load_lab("toy", course)


def test_gpu_runs_are_placed_capped_and_measured(gpu_lab, store, submissions, tmp_path):
    for name, body in (("hold", HOLD), ("greedy", GREEDY), ("trained", TRAINED)):
        submissions(name, body)
    grader = Grader(gpu_lab, store, get_backend("local"), Options(scratch=tmp_path, gpus=[detect()[0].index]))
    results = {r.student: r for r in grader.grade_all(discover(submissions.folder))}
    hold = results["hold"]
    assert hold.verdict == "G", hold.criteria
    assert hold.execution.device == "cuda" and hold.execution.gpus == [detect()[0].index]
    assert hold.execution.peak_gpu_memory_mb is not None and hold.execution.peak_gpu_memory_mb >= 256
    greedy = results["greedy"]
    assert greedy.verdict == "U"
    assert "OutOfMemoryError" in greedy.execution.message or "out of memory" in greedy.execution.message.lower()
    trained = results["trained"]
    assert trained.verdict == "G", [(c.id, c.message) for c in trained.criteria]
    assert trained.probes.probes["scores"].status == "ok"
