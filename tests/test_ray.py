"""The Ray executor on a real cluster on this machine: a head and a second node, each a `ray start` of
its own with one declared CPU, on loopback. The same cohort gets the same verdicts as the local pool;
a node killed mid-batch loses nothing (Ray runs its task again on the other node); what the cluster
can't do is the submission's `error` or the TA's usage error, never a student's U.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from make_course import SOLUTION

from autograder.cli import main
from autograder.errors import UserError
from autograder.grading.executors import RemoteStageError, StageReply, _write, check_address, import_ray, lab_archive
from autograder.grading.intake import IntakeSpec, discover
from autograder.grading.pipeline import Grader, Options
from autograder.labs.lab import load_lab
from autograder.sandbox import BackendSettings, get_backend
from autograder.sandbox.containers import DockerBackend
from autograder.store import Store

WRONG = "def predict(X):\n    return (X[:, 0] < 0).astype(int)"
BROKEN = "def predict(X):\n    return X[:, 0]\nraise ValueError('my mistake')"
SLOW = SOLUTION + "\nimport time\ntime.sleep(4)"  # long enough to be caught running on the node that is killed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    address: str
    temp: Path
    groups: list[int]  # the process groups of the two `ray start`s: each node's daemons and workers
    node_manager_port: int  # the second node's raylet, found by this port to kill it

    def node_raylet(self) -> psutil.Process:
        for p in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "raylet" in (p.info["name"] or "") and f"--node_manager_port={self.node_manager_port}" in cmd:
                return p
        raise AssertionError("the second node's raylet is not running")


def _ray_start(temp: Path, *args: str) -> int:
    binary = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen([str(binary), "start", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                             "--num-cpus=1", "--object-store-memory=100000000", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_TMPDIR": str(temp)})
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out.decode(errors='replace')[-3000:]}")
    return proc.pid  # start_new_session: the daemons it left keep this process group


def _kill(cluster_temp: Path, groups: list[int]) -> None:
    """Every process of the cluster: the daemons (their command lines name its temp dir) with their children
    (Ray's workers, in process groups of their own), then what is left in the two groups."""
    daemons = [p for p in psutil.process_iter(["cmdline"]) if p.pid != os.getpid()
               and str(cluster_temp) in " ".join(p.info["cmdline"] or [])]
    ours = list(daemons)
    for p in daemons:
        try:
            ours.extend(p.children(recursive=True))
        except psutil.Error:
            pass
    for p in ours:
        try:
            p.kill()
        except psutil.Error:
            pass
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and one more node, killed at the end whatever happened."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'autograder[ray]'")
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    port, node_manager_port = _free_port(), _free_port()
    groups: list[int] = []
    try:
        groups.append(_ray_start(temp, "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
                                 # notice a dead node in seconds, not the default half minute
                                 '--system-config={"health_check_period_ms": 1000, '
                                 '"health_check_failure_threshold": 3}'))
        # one GPU declared (Ray counts it; no device is needed): GPU runs can go to this node only
        groups.append(_ray_start(temp, f"--address=127.0.0.1:{port}", f"--node-manager-port={node_manager_port}",
                                 "--num-gpus=1"))
        yield Cluster(f"127.0.0.1:{port}", temp, groups, node_manager_port)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _kill(temp, groups)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_grader(course: Path, tmp_path: Path, cluster: Cluster, backend=None, **options) -> Grader:
    lab = load_lab("toy", course)
    store = Store(tmp_path / "ray-db" / "grades.db")
    return Grader(lab, store, backend or get_backend("local"),
                  Options(executor="ray", address=cluster.address, jobs=0, scratch=tmp_path, **options))


def _cohort(submissions) -> Path:
    submissions("good")
    submissions("wrong", WRONG)
    submissions("broken", BROKEN)
    submissions("untouched", "def predict(X):\n    raise NotImplementedError()")
    return submissions.folder


def _outcome(results) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    return {r.student: (r.verdict, [(c.id, c.status) for c in r.criteria]) for r in results.values()}


@pytest.mark.slow
def test_a_cohort_on_a_ray_cluster_gets_the_local_pools_verdicts(cluster, course, submissions, grade, tmp_path):
    folder = _cohort(submissions)
    local = grade(folder)
    grader = _ray_grader(course, tmp_path, cluster)
    try:
        assert grader.options.jobs == 2  # not given: the cluster's two CPUs over the lab's one
        on_ray = {r.student: r for r in grader.grade_all(discover(folder, IntakeSpec.of(grader.lab.spec)))}
        placements = grader.executor.placements
        nodes = {n["NodeID"] for n in grader.executor.ray.nodes() if n["Alive"]}
    finally:
        grader.executor.close()
    harness = [c.message for r in on_ray.values() for c in r.criteria if c.id == "harness"]
    assert _outcome(on_ray) == _outcome(local), harness[:1]
    assert {r.verdict for r in on_ray.values()} == {"G", "U"}  # the cohort tells them apart
    assert {r.backend for r in on_ray.values()} == {"local"}  # each node's own backend
    # every stage ran as a task on a node of the cluster, and its files came back into this store
    assert len(placements) == sum(len(r.stages) for r in on_ray.values()) == 7  # broken stops: no probe
    assert {node for _, _, node in placements} <= nodes
    record = grader.store.stage(on_ray["good"].stages["execute"])
    assert record is not None and (record.artifacts / "executed.ipynb").is_file()
    assert (record.artifacts / "exports" / "predict.pkl").is_file()


@pytest.mark.slow
def test_the_cli_grades_on_the_cluster(cluster, course, submissions, tmp_path, capsys):
    submissions("good")
    db = tmp_path / "cli.db"
    try:
        code = main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db),
                     "--executor", "ray", "--address", cluster.address, "--backend", "local"])
    finally:
        import ray

        ray.shutdown()
    captured = capsys.readouterr()
    assert code == 0, captured.err + captured.out
    assert "good" in captured.out and "G" in captured.out


@pytest.mark.slow
def test_a_node_without_the_sandbox_image_gives_error_never_u(cluster, course, submissions, tmp_path):
    submissions("good")
    submissions("wrong", WRONG)
    backend = DockerBackend(BackendSettings(image="autograder-sandbox:no-such-tag"))  # not checked here: on the nodes
    grader = _ray_grader(course, tmp_path, cluster, backend=backend)
    try:
        results = grader.grade_all(discover(submissions.folder, IntakeSpec.of(grader.lab.spec)))
    finally:
        grader.executor.close()
    assert {r.verdict for r in results} == {"error"}
    for r in results:
        harness = next(c for c in r.criteria if c.id == "harness")
        assert "not your fault" in harness.message and "RemoteStageError" in harness.message
        # the node says what it lacks: the image, or the engine where it has none
        assert "no-such-tag" in harness.message or "Docker engine" in harness.message


@pytest.mark.slow
def test_gpu_runs_go_where_ray_has_a_gpu_and_see_only_theirs(cluster, course, submissions, tmp_path):
    submissions("good")
    submissions("again", SOLUTION + "\n# another hand-in")
    grader = _ray_grader(course, tmp_path, cluster, limits={"gpus": 1, "cpu_fallback": False}, jobs_per_gpu=2)
    try:
        assert grader.executor._resources(grader.limits)["GPU"] == 0.5  # two runs packed on one GPU
        results = grader.grade_all(discover(submissions.folder, IntakeSpec.of(grader.lab.spec)))
        gpu_node = next(n["NodeID"] for n in grader.executor.ray.nodes() if n["Alive"] and n["Resources"].get("GPU"))
    finally:
        grader.executor.close()
    assert {r.verdict for r in results} == {"G"}, [(r.verdict, [c.message for c in r.criteria]) for r in results]
    for r in results:
        execution = grader.store.stage(r.stages["execute"])
        assert execution is not None
        assert execution.result["gpus"] == ["0"] and execution.result["device"] == "cuda"  # Ray's id, and only it
    assert {node for stage, _, node in grader.executor.placements if stage == "execute"} == {gpu_node}


@pytest.mark.slow
def test_each_node_runs_the_stages_in_its_own_docker_sandboxes(cluster, course, submissions, tmp_path,
                                                                docker_backend):
    submissions("good")
    submissions("wrong", WRONG)
    grader = _ray_grader(course, tmp_path, cluster, backend=docker_backend)
    try:
        results = {r.student: r for r in grader.grade_all(discover(submissions.folder,
                                                                   IntakeSpec.of(grader.lab.spec)))}
    finally:
        grader.executor.close()
    assert {s: r.verdict for s, r in results.items()} == {"good": "G", "wrong": "U"}
    assert {r.backend for r in results.values()} == {"docker"}


@pytest.mark.slow
def test_a_lab_no_node_can_hold_is_a_usage_error(cluster, course, tmp_path):
    try:
        with pytest.raises(UserError, match="no node of the Ray cluster can run toy's stages"):
            _ray_grader(course, tmp_path, cluster, limits={"cpus": 4})
        with pytest.raises(UserError, match="needs 2 GPU.*only 1 GPU"):  # no node has two
            _ray_grader(course, tmp_path, cluster, limits={"gpus": 2})
    finally:
        import ray

        ray.shutdown()


def _title(p: psutil.Process) -> str:
    """A Ray worker's process title names the task it runs (`ray::autograder-execute`)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone meanwhile
        return ""


# Last in the module: it takes the cluster's second node away.
@pytest.mark.slow
def test_a_node_killed_mid_batch_loses_nothing(cluster, course, submissions, tmp_path):
    for student in ("a", "b", "c", "d"):
        submissions(student, SLOW)
    raylet = cluster.node_raylet()
    grader = _ray_grader(course, tmp_path, cluster)
    results: list = []
    batch = threading.Thread(target=lambda: results.extend(
        grader.grade_all(discover(submissions.folder, IntakeSpec.of(grader.lab.spec)))))
    batch.start()
    try:
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and batch.is_alive() and time.monotonic() < deadline:
            tasks = [p for p in raylet.children(recursive=True) if "autograder-execute" in _title(p)]
            if tasks:  # a stage is running on the second node: take the node away, all of it at once
                for p in [raylet, *raylet.children(recursive=True)]:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
                killed, before = tasks, len(grader.executor.placements)
            time.sleep(0.05)
        assert killed, "no stage ran on the second node"
        batch.join(timeout=300)
        assert not batch.is_alive(), "the batch did not finish after the node died"
        dead = [n["NodeID"] for n in grader.executor.ray.nodes() if not n["Alive"]]
    finally:
        batch.join(timeout=300)
        grader.executor.close()
    assert dead, "the killed node is still reported alive"
    assert sorted(r.student for r in results) == ["a", "b", "c", "d"]
    assert {r.verdict for r in results} == {"G"}, [(r.student, r.verdict, r.criteria[0].message) for r in results]
    placements = grader.executor.placements
    assert len(placements) == 8  # every stage of every hand-in came back, once
    # what was running on the dead node finished on the other one: nothing came back from it after the kill
    assert not [p for p in placements[before:] if p[2] in dead]


# --- without a cluster ------------------------------------------------------------------------------------------


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch, course, submissions, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is absent
    with pytest.raises(UserError, match="needs Ray") as info:
        import_ray()
    assert "autograder[ray]" in (info.value.hint or "")
    submissions("good")
    code = main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(tmp_path / "g.db"),
                 "--executor", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'autograder[ray]'" in err and "Traceback" not in err


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1:{closed}", "no Ray cluster answers at"),
    ("not an address", "is not a Ray address"),
    ("127.0.0.1:99999", "is not a Ray address"),
    ("ray://", "is not a Ray address"),
])
def test_an_address_nothing_answers_at_is_a_usage_error(address, says, course, submissions, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'autograder[ray]'")
    address = address.format(closed=_free_port())  # bound a moment ago and let go: nothing listens there
    with pytest.raises(UserError, match=says):
        check_address(address, timeout=2)
    submissions("good")
    code = main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(tmp_path / "g.db"),
                 "--executor", "ray", "--address", address])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err


def test_options_that_do_not_go_with_the_executor_are_usage_errors(course, submissions, tmp_path, capsys):
    submissions("good")
    base = ["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(tmp_path / "g.db")]
    assert main([*base, "--address", "127.0.0.1:6379"]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err
    assert main([*base, "--executor", "ray", "--gpus", "0"]) == 2
    assert "--gpus is for the local executor" in capsys.readouterr().err


def test_a_node_may_send_back_only_the_stages_own_files(tmp_path):
    folder = tmp_path / "execute-1"
    for name in ("../escape.pkl", "/etc/passwd", "exports/../../x.pkl", "exports/a b.pkl", "outputs/p.npz",
                 "executed.ipynb/../x", "exports/predict.py"):
        with pytest.raises(RemoteStageError, match="does not make"):
            _write(folder, "execute", {name: b"x"})
    with pytest.raises(RemoteStageError, match="does not make"):
        _write(folder, "probe", {"executed.ipynb": b"x"})
    assert not (tmp_path / "escape.pkl").exists() and not folder.exists()
    _write(folder, "execute", {"executed.ipynb": b"{}", "exports/predict.pkl": b"p", "exports/model.error": b"e"})
    assert (folder / "exports" / "predict.pkl").read_bytes() == b"p"
    # a reply is plain data, checked by its model: a wrong shape is refused before anything is used
    with pytest.raises(ValueError):
        StageReply.model_validate({"files": {"executed.ipynb": 3}})


def test_the_lab_archive_is_the_same_for_the_same_lab(course, tmp_path):
    lab = load_lab("toy", course)
    first, data = lab_archive(lab)
    again = shutil.copytree(course, tmp_path / "copy")
    os.utime(again / "assignments" / "toy" / "lab.yaml", (1, 1))  # another time, the same content
    assert lab_archive(load_lab("toy", again))[0] == first  # so each node unpacks it once per content
    probes = again / "reference" / "toy" / "probes.py"
    probes.write_text(probes.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert lab_archive(load_lab("toy", again))[0] != first
    names = set(__import__("tarfile").open(fileobj=__import__("io").BytesIO(data)).getnames())
    assert {"assignment/lab.yaml", "reference/probes.py", "spec.json", "rubric.json"} <= names
