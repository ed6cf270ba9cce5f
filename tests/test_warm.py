"""Warm sandboxes (sandbox/warm.py): the next run's sandbox started while the current one runs, one job each.

What must hold besides speed: a spare serves exactly one job and never one it was not made for; the
lab's time limit counts from the hand-over, not from the warm start; a spare that died while it
waited, or that another submission reached, is never used (the job starts cold, and no student is
blamed); close() and Ctrl-C leave nothing behind. Each is checked on the local backend and, where
an engine answers, on docker.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.labs.spec import Limits
from autograder.sandbox import BackendSettings, SandboxJob
from autograder.sandbox.base import CANCEL
from autograder.sandbox.containers import DockerBackend
from autograder.sandbox.local import LocalBackend

pytestmark = pytest.mark.slow

JOB = {"stage": "execute", "notebook": "n.ipynb", "output": "o.ipynb", "parameters": {}, "exports": ["x"],
       "exports_dir": "exports", "cell_timeout": None, "output_cap": 10_000, "output_total_cap": 100_000}


def job_dir(root: Path, source: str, module: str = "") -> Path:
    """A work dir as the execute stage fills it: a notebook, and a module beside it."""
    wd = Path(os.path.join(root, f"autograder-execute-{time.monotonic_ns()}"))
    wd.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, wd / "n.ipynb")
    if module:
        (wd / "helper.py").write_text(module)
    return wd


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def run(backend, root: Path, source: str = "import helper\nx = helper.X", module: str = "X = 1\n",
        limits: Limits | None = None):
    wd = job_dir(root, source, module)
    result = backend.run(SandboxJob(workdir=wd, request=JOB, limits=limits or Limits()))
    return result, wd


def docker(docker_backend) -> DockerBackend:
    """A docker backend of its own, so its spares are this test's alone."""
    return DockerBackend(BackendSettings(image=docker_backend.image))


BACKENDS = ["local", "docker"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "local":
        b = LocalBackend()
    else:
        b = docker(request.getfixturevalue("docker_backend"))
        request.node.add_marker(pytest.mark.docker)
    yield b
    b.close()


def test_each_job_after_the_first_runs_in_a_spare_of_its_own(backend, tmp_path):
    first, wd1 = run(backend, tmp_path, module="X = 1\n")
    assert first.status == "ok" and first.report["status"] == "ok", (first.message, first.stderr)
    assert backend.pool.served == 0
    wait_for(backend.pool.spares)
    second, wd2 = run(backend, tmp_path, module="X = 2\n")  # the spare's kernel started before helper.py existed
    assert second.status == "ok" and second.report["status"] == "ok", (second.message, second.stderr)
    assert backend.pool.served == 1
    # The spare's dir became the job's own: the caller reads the run's files where it wrote the job.
    assert (wd2 / "exports" / "x.pkl").is_file() and (wd2 / "helper.py").read_text() == "X = 2\n"
    assert not (wd1 / "helper.py").read_text() == (wd2 / "helper.py").read_text()
    wait_for(backend.pool.spares)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("autograder-warm_")] == \
        [s.workdir.name for s in backend.pool.spares()]  # only the next job's spare: a used one is not reused


def test_the_time_limit_counts_from_the_hand_over(backend, tmp_path):
    limits = Limits(timeout=4)
    run(backend, tmp_path, limits=limits)
    wait_for(backend.pool.spares)
    time.sleep(5)  # the spare has waited longer than the whole time limit
    result, _ = run(backend, tmp_path, source="import time\ntime.sleep(1)\nx = 1", limits=limits)
    assert backend.pool.served == 1
    assert result.status == "ok" and result.report["status"] == "ok", (result.message, result.stderr)


def test_a_spare_killed_while_it_waits_gets_a_cold_start(backend, tmp_path):
    run(backend, tmp_path)
    wait_for(backend.pool.spares)
    (spare,) = backend.pool.spares()
    if isinstance(backend, LocalBackend):
        os.kill(spare.started.proc.pid, signal.SIGKILL)
    else:
        spare.streams.container.kill()  # as an engine restart would
    wait_for(lambda: not spare.alive())
    result, wd = run(backend, tmp_path, module="X = 7\n")
    assert backend.pool.served == 0  # not handed to the dead spare
    assert result.status == "ok" and result.report["status"] == "ok", (result.message, result.stderr)
    assert (wd / "exports" / "x.pkl").is_file()


def test_a_spare_that_dies_after_the_hand_over_before_taking_its_job_is_not_the_students_fault(tmp_path):
    """Between the alive check and the hand-over the runner may still die: no '+' on its channel means it
    never took the job, so the job runs cold."""
    backend = LocalBackend()
    try:
        run(backend, tmp_path)
        wait_for(backend.pool.spares)
        (spare,) = backend.pool.spares()
        original = spare.send

        def die_then_send(payload: bytes) -> bool:
            os.kill(spare.started.proc.pid, signal.SIGKILL)
            wait_for(lambda: psutil.Process(spare.started.proc.pid).status() == psutil.STATUS_ZOMBIE)
            original(payload)
            return True  # as if the write made it into the pipe's buffer before the runner died

        spare.send = die_then_send
        result, _ = run(backend, tmp_path, module="X = 3\n")
        assert result.status == "ok" and result.report["status"] == "ok", (result.message, result.stderr)
    finally:
        backend.close()


def test_close_leaves_no_spare_behind(backend, tmp_path):
    run(backend, tmp_path)
    wait_for(backend.pool.spares)
    spares = backend.pool.spares()
    backend.close()
    backend.close()  # idempotent
    assert backend.pool.spares() == []
    for spare in spares:
        assert not spare.workdir.exists()
        assert not spare.alive()
    if isinstance(backend, DockerBackend):
        ids = {s.streams.container.id for s in spares}
        assert not ids & {c.id for c in backend.client.containers.list(all=True)}
    # Still usable: a later batch warms anew.
    result, _ = run(backend, tmp_path)
    assert result.status == "ok"


def test_ctrl_c_stops_the_spares_too(tmp_path):
    backend = LocalBackend()
    try:
        run(backend, tmp_path)
        wait_for(backend.pool.spares)
        spares = backend.pool.spares()
        CANCEL.set()
        result, _ = run(backend, tmp_path, source="import time\ntime.sleep(30)")
        assert result.status == "cancelled"
        assert backend.pool.spares() == []
        assert all(not s.alive() for s in spares)
    finally:
        CANCEL.clear()
        backend.close()


def test_warming_is_a_backend_setting(tmp_path):
    backend = LocalBackend(BackendSettings(warm=False))
    run(backend, tmp_path)
    time.sleep(0.5)
    result, _ = run(backend, tmp_path)
    assert result.status == "ok" and backend.pool.served == 0 and backend.pool.spares() == []


def test_a_spare_serves_only_jobs_of_the_kind_it_was_made_for(tmp_path):
    backend = LocalBackend()
    try:
        run(backend, tmp_path, limits=Limits(memory="2GiB"))
        wait_for(backend.pool.spares)
        result, _ = run(backend, tmp_path, limits=Limits(memory="3GiB"))  # other rlimits: another kind of sandbox
        assert result.status == "ok" and backend.pool.served == 0
    finally:
        backend.close()


# --- a hostile submission next to the spare made for the one after it ------------------------------

PLANT = r'''
import glob, os, time
here = os.path.realpath(os.getcwd())
planted, deadline = [], time.time() + 60
while not planted and time.time() < deadline:
    for d in glob.glob(os.path.join(os.path.dirname(here), "autograder-*")):
        if os.path.realpath(d) == here or not os.path.isdir(d):
            continue
        try:
            open(os.path.join(d, "numpy.py"), "w").write("raise ImportError('planted by another submission')\n")
            open(os.path.join(d, ".job.json"), "w").write('{"stage": "execute", "notebook": "forged.ipynb"}')
            planted.append(d)
        except OSError:
            pass
    time.sleep(0.1)
others = [p for p in os.listdir("/proc") if p.isdigit()]
print("PLANTED", len(planted), "PROCS", len(others))
'''


def test_a_hostile_submission_cannot_reach_the_next_ones_spare_locally(submissions, grade, store):
    """The local backend does not isolate: the first student's code finds the spare made for the second
    and plants a module that shadows numpy and a forged job in it. The spare is found tainted and
    not used; the second student's result is what it would be alone."""
    from conftest import SOLUTION

    submissions("a-hostile", PLANT + SOLUTION)
    submissions("b-victim")
    backend = LocalBackend()
    try:
        results = grade(submissions.folder, jobs=1, backend=backend)
    finally:
        backend.close()
    assert results["b-victim"].verdict == "G", results["b-victim"].criteria
    outputs = _outputs(store, "PLANTED")
    assert outputs and int(outputs[0].split()[1]) >= 1, outputs  # it did reach a spare


def test_a_hostile_submission_cannot_reach_the_next_ones_spare_in_docker(submissions, grade, docker_backend, store):
    """In a container the first student's code sees no other work dir and no other process: the spare
    made for the second serves it (warm), and the second's result is what it would be alone."""
    from conftest import SOLUTION

    submissions("a-hostile", PLANT.replace("time.time() + 60", "time.time() + 3") + SOLUTION)
    submissions("b-victim")
    backend = docker(docker_backend)
    try:
        results = grade(submissions.folder, jobs=1, backend=backend)
        served = backend.pool.served
    finally:
        backend.close()
    assert results["b-victim"].verdict == "G", results["b-victim"].criteria
    assert served >= 1  # the victim ran in a spare that was up while the hostile code ran
    outputs = _outputs(store, "PLANTED")
    assert outputs and outputs[0].split()[1] == "0", outputs  # nothing outside its own /work to write to


def _outputs(store, marker: str) -> list[str]:
    """Lines starting with `marker` in the executed notebooks the store kept."""
    found = []
    for path in store.artifacts_root.rglob("executed.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                found += [line for line in str(out.get("text", "")).splitlines() if line.startswith(marker)]
    return found


def test_no_process_of_a_spare_outlives_close(tmp_path):
    backend = LocalBackend()
    run(backend, tmp_path)
    wait_for(backend.pool.spares)
    (spare,) = backend.pool.spares()
    wait_for(lambda: psutil.Process(spare.started.proc.pid).children(recursive=True), timeout=60)  # its kernel
    kernel = psutil.Process(spare.started.proc.pid).children(recursive=True)
    backend.close()
    gone, alive = psutil.wait_procs(kernel, timeout=10)
    assert not alive


def test_a_probe_spare_for_torch_exports_has_torch_loaded_before_its_job(tmp_path):
    """The probe stage asks for torch to be preloaded when the exports were pickled with torch objects, so
    the spare pays for importing it while the submission before runs."""
    pytest.importorskip("torch", reason="torch is not installed in this Python")
    backend = LocalBackend()
    request = {"stage": "probe", "exports": [], "exports_dir": "exports", "modules_dir": "modules", "modules": [],
               "channel": ".channel"}
    wd = tmp_path / "autograder-probe-x"
    wd.mkdir()
    try:
        spare = backend._start_spare(SandboxJob(workdir=wd, request=request, limits=Limits(), preload=["torch"]))

        def torch_loaded() -> bool:
            return any("libtorch" in m.path for m in psutil.Process(spare.started.proc.pid).memory_maps())

        wait_for(torch_loaded, timeout=120)
        assert spare.alive()
    finally:
        spare.destroy()
        backend.close()


def test_a_spare_waiting_for_a_job_file_gives_up_after_its_wait_limit(tmp_path, monkeypatch):
    """A container can't see its grader die (a pipe's reader can): past its wait limit it stops waiting."""
    from autograder.sandbox import runner

    monkeypatch.chdir(tmp_path)
    assert runner._wait_for_job(None, 0.05) is None
    (tmp_path / runner.JOB_FILE).write_text('{"stage": "probe"}')
    assert runner._wait_for_job(None, 0.05) == {"stage": "probe"}
