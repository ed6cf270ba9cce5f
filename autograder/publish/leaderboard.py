"""The opt-in leaderboard of a lab (the rubric's `leaderboard:` block): the cohort ranked on one measured criterion.

Built from the store's current results, like every page here, so it can be written again at any time. One row
per student whose result holds a finite value for the criterion; the others are left out and counted by reason.
The value ranked is the one measured: a teacher's decision changes a verdict, not a measurement, and a result
waiting for review is ranked on what was measured. Ties share a rank (1, 2, 2, 4), and the tied rows are
ordered by the name shown, never by student id.

Pseudonymous by default: a student is shown under a readable name ("Teal Heron 3f2a") made from an HMAC-SHA256
of the lab and their id under a random secret kept in the store (`Store.secret`), so it is the same on every
publish, differs between labs, and no one without the store file can compute another student's or reverse
one. Nothing in a pseudonymous board carries a student id: the rows handed to the templates hold the name
only. Each student finds their own row, highlighted, on their own feedback page and nowhere else.
"""

from __future__ import annotations

import hmac
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

from autograder.criteria.metric import AccuracySpec, MetricSpec
from autograder.labs.lab import Lab
from autograder.labs.rubric import LeaderboardSpec, Rubric
from autograder.publish import html
from autograder.results import SubmissionResult
from autograder.store import Store

SECRET = "leaderboard"  # the name of the store's secret that keys the pseudonyms
# 32 of each: a digest byte picks one without bias (256 is a multiple of 32); with the 4 hex digits after
# them, 2^26 names, so two students of a cohort of 300 share one about once in 1,500 cohorts (and then
# both get 4 more digits, see `pseudonyms`).
COLOURS = ("Amber", "Azure", "Beige", "Black", "Bronze", "Coral", "Cream", "Crimson", "Cyan", "Golden", "Green",
           "Grey", "Indigo", "Ivory", "Jade", "Khaki", "Lemon", "Lilac", "Lime", "Maroon", "Mint", "Navy", "Ochre",
           "Olive", "Orange", "Pearl", "Pink", "Plum", "Ruby", "Silver", "Teal", "Violet")
ANIMALS = ("Badger", "Beaver", "Bison", "Crane", "Dolphin", "Eagle", "Falcon", "Ferret", "Finch", "Fox", "Gecko",
           "Hare", "Hedgehog", "Heron", "Ibis", "Jay", "Koala", "Lark", "Lynx", "Marten", "Moose", "Otter", "Owl",
           "Panda", "Puffin", "Raven", "Seal", "Stork", "Swan", "Tapir", "Walrus", "Wren")
MAX_DECIMALS = 8

# Why a student has no row, in words, as the page counts them.
NO_VALUE = "no value measured"
NOT_GRADED = "not graded (a grading error, or checked after a step that failed)"
NOT_A_NUMBER = "a value that is not a finite number"


@dataclass(frozen=True)
class Entry:
    """One ranked student. `student` stays in this module: the templates get `Row`s."""

    student: str
    name: str  # what every board shows: the pseudonym, or the student id with `names: student`
    value: float
    rank: int


@dataclass(frozen=True)
class Row:
    """A row as a page shows it: no student id unless the board names students."""

    rank: int
    name: str
    shown: str  # the value, with as many decimals as tell neighbours apart
    own: bool = False
    after_gap: bool = False  # the student's own row, shown below the top rows with others between


@dataclass
class Board:
    """The ranking of one lab: every ranked student, best first, and who was left out and why."""

    lab: str
    spec: LeaderboardSpec
    title: str
    metric: str  # the metric in words: "accuracy"
    criterion_title: str
    higher_is_better: bool
    entries: list[Entry]
    left_out: dict[str, int]
    decimals: int = 3
    _places: dict[str, int] = field(init=False, repr=False)  # student -> index in entries

    def __post_init__(self) -> None:
        self._places = {e.student: i for i, e in enumerate(self.entries)}

    @property
    def order(self) -> Literal["desc", "asc"]:
        """Gradescope's word for which end is best."""
        return "desc" if self.higher_is_better else "asc"

    @property
    def pseudonymous(self) -> bool:
        return self.spec.names == "pseudonym"

    def entry(self, student: str) -> Entry | None:
        place = self._places.get(student)
        return self.entries[place] if place is not None else None

    def shown(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"

    def rows(self, student: str | None = None) -> list[Row]:
        """The top rows, and the student's own (highlighted) after them where it is not among them."""
        top = self.entries[:self.spec.top]
        place = self._places.get(student) if student is not None else None
        rows = [Row(e.rank, e.name, self.shown(e.value), own=i == place) for i, e in enumerate(top)]
        if place is not None and place >= len(top):
            own = self.entries[place]
            rows.append(Row(own.rank, own.name, self.shown(own.value), own=True, after_gap=place > len(top)))
        return rows

    def left_out_line(self) -> str:
        """'3 students are not ranked: 2 with no value measured, 1 not graded (...)'; '' when none is."""
        n = sum(self.left_out.values())
        if not n:
            return ""
        why = ", ".join(f"{count} with {reason}" if reason != NOT_GRADED else f"{count} {reason}"
                        for reason, count in self.left_out.items())
        return f"{n} student{' is' if n == 1 else 's are'} not ranked: {why}."


def pseudonym(secret: bytes, lab: str, student: str, digits: int = 4) -> str:
    """A readable name for a student on one lab's board, e.g. 'Teal Heron 3f2a'; `digits` hex digits at the end."""
    digest = hmac.new(secret, f"{lab}\0{student}".encode("utf-8", "surrogatepass"), sha256).digest()
    return f"{COLOURS[digest[0] % len(COLOURS)]} {ANIMALS[digest[1] % len(ANIMALS)]} {digest[2:].hex()[:digits]}"


def pseudonyms(secret: bytes, lab: str, students: Iterable[str]) -> dict[str, str]:
    """student -> pseudonym, distinct within the cohort: students who would share one both get 4 more digits
    (so a name only changes in that rare case, and only for the two of them)."""
    students = list(dict.fromkeys(students))
    names = {s: pseudonym(secret, lab, s) for s in students}
    counts = Counter(names.values())
    return {s: pseudonym(secret, lab, s, digits=8) if counts[n] > 1 else n for s, n in names.items()}


def ranked_spec(rubric: Rubric) -> MetricSpec | AccuracySpec | None:
    """The criterion the rubric's leaderboard ranks, or None when the lab has no leaderboard."""
    if rubric.leaderboard is None:
        return None
    spec = next(c for c in rubric.criteria if c.id == rubric.leaderboard.criterion)  # checked at load
    assert isinstance(spec, MetricSpec | AccuracySpec)
    return spec


def _value(result: SubmissionResult, criterion: str) -> float | str:
    """The finite value of the criterion in a result, or why it has none (a reason of the page's)."""
    found = next((c for c in result.criteria if c.id == criterion), None)
    if found is None or found.value is None:
        return NO_VALUE
    if found.status in ("error", "skipped"):
        return NOT_GRADED
    value = found.value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return NOT_A_NUMBER
    return float(value)


def build(lab: str, rubric: Rubric, results: Iterable[SubmissionResult], secret: bytes) -> Board | None:
    """The lab's board from its students' current results; None when the rubric has no leaderboard."""
    spec = ranked_spec(rubric)
    board = rubric.leaderboard
    if spec is None or board is None:
        return None
    higher = spec.measured().higher_is_better
    values: dict[str, float] = {}
    left_out: Counter[str] = Counter()
    for r in results:
        value = _value(r, spec.id)
        if isinstance(value, str):
            left_out[value] += 1
        else:
            values[r.student] = value
    names = pseudonyms(secret, lab, values) if board.names == "pseudonym" else {s: s for s in values}
    # Best first; ties by the name shown (never by id, which a pseudonymous order would give away).
    order = sorted(values, key=lambda s: (-values[s] if higher else values[s], names[s]))
    entries: list[Entry] = []
    for i, s in enumerate(order):
        tied = entries and entries[-1].value == values[s]
        entries.append(Entry(s, names[s], values[s], entries[-1].rank if tied else i + 1))
    return Board(lab=lab, spec=board, title=board.title or spec.describe().capitalize(), metric=spec.describe(),
                 criterion_title=spec.title or spec.id, higher_is_better=higher, entries=entries,
                 left_out={reason: left_out[reason] for reason in (NO_VALUE, NOT_GRADED, NOT_A_NUMBER)
                           if left_out[reason]},
                 decimals=_decimals([e.value for e in entries]))


def _decimals(values: list[float]) -> int:
    """Three decimals, as a criterion's message shows a value, or more where three would show two different
    neighbours alike (a board where 0.8125 and 0.8130 both read 0.813 looks wrongly ranked)."""
    for decimals in range(3, MAX_DECIMALS + 1):
        if all(f"{a:.{decimals}f}" != f"{b:.{decimals}f}" for a, b in zip(values, values[1:]) if a != b):
            return decimals
    return MAX_DECIMALS


def of_store(lab: Lab, store: Store) -> Board | None:
    """The lab's board from the store (its secret made on first use); None when the lab has no leaderboard."""
    if lab.rubric.leaderboard is None:
        return None
    return build(lab.name, lab.rubric, store.latest(lab.name), store.secret(SECRET))


# --- pages ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """The leaderboard on one student's feedback page: the rows (theirs highlighted) and a line about them."""

    title: str
    about: str  # what is ranked, best at which end
    you: str  # where the student stands, or why they are not on the board
    rows: list[Row]
    more: str  # how many rows are not shown
    left_out: str


def _about(board: Board) -> str:
    best = "highest" if board.higher_is_better else "lowest"
    return (f"The {board.metric} that criterion \u201c{board.criterion_title}\u201d measured, {best} first; "
            f"ties share a rank.")


def _more(board: Board, rows: list[Row]) -> str:
    hidden = len(board.entries) - len(rows)
    return f"{hidden} more ranked student{'s are' if hidden != 1 else ' is'} not shown." if hidden > 0 else ""


def section(board: Board, student: str) -> Section:
    """The board as `student` sees it on their feedback page: top rows, their own row highlighted."""
    rows = board.rows(student)
    own = board.entry(student)
    if own is None:
        you = (f"You are not on the leaderboard: your result has no measured {board.metric} to rank "
               "(the criteria above say why).")
    else:
        tied = any(e.rank == own.rank and e is not own for e in board.entries[max(0, own.rank - 1):][:2])
        you = (f"You are ranked {own.rank}{' (shared)' if tied else ''} of {len(board.entries)} with "
               f"{board.shown(own.value)}" + (f", as \u201c{own.name}\u201d: a name only you are told is yours."
                                               if board.pseudonymous else "."))
    return Section(board.title, _about(board), you, rows, _more(board, rows), board.left_out_line())


def to_html(board: Board) -> str:
    """The board as a page of its own (templates/leaderboard.html), beside the cohort report: no row
    highlighted; pseudonymous unless the rubric names students."""
    rows = board.rows()
    return html.render("leaderboard.html", title=f"{board.lab}: {board.title}", lab=board.lab, title_text=board.title,
                       about=_about(board), rows=rows, more=_more(board, rows), left_out=board.left_out_line(),
                       pseudonymous=board.pseudonymous, ranked=len(board.entries))


def write_leaderboard(lab: Lab, store: Store, out: Path) -> Path | None:
    """Write the lab's leaderboard page to `out` (atomically) and return it; None when the lab has none."""
    board = of_store(lab, store)
    if board is None:
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")  # a reader never sees half a page
    tmp.write_text(to_html(board), encoding="utf-8")
    tmp.replace(out)
    return out


def markdown_line(part: Section) -> str:
    """The student's place in one line of plain text, for the Markdown feedback (which has no table)."""
    return f"{part.title}: {part.you} The ranking is in the HTML version of this feedback."


# --- Gradescope -------------------------------------------------------------------------------------------------


def gradescope(rubric: Rubric, result: SubmissionResult) -> list[dict[str, Any]] | None:
    """Gradescope's `leaderboard` field for one result ([{"name", "value", "order"}]): Gradescope ranks the
    submissions itself, under the names it shows. None when the lab has no leaderboard or the result no value."""
    spec, board = ranked_spec(rubric), rubric.leaderboard
    if spec is None or board is None:
        return None
    value = _value(result, spec.id)
    if isinstance(value, str):
        return None
    return [{"name": board.title or spec.describe().capitalize(), "value": value,
             "order": "desc" if spec.measured().higher_is_better else "asc"}]
