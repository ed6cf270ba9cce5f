"""A lab on disk: its spec, rubric, data and staff files, checked together at load."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from autograder.errors import ConfigError, UserError
from autograder.loading import load_model
from autograder.rubric import Rubric
from autograder.spec import LabSpec


def find_root(start: Path | None = None) -> Path:
    """The course folder: the nearest folder upwards that holds assignments/ and rubrics/."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "assignments").is_dir() and (folder / "rubrics").is_dir():
            return folder
    raise UserError(
        f"no course folder (with assignments/ and rubrics/) in {here} or above",
        "run from the course folder or pass --root PATH",
    )


def sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@dataclass
class Lab:
    name: str
    root: Path
    spec: LabSpec
    rubric: Rubric
    _data: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def assignment_dir(self) -> Path:
        return self.root / "assignments" / self.name

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference" / self.name

    @property
    def spec_path(self) -> Path:
        return self.assignment_dir / "lab.yaml"

    @property
    def rubric_path(self) -> Path:
        return self.root / "rubrics" / f"{self.name}.yaml"

    @property
    def notebook_path(self) -> Path:
        return self.assignment_dir / self.spec.notebook

    @property
    def public_data_dir(self) -> Path:
        return self.assignment_dir / "data"

    @property
    def probes_path(self) -> Path:
        return self.reference_dir / "probes.py"

    @property
    def tests_dir(self) -> Path:
        return self.reference_dir / "tests"

    @property
    def solution_path(self) -> Path:
        return self.reference_dir / "solution.ipynb"

    def split_path(self, split: str) -> Path:
        base = self.reference_dir if self.spec.splits[split] == "hidden" else self.assignment_dir
        return base / "data" / f"{split}.npz"

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of a split, read once; hidden labels stay on the host."""
        if split not in self._data:
            path = self.split_path(split)
            try:
                with np.load(path, allow_pickle=False) as f:
                    self._data[split] = (f["X"], f["y"])
            except (OSError, KeyError, ValueError) as exc:
                raise ConfigError(path, None, f"cannot read split {split!r}: {exc}",
                                  "each split is an .npz with arrays X and y") from exc
        return self._data[split]

    def inputs(self) -> dict[str, np.ndarray]:
        return {s: self.split(s)[0] for s in self.spec.splits}

    def labels(self) -> dict[str, np.ndarray]:
        return {s: self.split(s)[1] for s in self.spec.splits}

    @cached_property
    def rubric_hash(self) -> str:
        return hashlib.sha256(self.rubric.model_dump_json().encode()).hexdigest()[:16]

    @cached_property
    def probes_hash(self) -> str:
        return sha256_files([self.probes_path])[:16]

    @cached_property
    def data_hash(self) -> str:
        return sha256_files([self.split_path(s) for s in self.spec.splits])[:16]

    @cached_property
    def tests_hash(self) -> str:
        return sha256_files(self.test_files())[:16]

    @cached_property
    def version(self) -> str:
        """The declared version plus a fingerprint of everything graded, so a silent edit still counts."""
        fingerprint = hashlib.sha256(
            (self.spec.model_dump_json() + self.probes_hash + self.data_hash + self.tests_hash).encode()
        ).hexdigest()[:8]
        return f"{self.spec.version}+{fingerprint}"

    def test_files(self) -> list[Path]:
        return sorted(self.tests_dir.glob("test_*.py")) if self.tests_dir.is_dir() else []


def load_lab(name: str, root: Path | None = None) -> Lab:
    root = find_root(root)
    folder = root / "assignments" / name
    if not folder.is_dir():
        known = sorted(p.name for p in (root / "assignments").iterdir() if (p / "lab.yaml").is_file())
        raise UserError(f"no lab named {name!r} in {root / 'assignments'}",
                        f"known labs: {', '.join(known) or 'none'}")
    spec = load_model(folder / "lab.yaml", LabSpec)
    rubric_path = root / "rubrics" / f"{name}.yaml"
    rubric = load_model(rubric_path, Rubric)
    lab = Lab(name=name, root=root, spec=spec, rubric=rubric)
    _check(lab)
    return lab


def probe_names(path: Path) -> set[str]:
    """The probes a probes.py defines, read without importing it (it may need torch)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(path, f"line {exc.lineno}", f"not valid Python: {exc.msg}", "fix the syntax") from exc
    return {node.name.removeprefix("probe_") for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("probe_")}


def _check(lab: Lab) -> None:
    """Cross-file consistency that neither model can see alone."""
    if lab.spec.name != lab.name:
        raise ConfigError(lab.spec_path, "name", f"is {lab.spec.name!r} but the folder is {lab.name!r}",
                          "make them the same")
    if lab.rubric.lab != lab.name:
        raise ConfigError(lab.rubric_path, "lab", f"is {lab.rubric.lab!r} but the file is for {lab.name!r}",
                          f"set `lab: {lab.name}`")
    if not lab.notebook_path.is_file():
        raise ConfigError(lab.spec_path, "notebook", f"{lab.notebook_path} does not exist",
                          f"run `autograder assign {lab.name}` to generate it")
    for split in lab.spec.splits:
        if not lab.split_path(split).is_file():
            raise ConfigError(lab.spec_path, f"splits.{split}", f"{lab.split_path(split)} does not exist",
                              "add the data file or remove the split")
    if not lab.probes_path.is_file():
        raise ConfigError(lab.probes_path, None, "file not found", "every lab needs reference/<lab>/probes.py")
    probes = probe_names(lab.probes_path)
    for i, c in enumerate(lab.rubric.criteria):
        probe = getattr(c, "probe", None)
        if probe is not None and probe not in probes:
            raise ConfigError(lab.rubric_path, f"criteria[{i}].probe",
                              f"names probe {probe!r}, but {lab.probes_path.name} defines no probe_{probe}()",
                              f"probes defined: {', '.join(sorted(probes)) or 'none'}")
        for attr in ("split", "train", "test"):
            split = getattr(c, attr, None)
            if split is not None and split not in lab.spec.splits:
                raise ConfigError(lab.rubric_path, f"criteria[{i}].{attr}",
                                  f"names split {split!r}, which lab.yaml does not define",
                                  f"use one of: {', '.join(lab.spec.splits)}")
        export = getattr(c, "export", None)
        if export is not None and export not in lab.spec.exports:
            raise ConfigError(lab.rubric_path, f"criteria[{i}].export",
                              f"names export {export!r}, which lab.yaml does not list under `exports`",
                              f"exports: {', '.join(lab.spec.exports)}")
        if c.kind == "hidden-tests" and not lab.test_files():
            raise ConfigError(lab.rubric_path, f"criteria[{i}]", f"no test_*.py files in {lab.tests_dir}",
                              "add hidden tests or remove the criterion")
