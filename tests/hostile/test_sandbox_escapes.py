"""Escapes from the docker sandbox against a real engine: a spy notebook, bombs, an endless loop, a full disk,
forged reports and files, a crafted export.

Skips, saying why, when no engine answers or the sandbox image is missing; CI starts an engine
and builds the image (.ci/run), so there every test here runs.
"""

from __future__ import annotations

import json
import uuid

import pytest
from graded import GOOD_PREDICT, by_id, executed_notebook

from autograder.sandbox.containers import OWNER
from autograder.sandbox.engine import LABEL

pytestmark = pytest.mark.slow


def our_containers(backend) -> list:
    return backend.client.containers.list(all=True, filters={"label": f"{LABEL}.owner={OWNER}"})


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


def test_probe_container_holds_no_inputs_labels_or_probes(docker_backend, submissions, grade):
    """The student's objects see only what a call sends them: no input file, no probe file, no label.
    The spy raises on the first call, on the hidden split: staff read its text, the student its type."""
    spy = (
        "def predict(X):\n"
        "    import os, numpy as np\n"
        "    files = sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs)\n"
        "    arrays = {f: list(np.load(f).shape) for f in files if f.endswith('.npy')}\n"
        "    raise RuntimeError(repr((files, arrays)))\n"
    )
    submissions("spy", spy)
    r = grade(submissions.folder, backend=docker_backend)["spy"]
    assert by_id(r)["test-accuracy"].message.endswith("your code raised RuntimeError")
    detail = r.probes.probes["scores"].detail
    files, arrays = eval(detail.split("RuntimeError: ", 1)[1])  # noqa: S307 - our own test's output
    assert set(files) <= {".job.json", "exports/predict.pkl"}
    assert arrays == {}


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
