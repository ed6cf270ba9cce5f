"""The lab spec, `assignments/<lab>/lab.yaml`: how a student notebook is run and probed."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Scalar = str | int | float | bool | None


def human_size(n: int) -> str:
    """2 GiB, 512 MiB: how a student reads a limit."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"

# Parameters the harness sets itself: the lab may not give them other meanings.
RESERVED_PARAMETERS = frozenset({"data_dir", "device"})


class Limits(BaseModel):
    """Resource limits of one sandbox run. Every field can be overridden on the CLI."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(600, gt=0, description="Whole run, in seconds; the process tree is killed at the limit.")
    cell_timeout: float | None = Field(300, gt=0, description="Per cell, in seconds (papermill's execution timeout).")
    memory: ByteSize = Field(ByteSize(4 * 1024**3), description="Resident memory of the whole run, e.g. 2GiB.")
    cpus: float = Field(1, gt=0, description="CPUs; the local backend sets thread counts, Docker enforces it.")
    gpus: int = Field(0, ge=0, description="Number of GPUs the run may use; 0 hides every GPU.")
    gpu_memory_gb: float | None = Field(
        None, gt=0, description="Per-process GPU memory cap, applied in the kernel through torch's "
        "set_per_process_memory_fraction. A soft limit: code that resets the fraction escapes it.")
    cpu_fallback: bool = Field(
        False, description="With no GPU on the grading host, run on the CPU (device='cpu') instead of failing.")
    pids: int = Field(256, ge=16, description="Processes and threads the run may have at once (docker backend).")
    shm: ByteSize = Field(
        ByteSize(256 * 1024**2), description="Size of /dev/shm (docker backend); PyTorch data loaders need it.")
    disk: ByteSize = Field(
        ByteSize(4 * 1024**3), description="What the run may write into its work dir, in bytes (also the cap on one "
        "file); at most 100,000 files. Checked twice a second: the run is stopped when it has more.")
    output: ByteSize = Field(
        ByteSize(1024**2),
        description="Notebook output kept per cell (16 times this for the whole notebook); "
        "the rest is dropped and counted.",
    )

    @field_validator("memory")
    @classmethod
    def _memory_floor(cls, v: ByteSize) -> ByteSize:
        if v < 64 * 1024**2:
            raise ValueError("must be at least 64MiB: a Python kernel does not start in less")
        return v


FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")]
DocumentStem = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]
# What a written report may be handed in as, in the order a student's several copies are preferred.
REPORT_SUFFIXES = (".pdf", ".md", ".txt")


class Files(BaseModel):
    """Python modules that travel with the notebook: the student's own, and those handed out."""

    model_config = ConfigDict(extra="forbid")

    student: list[FileName] = Field(
        default_factory=list, description="Modules the student writes and hands in beside the notebook; a "
        "missing one gets U. Their templates are generated from reference/<lab>/<file> like the notebook.")
    provided: list[FileName] = Field(
        default_factory=list, description="Modules handed out in assignments/<lab>/; restored from there at "
        "intake, whatever the student handed in under that name.")
    helpers: list[FileName] = Field(
        default_factory=list, description="Modules in assignments/<lab>/ that the probes (public and hidden) import, "
        "e.g. shared checks; released with the kit, never put beside the student's code.")
    report: DocumentStem | None = Field(
        None, description="The written report handed in beside the code, by its name without suffix (e.g. `report`): "
        "report.pdf, report.md or report.txt. A reflection criterion with `source: report` reads it.")

    @model_validator(mode="after")
    def _distinct(self) -> Files:
        names = self.student + self.provided + self.helpers
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{twice} listed twice; a file is either the student's or provided")
        clash = sorted(n for n in names if n.removesuffix(".py") in RESERVED_MODULES)
        if clash:
            raise ValueError(f"{clash} would shadow a module the harness needs; rename them")
        return self

    @property
    def all(self) -> list[str]:
        """The modules that sit beside the student's code (helpers go to the probes only)."""
        return self.student + self.provided


# Modules a student or provided file may not be named after: the kernel and probes import them.
RESERVED_MODULES = frozenset({"probes", "numpy", "torch", "cloudpickle", "papermill", "nbformat", "runner",
                              "submission", "autograder"})


class SelfCheck(BaseModel):
    """How `autograder check` stands in for what only grading has."""

    model_config = ConfigDict(extra="forbid")

    stand_ins: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="hidden split -> public split measured in its place by the self-check; "
        "by default every hidden split is stood in for by `val`.")


class LabSpec(BaseModel):
    """What the harness needs to run a lab; public, because students may read it."""

    model_config = ConfigDict(extra="forbid")

    name: Slug
    version: str = Field(min_length=1, description="Bump when anything graded changes; results record it.")
    title: str = ""
    notebook: str | None = Field(
        None, description="The student notebook, relative to assignments/<lab>/; none for a lab whose students hand "
        "in modules only (files.student), which the probes and tests import.")
    packages: list[str] = Field(
        default_factory=list, description="Python packages the lab's code may import beyond the sandbox's base "
        "(torch, numpy, matplotlib), as pip requirements: `scipy>=1.11`, `scikit-image`. The docker backend builds an "
        "image per package list; the local backend and the self-check check them before running.")
    parameters: dict[Identifier, Scalar] = Field(
        default_factory=dict, description="papermill parameters injected into the `parameters` cell."
    )
    seed_parameter: Identifier | None = Field(
        None, description="Which of `parameters` seeds the notebook's randomness (an int, e.g. `seed`). Grading may "
        "run the notebook again with it set to other seeds (first + 1, + 2, ...) when a rubric's metric is "
        "borderline under `borderline: {policy: rerun}`; the seeds used are stamped on the result.")
    exports: list[Identifier] = Field(
        default_factory=list, description="Names the harness saves after the last cell, for the probes."
    )
    splits: dict[Identifier, Literal["public", "hidden"]] = Field(
        default_factory=dict, description="Data splits: public ones live in assignments/<lab>/data/<split>.npz, "
        "hidden ones in reference/<lab>/data/."
    )
    files: Files = Field(default_factory=Files, description="Modules beside the notebook.")
    self_check: SelfCheck = Field(default_factory=SelfCheck)
    limits: Limits = Field(default_factory=Limits)
    probe_limits: Limits = Field(
        default_factory=lambda: Limits(timeout=120, cell_timeout=None),
        description="Limits of the probe run, which loads the exports in a fresh sandbox.",
    )

    @field_validator("notebook")
    @classmethod
    def _notebook_is_local_ipynb(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "/" in v or "\\" in v or not v.endswith(".ipynb"):
            raise ValueError("must be a file name ending in .ipynb inside assignments/<lab>/")
        return v

    @field_validator("parameters")
    @classmethod
    def _no_reserved(cls, v: dict) -> dict:
        clash = RESERVED_PARAMETERS & set(v)
        if clash:
            raise ValueError(f"{sorted(clash)} are set by the harness; remove them")
        return v

    @field_validator("seed_parameter")
    @classmethod
    def _seed_is_an_int_parameter(cls, name: str | None, info: ValidationInfo) -> str | None:
        """A seed the harness can change: one of `parameters` whose value is a whole number."""
        if name is None:
            return name
        if name in RESERVED_PARAMETERS:
            raise ValueError(f"{name!r} is set by the harness, not a seed; name the lab's seed parameter")
        if "parameters" not in info.data:  # parameters itself is invalid: that error is reported
            return name
        parameters = info.data["parameters"]
        if name not in parameters:
            known = ", ".join(parameters) or "none"
            raise ValueError(f"{name!r} is not one of `parameters` (parameters: {known}); add it there with the "
                             "seed the first run uses, e.g. `parameters: {seed: 0}`")
        value = parameters[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"parameter {name!r} is {value!r}, not a whole number: a seed the harness changes to "
                             "run the notebook again must be an int (e.g. 0)")
        if "notebook" in info.data and info.data["notebook"] is None:
            raise ValueError("a lab without a notebook has no parameters to seed; remove seed_parameter")
        return name

    @field_validator("packages")
    @classmethod
    def _requirements(cls, packages: list[str]) -> list[str]:
        from packaging.requirements import InvalidRequirement, Requirement

        seen: dict[str, str] = {}
        for text in packages:
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                raise ValueError(f"{text!r} is not a pip requirement ({exc}); write e.g. `scipy>=1.11`") from None
            if req.url:
                raise ValueError(f"{text!r} names a URL; name a package from PyPI (with a version range)")
            key = req.name.lower().replace("_", "-").replace(".", "-")
            if key in seen:
                raise ValueError(f"{req.name} is listed twice ({seen[key]!r} and {text!r}); keep one")
            seen[key] = text
        return packages

    @model_validator(mode="after")
    def _consistent(self) -> LabSpec:
        if self.notebook is None:
            if not self.files.student:
                raise ValueError("a lab without a notebook needs the modules students hand in: list them in "
                                 "files.student")
            if self.exports:
                raise ValueError("exports: a lab without a notebook has nothing to export; the probes import the "
                                 "student's modules")
        for hidden, public in self.self_check.stand_ins.items():
            if self.splits.get(hidden) != "hidden":
                raise ValueError(f"self_check.stand_ins: {hidden!r} is not a hidden split of this lab")
            if self.splits.get(public) != "public":
                raise ValueError(f"self_check.stand_ins: {hidden!r} stands in by {public!r}, which is not a "
                                 "public split")
        return self

    def stand_in(self, split: str) -> str | None:
        """The public split the self-check measures in place of `split` (itself when public), or None."""
        if self.splits.get(split) == "public":
            return split
        chosen = self.self_check.stand_ins.get(split)
        if chosen is None and self.splits.get("val") == "public":
            chosen = "val"
        return chosen
