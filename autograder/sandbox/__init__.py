"""Sandbox backends, chosen by name from one registry (as papermill chooses its engines)."""

from __future__ import annotations

from autograder.errors import UserError
from autograder.sandbox.base import SandboxBackend, SandboxJob, SandboxRun
from autograder.sandbox.local import LocalBackend

BACKENDS: dict[str, type[SandboxBackend]] = {}


def register(cls: type[SandboxBackend]) -> type[SandboxBackend]:
    BACKENDS[cls.name] = cls
    return cls


register(LocalBackend)


def get_backend(name: str) -> SandboxBackend:
    if name not in BACKENDS:
        raise UserError(f"unknown sandbox backend {name!r}", f"choose one of: {', '.join(sorted(BACKENDS))}")
    backend = BACKENDS[name]()
    why = backend.unavailable()
    if why:
        raise UserError(f"the {name} backend can't run here: {why}")
    return backend


__all__ = ["BACKENDS", "SandboxBackend", "SandboxJob", "SandboxRun", "get_backend", "register"]
