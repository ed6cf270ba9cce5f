"""`course.yaml` and the roster: which labs the course needs, their deadlines and late policy, who is
on the roll and how an LMS download names them. Plain models, below both the pipeline (intake maps
hand-ins to the roster and dates them) and publish/ (the module grade, the exports), so neither
reaches sideways for them; `autograder.publish.course` re-exports them."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from autograder.errors import ConfigError
from autograder.labs.loading import field_path, load_model
from autograder.labs.spec import Slug

DEFAULT_COURSE = "course.yaml"
LatePolicy = Literal["mark", "review", "fail"]


def _moment(value: object) -> object:
    """A deadline needs its time: a bare date (YAML reads 2026-02-13 as one) would fall at midnight,
    a day early for every student who reads 'the 13th' as 'by the end of the 13th'."""
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(f"{value} has no time of day; write it with one, e.g. {value} 23:59")
    if isinstance(value, str) and len(value.strip()) == 10:
        raise ValueError(f"{value!r} has no time of day; write it with one, e.g. {value.strip()} 23:59")
    return value


MAX_GPU_BUDGET_S = 7 * 24 * 3600  # a per-student budget above a week is a unit slip, not a budget


class CourseLab(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lab: Slug = Field(description="A lab of the course folder (assignments/<lab>).")
    required: bool = Field(True, description="Needed for the module grade; optional labs are shown, never required.")
    canvas_assignment: str | None = Field(
        None, description="This lab's Canvas gradebook column as Canvas's own export names it, e.g. 'Lab 1 (12345)'; "
        "the number in brackets is the assignment id.")
    module: str | None = Field(
        None, description="The lab's own Ladok module code, for courses that report each lab on its own.")
    deadline: datetime | None = Field(
        None, description="When the lab is due, e.g. '2026-02-13 17:00' (in the course's time zone) or with an offset "
        "('2026-02-13T17:00+01:00'). A hand-in after it is late (see late_policy).")
    extensions: dict[str, datetime] = Field(
        default_factory=dict,
        description="Per-student deadlines, by the roster's student id: {ana: '2026-02-20 17:00'}.")
    late_policy: LatePolicy | None = Field(None, description="This lab's own late policy (default: the course's).")
    gpu_budget_s: float | None = Field(
        None, description="GPU-seconds one student's hand-in may use in grading (wall time x GPUs held, over the "
        f"notebook's runs, re-runs included); more fails the `compute-budget` criterion. At most {MAX_GPU_BUDGET_S:,} "
        "(a week). None: no budget.")

    @field_validator("gpu_budget_s")
    @classmethod
    def _budget(cls, value: float | None) -> float | None:
        if value is None:
            return value
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive number of GPU-seconds, e.g. 600 for ten minutes on one GPU; "
                             "leave it out for no budget")
        if value > MAX_GPU_BUDGET_S:
            raise ValueError(f"{value:g} s is more than a week of GPU time for one student; the budget is in "
                             "seconds (600 is ten minutes), not milliseconds")
        return value

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline_time(cls, value: object) -> object:
        return value if value is None else _moment(value)

    @field_validator("extensions", mode="before")
    @classmethod
    def _extension_times(cls, value: object) -> object:
        if isinstance(value, dict):
            for moment in value.values():
                _moment(moment)
        return value


class LadokGrades(BaseModel):
    """The codes of the module's grade scale in Ladok: G and U, or P and F on an English scale."""

    model_config = ConfigDict(extra="forbid")

    G: str = Field("G", min_length=1)
    U: str = Field("U", min_length=1)


class RosterMatch(BaseModel):
    """Which roster columns name a student in each kind of download (compared without case; names
    also without accents, spaces and punctuation)."""

    model_config = ConfigDict(extra="forbid")

    canvas: list[str] = Field(["canvas_id"], description="Columns holding Canvas's user id (in its file names).")
    moodle: list[str] = Field(["moodle_id"], description="Columns holding Moodle's participant id (in its folder "
                              "names).")
    names: list[str] = Field(["name"], description="Columns holding full names: Canvas's `lastfirst` and Moodle's "
                             "folder name are matched against them when no id matches.")
    plain: list[str] = Field(["student", "sis_user_id", "sis_login_id", "email"],
                             description="Columns a plain folder's file or folder names are matched against.")
    handed_in: list[str] = Field(["canvas_id", "moodle_id", "student", "sis_user_id", "sis_login_id", "email"],
                                 description="Columns the id column of a --handed-in CSV is matched against.")


class HandedInColumns(BaseModel):
    """The columns of an LMS's export of hand-in times (`grade --handed-in times.csv`)."""

    model_config = ConfigDict(extra="forbid")

    id: list[str] = Field(["student", "user_id", "id", "identifier", "email address", "email", "sis_user_id"],
                          description="The student column, first that the CSV has (Moodle's worksheet: Identifier).")
    time: list[str] = Field(["handed_in", "submitted_at", "submitted", "last modified (submission)", "time"],
                            description="The time column, first that the CSV has.")


class Reviewer(BaseModel):
    """A TA who may decide in `autograder serve`: the name decisions are recorded under, and the sha256 of
    their token (never the token itself, so course.yaml can be committed). `autograder serve --new-token
    NAME` prints a fresh token and this entry."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
                      description="Who decides, as the decisions and the students' pages name them.")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the TA's token, in lowercase hex.")


class CourseSpec(BaseModel):
    """`course.yaml`: the lab module as the university's systems know it."""

    model_config = ConfigDict(extra="forbid")

    course: str = Field(min_length=1, description="The course code in Ladok, e.g. DT9000.")
    module: str = Field(min_length=1, description="The code of the lab module in Ladok, e.g. LAB1.")
    name: str = ""
    labs: list[CourseLab] = Field(min_length=1)
    roster: Path | None = Field(
        None, description="The roster CSV (student, name, canvas_id, moodle_id, email, sis_user_id, sis_login_id, "
        "section, ladok_id), relative to this file.")
    canvas_assignment: str | None = Field(
        None, description="The Canvas gradebook column of the module grade, e.g. 'Lab module (12399)'.")
    examination_date: Literal["last-result"] | date = Field(
        "last-result", description="The date reported to Ladok: `last-result` (the day of the hand-in that earned the "
        "last required lab its current result) or a fixed date such as 2025-01-17. --date overrides it.")
    timezone: str = Field("Europe/Stockholm", description="Where a time becomes a date, and the zone of deadlines "
                          "and of zip times written without one.")
    late_policy: LatePolicy = Field(
        "mark", description="A late hand-in: `mark` (graded as usual, marked late), `review` (a teacher decides) or "
        "`fail` (U, saying it was late).")
    match: RosterMatch = Field(default_factory=RosterMatch, description="How downloads are matched to the roster.")
    handed_in_csv: HandedInColumns = Field(default_factory=HandedInColumns)
    ladok_grades: LadokGrades = Field(default_factory=LadokGrades)
    reviewers: list[Reviewer] = Field(
        default_factory=list, description="TAs who may decide in `autograder serve`, each with their own token; "
        "required when it serves beyond this machine (--host).")
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

    @field_validator("reviewers")
    @classmethod
    def _unique_reviewers(cls, reviewers: list[Reviewer]) -> list[Reviewer]:
        for key in ("name", "token_sha256"):
            seen: set[str] = set()
            for r in reviewers:
                value = getattr(r, key)
                if value in seen:
                    raise ValueError(f"two reviewers share one {key.replace('_', ' ')}"
                                     + (f" ({value!r})" if key == "name" else "") + ": give each TA their own")
                seen.add(value)
        return reviewers

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

    @model_validator(mode="after")
    def _zoned_deadlines(self) -> CourseSpec:
        """Deadlines written without an offset are in the course's time zone."""
        for entry in self.labs:
            if entry.deadline is not None:
                entry.deadline = self.zoned(entry.deadline)
            entry.extensions = {s: self.zoned(t) for s, t in entry.extensions.items()}
        return self

    @property
    def code(self) -> str:
        """'DT9000 / LAB1', as a coordinator says it."""
        return f"{self.course} / {self.module}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def roster_path(self) -> Path | None:
        return None if self.roster is None else self._folder / self.roster

    def lab(self, name: str) -> CourseLab | None:
        return next((entry for entry in self.labs if entry.lab == name), None)

    def zoned(self, moment: datetime) -> datetime:
        """A time without an offset read in the course's zone; one with an offset kept."""
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def deadline(self, lab: str, student: str) -> tuple[datetime | None, bool]:
        """(the student's deadline for a lab, whether it is their extension); (None, False) without one."""
        entry = self.lab(lab)
        if entry is None:
            return None, False
        if student in entry.extensions:
            return entry.extensions[student], True
        return entry.deadline, False

    def late_policy_of(self, lab: str) -> LatePolicy:
        entry = self.lab(lab)
        return entry.late_policy if entry is not None and entry.late_policy is not None else self.late_policy


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
    if spec.roster_path is not None:
        roster = load_roster(spec.roster_path)
        for i, entry in enumerate(spec.labs):
            for student in entry.extensions:
                if roster.get(student) is None:
                    raise ConfigError(path, f"labs[{i}].extensions.{student}", f"{student!r} is not on the roster",
                                      "extensions are keyed by the roster's `student` column")
    return spec


class RosterEntry(BaseModel):
    """One student as the university's systems know them; only `student` is required, each export says
    which other column it needs. Columns the model does not name are kept (course.yaml's `match` may
    name them)."""

    model_config = ConfigDict(extra="allow")

    student: str = Field(min_length=1, description="Our id: the student's name in the submissions (file stem).")
    name: str = ""
    canvas_id: str = Field("", description="Canvas's user id (the gradebook's ID column).")
    moodle_id: str = Field("", description="Moodle's participant id (in its download's folder names).")
    email: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    ladok_id: str = Field("", description="The student's Ladok UID or personnummer, as ladok3 takes it.")

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    def column(self, name: str) -> str:
        """A column's value by its (normalised) header name; '' where the roster lacks it."""
        value = getattr(self, name, None) if name in type(self).model_fields else (self.model_extra or {}).get(name)
        return str(value).strip() if value is not None else ""


# Other names a roster's header may use for a column (compared in lowercase, spaces as underscores).
ROSTER_ALIASES = {
    "id": "canvas_id", "canvas_user_id": "canvas_id", "sis_id": "sis_user_id", "login": "sis_login_id",
    "sis_login": "sis_login_id", "personnummer": "ladok_id", "ladok_uid": "ladok_id", "ladok": "ladok_id",
    "participant_id": "moodle_id", "moodle_participant_id": "moodle_id", "e-mail": "email",
    "email_address": "email", "e-mail_address": "email",
}


def column_name(header: str) -> str:
    plain = header.strip().lower().replace(" ", "_")
    return ROSTER_ALIASES.get(plain, plain)


class Roster(BaseModel):
    path: Path
    students: dict[str, RosterEntry]

    def get(self, student: str) -> RosterEntry | None:
        return self.students.get(student)


def load_roster(path: Path) -> Roster:
    """The roster CSV (UTF-8, a spreadsheet's BOM allowed), read with pandas as text; a bad row names
    its line and column."""
    import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

    try:
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False,
                            encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found", "pass the roster CSV's path") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text", "save the roster as CSV UTF-8") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(path, None, "empty file",
                          "the first line names the columns: student, name, canvas_id, ...") from None
    except pd.errors.ParserError as exc:  # "Expected 2 fields in line 3, saw 3"
        import re

        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise ConfigError(path, None, f"not a readable CSV ({str(exc).strip()})", "save it as CSV UTF-8") from None
        raise ConfigError(path, f"line {found[2]}", f"{found[3]} cells under {found[1]} columns",
                          "quote a cell that holds a comma") from None
    rows = frame.to_numpy().tolist()
    header = rows[0] if rows else []
    if not any(str(h).strip() for h in header):
        raise ConfigError(path, None, "empty file", "the first line names the columns: student, name, canvas_id, ...")
    columns = [column_name(str(h)) for h in header]
    if "student" not in columns:
        raise ConfigError(path, "student", "no `student` column", "the header needs `student` (the id the "
                          "submissions use) and the ids each export needs: canvas_id, ladok_id")
    students: dict[str, RosterEntry] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(str(cell).strip() for cell in row):
            continue
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
