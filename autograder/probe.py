"""Probe: a fresh sandbox loads the exports and runs the lab's probes on inputs, never labels.

What comes back is read as data: the report is validated, arrays are loaded with
allow_pickle=False under a size cap, and only probes the lab defines are accepted.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from autograder.criteria.base import ProbeData
from autograder.lab import Lab
from autograder.results import ProbeReport, ProbeStatus
from autograder.sandbox import SandboxBackend, SandboxJob
from autograder.spec import Limits, human_size
from autograder.workspace import copy_read_only, read_capped, workdir, write_files

OUTPUTS = "outputs"
MAX_OUTPUT_BYTES = 256 * 1024**2
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def probe(lab: Lab, exports: Path, backend: SandboxBackend, limits: Limits, artifacts: Path,
          scratch: Path | None = None, gpu_ids: list[str] | None = None,
          modules: dict[str, bytes] | None = None) -> ProbeReport:
    """Run the probes; their outputs land in `artifacts`/outputs. Never raises for the student's doing.
    `modules` (the student's and provided Python files) are importable there, by probes and by the
    exports that refer to them."""
    with workdir("probe", scratch) as wd:
        copy_read_only(exports, wd / "exports")
        write_files(wd / "modules", modules or {})
        inputs = wd / "inputs"
        inputs.mkdir()
        for split, x in lab.inputs().items():
            np.save(inputs / f"{split}.npy", x, allow_pickle=False)
        (wd / "probes").mkdir()
        probe_files = []
        for i, path in enumerate(lab.probe_files()):  # public first, then hidden
            shutil.copyfile(path, wd / "probes" / f"probes_{i}.py")
            probe_files.append(f"probes/probes_{i}.py")
        request = {"probes": probe_files, "exports": lab.spec.exports, "exports_dir": "exports",
                   "inputs_dir": "inputs", "outputs_dir": OUTPUTS, "modules_dir": "modules"}
        run = backend.run(SandboxJob(stage="probe", workdir=wd, request=request, limits=limits, gpu_ids=gpu_ids or []))
        base = {"duration_s": run.duration_s}
        if run.status != "ok":
            why = {"timeout": f"evaluating your objects took longer than {limits.timeout:g} s",
                   "memory": f"evaluating your objects used more than {human_size(limits.memory)}",
                   "pids": f"evaluating your objects started more than {limits.pids} processes and threads",
                   "disk": f"evaluating your objects {run.message}"}
            status = "harness-error" if run.status == "cancelled" else run.status
            return ProbeReport(status=status, message=why.get(run.status, run.message), **base)
        report = _validated(run.report or {}, **base)
        if report.status != "ok":
            return report
        out = artifacts / OUTPUTS
        out.mkdir(parents=True, exist_ok=True)
        for name, st in report.probes.items():
            if st.status == "ok":
                data = read_capped(wd / OUTPUTS / f"{name}.npz", MAX_OUTPUT_BYTES)
                if data is None:
                    report.probes[name] = ProbeStatus(status="failed", error="its output was missing or too large")
                else:
                    (out / f"{name}.npz").write_bytes(data)
        return report


def _validated(raw: dict, **base) -> ProbeReport:
    if raw.get("status") != "ok":
        return ProbeReport(status="harness-error", message=str(raw.get("message", "no report"))[-500:], **base)
    try:
        report = ProbeReport.model_validate({**raw, **base})
    except ValidationError as exc:
        return ProbeReport(status="crashed", message=f"the probe report was malformed: {exc.errors()[0]['msg']}",
                           **base)
    report.probes = {k: v for k, v in report.probes.items() if NAME.match(k)}
    return report


def load_outputs(report: ProbeReport, artifacts: Path) -> ProbeData:
    """Load each successful probe's arrays, as plain numbers only."""
    data = ProbeData(report=report)
    for name, st in report.probes.items():
        if st.status != "ok":
            continue
        path = artifacts / OUTPUTS / f"{name}.npz"
        try:
            with np.load(path, allow_pickle=False) as f:
                data.arrays[name] = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            report.probes[name] = ProbeStatus(status="failed", error=f"its output could not be read: {exc}")
    return data
