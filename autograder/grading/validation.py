"""`validate-lab`: a lab checks out before a batch meets it.

It loads; every cell the rubric names is in the notebooks (static checks of trusted staff files);
the reference solution handed in as a student would gets G and the untouched template U (and, with
student modules, the solved notebook with the untouched module templates U; every template must
compile, as a solution region can leave a dangling `else`); the
probes produce every metric and split the rubric names (read from how they ran on the reference);
and the solution passes the students' self-check too.
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import UserError
from autograder.grading.intake import IntakeSpec, Submission, take_folder
from autograder.grading.selfcheck import CheckResult, check
from autograder.labs.assign import template_problems, write_reference_submission, write_template_submission
from autograder.labs.environment import BASE_PACKAGES, Environment, provider
from autograder.labs.lab import Lab, load_lab
from autograder.labs.rubric import decide
from autograder.notebooks import find_cell, load_notebook
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

# A lab with student modules also grades the solved notebook with the untouched module templates: the
# modules are graded, not only the notebook (a module-only lab's reference and template are its modules alone).
EXPECTED = {"reference-solution": "G", "student-template": "U", "module-templates": "U"}
# Grades a batch as the command asked (backend, limits, progress); the validator only says what.
GradeBatch = Callable[[Lab, list[Submission], Store], list[SubmissionResult]]


@dataclass
class Problem:
    where: str  # file and field
    problem: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" + (f" ({self.hint})" if self.hint else "")


def cell_problems(lab: Lab) -> list[Problem]:
    """Every cell a criterion names exists in the student notebook and in the solution."""
    problems: list[Problem] = []
    if lab.notebook_path is None:  # no cells to name: lab_problems refuses a criterion that names one
        return problems
    notebooks = {"student notebook": lab.notebook_path, "solution": lab.solution_path}
    loaded = {name: load_notebook(path) for name, path in notebooks.items() if path.is_file()}
    for i, c in enumerate(lab.rubric.criteria):
        for attr, _, cell_id in (r for r in c.references() if r.kind == "cell"):
            for name, nb in loaded.items():
                if nb is None or find_cell(nb, cell_id) is None:
                    problems.append(Problem(
                        f"{lab.rubric_path}: criteria[{i}].{attr}",
                        f"criterion {c.id!r} names cell {cell_id!r}, which the {name} ({notebooks[name].name}) "
                        "does not have",
                        "give the cell that nbgrader grade_id or cell tag, or fix the name"))
    return problems


def import_problems(lab: Lab) -> list[Problem]:
    """Every module the reference and the released templates import is in the lab's environment: the
    standard library, the base's packages or lab.yaml's `packages:` (on either backend, the image holds
    exactly those), so a lab that forgot a package says which rather than failing every student."""
    env = Environment.of(lab.spec.packages)
    allowed = env.allowed_modules()
    files = lab.spec.files
    own = {name.removesuffix(".py") for name in files.student + files.provided + files.helpers}
    sources = [lab.solution_path] + [lab.source_path(n) for n in files.student]
    sources += [p for p in [lab.notebook_path] if p is not None]
    sources += [lab.template_path(n) for n in files.student + files.provided]
    seen: dict[str, list[str]] = {}
    for path in sources:
        for where, module in _imports(path):
            if module not in own and module not in allowed:
                seen.setdefault(module, []).append(f"{_shown(lab, path)}{where}")
    problems = []
    listed = ", ".join(env.packages) or "none"
    for module, places in sorted(seen.items()):
        more = f" (and {len(places) - 1} more)" if len(places) > 1 else ""
        package = provider(module)
        problems.append(Problem(
            f"{places[0]}{more}",
            f"imports {module}, which is not in the lab's environment (the standard library, "
            f"{', '.join(BASE_PACKAGES)}, and lab.yaml's packages: {listed})",
            f"{package} provides it: add it to packages: in lab.yaml" if package else
            "add the package that provides it to packages: in lab.yaml"))
    return problems


def _imports(path: Path) -> list[tuple[str, str]]:
    """(where, top-level module) of each absolute import in a notebook's code cells or a module."""
    if not path.is_file():
        return []
    if path.suffix == ".ipynb":
        nb = load_notebook(path)
        cells = [(f" cell {i}", c.source) for i, c in enumerate(nb.cells if nb else []) if c.cell_type == "code"]
    else:
        cells = [("", path.read_text(encoding="utf-8", errors="replace"))]
    found = []
    for where, source in cells:
        # IPython magics and shell lines are not Python; a cell that does not parse is another check's finding.
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(f"{where}, line {node.lineno}", name.split(".")[0]) for name in names]
    return found


def _shown(lab: Lab, path: Path) -> str:
    try:
        return str(path.relative_to(lab.root))
    except ValueError:
        return str(path)


def probe_problems(lab: Lab, reference: SubmissionResult) -> list[Problem]:
    """Every metric the rubric names is produced by the lab's probes on the reference solution."""
    problems = []
    report = reference.probes
    sources = {name: path.relative_to(lab.root) for name, path in lab.probes.items()}
    for i, c in enumerate(lab.rubric.criteria):
        probes = c.probes()
        if not probes:
            continue
        probe = probes[0]
        status = report.probes.get(probe) if report is not None else None
        where = f"{lab.rubric_path}: criteria[{i}].probe"
        if status is None or status.status != "ok":
            why = status.error if status is not None else (report.message if report is not None else "no report")
            problems.append(Problem(where, f"probe {probe!r} did not run on the reference solution: {why}",
                                    f"fix probe_{probe}() in {sources.get(probe, 'the probes')}"))
            continue
        for attr, _, split in (r for r in c.references() if r.kind == "split"):
            if split not in status.keys:
                problems.append(Problem(
                    f"{lab.rubric_path}: criteria[{i}].{attr}",
                    f"probe {probe!r} gives no output for split {split!r} (it gives: {', '.join(status.keys)})",
                    f"return {{'{split}': ...}} from probe_{probe}()"))
    return problems


@dataclass
class Validation:
    """What `validate-lab` found; `ok` when the lab may meet a batch."""

    lab: Lab
    results: list[SubmissionResult]  # the reference solution's, then the template's
    self_check: CheckResult
    cell_problems: list[Problem] = field(default_factory=list)
    probe_problems: list[Problem] = field(default_factory=list)
    import_problems: list[Problem] = field(default_factory=list)
    template_problems: list[Problem] = field(default_factory=list)  # modules that do not even compile

    @property
    def wrong_verdicts(self) -> list[SubmissionResult]:
        return [r for r in self.results if validation_verdict(r) != EXPECTED[r.student]]

    @property
    def hidden_only(self) -> list[str]:
        """Criteria the students' self-check cannot measure (hidden probes or tests only)."""
        return [c.id for c in self.self_check.result.criteria if c.details.get("reason") == "hidden-only"]

    @property
    def ok(self) -> bool:
        return (not (self.wrong_verdicts or self.cell_problems or self.probe_problems or self.import_problems
                     or self.template_problems) and self.self_check.passed)


def validate(lab: Lab, root: Path | None, grade: GradeBatch) -> Validation:
    """Validate a loaded lab: grade its reference solution and untouched template with `grade`, and
    self-check the solution against the lab's public view (loaded from `root` too)."""
    if lab.spec.notebook is not None and not lab.solution_path.is_file():
        raise UserError(f"{lab.solution_path} does not exist", "the reference solution is needed to validate a lab")
    cells = cell_problems(lab)
    imports = import_problems(lab)
    templates = [Problem(path, why, "a student gets a template that does not import") for path, why
                 in template_problems(lab)]
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as tmp:
        files = IntakeSpec.of(lab.spec)
        reference = write_reference_submission(lab, Path(tmp) / "reference")
        subs = [take_folder("reference-solution", reference, files),
                take_folder("student-template", write_template_submission(lab, Path(tmp) / "template"), files)]
        if lab.spec.notebook is not None and lab.spec.files.student:
            alone = write_reference_submission(lab, Path(tmp) / "module-templates", modules="template")
            subs.append(take_folder("module-templates", alone, files))
        results = grade(lab, subs, Store(Path(tmp) / "grades.db"))
        # What students will see: the solution must pass the self-check too (public probes, tests, stand-ins).
        mine = reference / lab.spec.notebook if lab.spec.notebook is not None else reference
        self_checked = check(load_lab(lab.name, root, public_only=True), mine)
    return Validation(lab=lab, results=results, self_check=self_checked, cell_problems=cells,
                      probe_problems=probe_problems(lab, results[0]), import_problems=imports,
                      template_problems=templates)


def validation_verdict(result: SubmissionResult) -> str:
    """The verdict, except that the solution's reflection is not held against it for matching itself
    (the rubric's reference_similarity check compares answers with exactly that text), nor what the cohort
    pass found alike among validation's own submissions: they are made from the solution on purpose
    (`module-templates` is its notebook with the module templates), so their code and text match it."""
    if result.student != "reference-solution":
        return result.verdict
    return decide([c for c in result.criteria if c.details.get("reason") != "reference-copy"
                   and not _alike_in_this_batch(c)])


def _alike_in_this_batch(c: CriterionResult) -> bool:
    """A criterion that passed alone and waits for review only because the cohort pass found its match."""
    return c.status == "review" and bool(c.details.get("similar_to")) and c.details.get("own_status") == "pass"
