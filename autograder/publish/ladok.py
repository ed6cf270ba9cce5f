"""What a course coordinator reports to Ladok: one row a student (Ladok id, course, module, grade,
examination date), written as a list and shown as a dry run; sent only on request, through the
`ladok3` package (the `ladok` extra), which is imported only then.

The list's first five columns are what `ladok report` (ladok3's own command) reads from standard
input, so `tail -n +2 ladok.csv | cut -d, -f1-5 | ladok report -d, -f` sends the same list by hand.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from autograder.errors import UserError

HEADER = ["course_code", "module_code", "ladok_id", "grade", "examination_date", "student", "name"]


class LadokRow(BaseModel):
    student: str
    name: str = ""
    ladok_id: str
    course: str
    module: str
    grade: str  # the code in the module's Ladok grade scale: G/U, or P/F
    exam_date: date


class LadokAction(BaseModel):
    """What happens (or would happen) to one row in Ladok."""

    row: LadokRow
    action: Literal["report", "unchanged", "conflict", "reported", "failed"]
    detail: str = ""
    draft: bool = False  # Ladok already holds this grade as a draft: --finalize may still mark it ready


def to_csv(rows: list[LadokRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for r in rows:
        writer.writerow([r.course, r.module, r.ladok_id, r.grade, r.exam_date.isoformat(), r.student, r.name])
    return buf.getvalue()


def plan(rows: list[LadokRow], session: Any = None) -> list[LadokAction]:
    """The dry run. Without a session every row is `report`; with one (a ladok3.LadokSession, read
    only) a result already in Ladok is `unchanged` when it agrees and `conflict` when it does not."""
    return [_plan_one(r, session) for r in rows] if session is not None else [
        LadokAction(row=r, action="report") for r in rows]


def send(rows: list[LadokRow], session: Any, finalize: bool = False, graders: Iterable[str] = ()) -> list[LadokAction]:
    """Report every row that `plan` calls `report`: set the grade and date, and with `finalize` mark
    it ready for the examiner to attest (klarmarkera). One row's failure does not stop the others."""
    done = []
    for action in plan(rows, session):
        if not (action.action == "report" or finalize and action.draft):
            done.append(action)
            continue
        try:
            result = _component(session, action.row)
            if action.action == "report":
                result.set_grade(action.row.grade, action.row.exam_date)
            if finalize:
                result.finalize(list(graders))
        except Exception as exc:  # ladok3 raises its own errors, requests' and plain ones
            done.append(action.model_copy(update={"action": "failed", "detail": _one_line(exc)}))
        else:
            done.append(action.model_copy(update={
                "action": "reported", "detail": "finalized" if finalize else "draft (not finalized)"}))
    return done


def _plan_one(row: LadokRow, session: Any) -> LadokAction:
    try:
        result = _component(session, row)
    except Exception as exc:
        return LadokAction(row=row, action="failed", detail=_one_line(exc))
    current = None if result.grade is None else str(result.grade)
    current_date = getattr(result, "date", None)
    locked = result.attested or result.finalized
    changed = current != row.grade or str(current_date) != row.exam_date.isoformat()
    if current is None or (not locked and changed):
        return LadokAction(row=row, action="report",
                           detail="" if current is None else f"replaces the draft {current} ({current_date})")
    if current == row.grade:
        state = "attested" if result.attested else "finalized" if result.finalized else "a draft"
        return LadokAction(row=row, action="unchanged", detail=f"already {current} ({current_date}), {state}",
                           draft=not locked)
    state = "attested" if result.attested else "finalized"
    return LadokAction(row=row, action="conflict",
                       detail=f"Ladok has {current} ({current_date}), {state}; change it in Ladok first")


def _component(session: Any, row: LadokRow) -> Any:
    """The student's result on the module, the way ladok3's own `report` command finds it."""
    student = session.get_student(row.ladok_id)
    courses = student.courses(code=row.course)
    if not courses:
        raise LookupError(f"not registered on {row.course} in Ladok")
    components = courses[0].results(component=row.module)
    if not components:
        raise LookupError(f"{row.course} has no module {row.module} in Ladok")
    return components[0]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def open_session() -> Any:
    """A logged-in ladok3 session from the credentials `ladok login` stored (or LADOK_USER and
    LADOK_PASS); ladok3 is imported only here, so everything else works without it."""
    try:
        from ladok3.cli import get_session
    except ImportError:
        raise UserError("sending to Ladok needs the ladok3 package",
                        "pip install 'autograder[ladok]' (or ladok3), then run `ladok login` once") from None
    try:
        session, _ = get_session()
    except Exception as exc:
        raise UserError(f"could not log in to Ladok: {_one_line(exc)}",
                        "run `ladok login` (or set LADOK_INST, LADOK_USER and LADOK_PASS) and try again") from None
    return session


def describe(actions: list[LadokAction], sent: bool) -> list[str]:
    """Lines for the terminal: each row and what happens to it, then what was (not) sent."""
    if not actions:
        return ["Ladok: nothing to report"]
    first = actions[0].row
    verb = "reported" if sent else "would report"
    lines = [f"Ladok {first.course} {first.module}: {verb} {sum(a.action in ('report', 'reported') for a in actions)}"
             f" of {len(actions)} results"]
    for a in actions:
        r = a.row
        what = {"report": "would report", "reported": "reported", "unchanged": "unchanged", "conflict": "CONFLICT",
                "failed": "FAILED"}[a.action]
        who = f"{r.student}" + (f" ({r.name})" if r.name else "")
        line = f"  {what:12} {r.grade} {r.exam_date.isoformat()}  {who}  [{r.ladok_id}]"
        lines.append(line + (f": {a.detail}" if a.detail else ""))
    if not sent:
        lines.append("nothing was sent to Ladok; pass --send to report these results")
    return lines
