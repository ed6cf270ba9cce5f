"""Where the sandbox stages run: in this process (`local`) or as Ray tasks on a cluster (`ray`).

An executor runs the two stages that hold student code, execute and probe, and hands the pipeline
back what the stage produced: the result model and the stage folder's files. Everything else (the
judge, the originality pass, the store) stays in the `grade` process, so the store has one writer.

With `ray`, each task runs the stage with its node's own sandbox backend (its Docker engine and
image, or the local backend where chosen), and only data crosses the network. Out go the
submission's bytes and the lab (one tar per batch, put in Ray's object store once, unpacked and
loaded once per worker process, by its hash); back come the result as JSON and the stage folder's
files as bytes, which this process checks (the pydantic models, the stage folder's layout) before
it writes them into the store's artifacts. A task never raises for what it ran: a harness failure
on the node comes back as data too (`error`), so Ray retries only what Ray itself lost (a node or
worker that died: `max_retries`), never an application exception, and never the student's failure,
which is a result like any other.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import logging
import os
import re
import socket
import tarfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field

from autograder import __version__
from autograder.artifacts import EXECUTED, EXPORTS, OUTPUTS
from autograder.errors import UserError
from autograder.grading.execute import execute
from autograder.grading.intake import Submission
from autograder.grading.probe import probe
from autograder.labs.lab import Lab, sha256_files
from autograder.labs.rubric import Rubric
from autograder.labs.spec import LabSpec, Limits
from autograder.results import ExecutionResult, ProbeReport
from autograder.sandbox import BackendSettings, SandboxBackend, get_backend
from autograder.sandbox.base import CANCEL, RUNNER
from autograder.sandbox.gpus import GpuPool
from autograder.sandbox.gpus import detect as detect_gpus
from autograder.sandbox.runner import scrub_paths
from autograder.workspace import new_workdir, remove_tree, sweep, workdir, write_files

log = logging.getLogger(__name__)
Stage = Literal["execute", "probe"]
StageModel = TypeVar("StageModel", ExecutionResult, ProbeReport)
RAY_INSTALL = "pip install 'autograder[ray]'"
MAX_RETRIES = 2  # a task whose node or worker died runs again elsewhere, at most this often
_RUNNER_HASH = sha256_files([RUNNER])[:16]
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# The files a stage's folder may hold (artifacts.py's layout); anything else a node sends is refused.
_LAYOUT: dict[str, re.Pattern[str]] = {
    "execute": re.compile(rf"^(?:{re.escape(EXECUTED)}|{EXPORTS}/{_NAME}\.(?:pkl|error))$"),
    "probe": re.compile(rf"^{OUTPUTS}/{_NAME}\.npz$"),
}


class ExecutorSettings(BaseModel):
    """What the CLI chooses about where stages run; each executor uses what concerns it."""

    address: str | None = None  # ray: the cluster (HOST:PORT, or auto); None: $RAY_ADDRESS, else Ray started here
    gpus: list[str] | None = None  # local: host GPU ids runs may use (default: every GPU nvidia-smi lists)
    jobs_per_gpu: int = Field(1, ge=1)  # runs sharing one GPU at once (ray: a fraction of a GPU per task)
    scratch: Path | None = None  # local: where work dirs go (ray: each node's own temp dir)


class Executor(ABC):
    """Runs the execute and probe stages of one lab's batch, on one sandbox backend."""

    name: ClassVar[str]

    def __init__(self, backend: SandboxBackend, settings: ExecutorSettings) -> None:
        self.backend, self.settings = backend, settings

    @abstractmethod
    def prepare(self, lab: Lab, limits: list[Limits]) -> None:
        """Before the batch: raise a UserError when the lab can't run here at all (missing packages or
        image, no node big enough), so that no student is blamed for it."""

    @abstractmethod
    def gpu_count(self) -> int:
        """How many GPUs one run can be given here (asked only of a lab that needs some)."""

    def default_jobs(self, limits: Limits) -> int:
        """Submissions graded at once when --jobs is not given."""
        return 1

    @abstractmethod
    def execute(self, lab: Lab, sub: Submission, limits: Limits, folder: Path) -> ExecutionResult:
        """Run the notebook; its files land in `folder`."""

    @abstractmethod
    def probe(self, lab: Lab, exports: Path | None, limits: Limits, folder: Path,
              modules: dict[str, bytes]) -> ProbeReport:
        """Run the probes on the exports in `exports`; their outputs land in `folder`."""

    def close(self) -> None:  # noqa: B027 - most executors hold nothing to let go of
        """After the batch: let go of what the executor holds (a connection to a cluster)."""


class LocalExecutor(Executor):
    """The stages in this process, as sandboxes of this machine; GPUs placed by a GpuPool."""

    name = "local"

    def __init__(self, backend: SandboxBackend, settings: ExecutorSettings) -> None:
        super().__init__(backend, settings)
        self._pool: GpuPool | None = None

    @property
    def pool(self) -> GpuPool:
        if self._pool is None:  # nvidia-smi is asked only when a lab needs a GPU
            ids = self.settings.gpus if self.settings.gpus is not None else [g.index for g in detect_gpus()]
            self._pool = GpuPool(ids, self.settings.jobs_per_gpu)
        return self._pool

    def prepare(self, lab: Lab, limits: list[Limits]) -> None:
        self.backend.prepare(lab.spec.packages)  # the lab's packages: missing ones stop the batch, never a student

    def gpu_count(self) -> int:
        return len(self.pool.ids)

    def execute(self, lab: Lab, sub: Submission, limits: Limits, folder: Path) -> ExecutionResult:
        with self._gpus(limits.gpus) as gpu_ids:
            return execute(lab, sub, self.backend, limits, folder, self.settings.scratch, gpu_ids).result

    def probe(self, lab: Lab, exports: Path | None, limits: Limits, folder: Path,
              modules: dict[str, bytes]) -> ProbeReport:
        with self._gpus(limits.gpus) as gpu_ids:
            return probe(lab, exports, self.backend, limits, folder, self.settings.scratch, gpu_ids, modules)

    @contextmanager
    def _gpus(self, n: int) -> Iterator[list[str]]:
        if n == 0:
            yield []
            return
        with self.pool.acquire(n) as ids:
            yield ids


# --- ray: what crosses the network -------------------------------------------------------------------------------


class StageReply(BaseModel):
    """What a Ray task sends back: plain data only (text and bytes), checked here before it is used."""

    node: str = ""  # the node's address, for messages
    node_id: str = ""
    harness: str = ""  # the node's autograder version and runner hash: keys are made here, so they must agree
    result: str | None = None  # the stage's result model as JSON
    files: dict[str, bytes] = Field(default_factory=dict)  # the stage folder's files, by relative path
    error: str | None = None  # a harness failure on the node (never the student's doing)


def _harness() -> str:
    return f"{__version__}+{_RUNNER_HASH}"


def lab_key(lab: Lab) -> str:
    """Which archive a node needs for `lab`: its name and parameters, so a re-run's view of the lab with
    another seed (grading/reruns.py) is shipped with that seed, not the first run's."""
    return lab.name + "\0" + json.dumps(lab.spec.parameters, sort_keys=True, default=str)


def lab_archive(lab: Lab) -> tuple[str, bytes]:
    """(hash, tar) of what a node needs of the lab: the assignment folder, the released files, the
    hidden reference folder (probes, data; the judge's tests go along but only the head runs them),
    and the spec and rubric as loaded here, under fixed names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(path: Path | None, name: str) -> None:
            if path is not None and path.exists():
                tar.add(path, arcname=name, filter=_plain)

        add(lab.assignment_dir, "assignment")
        if lab.release_dir.resolve() != lab.assignment_dir.resolve():
            add(lab.release_dir, "release")
        if not lab.public_only:
            add(lab.reference_dir, "reference")
        for name, text in (("spec.json", lab.spec.model_dump_json()), ("rubric.json", lab.rubric.model_dump_json()),
                           ("view.json", '{"public_only": %s}' % ("true" if lab.public_only else "false"))):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    data = buf.getvalue()
    return hashlib.sha256(data).hexdigest(), data


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Regular files and folders only, no caches, and no owner or time (the same lab, the same hash)."""
    if not (info.isfile() or info.isdir()) or "__pycache__" in info.name.split("/"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


_LABS: dict[str, Lab] = {}  # per worker process: the labs it has unpacked, by hash
_LAB_DIRS: dict[str, Path] = {}
_BACKENDS: dict[str, SandboxBackend] = {}
_NODE_LOCK = threading.Lock()
_KEEP_LABS = 4


def _node_lab(lab_hash: str, archive_ref: list[Any]) -> Lab:
    """The lab as this worker unpacked it; fetched from the object store only the first time."""
    import json

    import ray

    with _NODE_LOCK:
        if lab_hash in _LABS:
            return _LABS[lab_hash]
        if not _LABS:  # this worker's first lab: what dead workers here left (a node killed mid-task), and its own
            sweep()  # at exit
            atexit.register(_drop_labs)
        data = ray.get(archive_ref[0])
        if hashlib.sha256(data).hexdigest() != lab_hash:
            raise RuntimeError("the lab's archive does not match its hash")
        root = new_workdir("raylab")  # named for this process: removed by the next sweep once it is gone
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(root, filter="data")
        public_only = json.loads((root / "view.json").read_text())["public_only"]
        spec = LabSpec.model_validate_json((root / "spec.json").read_text())
        lab = Lab(name=spec.name, root=root, spec=spec,
                  rubric=Rubric.model_validate_json((root / "rubric.json").read_text()),
                  assignment_dir=root / "assignment", rubric_path=root / "rubric.json",
                  reference_dir=None if public_only else root / "reference",
                  release_dir=root / "release" if (root / "release").is_dir() else root / "assignment",
                  public_only=public_only)
        for old in list(_LABS)[: max(0, len(_LABS) - _KEEP_LABS + 1)]:
            _LABS.pop(old)
            remove_tree(_LAB_DIRS.pop(old))
        _LABS[lab_hash], _LAB_DIRS[lab_hash] = lab, root
        return lab


def _drop_labs() -> None:
    for lab_hash in list(_LABS):
        _LABS.pop(lab_hash)
        remove_tree(_LAB_DIRS.pop(lab_hash))


def _node_backend(name: str, settings: dict[str, Any], packages: list[str]) -> SandboxBackend:
    """This node's own backend (its engine and image), made and checked once per worker process."""
    key = repr((name, sorted(settings.items()), packages))
    with _NODE_LOCK:
        if key not in _BACKENDS:
            backend = get_backend(name, BackendSettings.model_validate(settings))
            backend.prepare(packages)
            _BACKENDS[key] = backend
        return _BACKENDS[key]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def run_stage(stage: Stage, lab_hash: str, archive_ref: list[Any], backend: dict[str, Any], limits: str,
              job: dict[str, Any]) -> dict[str, Any]:
    """The body of a Ray task, on a node: run one stage with the node's backend and send back data
    (StageReply as a dict). Everything it takes is plain data; it never raises for what it ran."""
    import ray

    reply = StageReply(harness=_harness())
    try:
        context = ray.get_runtime_context()
        reply.node_id = context.get_node_id()
        reply.node = ray.util.get_node_ip_address()
        lab = _node_lab(lab_hash, archive_ref)
        sandbox = _node_backend(backend["name"], backend["settings"], lab.spec.packages)
        stage_limits = Limits.model_validate_json(limits)
        gpu_ids = [str(g) for g in ray.get_gpu_ids()][: stage_limits.gpus]  # Ray's placement: only these are seen
        with workdir("raytask") as wd:
            folder = wd / "stage"
            if stage == "execute":
                sub = _node_submission(wd / "submission", job)
                result: Any = execute(lab, sub, sandbox, stage_limits, folder, None, gpu_ids).result
            else:
                exports = None
                if job["exports"] is not None:
                    exports = wd / "exports"
                    write_files(exports, job["exports"])
                result = probe(lab, exports, sandbox, stage_limits, folder, None, gpu_ids, job["modules"])
            reply.result = result.model_dump_json()
            reply.files = _files(folder) if folder.is_dir() else {}
    except Exception as exc:  # noqa: BLE001 - the node's failure is data for the head: `error`, never retried
        hint = getattr(exc, "hint", None)
        reply.error = scrub_paths(f"{type(exc).__name__}: {exc}" + (f" ({hint})" if hint else ""))[:2000]
    return reply.model_dump()


def _node_submission(folder: Path, job: dict[str, Any]) -> Submission:
    """The hand-in as the head read it (the notebook and the lab's modules), as a folder on this node."""
    write_files(folder, {"submission.ipynb": job["notebook"], **job["files"]})
    return Submission(student=job["student"], path=folder, sha256=job["sha256"], size=job["size"],
                      notebook="submission.ipynb", files={name: name for name in job["files"]})


# --- ray: the head's side ---------------------------------------------------------------------------------------


class RemoteStageError(RuntimeError):
    """A stage that could not run on the cluster (the node's harness failed, or Ray lost it for good):
    the submission's `error`, never its U."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray, which is not installed",
                        f"install the extra: {RAY_INSTALL} (on the machine that grades and on every node)") from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing answers at: Ray itself waits for a missing cluster without end."""
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in hostport:
        raise UserError(f"--address {address!r} is not a Ray address",
                        "write HOST:PORT of the head node (what `ray start --head` printed), or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {address} ({exc.strerror or exc})",
                        "start the head with `ray start --head --port PORT` and check the address, or leave out "
                        "--address to start Ray on this machine") from None


class RayExecutor(Executor):
    """The stages as Ray tasks; this process keeps one thread per running submission, each waiting on its task."""

    name = "ray"

    def __init__(self, backend: SandboxBackend, settings: ExecutorSettings) -> None:
        super().__init__(backend, settings)
        self.ray = import_ray()
        self._connected_here = False
        self._labs: dict[str, tuple[str, list[Any]]] = {}  # lab_key -> (hash, [its object ref]) for this batch
        self._task = self.ray.remote(run_stage)  # exported to the cluster once
        self.placements: list[tuple[str, str, str]] = []  # (stage, submission hash, node id) of each finished task
        self._connect()

    def _connect(self) -> None:
        ray = self.ray
        address = self.settings.address or os.environ.get("RAY_ADDRESS")
        if ray.is_initialized():
            return
        if address:
            check_address(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     include_dashboard=False if address is None else None)
        except Exception as exc:  # noqa: BLE001 - Ray says why in many exception types
            raise UserError(f"could not connect to the Ray cluster at {address or 'a new local instance'}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                            "check --address (HOST:PORT of the head node) and that this machine runs the "
                            "cluster's Ray and Python versions") from None
        self._connected_here = True

    def close(self) -> None:
        if self._connected_here and self.ray.is_initialized():
            self.ray.shutdown()
        self._connected_here = False

    def _nodes(self) -> list[dict[str, float]]:
        return [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]

    def prepare(self, lab: Lab, limits: list[Limits]) -> None:
        """Check that some node can hold each stage (Ray would wait for one without end), and put the lab
        in the object store once for the batch. The nodes check their own backend and image per task."""
        nodes = self._nodes()
        for lim in limits:
            need = self._resources(lim)
            if not any(all(node.get(k, 0) >= v for k, v in need.items()) for node in nodes):
                have = "; ".join(", ".join(f"{k} {node.get(k, 0):g}" for k in need) for node in nodes) or "no live node"
                raise UserError(f"no node of the Ray cluster can run {lab.name}'s stages: each needs "
                                f"{', '.join(f'{k} {v:g}' for k, v in need.items())} (the nodes have: {have})",
                                "add a bigger node, or lower the lab's limits (--cpus, --memory)")
        digest, data = lab_archive(lab)
        self._labs[lab_key(lab)] = (digest, [self.ray.put(data)])

    def gpu_count(self) -> int:
        return int(max((node.get("GPU", 0) for node in self._nodes()), default=0))

    def default_jobs(self, limits: Limits) -> int:
        cpus = self.ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // limits.cpus))

    def _resources(self, limits: Limits) -> dict[str, float]:
        need: dict[str, float] = {"CPU": limits.cpus, "memory": float(int(limits.memory))}
        if limits.gpus:
            need["GPU"] = float(limits.gpus) if limits.gpus > 1 else 1 / self.settings.jobs_per_gpu
        return need

    def execute(self, lab: Lab, sub: Submission, limits: Limits, folder: Path) -> ExecutionResult:
        job = {"student": sub.student, "sha256": sub.sha256, "size": sub.size, "notebook": sub.notebook_bytes(),
               "files": {name: sub.file_bytes(name) for name in lab.spec.files.student if name in sub.files}}
        return self._run("execute", lab, folder.parent.name, limits, job, folder, ExecutionResult)

    def probe(self, lab: Lab, exports: Path | None, limits: Limits, folder: Path,
              modules: dict[str, bytes]) -> ProbeReport:
        shipped = None if exports is None else _files(exports) if exports.is_dir() else {}
        job = {"exports": shipped, "modules": modules}
        return self._run("probe", lab, folder.parent.name, limits, job, folder, ProbeReport)  # parent: the hand-in's

    def _run(self, stage: Stage, lab: Lab, what: str, limits: Limits, job: dict[str, Any], folder: Path,
             model: type[StageModel]) -> StageModel:
        ray = self.ray
        if lab_key(lab) not in self._labs:
            self.prepare(lab, [limits])
        digest, ref = self._labs[lab_key(lab)]
        need = self._resources(limits)
        task = self._task.options(
            name=f"autograder-{stage}", num_cpus=need["CPU"], num_gpus=need.get("GPU", 0), memory=need["memory"],
            max_retries=MAX_RETRIES, retry_exceptions=False)
        backend = {"name": self.backend.name, "settings": self.backend.settings.model_dump()}
        pending = task.remote(stage, digest, ref, backend, limits.model_dump_json(), job)
        try:
            while True:
                done, _ = ray.wait([pending], timeout=0.5)
                if done:
                    raw = ray.get(pending)
                    break
                if CANCEL.is_set():  # Ctrl-C on the head: stop the task rather than wait for it
                    ray.cancel(pending, force=True)
                    raise RemoteStageError(f"the {stage} task was cancelled")
        except ray.exceptions.RayError as exc:  # Ray lost it for good (retries spent): ours, never the student's
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise RemoteStageError(f"the Ray task for the {stage} stage failed after {MAX_RETRIES} retries: "
                                   f"{type(exc).__name__}: {first}") from None
        reply = StageReply.model_validate(raw)
        where = f"on Ray node {reply.node or reply.node_id[:12]}"
        if reply.error is not None:
            raise RemoteStageError(f"the {stage} stage failed {where}: {reply.error}")
        if reply.harness != _harness():
            raise RemoteStageError(f"the node {reply.node} runs autograder {reply.harness}, this machine {_harness()}: "
                                   "install the same version on every node")
        if reply.result is None:
            raise RemoteStageError(f"the {stage} stage {where} sent no result")
        result = model.model_validate_json(reply.result)
        _write(folder, stage, reply.files)
        self.placements.append((stage, what, reply.node_id))
        return result


def _write(folder: Path, stage: Stage, files: dict[str, bytes]) -> None:
    """Write a node's stage files into the store's folder, refusing any name outside the stage's layout."""
    for rel in files:
        if not _LAYOUT[stage].match(rel):
            raise RemoteStageError(f"a node sent a file the {stage} stage does not make: {rel[:200]!r}")
    folder.mkdir(parents=True, exist_ok=True)
    if stage == "execute":
        (folder / EXPORTS).mkdir(exist_ok=True)  # as the local stage leaves it, even without exports
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


EXECUTORS: dict[str, type[Executor]] = {LocalExecutor.name: LocalExecutor, RayExecutor.name: RayExecutor}


def get_executor(name: str, backend: SandboxBackend, settings: ExecutorSettings | None = None) -> Executor:
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}", f"choose one of: {', '.join(sorted(EXECUTORS))}")
    return EXECUTORS[name](backend, settings or ExecutorSettings())
