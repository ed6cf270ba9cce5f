"""Restore what the student was handed, as nbgrader's autograde does, before the notebook runs.

Everything is judged against the released notebook in assignments/<lab>/ (trusted), never against
what a submission says of itself (its checksums, its order, its metadata).

Content. Locked cells (setup, public tests, prompts) that a student edited get the released source
back, judged by nbgrader's own checksum against the release. A graded or locked cell the student
deleted is not guessed back into place (nbgrader's default too); it is reported. Provided modules
are always taken from the release, whatever the student handed in under their names.

Identity. A released cell is found in the submission by its nbgrader grade_id. When several cells
carry the grade_id of a locked cell, the one that is unchanged (checksum) is it, else the one most
like the released source (the first on a tie); the others are forged: they claim an identity that
is not theirs. Two cells with the grade_id of a student's answer cell: the first one is it.

Position. "Where it was handed out" is a locked cell's place among the released cells, not an
index, since students may add any number of cells of their own anywhere. The released cells found
in the submission should appear in the release's order. The largest set of them that does (a longest
increasing subsequence by released index; on a tie the student's answer cells are kept and locked
cells moved, as restoring moves locked cells only) stays where it is, and so do all of the student's
own cells, in their order. Each locked cell outside that set is moved back to just after the nearest
released cell that precedes it in the handout and stayed (the top of the notebook when none did),
so it again runs after the released cell it followed and before the one that followed it; locked
cells moved behind the same cell keep the release's order. A student's answer cell the student moved
is theirs to move: it stays, and is no anchor for the others. A notebook whose released cells are in
order is left as it is, whatever cells were added between them.

Copies. A code cell of the student's own (no grade_id of a released cell, or a second holder of
one) is a stripped copy of a locked code cell when difflib's ratio between their tokens (words and
punctuation; whitespace, blank lines and layout ignored) is at least COPY_THRESHOLD, 0.8: an exact
copy (1.0), or one with a line or a few changed. Measured on lab 1: one line of `setup` changed
0.99, of `report` 0.92, `seed = 7` in `parameters` 0.96, a comment added to every line of `setup`
0.92; the closest honest cell of any sample submission or solution to any locked cell: 0.31. A copy
with most of the cell cut away (all the asserts of a test deleted: 0.78) or buried in a long cell
of the student's own is not found; the locked cell still runs in its place, and the copy is then
no more than any cell a student may add. Only locked code cells of at least MIN_COPY_TOKENS tokens
are looked for (a copy of `plt.show()` says nothing), and markdown, which does not run, is not.
The full ratio is computed at most MAX_EXACT_COMPARISONS times a notebook (a hostile one could hold
thousands of near-anagrams of a long test cell); past that, difflib's cheap upper bound decides.

What happens to them. Copies and forged holders are impostors: reported, and neutralised: the
source replaced by a comment saying why, outputs, nbgrader metadata and tags dropped, so that the
code does not run and no criterion takes the cell for the one it copies. The emptied cell stays,
so the cells after it keep their numbers. When a locked code cell is gone but a stripped copy of it
is there (its lock stripped in place, say), the closest copy stands in for it: it gets the released
source and is placed like the cell itself; it is reported, not counted as deleted.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import asdict, dataclass, field

import nbformat

from autograder.notebooks import nbgrader_checksum

COPY_THRESHOLD = 0.8  # difflib ratio of the cells' tokens at or above which a cell is a copy
MIN_COPY_TOKENS = 12  # locked code cells shorter than this are not looked for in copies
MAX_EXACT_COMPARISONS = 50  # full ratios per notebook; past them, the cheap upper bound decides
TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass
class Impostor:
    """A cell that looks like a locked cell without being it."""

    grade_id: str  # the locked cell it copies
    cell: int  # 1-based position in the notebook as handed in
    similarity: float  # difflib ratio of the tokens (its upper bound past the budget); 1.0 for an exact copy
    forged: bool = False  # it carries the locked cell's grade_id, which another cell holds
    stands_in: bool = False  # the locked cell itself was gone: this copy got the released source instead

    def asdict(self) -> dict:
        return asdict(self)


@dataclass
class Restoration:
    notebook: nbformat.NotebookNode
    edited: list[str] = field(default_factory=list)  # grade_ids restored from the release
    deleted: list[str] = field(default_factory=list)  # grade_ids of graded or locked cells no longer there
    moved: list[str] = field(default_factory=list)  # grade_ids of locked cells put back in their released place
    impostors: list[Impostor] = field(default_factory=list)  # copies and forged holders of locked cells


def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _grade_id(cell) -> str | None:
    grade_id = _meta(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


def watched(released: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """grade_id -> released cell, for every cell that is locked or graded."""
    out: dict[str, nbformat.NotebookNode] = {}
    for cell in released.cells:
        meta = _meta(cell)
        if meta.get("grade_id") and (meta.get("locked") or meta.get("grade")):
            out.setdefault(meta["grade_id"], cell)
    return out


def _checksum(cell) -> str:
    try:
        return nbgrader_checksum(cell)
    except (KeyError, TypeError, ValueError, AttributeError):  # metadata mangled: it no longer matches
        return ""


def tokens(source) -> list[str]:
    """A cell's source as compared for copies: its words and punctuation, whitespace and layout ignored."""
    if not isinstance(source, str):
        source = "".join(source) if isinstance(source, list) else ""
    return TOKEN.findall(source)


def similarity(a: list[str], b: list[str] | difflib.SequenceMatcher, floor: float = 0.0, exact: bool = True) -> float:
    """difflib's ratio of two token lists; 0.0 when it is surely below `floor` (cheap bounds first), and
    the cheap upper bound itself when not `exact`. `b` may be a matcher already holding the second
    list, which saves indexing it again for every cell."""
    if isinstance(b, difflib.SequenceMatcher):
        matcher = b
        matcher.set_seq1(a)
    else:
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if a == matcher.b:  # type: ignore[attr-defined]  # the second sequence; typeshed does not declare it
        return 1.0
    if matcher.real_quick_ratio() < floor:
        return 0.0
    bound = matcher.quick_ratio()
    if bound < floor or not exact:
        return bound if bound >= floor else 0.0
    return matcher.ratio()


def _matcher(template: list[str]) -> difflib.SequenceMatcher:
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(template)
    return matcher


def _unchanged(cell, source) -> bool:
    return _checksum(cell) == _meta(source).get("checksum") and cell.get("cell_type") == source.cell_type


def _chain(ranks: list[int], locked: list[bool]) -> set[int]:
    """Positions of the longest subsequence of `ranks` that increases; on a tie, the one with the most
    unlocked cells (the student's answers stay, locked cells move)."""
    n = len(ranks)
    weight = [n + 1 + (0 if lock else 1) for lock in locked]  # length first, unlocked cells second
    best, prev = list(weight), [-1] * n
    for i in range(n):
        for k in range(i):
            if ranks[k] < ranks[i] and best[k] + weight[i] > best[i]:
                best[i], prev[i] = best[k] + weight[i], k
    if not n:
        return set()
    i, kept = max(range(n), key=lambda j: (best[j], -j)), set()
    while i >= 0:
        kept.add(i)
        i = prev[i]
    return kept


def _fresh(source, cell):
    """The released cell, as it will run, keeping the id of the cell it replaces."""
    fresh = copy.deepcopy(source)
    if fresh.cell_type == "code":
        fresh.outputs, fresh.execution_count = [], None
    if cell.get("id"):
        fresh["id"] = cell["id"]
    return fresh


def _neutralised(cell, impostor: Impostor):
    """The cell emptied: a note instead of its source, no nbgrader metadata or tags, no outputs."""
    out = copy.deepcopy(cell)
    what = "holds the id of" if impostor.forged else "is a copy of"
    note = (f"Not run by the autograder: this cell {what} the locked cell `{impostor.grade_id}` without being "
            "it. Locked cells must stay as handed out.")
    out.source = f"# {note}" if out.get("cell_type") == "code" else note
    out.metadata = {}
    if out.get("cell_type") == "code":
        out.outputs, out.execution_count = [], None
    out.pop("attachments", None)
    return out


def restore(submitted: nbformat.NotebookNode, released: nbformat.NotebookNode) -> Restoration:
    """A copy of `submitted` with every locked cell as released and where it was released; what was
    edited, deleted, moved or copied (see the module's docstring for the rules)."""
    nb = copy.deepcopy(submitted)
    cells = nb.cells
    result = Restoration(notebook=nb)

    rank: dict[str, int] = {}  # every released cell with a grade_id, by its place in the release
    by_id: dict[str, nbformat.NotebookNode] = {}
    for cell in released.cells:
        grade_id = _grade_id(cell)
        if grade_id and grade_id not in rank:
            rank[grade_id], by_id[grade_id] = len(rank), cell
    locked = {g for g, c in by_id.items() if _meta(c).get("locked")}
    texts = {g: tokens(by_id[g].source) for g in locked}
    templates = {g: _matcher(t) for g, t in texts.items()
                 if by_id[g].cell_type == "code" and len(t) >= MIN_COPY_TOKENS}

    # Identity: which submitted cell is which released cell; forged holders of locked ids.
    holders: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        grade_id = _grade_id(cell)
        if grade_id in rank:
            holders.setdefault(grade_id, []).append(index)
    primary: dict[str, int] = {}
    impostors: dict[int, Impostor] = {}
    budget = MAX_EXACT_COMPARISONS  # a hostile notebook of many near-anagrams of a long test: bounded work
    for grade_id, indices in holders.items():
        if grade_id not in locked:
            primary[grade_id] = indices[0]
            continue
        score = {}
        for i in indices:
            score[i] = similarity(tokens(cells[i].get("source", "")), texts[grade_id], exact=budget > 0)
            budget -= len(indices) > 1
        unchanged = [i for i in indices if _unchanged(cells[i], by_id[grade_id])]
        primary[grade_id] = unchanged[0] if unchanged else max(indices, key=lambda i: (score[i], -i))
        for i in indices:
            if i != primary[grade_id]:
                impostors[i] = Impostor(grade_id, i + 1, round(score[i], 3), forged=True)

    # Copies: the student's own code cells that look like a locked code cell.
    taken = set(primary.values()) | set(impostors)
    for index, cell in enumerate(cells):
        if index in taken or cell.get("cell_type") != "code":
            continue
        text = tokens(cell.get("source", ""))
        if not text:
            continue
        scores = {}
        for g, t in templates.items():
            scores[g] = similarity(text, t, COPY_THRESHOLD, exact=budget > 0)
            budget -= bool(scores[g])
        best = max(scores, key=lambda g: (scores[g], -rank[g]), default=None)
        if best is not None and scores[best] >= COPY_THRESHOLD:
            impostors[index] = Impostor(best, index + 1, round(scores[best], 3))
    # A lost locked cell: its closest copy stands in.
    for grade_id in sorted(locked - set(primary), key=rank.__getitem__):
        copies = [i for i, imp in impostors.items() if imp.grade_id == grade_id and not imp.forged]
        if copies:
            index = max(copies, key=lambda i: (impostors[i].similarity, -i))
            primary[grade_id], impostors[index].stands_in = index, True

    # Position: released cells out of the release's order; the locked ones among them move back.
    placed = sorted(primary, key=primary.__getitem__)
    kept = _chain([rank[g] for g in placed], [g in locked for g in placed])
    stay = [g for k, g in enumerate(placed) if k in kept]
    result.moved = sorted((g for k, g in enumerate(placed) if k not in kept and g in locked), key=rank.__getitem__)
    behind: dict[int | None, list[str]] = {}
    for grade_id in result.moved:
        before = [g for g in stay if rank[g] < rank[grade_id]]
        behind.setdefault(primary[before[-1]] if before else None, []).append(grade_id)
    moving = {primary[g] for g in result.moved}
    order = [primary[g] for g in behind.get(None, [])]
    for index in range(len(cells)):
        if index not in moving:
            order.append(index)
            order.extend(primary[g] for g in behind.get(index, []))

    # Content: locked cells as released, impostors emptied.
    owner = {i: g for g, i in primary.items()}
    out = []
    for index in order:
        cell, grade_id = cells[index], owner.get(index)
        if index in impostors and not impostors[index].stands_in:
            out.append(_neutralised(cell, impostors[index]))
        elif grade_id in locked and (index in impostors or not _unchanged(cell, by_id[grade_id])):
            out.append(_fresh(by_id[grade_id], cell))
            if index not in impostors:
                result.edited.append(grade_id)
        else:
            out.append(cell)
    nb.cells = out
    result.edited.sort(key=primary.__getitem__)  # in the order the student's notebook has them
    result.impostors = sorted(impostors.values(), key=lambda imp: imp.cell)
    result.deleted = [g for g in watched(released) if g not in primary]
    return result
