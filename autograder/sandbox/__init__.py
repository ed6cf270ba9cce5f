"""Sandbox backends, chosen by name from one registry (as papermill chooses its engines)."""

from __future__ import annotations

from autograder.errors import UserError
from autograder.sandbox.base import BackendSettings, SandboxBackend, SandboxJob, SandboxRun
from autograder.sandbox.containers import DockerBackend, engine
from autograder.sandbox.local import LocalBackend

BACKENDS: dict[str, type[SandboxBackend]] = {}
AUTO = "auto"


def register(cls: type[SandboxBackend]) -> type[SandboxBackend]:
    BACKENDS[cls.name] = cls
    return cls


register(LocalBackend)
register(DockerBackend)


def get_backend(name: str, settings: BackendSettings | None = None) -> SandboxBackend:
    """The backend called `name`; `auto` is docker whenever an engine answers, else local. Each lab's
    packages are checked by the grader (`SandboxBackend.prepare`) and travel with each job."""
    if name == AUTO:
        name = DockerBackend.name if engine() is not None else LocalBackend.name
    if name not in BACKENDS:
        raise UserError(f"unknown sandbox backend {name!r}", f"choose one of: {', '.join([AUTO, *sorted(BACKENDS)])}")
    backend = BACKENDS[name](settings)
    why = backend.unavailable()
    if why:
        raise UserError(f"the {name} backend can't run here: {why}")
    return backend


__all__ = ["AUTO", "BACKENDS", "BackendSettings", "SandboxBackend", "SandboxJob", "SandboxRun", "get_backend",
           "register"]
