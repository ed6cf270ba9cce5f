"""`autograder sandbox doctor`: can this machine run the docker backend, and if not, what fixes it.

Every check ends in a status and, when not ok, a command or instruction that fixes it. Nothing
here raises for a missing engine or GPU: those are the answers the doctor exists to give.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import docker
from pydantic import BaseModel

from autograder.errors import UserError
from autograder.sandbox.build.image import BOOTSTRAP_BASE, DEFAULT_BASE, image_status
from autograder.sandbox.engine import DEFAULT_IMAGE, engine, has_image
from autograder.sandbox.gpus import GpuInfo, detect

BUILD_FIX = "autograder sandbox build"
GVISOR_FIX = (
    "install gVisor (https://gvisor.dev/docs/user_guide/install/), register it with `runsc install` (it adds "
    '"runtimes": {"runsc": {"path": "/usr/local/bin/runsc"}} to /etc/docker/daemon.json), then restart dockerd'
)
NVIDIA_FIX = (
    "install nvidia-container-toolkit, then: nvidia-ctk runtime configure --runtime=docker && "
    "systemctl restart docker (or restart dockerd)"
)


class Check(BaseModel):
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""


def doctor(
    tag: str = DEFAULT_IMAGE, runtime: str | None = None, *, context_dir: Path | None = None, timeout: float = 10
) -> list[Check]:
    """Every check, in the order a fix is needed: engine first, then what builds and runs on it."""
    checks: list[Check] = []
    client: docker.DockerClient | None = None
    info: dict[str, Any] = {}
    try:
        client = engine(timeout)
        info = client.info()
        checks.append(_engine(info, client.version()))
        checks.append(_limits(info))
    except UserError as e:
        checks.append(Check(name="engine", status="fail", detail=e.message, fix=e.hint or ""))
    except docker.errors.DockerException as e:
        detail = f"the engine answers but fails: {e}"
        checks.append(Check(name="engine", status="fail", detail=detail, fix="see dockerd's log"))
        client = None
    if client is None:
        skipped = "not checked: no engine"
        checks += [Check(name=name, status="warn", detail=skipped) for name in ("limits", "image", "runtime")]
    else:
        checks.append(_image(client, tag, context_dir))
        checks.append(_runtime(info, runtime))
    gpus, gpu_check = host_gpus()
    checks.append(gpu_check)
    checks.append(_gpu_runtime(info, gpus, client is not None))
    checks.append(_debootstrap(client))
    return checks


def render(checks: list[Check]) -> str:
    """Plain text, one line per check and its fix indented below (the CLI may prefer a table)."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    return "\n".join(lines)


def _engine(info: dict[str, Any], version: dict[str, Any]) -> Check:
    options = [_security_option(o) for o in info.get("SecurityOptions") or []]
    rootless = any(o.startswith("rootless") for o in options)
    detail = (
        f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}), "
        f"{info.get('OSType', '?')}/{info.get('Architecture', '?')}, "
        f"cgroup v{info.get('CgroupVersion', '?')} ({info.get('CgroupDriver', '?')}), "
        f"{'rootless' if rootless else 'rootful'}, security: {', '.join(options) or 'none'}"
    )
    return Check(name="engine", status="ok", detail=detail)


def _security_option(option: str) -> str:
    """'name=seccomp,profile=default' -> 'seccomp (default)'."""
    fields = dict(part.split("=", 1) for part in option.split(",") if "=" in part)
    name = fields.pop("name", option)
    return f"{name} ({', '.join(fields.values())})" if fields else name


def _limits(info: dict[str, Any]) -> Check:
    """The docker backend enforces memory and process limits through these cgroup controllers."""
    v1 = str(info.get("CgroupVersion", "1")) == "1"
    if not info.get("MemoryLimit", True):
        return Check(
            name="limits", status="fail", detail="the engine can't limit memory: a memory bomb would take the host",
            fix="enable the memory cgroup controller (kernel command line: cgroup_enable=memory swapaccount=1), reboot",
        )
    missing = []
    if not info.get("SwapLimit", True):
        missing.append("swap (a run may swap past its memory limit)")
    if not info.get("PidsLimit", True):
        missing.append("pids (a fork bomb is stopped only by the timeout)")
    if not info.get("CpuCfsQuota", True):
        missing.append("CPU quota")
    if missing:
        fix = "boot with swapaccount=1 (cgroup v1), or move to cgroup v2" if v1 else "enable the missing controllers"
        return Check(name="limits", status="warn", detail="no limit on " + "; ".join(missing), fix=fix)
    return Check(name="limits", status="ok", detail="memory, swap, pids and CPU quota can be limited")


def _image(client: docker.DockerClient, tag: str, context_dir: Path | None) -> Check:
    status = image_status(client, tag, context_dir=context_dir)
    if not status.present:
        return Check(name="image", status="fail", detail=f"no image {tag}", fix=BUILD_FIX)
    labels = status.labels
    torch = labels.get("org.autograder.sandbox.torch") or "no torch"
    detail = f"{tag}: {(status.size_bytes or 0) / 1e9:.2f} GB, built {str(status.created)[:16]}, {torch}"
    if status.stale:
        return Check(name="image", status="warn", detail=f"{detail}; stale: {status.reason}", fix=BUILD_FIX)
    if status.reason:  # present, but can't be compared with the sources
        detail += f"; {status.reason}"
    return Check(name="image", status="ok", detail=detail)


def _runtime(info: dict[str, Any], wanted: str | None) -> Check:
    offered = sorted(info.get("Runtimes") or {})
    default = info.get("DefaultRuntime", "runc")
    detail = f"{default} (default)" + (f"; also {', '.join(r for r in offered if r != default)}" if offered else "")
    if wanted and wanted not in offered:
        fix = GVISOR_FIX if wanted == "runsc" else (
            f'install {wanted} and register it under "runtimes" in /etc/docker/daemon.json, then restart dockerd'
        )
        return Check(name="runtime", status="fail", detail=f"{wanted} is not offered; the engine has {detail}", fix=fix)
    if wanted:
        detail = f"{wanted} offered; {detail}"
    return Check(name="runtime", status="ok", detail=detail)


def host_gpus() -> tuple[list[GpuInfo], Check]:
    """The host's NVIDIA GPUs (sandbox.gpus.detect, as grading sees them), and the check that says so."""
    if not shutil.which("nvidia-smi"):
        return [], Check(
            name="gpu", status="warn",
            detail="no NVIDIA GPU or driver on this host; labs with gpus > 0 can only run where allowed on CPU",
        )
    gpus = detect()
    if not gpus:
        return [], Check(name="gpu", status="warn", detail="nvidia-smi lists no GPU",
                         fix="check the NVIDIA driver (nvidia-smi must list the GPUs)")
    listed = ", ".join(f"{g.index}: {g.name} ({g.memory_mb} MiB)" for g in gpus)
    return gpus, Check(name="gpu", status="ok", detail=f"{len(gpus)} GPU{'s' * (len(gpus) > 1)}: {listed}")


def _gpu_runtime(info: dict[str, Any], gpus: list[GpuInfo], have_engine: bool) -> Check:
    """How containers would get GPUs: the nvidia runtime, the toolkit's hook (--gpus), or CDI specs."""
    ways = []
    if "nvidia" in (info.get("Runtimes") or {}):
        ways.append("nvidia runtime")
    if shutil.which("nvidia-container-runtime-hook"):
        ways.append("device requests (nvidia-container-runtime-hook)")
    cdi_dirs = info.get("CDISpecDirs") or []
    specs = [p.name for d in cdi_dirs for p in sorted(Path(d).glob("nvidia*")) if Path(d).is_dir()]
    if specs:
        ways.append(f"CDI ({', '.join(specs)})")
    if not gpus:
        detail = "not needed: no GPU on this host" + (f" ({', '.join(ways)} installed)" if ways else "")
        return Check(name="gpu-runtime", status="ok", detail=detail)
    if not have_engine:
        return Check(name="gpu-runtime", status="warn", detail="not checked: no engine")
    if ways:
        return Check(name="gpu-runtime", status="ok", detail="containers get GPUs by " + ", ".join(ways))
    return Check(
        name="gpu-runtime", status="fail",
        detail="this host has GPUs but the engine can't hand them to containers (no nvidia runtime, hook or CDI spec)",
        fix=NVIDIA_FIX,
    )


def _debootstrap(client: docker.DockerClient | None) -> Check:
    """Needed only to bootstrap a base image when no registry answers and none is here."""
    found = shutil.which("debootstrap")
    if client is None:
        detail = f"debootstrap {'present' if found else 'absent'}; base images not checked: no engine"
        return Check(name="base", status="warn", detail=detail)
    bases = [b for b in (DEFAULT_BASE, BOOTSTRAP_BASE) if has_image(client, b)]
    if bases:
        detail = f"base image {bases[0]} present" + ("" if found else "; debootstrap not needed")
        return Check(name="base", status="ok", detail=detail)
    if not found:
        return Check(
            name="base", status="warn",
            detail=f"no base image here ({DEFAULT_BASE} or {BOOTSTRAP_BASE}) and no debootstrap to bootstrap one "
            "where no registry answers",
            fix="apt-get install -y debootstrap  (as root)",
        )
    if os.geteuid() != 0:
        return Check(
            name="base", status="warn", detail="no base image here; bootstrapping one with debootstrap needs root",
            fix=f"run `{BUILD_FIX}` as root once, or docker pull {DEFAULT_BASE} where a registry answers",
        )
    return Check(name="base", status="ok", detail=f"no base image yet; {BUILD_FIX} pulls or bootstraps one")
