"""The sandbox image: built from sandbox/Dockerfile with a wheelhouse made on the host.

Why a host-side wheelhouse: the build then needs no package index (the engine may reach none),
and torch (hundreds of MB) is downloaded once for many rebuilds. The wheels are chosen for the
*image's* Python and glibc, asked of a container of the Dockerfile's first stage, never the host's.
Where no registry answers, the base is bootstrapped from Debian's packages with debootstrap.
The steps: base image, the image's Python (`probe_target`), the wheelhouse, the build, a smoke
test offline; the tag moves to the new image only once it passed. `image_status` tells the doctor
and the docker backend whether the image is current, from the labels the build puts on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image
from docker.utils import parse_repository_tag
from pydantic import BaseModel, ConfigDict, Field, field_validator

from autograder.errors import UserError
from autograder.sandbox.build.wheelhouse import (
    Log,
    Target,
    download_wheelhouse,
    quiet,
    sha256_text,
    stream,
)
from autograder.sandbox.engine import DEFAULT_IMAGE, ENGINE_HINT, LABEL, SANDBOX_UID, engine, explain, has_image

DEFAULT_BASE = "python:3.11-slim-bookworm"
# What a build falls back to when the default base can't be pulled: Debian made by debootstrap.
BOOTSTRAP_BASE = "autograder-base:bookworm"
PYTHON_STAGE_REPO = "autograder-sandbox-python"
STAGE_REPO = "autograder-sandbox-stage"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TORCH = "torch==2.13.0"
# What the in-sandbox runner imports; the smoke test imports them (and torch, when asked for).
RUNNER_IMPORTS = ["papermill", "ipykernel", "nbclient", "nbformat", "cloudpickle", "numpy"]
# Must not be in the image: the Jupyter server stack and jsonschema's format extras cost ~1 s of
# imports in every sandbox process (docs/benchmarks.md).
LEAN_ABSENT = ["rfc3987_syntax", "jupyter_server"]
# A build streams for many minutes with silent steps (pip installing torch): no read timeout.
BUILD_TIMEOUT = 3600

# Loose on purpose (the engine has the last word): enough to fail before a 2-minute build.
IMAGE_NAME = r"[a-z0-9][a-z0-9._/:-]*(:\w[\w.-]{0,127})?(@sha256:[0-9a-f]{64})?"

class BuildOptions(BaseModel):
    """What `autograder sandbox build` may change; the defaults build the CPU image."""

    model_config = ConfigDict(extra="forbid")

    tag: str = DEFAULT_IMAGE
    base_image: str = Field(
        DEFAULT_BASE,
        description=f"FROM image; when the default can't be pulled, {BOOTSTRAP_BASE} is bootstrapped instead",
    )
    torch: str = Field(DEFAULT_TORCH, description="torch requirement (e.g. a CUDA build's); '' for no torch")
    pip_args: list[str] = Field(default_factory=list, description="extra `pip download` args, e.g. --index-url URL")
    context_dir: Path | None = Field(None, description="folder with Dockerfile and requirements.txt")
    wheelhouse_dir: Path | None = Field(None, description="where downloaded wheelhouses are cached")
    no_cache: bool = Field(False, description="download the wheels again and build without the layer cache")
    check_imports: list[str] = Field(
        default_factory=lambda: list(RUNNER_IMPORTS), description="modules the smoke test imports (torch added)"
    )
    debian_mirror: str = DEBIAN_MIRROR

    @field_validator("tag", "base_image")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not re.fullmatch(IMAGE_NAME, value) or value.endswith((":", "/")):
            raise ValueError(f"{value!r} is not an image name (lower case, e.g. autograder-sandbox:latest)")
        return value


class BuildResult(BaseModel):
    tag: str
    image_id: str
    size_bytes: int
    python: str
    torch: str | None = Field(description="torch.__version__ in the image; None when built without torch")
    build_seconds: float
    base_image: str = Field(description="the base actually used (the bootstrapped one when the pull failed)")
    wheelhouse: Path
    wheelhouse_reused: bool


class ImageStatus(BaseModel):
    tag: str
    present: bool
    id: str | None = None
    size_bytes: int | None = None
    created: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    stale: bool = False
    reason: str = Field("", description="why it is stale, absent, or can't be compared")


# --- where things are -------------------------------------------------------------------------


def default_context_dir() -> Path:
    """<course root>/sandbox when run in a course that has one, else this checkout's sandbox/."""
    from autograder.labs.lab import find_root

    candidates = []
    try:
        candidates.append(find_root() / "sandbox")
    except UserError:
        pass
    import autograder

    candidates.append(Path(autograder.__file__).resolve().parents[1] / "sandbox")
    for folder in candidates:
        if (folder / "Dockerfile").is_file():
            return folder
    raise UserError(
        f"no sandbox/Dockerfile in {' or '.join(str(c) for c in candidates)}",
        "run from the course folder (with sandbox/Dockerfile and sandbox/requirements.txt) or pass --context DIR",
    )


def default_wheelhouse_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "autograder" / "wheelhouse"


def combined_requirements(requirements: str, torch: str) -> str:
    """The image's requirements as installed: the file without comments, plus the torch spec.

    Normalised so that a comment edit does not make the image stale; this text is both what the
    Dockerfile installs and what the image's requirements label hashes.
    """
    lines = [line.split(" #")[0].strip() for line in requirements.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if torch.strip():
        lines.append(torch.strip())
    return "\n".join(lines) + "\n"


def _distributions(requirements: str) -> list[str]:
    """Project names in a requirements text (options and URLs skipped), to check they got installed."""
    names = []
    for line in requirements.splitlines():
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match and "://" not in line:
            names.append(match.group(0))
    return names


# --- step 1: the base image -------------------------------------------------------------------


def ensure_base(client: docker.DockerClient, base: str, log: Log = quiet, mirror: str = DEBIAN_MIRROR) -> str:
    """The base to build FROM: `base` if here or pullable; for the default base, a Debian one."""
    if has_image(client, base):
        log(f"base image {base}: present")
        return base
    log(f"base image {base}: not here, pulling it")
    try:
        client.images.pull(base)
        return base
    except docker.errors.DockerException as e:
        why = explain(e)
    if base != DEFAULT_BASE:
        raise UserError(
            f"can't get the base image {base}: {why}",
            f"load it into this engine first (docker load -i FILE, or docker pull {base} where a registry answers), "
            f"or leave --base-image at its default, which bootstraps a Debian base when no registry answers",
        )
    log(f"can't pull {base} ({why})")
    if has_image(client, BOOTSTRAP_BASE):
        log(f"using {BOOTSTRAP_BASE}, bootstrapped earlier")
        return BOOTSTRAP_BASE
    return bootstrap_base(client, BOOTSTRAP_BASE, log, mirror)


def bootstrap_base(
    client: docker.DockerClient, name: str = BOOTSTRAP_BASE, log: Log = quiet, mirror: str = DEBIAN_MIRROR
) -> str:
    """A Debian bookworm image from Debian's own packages: `debootstrap` then `docker import`."""
    fallback = "or pass --base-image IMAGE with an image this engine already has (see: docker images)"
    if os.geteuid() != 0:
        raise UserError(
            f"no registry answers, and bootstrapping the base image {name} needs root (debootstrap makes device "
            "files and sets owners)",
            f"run `autograder sandbox build` as root (sudo), {fallback}",
        )
    if not shutil.which("debootstrap"):
        raise UserError(
            f"no registry answers, and debootstrap, which would bootstrap the base image {name}, is not installed",
            f"apt-get install -y debootstrap  (as root), {fallback}",
        )
    repository, tag = parse_repository_tag(name)
    with tempfile.TemporaryDirectory(prefix="autograder-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs), mirror]
        log(f"bootstrapping {name}: {' '.join(cmd)}")
        code, tail = stream([*cmd], log)
        if code:
            raise UserError(
                f"debootstrap failed (exit {code}):\n{tail}",
                f"check that {mirror} answers from this machine, or pass --debian-mirror URL",
            )
        log(f"importing {rootfs} as {name}")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None  # stdout=PIPE
        try:
            client.api.import_image_from_data(
                _chunks(tar.stdout), repository=repository, tag=tag or "latest",
                changes=[f"ENV LANG=C.UTF-8 PATH={DEBIAN_PATH}", 'CMD ["/bin/bash"]', f"LABEL {LABEL}=base"],
            )
        finally:
            tar.stdout.close()
            tar.wait()
    client.images.get(name)
    return name


def _image_id(image: Image) -> str:
    """An image's id; docker's stubs allow None, which an image the engine has just listed never has."""
    assert image.id is not None
    return image.id


def _chunks(stream, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


# --- step 2: the image's Python ---------------------------------------------------------------

_PROBE = """
import json, platform, sys, sysconfig
print(json.dumps({
    "impl": sys.implementation.name, "version": list(sys.version_info[:2]),
    "nogil": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "libc": list(platform.libc_ver()), "platform": sysconfig.get_platform(),
}))
"""


def probe_target(
    client: docker.DockerClient, dockerfile: Path, base: str, log: Log = quiet, no_cache: bool = False
) -> Target:
    """Build the Dockerfile's `python` stage and ask its interpreter what wheels it takes."""
    text = dockerfile.read_text()
    key = sha256_text(_image_id(client.images.get(base)) + text)[:12]
    tag = f"{PYTHON_STAGE_REPO}:{key}"
    with tempfile.TemporaryDirectory(prefix="autograder-context-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(text)
        (context / "wheelhouse").mkdir()
        log(f"building the python stage ({tag})")
        _build(client, context, log, tag=tag, target="python", buildargs={"BASE_IMAGE": base},
               labels={LABEL: "python-stage"}, nocache=no_cache)
    out = _run(client, tag, ["python3", "-c", _PROBE])
    info = json.loads(out.strip().splitlines()[-1])
    if info["impl"] != "cpython":
        raise UserError(f"the base image's python3 is {info['impl']}, not CPython", "use a CPython base image")
    libc, libc_version = info["libc"]
    if libc != "glibc" or not info["platform"].startswith("linux-"):
        raise UserError(
            f"the base image's C library is {libc or 'not glibc (musl?)'} on {info['platform']}: "
            "manylinux wheels need glibc",
            "use a Debian or Ubuntu based --base-image",
        )
    major, minor = info["version"]
    abi = f"cp{major}{minor}" + ("t" if info["nogil"] else "")
    target = Target(python=f"{major}.{minor}", abi=abi, glibc=libc_version, arch=info["platform"].split("-", 1)[1])
    log(f"image python: {target.python} ({target.abi}), glibc {target.glibc}, {target.arch}")
    return target


def _run(client: docker.DockerClient, image: str, command: list[str]) -> str:
    """Run a short container with no network; its stdout, or a UserError with its stderr."""
    try:
        out = client.containers.run(
            image, command, network_mode="none", remove=True, stdout=True, stderr=False, labels={LABEL: "build"}
        )
    except docker.errors.ContainerError as e:
        # docker hands over the container's log as bytes; its stubs say str.
        err = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-15:]  # type: ignore[union-attr]
        raise UserError(
            f"{' '.join(command[:2])} failed in {image} (exit {e.exit_status}):\n" + "\n".join(err),
            "see the error above; rebuild with --no-cache if a cached layer is broken",
        ) from None
    return out.decode(errors="replace")


# --- step 3: the wheelhouse -------------------------------------------------------------------


# --- steps 4 and 5: build and smoke-test ------------------------------------------------------


def _build(client: docker.DockerClient, context: Path, log: Log, **kwargs) -> tuple[str, list[str]]:
    """Build with the engine's (legacy) builder, log its lines; the image id and the ids that end
    each earlier stage (read from the log: the legacy builder tags no stage), or a UserError."""
    tail: deque[str] = deque(maxlen=25)
    image_id = None
    layer, stage_ends = None, []
    try:
        for chunk in client.api.build(path=str(context), decode=True, rm=True, forcerm=True, pull=False, **kwargs):
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        tail.append(line.rstrip())
                        log(line.rstrip())
                        if m := re.match(r"Successfully built ([0-9a-f]+)", line):
                            image_id = image_id or m.group(1)
                        elif m := re.match(r"\s*---> ([0-9a-f]{12,})\s*$", line):
                            layer = m.group(1)
                        elif re.match(r"Step \d+/\d+ : FROM ", line, re.IGNORECASE) and layer:
                            stage_ends.append(layer)
            elif "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            elif "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise UserError(
                    f"the image build failed: {message.strip()}\n" + "\n".join(tail),
                    "the lines above name the failing step; rebuild with --no-cache if a cached layer is at fault",
                )
    except (docker.errors.APIError, docker.errors.BuildError) as e:
        raise UserError(f"the engine refused the build: {explain(e)}", ENGINE_HINT) from None
    if image_id is None:
        raise UserError("the build ended without an image:\n" + "\n".join(tail))
    return image_id, stage_ends


_SMOKE = """
import importlib, importlib.metadata as md, importlib.util, json, os, platform, sys
imports, dists, absent = json.loads(sys.argv[1])
problems = []
for name in imports:
    try:
        importlib.import_module(name)
    except Exception as e:
        problems.append(f"import {name}: {type(e).__name__}: {e}")
for name in dists:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        problems.append(f"{name} is not installed")
problems += [f"{name} is importable (the image must stay lean)" for name in absent if importlib.util.find_spec(name)]
torch = sys.modules.get("torch")
print(json.dumps({"uid": os.getuid(), "python": platform.python_version(), "problems": problems,
                  "torch": torch.__version__ if torch else None}))
"""


def smoke_test(client: docker.DockerClient, image: str, imports: list[str], requirements: str) -> dict:
    """Run the image offline: non-root, imports work, requirements installed, nothing heavy extra."""
    arg = json.dumps([imports, _distributions(requirements), LEAN_ABSENT])
    report = json.loads(_run(client, image, ["python", "-c", _SMOKE, arg]).strip().splitlines()[-1])
    problems = report["problems"]
    if report["uid"] != SANDBOX_UID:
        problems.insert(0, f"runs as uid {report['uid']}, not the sandbox user {SANDBOX_UID}")
    if problems:
        raise UserError(
            f"the built image fails its smoke test: {'; '.join(problems)}",
            "check sandbox/requirements.txt and sandbox/Dockerfile (USER 10001, no jupyter_server)",
        )
    return report


def build_image(options: BuildOptions | None = None, log: Log = quiet) -> BuildResult:
    """Build (and smoke-test) the sandbox image; the tag moves only to an image that passed."""
    options = options or BuildOptions()
    start = time.monotonic()
    context = options.context_dir or default_context_dir()
    dockerfile, reqfile = context / "Dockerfile", context / "requirements.txt"
    for path in (dockerfile, reqfile):
        if not path.is_file():
            raise UserError(f"{path} is missing", f"the build context {context} needs Dockerfile and requirements.txt")
    requirements = combined_requirements(reqfile.read_text(), options.torch)
    client = engine(timeout=BUILD_TIMEOUT)

    base = ensure_base(client, options.base_image, log, options.debian_mirror)
    target = probe_target(client, dockerfile, base, log, options.no_cache)
    cache_dir = options.wheelhouse_dir or default_wheelhouse_dir()
    wheelhouse, reused = download_wheelhouse(requirements, target, cache_dir, options.pip_args, log, options.no_cache)

    labels = {
        LABEL: "1",
        f"{LABEL}.requirements": sha256_text(requirements),
        f"{LABEL}.dockerfile": sha256_text(dockerfile.read_text()),
        f"{LABEL}.torch": options.torch,
        f"{LABEL}.base": base,
        f"{LABEL}.python": target.python,
    }
    with tempfile.TemporaryDirectory(prefix="context-", dir=cache_dir) as tmp:
        ctx = Path(tmp)
        shutil.copyfile(dockerfile, ctx / "Dockerfile")
        _link_tree(wheelhouse, ctx / "wheelhouse")
        log(f"building {options.tag} FROM {base}")
        image_id, stage_ends = _build(
            client, ctx, log, buildargs={"BASE_IMAGE": base}, labels=labels, nocache=options.no_cache
        )

    imports = [*options.check_imports, *(["torch"] if options.torch.strip() else [])]
    log(f"smoke test: offline, as uid {SANDBOX_UID}, import {', '.join(imports)}")
    try:
        report = smoke_test(client, image_id, imports, requirements)
    except UserError:
        image = client.images.get(image_id)
        if not image.tags:  # a failed new image goes; an identical image already tagged stays
            client.images.remove(_image_id(image))
        raise
    repository, tag = parse_repository_tag(options.tag)
    image = client.images.get(image_id)
    try:
        image.tag(repository, tag or "latest")
    except docker.errors.APIError as e:
        raise UserError(f"can't tag the image {options.tag}: {explain(e)}") from None
    image.reload()
    if stage_ends:
        keep_stage(client, stage_ends[-1], stage_tag(options.tag))
    result = BuildResult(
        tag=options.tag, image_id=_image_id(image), size_bytes=image.attrs["Size"], python=report["python"],
        torch=report["torch"], build_seconds=round(time.monotonic() - start, 1), base_image=base,
        wheelhouse=wheelhouse, wheelhouse_reused=reused,
    )
    return result


def stage_tag(tag: str) -> str:
    """Where the install stage of the image `tag` is kept: the layer cache of its `pip install`.

    Kept tagged (one per image tag) rather than dangling, so a rebuild with the same wheels takes
    seconds, and the stage of an older build is removed rather than left to pile up (GBs each).
    """
    return f"{STAGE_REPO}:{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)[:128]}"


def keep_stage(client: docker.DockerClient, image_id: str, name: str) -> None:
    old = client.images.get(name).id if has_image(client, name) else None
    repository, tag = parse_repository_tag(name)
    client.images.get(image_id).tag(repository, tag)
    if old and old != client.images.get(image_id).id:
        try:
            client.images.remove(old)
        except docker.errors.APIError:  # still tagged elsewhere, or a parent of another image: keep it
            pass


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir()
    for path in src.iterdir():
        link_or_copy(path, dst / path.name)


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where the file system allows (torch is hundreds of MB), a copy where not."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --- is the image current? --------------------------------------------------------------------


def image_status(
    client: docker.DockerClient, tag: str = DEFAULT_IMAGE, *, context_dir: Path | None = None, torch: str | None = None
) -> ImageStatus:
    """Whether `tag` exists and was built from the current Dockerfile and requirements.

    `torch` None compares with the torch spec the image was built with (a GPU host's CUDA build
    is not stale for being one); a spec compares with that.
    """
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return ImageStatus(tag=tag, present=False, reason=f"no image {tag}")
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    status = ImageStatus(
        tag=tag, present=True, id=image.id, size_bytes=image.attrs.get("Size"), created=image.attrs.get("Created"),
        labels=labels,
    )
    try:
        context = context_dir or default_context_dir()
        reqfile, dockerfile = context / "requirements.txt", context / "Dockerfile"
        requirements, dockerfile_text = reqfile.read_text(), dockerfile.read_text()
    except (UserError, OSError) as e:
        status.reason = f"can't tell whether it is current: {e}"
        return status
    reason = staleness(labels, requirements, dockerfile_text, torch)
    status.stale, status.reason = bool(reason), reason
    return status


def staleness(labels: dict[str, str], requirements: str, dockerfile: str, torch: str | None = None) -> str:
    """Why an image with these labels is out of date for these sources; '' when it is current."""
    if labels.get(LABEL) != "1":
        return f"not built by `autograder sandbox build` (no {LABEL} label)"
    built_torch = labels.get(f"{LABEL}.torch", "")
    if torch is not None and torch.strip() != built_torch.strip():
        return f"built with torch {built_torch!r}, {torch!r} asked for"
    spec = built_torch if torch is None else torch
    if labels.get(f"{LABEL}.requirements") != sha256_text(combined_requirements(requirements, spec)):
        return "sandbox/requirements.txt changed since the image was built"
    if labels.get(f"{LABEL}.dockerfile", sha256_text(dockerfile)) != sha256_text(dockerfile):
        return "sandbox/Dockerfile changed since the image was built"
    return ""
