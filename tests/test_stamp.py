"""The reproducibility stamp (results.Environment): filled from outside the student's code, on the
local backend and (skipping when no engine answers) on docker; a hostile notebook cannot change it."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from autograder import __version__
from autograder.grading import stamp
from autograder.grading.stamp import differences, gpu_models, installed_script
from autograder.results import Environment

HONEST = "def predict(X):\n    return (X[:, 0] > 0).astype(int)"
# Everything a notebook could do to make the stamp lie: rewrite versions in its own process, leave files
# named like a stamp where the harness works, change its environment, print a fake report line.
HOSTILE = textwrap.dedent("""\
    import os, sys, json, platform
    try:
        import torch
        torch.__version__ = "9.9.9-fake"
        torch.version.cuda = "99.0"
    except ImportError:
        pass
    platform.python_version = lambda: "0.0.1"
    os.environ["PYTHONHASHSEED"] = "1234"
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":16:8"
    for name in ("environment.json", "stamp.json", "../environment.json", ".home/stamp.json"):
        try:
            with open(name, "w") as f:
                json.dump({"torch": "9.9.9-fake", "python": "0.0.1", "gpu": "H100"}, f)
        except OSError:
            pass
    print(json.dumps({"environment": {"torch": "9.9.9-fake"}}))
    def predict(X):
        return (X[:, 0] > 0).astype(int)
""")
# The settings are in force inside the sandbox, not only written on the stamp.
CHECKS_SETTINGS = textwrap.dedent("""\
    import os
    assert os.environ["PYTHONHASHSEED"] == "0", os.environ.get("PYTHONHASHSEED")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert hash("stamp") == {expected}
    def predict(X):
        return (X[:, 0] > 0).astype(int)
""")


def _hash_with_seed_zero(text: str) -> int:
    out = subprocess.run([sys.executable, "-c", f"print(hash({text!r}))"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)
    return int(out.stdout)


def _cpuinfo_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return ""


def _seeded(course: Path) -> None:
    """Name the toy lab's `seed` parameter as its seed (lab.yaml's seed_parameter)."""
    path = course / "assignments" / "toy" / "lab.yaml"
    seeded = "parameters:\n  seed: 7\nseed_parameter: seed\n"
    path.write_text(path.read_text().replace("parameters:\n  seed: 0\n", seeded))


# --- the local backend -------------------------------------------------------------------------------------------

def test_the_local_stamp_holds_this_hosts_conditions(grade, submissions, course):
    _seeded(course)
    submissions("ana", HONEST)
    env = grade(submissions.folder)["ana"].environment
    assert env is not None
    torch = importlib.metadata.version("torch")
    assert env.python == platform.python_version() and env.torch == torch
    if "+cpu" in torch:
        assert env.cuda is None  # the CPU build here: no CUDA
    assert env.image == "" and env.image_digest == "" and env.backend == "local"
    assert env.gpu is None and env.driver is None  # no GPU held
    if _cpuinfo_model():
        assert env.cpu.startswith(_cpuinfo_model())
    assert env.platform.startswith(platform.system())
    assert env.deterministic == {"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "1",
                                 "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert env.harness_version == __version__
    assert env.seed_parameter == "seed" and env.seeds == [7]  # the value the notebook was given
    assert env.limits["timeout"] == 60 and env.limits["cpus"] == 1  # the toy lab's, as they applied


def test_the_settings_on_the_stamp_are_in_force_in_the_sandbox(grade, submissions):
    submissions("strict", CHECKS_SETTINGS.format(expected=_hash_with_seed_zero("stamp")))
    result = grade(submissions.folder)["strict"]
    assert result.execution is not None and result.execution.status == "ok", result.execution


def test_a_hostile_notebook_does_not_change_the_stamp(grade, submissions):
    submissions("honest", HONEST)
    submissions("liar", HOSTILE)
    results = grade(submissions.folder)
    honest, liar = results["honest"], results["liar"]
    assert liar.execution is not None and liar.execution.status == "ok"  # it ran all it wanted
    assert liar.environment == honest.environment
    assert liar.environment is not None and "fake" not in liar.environment.model_dump_json()


def test_a_lab_without_a_seed_parameter_records_no_seed(grade, submissions):
    submissions("ana", HONEST)
    env = grade(submissions.folder)["ana"].environment
    assert env is not None and env.seed_parameter is None and env.seeds == []


def test_a_result_judged_from_a_recorded_run_keeps_that_runs_stamp(grade, submissions, course, store):
    """A rubric change re-judges from the recorded run: the stamp is the one taken when the notebook ran
    (say on an image since rebuilt), never today's conditions written over it."""
    submissions("ana", HONEST)
    first = grade(submissions.folder)["ana"]
    assert first.execution is not None and first.execution.environment is None  # said once, on the result
    with store.write():
        rows = store._db.execute("SELECT key, result FROM stages WHERE stage = 'execute'").fetchall()
        assert len(rows) == 1 and '"environment"' in rows[0][1]  # the stage record holds its own stamp
        recorded = json.loads(rows[0][1])
        recorded["environment"]["torch"] = "1.0.0-when-it-ran"
        store._db.execute("UPDATE stages SET result = ? WHERE key = ?", (json.dumps(recorded), rows[0][0]))
    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace("min: 0.9", "min: 0.85"))  # a new rubric: judged again
    again = grade(submissions.folder)["ana"]
    assert again.rubric_hash != first.rubric_hash
    assert again.environment is not None and again.environment.torch == "1.0.0-when-it-ran"


# --- how the facts are read --------------------------------------------------------------------------------------

def test_torch_and_its_cuda_are_read_from_files_without_importing_torch(tmp_path):
    """A torch whose __init__ would fail (or take seconds) is still read: its metadata and version.py."""
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("raise SystemExit('torch was imported')\n")
    (site / "torch" / "version.py").write_text("from typing import Optional\n__version__ = '2.5.1+cu124'\n"
                                               "cuda: Optional[str] = '12.4'\ngit_version = 'abc'\n")
    meta = site / "torch-2.5.1+cu124.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1+cu124\n")
    script = installed_script(f"import sys; sys.path.insert(0, {str(site)!r})\n")
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    found = json.loads(out.stdout)
    assert found["torch"] == "2.5.1+cu124" and found["cuda"] == "12.4"
    assert found["python"] == platform.python_version()


def test_no_torch_is_said_as_none(tmp_path):
    script = installed_script("import importlib.metadata as m\n"
                              "def _none(name):\n    raise m.PackageNotFoundError(name)\nm.version = _none\n")
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    import json

    found = json.loads(out.stdout)
    assert found["torch"] == "" and found["cuda"] is None and found["python"] == platform.python_version()


def test_gpu_model_and_driver_come_from_nvidia_smi_for_the_gpus_held(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n"
                    "case \"$1\" in\n"
                    "  --query-gpu=index,name,driver_version) printf '0, NVIDIA H200, 570.86.15\\n"
                    "1, NVIDIA H200, 570.86.15\\n2, NVIDIA A100-SXM4-80GB, 570.86.15\\n' ;;\n"
                    "esac\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    stamp.forget()
    try:
        assert gpu_models(["1"]) == ("NVIDIA H200", "570.86.15")
        assert gpu_models(["0", "1"]) == ("2 x NVIDIA H200", "570.86.15")
        assert gpu_models(["1", "2"]) == ("NVIDIA H200, NVIDIA A100-SXM4-80GB", "570.86.15")
        assert gpu_models(["7"]) == (None, None)  # not a GPU this host has
        assert gpu_models([]) == (None, None)  # a CPU run asks nvidia-smi nothing
        monkeypatch.setenv("PATH", "/nonexistent")
        stamp.forget()
        assert gpu_models(["0"]) == (None, None)  # no nvidia-smi: unknown, never guessed
    finally:
        stamp.forget()


def test_differences_name_each_condition_that_changed():
    then = Environment(python="3.11.7", torch="2.13.0+cpu", image_digest="sha256:aa", cpu="AMD EPYC",
                       deterministic={"PYTHONHASHSEED": "0"})
    now = then.model_copy(update={"torch": "2.14.0", "deterministic": {}})
    assert differences(then, then) == []
    assert differences(then, now) == ["torch: 2.13.0+cpu then, 2.14.0 now",
                                      "deterministic: PYTHONHASHSEED=0 then, none now"]


def test_a_result_from_before_stamps_still_loads():
    from autograder.results import SubmissionResult

    old = {"lab": "toy", "student": "ana", "submission_hash": "0" * 64, "lab_version": "1", "rubric_hash": "r",
           "verdict": "G", "criteria": []}
    r = SubmissionResult.model_validate(old)
    assert r.environment is None and r.compute is None


# --- the docker backend ------------------------------------------------------------------------------------------

def test_the_docker_stamp_reads_the_image_from_the_engine(grade, submissions, docker_backend):
    submissions("honest", HONEST)
    submissions("liar", HOSTILE)
    results = grade(submissions.folder, backend=docker_backend)
    env = results["honest"].environment
    assert env is not None and env.backend == "docker"
    image = docker_backend.client.images.get(docker_backend.image_for([]))
    assert env.image == docker_backend.image_for([]) and env.image_digest == image.id
    truth = docker_backend.client.containers.run(
        image.id, ["python", "-c", "import platform, torch; print(platform.python_version(), torch.__version__, "
                   "torch.version.cuda)"], network_mode="none", remove=True, stdout=True, stderr=False)
    python, torch, cuda = truth.decode().split()
    assert (env.python, env.torch, env.cuda) == (python, torch, None if cuda == "None" else cuda)
    assert results["liar"].environment == env  # what the notebook did in its container changes nothing


def test_the_stamp_costs_a_lookup_once_the_host_is_read():
    """Cheap enough for every result: after the first read, the local stamp is a cached lookup
    (figures in docs/benchmarks.md, from benchmarks/stamp.py; no timing is asserted here)."""
    from autograder.labs.lab import load_lab
    from autograder.labs.spec import Limits
    from autograder.sandbox import get_backend

    lab = load_lab("toy", Path(__file__).parent / "fixtures" / "course")
    backend = get_backend("local")
    first = stamp.environment(lab, backend, Limits())
    assert stamp.environment(lab, backend, Limits()) == first
    assert stamp._CACHE  # noqa: SLF001 - what makes it cheap
