"""The course's lab module: which labs it needs (`course.yaml`), who is on the roll (the roster CSV),
and each student's module grade. The grade is G only when every required lab is G; everyone else
gets what is still missing, so a coordinator can answer a student without opening three tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field
from rich.table import Table
from rich.text import Text

from autograder.console import STYLE, clean, reasons
from autograder.errors import UserError
from autograder.labs.course import (  # the models live below the pipeline, which reads them at intake
    DEFAULT_COURSE,
    ROSTER_ALIASES,
    CourseLab,
    CourseSpec,
    LadokGrades,
    Roster,
    RosterEntry,
    load_course,
    load_roster,
)
from autograder.results import SubmissionResult, Verdict
from autograder.store import Store

__all__ = ["DEFAULT_COURSE", "ROSTER_ALIASES", "CourseLab", "CourseSpec", "LabStanding", "LadokGrades",
           "ModuleGrade", "Roster", "RosterEntry", "course_results", "earned_at", "load_course", "load_roster",
           "module_grade", "require_lab", "results_table", "summary"]


def earned_at(result: SubmissionResult) -> datetime:
    """When the work that earned a result was handed in; for a result recorded without a hand-in time,
    when it was graded. The examination date comes from it, so a regrade (--force) does not move it."""
    return result.handed_in or result.graded_at


class LabStanding(BaseModel):
    lab: str
    required: bool
    verdict: Verdict | None = Field(None, description="None: no result for this lab.")
    reasons: list[str] = Field(default_factory=list, description="Criteria that keep the lab from G.")
    graded_at: datetime | None = None
    handed_in: datetime | None = Field(None, description="When the work that earned the result was handed in.")


class ModuleGrade(BaseModel):
    """One student's lab module grade. `pending`: only a teacher's review or a grading error stands
    between the student and G, so it may still become G; U: a required lab is U or not handed in."""

    student: str
    name: str = ""
    grade: Literal["G", "U", "pending"]
    complete: bool = Field(description="Every required lab has a final verdict (G or U).")
    labs: list[LabStanding]
    missing: list[str] = Field(default_factory=list, description="What keeps the student from G, one line a lab.")
    exam_date: date | None = Field(None, description="Examination date: set for G, and for U when complete.")
    in_roster: bool = True


def course_results(course: CourseSpec, store: Store, roster: Roster | None = None,
                   on: date | None = None) -> list[ModuleGrade]:
    """Every student on the roster or with a result in one of the course's labs, by student.
    `roster` defaults to the course's; `on` fixes the examination date (else the course's rule)."""
    if roster is None and course.roster_path is not None:
        roster = load_roster(course.roster_path)
    results: dict[str, dict[str, SubmissionResult]] = {}
    for entry in course.labs:
        for r in store.latest(entry.lab):
            results.setdefault(r.student, {})[entry.lab] = r
    students = sorted(set(results) | set(roster.students if roster else ()))
    return [module_grade(course, s, results.get(s, {}), roster, on) for s in students]


def module_grade(course: CourseSpec, student: str, by_lab: dict[str, SubmissionResult],
                 roster: Roster | None = None, on: date | None = None) -> ModuleGrade:
    standings, missing = [], []
    for entry in course.labs:
        r = by_lab.get(entry.lab)
        standing = LabStanding(lab=entry.lab, required=entry.required, verdict=r.verdict if r else None,
                               reasons=reasons(r) if r and r.verdict != "G" else [],
                               graded_at=r.graded_at if r else None, handed_in=r.handed_in if r else None)
        standings.append(standing)
        if entry.required and standing.verdict != "G":
            missing.append(_missing_line(standing))
    required = [s for s in standings if s.required]
    verdicts = {s.verdict for s in required}
    grade: Literal["G", "U", "pending"]
    if verdicts == {"G"}:
        grade = "G"
    elif verdicts <= {"G", "review", "error"}:
        grade = "pending"
    else:
        grade = "U"
    complete = verdicts <= {"G", "U"}
    when = None
    if complete:
        if on is not None:
            when = on
        elif isinstance(course.examination_date, date):
            when = course.examination_date
        else:
            when = course.local_date(max(s.handed_in or s.graded_at for s in required if s.graded_at is not None))
    person = roster.get(student) if roster else None
    return ModuleGrade(student=student, name=person.name if person else "", grade=grade, complete=complete,
                       labs=standings, missing=missing, exam_date=when, in_roster=roster is None or person is not None)


def _missing_line(s: LabStanding) -> str:
    if s.verdict is None:
        return f"{s.lab}: not handed in"
    if s.verdict == "U":
        return f"{s.lab}: U ({', '.join(s.reasons) or 'see its feedback'})"
    if s.verdict == "review":
        return f"{s.lab}: waiting for a teacher's review ({', '.join(s.reasons) or 'see the review queue'})"
    return f"{s.lab}: the grader could not grade it (error); a teacher will look at it"


def results_table(course: CourseSpec, grades: list[ModuleGrade], missing: bool = True) -> Table:
    """What `autograder course results` prints: one row a student, a column a lab, then what is missing
    (`missing=False` leaves that column out, for a terminal too narrow to hold it: see `missing_lines`)."""
    heads = lab_headings([entry.lab for entry in course.labs])
    optional = [f"{heads[e.lab]} = {e.lab}" if heads[e.lab] != e.lab else e.lab for e in course.labs if not e.required]
    legend = [f"{heads[e.lab]} = {e.lab}" for e in course.labs if e.required and heads[e.lab] != e.lab]
    caption = "; ".join(legend + ([f"optional: {', '.join(optional)}"] if optional else []))
    t = Table(title=f"{course.code}{f' ({course.name})' if course.name else ''}", title_justify="left",
              caption=caption or None, caption_justify="left")
    t.add_column("Student", no_wrap=True)
    t.add_column("Name", min_width=8)
    t.add_column("Module", no_wrap=True)
    for entry in course.labs:  # short headings: a course of four labs still fits a terminal
        t.add_column(heads[entry.lab] + ("" if entry.required else "*"), no_wrap=True)
    t.add_column("Date", no_wrap=True)
    if missing:
        t.add_column("Missing", max_width=70, overflow="fold")
    for g in grades:
        cells = [Text(s.verdict or "-", style=STYLE.get(s.verdict or "", "dim")) for s in g.labs]
        name = clean(g.name) if g.in_roster else Text("not in the roster", style="bold yellow")
        t.add_row(clean(g.student), name, Text(g.grade, style=STYLE.get(g.grade, "bold yellow")), *cells,
                  str(g.exam_date or ""), *(["; ".join(g.missing)] if missing else []))
    return t


def missing_lines(grades: list[ModuleGrade]) -> list[Text]:
    """What keeps each student from G, a line a lab, under the table where the table has no room for it."""
    lines = []
    for g in grades:
        if g.missing:
            lines.append(clean(g.student).append(":"))
            lines += [Text("  ").append_text(clean(line)) for line in g.missing]
    return lines


def lab_headings(labs: list[str]) -> dict[str, str]:
    """lab -> its column heading: the name up to its first hyphen ('lab1' for lab1-mlp) where that is
    unique among the course's labs, else the whole name."""
    short = {lab: lab.split("-", 1)[0] for lab in labs}
    counts = {h: list(short.values()).count(h) for h in short.values()}
    return {lab: head if counts[head] == 1 else lab for lab, head in short.items()}


def summary(grades: list[ModuleGrade]) -> str:
    counts = {k: sum(g.grade == k for g in grades) for k in ("G", "U", "pending")}
    return f"{len(grades)} students: " + ", ".join(f"{k}: {n}" for k, n in counts.items() if n)


def require_lab(course: CourseSpec, lab: str) -> CourseLab:
    entry = course.lab(lab)
    if entry is None:
        raise UserError(f"lab {lab!r} is not one of the course's labs",
                        f"course.yaml lists: {', '.join(e.lab for e in course.labs)}")
    return entry
