"""The Docker engine and the names our containers and images carry: what both the runtime and the
image tools need, so the runtime never imports the build tools."""

from __future__ import annotations

import docker
import docker.errors
import requests

from autograder.errors import UserError

DEFAULT_IMAGE = "autograder-sandbox:latest"
# The image's unprivileged user (sandbox/Dockerfile); a root host chowns each work dir to it.
SANDBOX_UID = 10001
# Labels every container and image of ours carries, so leftovers can be found and removed.
LABEL = "org.autograder.sandbox"
ENGINE_HINT = "start it: dockerd &  (as root), or install Debian's docker.io: apt-get install -y docker.io"


def engine(timeout: float = 10, max_pool_size: int = 10) -> docker.DockerClient:
    """A client whose engine has answered a ping; a UserError with the fix otherwise."""
    try:
        # docker hands the timeout to requests, which takes fractions of a second; its stubs say int.
        client = docker.from_env(timeout=timeout, max_pool_size=max_pool_size)  # type: ignore[arg-type]
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as e:
        why = explain(e)
        hint = ENGINE_HINT
        if "permission denied" in why.lower():
            hint = "add yourself to the docker group (usermod -aG docker $USER, then log in again), or run as root"
        raise UserError(f"no Docker engine answers: {why}", hint) from None
    return client


def explain(e: Exception) -> str:
    text = getattr(e, "explanation", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())[:300]


def has_image(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True
