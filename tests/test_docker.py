"""The docker backend against a real engine: hardening, limits read from the engine, cleanup. Notebooks that
try to escape or exhaust the sandbox: tests/hostile/test_sandbox_escapes.py.

Skips, saying why, when no engine answers or the sandbox image is missing; CI starts an engine
and builds the image (.ci/run), so there every test here runs.
"""

from __future__ import annotations

import socket

import pytest
from graded import sigint_as_at_a_terminal

from autograder.labs.spec import Limits
from autograder.sandbox import BackendSettings, SandboxJob
from autograder.sandbox.containers import OWNER, DockerBackend, remove_leftovers
from autograder.sandbox.engine import LABEL

pytestmark = pytest.mark.slow

# A well-formed job for the tests that only look at how a container is set up around it.
EXECUTE_JOB = {"stage": "execute", "notebook": "n.ipynb", "output": "o.ipynb", "parameters": {}, "exports": [],
               "exports_dir": "exports", "cell_timeout": None, "output_cap": 1024, "output_total_cap": 16384}


def test_containers_are_created_hardened(docker_backend, tmp_path):
    limits = Limits(memory="512MiB", cpus=1.5, pids=100, shm="128MiB", disk="1GiB")
    job = SandboxJob(workdir=tmp_path, request=EXECUTE_JOB, limits=limits)
    container = docker_backend.client.containers.create(**docker_backend.container_config(job))
    try:
        host = container.attrs["HostConfig"]
        config = container.attrs["Config"]
    finally:
        container.remove(force=True)
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["IpcMode"] == "private"
    assert host["Privileged"] is False
    assert host["PidsLimit"] == 100
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024**2
    assert host["NanoCpus"] == 1_500_000_000
    assert host["ShmSize"] == 128 * 1024**2
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"nofile": 4096, "core": 0, "fsize": 1024**3}
    assert host["LogConfig"]["Type"] == "none"  # output is drained under a cap, never logged by the engine
    assert set(host["Tmpfs"]) == {"/tmp"}
    mounts = {m["Target"]: m for m in host["Mounts"]}
    assert set(mounts) == {"/work", "/opt/autograder/runner.py"}
    assert mounts["/opt/autograder/runner.py"]["ReadOnly"] is True
    assert mounts["/work"]["Source"] == str(tmp_path)
    assert not any("docker.sock" in m["Source"] for m in host["Mounts"])
    assert config["User"] and not config["User"].startswith("0")
    assert config["Labels"][f"{LABEL}.owner"] == OWNER
    assert "CUDA_VISIBLE_DEVICES=" in config["Env"]


def test_gpus_become_device_requests_for_those_ids(docker_backend, tmp_path):
    job = SandboxJob(workdir=tmp_path, request=EXECUTE_JOB, limits=Limits(gpus=2), gpu_ids=["1", "3"])
    config = docker_backend.container_config(job)
    (request,) = config["device_requests"]
    assert request["DeviceIDs"] == ["1", "3"] and request["Capabilities"] == [["gpu"]]
    assert config["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"  # the engine renumbers what it exposes


def test_leftovers_of_a_killed_run_are_removed_at_start(docker_backend):
    client = docker_backend.client
    dead = f"{socket.gethostname()}:999999999:1"
    stale = client.containers.create(docker_backend.image, ["sleep", "60"], labels={LABEL: "1", f"{LABEL}.owner": dead})
    mine = client.containers.create(docker_backend.image, ["sleep", "60"], labels={LABEL: "1", f"{LABEL}.owner": OWNER})
    try:
        removed = remove_leftovers(client)
        assert stale.name in removed
        names = {c.name for c in client.containers.list(all=True)}
        assert stale.name not in names and mine.name in names
    finally:
        for c in (stale, mine):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001
                pass


def test_missing_image_and_runtime_are_explained(docker_backend):
    why = DockerBackend(BackendSettings(image="autograder-sandbox:no-such-tag")).unavailable()
    assert "missing" in why and "autograder sandbox build" in why
    why = DockerBackend(BackendSettings(image=docker_backend.image, runtime="no-such-runtime")).unavailable()
    assert "no runtime 'no-such-runtime'" in why


def test_auto_picks_docker_when_an_engine_answers(docker_backend, course, submissions, tmp_path, capsys, monkeypatch):
    from autograder.cli import main
    from autograder.store import Store

    monkeypatch.setenv("AUTOGRADER_BACKEND", "auto")
    submissions("ana")
    db = tmp_path / "g.db"
    args = ["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db)]
    if docker_backend.image != "autograder-sandbox:latest":
        args += ["--image", docker_backend.image]
    assert main(args) == 0
    assert "without isolation" not in capsys.readouterr().err
    (result,) = Store(db).latest("toy")
    assert result.backend == "docker" and result.verdict == "G"


def test_ctrl_c_stops_and_removes_the_containers(docker_backend, course, submissions, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import psutil

    submissions("sleeper", "import subprocess, time\nsubprocess.Popen(['sleep', '876544'])\ntime.sleep(600)")
    args = [sys.executable, "-m", "autograder", "grade", "toy", str(submissions.folder), "--root", str(course),
            "--db", str(tmp_path / "g.db"), "--backend", "docker", "--image", docker_backend.image]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=sigint_as_at_a_terminal)

    def marked():
        return [p for p in psutil.process_iter(["cmdline"]) if "876544" in (p.info["cmdline"] or [])]

    deadline = time.monotonic() + 60
    while not marked() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked(), "the notebook never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert marked() == []
    owners = [c.labels.get(f"{LABEL}.owner", "") for c in
              docker_backend.client.containers.list(all=True, filters={"label": LABEL})]
    assert not [o for o in owners if o.split(":")[1:2] == [str(proc.pid)]]


def test_sandbox_commands_report_and_skip_a_current_image(docker_backend, capsys):
    from autograder.cli import main

    assert main(["sandbox", "doctor", "--image", docker_backend.image, "--runtime", "runsc"]) == 1
    out = capsys.readouterr().out
    assert "engine" in out and "runsc" in out and "gVisor" in out
    if docker_backend.image == "autograder-sandbox:latest":
        assert main(["sandbox", "build", "--if-stale"]) == 0
        assert "up to date" in capsys.readouterr().out


def test_the_engines_stats_stand_in_where_its_cgroups_are_not_visible(docker_backend, tmp_path):
    """A remote engine's cgroups can't be read from here: memory and processes come from its stats."""
    from autograder.sandbox.containers import _Sampler

    container = docker_backend.client.containers.create(docker_backend.image, ["sleep", "30"])
    try:
        container.start()
        job = SandboxJob(workdir=tmp_path, request=EXECUTE_JOB, limits=Limits())
        sampler = _Sampler(docker_backend, container, job, pids_limit=256)
        sampler.cgroup = {}  # as if the engine were elsewhere
        sampler._sample()
        assert sampler.memory and sampler.memory > 0
        assert sampler.pids >= 1
        local = _Sampler(docker_backend, container, job, pids_limit=256)
        local._sample()
        if local.cgroup:  # a local engine, as in CI: the kernel's own figures
            assert local.memory and local.pids >= 1
    finally:
        container.remove(force=True)


def test_grading_with_a_stale_image_says_so(docker_backend, course, submissions, tmp_path, capsys):
    from autograder.cli import main

    base = docker_backend.client.containers.create(docker_backend.image, ["true"])
    stale = "autograder-sandbox:stale-test"
    try:
        base.commit(*stale.split(":"), changes=[f"LABEL {LABEL}.requirements=0000"])
    finally:
        base.remove(force=True)
    try:
        submissions("ana")
        args = ["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(tmp_path / "g.db"),
                "--backend", "docker", "--image", stale]
        assert main(args) == 0
        err = capsys.readouterr().err
        assert f"the sandbox image {stale} is stale" in err and "autograder sandbox build" in err
    finally:
        docker_backend.client.images.remove(stale, force=True)
