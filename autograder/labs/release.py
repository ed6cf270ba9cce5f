"""`autograder release LAB`: the student kit, and a leak check that refuses a kit holding anything hidden.

The kit is what a student needs to do the lab and check it offline: the student notebook (made from
the reference by nbgrader's preprocessors), module templates and provided modules, lab.yaml,
rubric.yaml, the public data, probes and tests, and a README. The leak check reads every file of the
finished kit as an outsider would and looks for what only staff may have: hidden test files and test
names, hidden probe code, hidden data (row by row, not only whole files), and solution text from
between the solution markers. Any finding removes the kit and fails the release.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np

from autograder.arrays import load_npy, load_npz
from autograder.errors import UserError
from autograder.labs.assign import make_student_module, make_student_notebook
from autograder.labs.environment import Environment
from autograder.labs.lab import KIT_HANDOUT, KIT_RUBRIC, Lab

MIN_LINE = 30  # characters: shorter lines (`return out`, `model.eval()`) are shared by chance
# A hidden definition (function, class, constant) counts as leaked when this share of its distinctive
# lines is in one kit file: idioms (`if isinstance(model, torch.nn.Module):`) recur by chance, a
# copied function comes whole.
DEFINITION_SHARE = 0.5
DATA_ROWS_TO_LEAK = 3  # hidden input rows found in the kit's arrays (a few duplicates exist in real data)
MAX_SCAN_BYTES = 512 * 1024**2  # per array file read for hidden rows, unpacked; a larger one is not scanned
TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".txt", ".yaml", ".yml", ".json", ".csv", ".cfg", ".toml", ".html"}
BEGIN = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")
END = ("### END SOLUTION", "### END HIDDEN TESTS")


@dataclass
class Leak:
    path: str  # relative to the kit
    what: str


@dataclass
class Kit:
    folder: Path
    files: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # what the leak check looked for


def release(lab: Lab, out: Path, force: bool = False) -> Kit:
    """Write the kit to `out` and check it; on a leak the kit is removed and UserError says what leaked."""
    if lab.public_only:
        raise UserError("a student kit is made from the course folder, not from a kit", "run it in the course repo")
    _check_generated(lab)
    out = Path(out)
    if out.exists():
        if not force and any(out.iterdir()):
            raise UserError(f"{out} exists and is not empty", "pass --force to replace it, or choose another -o")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    kit = Kit(folder=out)
    try:
        _write(lab, kit)
        leaks = find_leaks(lab, out, kit)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if leaks:
        shutil.rmtree(out, ignore_errors=True)
        listed = "; ".join(f"{leak.path}: {leak.what}" for leak in leaks[:10])
        more = f" (and {len(leaks) - 10} more)" if len(leaks) > 10 else ""
        raise UserError(f"the kit for {lab.name} would leak what is hidden: {listed}{more}",
                        "move it out of assignments/ (or the rubric) into reference/, then release again")
    return kit


def _check_generated(lab: Lab) -> None:
    """The committed student files must be what nbgrader makes from the reference now: grading
    restores locked cells from them, so a stale one would differ from what students get."""
    stale = []
    if lab.notebook_path is not None and lab.spec.notebook is not None:
        made = nbformat.writes(make_student_notebook(lab.solution_path))
        committed = nbformat.writes(nbformat.read(lab.notebook_path, as_version=4))
        stale = [lab.spec.notebook] if made != committed else []
    for name in lab.spec.files.student:
        if make_student_module(lab.source_path(name)) != lab.template_path(name).read_text(encoding="utf-8"):
            stale.append(name)
    if stale:
        raise UserError(f"{', '.join(stale)} in {lab.assignment_dir} differ from what the reference makes now",
                        f"run `autograder assign {lab.name}` and commit the result before releasing")


def _write(lab: Lab, kit: Kit) -> None:
    def put(name: str, data: bytes) -> None:
        target = kit.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        kit.files.append(name)

    for folder in ("", f"{KIT_HANDOUT}/"):  # the working copies, and pristine ones that the check restores from
        if lab.notebook_path is not None:
            put(folder + lab.notebook_path.name, lab.notebook_path.read_bytes())
        for name in lab.spec.files.all:
            put(folder + name, lab.template_path(name).read_bytes())
        template = _report_template(lab)
        if template is not None:  # the report's headings and questions; the check reads the pristine copy
            put(folder + template.name, template.read_bytes())
    put("lab.yaml", lab.spec_path.read_bytes())
    put(KIT_RUBRIC, lab.rubric_path.read_bytes())
    for split, where in lab.spec.splits.items():
        if where == "public":
            put(f"data/{split}.npz", lab.split_path(split).read_bytes())
    if lab.public_probes_path.is_file():
        put("probes.py", lab.public_probes_path.read_bytes())
    for name in lab.spec.files.helpers:  # what the public (and hidden) probes import
        put(name, lab.helper_path(name).read_bytes())
    for test in lab.test_files():
        if lab.public_test(test):
            put(f"tests/{test.name}", test.read_bytes())
    put("README.md", _readme(lab).encode())


def _report_template(lab: Lab) -> Path | None:
    """The report template handed out (assignments/<lab>/<report>.md), where the lab reads a report and has one."""
    stem = lab.spec.files.report
    path = lab.assignment_dir / f"{stem}.md" if stem else None
    return path if path is not None and path.is_file() else None


def _readme(lab: Lab) -> str:
    modules = lab.spec.files.student
    stem = lab.spec.files.report
    report = [f"your report ({stem}.pdf, {stem}.md or {stem}.txt)"] if stem else []
    parts = ([] if lab.spec.notebook is None else ["the notebook"]) + modules + report
    together = ", together in one folder or zip" if len(parts) > 1 else ""
    hand_in = (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]) + together
    template = _report_template(lab)
    work = ' and '.join(f"`{f}`" for f in [lab.spec.notebook, *modules, template.name if template else None] if f)
    runs = "runs your notebook from top to bottom"
    if lab.spec.notebook is None:  # a module-only lab
        runs = "evaluates your modules with the public probes and tests"
    provided = (f"\n{', '.join(lab.spec.files.provided)} {'is' if len(lab.spec.files.provided) == 1 else 'are'} "
                "provided: use, don't change (grading uses the handed-out version).\n"
                if lab.spec.files.provided else "")
    return f"""# {lab.spec.title or lab.name}
{_packages_section(lab)}
Work in {work};
hand in {hand_in}.
{provided}
## Check your work before handing in

    autograder check {lab.name} {lab.spec.notebook or modules[0]}

{runs} on this computer, as the grader will (no Docker needed, no
network), and shows every criterion of `rubric.yaml` with your value against its bar and what to do.
It exits with 0 only when everything it can check passes. It never changes your files.

Some results are estimates, and the check says which: it measures on the validation data where
grading uses hidden test data, runs the public tests in `tests/` where grading also runs hidden
ones, and cannot compare your reflection with other students'. Aim for a margin above each bar.

`{KIT_HANDOUT}/` keeps the files as handed out: the check (like grading) restores locked cells
and provided modules from there, so leave it as it is.

What is here: `lab.yaml` (how your code is run: parameters, time and memory limits),
`rubric.yaml` (the bar), `data/` (the public data), `probes.py` and `tests/` (how your objects are
evaluated in the public checks).
"""


def _packages_section(lab: Lab) -> str:
    """The lab's packages (lab.yaml `packages:`) and the command that installs them, for working locally."""
    env = Environment.of(lab.spec.packages)
    if not env.packages:
        return ""
    return f"""
This lab uses {', '.join(f'`{p}`' for p in env.packages)} besides torch, numpy and matplotlib (grading
has them). To work and check locally, install them into the Python you work with:

    {env.install_command()}
"""


# --- leak check -------------------------------------------------------------------------------

def find_leaks(lab: Lab, kit_dir: Path, kit: Kit | None = None) -> list[Leak]:
    """Everything hidden that shows in the kit at `kit_dir`."""
    kit = kit or Kit(folder=kit_dir)
    texts = _kit_texts(kit_dir)
    leaks: list[Leak] = []
    hidden_tests = sorted(lab.tests_dir.glob("test_*.py")) if lab.tests_dir.is_dir() else []
    names = {t.name for t in hidden_tests} | {n for t in hidden_tests for n in _test_names(t)}
    kit.checks.append(f"names of {len(hidden_tests)} hidden test files and their {len(names) - len(hidden_tests)} "
                      "tests")
    for rel, text in texts.items():
        for name in sorted(names):
            if re.search(rf"\b{re.escape(name)}\b", text):
                leaks.append(Leak(rel, f"names the hidden test {name}"))
    hidden_code = hidden_tests + ([lab.probes_path] if lab.probes_path.is_file() else [])
    kit.checks.append(f"code of {len(hidden_code)} hidden files (probes and tests)")
    shared = _public_definitions(lab)
    for source in hidden_code:
        secret = _secret_definitions(source.read_text(encoding="utf-8"), shared)
        for rel, text in texts.items():
            have = _lines(text)
            leaked = [lines for lines in secret if len(lines & have) >= DEFINITION_SHARE * len(lines)]
            if leaked:
                example = sorted(leaked[0] & have)[0]
                leaks.append(Leak(rel, f"holds {len(leaked)} definitions of hidden "
                                       f"{source.relative_to(lab.root)}, e.g. the line {example!r}"))
    solution = _solution_lines(lab) | _model_report_lines(lab)
    kit.checks.append(f"{len(solution)} lines of solution text")
    for rel, text in texts.items():
        found = solution & _lines(text)
        if found:
            leaks.append(Leak(rel, f"holds {len(found)} lines of the solution, e.g. {sorted(found)[0]!r}"))
        if rel.endswith(".ipynb") and _has_outputs(text):
            leaks.append(Leak(rel, "holds cell outputs (they can show solution results); clear them"))
    leaks += _data_leaks(lab, kit_dir, kit)
    return leaks


def _kit_texts(kit_dir: Path) -> dict[str, str]:
    out = {}
    for path in sorted(kit_dir.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            out[path.relative_to(kit_dir).as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    return out


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.name.startswith(("test_", "Test"))}


def _norm(line: str) -> str:
    return " ".join(line.split())


def _lines(text: str) -> set[str]:
    """Every line of a file, normalised; for a notebook, every line of every cell as well."""
    found = {_norm(x) for x in text.splitlines()}
    if text.lstrip().startswith("{"):
        try:
            nb = nbformat.reads(text, as_version=4)
            found |= {_norm(x) for cell in nb.cells for x in cell.source.splitlines()}
        except Exception:  # not a notebook after all
            pass
    return found


def _definitions(code: str) -> list[str]:
    """The source of each top-level function, class and assignment of a module (its docstring left out)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [code]
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
            out.append(ast.get_source_segment(code, node) or "")
    return out


def _public_definitions(lab: Lab) -> set[str]:
    """Definitions the public probes and tests hold themselves: a helper copied verbatim into a hidden
    file (say, how images are scaled) is shared, not secret."""
    public = [lab.public_probes_path] if lab.public_probes_path.is_file() else []
    public += [t for t in lab.test_files() if lab.public_test(t)]
    public += lab.helper_files()  # released: what hidden probes import from them (or repeat) is public
    return {_norm(d) for path in public for d in _definitions(path.read_text(encoding="utf-8"))}


def _secret_definitions(code: str, shared: set[str]) -> list[set[str]]:
    """The distinctive lines of each of a hidden file's own definitions (not those the public files
    share); definitions with none are left out."""
    out = []
    for d in _definitions(code):
        if _norm(d) not in shared:
            lines = _distinctive_lines(d)
            if lines:
                out.append(lines)
    return out


def _distinctive_lines(code: str) -> set[str]:
    """Lines long enough not to be shared by chance, other than imports."""
    out = set()
    for line in code.splitlines():
        s = _norm(line)
        if len(s) >= MIN_LINE and not s.startswith(("import ", "from ", "#")):
            out.add(s)
    return out


def _solution_lines(lab: Lab) -> set[str]:
    """Lines inside solution and hidden-test regions (and whole solution markdown cells) of the reference
    notebook and modules, less those that also occur outside them there (a shared line is no secret)."""
    inside: set[str] = set()
    outside: set[str] = set()
    sources = [cell for cell in nbformat.read(lab.solution_path, as_version=4).cells] if lab.spec.notebook else []
    texts = [(c.source, c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution", False))
             for c in sources]
    texts += [(lab.source_path(name).read_text(encoding="utf-8"), False) for name in lab.spec.files.student]
    for text, whole in texts:
        if whole:
            inside |= {_norm(x) for x in text.splitlines()}
            continue
        in_solution = False
        for line in text.splitlines():
            if any(marker in line for marker in BEGIN):
                in_solution = True
            elif any(marker in line for marker in END):
                in_solution = False
            else:
                (inside if in_solution else outside).add(_norm(line))
    return {x for x in inside - outside if len(x) >= MIN_LINE and not x.startswith(("import ", "from "))}


def _model_report_lines(lab: Lab) -> set[str]:
    """The model report's own lines (reference/<lab>/<report>.md or .txt), less those of the released template."""
    stem = lab.spec.files.report
    if not stem:
        return set()
    template = _report_template(lab)
    shared = _lines(template.read_text(encoding="utf-8")) if template else set()
    found: set[str] = set()
    for suffix in (".md", ".txt"):
        path = lab.hidden / f"{stem}{suffix}"
        if path.is_file():
            found |= _lines(path.read_text(encoding="utf-8", errors="replace")) - shared
    return {x for x in found if len(x) >= MIN_LINE}


def _has_outputs(text: str) -> bool:
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:
        return False
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def _row_hashes(X: np.ndarray) -> set[bytes]:
    X = np.ascontiguousarray(X)
    if X.ndim == 0 or len(X) == 0:
        return set()
    rows = X.reshape(len(X), -1)
    return {hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows}


def _data_leaks(lab: Lab, kit_dir: Path, kit: Kit) -> list[Leak]:
    hidden = {s: lab.split_path(s) for s, where in lab.spec.splits.items() if where == "hidden"}
    files = {s: p.read_bytes() for s, p in hidden.items()}
    rows = {s: (lab.split(s)[0].dtype, lab.split(s)[0].shape[1:], _row_hashes(lab.split(s)[0])) for s in hidden}
    kit.checks.append(f"{sum(len(r[2]) for r in rows.values())} hidden input rows and {len(files)} hidden data files")
    leaks = []
    for path in sorted(kit_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(kit_dir).as_posix()
        data = path.read_bytes()
        for split, raw in files.items():
            if data == raw:
                leaks.append(Leak(rel, f"is the hidden {split} data file"))
        for name, array in _arrays(path, data):
            for split, (dtype, shape, hashes) in rows.items():
                if array.ndim >= 1 and array.shape[1:] == shape and array.dtype == dtype:
                    shared = len(_row_hashes(array) & hashes)
                    if shared >= min(DATA_ROWS_TO_LEAK, len(hashes)):
                        leaks.append(Leak(rel, f"array {name} holds {shared} inputs of the hidden {split} set"))
    return leaks


def _arrays(path: Path, data: bytes) -> list[tuple[str, np.ndarray]]:
    try:
        if path.suffix == ".npz" or data[:4] == b"PK\x03\x04" and path.suffix != ".zip":
            return list(load_npz(data, max_array_bytes=MAX_SCAN_BYTES, max_total_bytes=MAX_SCAN_BYTES,
                                 max_text_bytes=MAX_SCAN_BYTES).items())
        if path.suffix == ".npy":
            return [(path.name, load_npy(data, max_array_bytes=MAX_SCAN_BYTES, max_text_bytes=MAX_SCAN_BYTES))]
        if path.suffix == ".zip":
            out = []
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for info in z.infolist():
                    if info.filename.endswith((".npy", ".npz")) and info.file_size < MAX_SCAN_BYTES:
                        out += _arrays(Path(info.filename), z.read(info))
            return out
    except (OSError, ValueError, zipfile.BadZipFile):
        return []
    return []
