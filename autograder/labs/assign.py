"""Make a lab's student notebook from its nbgrader source notebook (`autograder assign`).

nbgrader's own preprocessors run as a library, so solution and hidden-test markers, locked cells and
checksums mean exactly what they mean in nbgrader, with no course directory or gradebook. The
output is deterministic (same bytes on every run), so a test can compare it with the committed file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)
from traitlets.config import Config

from autograder.errors import UserError
from autograder.labs.lab import find_root
from autograder.labs.loading import load_model
from autograder.labs.spec import REPORT_SUFFIXES, LabSpec

# What students find in place of a solution; pinned here so that a change of nbgrader's defaults
# shows up as a diff of the committed student notebooks rather than silently.
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


def _config() -> Config:
    config = Config()
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    config.ClearSolutions.text_stub = TEXT_STUB
    config.ClearSolutions.enforce_metadata = True  # a marker outside a solution cell is an error
    config.ClearHiddenTests.enforce_metadata = True
    return config


def make_student_notebook(solution_path: Path) -> nbformat.NotebookNode:
    """Return the student version of the nbgrader source notebook at `solution_path`.

    Same steps as `nbgrader generate_assignment`, less the gradebook: validate the nbgrader
    metadata, lock cells, replace solutions by stubs, clear outputs, then drop hidden tests.
    As in nbgrader, checksums are computed before and again after the hidden tests are removed;
    the second pass (nbgrader's gradebook keeps the first) makes them match what students
    receive, so an edited locked cell can be detected.
    """
    nb = nbformat.read(Path(solution_path), as_version=4)
    config = _config()
    steps = [
        CheckCellMetadata(config=config),
        LockCells(config=config),
        ClearSolutions(config=config),
        ClearOutput(config=config),
        ComputeChecksums(config=config),
        ClearHiddenTests(config=config),
        ComputeChecksums(config=config),
    ]
    # ClearSolutions puts the kernel language into resources itself (from the kernelspec, default
    # python); no other step reads or writes resources.
    resources: dict = {}
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    _fix_cell_ids(nb)
    return nb


def _fix_cell_ids(nb: nbformat.NotebookNode) -> None:
    """Give every cell a stable id; nbformat would otherwise invent random ones when writing."""
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    taken = {cell.get("id") for cell in nb.cells}
    for index, cell in enumerate(nb.cells):
        if not cell.get("id"):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            candidate = grade_id if grade_id and grade_id not in taken else f"cell-{index}"
            cell["id"] = candidate
            taken.add(candidate)


def write_student_notebook(solution_path: Path, out_path: Path) -> nbformat.NotebookNode:
    """Write the student notebook made from `solution_path` to `out_path`, and return it."""
    nb = make_student_notebook(solution_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
    return nb


def reference_submission(solution_path: Path, student_path: Path) -> nbformat.NotebookNode:
    """What a perfect student hands in: the released notebook with each solution cell answered as in
    the solution. validate-lab grades this rather than the source notebook, whose locked cells
    still hold the hidden tests and so differ from what students receive."""
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nbformat.read(Path(solution_path), as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    nb = nbformat.read(Path(student_path), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def make_student_module(source_path: Path) -> str:
    """The template of a student module: the reference module with each region between
    `### BEGIN SOLUTION` and `### END SOLUTION` replaced by the code stub, by nbgrader's own
    ClearSolutions (the file is treated as one code cell), so modules and notebooks read alike."""
    source = Path(source_path).read_text(encoding="utf-8")
    cell = nbformat.v4.new_code_cell(source)
    clear = ClearSolutions(config=_config())
    try:
        replaced = clear._replace_solution_region(cell, "python")
    except RuntimeError as exc:  # nested or unclosed markers
        raise ValueError(f"{source_path}: {exc}") from exc
    if not replaced:
        raise ValueError(f"{source_path}: no ### BEGIN SOLUTION / ### END SOLUTION region; a student module "
                         "needs at least one, else list it under files.provided")
    return cell.source if cell.source.endswith("\n") else cell.source + "\n"


def write_student_module(source_path: Path, out_path: Path) -> str:
    text = make_student_module(source_path)
    Path(out_path).write_text(text, encoding="utf-8")
    return text


def write_reference_submission(lab, folder: Path, modules: str = "reference") -> Path:
    """A folder as a perfect student hands it in: the solved notebook (where the lab has one) and the
    reference modules; `modules="template"` puts the untouched templates beside the solved notebook."""
    folder.mkdir(parents=True, exist_ok=True)
    if lab.notebook_path is not None:
        nbformat.write(reference_submission(lab.solution_path, lab.notebook_path), folder / lab.spec.notebook)
    for name in lab.spec.files.student:
        source = lab.source_path(name) if modules == "reference" else lab.template_path(name)
        (folder / name).write_bytes(source.read_bytes())
    _copy_report(lab, lab.hidden, folder)
    return folder


def _copy_report(lab, source: Path, folder: Path) -> None:
    """The lab's written report (`files.report`) from `source`: the model report in reference/<lab>/, or
    the template handed out in assignments/<lab>/; the first of its suffixes that is there."""
    stem = lab.spec.files.report
    found = [source / f"{stem}{suffix}" for suffix in REPORT_SUFFIXES] if stem else []
    for path in (p for p in found if p.is_file()):
        (folder / path.name).write_bytes(path.read_bytes())
        return


def write_template_submission(lab, folder: Path) -> Path:
    """A folder as handed out and handed back untouched: the student notebook and module templates."""
    folder.mkdir(parents=True, exist_ok=True)
    if lab.notebook_path is not None:
        (folder / lab.spec.notebook).write_bytes(lab.notebook_path.read_bytes())
    for name in lab.spec.files.student:
        (folder / name).write_bytes(lab.template_path(name).read_bytes())
    _copy_report(lab, lab.assignment_dir, folder)
    return folder


def template_problems(lab) -> list[tuple[str, str]]:
    """(file, why) for each module template and reference module that is not valid Python: a solution
    region that leaves a block without a body (an `if` or `else` whose whole body was the solution) makes
    a template students cannot even import."""
    found = []
    for name in lab.spec.files.student:
        for label, path in (("template", lab.template_path(name)), ("reference", lab.source_path(name))):
            if not path.is_file():
                continue
            problem = syntax_problem(path.read_text(encoding="utf-8"), name)
            if problem:
                found.append((f"{path}", f"the {label} {problem}"))
    return found


def syntax_problem(source: str, name: str) -> str:
    """Why `source` (module `name`) does not compile, in one line, or ''."""
    try:
        compile(source, name, "exec")
    except SyntaxError as exc:
        return (f"{name} does not import: {exc.msg} at line {exc.lineno}: {(exc.text or '').strip()!r}; a solution "
                "region probably held a whole block body (put the `if`/`else` line inside the region too, or keep a "
                "line of it outside)")
    return ""


def assign(name: str, root: Path | None = None) -> Iterator[Path]:
    """`autograder assign`: the student notebook and module templates of lab `name`, generated from
    the reference with nbgrader's preprocessors; yields each file once it is written."""
    course = find_root(root)
    spec = load_model(course / "assignments" / name / "lab.yaml", LabSpec)
    folder = course / "assignments" / name
    if spec.notebook is not None:  # a module-only lab has modules to make, nothing else
        solution = course / "reference" / name / "solution.ipynb"
        if not solution.is_file():
            raise UserError(f"{solution} does not exist", "write the nbgrader source notebook there first")
        write_student_notebook(solution, folder / spec.notebook)
        yield folder / spec.notebook
    for module in spec.files.student:
        source = course / "reference" / name / module
        if not source.is_file():
            raise UserError(f"{source} does not exist", f"write the reference {module} with solution markers there")
        try:
            text = write_student_module(source, folder / module)
        except ValueError as exc:
            raise UserError(str(exc), "mark the solution in the module as in the notebook") from exc
        problem = syntax_problem(text, module)
        if problem:  # written, so the author sees what the region left; said, so it is not released so
            raise UserError(f"{folder / module}: the template {problem}", "fix the solution markers in "
                            f"{source} and run `autograder assign {name}` again")
        yield folder / module
