"""`autograder check LAB PATH`: a student's own run of the grading pipeline, before the deadline.

The same stages and criteria as `autograder grade`, on the local backend (no Docker, no network),
against the lab's public view: hidden splits are measured on their public stand-ins (usually `val`)
and only the public tests run. Every result that grading may measure differently is marked as an
estimate with the reason, and an estimate close to its bar is flagged, so "passes" means "passes
with a margin". The student's files are only read: the run happens in temporary folders, and the
results go to a throwaway store.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from autograder.criteria.analysis import embeddings
from autograder.criteria.base import ThresholdSpec
from autograder.criteria.metric import BorderlineSpec, span
from autograder.errors import UserError
from autograder.grading.intake import IntakeSpec, Submission, discover, take_beside
from autograder.grading.pipeline import Grader, Options
from autograder.labs.environment import Environment
from autograder.labs.lab import Lab
from autograder.labs.rubric import decide
from autograder.results import CriterionResult, SubmissionResult
from autograder.sandbox.local import LocalBackend
from autograder.store import Store

ESTIMATED_KINDS = {"metric", "accuracy", "generalization-gap"}


@dataclass
class CheckResult:
    result: SubmissionResult
    submission: Submission

    @property
    def problems(self) -> list:
        """Criteria that would keep the grade from G, as far as the check can tell."""
        return [c for c in self.result.criteria if c.required and c.status in ("fail", "review", "error")]

    @property
    def close(self) -> list:
        return [c for c in self.result.criteria if c.required and c.close]

    @property
    def passed(self) -> bool:
        run = self.result.execution  # None: a lab without a notebook, nothing ran before the probes
        return not self.problems and (run.status == "ok" if run is not None else self.result.probes is not None)

    @property
    def margin(self) -> bool:
        """Passed, and no estimate within its safe margin of the bar."""
        return self.passed and not self.close


def submission_at(lab: Lab, path: Path) -> Submission:
    """The student's work at PATH: a notebook (with the lab's modules beside it), a folder or a zip; for
    a lab without a notebook, one of the modules (`autograder check lab mlp.py`) or the folder holding them."""
    path = Path(path)
    spec = IntakeSpec.of(lab.spec)
    if lab.spec.notebook is None:
        folder = path.parent if path.is_file() and path.suffix == ".py" else path
        if folder.is_dir() and any((folder / name).is_file() for name in lab.spec.files.student):
            return take_beside(folder.resolve().name, folder, spec)  # the working folder: modules beside by name
    elif path.is_dir() and (path / lab.spec.notebook).is_file():  # the student's working folder, e.g. the kit
        path = path / lab.spec.notebook
    if path.is_file() and path.suffix == ".ipynb" and lab.spec.notebook is not None:
        return take_beside(path.stem, path, spec)
    found = discover(path, spec)
    if len(found) != 1:
        raise UserError(f"{path} holds {len(found)} submissions", "pass one notebook, or one student's folder or zip")
    return found[0]


def check(lab: Lab, path: Path, options: Options | None = None) -> CheckResult:
    """Run the self-check of the submission at `path` against `lab` (its public view)."""
    if not lab.public_only:
        raise ValueError("the self-check runs against the lab's public view (load it with public_only=True)")
    # Missing packages would read as the student's ModuleNotFoundError: say so before anything runs.
    Environment.of(lab.spec.packages).check(sys.executable, where=f"this Python ({sys.executable})")
    sub = submission_at(lab, path)
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        opts = options or Options()
        opts.force = True
        opts.scratch = opts.scratch or Path(tmp)
        store = Store(Path(tmp) / "check.db")
        try:
            result, _ = Grader(lab, store, LocalBackend(), opts).grade(sub)
        finally:
            embeddings.forget(store)  # a closed throwaway store is no place to keep vectors for what runs next
            store.close()
    mark_estimates(lab, result)
    # What only grading can check (a lab whose tests are all hidden) is said, not held against the student.
    result.verdict = decide([c for c in result.criteria if c.details.get("reason") != "hidden-only"])
    return CheckResult(result=result, submission=sub)


def mark_estimates(lab: Lab, result: SubmissionResult) -> None:
    """Say, per criterion, why grading may decide differently, and flag estimates near their bar."""
    specs = {c.id: c for c in lab.rubric.criteria}
    for c in result.criteria:
        spec = specs.get(c.id)
        if spec is None:
            continue
        splits = [r.name for r in spec.references() if r.kind == "split"]
        hidden = [s for s in splits if lab.spec.splits.get(s) == "hidden"]
        if c.kind in ESTIMATED_KINDS and hidden:
            c.estimate = "; ".join(f"measured on {lab.stand_in(s)} in place of the hidden {s} set" for s in hidden)
        elif c.kind == "hidden-tests":
            c.estimate = "only the public tests ran here; grading also runs hidden tests"
        elif c.kind == "runtime":
            c.estimate = "timed on this computer; the grading machine may be faster or slower"
        elif c.kind == "reflection":
            parts = ["not compared with other students' answers or the model answer (grading does)"]
            if not embeddings.available():
                parts.append(f"themes found by keywords only ({embeddings.reason()}); grading also matches by "
                             "meaning: install the `semantic` extra for the same judgement")
            c.estimate = "; ".join(parts)
        if (c.kind in ESTIMATED_KINDS | {"runtime"} and c.estimate and isinstance(spec, ThresholdSpec)
                and _number(c.value) and _number(c.threshold)):
            c.close = abs(float(c.value) - float(c.threshold)) < spec.safe_margin(float(c.threshold))
        if (c.kind in ESTIMATED_KINDS and c.estimate and c.details.get("borderline")
                and isinstance(spec, BorderlineSpec)):
            c.close = True
            c.estimate += "; " + borderline_estimate(c, spec)


def borderline_estimate(c: CriterionResult, spec: BorderlineSpec) -> str:
    """What the self-check says of an estimate whose uncertainty holds its bar, and what grading will do
    should the hidden value fall short too."""
    bar = float(c.threshold) if _number(c.threshold) else 0.0
    interval = c.details.get("interval")
    if interval is not None and interval[0] <= bar <= interval[1]:
        why = f"its 95% interval {span(interval, bar)} holds the bar {bar:g}"
    else:
        why = f"it is within the rubric's borderline margin ({spec.borderline.margin:g}) of the bar {bar:g}"
    side = "misses the bar too" if c.status != "pass" else "misses the bar"
    return f"borderline, {why}: if grading's value {side}, {spec.borderline.describe()}"


def _number(x: object) -> TypeGuard[int | float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
