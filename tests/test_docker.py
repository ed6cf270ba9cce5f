"""The docker backend against a real engine: hardening, limits read from the engine, cleanup.

Skips, saying why, when no engine answers or the sandbox image is missing; CI starts an engine
and builds the image (.ci/run), so there every test here runs.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from test_verdicts import GOOD_PREDICT, by_id, executed_notebook

from autograder.sandbox import BackendSettings, SandboxJob
from autograder.sandbox.containers import OWNER, DockerBackend, remove_leftovers
from autograder.sandbox.image import LABEL
from autograder.spec import Limits

pytestmark = pytest.mark.slow


def our_containers(backend) -> list:
    return backend.client.containers.list(all=True, filters={"label": f"{LABEL}.owner={OWNER}"})


def test_containers_are_created_hardened(docker_backend, tmp_path):
    limits = Limits(memory="512MiB", cpus=1.5, pids=100, shm="128MiB", disk="1GiB")
    job = SandboxJob(stage="execute", workdir=tmp_path, request={}, limits=limits)
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
    job = SandboxJob(stage="execute", workdir=tmp_path, request={}, limits=Limits(gpus=2), gpu_ids=["1", "3"])
    config = docker_backend.container_config(job)
    (request,) = config["device_requests"]
    assert request["DeviceIDs"] == ["1", "3"] and request["Capabilities"] == [["gpu"]]
    assert config["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"  # the engine renumbers what it exposes


SPY = r'''
import json, os, socket
facts = {"uid": os.getuid()}
try:
    socket.create_connection(("151.101.2.132", 80), timeout=3).close()
    facts["network"] = "open"
except OSError as exc:
    facts["network"] = f"blocked: {exc}"
try:
    socket.getaddrinfo("deb.debian.org", 80)
    facts["dns"] = "resolves"
except OSError as exc:
    facts["dns"] = f"fails: {exc}"
root = next(line.split() for line in open("/proc/self/mounts") if line.split()[1] == "/")
facts["root_options"] = root[3]
try:
    open("/opt/sandbox/pwned", "w").write("x")
    facts["root_write"] = "written"
except OSError as exc:
    facts["root_write"] = f"refused: {exc.errno}"
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
facts["cap_eff"] = status["CapEff"].strip()
facts["no_new_privs"] = status["NoNewPrivs"].strip()
facts["docker_sock"] = any(os.path.exists(p) for p in ("/var/run/docker.sock", "/run/docker.sock"))
hits = []
for d, dirs, files in os.walk("/"):
    if d.startswith(("/proc", "/sys", "/dev", "/opt/sandbox/lib")):  # the last: the image's packages
        dirs[:] = []
        continue
    for name in dirs + files:
        if name in ("reference", "rubrics", "test.npz", "test_hidden.py", "probes.py", "grades.db"):
            hits.append(os.path.join(d, name))
facts["staff_files"] = hits
facts["work"] = sorted(os.listdir("/work"))
facts["env"] = dict(os.environ)
print("SPY" + json.dumps(facts))
'''


def test_execution_container_is_isolated(docker_backend, submissions, grade, store, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", "hunter2")
    submissions("spy", SPY + GOOD_PREDICT)
    r = grade(submissions.folder, backend=docker_backend)["spy"]
    assert r.verdict == "G", r.criteria
    assert r.backend == "docker"
    nb = executed_notebook(store)
    text = next(o["text"] for c in nb.cells for o in c.get("outputs", []) if "SPY" in o.get("text", ""))
    facts = json.loads(text.split("SPY", 1)[1])
    assert facts["network"].startswith("blocked")
    assert facts["dns"].startswith("fails")
    assert facts["root_options"].split(",")[0] == "ro"
    assert facts["root_write"] == "refused: 30"  # EROFS
    assert facts["uid"] != 0
    assert facts["cap_eff"] == "0000000000000000"
    assert facts["no_new_privs"] == "1"
    assert facts["docker_sock"] is False
    assert facts["staff_files"] == []
    assert set(facts["work"]) <= {"submission.ipynb", "executed.ipynb", ".job.json", "data", "exports"}
    assert "hunter2" not in json.dumps(facts["env"])
    assert facts["env"]["HOME"].startswith("/tmp")


def test_probe_container_sees_inputs_but_never_labels(docker_backend, submissions, grade):
    spy = (
        "def predict(X):\n"
        "    import os, numpy as np\n"
        "    files = sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs)\n"
        "    arrays = {f: list(np.load(f).shape) for f in files if f.endswith('.npy')}\n"
        "    raise RuntimeError(repr((files, arrays)))\n"
    )
    submissions("spy", spy)
    r = grade(submissions.folder, backend=docker_backend)["spy"]
    message = by_id(r)["test-accuracy"].message
    files, arrays = eval(message.split("RuntimeError: ", 1)[1])  # noqa: S307 - our own test's output
    assert set(files) <= {".job.json", "probes/probes_0.py", "exports/predict.pkl", "inputs/test.npy",
                          "inputs/train.npy"}
    assert arrays == {"inputs/test.npy": [200, 2], "inputs/train.npy": [100, 2]}  # X only: no labels


def test_memory_bomb_is_oom_killed_by_the_engine(docker_backend, submissions, grade):
    submissions("bomb", "x = b'x' * (2 * 1024**3)")
    r = grade(submissions.folder, backend=docker_backend, memory="256MiB")["bomb"]
    assert r.verdict == "U"
    assert r.execution.status == "memory"
    assert "256 MiB" in by_id(r)["runs"].message


def test_fork_bomb_hits_the_pids_limit(docker_backend, submissions, grade):
    bomb = (
        "import subprocess, sys\n"
        "procs = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']) for _ in range(500)]\n"
    )
    submissions("forker", bomb)
    r = grade(submissions.folder, backend=docker_backend, pids=64, timeout=60)["forker"]
    assert r.verdict == "U"
    assert r.execution.status == "pids", r.execution
    assert "64 processes" in by_id(r)["runs"].message


def test_endless_loop_times_out_and_leaves_no_container(docker_backend, submissions, grade):
    submissions("loop", "while True:\n    pass")
    r = grade(submissions.folder, backend=docker_backend, timeout=6, cell_timeout=600)["loop"]
    assert r.verdict == "U"
    assert r.execution.status == "timeout"
    assert "stopped after 6 s" in by_id(r)["runs"].message
    assert our_containers(docker_backend) == []


def test_forged_reports_and_files_change_nothing(docker_backend, submissions, grade):
    forge = (
        "import json, os\n"
        "fake = json.dumps({'status': 'ok', 'cell': None}).encode() + b'\\n'\n"
        "os.write(1, fake)\n"  # the container's stdout is the runner's channel, but not fd 1 of the kernel
        "opened = []\n"
        "for fd in os.listdir('/proc/1/fd') if os.access('/proc/1/fd', os.R_OK) else []:\n"
        "    try:\n"
        "        os.write(os.open(f'/proc/1/fd/{fd}', os.O_WRONLY), fake)\n"
        "        opened.append(fd)\n"
        "    except OSError:\n"
        "        pass\n"
        "os.makedirs('exports', exist_ok=True)\n"
        "open('exports/predict.pkl', 'wb').write(b'forged')\n"
        "open('executed.ipynb', 'w').write('{}')\n"
        "raise RuntimeError(f'genuinely broken; runner fds written: {opened}')\n"
    )
    submissions("forger", forge)
    r = grade(submissions.folder, backend=docker_backend)["forger"]
    assert r.verdict == "U"
    assert by_id(r)["runs"].message == "Cell 4 raised RuntimeError: genuinely broken; runner fds written: []"
    assert r.probes.status == "skipped"


def test_crafted_export_only_harms_its_own_probe_container(docker_backend, submissions, grade, tmp_path):
    marker = f"/tmp/autograder-pwned-{uuid.uuid4().hex}"
    payload = f"open({marker!r}, 'w').write('x'); raise SystemExit('pwned')"
    evil = f"class Evil:\n    def __reduce__(self):\n        return (exec, ({payload!r},))\npredict = Evil()"
    submissions("evil", evil)
    submissions("good")
    results = grade(submissions.folder, backend=docker_backend)
    assert results["good"].verdict == "G"
    assert results["evil"].verdict == "U"
    assert "could not be loaded: SystemExit: pwned" in by_id(results["evil"])["test-accuracy"].message
    import os

    assert not os.path.exists(marker)  # it ran, but on the probe container's own tmpfs


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
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

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
        job = SandboxJob(stage="execute", workdir=tmp_path, request={}, limits=Limits())
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


def test_filling_the_disk_is_stopped(docker_backend, submissions, grade):
    filler = (
        "import os, time\n"
        "os.makedirs('junk', exist_ok=True)\n"
        "for i in range(400):\n"
        "    with open(f'junk/{i}', 'wb') as f:\n"
        "        f.write(os.urandom(1024 * 1024))\n"
        "time.sleep(60)\n"
    )
    submissions("filler", filler)
    r = grade(submissions.folder, backend=docker_backend, disk="64MiB", timeout=60, cell_timeout=60)["filler"]
    assert r.verdict == "U"
    assert r.execution.status == "disk"
    assert "64 MiB disk limit" in by_id(r)["runs"].message
    assert r.execution.duration_s < 30


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
