"""The in-sandbox runner: executes a notebook with papermill, or serves the exported objects to the probes.

It runs inside the sandbox next to untrusted code, so it imports only the standard library and
what the sandbox image has (papermill, nbformat, numpy, cloudpickle), never `autograder`. It
reports to the host on a pipe (`--report-fd`) that the notebook's kernel does not inherit: one
line of JSON, then, for an execution, the executed notebook as papermill holds it in memory.
Everything it leaves in the work dir is the student's to tamper with, and the host treats it so.

In the probe stage it holds the student's objects and nothing of the judge's: the probes run on
the host, which sends each call here over a Unix socket (`channel` in the job) and reads back data
(see "the wire" below). Once the exports are unpickled this whole process is the student's.

    python runner.py JOB.json --report-fd N     (the local backend passes a pipe)
    python runner.py JOB.json --report-stdout   (in a container: stdout is the report channel)
    python runner.py --warm STAGE [--job-fd N] [--rlimits JSON] [--preload MOD] (--report-fd N | --report-stdout)

A warm runner (`--warm`) starts before its job exists: it does the slow part (papermill and a
kernel started in the work dir for `execute`; numpy, cloudpickle and the `--preload` modules for
`probe`) while the submission before it runs, then waits for its one job: read to the end of
`--job-fd` (a pipe only the host holds), else `.job.json`, which the host renames into place once
everything else is in the work dir. It sends one byte, `+`, on the report channel when it has
taken the job, so the host can tell a sandbox that died while waiting (its fault, never the
student's) from one that died running the job.

With --report-stdout the runner keeps a private copy of stdout and points fd 1 at stderr before
anything else starts, so nothing the kernel prints can pass for a report. Either way the runner
makes itself non-dumpable, so a process without CAP_SYS_PTRACE (the student's, in a container)
cannot open its descriptors through /proc.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Literal, NotRequired

try:  # the host validates these with pydantic, which needs typing_extensions' TypedDict before 3.12
    from typing_extensions import TypedDict
except ImportError:  # pragma: no cover - a sandbox image without it: here the dicts are only read
    from typing import TypedDict

CAPTURE_TAG = "autograder-capture"
SETUP_TAG = "autograder-setup"
ERROR_TEXT_CAP = 2000
NOTEBOOK_CAP = 50 * 1024**2  # the executed notebook sent back; past this it is dropped and counted


# --- the contract with the host ------------------------------------------------------------
# The job file the host writes into the work dir and the report the runner sends back. The host
# imports these (sandbox/base.py), so both sides read one definition; every path is relative to the
# work dir, so any backend can mount it anywhere.


class _Job(TypedDict):
    exports: list[str]  # the names the lab exports, in the lab's order
    exports_dir: str  # where the pickles are written (execute) or read (probe)
    gpu_memory_bytes: NotRequired[int]  # the run's share of its GPU, set by the host when it has one
    rlimits: NotRequired[dict[str, int]]  # setrlimit caps (the local backend; containers use cgroups)


class ExecuteJob(_Job):
    """Run a notebook with papermill, then pickle its exports."""

    stage: Literal["execute"]
    notebook: str  # the notebook as it will run (locked cells restored)
    output: str  # where papermill writes the executed notebook (the host reads its copy from the pipe)
    parameters: dict[str, Any]  # papermill parameters: the lab's, plus data_dir and device
    cell_timeout: float | None
    output_cap: int  # bytes of output per cell
    output_total_cap: int  # bytes of output for the whole notebook
    kernel: NotRequired[str]
    start_timeout: NotRequired[float]


class ProbeJob(_Job):
    """Load the exports and serve them to the host's probes over the channel."""

    stage: Literal["probe"]
    modules_dir: str  # the lab's modules (student's as handed in, provided ones as released)
    modules: list[str]  # the module names probes may ask for
    channel: str  # the Unix socket the host listens on


Job = ExecuteJob | ProbeJob


class Report(TypedDict, total=False):
    """What the runner sends back: one line of JSON (then, for an execution, the executed notebook)."""

    status: str  # ok, error, memory, cell-timeout, crashed, harness-error
    message: str
    duration_s: float
    forks_refused: int | None  # forks the pids limit refused (the container's cgroup counter; None where unreadable)
    # execute
    cell: int | None  # the student's cell number that stopped the run, counting their code cells
    cell_index: int | None  # the same cell's index in the notebook as run
    ename: str
    evalue: str
    output_truncated_bytes: int
    # probe
    calls: int


# --- what a student may read of a path ---------------------------------------------------------------
# Tracebacks and error messages name files by where they were on the machine that ran them: the work
# dir, the grader's Python, the course folder. The host scrubs them (`scrub_paths`) wherever it makes a
# message a student reads; it lives here because it is standard library only and both sides may use it.

_PACKAGES = r"(?<![\w.~/-])/[^\s'\"()<>,:;]*?/(?:site|dist)-packages/"
_ABSOLUTE = r"(?<![\w.~/-])/(?:[^\s/'\"()<>,:;]+/)+([^\s/'\"()<>,:;]+)"


def scrub_paths(text: str, roots: tuple[str, ...] = ()) -> str:
    """`text` with host paths left out: under one of `roots` (a work dir) relative to it, a library's
    file from its package down (numpy/core/fromnumeric.py), any other absolute path by its file name."""
    import re  # here: the runner's own imports stay the few it needs to start

    text = re.sub(_PACKAGES, "", text)  # first: a library may sit under a root (a venv in the course folder)
    for root in sorted((str(r).rstrip("/") for r in roots if str(r).strip("/")), key=len, reverse=True):
        text = text.replace(root + "/", "").replace(root, ".")
    return re.sub(_ABSOLUTE, r"\1", text)


def _skip_slow_optional_imports() -> None:
    """jsonschema imports rfc3987_syntax, when installed, to check IRI formats that notebooks never
    use; building its grammar costs ~1.4 s per process. jsonschema treats it as optional."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: "not installed", by design


JOB_FILE = ".job.json"
TAKEN = b"+"  # sent on the report channel by a warm runner once it has its job
JOB_POLL_S = 0.005


def main(argv: list[str] | None = None) -> int:
    _skip_slow_optional_imports()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job", type=Path, nargs="?", help="the job file (a cold start)")
    channel = parser.add_mutually_exclusive_group(required=True)
    channel.add_argument("--report-fd", type=int, help="write the report to this inherited pipe")
    channel.add_argument("--report-stdout", action="store_true", help="write the report to stdout, alone")
    parser.add_argument("--warm", choices=("execute", "probe"), help="start before the job: see above")
    parser.add_argument("--job-fd", type=int, help="a warm runner reads its job from this inherited pipe")
    parser.add_argument("--rlimits", type=json.loads, default=None, help="a warm runner's setrlimit caps (JSON)")
    parser.add_argument("--preload", action="append", default=[], help="a warm probe runner imports it first")
    parser.add_argument("--wait-limit", type=float, default=None,
                        help="a warm runner waiting for its job file gives up after this many seconds (its grader "
                        "may have been killed; the host then starts the job cold)")
    args = parser.parse_args(argv)
    if args.job is None and args.warm is None:
        parser.error("a job file, or --warm STAGE")
    report_fd = args.report_fd
    if args.report_stdout:
        report_fd = os.dup(1)  # not inheritable: the kernel never holds it
        os.dup2(2, 1)
    _protect_self()
    _become_subreaper()
    _make_dirs()
    warm: _Warm | None = None
    if args.warm:
        _limit_resources(args.rlimits or {})  # before the kernel starts: it inherits them
        warm = _Warm(args.warm, args.preload)
        waited = _wait_for_job(args.job_fd, args.wait_limit)
        if waited is None:  # the host closed the pipe without a job: it is gone, or it discarded this spare
            _reap_children()
            return 0
        job: Job = waited
        os.write(report_fd, TAKEN)
    else:
        job = json.loads(args.job.read_text())
        _limit_resources(job.get("rlimits", {}))
    started = time.monotonic()
    attachment = b""
    report: Report
    try:
        if warm is not None and warm.stage != job["stage"]:
            raise RuntimeError(f"a warm {warm.stage} runner was sent a {job['stage']} job")
        if job["stage"] == "execute":
            report, attachment = run_execute(job, warm.take_kernel(job) if warm is not None else None)
        else:
            report = run_probe(job)
    except Exception:  # the runner's own failure: the host makes it `harness-error`
        report = {"status": "harness-error", "message": traceback.format_exc()[-ERROR_TEXT_CAP:]}
    report["duration_s"] = round(time.monotonic() - started, 3)
    _reap_children()
    report["forks_refused"] = _forks_refused()
    data = json.dumps(report).encode() + b"\n" + attachment
    with os.fdopen(report_fd, "wb") as out:
        out.write(data)
    return 0


class _Warm:
    """What a warm runner does before its job exists: the imports (and, for execute, the kernel)
    every job of its stage needs."""

    def __init__(self, stage: str, preload: list[str]) -> None:
        self.stage = stage
        self.km = self.kc = None
        if stage == "execute":
            self.km = _kernel_manager_class()(kernel_name="python3")
            _run_sync(self.km.start_kernel)(extra_arguments=[f"--HistoryManager.hist_file={HIST_FILE}"],
                                            cwd=os.getcwd())
            # While the kernel boots (its own process, on another core where there is one):
            import nbformat  # noqa: F401
            import papermill  # noqa: F401
            from nbclient.exceptions import CellTimeoutError  # noqa: F401

            # Connected and answering (what nbclient would wait for after the job arrived; its loop is this
            # thread's, which nbclient reuses).
            self.kc = self.km.client()
            self.kc.start_channels()
            _run_sync(self.kc.wait_for_ready)(timeout=60)
        else:
            import socket  # noqa: F401

            import cloudpickle  # noqa: F401
            import numpy  # noqa: F401

            for name in preload:
                if importlib.util.find_spec(name) is not None:
                    importlib.import_module(name)

    def take_kernel(self, job: ExecuteJob) -> tuple[Any, Any] | None:
        """The started kernel's manager and client, for a job that runs the kernel it was started as; else
        None (after stopping it), and papermill starts the job's own."""
        km, kc, self.km, self.kc = self.km, self.kc, None, None
        if km is not None and job.get("kernel", "python3") != "python3":
            if kc is not None:
                kc.stop_channels()
            _run_sync(km.shutdown_kernel)(now=True)
            return None
        return (km, kc) if km is not None else None


def _wait_for_job(job_fd: int | None, wait_limit: float | None = None) -> Job | None:
    """The job: to the end of the host's pipe, or the job file once the host has renamed it into place;
    None when the pipe closed empty, or no job file came within `wait_limit` seconds (a container can't
    see its grader die, as a pipe's reader does)."""
    if job_fd is not None:
        with os.fdopen(job_fd, "rb") as f:
            data = f.read()
    else:
        deadline = time.monotonic() + wait_limit if wait_limit else None
        while not os.path.exists(JOB_FILE):
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(JOB_POLL_S)
        with open(JOB_FILE, "rb") as f:
            data = f.read()
    if not data:
        return None
    importlib.invalidate_caches()  # the job's files arrived after the imports above looked at the folder
    return json.loads(data)


def _run_sync(fn):
    from jupyter_core.utils import run_sync

    return run_sync(fn)


# --- execute -------------------------------------------------------------------------------

HIST_FILE = ":memory:"  # what nbclient gives the kernels it starts itself
# Run in a started kernel before the first cell: modules written into the work dir after the kernel
# started (a warm one) are found even where the folder's listing was cached in the same clock tick.
INVALIDATE_SOURCE = "import importlib as __i; __i.invalidate_caches(); del __i"


def _kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """Kernel sockets as files in the work dir: no TCP port, so no network is needed."""

        def __init__(self, **kwargs):
            # Relative to the work dir: a socket path may not exceed 107 bytes.
            super().__init__(transport="ipc", ip=os.path.join(os.path.relpath(tempfile.gettempdir()), "kernel"),
                             **kwargs)

    return IPCKernelManager


CAPTURE_SOURCE = '''\
def __autograder_capture(names, folder):
    import os, traceback
    import cloudpickle
    os.makedirs(folder, exist_ok=True)
    for name in names:
        if name not in globals():
            continue
        partial = os.path.join(folder, name + ".partial")
        try:
            with open(partial, "wb") as f:
                cloudpickle.dump(globals()[name], f)
            os.replace(partial, os.path.join(folder, name + ".pkl"))
        except Exception as exc:
            if os.path.exists(partial):
                os.remove(partial)
            with open(os.path.join(folder, name + ".error"), "w") as f:
                f.write(f"{type(exc).__name__}: {exc}"[:2000])
__autograder_capture(NAMES, FOLDER)
del __autograder_capture
'''


GPU_CAP_SOURCE = '''\
def __autograder_cap_gpu_memory(cap):
    import torch
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            total = torch.cuda.get_device_properties(i).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), i)
__autograder_cap_gpu_memory(CAP)
del __autograder_cap_gpu_memory
'''


def cap_gpu_memory(cap: int) -> None:
    """The lab's per-process GPU memory cap, in this process (the probe stage)."""
    try:
        exec(GPU_CAP_SOURCE.replace("CAP", str(int(cap))), {})
    except ImportError:
        pass  # no torch in this image: nothing can allocate GPU memory through it


def setup_cell(gpu_memory_bytes: int):
    """Runs before the student's first cell: caps GPU memory (soft: the student can reset it)."""
    import nbformat

    source = "try:\n" + "".join(f"    {line}\n" for line in GPU_CAP_SOURCE.replace(
        "CAP", str(int(gpu_memory_bytes))).splitlines()) + "except ImportError:\n    pass\n"
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [SETUP_TAG]
    return cell


def capture_cell(names: list[str], folder: str):
    import nbformat

    source = CAPTURE_SOURCE.replace("NAMES", repr(list(names))).replace("FOLDER", repr(folder))
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [CAPTURE_TAG]
    return cell


def _capped_engine(output_cap: int, total_cap: int):
    """A papermill engine whose client keeps at most `output_cap` bytes of output per cell and
    `total_cap` in the whole notebook, counting what it drops."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.utils import merge_kwargs, remove_args

    class CappedClient(PapermillNotebookClient):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("kernel_manager_class", _kernel_manager_class())
            kwargs.setdefault("shutdown_kernel", "immediate")  # the run is over; nothing to save
            warm_kc = kwargs.pop("warm_kc", None)
            super().__init__(*args, **kwargs)
            if warm_kc is not None:  # connected while the runner waited for its job
                self.kc = warm_kc
                self.kc.allow_stdin = False
            self.kept: dict[int, int] = {}
            self.total = 0
            self.dropped = 0
            self.current: int | None = None

        def papermill_execute_cells(self):
            if not self.owns_km:  # a warm kernel, started before the job's files were in the folder
                self.wait_for_reply(self.kc.execute(INVALIDATE_SOURCE, silent=True, store_history=False))
            return super().papermill_execute_cells()

        def execute_cell(self, cell, cell_index, *args, **kwargs):
            self.current = cell_index  # which cell a timeout or a dead kernel interrupted
            return super().execute_cell(cell, cell_index, *args, **kwargs)

        def output(self, outs, msg, display_id, cell_index):
            kind = msg["msg_type"]
            if kind not in ("stream", "display_data", "execute_result", "update_display_data"):
                return super().output(outs, msg, display_id, cell_index)
            content = msg["content"]
            size = len(content["text"]) if kind == "stream" else len(json.dumps(content.get("data", {})))
            kept = self.kept.get(cell_index, 0)
            room = min(output_cap - kept, total_cap - self.total)
            if size <= room:
                self.kept[cell_index] = kept + size
                self.total += size
                return super().output(outs, msg, display_id, cell_index)
            if room <= 0:  # this cell, or the notebook, is full: drop silently (noted once already)
                self.dropped += size
                return None
            # Past the cap now: keep the head of a stream, drop anything else whole; the cell is full.
            self.kept[cell_index] = output_cap
            self.total += room
            if kind == "stream":
                self.dropped += size - room
                content["text"] = content["text"][:room] + "\n[autograder: output truncated here]\n"
                return super().output(outs, msg, display_id, cell_index)
            self.dropped += size
            return self._note(outs)

        @staticmethod
        def _note(outs):
            import nbformat

            out = nbformat.v4.new_output("stream", name="stderr", text="[autograder: output truncated here]\n")
            outs.append(out)
            return out

    class CappedEngine(NBClientEngine):
        client = None

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            cls.client = CappedClient(nb_man, **final)
            return cls.client.execute()

    return CappedEngine


def student_cell_number(nb, index: int | None) -> int | None:
    """1-based position of a cell among the student's own cells (injected ones don't count)."""
    if index is None:
        return None
    skip = {"injected-parameters", CAPTURE_TAG, SETUP_TAG}
    own = [i for i, c in enumerate(nb.cells) if not skip & set(c.get("metadata", {}).get("tags", []))]
    return own.index(index) + 1 if index in own else None


def run_execute(job: ExecuteJob, kernel: tuple[Any, Any] | None = None) -> tuple[Report, bytes]:
    """The report, and the executed notebook as papermill holds it in memory (b"" when too large).
    `kernel`: (manager, client) of a kernel already started in the work dir (a warm runner's), which
    papermill then uses; it is left running, for _reap_children, as nothing of it needs saving."""
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines

    nb = nbformat.read(job["notebook"], as_version=4)
    nb.cells.append(capture_cell(job["exports"], job["exports_dir"]))
    if job.get("gpu_memory_bytes"):
        nb.cells.insert(0, setup_cell(job["gpu_memory_bytes"]))
    engine = _capped_engine(int(job["output_cap"]), int(job.get("output_total_cap", 16 * job["output_cap"])))
    papermill_engines.register("autograder-capped", engine)
    report: Report = {"status": "ok", "message": "", "cell": None}
    started = {"km": kernel[0], "warm_kc": kernel[1]} if kernel is not None else {}
    try:
        papermill.execute_notebook(
            nb, job["output"], parameters=job["parameters"], engine_name="autograder-capped",
            kernel_name=job.get("kernel", "python3"), execution_timeout=job.get("cell_timeout"),
            start_timeout=job.get("start_timeout", 60), progress_bar=False, log_output=False, cwd=".",
            request_save_on_cell_execute=False,  # the host takes the notebook from the report channel, not the file
            **started,
        )
    except papermill.PapermillExecutionError as exc:
        report.update({"status": "error", "ename": exc.ename, "evalue": str(exc.evalue)[:ERROR_TEXT_CAP],
                       "cell_index": exc.cell_index})
        if exc.ename == "MemoryError":
            report["status"] = "memory"
    except CellTimeoutError as exc:
        report.update({"status": "cell-timeout", "message": str(exc)[:ERROR_TEXT_CAP]})
    except DeadKernelError as exc:
        report.update({"status": "crashed", "message": f"the kernel died: {exc}"[:ERROR_TEXT_CAP]})
    client = engine.client
    if client is not None:
        report["output_truncated_bytes"] = client.dropped
        if report["status"] in ("cell-timeout", "crashed") and report.get("cell_index") is None:
            report["cell_index"] = client.current
    # The notebook as papermill ran it (parameters injected), from memory: not a file the kernel can touch.
    executed = client.nb if client is not None else nb
    report["cell"] = student_cell_number(executed, report.get("cell_index"))
    attachment = b""
    if client is not None:
        data = nbformat.writes(executed).encode()
        if len(data) <= NOTEBOOK_CAP:  # output is capped, so only giant source cells get here
            attachment = data
    return report, attachment


# --- the wire: data only, checked from its header --------------------------------------------
# One message is a 4-byte big-endian length, a JSON header {"msg": TREE, "blobs": [[dtype, shape], ...]},
# then each blob's raw bytes, exactly as many as its dtype and shape say. In TREE a dict is
# {"$d": [[key, value], ...]}, a tuple {"$t": [...]}, a slice {"$s": [start, stop, step]}, an array
# {"$a": i} (blob i; "torch": true when it was a tensor), a remote object {"$r": id, "type": name}.
# Both ends read a message only after checking its header against caps, so a peer that lies or
# floods costs the reader at most the caps.

WIRE_HEADER_CAP = 4 * 1024**2
WIRE_BLOBS_CAP = 4096
WIRE_DEPTH_CAP = 32
WIRE_ITEMS_CAP = 1_000_000  # list items, dict entries and string characters in one message
ARRAY_KINDS = "biuf"  # bool, ints, unsigned ints, floats: nothing that could hold an object


class WireError(Exception):
    """A message that breaks the protocol or a cap; the reader stops talking to that peer."""


def _recv_exact(sock, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the other end closed the channel")
        got += k
    return bytes(buf) if n < 1024 else buf  # type: ignore[return-value]  # a bytearray reads as bytes: no copy


def check_array_header(dtype_str, shape, max_bytes: int):
    """(numpy dtype, nbytes) for a declared array, or WireError: a numeric dtype from the allow-list,
    a plain shape, and at most `max_bytes` once unpacked. Nothing is allocated before this passes."""
    import numpy as np

    if not isinstance(dtype_str, str) or len(dtype_str) > 8:
        raise WireError("an array's dtype is malformed")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as exc:
        raise WireError(f"an array's dtype {dtype_str!r} is not understood") from exc
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"an array of dtype {dtype_str!r} is not plain numbers")
    if (not isinstance(shape, list) or len(shape) > 32
            or not all(type(d) is int and 0 <= d < 2**40 for d in shape)):
        raise WireError("an array's shape is malformed")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes:
        raise WireError(f"an array of shape {tuple(shape)} and dtype {dtype} holds {nbytes:,} bytes, more than "
                        f"the {max_bytes:,} allowed")
    return dtype, nbytes


def send_message(sock, tree, blobs=()) -> None:
    """Send one message; `blobs` are C-contiguous numpy arrays named by {"$a": i} in `tree`."""
    header = json.dumps({"msg": tree, "blobs": [[a.dtype.str, list(a.shape)] for a in blobs]},
                        allow_nan=True).encode()
    if len(header) > WIRE_HEADER_CAP:
        raise WireError(f"a message header of {len(header):,} bytes is over the cap")
    sock.sendall(len(header).to_bytes(4, "big") + header)
    for a in blobs:
        if a.nbytes:
            sock.sendall(memoryview(a).cast("B"))


def recv_message(sock, max_array_bytes: int, max_total_bytes: int, check=None):
    """(tree, arrays): one message, its header checked before any array is read. `check(dtype, shape,
    max_bytes)` may replace the default header check (the host passes its own, stricter one)."""
    import numpy as np

    size = int.from_bytes(_recv_exact(sock, 4), "big")
    if size > WIRE_HEADER_CAP:
        raise WireError(f"a message header of {size:,} bytes is over the {WIRE_HEADER_CAP:,} cap")
    try:
        header = json.loads(bytes(_recv_exact(sock, size)))
    except ValueError as exc:
        raise WireError("a message header is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise WireError("a message header is malformed")
    specs = header["blobs"]
    if len(specs) > WIRE_BLOBS_CAP:
        raise WireError(f"a message carries more than {WIRE_BLOBS_CAP} arrays")
    checked, total = [], 0
    for spec in specs:
        if not isinstance(spec, list) or len(spec) != 2:
            raise WireError("an array's header is malformed")
        dtype, nbytes = (check or check_array_header)(spec[0], spec[1], max_array_bytes)
        total += nbytes
        if total > max_total_bytes:
            raise WireError(f"a message carries more than {max_total_bytes:,} bytes of arrays")
        checked.append((dtype, spec[1], nbytes))
    arrays = []
    for dtype, shape, nbytes in checked:
        data = _recv_exact(sock, nbytes) if nbytes else b""
        arrays.append(np.frombuffer(bytearray(data), dtype=dtype).reshape(shape))
    return header.get("msg"), arrays


# --- probe: the student's objects served as data ---------------------------------------------
# The probes themselves never run here: they run on the host, and each call they make on an
# exported object comes here as a message. This process holds the student's objects and nothing
# of the judge's: no probe code, no input it was not sent, no report file. What it answers is
# data (numbers, strings, arrays) or a reference to an object that stays here.

SERVE_ARRAY_CAP = 512 * 1024**2  # one argument array the host may send
SERVE_TOTAL_CAP = 1024**3
RESULT_STR_CAP = 100_000


class _Codec:
    """Turns values into wire trees and back, on the student's side. Anything that is not plain
    data stays here behind a reference number."""

    def __init__(self, np) -> None:
        self.np = np
        self.objects: dict[int, object] = {}
        self.next_ref = 1
        self.torch = None

    def ref(self, obj) -> dict:
        ref = self.next_ref
        self.next_ref += 1
        self.objects[ref] = obj
        cls = type(obj)
        return {"$r": ref, "type": f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"[:200]}

    def encode(self, value, blobs: list, budget: list, depth: int = 0):
        np, t = self.np, type(value)
        if value is None or t in (bool, int, float):
            return value
        if t is str:
            if len(value) > RESULT_STR_CAP:
                raise ValueError(f"a string of {len(value):,} characters is too long to return")
            budget[0] += len(value)
            return value
        if depth >= WIRE_DEPTH_CAP:
            return self.ref(value)
        if t in (list, tuple) or t is dict:
            budget[0] += len(value)
            if budget[0] > WIRE_ITEMS_CAP:
                raise ValueError("the result holds too many items to return")
            if t is dict:
                return {"$d": [[self.encode(k, blobs, budget, depth + 1), self.encode(v, blobs, budget, depth + 1)]
                               for k, v in value.items()]}
            items = [self.encode(v, blobs, budget, depth + 1) for v in value]
            return items if t is list else {"$t": items}
        if issubclass(t, np.generic) and value.dtype.kind in ARRAY_KINDS:
            return value.item()
        if t is np.ndarray and value.dtype.kind in ARRAY_KINDS and value.dtype.fields is None:
            blobs.append(np.ascontiguousarray(value))
            return {"$a": len(blobs) - 1}
        torch = sys.modules.get("torch")
        if torch is not None and issubclass(t, torch.Tensor):
            tensor = torch.Tensor.detach(value).cpu()
            if tensor.dtype in (torch.bfloat16, torch.complex64, torch.complex128) or tensor.is_quantized:
                tensor = tensor.float() if not tensor.is_complex() else tensor
            array = tensor.numpy()
            if array.dtype.kind in ARRAY_KINDS:
                blobs.append(np.ascontiguousarray(array))
                return {"$a": len(blobs) - 1, "torch": True}
        return self.ref(value)

    def decode(self, tree, arrays: list, depth: int = 0):
        if depth > WIRE_DEPTH_CAP:
            raise WireError("a message is nested too deeply")
        if isinstance(tree, list):
            return [self.decode(v, arrays, depth + 1) for v in tree]
        if not isinstance(tree, dict):
            return tree
        if "$a" in tree:
            array = arrays[tree["$a"]]
            if tree.get("torch"):
                import torch

                return torch.from_numpy(array)
            return array
        if "$r" in tree:
            return self.objects[tree["$r"]]
        if "$t" in tree:
            return tuple(self.decode(v, arrays, depth + 1) for v in tree["$t"])
        if "$s" in tree:
            return slice(*tree["$s"])
        if "$d" in tree:
            return {self.decode(k, arrays, depth + 1): self.decode(v, arrays, depth + 1) for k, v in tree["$d"]}
        raise WireError("a message holds an unknown value")


def run_probe(job: ProbeJob) -> Report:
    """Load the exports, measure the models, then answer the host's calls until it says goodbye."""
    import socket

    import numpy as np

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(job["channel"])  # before any of the student's code runs
    if job.get("gpu_memory_bytes"):
        cap_gpu_memory(job["gpu_memory_bytes"])
    if job.get("modules_dir"):  # the student's modules: exports pickled by reference and probes use them
        sys.path.insert(0, os.path.abspath(job["modules_dir"]))
    folder = Path(job["exports_dir"])
    if any(_holds(path, b"torch") for path in folder.glob("*.pkl")):
        import torch  # noqa: F401 - imported before the student's code can replace what measuring uses
    measure = _Measurer(np, job.get("modules_dir"))  # takes its tools before any student code runs
    if any(_holds(path, b"_load_from_bytes") for path in folder.glob("*.pkl")):
        _load_tensors_on_cpu_without_gpu()
    exports, export_status = _load_exports(folder, job["exports"])
    models = model_sizes(exports, measure)  # before the host calls anything of the student's on them
    codec = _Codec(np)
    send_message(sock, {"op": "ready", "exports": export_status, "models": models})
    torch_module = sys.modules.get("torch")
    if torch_module is not None:
        torch_module.set_grad_enabled(False)  # probes evaluate; nothing here trains
    calls = 0
    while True:
        try:
            tree, arrays = recv_message(sock, SERVE_ARRAY_CAP, SERVE_TOTAL_CAP)
        except EOFError:
            break
        if not isinstance(tree, dict) or tree.get("op") == "bye":
            break
        calls += 1
        blobs: list = []
        try:
            reply = {"value": codec.encode(_serve_one(codec, exports, job, tree, arrays), blobs, [0])}
        except BaseException as exc:  # noqa: BLE001 - the student's code may raise anything, SystemExit included
            blobs = []
            reply = {"error": {"type": _type_name(exc), "text": _text(exc)}}
        for ref in tree.get("release", []):
            codec.objects.pop(ref, None)
        try:
            send_message(sock, reply, blobs)
        except WireError as exc:
            send_message(sock, {"error": {"type": "ValueError", "text": str(exc)}})
    sock.close()
    return {"status": "ok", "calls": calls}


def _serve_one(codec: _Codec, exports: dict, job: ProbeJob, tree: dict, arrays: list):
    op = tree.get("op")
    if op == "export":
        return exports[tree["name"]]
    if op == "module":
        if tree["name"] not in job.get("modules", []):
            raise ImportError(f"the probe may import only the lab's modules, not {tree['name']!r}")
        return importlib.import_module(tree["name"])
    obj = codec.decode(tree["ref"], arrays)
    if op == "getattr":
        return getattr(obj, tree["name"])
    if op == "call":
        args = codec.decode(tree.get("args", []), arrays)
        kwargs = codec.decode(tree.get("kwargs", {"$d": []}), arrays)
        fn = getattr(obj, tree["attr"]) if tree.get("attr") else obj
        return fn(*args, **kwargs)
    if op == "getitem":
        return obj[codec.decode(tree["key"], arrays)]
    if op == "len":
        return int(len(obj))
    if op == "isinstance":
        module, _, qualname = tree["cls"].rpartition(".")
        cls = sys.modules.get(module)
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        return isinstance(cls, type) and issubclass(type(obj), cls)
    raise WireError(f"unknown operation {op!r}")


def _type_name(exc: BaseException) -> str:
    name = getattr(type(exc), "__name__", "Exception")
    return name if isinstance(name, str) else "Exception"


def _text(exc: BaseException) -> str:
    try:
        return f"{exc}"[:ERROR_TEXT_CAP]
    except BaseException:  # noqa: BLE001 - a __str__ that raises
        return ""


def _load_exports(folder: Path, names: list[str]) -> tuple[dict, dict[str, str]]:
    import cloudpickle

    exports: dict = {}
    export_status: dict[str, str] = {}
    for name in names:
        path = folder / f"{name}.pkl"
        if not path.is_file():
            error = folder / f"{name}.error"
            export_status[name] = (f"could not be saved: {error.read_text(errors='replace')[:ERROR_TEXT_CAP]}"
                                   if error.is_file() else "not defined by the notebook")
            continue
        try:
            with path.open("rb") as f:
                exports[name] = cloudpickle.load(f)
            export_status[name] = "ok"
        except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything, SystemExit included
            export_status[name] = f"could not be loaded: {_type_name(exc)}: {_text(exc)}"[:ERROR_TEXT_CAP]
    return exports, export_status


def model_sizes(exports: dict, measure: _Measurer) -> dict:
    """Parameter counts, saved size and every number stored in each export that is a torch module.
    Unpickling a module imports torch, so torch is never imported here for anything else; a module
    that breaks while being measured is left out (the rubric then says it could not be measured)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    sizes = {}
    for name, obj in exports.items():
        try:
            if issubclass(type(obj), torch.nn.Module):  # type(), not isinstance: __class__ can lie
                sizes[name] = {**_measure(torch, obj), **measure.stored(obj)}
        except BaseException:  # noqa: BLE001 - the student's code may raise anything, SystemExit included
            continue
    return sizes


class _Measurer:
    """Counts every number an object holds in tensors, arrays, floats and bytes reachable from it,
    however it is stored (registered or not, in a dict, a closure, a class attribute, a student
    module's globals). It walks the object graph with gc.get_referents, which no Python-level
    override can answer for, using tools it took before any of the student's code ran."""

    MAX_OBJECTS = 2_000_000

    def __init__(self, np, modules_dir: str | None) -> None:
        import gc
        import types

        self.referents = gc.get_referents
        self.np_ndarray = np.ndarray
        self.size_of = np.ndarray.size.__get__
        self.data_of = lambda a, _get=np.ndarray.__array_interface__.__get__: _get(a)["data"][0]
        self.module_type = types.ModuleType
        self.code_type = types.CodeType
        self.function_type = types.FunctionType
        self.builtin_type = types.BuiltinFunctionType
        self.modules = sys.modules
        self.student_dir = os.path.abspath(modules_dir) if modules_dir else None
        torch = sys.modules.get("torch")
        self.tensor = torch.Tensor if torch is not None else None
        if torch is not None:
            base = getattr(torch._C, "TensorBase", None) or torch._C._TensorBase
            self.numel = base.numel
            self.data_ptr = base.data_ptr
            self.no_overrides = torch._C.DisableTorchFunction

    def _library(self, obj) -> bool:
        """A class or function importable by name from a library module: the same for every student,
        so not walked (a class defined in the notebook is pickled by value and is walked)."""
        module = self.modules.get(getattr(obj, "__module__", None) or "")
        if module is None:
            return False
        if self._student_module(module):
            return False
        target: Any = module
        for part in str(getattr(obj, "__qualname__", "")).split("."):
            target = getattr(target, part, None)
        return target is obj

    def _student_module(self, module) -> bool:
        return bool(self.student_dir) and os.path.abspath(getattr(module, "__file__", "") or "").startswith(
            self.student_dir or "")

    def _library_globals(self, namespace: dict) -> bool:
        """A function's globals that are a library module's namespace (not a dict cloudpickle made)."""
        module = self.modules.get(namespace.get("__name__", "") if type(namespace) is dict else "")
        return module is not None and getattr(module, "__dict__", None) is namespace and \
            not self._student_module(module)

    def stored(self, root) -> dict:
        from contextlib import nullcontext

        seen: set[int] = set()
        storages: set[tuple[int, int]] = set()
        numbers, visited, complete = 0, 0, True
        stack = [root]
        guard = self.no_overrides() if self.tensor is not None else nullcontext()
        with guard:
            while stack:
                obj = stack.pop()
                if id(obj) in seen:
                    continue
                seen.add(id(obj))
                visited += 1
                if visited > self.MAX_OBJECTS:
                    complete = False
                    break
                t = type(obj)
                if t is float:
                    numbers += 1
                    continue
                if t in (bytes, bytearray):
                    numbers += len(obj) // 4
                    continue
                if t in (int, str, bool, type(None), self.code_type):
                    continue
                if self.tensor is not None and issubclass(t, self.tensor):
                    try:
                        key = (self.data_ptr(obj), self.numel(obj))
                    except Exception:  # noqa: BLE001 - a sparse or meta tensor has no data pointer
                        key = (id(obj), 0)
                    if key not in storages:
                        storages.add(key)
                        numbers += int(self.numel(obj))
                elif issubclass(t, self.np_ndarray):
                    key = (self.data_of(obj), self.size_of(obj))
                    if key not in storages:
                        storages.add(key)
                        numbers += int(self.size_of(obj))
                elif issubclass(t, self.module_type):
                    if not self._student_module(obj):
                        continue
                elif issubclass(t, type):
                    if self._library(obj):
                        continue
                elif t is self.function_type:
                    if self._library(obj):
                        continue
                    if self._library_globals(obj.__globals__):  # walk what is its own, not its module's
                        stack.extend(x for x in (obj.__closure__, obj.__defaults__, obj.__kwdefaults__,
                                                 obj.__dict__) if x)
                        continue
                elif t is self.builtin_type:
                    continue
                stack.extend(self.referents(obj))
        return {"stored": numbers, "stored_complete": complete}


def _measure(torch, module) -> dict:
    state, parameters = _module_state(torch, module)
    sink = _CountingSink()
    torch.save(state, sink)
    return {"parameters": sum(int(torch.Tensor.numel(p)) for p in parameters),
            "trainable": sum(int(torch.Tensor.numel(p)) for p in parameters if p.requires_grad),
            "bytes": sink.size}


def _module_state(torch, module) -> tuple[dict, list]:
    """What state_dict() holds (parameters, persistent buffers) and the distinct parameters, read
    from each submodule's own attribute dict: an overridden state_dict(), parameters() or
    __getattr__ hides nothing."""
    Module, Tensor = torch.nn.Module, torch.Tensor
    state: dict = {}
    parameters: dict[int, object] = {}
    seen: set[int] = set()
    stack = [("", module)]
    while stack:
        prefix, m = stack.pop()
        if id(m) in seen or not issubclass(type(m), Module):
            continue
        seen.add(id(m))
        own = object.__getattribute__(m, "__dict__")
        transient = own.get("_non_persistent_buffers_set", set())
        for key, t in dict(own.get("_parameters", {})).items():
            if issubclass(type(t), Tensor):
                state[prefix + key] = t
                parameters[id(t)] = t
        for key, t in dict(own.get("_buffers", {})).items():
            if issubclass(type(t), Tensor) and key not in transient:
                state[prefix + key] = t
        stack.extend((f"{prefix}{key}.", child) for key, child in dict(own.get("_modules", {})).items())
    return state, list(parameters.values())


class _CountingSink:
    """A write-only file that counts what torch.save writes, so measuring holds no second copy."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.size += n
        return n

    def flush(self) -> None:
        pass


def _holds(path: Path, needle: bytes) -> bool:
    import mmap

    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(needle) != -1
    except (OSError, ValueError):  # ValueError: an empty file can't be mapped
        return False


def _load_tensors_on_cpu_without_gpu() -> None:
    """Exports pickled after training on a GPU hold CUDA tensors, which torch refuses to load where
    there is no GPU (the probe stage's default): map them to the CPU instead."""
    import io

    try:
        import torch
        import torch.storage
    except ImportError:
        return
    if torch.cuda.is_available():
        return

    def load_on_cpu(data: bytes):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)

    torch.storage._load_from_bytes = load_on_cpu  # what a pickled torch storage calls when loaded


# --- process hygiene -----------------------------------------------------------------------

def _limit_resources(limits: dict) -> None:
    """Per-process ceilings, inherited by the kernel: data segment, file size, core files."""
    import resource

    for name, which in (("data", resource.RLIMIT_DATA), ("fsize", resource.RLIMIT_FSIZE),
                        ("core", resource.RLIMIT_CORE)):
        if name in limits:
            resource.setrlimit(which, (int(limits[name]), int(limits[name])))


def _protect_self() -> None:
    """Non-dumpable: /proc/<runner>/fd and ptrace are closed to processes without CAP_SYS_PTRACE.
    Children get the flag reset when they exec, so the kernel is unaffected."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def _make_dirs() -> None:
    """The home, cache and temp folders the environment names (in a container they live on a fresh tmpfs)."""
    for var in ("HOME", "MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                "JUPYTER_RUNTIME_DIR", "TMPDIR", "XDG_CACHE_HOME"):
        if os.environ.get(var):
            os.makedirs(os.environ[var], exist_ok=True)


def _become_subreaper() -> None:
    """Orphans of the kernel re-parent to us, so nothing outlives the run unseen."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _forks_refused() -> int | None:
    """How often the kernel refused a fork for the pids limit: the container's own cgroup counter
    (read-only to everyone in the container), read here because the cgroup is gone once we exit."""
    for path in ("/sys/fs/cgroup/pids.events", "/sys/fs/cgroup/pids/pids.events"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "max":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _reap_children() -> None:
    me = str(os.getpid())
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if ppid == me:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    # Wait for them here, their parent: an orphaned zombie waits on whatever reaps for the machine's init,
    # and the host, which watches the whole tree, would wait with it (seconds, in a container without one).
    deadline = time.monotonic() + REAP_WAIT_S
    while time.monotonic() < deadline:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if reaped == 0:
            time.sleep(0.002)


REAP_WAIT_S = 2.0

def _exit_now(code: int) -> None:
    """Exit without tearing the interpreter down: the report is sent and the children reaped, and unloading
    torch and the rest takes longer than the run it served (a second and more on a busy machine)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
