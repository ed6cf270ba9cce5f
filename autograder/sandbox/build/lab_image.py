"""A lab's image: the sandbox image plus the packages its lab.yaml lists, one per distinct package list.

Built FROM the base image (`autograder-sandbox:latest`) as the base is built: every wheel is
downloaded on the host first, for the base image's own Python and glibc, so the build needs no
package index. The install stage installs them into the base's environment and keeps only what
that added or changed; the image is the base plus that one layer (and the removal of what an
upgrade replaced), so labs share the base's GBs. Tagged `autograder-lab:<key>` by the hash of the
normalised package list (`Environment.key`) and labelled with the list and the base's id, so an
unchanged list reuses the image, an edited one gets a new one, and a rebuilt base makes it stale.

torch stays the base's: its installed version is passed to pip as a constraint, so a package that
admits a newer torch can't pull a multi-GB CUDA build in; a lab listing torchvision gets the torch
paired with it instead (see autograder/labs/environment.py).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
from docker.utils import parse_repository_tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from pydantic import BaseModel, Field

from autograder.errors import UserError
from autograder.labs.environment import Environment
from autograder.sandbox.build.image import _build, _run, default_wheelhouse_dir, link_or_copy, smoke_test
from autograder.sandbox.build.wheelhouse import Log, Target, download_wheelhouse, quiet, sha256_text
from autograder.sandbox.engine import DEFAULT_IMAGE, LABEL, engine, explain, has_image

BUILD_TIMEOUT = 3600
KIND = "lab"  # the value of LABEL on a lab's image (the base's is "1")

# Runs in the install stage: `snapshot` records every file of the base's environment, `diff` copies
# what the install added or changed into /overlay/files (hard links) and lists what it removed.
OVERLAY = r"""
import json, os, sys
ROOT = "/opt/sandbox"

def scan():
    found = {}
    for folder, dirs, files in os.walk(ROOT):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[path] = [st.st_size, st.st_mtime_ns, st.st_mode]
    return found

if sys.argv[1] == "snapshot":
    with open(sys.argv[2], "w") as f:
        json.dump(scan(), f)
else:
    with open(sys.argv[2]) as f:
        before = json.load(f)
    after, out = scan(), sys.argv[3]
    for path, stat in after.items():
        if before.get(path) != stat:
            target = out + "/files" + path
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.islink(path):
                os.symlink(os.readlink(path), target)
            else:
                os.link(path, target)
    os.makedirs(out + "/files/opt", exist_ok=True)
    with open(out + "/removed.txt", "w") as f:
        f.write("".join(p + "\n" for p in sorted(set(before) - set(after))))
"""

DOCKERFILE = """\
# A lab's image (written by autograder/sandbox/build/lab_image.py): the sandbox image plus the lab's
# packages from a wheelhouse made on the host; only what the install added or changed is kept.
ARG BASE_IMAGE=autograder-sandbox:latest
FROM ${BASE_IMAGE} AS install
USER root
COPY wheelhouse /wheelhouse
RUN python3 /wheelhouse/overlay.py snapshot /tmp/before.json \\
    && python3 -m ensurepip --default-pip >/dev/null \\
    && python3 -m pip install --no-cache-dir --no-index --find-links /wheelhouse --disable-pip-version-check \\
        -r /wheelhouse/requirements.txt -c /wheelhouse/constraints.txt \\
    && python3 -m pip uninstall --yes pip >/dev/null \\
    && python3 /wheelhouse/overlay.py diff /tmp/before.json /overlay

FROM ${BASE_IMAGE}
USER root
COPY --from=install /overlay/files/ /
COPY --from=install /overlay/removed.txt /tmp/removed.txt
RUN xargs -r -d '\\n' rm -f -- < /tmp/removed.txt && rm /tmp/removed.txt
USER 10001:10001
"""

_FACTS = """
import importlib.metadata as md, json, platform, sys, sysconfig
print(json.dumps({
    "version": list(sys.version_info[:2]), "nogil": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "libc": list(platform.libc_ver()), "platform": sysconfig.get_platform(),
    "dists": {d.metadata["Name"]: d.version for d in md.distributions()},
}))
"""


class BaseFacts(BaseModel):
    """What a lab's build needs to know of the base image: its id, wheel target and installed versions."""

    image: str
    id: str
    target: Target
    dists: dict[str, str] = Field(description="canonical name -> version installed in the base")

    @property
    def torch(self) -> str | None:
        return self.dists.get("torch")


class LabImage(BaseModel):
    tag: str
    packages: list[str]
    built: bool = Field(description="False when the image was already current")
    image_id: str = ""
    size_bytes: int = 0
    added_bytes: int = Field(0, description="what the image holds beyond its base")
    seconds: float = 0.0
    reason: str = Field("", description="why it was built (missing, stale)")


def base_facts(client: docker.DockerClient, base: str = DEFAULT_IMAGE) -> BaseFacts:
    if not has_image(client, base):
        raise UserError(f"the sandbox image {base} is missing, and a lab's image is built on it",
                        "build it first: autograder sandbox build")
    info = json.loads(_run(client, base, ["python", "-c", _FACTS]).strip().splitlines()[-1])
    major, minor = info["version"]
    target = Target(python=f"{major}.{minor}", abi=f"cp{major}{minor}" + ("t" if info["nogil"] else ""),
                    glibc=info["libc"][1], arch=info["platform"].split("-", 1)[1])
    image_id = client.images.get(base).id or ""
    return BaseFacts(image=base, id=image_id, target=target,
                     dists={canonicalize_name(k): v for k, v in info["dists"].items()})


def constraints(env: Environment, facts: BaseFacts) -> list[str]:
    """Pins that keep the base's torch (or give torchvision its pair); a UserError where the lab asks otherwise."""
    pinned = env.paired_torch(facts.target.arch)
    if not pinned and facts.torch:
        pinned = [f"torch=={facts.torch}"]
    torch = env.requirement("torch")
    version = next((p.partition("==")[2] for p in pinned if p.startswith("torch==")), None)
    if torch is not None and version is not None and not torch.specifier.contains(version, prereleases=True):
        raise UserError(
            f"the lab asks for {torch}, but its image keeps torch {version} (the base image's"
            f"{', paired with torchvision' if env.requirement('torchvision') else ''}): a lab's packages can't "
            "replace torch",
            "drop torch from packages: in lab.yaml (the base has it), or rebuild the base with another torch: "
            "autograder sandbox build --torch 'torch==X'",
        )
    return pinned


def status(client: docker.DockerClient, env: Environment, base: str = DEFAULT_IMAGE) -> tuple[bool, str]:
    """(present, why it must be built: '' when it is current)."""
    try:
        image = client.images.get(env.image)
    except docker.errors.ImageNotFound:
        return False, f"no image {env.image} for {', '.join(env.packages)}"
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    if labels.get(LABEL) != KIND or labels.get(f"{LABEL}.environment") != env.key:
        return True, f"{env.image} was not built by `autograder sandbox build` for this package list"
    try:
        base_id = client.images.get(base).id
    except docker.errors.ImageNotFound:
        return True, ""  # nothing to compare with; it still runs
    if labels.get(f"{LABEL}.base-id") != base_id:
        return True, f"{base} was rebuilt since {env.image} was built on it"
    return True, ""


def packages_of(client: docker.DockerClient, tag: str) -> list[str]:
    """The package list a lab's image was built for, read back from its label."""
    labels = client.images.get(tag).attrs.get("Config", {}).get("Labels") or {}
    return json.loads(labels.get(f"{LABEL}.packages", "[]"))


def build_lab_image(
    env: Environment,
    base: str = DEFAULT_IMAGE,
    *,
    wheelhouse_dir: Path | None = None,
    pip_args: list[str] | None = None,
    log: Log = quiet,
    no_cache: bool = False,
    if_stale: bool = True,
    client: docker.DockerClient | None = None,
) -> LabImage:
    """The image for `env`, built when missing or stale (always, with `if_stale` False); smoke-tested."""
    if not env.packages:
        raise ValueError("a lab without packages runs on the base image")
    client = client or engine(timeout=BUILD_TIMEOUT)
    present, why = status(client, env, base)
    if present and not why and if_stale and not no_cache:
        image = client.images.get(env.image)
        return LabImage(tag=env.image, packages=env.packages, built=False, image_id=image.id or "",
                        size_bytes=image.attrs.get("Size", 0))
    start = time.monotonic()
    facts = base_facts(client, base)
    pins = constraints(env, facts)
    cache_dir = wheelhouse_dir or default_wheelhouse_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    constraint_text = "".join(f"{p}\n" for p in pins)
    constraint_file = cache_dir / f"constraints-{sha256_text(constraint_text)[:16]}.txt"
    constraint_file.write_text(constraint_text)
    requirements = "".join(f"{p}\n" for p in env.packages)
    wheelhouse, _ = download_wheelhouse(requirements, facts.target, cache_dir,
                                        [*(pip_args or []), "-c", str(constraint_file)], log, no_cache)
    labels = {
        LABEL: KIND,
        f"{LABEL}.environment": env.key,
        f"{LABEL}.packages": json.dumps(env.packages),
        f"{LABEL}.constraints": json.dumps(pins),
        f"{LABEL}.base": base,
        f"{LABEL}.base-id": facts.id,
    }
    with tempfile.TemporaryDirectory(prefix="lab-context-", dir=cache_dir) as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        house = ctx / "wheelhouse"
        house.mkdir()
        for wheel in wheelhouse.glob("*.whl"):
            name, version, *_ = parse_wheel_filename(wheel.name)
            if facts.dists.get(name) == str(version):
                continue  # installed in the base already: pip keeps it, and the context stays small
            link_or_copy(wheel, house / wheel.name)
        (house / "requirements.txt").write_text(requirements)
        (house / "constraints.txt").write_text(constraint_text)
        (house / "overlay.py").write_text(OVERLAY)
        log(f"building {env.image} FROM {base} with {', '.join(env.packages)}")
        image_id, stage_ends = _build(client, ctx, log, buildargs={"BASE_IMAGE": base}, labels=labels,
                                      nocache=no_cache)
    _drop_stages(client, stage_ends)
    imports = sorted(m for p in env.requirements for m in _import_names(client, image_id, p.name))
    log(f"smoke test: offline, import {', '.join(imports) or 'nothing'}")
    try:
        smoke_test(client, image_id, ["papermill", "numpy", "torch", *imports], requirements)
    except UserError:
        image = client.images.get(image_id)
        if not image.tags:
            client.images.remove(image_id)
        raise
    repository, tag = parse_repository_tag(env.image)
    image = client.images.get(image_id)
    try:
        image.tag(repository, tag)
    except docker.errors.APIError as e:
        raise UserError(f"can't tag the image {env.image}: {explain(e)}") from None
    image.reload()
    size = image.attrs.get("Size", 0)
    base_size = client.images.get(base).attrs.get("Size", 0)
    return LabImage(tag=env.image, packages=env.packages, built=True, image_id=image.id or "", size_bytes=size,
                    added_bytes=max(0, size - base_size), seconds=round(time.monotonic() - start, 1),
                    reason=why or "rebuilt on request")


def _drop_stages(client: docker.DockerClient, stage_ends: list[str]) -> None:
    """Remove the install stage (wheels and all: GBs for torchvision): the wheelhouse stays on the host, so a
    rebuild costs the install, not the download."""
    for stage in stage_ends:
        try:
            client.images.remove(stage)
        except docker.errors.APIError:  # shared with a stage still in use, or gone: leave it
            pass


def _import_names(client: docker.DockerClient, image: str, distribution: str) -> list[str]:
    """The top-level modules a distribution installed in the image (from its RECORD), for the smoke test."""
    script = ("import importlib.metadata as md, json, sys\n"
              "files = md.distribution(sys.argv[1]).files or []\n"
              "tops = {f.parts[0].removesuffix('.py') for f in files if f.parts and "
              "(f.suffix == '.py' and len(f.parts) == 1 or len(f.parts) > 1 and f.parts[1] == '__init__.py')}\n"
              "print(json.dumps(sorted(t for t in tops if t.isidentifier() and not t.startswith('_'))))")
    try:
        return json.loads(_run(client, image, ["python", "-c", script, distribution]).strip().splitlines()[-1])
    except (UserError, ValueError, IndexError):
        return []


def lab_images(client: docker.DockerClient) -> list[str]:
    """Every lab image this engine holds (to list or remove them)."""
    return [t for image in client.images.list(filters={"label": f"{LABEL}={KIND}"}) for t in image.tags]
