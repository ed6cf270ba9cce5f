"""A lab on disk: its spec, rubric, data and staff files, checked together at load."""

from __future__ import annotations

import ast
import hashlib
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from autograder.arrays import load_npz
from autograder.errors import ConfigError, UserError
from autograder.labs.loading import load_model
from autograder.labs.rubric import Rubric
from autograder.labs.spec import LabSpec

MAX_SPLIT_BYTES = 8 * 1024**3  # per split file, unpacked: the staff's own data, so only a guard against a broken file


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
    """One lab as the grader sees it. `public_only` is the self-check's view (the student kit, or the
    course repository read as a student would): no hidden data, probes or tests, and each hidden split
    measured on its public stand-in."""

    name: str
    root: Path
    spec: LabSpec
    rubric: Rubric
    assignment_dir: Path = None  # type: ignore[assignment]  # set in __post_init__ for the course layout
    rubric_path: Path = None  # type: ignore[assignment]
    reference_dir: Path | None = None
    release_dir: Path = None  # type: ignore[assignment]  # the notebook and modules as handed out
    public_only: bool = False
    _data: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.assignment_dir is None:
            self.assignment_dir = self.root / "assignments" / self.name
        if self.rubric_path is None:
            self.rubric_path = self.root / "rubrics" / f"{self.name}.yaml"
        if self.reference_dir is None and not self.public_only:
            self.reference_dir = self.root / "reference" / self.name
        if self.release_dir is None:
            self.release_dir = self.assignment_dir

    @property
    def spec_path(self) -> Path:
        return self.assignment_dir / "lab.yaml"

    @property
    def notebook_path(self) -> Path | None:
        """The student notebook as released (in a kit: the pristine copy, not the one being worked on);
        None for a lab whose students hand in modules only."""
        return self.release_dir / self.spec.notebook if self.spec.notebook is not None else None

    @property
    def released_notebook(self) -> Path:
        """notebook_path where a notebook is required; asking for it in a module-only lab is a harness bug."""
        if self.notebook_path is None:
            raise RuntimeError(f"lab {self.name} has no notebook")
        return self.notebook_path

    @property
    def public_data_dir(self) -> Path:
        return self.assignment_dir / "data"

    @property
    def hidden(self) -> Path:
        """The staff folder; asking for it in the self-check's view is a harness bug."""
        if self.reference_dir is None:
            raise RuntimeError(f"lab {self.name}: no hidden files in the self-check's view")
        return self.reference_dir

    @property
    def public_probes_path(self) -> Path:
        return self.assignment_dir / "probes.py"

    @property
    def probes_path(self) -> Path:
        """The hidden probes."""
        return self.hidden / "probes.py"

    @property
    def public_tests_dir(self) -> Path:
        return self.assignment_dir / "tests"

    @property
    def tests_dir(self) -> Path:
        """The hidden tests."""
        return self.hidden / "tests"

    @property
    def solution_path(self) -> Path:
        return self.hidden / "solution.ipynb"

    def helper_path(self, name: str) -> Path:
        """A probe helper module (`files.helpers`): in assignments/<lab>/, released with the kit."""
        return self.assignment_dir / name

    def helper_files(self) -> list[Path]:
        return [self.helper_path(name) for name in self.spec.files.helpers]

    def probe_files(self) -> list[Path]:
        """Public probes first, then the hidden ones (left out of the self-check)."""
        files = [self.public_probes_path] if self.public_probes_path.is_file() else []
        if not self.public_only and self.probes_path.is_file():
            files.append(self.probes_path)
        return files

    def test_files(self) -> list[Path]:
        """Public tests, then hidden ones (left out of the self-check)."""
        folders = [self.public_tests_dir] + ([] if self.public_only else [self.tests_dir])
        return [f for d in folders if d.is_dir() for f in sorted(d.glob("test_*.py"))]

    def public_test(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.public_tests_dir.resolve())

    def template_path(self, name: str) -> Path:
        """A student module as handed out, or a provided module."""
        return self.release_dir / name

    def source_path(self, name: str) -> Path:
        """A student module's source, with its solution regions (staff only)."""
        return self.hidden / name

    def split_path(self, split: str) -> Path:
        if self.spec.splits[split] == "hidden":
            if self.public_only:
                return self.assignment_dir / "data" / f"{self.stand_in(split)}.npz"
            return self.hidden / "data" / f"{split}.npz"
        return self.assignment_dir / "data" / f"{split}.npz"

    def stand_in(self, split: str) -> str:
        chosen = self.spec.stand_in(split)
        if chosen is None:
            raise ConfigError(self.spec_path, "self_check.stand_ins",
                              f"the hidden split {split!r} has no public split to stand in for it",
                              f"add `self_check: {{stand_ins: {{{split}: val}}}}` naming a public split")
        return chosen

    def split_label(self, split: str) -> str:
        """How a message names a split: 'the hidden test set', or in the self-check
        'the val set (standing in for the hidden test set)'."""
        if self.spec.splits.get(split) != "hidden":
            return f"the {split} set"
        if self.public_only:
            return f"the {self.stand_in(split)} set (standing in for the hidden {split} set)"
        return f"the hidden {split} set"

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(X, y) of a split, read once; y is None for a split of inputs only (where nothing in the
        rubric needs labels: see `has_labels`). Hidden labels stay on the host."""
        if split not in self._data:
            path = self.split_path(split)
            try:
                keys = split_keys(path)
                if "X" not in keys:
                    raise KeyError("the file has no array X")
                f = load_npz(path, keys=[k for k in ("X", "y") if k in keys], max_array_bytes=MAX_SPLIT_BYTES,
                             max_total_bytes=MAX_SPLIT_BYTES, max_text_bytes=MAX_SPLIT_BYTES)
                self._data[split] = (f["X"], f.get("y"))
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:  # ArrayRefused is a ValueError
                raise ConfigError(path, None, f"cannot read split {split!r}: {exc}",
                                  "each split is an .npz with an array X (inputs) and, where the rubric "
                                  "measures against labels, y") from exc
        return self._data[split]

    def has_labels(self, split: str) -> bool:
        """Whether the split's file holds labels (y), read from its index without loading the data."""
        path = self.split_path(split)
        try:
            return "y" in split_keys(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ConfigError(path, None, f"cannot read split {split!r}: {exc}",
                              "each split is an .npz (numpy.savez) with an array X, and y where labels are needed"
                              ) from exc

    def inputs(self) -> dict[str, np.ndarray]:
        return {s: self.split(s)[0] for s in self.spec.splits}

    def labels(self) -> dict[str, np.ndarray]:
        """split -> y, for the splits that have labels."""
        out = {}
        for s in self.spec.splits:
            y = self.split(s)[1]
            if y is not None:
                out[s] = y
        return out

    @cached_property
    def probes(self) -> dict[str, Path]:
        """probe name -> the file defining it, for the probes this view of the lab runs."""
        return probe_sources(self)

    @cached_property
    def rubric_hash(self) -> str:
        return hashlib.sha256(self.rubric.model_dump_json().encode()).hexdigest()[:16]

    @cached_property
    def probes_hash(self) -> str:
        """The probes and the helper modules they import: a changed helper re-probes."""
        return sha256_files(self.probe_files() + self.helper_files())[:16]

    @cached_property
    def data_hash(self) -> str:
        return sha256_files([self.split_path(s) for s in self.spec.splits])[:16]

    @cached_property
    def tests_hash(self) -> str:
        return sha256_files(self.test_files())[:16]

    @cached_property
    def release_hash(self) -> str:
        """What intake restores from: the released notebook (locked cells) and the provided modules."""
        notebook = [self.notebook_path] if self.notebook_path is not None else []
        return sha256_files(notebook + [self.template_path(f) for f in self.spec.files.provided])[:16]

    @cached_property
    def version(self) -> str:
        """The declared version plus a fingerprint of everything graded, so a silent edit still counts."""
        fingerprint = hashlib.sha256(
            (self.spec.model_dump_json() + self.probes_hash + self.data_hash + self.tests_hash
             + self.release_hash).encode()
        ).hexdigest()[:8]
        return f"{self.spec.version}+{fingerprint}"


KIT_RUBRIC = "rubric.yaml"  # in a student kit the rubric sits beside lab.yaml
KIT_HANDOUT = "handout"  # in a student kit: pristine copies of the notebook and modules, restored from


def load_lab(name: str, root: Path | None = None, public_only: bool = False) -> Lab:
    """A lab of the course folder; `public_only` gives the self-check's view of it."""
    root = find_root(root)
    folder = root / "assignments" / name
    if not folder.is_dir():
        known = sorted(p.name for p in (root / "assignments").iterdir() if (p / "lab.yaml").is_file())
        raise UserError(f"no lab named {name!r} in {root / 'assignments'}",
                        f"known labs: {', '.join(known) or 'none'}")
    spec = load_model(folder / "lab.yaml", LabSpec)
    rubric_path = root / "rubrics" / f"{name}.yaml"
    rubric = load_model(rubric_path, Rubric)
    lab = Lab(name=name, root=root, spec=spec, rubric=rubric, public_only=public_only)
    _check(lab)
    return lab


def load_kit(folder: Path) -> Lab:
    """A student kit made by `autograder release`: lab.yaml, rubric.yaml, the notebook, public data,
    probes and tests in one folder. Always the self-check's view: a kit holds nothing hidden."""
    folder = Path(folder).resolve()
    spec = load_model(folder / "lab.yaml", LabSpec)
    rubric = load_model(folder / KIT_RUBRIC, Rubric)
    lab = Lab(name=spec.name, root=folder, spec=spec, rubric=rubric, assignment_dir=folder,
              rubric_path=folder / KIT_RUBRIC, release_dir=folder / KIT_HANDOUT, public_only=True)
    _check(lab)
    return lab


def find_for_check(name: str, path: Path, root: Path | None = None) -> Lab:
    """The lab a self-check runs against: the course folder's (public view) when PATH or the working
    dir is inside one, else the student kit holding PATH or the working dir."""
    starts = [Path(path).resolve(), Path.cwd().resolve()] if root is None else []
    if root is not None:
        return load_lab(name, root, public_only=True)
    for start in starts:
        for folder in (start, *start.parents):
            if (folder / "lab.yaml").is_file() and (folder / KIT_RUBRIC).is_file():
                lab = load_kit(folder)
                if lab.name == name:
                    return lab
            if (folder / "assignments" / name / "lab.yaml").is_file() and (folder / "rubrics").is_dir():
                return load_lab(name, folder, public_only=True)
    raise UserError(f"no lab named {name!r} around {path} or the working folder",
                    "run the check inside the student kit (the folder with lab.yaml and rubric.yaml) "
                    "or the course folder, or pass --root")


def split_keys(path: Path) -> set[str]:
    """The array names an .npz split holds (`X`, `y`), read from its index without loading them."""
    with zipfile.ZipFile(path) as z:
        return {name.removesuffix(".npy") for name in z.namelist()}


def probe_names(path: Path) -> set[str]:
    """The probes a probes.py defines, read without importing it (it may need torch)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(path, f"line {exc.lineno}", f"not valid Python: {exc.msg}", "fix the syntax") from exc
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    names |= {target.id for node in tree.body if isinstance(node, ast.Assign)  # probe_x = steps(a, b)
              for target in node.targets if isinstance(target, ast.Name)}
    return {name.removeprefix("probe_") for name in names if name.startswith("probe_")}


def _check(lab: Lab) -> None:
    """Cross-file consistency that neither model can see alone."""
    if lab.spec.name != lab.name:
        raise ConfigError(lab.spec_path, "name", f"is {lab.spec.name!r} but the folder is {lab.name!r}",
                          "make them the same")
    if lab.rubric.lab != lab.name:
        raise ConfigError(lab.rubric_path, "lab", f"is {lab.rubric.lab!r} but the file is for {lab.name!r}",
                          f"set `lab: {lab.name}`")
    if lab.notebook_path is not None and not lab.notebook_path.is_file():
        raise ConfigError(lab.spec_path, "notebook", f"{lab.notebook_path} does not exist",
                          f"run `autograder assign {lab.name}` to generate it")
    for split in lab.spec.splits:
        if lab.public_only and lab.spec.splits[split] == "hidden":
            lab.stand_in(split)  # a ConfigError when there is none
        if not lab.split_path(split).is_file():
            raise ConfigError(lab.spec_path, f"splits.{split}", f"{lab.split_path(split)} does not exist",
                              "add the data file or remove the split")
    for i, name in enumerate(lab.spec.files.student):
        if not lab.template_path(name).is_file():
            raise ConfigError(lab.spec_path, f"files.student[{i}]", f"{lab.template_path(name)} does not exist",
                              f"write {lab.source_path(name) if lab.reference_dir else name} with solution "
                              f"markers and run `autograder assign {lab.name}`")
        if lab.reference_dir is not None and not lab.source_path(name).is_file():
            raise ConfigError(lab.spec_path, f"files.student[{i}]", f"{lab.source_path(name)} does not exist",
                              "the reference module, with ### BEGIN SOLUTION / ### END SOLUTION markers, "
                              "from which the template is made")
    for i, name in enumerate(lab.spec.files.provided):
        if not lab.template_path(name).is_file():
            raise ConfigError(lab.spec_path, f"files.provided[{i}]", f"{lab.template_path(name)} does not exist",
                              "add the module to the assignment folder or remove it from the list")
    for i, name in enumerate(lab.spec.files.helpers):
        if not lab.helper_path(name).is_file():
            raise ConfigError(lab.spec_path, f"files.helpers[{i}]", f"{lab.helper_path(name)} does not exist",
                              "put the probes' helper module in the assignment folder (it is released with the "
                              "kit) or remove it from the list")
    files = lab.probe_files()
    if not files and not lab.public_only:  # a lab without public probes: its self-check measures nothing
        where = lab.public_probes_path if lab.public_only else lab.probes_path
        raise ConfigError(where, None, "file not found",
                          "every lab needs probes: assignments/<lab>/probes.py (public) or "
                          "reference/<lab>/probes.py (hidden)")
    probes: dict[str, Path] = {}
    for path in files:
        for name in probe_names(path):
            if name in probes:
                raise ConfigError(path, f"probe_{name}", f"is also defined in {probes[name]}",
                                  "give every probe one name across the public and hidden probes")
            probes[name] = path
    for i, c in enumerate(lab.rubric.criteria):
        for problem in c.lab_problems(lab):
            field = f"criteria[{i}].{problem.field}" if problem.field else f"criteria[{i}]"
            raise ConfigError(lab.rubric_path, field, problem.problem, problem.hint)


def probe_sources(lab: Lab) -> dict[str, Path]:
    """probe name -> the file defining it, for the probes this view of the lab runs."""
    return {name: path for path in lab.probe_files() for name in probe_names(path)}
