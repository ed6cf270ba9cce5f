"""The student's code is their own: not a copy of another student's, with names, order or comments changed.

Judged in two steps. Here, alone, the criterion gathers the student's own code (the notebook's code
cells that are not the handout's, and the student's modules; see analysis/code.py for how code is
read and compared) and passes, saying the cohort comparison follows, or that there is too little code
of their own to compare. The cohort pass after each batch (grading/cohort.py) fingerprints everyone's
code, with the handout's removed, and sends a pair whose shared fingerprints reach the rubric's `bar`
to `review`, recording both passages for the TA; the student's message names no one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from autograder.criteria import register
from autograder.criteria.analysis import code
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing
from autograder.notebooks import load_notebook
from autograder.results import CriterionResult

if TYPE_CHECKING:
    from autograder.labs.lab import Lab

KIND = "code-originality"


class CodeOriginalitySpec(CriterionSpec):
    kind: Literal["code-originality"]
    bar: float = Field(
        0.6, gt=0, le=1, description="Share of the smaller program's fingerprints found in another student's at "
        "which the pair goes to review (0..1). Measured with the default k and window: disguised copies 0.78 and "
        "up, independent solutions at most 0.41 (docs/analysis.md).")
    k: int = Field(10, ge=3, le=100, description="Tokens in a fingerprinted run: shorter finds shorter shared "
                   "runs, and more common idioms.")
    window: int = Field(6, ge=1, le=100, description="Winnowing window: every run of k + window - 1 tokens that two "
                        "programs share is found; larger keeps fewer fingerprints.")
    min_tokens: int = Field(
        50, ge=1, description="Tokens of the student's own code (beyond the handout) needed to compare it; less "
        "says nothing about copying and passes, saying so.")


@lru_cache(maxsize=16)
def _handout(files: tuple[tuple[str, int, int], ...], notebook: str | None, k: int) -> tuple[tuple[str, ...],
                                                                                             frozenset[int]]:
    """(the released notebook's code cells, every k-run of the handed-out code), once per version of the files."""
    cells: list[str] = []
    if notebook is not None:
        nb = load_notebook(Path(notebook))
        cells = [c.source for c in nb.cells if c.get("cell_type") == "code"] if nb is not None else []
    sources = list(cells)
    for path, _, _ in files:
        if path != notebook:
            try:
                sources.append(Path(path).read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
    return tuple(cells), frozenset(code.template_hashes(sources, k))


def handout(lab: Lab, k: int) -> tuple[tuple[str, ...], frozenset[int]]:
    """What the lab hands out, as the comparison removes it: the notebook's code cells (a student's cell
    equal to one is not theirs) and the k-runs of every released cell and module (the modules students
    fill in, as handed out, and the provided ones)."""
    notebook = lab.notebook_path
    names = [*lab.spec.files.student, *lab.spec.files.provided]
    paths = ([notebook] if notebook is not None else []) + [lab.template_path(n) for n in names]
    stamps = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        stamps.append((str(path), st.st_mtime_ns, st.st_size))
    return _handout(tuple(stamps), str(notebook) if notebook is not None and notebook.is_file() else None, k)


def own_prints(spec: CodeOriginalitySpec, document: str, lab: Lab) -> code.Fingerprints:
    """A student's fingerprints as the cohort compares them, the handout's removed."""
    return code.fingerprint(document, spec.k, spec.window, handout(lab, spec.k)[1])


@register
class CodeOriginality(Criterion):
    kind = KIND
    Spec = CodeOriginalitySpec
    spec: CodeOriginalitySpec

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s, lab = self.spec, evidence.lab
        if evidence.submitted is None and lab.spec.notebook is not None:
            raise EvidenceMissing("the notebook could not be read", student=True)
        cells, _ = handout(lab, s.k)
        document, cut = code.student_code(evidence.submitted, evidence.modules, list(cells))
        prints = own_prints(s, document, lab)
        details: dict[str, Any] = {
            "code": document, "code_cut": cut, "code_cap": code.CODE_CAP, "own_tokens": prints.own_tokens,
            "fingerprints": len(prints.at), "bar": s.bar, "k": s.k, "window": s.window, "min_tokens": s.min_tokens,
        }
        if prints.own_tokens < s.min_tokens:
            message = (f"Too little code of your own to compare with other students' ({prints.own_tokens} tokens "
                       f"beyond the handed-out code; {s.min_tokens} are compared).")
            return self.result("pass", message, prints.own_tokens, s.min_tokens, own_status="pass",
                               own_message=message, compared=False, **details)
        message = (f"Your code ({prints.own_lines} lines beyond the handed-out code) is compared with the other "
                   "students' once the cohort is graded.")
        return self.result("pass", message, prints.own_tokens, s.min_tokens, own_status="pass", own_message=message,
                           compared=True, **details)
