"""Probe: the lab's probes turn the student's exported objects into plain arrays.

The probes run here, on the host, as trusted code; the student's objects live in a fresh sandbox
(the runner's `probe` stage) and are reached only through data (`remote.py`). The sandbox never
holds probe code, the report, or an input it was not sent. A probe in `steps` (probing.Steps)
gets one fresh sandbox per step after the first, which sees only the arrays the step before
returned: encode in one, decode in another that never saw the images.

What a student may read of a failure: for a public probe, the message, unless the sandbox had
been sent hidden inputs (then the exception's type); for a hidden probe, only the type, or the
message of a `ProbeFailure` the probe author raised. Staff get the whole text (`detail`). Neither
carries a host path (a work dir, the course folder): `runner.scrub_paths`.

A lab without a notebook has no exports: the probes reach the student's modules only
(`exports.module("mlp")`). A lab with modules whose notebook stopped is probed the same way, on the
modules alone, each export reported as not saved, so what tests the modules is still judged.
Probe helpers (`files.helpers`, staff code beside probes.py) are importable by the probes by their
module name, on the host; they never enter a sandbox.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import ValidationError

from autograder.arrays import ArrayRefused
from autograder.artifacts import EXPORTS, MAX_OUTPUT_BYTES, ProbeArtifacts
from autograder.criteria.base import NOT_SAVED, ProbeData
from autograder.grading.probing import ProbeFailure, Steps
from autograder.grading.remote import CHANNEL, Exports, Inputs, Remote, SandboxLost, Session, StudentCodeError
from autograder.labs.lab import Lab
from autograder.labs.spec import Limits, human_size
from autograder.results import ModelStats, ProbeReport, ProbeStatus
from autograder.sandbox import SandboxBackend, SandboxRun
from autograder.sandbox.runner import ProbeJob, scrub_paths
from autograder.workspace import copy_read_only, workdir, write_files

MAX_TEXT_CHARS = 10_000  # a text array in an output (a probe's own note on what failed)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OUTPUT_KINDS = "biufU"

_MODULES: dict[tuple[Path, tuple[Path, ...]], ModuleType] = {}
_IMPORT_LOCK = threading.Lock()


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_probes(path: Path, helpers: Sequence[Path] = ()) -> ModuleType:
    """A lab's probes.py as a host module (staff code, trusted), imported once per file. The lab's
    probe helpers are importable by their names (`import checks`) while it is imported, each under
    its own module object, so two labs' checks.py never stand in for each other: import them at the
    top of probes.py."""
    path = path.resolve()
    key = (path, tuple(h.resolve() for h in helpers))
    with _IMPORT_LOCK:
        if key not in _MODULES:
            with helper_modules(key[1], f"autograder_probes_{len(_MODULES)}"):
                _MODULES[key] = _load(path, f"autograder_probes_{len(_MODULES)}")
        return _MODULES[key]


@contextmanager
def helper_modules(helpers: Sequence[Path], prefix: str) -> Iterator[None]:
    """Staff helper modules in sys.modules by their names for the time of an import (or a test run),
    then whatever held those names before back."""
    saved: dict[str, ModuleType | None] = {}
    try:
        for helper in helpers:
            saved.setdefault(helper.stem, sys.modules.get(helper.stem))
            sys.modules[helper.stem] = _load(helper, f"{prefix}_{helper.stem}")  # later helpers may import it
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = before


def probe_functions(lab: Lab) -> list[tuple[str, Any, bool]]:
    """(name, probe, hidden tier) for each probe this view of the lab runs: public first, by name."""
    found = []
    for path in lab.probe_files():
        module = import_probes(path, lab.helper_files())
        hidden = not lab.public_only and path.resolve() == lab.probes_path.resolve()
        for attr in sorted(vars(module)):
            fn = getattr(module, attr)
            if attr.startswith("probe_") and callable(fn):  # a function, or steps(...)
                found.append((attr.removeprefix("probe_"), fn, hidden))
    return found


def probe(lab: Lab, exports: Path | None, backend: SandboxBackend, limits: Limits, artifacts: Path,
          scratch: Path | None = None, gpu_ids: list[str] | None = None,
          modules: dict[str, bytes] | None = None) -> ProbeReport:
    """Run the probes; their outputs land in `artifacts`/outputs. Never raises for the student's doing.
    `modules` (the student's and provided Python files) are importable in the sandbox, by the
    exports that refer to them and through `exports.module(name)`. `exports` None: there are none,
    for a lab without a notebook, or (each reported NOT_SAVED) for one whose notebook stopped."""
    try:
        plan = probe_functions(lab)
    except Exception as exc:  # noqa: BLE001 - a broken probes file is the lab's fault, never the student's
        return ProbeReport(status="harness-error", message=f"the lab's probes could not be imported: "
                           f"{type(exc).__name__}: {exc}"[:500])
    extra = sum(len(fn.functions) - 1 for _, fn, _ in plan if isinstance(fn, Steps))
    request: ProbeJob = {"stage": "probe", "exports": lab.spec.exports if exports is not None else [],
                         "exports_dir": EXPORTS,
                         "modules_dir": "modules", "modules": sorted(Path(name).stem for name in modules or {}),
                         "channel": CHANNEL}
    preload = ["torch"] if exports is not None and any(_holds(p, b"torch") for p in exports.glob("*.pkl")) else []
    with ExitStack() as stack:
        def start() -> Session:
            wd = stack.enter_context(workdir("probe", scratch))
            if exports is not None:
                copy_read_only(exports, wd / EXPORTS)
            else:
                (wd / EXPORTS).mkdir()
            write_files(wd / "modules", modules or {})
            return Session(backend, wd, request, limits, gpu_ids or [], lab.spec.packages, preload)

        run = _Run(lab, exports, start(), artifacts)
        try:
            run.all(plan, lambda: [start() for _ in range(extra)])
        finally:
            runs = [s.close() for s in run.sessions]
    duration = round(max(r.duration_s for r in runs), 3)
    cpu, peak = _cost(runs)
    failed = next((r for r in runs if r.status != "ok"), None)
    if failed is not None:
        why = {"timeout": f"evaluating your objects took longer than {limits.timeout:g} s",
               "memory": f"evaluating your objects used more than {human_size(limits.memory)}",
               "pids": f"evaluating your objects started more than {limits.pids} processes and threads",
               "disk": f"evaluating your objects {failed.message}"}
        status = "harness-error" if failed.status == "cancelled" else failed.status
        return ProbeReport(status=status, message=why.get(failed.status, failed.message), duration_s=duration,
                           cpu_s=cpu, peak_memory_mb=peak)
    if run.lost:
        return ProbeReport(status="crashed", message=run.lost, duration_s=duration, cpu_s=cpu, peak_memory_mb=peak)
    return ProbeReport(status="ok", duration_s=duration, probes=run.statuses, exports=run.export_status,
                       models=run.models, cpu_s=cpu, peak_memory_mb=peak)


def _cost(runs: Sequence[SandboxRun]) -> tuple[float | None, float | None]:
    """(CPU seconds summed, host peak memory in MB: the largest) over the probe's sandboxes, as their
    backends measured them from outside."""
    cpus = [r.cpu_s for r in runs if r.cpu_s is not None]
    peaks = [r.peak_memory_bytes for r in runs if r.peak_memory_bytes]
    return (round(sum(cpus), 3) if cpus else None, round(max(peaks) / 1024**2, 1) if peaks else None)


def _holds(path: Path, needle: bytes) -> bool:
    """Whether a file holds `needle`: an export pickled with torch objects names torch, so the probe
    sandbox that loads it is one that imported torch while it waited (sandbox.warm)."""
    import mmap

    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(needle) != -1
    except (OSError, ValueError):  # ValueError: an empty file can't be mapped
        return False


class _Run:
    """One submission's probes over its sandboxes: the first holds the exports for every probe and
    the first step of each probe in steps; the others, one step each."""

    def __init__(self, lab: Lab, exports: Path | None, main: Session, artifacts: Path) -> None:
        self.lab, self.exports_dir, self.artifacts = lab, exports, artifacts
        self.main = main
        self.spare: list[Session] = []
        self.sessions = [main]
        self.statuses: dict[str, ProbeStatus] = {}
        self.export_status: dict[str, str] = {}
        self.models: dict[str, ModelStats] = {}
        self.lost = ""
        self.hidden = set() if lab.public_only else {s for s, tier in lab.spec.splits.items() if tier == "hidden"}

    def all(self, plan: list[tuple[str, Any, bool]], warm: Callable[[], list[Session]]) -> None:
        """Run the plan; `warm` starts the later steps' sandboxes, once the first is ready (so they
        warm up while it works, without slowing its own start on a small machine)."""
        try:
            ready = self.main.connect()
        except SandboxLost as exc:
            self.lost = f"your objects could not be loaded for evaluation: {exc}"
            return
        self.spare = warm()
        self.sessions += self.spare
        self._ready(ready)
        inputs = self.lab.inputs()
        for name, fn, hidden_tier in plan:
            if hidden_tier:  # a hidden probe's own inputs are secret too: from now on, types only
                self.main.tainted = True
            try:
                result = self._one(fn, inputs)
                arrays = plain_arrays(result)
            except SandboxLost as exc:
                self.lost = f"evaluating your objects failed: {exc}"
                return
            except BaseException as exc:  # noqa: BLE001 - staff code around the student's: sorted below
                self.statuses[name] = self._failed(exc, hidden_tier)
                continue
            ProbeArtifacts(self.artifacts).write(name, arrays)
            self.statuses[name] = ProbeStatus(status="ok", keys=sorted(arrays))

    def _ready(self, ready: dict) -> None:
        raw = ready.get("exports")
        self.export_status = ({str(k)[:100]: scrub_paths(str(v))[:2000] for k, v in raw.items()
                               if k in self.lab.spec.exports} if isinstance(raw, dict) else {})
        if self.exports_dir is None:  # the notebook stopped before saving any (none in a lab without one)
            self.export_status = {name: NOT_SAVED for name in self.lab.spec.exports}
        raw = ready.get("models")
        for name, stats in (raw.items() if isinstance(raw, dict) else []):
            if name not in self.lab.spec.exports:
                continue
            try:
                model = ModelStats.model_validate(stats)
            except ValidationError:
                continue
            saved = self.exports_dir / f"{name}.pkl" if self.exports_dir is not None else None
            if saved is None:
                continue
            model.saved_bytes = saved.stat().st_size if saved.is_file() else None  # measured here, not there
            self.models[name] = model

    def _one(self, fn: Any, inputs: dict[str, np.ndarray]) -> Any:
        tainted = False

        def hidden_read() -> None:
            nonlocal tainted
            tainted = True
            self.main.tainted = True

        view = Inputs(inputs, self.hidden, hidden_read)
        if not isinstance(fn, Steps):
            return fn(Exports(self.main, self.lab.spec.exports), view)
        result = fn.functions[0](Exports(self.main, self.lab.spec.exports), view)
        for step in fn.functions[1:]:
            session = self.spare.pop(0)
            session.tainted = tainted or self.main.tainted  # what it gets may carry what the first saw
            session.connect()
            passed = {k: np.array(v) for k, v in plain_arrays(result).items()}  # data only, nothing else
            result = step(Exports(session, self.lab.spec.exports), passed)
        return result

    def _missing_export(self, exc: KeyError) -> bool:
        """A KeyError for an export that did not load: why it did not is the student's to read."""
        name = exc.args[0] if exc.args else None
        return isinstance(name, str) and bool(self.export_status.get(name))

    def _failed(self, exc: BaseException, hidden_tier: bool) -> ProbeStatus:
        """What the student may read of a failed probe, and all of it for staff."""
        detail = f"{type(exc).__name__}: {exc}"[:2000]
        if isinstance(exc, StudentCodeError):
            detail = exc.detail
            error = f"your code raised {exc.type_name}" if hidden_tier else scrub_paths(str(exc))
        elif isinstance(exc, ProbeFailure):
            error = str(exc)
        elif isinstance(exc, KeyError) and self._missing_export(exc):
            error = f"`{exc.args[0]}` {self.export_status[exc.args[0]]}"
        elif hidden_tier:
            error = f"it raised {type(exc).__name__}"
        else:
            error = scrub_paths(detail)  # the probe's own exception: it may name the course folder
        return ProbeStatus(status="failed", error=error[:2000], detail=detail)


def plain_arrays(result: Any) -> dict[str, np.ndarray]:
    """A probe's output as plain numpy arrays under the caps, or a ValueError/TypeError saying why."""
    if not isinstance(result, dict):
        raise TypeError(f"a probe must return a dict of arrays, not {type(result).__name__}")
    arrays, total = {}, 0
    for key, value in result.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"probe output keys must be identifiers, got {key!r}"[:200])
        if isinstance(value, Remote):
            raise TypeError(f"probe output {key!r} is an object of the student's, not data")
        if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor made on the host
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind not in OUTPUT_KINDS or arr.dtype.fields is not None:
            raise TypeError(f"probe output {key!r} is not a plain numeric array (dtype {arr.dtype})")
        if arr.dtype.kind == "U" and arr.size * max(arr.dtype.itemsize // 4, 1) > MAX_TEXT_CHARS:
            raise ValueError(f"probe output {key!r} holds more than {MAX_TEXT_CHARS:,} characters of text")
        total += arr.nbytes
        if total > MAX_OUTPUT_BYTES:
            raise ValueError(f"the probe's output is larger than {human_size(MAX_OUTPUT_BYTES)}")
        arrays[key] = arr
    return arrays


def load_outputs(report: ProbeReport, artifacts: Path) -> ProbeData:
    """Load each successful probe's arrays, as plain numbers only, header checked before unpacking."""
    data = ProbeData(report=report)
    kept = ProbeArtifacts(artifacts)
    for name, st in report.probes.items():
        if st.status != "ok" or not NAME.match(name):
            continue
        try:
            data.arrays[name] = kept.read(name)
        except (OSError, ValueError, ArrayRefused) as exc:
            report.probes[name] = ProbeStatus(status="failed", error="its output could not be read",
                                              detail=f"{type(exc).__name__}: {exc}"[:2000])
    return data
