"""The course's lab module: which labs it needs (`course.yaml`), who is on the roll (the roster CSV),
and each student's module grade. The grade is G only when every required lab is G; everyone else
gets what is still missing, so a coordinator can answer a student without opening three tables."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from rich.table import Table
from rich.text import Text

from autograder.console import STYLE, clean, reasons
from autograder.errors import ConfigError, UserError
from autograder.labs.loading import field_path, load_model
from autograder.labs.spec import Slug
from autograder.results import SubmissionResult, Verdict
from autograder.store import Store

DEFAULT_COURSE = "course.yaml"


class CourseLab(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lab: Slug = Field(description="A lab of the course folder (assignments/<lab>).")
    required: bool = Field(True, description="Needed for the module grade; optional labs are shown, never required.")
    canvas_assignment: str | None = Field(
        None, description="This lab's Canvas gradebook column as Canvas's own export names it, e.g. 'Lab 1 (12345)'; "
        "the number in brackets is the assignment id.")
    module: str | None = Field(
        None, description="The lab's own Ladok module code, for courses that report each lab on its own.")


class LadokGrades(BaseModel):
    """The codes of the module's grade scale in Ladok: G and U, or P and F on an English scale."""

    model_config = ConfigDict(extra="forbid")

    G: str = Field("G", min_length=1)
    U: str = Field("U", min_length=1)


class CourseSpec(BaseModel):
    """`course.yaml`: the lab module as the university's systems know it."""

    model_config = ConfigDict(extra="forbid")

    course: str = Field(min_length=1, description="The course code in Ladok, e.g. DT9000.")
    module: str = Field(min_length=1, description="The code of the lab module in Ladok, e.g. LAB1.")
    name: str = ""
    labs: list[CourseLab] = Field(min_length=1)
    roster: Path | None = Field(
        None, description="The roster CSV (student, name, canvas_id, sis_user_id, sis_login_id, section, ladok_id), "
        "relative to this file.")
    canvas_assignment: str | None = Field(
        None, description="The Canvas gradebook column of the module grade, e.g. 'Lab module (12399)'.")
    examination_date: Literal["last-result"] | date = Field(
        "last-result", description="The date reported to Ladok: `last-result` (the day the last required lab got its "
        "current result) or a fixed date such as 2025-01-17. --date overrides it.")
    timezone: str = Field("Europe/Stockholm", description="Where a result's time becomes a date.")
    ladok_grades: LadokGrades = Field(default_factory=LadokGrades)
    _folder: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("labs")
    @classmethod
    def _unique_labs(cls, labs: list[CourseLab]) -> list[CourseLab]:
        seen: set[str] = set()
        for entry in labs:
            if entry.lab in seen:
                raise ValueError(f"lab {entry.lab!r} is listed twice")
            seen.add(entry.lab)
        if not any(entry.required for entry in labs):
            raise ValueError("no lab is required: a module grade needs at least one required lab")
        return labs

    @field_validator("examination_date", mode="before")
    @classmethod
    def _date_rule(cls, value: object) -> object:
        if value == "last-result" or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is neither `last-result` nor a date such as 2025-01-17") from None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}; write an IANA name such as Europe/Stockholm") from None
        return zone

    @property
    def code(self) -> str:
        """'DT9000 / LAB1', as a coordinator says it."""
        return f"{self.course} / {self.module}"

    @property
    def roster_path(self) -> Path | None:
        return None if self.roster is None else self._folder / self.roster

    def lab(self, name: str) -> CourseLab | None:
        return next((entry for entry in self.labs if entry.lab == name), None)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(ZoneInfo(self.timezone)).date()


def load_course(path: Path | None = None, root: Path | None = None) -> CourseSpec:
    """course.yaml (default: in the course folder); where that folder has assignments/, every lab it
    names must exist there, so a misspelt lab fails here rather than marking everyone as missing it."""
    if path is None:
        from autograder.labs.lab import find_root

        path = find_root(root) / DEFAULT_COURSE
    spec = load_model(path, CourseSpec)
    spec._folder = path.resolve().parent
    labs_dir = (root or spec._folder) / "assignments"
    if labs_dir.is_dir():
        known = sorted(p.name for p in labs_dir.iterdir() if (p / "lab.yaml").is_file())
        for i, entry in enumerate(spec.labs):
            if entry.lab not in known:
                raise ConfigError(path, f"labs[{i}].lab", f"no lab named {entry.lab!r} in {labs_dir}",
                                  f"known labs: {', '.join(known) or 'none'}")
    if spec.roster_path is not None and not spec.roster_path.is_file():
        raise ConfigError(path, "roster", f"{spec.roster_path} not found", "give the roster's path relative to "
                          "course.yaml, or leave `roster` out")
    return spec


class RosterEntry(BaseModel):
    """One student as the university's systems know them; only `student` is required, each export says
    which other column it needs."""

    model_config = ConfigDict(extra="ignore")

    student: str = Field(min_length=1, description="Our id: the student's name in the submissions (file stem).")
    name: str = ""
    canvas_id: str = Field("", description="Canvas's user id (the gradebook's ID column).")
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    ladok_id: str = Field("", description="The student's Ladok UID or personnummer, as ladok3 takes it.")

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


# Other names a roster's header may use for a column (compared in lowercase, spaces as underscores).
ROSTER_ALIASES = {
    "id": "canvas_id", "canvas_user_id": "canvas_id", "sis_id": "sis_user_id", "login": "sis_login_id",
    "sis_login": "sis_login_id", "personnummer": "ladok_id", "ladok_uid": "ladok_id", "ladok": "ladok_id",
}


class Roster(BaseModel):
    path: Path
    students: dict[str, RosterEntry]

    def get(self, student: str) -> RosterEntry | None:
        return self.students.get(student)


def load_roster(path: Path) -> Roster:
    """The roster CSV (UTF-8, a spreadsheet's BOM allowed); a bad row names its line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found", "pass the roster CSV's path") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text", "save the roster as CSV UTF-8") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise ConfigError(path, None, "empty file", "the first line names the columns: student, name, canvas_id, ...")
    columns = [ROSTER_ALIASES.get(h.strip().lower().replace(" ", "_"), h.strip().lower().replace(" ", "_"))
               for h in header]
    if "student" not in columns:
        raise ConfigError(path, "student", "no `student` column", "the header needs `student` (the id the "
                          "submissions use) and the ids each export needs: canvas_id, ladok_id")
    students: dict[str, RosterEntry] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            raise ConfigError(path, f"line {line}", f"{len(row)} cells under {len(columns)} columns",
                              "quote a cell that holds a comma")
        try:
            entry = RosterEntry.model_validate(dict(zip(columns, row)))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise ConfigError(path, f"line {line}: {field_path(first['loc'])}", first["msg"],
                              "every row needs a student id") from None
        if entry.student in students:
            raise ConfigError(path, f"line {line}", f"student {entry.student!r} is listed twice",
                              "keep one row per student")
        students[entry.student] = entry
    return Roster(path=path, students=students)


class LabStanding(BaseModel):
    lab: str
    required: bool
    verdict: Verdict | None = Field(None, description="None: no result for this lab.")
    reasons: list[str] = Field(default_factory=list, description="Criteria that keep the lab from G.")
    graded_at: datetime | None = None


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
                               graded_at=r.graded_at if r else None)
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
            when = course.local_date(max(s.graded_at for s in required if s.graded_at is not None))
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


def results_table(course: CourseSpec, grades: list[ModuleGrade]) -> Table:
    """What `autograder course results` prints: one row a student, a column a lab, then what is missing."""
    t = Table(title=f"{course.code}{f' ({course.name})' if course.name else ''}", title_justify="left")
    t.add_column("Student", no_wrap=True)
    t.add_column("Name")
    t.add_column("Module", no_wrap=True)
    for entry in course.labs:
        t.add_column(entry.lab + ("" if entry.required else " (optional)"), no_wrap=True)
    t.add_column("Date", no_wrap=True)
    t.add_column("Missing", max_width=70, overflow="fold")
    for g in grades:
        cells = [Text(s.verdict or "-", style=STYLE.get(s.verdict or "", "dim")) for s in g.labs]
        name = clean(g.name) if g.in_roster else Text("not in the roster", style="bold yellow")
        t.add_row(clean(g.student), name, Text(g.grade, style=STYLE.get(g.grade, "bold yellow")), *cells,
                  str(g.exam_date or ""), "; ".join(g.missing))
    return t


def summary(grades: list[ModuleGrade]) -> str:
    counts = {k: sum(g.grade == k for g in grades) for k in ("G", "U", "pending")}
    return f"{len(grades)} students: " + ", ".join(f"{k}: {n}" for k, n in counts.items() if n)


def require_lab(course: CourseSpec, lab: str) -> CourseLab:
    entry = course.lab(lab)
    if entry is None:
        raise UserError(f"lab {lab!r} is not one of the course's labs",
                        f"course.yaml lists: {', '.join(e.lab for e in course.labs)}")
    return entry
