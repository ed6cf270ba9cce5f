"""The typed contracts between the parts: the runner's job and report, the artifact layout, and
what each criterion names in a lab. Cheap checks, no sandbox: a mismatch here would otherwise show
up as a batch of `error` verdicts."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from autograder.arrays import ArrayRefused
from autograder.artifacts import ExecuteArtifacts, ProbeArtifacts, stage_folder
from autograder.grading.execute import request as execute_request
from autograder.labs.lab import load_lab
from autograder.labs.spec import Limits
from autograder.sandbox.base import CappedBuffer, SandboxJob, SandboxRun, read_report, write_job_file
from autograder.sandbox.runner import Report

ROOT = Path(__file__).resolve().parents[1]
LABS = ["lab1-mlp", "lab2-cnn", "lab3-autoencoder"]


def _report(data: bytes) -> SandboxRun:
    run = SandboxRun(status="ok", exit_code=0)
    channel = CappedBuffer(1 << 20)
    channel.add(data)
    read_report(run, channel)
    return run


@pytest.mark.parametrize("name", LABS)
def test_the_execute_job_of_every_sample_lab_is_a_valid_runner_job(name, tmp_path):
    lab = load_lab(name, ROOT)
    job = SandboxJob(workdir=tmp_path, request=execute_request(lab, Limits(gpus=1)), limits=Limits(gpus=1))
    assert job.stage == "execute" and job.request["parameters"]["device"] == "cuda"
    written = json.loads((tmp_path / write_job_file(job, rlimits={"core": 0})).read_text())
    assert written["stage"] == "execute" and written["rlimits"] == {"core": 0}
    assert written["exports"] == lab.spec.exports


def test_a_job_missing_what_the_runner_reads_is_refused_on_the_host(tmp_path):
    with pytest.raises(ValidationError) as refused:
        SandboxJob(workdir=tmp_path, request={"stage": "execute", "notebook": "n.ipynb"}, limits=Limits())
    assert {e["loc"][-1] for e in refused.value.errors()} >= {"output", "exports", "output_cap"}
    with pytest.raises(ValidationError):
        SandboxJob(workdir=tmp_path, request={"stage": "train"}, limits=Limits())


def test_a_report_is_read_with_its_attachment():
    run = _report(b'{"status": "error", "ename": "ValueError", "evalue": "x", "cell": 3, "forks_refused": null}\nNB')
    assert run.status == "ok" and run.report == {"status": "error", "ename": "ValueError", "evalue": "x", "cell": 3,
                                                 "forks_refused": None}
    assert run.attachment == b"NB"


@pytest.mark.parametrize("head", [b"", b"{\"status\": \"ok\"", b"[1, 2]", b"\xff\xfe"])
def test_no_report_is_a_crash_of_the_run(head):
    run = _report(head + b"\n")
    assert run.status == "crashed" and run.report is None and "without a report" in run.message


def test_a_report_of_the_wrong_shape_is_the_harness_s_fault_never_the_student_s():
    run = _report(b'{"status": "ok", "cell": "three"}\n')
    assert run.status == "harness-error" and run.report is None and "malformed" in run.message


def _keys_read(path: Path) -> set[str]:
    """String keys read with `.get("...")` off a report in a module of the host."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and "report" in ast.unparse(node.func.value)):
            keys.add(node.args[0].value)
    return keys


def test_every_report_field_the_host_reads_is_in_the_contract():
    host = [ROOT / "autograder/grading/execute.py", ROOT / "autograder/sandbox/containers.py"]
    read = set().union(*(_keys_read(p) for p in host))
    assert read and read <= set(Report.__annotations__), read - set(Report.__annotations__)


def test_artifacts_round_trip_through_the_one_loader(tmp_path):
    folder = stage_folder(tmp_path, "lab1-mlp", "ab" * 32, "probe", "cd" * 32)
    assert folder == tmp_path / "lab1-mlp" / ("ab" * 8) / f"probe-{'cd' * 6}"
    kept = ProbeArtifacts(folder)
    kept.write("scores", {"test": np.eye(3, dtype=np.float32)})
    assert kept.output("scores") == folder / "outputs" / "scores.npz"
    assert np.array_equal(kept.read("scores")["test"], np.eye(3))
    assert kept.read("scores", keys=["val"]) == {}
    np.savez(kept.output("objects"), test=np.array([object()], dtype=object))
    with pytest.raises(ArrayRefused):
        kept.read("objects")
    with pytest.raises(ArrayRefused):
        kept.read("scores", max_bytes=8)  # 36 bytes of float32 over a cap of 8
    assert ExecuteArtifacts(folder).notebook.name == "executed.ipynb"


# Fields a spec uses to name something of the lab; each must be declared by its references().
NAMING_FIELDS = {"probe", "split", "train", "test", "export", "cell", "prompt"}


@pytest.mark.parametrize("name", LABS)
def test_every_field_that_names_part_of_the_lab_is_a_declared_reference(name):
    lab = load_lab(name, ROOT)
    for spec in lab.rubric.criteria:
        named = {f for f in NAMING_FIELDS & set(type(spec).model_fields) if getattr(spec, f) is not None}
        declared = {r.field for r in spec.references()}
        assert named <= declared, f"{spec.id} ({spec.kind}) names {named - declared} without declaring it"
        assert not list(spec.lab_problems(lab)), spec.id


def test_a_detail_named_like_a_result_field_stays_a_detail():
    """`result(status, message, value, threshold, **details)` once took a detail called `value` as the value."""
    from autograder.criteria import build
    from autograder.criteria.notebook_runs import NotebookRunsSpec

    criterion = build(NotebookRunsSpec(id="runs", kind="notebook-runs"))
    r = criterion.result("fail", "stopped", 2.5, None, value="the cell's value", threshold=3, advice="fix it")
    assert (r.value, r.threshold, r.advice) == (2.5, None, "fix it")
    assert r.details == {"value": "the cell's value", "threshold": 3}
