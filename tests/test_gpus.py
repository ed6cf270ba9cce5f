"""GPU settings: placement of runs on GPUs, failing fast without one, the CPU fallback, the memory cap.

This machine has no GPU, so what needs one (CUDA in the sandbox, the cap biting, nvidia-smi's
measurements) is exercised on a GPU host only; here the harness's side of it is checked.
"""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
import yaml

from autograder.errors import UserError
from autograder.grading.pipeline import Grader, Options
from autograder.labs.lab import load_lab
from autograder.labs.spec import Limits
from autograder.sandbox import get_backend
from autograder.sandbox.gpus import GpuPool, detect, memory_used, parse_ids
from autograder.sandbox.local import local_env, process_limits


def test_parse_ids():
    assert parse_ids("0,1") == ["0", "1"]
    assert parse_ids("none") == []
    for bad in ("0,0", "a", "1;2"):
        with pytest.raises(UserError):
            parse_ids(bad)


def test_pool_spreads_runs_and_caps_each_gpu():
    pool = GpuPool(["0", "1"], jobs_per_gpu=2)
    assert pool.slots == 4
    with pool.acquire(1) as a, pool.acquire(1) as b:
        assert {a[0], b[0]} == {"0", "1"}  # the least busy first
        with pool.acquire(2) as both:
            assert sorted(both) == ["0", "1"]
    with pytest.raises(UserError, match="needs 3 GPUs"), pool.acquire(3):
        pass


def test_pool_blocks_until_a_slot_frees():
    pool = GpuPool(["0"], jobs_per_gpu=1)
    order = []

    def second():
        with pool.acquire(1):
            order.append("second")

    with pool.acquire(1):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def test_a_gpu_run_gets_no_data_segment_limit():
    """Under RLIMIT_DATA, cuBLAS fails with "CUDA error: out of memory" (seen on an H200): GPU runs
    rely on the RSS watchdog alone for the memory limit; CPU runs keep the ceiling."""
    limits = Limits(memory="1GiB", disk="1GiB")
    assert process_limits(limits, [])["data"] == 1024**3
    assert "data" not in process_limits(limits, ["0"])
    assert process_limits(limits, ["0"])["fsize"] == 1024**3


def test_local_backend_shows_only_the_assigned_gpus(tmp_path):
    assert local_env(tmp_path, 1, ["2", "3"])["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert local_env(tmp_path, 1, [])["CUDA_VISIBLE_DEVICES"] == ""


def _gpu_lab(course, **limits):
    spec_path = course / "assignments" / "toy" / "lab.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["limits"].update(limits)
    spec_path.write_text(yaml.safe_dump(spec))
    return load_lab("toy", course)


def test_a_gpu_lab_without_a_gpu_fails_fast(course, store, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: no GPU
    lab = _gpu_lab(course, gpus=1)
    with pytest.raises(UserError, match="needs 1 GPU.*no GPU is available") as info:
        Grader(lab, store, get_backend("local"), Options())
    assert "cpu_fallback" in info.value.hint


@pytest.mark.slow
def test_a_gpu_lab_runs_on_the_cpu_where_it_allows(course, store, submissions, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    lab = _gpu_lab(course, gpus=1, cpu_fallback=True)
    grader = Grader(lab, store, get_backend("local"), Options(scratch=tmp_path))
    assert any("running on the CPU" in n for n in grader.notes)
    from autograder.grading.intake import discover

    submissions("ana")
    (r,) = grader.grade_all(discover(submissions.folder))
    assert r.verdict == "G" and r.execution.device == "cpu" and r.execution.gpus == []


@pytest.mark.slow
def test_assigned_gpu_and_memory_cap_reach_the_notebook(course, store, submissions, tmp_path):
    """With GPU 0 given, the run gets device='cuda', CUDA_VISIBLE_DEVICES=0 and the cap cell first
    (on this CPU-only machine torch sees no GPU, so the cap is a no-op, and the toy lab ignores `device`)."""
    from test_verdicts import executed_notebook

    from autograder.grading.intake import discover

    lab = _gpu_lab(course, gpus=1, gpu_memory_gb=2)
    grader = Grader(lab, store, get_backend("local"), Options(scratch=tmp_path, gpus=["0"]))
    submissions("ana", "import os\nprint('VISIBLE=' + os.environ['CUDA_VISIBLE_DEVICES'])\n"
                "def predict(X):\n    return (X[:, 0] > 0).astype(int)\n")
    (r,) = grader.grade_all(discover(submissions.folder))
    assert r.verdict == "G", r.criteria
    assert r.execution.gpus == ["0"] and r.execution.device == "cuda"
    nb = executed_notebook(store)
    setup = nb.cells[0]
    assert "autograder-setup" in setup.metadata["tags"]
    assert "set_per_process_memory_fraction" in setup.source and str(2 * 1024**3) in setup.source
    assert any('device = "cuda"' in c.source for c in nb.cells)
    outputs = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "VISIBLE=0" in outputs


def test_nvidia_smi_output_is_read(tmp_path, monkeypatch):
    """The parsing of nvidia-smi's CSV, with a stand-in that prints what the real one does."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        "case \"$1\" in\n"
        "  --query-gpu=*) printf '0, NVIDIA H100 80GB HBM3, 81559\\n1, NVIDIA H100 80GB HBM3, 81559\\n' ;;\n"
        "  --query-compute-apps=*) printf '4242, 1024\\n999, 300\\n4343, 512\\n' ;;\n"
        "esac\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpus = detect()
    assert [g.index for g in gpus] == ["0", "1"] and gpus[0].memory_mb == 81559
    assert memory_used({4242, 4343}) == (1024 + 512) * 1024**2
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect() == [] and memory_used({1}) is None


def test_probe_runner_loads_gpu_trained_exports_on_the_cpu(monkeypatch):
    """A model trained on a GPU is pickled with CUDA storages; where the probe stage has no GPU, the
    runner makes torch map every pickled storage to the CPU (checked here by the map_location
    torch.load receives: this machine can't make a CUDA tensor)."""
    import importlib.util

    import cloudpickle
    import torch
    import torch.storage

    from autograder.sandbox.base import RUNNER

    spec = importlib.util.spec_from_file_location("runner_under_test", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    model = torch.nn.Linear(3, 2)
    data = cloudpickle.dumps(model)
    assert b"_load_from_bytes" in data  # what the runner looks for before importing torch
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setattr(torch.storage, "_load_from_bytes", torch.storage._load_from_bytes)  # restored after
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the probe stage's view, on a GPU host too
    runner._load_tensors_on_cpu_without_gpu()
    loaded = cloudpickle.loads(data)
    assert seen and set(seen) == {"cpu"}
    assert torch.equal(loaded.weight, model.weight)
