"""The in-sandbox runner: executes a notebook with papermill, or runs the lab's probes.

It runs inside the sandbox next to untrusted code, so it imports only the standard library and
what the sandbox image has (papermill, nbformat, numpy, cloudpickle), never `autograder`. It
reports to the host on a pipe (`--report-fd`) that the notebook's kernel does not inherit: one
line of JSON, then, for an execution, the executed notebook as papermill holds it in memory.
Everything it leaves in the work dir is the student's to tamper with, and the host treats it so.

    python runner.py JOB.json --report-fd N     (the local backend passes a pipe)
    python runner.py JOB.json --report-stdout   (in a container: stdout is the report channel)

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

CAPTURE_TAG = "autograder-capture"
SETUP_TAG = "autograder-setup"
ERROR_TEXT_CAP = 2000
NOTEBOOK_CAP = 50 * 1024**2  # the executed notebook sent back; past this it is dropped and counted


def _skip_slow_optional_imports() -> None:
    """jsonschema imports rfc3987_syntax, when installed, to check IRI formats that notebooks never
    use; building its grammar costs ~1.4 s per process. jsonschema treats it as optional."""
    sys.modules.setdefault("rfc3987_syntax", None)


def main(argv: list[str] | None = None) -> int:
    _skip_slow_optional_imports()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job", type=Path)
    channel = parser.add_mutually_exclusive_group(required=True)
    channel.add_argument("--report-fd", type=int, help="write the report to this inherited pipe")
    channel.add_argument("--report-stdout", action="store_true", help="write the report to stdout, alone")
    args = parser.parse_args(argv)
    report_fd = args.report_fd
    if args.report_stdout:
        report_fd = os.dup(1)  # not inheritable: the kernel never holds it
        os.dup2(2, 1)
    _protect_self()
    _become_subreaper()
    _make_dirs()
    job = json.loads(args.job.read_text())
    _limit_resources(job.get("rlimits", {}))
    started = time.monotonic()
    try:
        report = {"execute": run_execute, "probe": run_probe}[job["stage"]](job)
    except Exception:  # the runner's own failure: the host makes it `harness-error`
        report = {"status": "harness-error", "message": traceback.format_exc()[-ERROR_TEXT_CAP:]}
    report["duration_s"] = round(time.monotonic() - started, 3)
    _reap_children()
    report["forks_refused"] = _forks_refused()
    attachment = report.pop("_attachment", b"")
    data = json.dumps(report).encode() + b"\n" + attachment
    with os.fdopen(report_fd, "wb") as out:
        out.write(data)
    return 0


# --- execute -------------------------------------------------------------------------------

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
    from jupyter_client.manager import AsyncKernelManager
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.utils import merge_kwargs, remove_args

    class IPCKernelManager(AsyncKernelManager):
        """Kernel sockets as files in the work dir: no TCP port, so no network is needed."""

        def __init__(self, **kwargs):
            # Relative to the work dir: a socket path may not exceed 107 bytes.
            super().__init__(transport="ipc", ip=os.path.join(os.path.relpath(tempfile.gettempdir()), "kernel"),
                             **kwargs)

    class CappedClient(PapermillNotebookClient):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("kernel_manager_class", IPCKernelManager)
            kwargs.setdefault("shutdown_kernel", "immediate")  # the run is over; nothing to save
            super().__init__(*args, **kwargs)
            self.kept: dict[int, int] = {}
            self.total = 0
            self.dropped = 0
            self.current: int | None = None

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


def run_execute(job: dict) -> dict:
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
    report: dict = {"status": "ok", "message": "", "cell": None}
    try:
        papermill.execute_notebook(
            nb, job["output"], parameters=job["parameters"], engine_name="autograder-capped",
            kernel_name=job.get("kernel", "python3"), execution_timeout=job.get("cell_timeout"),
            start_timeout=job.get("start_timeout", 60), progress_bar=False, log_output=False, cwd=".",
        )
    except papermill.PapermillExecutionError as exc:
        report.update(status="error", ename=exc.ename, evalue=str(exc.evalue)[:ERROR_TEXT_CAP],
                      cell_index=exc.cell_index)
        if exc.ename == "MemoryError":
            report["status"] = "memory"
    except CellTimeoutError as exc:
        report.update(status="cell-timeout", message=str(exc)[:ERROR_TEXT_CAP])
    except DeadKernelError as exc:
        report.update(status="crashed", message=f"the kernel died: {exc}"[:ERROR_TEXT_CAP])
    client = engine.client
    if client is not None:
        report["output_truncated_bytes"] = client.dropped
        if report["status"] in ("cell-timeout", "crashed") and report.get("cell_index") is None:
            report["cell_index"] = client.current
    # The notebook as papermill ran it (parameters injected), from memory: not a file the kernel can touch.
    executed = client.nb if client is not None else nb
    report["cell"] = student_cell_number(executed, report.get("cell_index"))
    if client is not None:
        data = nbformat.writes(executed).encode()
        if len(data) <= NOTEBOOK_CAP:  # output is capped, so only giant source cells get here
            report["_attachment"] = data
    return report


# --- probe ---------------------------------------------------------------------------------

def run_probe(job: dict) -> dict:
    import cloudpickle
    import numpy as np

    if job.get("gpu_memory_bytes"):
        cap_gpu_memory(job["gpu_memory_bytes"])
    if job.get("modules_dir"):  # the student's modules: exports pickled by reference and probes import them
        sys.path.insert(0, os.path.abspath(job["modules_dir"]))
    folder = Path(job["exports_dir"])
    if any(_holds(path, b"_load_from_bytes") for path in folder.glob("*.pkl")):
        _load_tensors_on_cpu_without_gpu()
    exports: dict = {}
    export_status: dict[str, str] = {}
    for name in job["exports"]:
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
            export_status[name] = f"could not be loaded: {type(exc).__name__}: {exc}"[:ERROR_TEXT_CAP]
    models = model_sizes(exports)  # before the probes run anything of the student's on them
    inputs = {p.stem: np.load(p, allow_pickle=False) for p in sorted(Path(job["inputs_dir"]).glob("*.npy"))}
    out_dir = Path(job["outputs_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    probes: dict[str, dict] = {}
    files = job["probes"] if isinstance(job["probes"], list) else [job["probes"]]
    found = []
    for i, path in enumerate(files):  # staff code: an error here is the harness's, not the student's
        spec = importlib.util.spec_from_file_location(f"autograder_probes_{i}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [(attr, getattr(module, attr)) for attr in sorted(vars(module))]
    for attr, fn in found:
        if not (attr.startswith("probe_") and callable(fn)):
            continue
        name = attr.removeprefix("probe_")
        try:
            result = fn(dict(exports), dict(inputs))
            arrays = _plain_arrays(result, np)
            np.savez(out_dir / f"{name}.npz", **arrays)
            probes[name] = {"status": "ok", "keys": sorted(arrays)}
        except KeyError as exc:
            missing = exc.args[0] if exc.args else "?"
            why = export_status.get(missing, "") if isinstance(missing, str) else ""
            text = f"`{missing}` {why}" if why else f"KeyError: {exc}"
            probes[name] = {"status": "failed", "error": text[:ERROR_TEXT_CAP]}
        except BaseException as exc:  # noqa: BLE001
            probes[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_CAP]}
    return {"status": "ok", "probes": probes, "exports": export_status, "models": models}


def model_sizes(exports: dict) -> dict:
    """Parameter counts and saved size of each export that is a torch module. Unpickling a module
    imports torch, so torch is never imported here for anything else; a module that breaks while
    being measured is left out (the rubric then says it could not be measured)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    sizes = {}
    for name, obj in exports.items():
        try:
            if issubclass(type(obj), torch.nn.Module):  # type(), not isinstance: __class__ can lie
                sizes[name] = _measure(torch, obj)
        except BaseException:  # noqa: BLE001 - the student's code may raise anything, SystemExit included
            continue
    return sizes


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


def _plain_arrays(result, np) -> dict:
    if not isinstance(result, dict):
        raise TypeError(f"a probe must return a dict of arrays, not {type(result).__name__}")
    arrays = {}
    for key, value in result.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"probe output keys must be identifiers, got {key!r}")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"probe output {key!r} is not a plain numeric array (dtype {arr.dtype})")
        arrays[key] = arr
    return arrays


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


if __name__ == "__main__":
    raise SystemExit(main())
