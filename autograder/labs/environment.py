"""A lab's environment: the packages its code may import beyond the sandbox's base, as lab.yaml names them.

One `Environment` per distinct package list, whatever its order, spelling or spacing: its `key` (a
hash of the normalised list) tags the docker backend's image for it, so labs that need the same
packages share one image and an edited list gets a new one. For the local backend and the
self-check it tells what the running interpreter lacks and the `pip install` that fixes it; for
validate-lab, which modules the lab's code may import.

torchvision and torch: PyPI's torchvision is built against PyPI's torch of the paired release
(torch 2.N.x with torchvision 0.(N+15).x) and fails to load beside the base's CPU build of torch
('operator torchvision::nms does not exist'). A lab that lists torchvision therefore gets a pair
from `TORCHVISION_PAIRS` (the first its own requirement admits), torch included.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import importlib.util
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from functools import cache

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from autograder.errors import UserError

# What every sandbox has, whatever the lab lists: the base image's torch, numpy and matplotlib, and
# IPython, whose kernel runs the notebook. Other packages in the base are there for the runner or
# as dependencies, and may go with any rebuild: a lab that imports them lists them.
BASE_PACKAGES = ("torch", "numpy", "matplotlib", "ipython")
# (torchvision, torch) pairs that load together, newest first. x86_64's pair is a CUDA build of
# several GB; aarch64's is a CPU build (see docs/lab-authoring.md, "The lab's packages").
TORCHVISION_PAIRS = {
    "x86_64": [("0.29.1", "2.14.1"), ("0.24.1", "2.9.1")],
    "aarch64": [("0.24.1", "2.9.1"), ("0.29.1", "2.14.1")],
}
# Import names whose package is called otherwise, for hints when neither is installed.
PROVIDERS = {
    "skimage": "scikit-image", "sklearn": "scikit-learn", "cv2": "opencv-python-headless", "PIL": "Pillow",
    "yaml": "PyYAML", "bs4": "beautifulsoup4", "mpl_toolkits": "matplotlib", "IPython": "ipython",
    "dateutil": "python-dateutil", "attr": "attrs", "google": "protobuf", "Crypto": "pycryptodome",
    "jwt": "PyJWT", "serial": "pyserial", "usb": "pyusb", "wx": "wxPython", "gi": "PyGObject",
    "umap": "umap-learn", "Bio": "biopython", "faiss": "faiss-cpu", "OpenGL": "PyOpenGL",
}
KEY_LENGTH = 12
LAB_IMAGE_REPO = "autograder-lab"


def normalise(text: str) -> str:
    """One spelling per requirement: the canonical name, sorted extras and specifiers, the marker."""
    req = Requirement(text)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}{marker}"


class Missing(BaseModel):
    requirement: str
    installed: str | None = Field(description="the version installed, when one is but outside the range")

    def __str__(self) -> str:
        if self.installed is None:
            return f"{self.requirement} (not installed)"
        return f"{self.requirement} ({self.installed} installed)"


class Environment(BaseModel):
    """A normalised, sorted, duplicate-free package list; its `key` names it (and tags its image)."""

    packages: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, packages: Iterable[str]) -> Environment:
        try:
            return cls(packages=sorted({normalise(p) for p in packages}))
        except Exception as exc:  # InvalidRequirement; lab.yaml's validation normally caught it first
            raise UserError(f"not a pip requirement: {exc}", "write e.g. `scipy>=1.11` under packages:") from None

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(p) for p in self.packages]

    @property
    def names(self) -> set[str]:
        return {canonicalize_name(r.name) for r in self.requirements}

    @property
    def key(self) -> str:
        """Stable over order, case, spacing and duplicates; changes with what would be installed."""
        text = "\n".join(self.packages) + "\n" + "\n".join(self.paired_torch())
        return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]

    @property
    def image(self) -> str:
        """The docker backend's image for this environment."""
        return f"{LAB_IMAGE_REPO}:{self.key}"

    def requirement(self, name: str) -> Requirement | None:
        return next((r for r in self.requirements if canonicalize_name(r.name) == canonicalize_name(name)), None)

    def paired_torch(self, arch: str | None = None) -> list[str]:
        """['torchvision==V', 'torch==T'] when the lab lists torchvision: the pair its range admits."""
        vision = self.requirement("torchvision")
        if vision is None:
            return []
        pairs = TORCHVISION_PAIRS.get(arch or platform.machine(), TORCHVISION_PAIRS["x86_64"])
        torch = self.requirement("torch")
        for v, t in pairs:
            if vision.specifier.contains(v, prereleases=True) and (
                    torch is None or torch.specifier.contains(t, prereleases=True)):
                return [f"torchvision=={v}", f"torch=={t}"]
        known = ", ".join(f"torchvision=={v} with torch=={t}" for v, t in pairs)
        raise UserError(
            f"no known torch pairs with {vision}{f' and {torch}' if torch else ''}",
            f"torchvision loads only beside the torch it was built for; pairs known here: {known}",
        )

    def missing(self) -> list[Missing]:
        """What the running interpreter lacks: not installed, or installed outside the range."""
        found = []
        for req in self.requirements:
            if req.marker and not req.marker.evaluate():
                continue
            installed = _version(req.name)
            if installed is None or not req.specifier.contains(installed, prereleases=True):
                found.append(Missing(requirement=str(req), installed=installed))
        if self.requirement("torchvision") is not None and not any(
                canonicalize_name(Requirement(m.requirement).name) == "torch" for m in found):
            pin = self.paired_torch()[1]
            torch = _version("torch")
            if torch is None or _release(torch) != _release(pin.partition("==")[2]):
                found.append(Missing(requirement=pin, installed=torch))
        return found

    def install_list(self, missing: Sequence[Missing] | None = None) -> list[str]:
        """What to `pip install` for the lab's packages (or those `missing`); torchvision with its paired torch."""
        wanted = [m.requirement for m in missing] if missing is not None else list(self.packages)
        names = {canonicalize_name(Requirement(w).name) for w in wanted}
        if names & {"torch", "torchvision"} and self.requirement("torchvision") is not None:
            wanted = [w for w in wanted if canonicalize_name(Requirement(w).name) not in ("torch", "torchvision")]
            wanted = self.paired_torch()[::-1] + wanted
        return wanted

    def install_command(self, missing: Sequence[Missing] | None = None, python: str | None = None) -> str:
        """The exact `pip install` of `install_list`, quoted for a shell; `python` None gives a plain `pip install`."""
        pip = f"{shlex.quote(python)} -m pip install" if python else "pip install"
        return " ".join([pip, *(shlex.quote(w) for w in self.install_list(missing))])

    def check(self, python: str | None = None, where: str = "this Python") -> None:
        """A UserError naming what is missing and the command that installs it; nothing when all is there."""
        missing = self.missing()
        if missing:
            raise UserError(
                f"{where} lacks the lab's packages: {', '.join(str(m) for m in missing)}",
                f"install them: {self.install_command(missing, python)}",
            )

    # --- what the lab's code may import -------------------------------------------------------

    def allowed_modules(self) -> set[str]:
        """Top-level modules the lab's code may import: the standard library, the base's, the lab's own."""
        allowed = set(sys.stdlib_module_names) | {"__future__"}
        for name in [*BASE_PACKAGES, *self.names, *(["torch"] if "torchvision" in self.names else [])]:
            allowed |= modules_of(name)
        return allowed


def modules_of(distribution: str) -> set[str]:
    """Top-level import names of a distribution: as installed here, else its name (and the known aliases)."""
    key = canonicalize_name(distribution)
    found = {m for m, dists in _installed_modules().items() if key in dists}
    found |= {m for m, p in PROVIDERS.items() if canonicalize_name(p) == key}
    return found or {key.replace("-", "_")}


def provider(module: str) -> str | None:
    """The distribution that provides a top-level module, as installed here or as commonly known."""
    dists = metadata.packages_distributions().get(module)
    if dists:
        return dists[0]
    return PROVIDERS.get(module)


def resolves(module: str) -> bool:
    """Whether `import module` finds it in the running interpreter (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@cache
def _installed_modules() -> dict[str, frozenset[str]]:
    return {m: frozenset(canonicalize_name(d) for d in dists)
            for m, dists in metadata.packages_distributions().items()}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    try:
        return Version(version).release
    except InvalidVersion:
        return ()


def union(package_lists: Iterable[Sequence[str]]) -> Environment:
    """One environment holding every list's packages (for installing a course's labs in one venv)."""
    return Environment.of(p for packages in package_lists for p in packages)
