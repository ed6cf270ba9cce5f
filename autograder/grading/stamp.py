"""The reproducibility stamp: the conditions a result was graded under (results.Environment).

Every field is read by the host from outside the student's code, which could print any
torch.__version__ it likes: on the docker backend, the image's id from the engine and the versions
the image holds, read once per image by a throwaway container of it (no network, read-only, the
standard library only, torch's files read and never imported); on the local backend, this
interpreter's packages (importlib.metadata, without importing torch: that costs seconds). The CPU
model comes from /proc/cpuinfo, the GPU model and driver from nvidia-smi on the host (only when the
run held GPUs), and the deterministic settings from the environment the harness gives every
sandbox (sandbox.base.sandbox_env). What a host reads once (per image, per interpreter, per set of
GPUs) is cached for the process, so a stamp costs a dictionary lookup per result.

The local backend does not isolate: a notebook there could rewrite the shared interpreter's package
files, so its stamp is as good as the host's environment is kept. The docker image's root is read-only.
"""

from __future__ import annotations

import inspect
import json
import logging
import platform
import sys
import threading
from collections.abc import Sequence
from typing import Any

from autograder import __version__
from autograder.labs.lab import Lab
from autograder.labs.spec import Limits
from autograder.results import Environment
from autograder.sandbox import SandboxBackend
from autograder.sandbox.base import deterministic, sandbox_env

log = logging.getLogger(__name__)
_CACHE: dict[tuple[str, ...], Any] = {}
_LOCK = threading.Lock()
STAMP_TIMEOUT_S = 60  # a throwaway container reading versions; an image without Python never answers


def installed() -> dict[str, Any]:
    """Python, torch and the CUDA torch was built for, as this interpreter has them installed.
    Standard library only and self-contained: its source also runs inside a sandbox image."""
    import ast
    import importlib.metadata
    import importlib.util
    import os
    import platform

    found: dict[str, Any] = {"python": platform.python_version(), "torch": "", "cuda": None,
                             "platform": f"{platform.system()}-{platform.release()} {platform.machine()}"}
    try:
        found["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return found
    try:
        spec = importlib.util.find_spec("torch")  # finds the package; runs none of it
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            with open(os.path.join(folder, "version.py"), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            value: ast.expr | None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id == "cuda" and isinstance(value, ast.Constant):
                found["cuda"] = value.value if isinstance(value.value, str) else None
        break
    return found


def installed_script(prelude: str = "") -> str:
    """installed() as a program that prints its answer as JSON: what a throwaway container runs."""
    return ("from __future__ import annotations\n" + prelude + inspect.getsource(installed)
            + "\nimport json\nprint(json.dumps(installed()))\n")


def _cached(key: tuple[str, ...], read: Any) -> Any:
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    value = read()  # outside the lock: a container may take a second; a race reads twice, harmlessly
    with _LOCK:
        return _CACHE.setdefault(key, value)


def forget() -> None:
    """Drop what was read (tests; a host whose image was rebuilt under a running process)."""
    with _LOCK:
        _CACHE.clear()


def cpu_model() -> str:
    """'AMD EPYC 7763 64-Core Processor (16 CPUs)', from /proc/cpuinfo; platform.processor() elsewhere."""
    def read() -> str:
        model = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                        model = value.strip()
                        break
        except OSError:
            pass
        model = model or platform.processor() or platform.machine()
        import os

        return f"{model} ({os.cpu_count()} CPUs)" if os.cpu_count() else model

    return _cached(("cpu",), read)


def gpu_models(gpu_ids: Sequence[str]) -> tuple[str | None, str | None]:
    """(GPU model(s), driver version) of the host GPUs a run held, from nvidia-smi; (None, None) without."""
    if not gpu_ids:
        return None, None

    def read() -> tuple[str | None, str | None]:
        from autograder.sandbox.gpus import _smi

        rows = _smi("--query-gpu=index,name,driver_version") or []
        names = [row[1] for row in rows if len(row) >= 3 and row[0] in gpu_ids]
        drivers = sorted({row[2] for row in rows if len(row) >= 3 and row[0] in gpu_ids})
        if not names:
            return None, None
        model = names[0] if len(set(names)) == 1 else ", ".join(names)
        return (f"{len(names)} x {model}" if len(names) > 1 and len(set(names)) == 1 else model,
                ", ".join(drivers) or None)

    return _cached(("gpu", *sorted(gpu_ids)), read)


def image_facts(backend: SandboxBackend, packages: Sequence[str]) -> dict[str, Any]:
    """What the run's software was: the image's name, id and versions (docker), or this interpreter's."""
    if backend.name != "docker":
        return {"image": "", "image_digest": "", **_cached(("local", sys.executable), installed)}
    image_for = getattr(backend, "image_for", None)
    name = image_for(packages) if image_for is not None else ""
    try:
        image = backend.client.images.get(name)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - no engine or no image: the stamp says what it could not read
        log.warning("the stamp could not read the image %s (%s: %s)", name, type(exc).__name__, exc)
        return {"image": name, "image_digest": "", "python": "", "torch": "", "cuda": None, "platform": ""}
    digest = str(image.id)
    try:
        found = _cached(("docker", digest), lambda: _in_image(backend, digest))
    except Exception as exc:  # noqa: BLE001 - said in the stamp (empty versions), not cached: tried again next time
        log.warning("the stamp could not read the versions in %s (%s: %s)", digest[:19], type(exc).__name__, exc)
        found = {"python": "", "torch": "", "cuda": None, "platform": ""}
    return {"image": name, "image_digest": digest, **found}


def _in_image(backend: SandboxBackend, image_id: str) -> dict[str, Any]:
    """installed() run by a throwaway container of the image: no network, read-only, no capabilities."""
    from autograder.sandbox.engine import LABEL

    script = installed_script()
    user = backend._user() if hasattr(backend, "_user") else None  # noqa: SLF001 - the backend's own rule
    out = backend.client.containers.run(  # type: ignore[attr-defined]
        image_id, ["python", "-I", "-c", script], network_mode="none", read_only=True, remove=True,
        cap_drop=["ALL"], security_opt=["no-new-privileges"], user=user, labels={LABEL: "stamp"},
        stdout=True, stderr=False, mem_limit=512 * 1024**2, tmpfs={"/tmp": "size=16m"})
    found = json.loads(out.decode().strip().splitlines()[-1])
    return {key: found.get(key) for key in ("python", "torch", "cuda", "platform")}


def seeds_of(lab: Lab) -> tuple[str | None, list[int]]:
    """The lab's seed parameter (lab.yaml's seed_parameter) and the seed the first run is given."""
    name = getattr(lab.spec, "seed_parameter", None)
    value = lab.spec.parameters.get(name) if name else None
    seeds = [value] if isinstance(value, int) and not isinstance(value, bool) else []
    return name, seeds


def environment(lab: Lab, backend: SandboxBackend, limits: Limits, gpu_ids: Sequence[str] = ()) -> Environment:
    """The stamp of a run of `lab` on `backend` under `limits`, holding the GPUs `gpu_ids`."""
    seed_parameter, seeds = seeds_of(lab)
    facts = image_facts(backend, lab.spec.packages)
    gpu, driver = gpu_models(gpu_ids)
    env = sandbox_env("", "", limits.cpus, ",".join(gpu_ids), "")
    return Environment(
        seed_parameter=seed_parameter, seeds=seeds, image=facts["image"], image_digest=facts["image_digest"],
        python=facts["python"] or "", torch=facts["torch"] or "", cuda=facts["cuda"], driver=driver, gpu=gpu,
        cpu=cpu_model(), platform=facts["platform"] or "", backend=backend.name, deterministic=deterministic(env),
        harness_version=__version__, limits=limits.model_dump(mode="json"))


# What `rerun` holds against the stamp: a difference in these may change a value.
COMPARED = ("image_digest", "python", "torch", "cuda", "driver", "gpu", "cpu", "deterministic")


def differences(recorded: Environment, now: Environment) -> list[str]:
    """'torch: 2.13.0+cpu then, 2.14.0 now' for each condition that is not what the stamp recorded."""
    said = []
    for name in COMPARED:
        then, here = getattr(recorded, name), getattr(now, name)
        if then != here:
            said.append(f"{name}: {_shown(then)} then, {_shown(here)} now")
    return said


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
    return str(value) if value not in (None, "") else "none"
