"""LMS downloads: a Canvas or Moodle "download all submissions" (zip or folder), or a plain folder,
read as one submission per roster student, with when each was handed in.

- canvas: loose files `<lastfirst>[_LATE]_<userid>_<submissionid>_<original name>[-N].<ext>`; a
  student's files are grouped by user id, and of a name handed in again (`lab2-1.ipynb`,
  `lab2-2.ipynb`; or a later submission id) the latest wins.
- moodle: a folder per student and plugin, `<Full Name>_<participantid>_assignsubmission_file[_]/`
  with the student's own paths inside (online text in `..._assignsubmission_onlinetext_/`), or
  the same names as flat files.
- plain: today's layout (a notebook, or a folder or zip, per student), named by file or folder.

Within a group, `intake.assemble` finds the notebook and the lab's modules by suffix and name
whatever the student called them. Students are mapped to the roster of course.yaml by the columns
its `match` names (ids first, then names); what does not map is graded under the LMS's name and
said in the intake report, as are roster students without a hand-in and groups that could be two
students (never guessed). Members are read in place, never extracted by the names they carry.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from autograder.errors import UserError
from autograder.grading import lateness
from autograder.grading.intake import (
    IGNORED_PARTS,
    IntakeSpec,
    Submission,
    assemble,
    discover,
    folder_members,
    held_open,
    plain_name,
    take_zip,
    zip_members,
)
from autograder.ids import readable, student_id
from autograder.labs.course import CourseSpec, HandedInColumns, Roster, RosterEntry, RosterMatch

Layout = Literal["canvas", "moodle", "plain"]
LAYOUTS: tuple[Layout, ...] = ("canvas", "moodle", "plain")
MAX_DOWNLOAD_MEMBERS = 200_000

CANVAS = re.compile(r"^(?P<name>[^_/]+?)(?P<late>_late)?_(?P<user>\d+)_(?P<sub>\d+)_(?P<original>.+)$", re.IGNORECASE)
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)(?:_(?P<rest>.*))?$")
_RESUBMITTED = re.compile(r"^(?P<stem>.+?)-(?P<n>\d+)$")


class Group(BaseModel):
    """One student's files in a download, before the roster names them."""

    key: str = Field(description="The LMS's id of the student: Canvas user id, Moodle participant id, or the name.")
    name: str = Field(description="The name the LMS gives: Canvas's lastfirst, Moodle's full name, a file stem.")
    members: list[str] = Field(default_factory=list, description="The latest of each file, relative to the download.")
    named: dict[str, str] = Field(default_factory=dict, description="member -> the name the student gave it.")
    superseded: list[str] = Field(default_factory=list, description="Earlier hand-ins of a file, not graded.")
    marked_late: bool = False
    lms: dict[str, str] = Field(default_factory=dict)
    nested: str | None = Field(None, description="A student's own zip, in a download that is a folder.")


class IntakeReport(BaseModel):
    """What the batch starts with: who was found, who was not, and what was not guessed."""

    layout: Layout
    source: Path
    forced: bool = False
    roster: bool = Field(False, description="Students were mapped to a roster.")
    mapped: list[str] = Field(default_factory=list, description="Roster students with a hand-in.")
    by_name: list[str] = Field(default_factory=list, description="Mapped by name, their id not on the roster.")
    off_roster: list[str] = Field(default_factory=list, description="Graded under the LMS's name.")
    no_hand_in: list[str] = Field(default_factory=list, description="Roster students without a hand-in.")
    unmatched: list[str] = Field(default_factory=list, description="Files that belong to no student.")
    ambiguous: list[str] = Field(default_factory=list, description="Groups not graded, and why.")
    superseded: int = 0
    late: list[str] = Field(default_factory=list)
    times: str = Field("", description="Where the hand-in times came from.")
    notes: list[str] = Field(default_factory=list)

    def lines(self) -> list[str]:
        how = "forced" if self.forced else "recognised"
        total = len(self.mapped) + len(self.off_roster)
        what = "folder of submissions" if self.layout == "plain" else "download"
        head = f"intake: {self.layout} {what} ({how}), {total} students"
        if self.roster:
            head += f": {len(self.mapped)} on the roster"
        lines = [head + (f"; hand-in times from {self.times}" if self.times else "")]
        if self.superseded:
            lines.append(f"  {self.superseded} earlier hand-ins of a file left out (the latest of each is graded)")
        if self.by_name:
            lines.append(f"  matched by name, their LMS id not on the roster: {_listed(self.by_name)}")
        if self.roster and self.off_roster:
            named = "its file or folder name" if self.layout == "plain" else "the LMS's name"
            lines.append(f"  not on the roster (graded under {named}): {_listed(self.off_roster)}")
        if self.no_hand_in:
            lines.append(f"  on the roster without a hand-in: {_listed(self.no_hand_in)}")
        if self.unmatched:
            lines.append(f"  files that belong to no student (not graded): {_listed(self.unmatched)}")
        for line in self.ambiguous:
            lines.append(f"  NOT GRADED: {line}")
        if self.late:
            lines.append(f"  late: {_listed(self.late)}")
        lines += [f"  note: {n}" for n in self.notes]
        return [readable(line) for line in lines]


def _listed(items: list[str], most: int = 12) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


class Intake(BaseModel):
    submissions: list[Submission]
    report: IntakeReport


# --- recognising and grouping ----------------------------------------------------------------------------------


def detect(source: Path) -> Layout:
    """The layout a download's names say: most top-level files named as Canvas names them, or most
    top-level folders as Moodle does; anything else is plain."""
    names = _top_names(source)
    if not names:
        return "plain"
    canvas = sum(bool(CANVAS.match(n)) for n, is_dir in names if not is_dir)
    moodle = sum(bool(MOODLE.match(n)) for n, _ in names)
    if moodle and moodle * 2 >= len(names):
        return "moodle"
    if canvas and canvas * 2 >= len(names):
        return "canvas"
    return "plain"


def _top_names(source: Path) -> list[tuple[str, bool]]:
    """(name, is a folder) of a download's first level."""
    if source.is_dir():
        return [(p.name, p.is_dir()) for p in source.iterdir()
                if not p.name.startswith(".") and p.name not in IGNORED_PARTS]
    if source.suffix == ".zip" and source.is_file():
        infos = zip_members(source, MAX_DOWNLOAD_MEMBERS)
        if isinstance(infos, str):
            return []
        top: dict[str, bool] = {}
        for i in infos:
            parts = PurePosixPath(i.filename.replace("\\", "/")).parts
            top[parts[0]] = top.get(parts[0], False) or len(parts) > 1
        return list(top.items())
    return []


def _members(source: Path) -> tuple[list[str], dict[str, zipfile.ZipInfo]]:
    """Every plain member of a download (folder or zip), and the zip's records by name."""
    if source.is_dir():
        return folder_members(source), {}
    infos = zip_members(source, MAX_DOWNLOAD_MEMBERS)
    if isinstance(infos, str):
        raise UserError(f"{source}: {infos}", "download the submissions from the LMS again")
    return [i.filename for i in infos], {i.filename: i for i in infos}


def canvas_groups(members: list[str]) -> tuple[list[Group], list[str]]:
    """Canvas's loose files by user id, the latest of each file name kept; and the files that are not
    named as Canvas names them."""
    by_user: dict[str, list[tuple[re.Match[str], str]]] = defaultdict(list)
    unmatched = []
    for m in members:
        found = CANVAS.match(m) if "/" not in m else None
        if found is None:
            unmatched.append(m)
        else:
            by_user[found["user"]].append((found, m))
    groups = []
    for user, files in by_user.items():
        latest_sub = max(int(f["sub"]) for f, _ in files)
        best: dict[str, tuple[int, str, str]] = {}  # plain name -> (resubmission number, member, original)
        superseded = [m for f, m in files if int(f["sub"]) != latest_sub]
        for f, m in files:
            if int(f["sub"]) != latest_sub:
                continue
            original = f["original"]
            stem, dot, suffix = original.rpartition(".")
            again = _RESUBMITTED.match(stem if dot else original)
            n = int(again["n"]) if again else 0
            key = plain_name(original)
            if key in best and best[key][0] >= n:
                superseded.append(m)
                continue
            if key in best:
                superseded.append(best[key][1])
            best[key] = (n, m, original)
        first = files[0][0]
        groups.append(Group(
            key=user, name=first["name"], members=sorted(m for _, m, _ in best.values()),
            named={m: original for _, m, original in best.values()}, superseded=sorted(superseded),
            marked_late=any(f["late"] for f, m in files if int(f["sub"]) == latest_sub),
            lms={"layout": "canvas", "user_id": user, "submission_id": str(latest_sub), "name": first["name"]}))
    return groups, unmatched


def moodle_groups(members: list[str]) -> tuple[list[Group], list[str]]:
    """Moodle's folders (or flat files) by participant id, each file under the path the student gave it."""
    by_participant: dict[str, Group] = {}
    unmatched = []
    for m in members:
        top, _, rest = m.partition("/")
        found = MOODLE.match(top)
        if found is None or not (rest or found["rest"]):
            unmatched.append(m)
            continue
        pid = found["participant"]
        group = by_participant.setdefault(pid, Group(
            key=pid, name=found["name"], lms={"layout": "moodle", "participant_id": pid, "name": found["name"]}))
        group.members.append(m)
        group.named[m] = rest or found["rest"] or ""
    return list(by_participant.values()), unmatched


# --- the roster ------------------------------------------------------------------------------------------------


def plain_words(name: str) -> str:
    """A name as compared: no accents, case, spaces or punctuation ('Nyström, Elin' -> 'nystromelin')."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed.lower() if ch.isalnum() and not unicodedata.combining(ch))


class RosterIndex:
    """Roster students by each column course.yaml's `match` names, values compared as written (ids) or
    as plain words (names: 'Lindqvist, Astrid' is found as Canvas's 'lindqvistastrid' and as Moodle's
    'Astrid Lindqvist')."""

    def __init__(self, roster: Roster, course: CourseSpec | None) -> None:
        self.roster = roster
        match = course.match if course is not None else RosterMatch()
        self.columns = match
        self._ids: dict[str, dict[str, set[str]]] = {}
        for kind in ("canvas", "moodle", "plain", "handed_in"):
            index: dict[str, set[str]] = defaultdict(set)
            for entry in roster.students.values():
                for column in getattr(match, kind):
                    value = entry.column(column)
                    if value:
                        index[value.lower()].add(entry.student)
            self._ids[kind] = index
        self._names: dict[str, set[str]] = defaultdict(set)
        for entry in roster.students.values():
            for column in match.names:
                for form in _name_forms(entry.column(column)):
                    self._names[form].add(entry.student)

    def by_id(self, kind: str, value: str) -> set[str]:
        return set(self._ids[kind].get(value.strip().lower(), ()))

    def by_name(self, name: str) -> set[str]:
        return set(self._names.get(plain_words(name), ())) if plain_words(name) else set()

    def entry(self, student: str) -> RosterEntry | None:
        return self.roster.get(student)


def _name_forms(name: str) -> set[str]:
    """A roster name as LMSs write it: as it stands, and 'Last, First' turned round."""
    if not name.strip():
        return set()
    forms = {plain_words(name)}
    if "," in name:
        last, _, first = name.partition(",")
        forms |= {plain_words(first + last), plain_words(last + first)}
    else:
        words = name.split()
        if len(words) > 1:
            forms.add(plain_words(words[-1] + "".join(words[:-1])))
    return forms


def _lms_id(group: Group) -> str:
    """The id a group gets when the roster does not name it: the LMS's name and id."""
    name = re.sub(r"\s+", "_", group.name.strip()) or "student"
    return student_id(f"{name}-{group.key}") if group.key != group.name else student_id(name)


# --- the whole download ----------------------------------------------------------------------------------------


def read_download(source: Path, spec: IntakeSpec, layout: Layout | None = None, course: CourseSpec | None = None,
                  roster: Roster | None = None, handed_in: Path | None = None) -> Intake:
    """Every student's submission in a download, named by the roster, dated, and marked late where the
    course's deadline (or the LMS) says so; and the intake report."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist", "pass the LMS's download (zip or folder), a folder of "
                        "submissions or a notebook")
    forced = layout is not None
    layout = layout or detect(source)
    report = IntakeReport(layout=layout, source=source, forced=forced, roster=roster is not None)
    zone = course.zone if course is not None else datetime.now().astimezone().tzinfo or UTC
    index = RosterIndex(roster, course) if roster is not None else None
    if layout == "plain":
        subs = discover(source, spec)
        for sub in subs:
            sub.lms = {"layout": "plain", "name": sub.student}
        subs = _name_plain(subs, index, report)
        _times_from_files(subs, {}, zone)
    else:
        if not (source.is_dir() or source.suffix == ".zip" and source.is_file()):
            raise UserError(f"{source} is not a folder or a zip", f"a {layout} download is the zip the LMS gives, "
                            "or the folder it unzips to")
        members, infos = _members(source)
        groups, report.unmatched = canvas_groups(members) if layout == "canvas" else moodle_groups(members)
        if not groups:
            raise UserError(f"no {layout} hand-ins in {source}", "pass --layout plain for a folder of submissions, "
                            "or check that this is the LMS's download")
        duplicates = {m for m in members if members.count(m) > 1} if len(set(members)) != len(members) else set()
        with held_open(source):
            subs = _name_groups(source, groups, spec, index, report, duplicates)
        _times_from_files(subs, infos, zone)
    if handed_in is not None:
        report.times = f"{handed_in.name}"
        _times_from_csv(handed_in, subs, index, course, zone, report)
    elif subs:
        kinds = sorted({s.handed_in_from for s in subs if s.handed_in_from})
        report.times = " and ".join(kinds)
    for sub in subs:
        _judge_lateness(sub, spec.lab, course)
        if sub.late is not None:
            report.late.append(sub.student)
    if index is not None:
        handed = {s.student for s in subs}
        report.no_hand_in = sorted(s for s in index.roster.students if s not in handed)
    report.mapped.sort()
    report.off_roster.sort()
    return Intake(submissions=sorted(subs, key=lambda s: s.student), report=report)


def _name_plain(subs: list[Submission], index: RosterIndex | None, report: IntakeReport) -> list[Submission]:
    """Plain submissions keep their names; one that is not a roster student's id but another column of
    exactly one roster row (their login, email) takes that student's id."""
    if index is None:
        report.off_roster = [s.student for s in subs]
        return subs
    taken = {s.student for s in subs if index.entry(s.student) is not None}
    for sub in subs:
        if index.entry(sub.student) is not None:
            report.mapped.append(sub.student)
            continue
        found = index.by_id("plain", sub.student)
        if len(found) == 1 and next(iter(found)) not in taken:
            sub.lms["name"], sub.student = sub.student, next(iter(found))
            taken.add(sub.student)
            report.mapped.append(sub.student)
        else:
            if len(found) > 1:
                report.notes.append(f"{sub.student} could be {', '.join(sorted(found))} on the roster; graded under "
                                    "its own name")
            elif found:
                report.notes.append(f"{sub.student} names {next(iter(found))}, who handed in under their own id too; "
                                    "graded under its own name")
            report.off_roster.append(sub.student)
    return subs


def _name_groups(source: Path, groups: list[Group], spec: IntakeSpec, index: RosterIndex | None,
                 report: IntakeReport, duplicates: set[str]) -> list[Submission]:
    kind = groups[0].lms["layout"]
    claims: dict[str, list[tuple[int, Group]]] = defaultdict(list)  # student -> (0 by id, 1 by name, group)
    for group in groups:
        if index is None:
            continue
        ids = index.by_id(kind, group.key)
        if len(ids) == 1:
            claims[next(iter(ids))].append((0, group))
            continue
        if len(ids) > 1:
            report.ambiguous.append(f"{kind} id {group.key} ({group.name}) is on the roster {len(ids)} times "
                                    f"({', '.join(sorted(ids))})")
            group.lms["ambiguous"] = "1"
            continue
        names = index.by_name(group.name)
        if len(names) == 1:
            claims[next(iter(names))].append((1, group))
        elif len(names) > 1:
            report.ambiguous.append(f"{group.name} ({kind} id {group.key}) fits {len(names)} roster students "
                                    f"({', '.join(sorted(names))}) by name; add the {kind} id to the roster")
            group.lms["ambiguous"] = "1"
    owner: dict[str, str] = {}  # group key -> roster student
    for claimed, claimants in claims.items():
        best = min(how for how, _ in claimants)
        first = [g for how, g in claimants if how == best]
        if len(first) > 1:
            listed = ", ".join(f"{g.name} ({kind} id {g.key})" for g in first)
            report.ambiguous.append(f"{listed}: {len(first)} hand-ins fit roster student {claimed}; none was taken "
                                    f"as theirs")
            for g in first:
                g.lms["ambiguous"] = "1"
            continue
        owner[first[0].key] = claimed
        if best == 1:
            report.by_name.append(f"{first[0].name} -> {claimed}")
        for _, g in claimants:
            if g is not first[0]:
                report.ambiguous.append(f"{g.name} ({kind} id {g.key}) also fits roster student {claimed}, whose "
                                        f"hand-in is {first[0].name} ({kind} id {first[0].key}); not taken as theirs")
                g.lms["ambiguous"] = "1"
    subs = []
    for group in groups:
        if group.lms.get("ambiguous"):
            continue
        clash = [m for m in group.members if m in duplicates]
        if clash:
            report.ambiguous.append(f"{group.name} ({kind} id {group.key}): the download holds "
                                    f"{clash[0]!r} more than once")
            continue
        student = owner.get(group.key) or _lms_id(group)
        if group.key in owner:
            report.mapped.append(student)
        else:
            report.off_roster.append(student)
        report.superseded += len(group.superseded)
        sub = _take_group(source, group, student, spec, report)
        if sub is not None:
            subs.append(sub)
    seen: dict[str, Submission] = {}
    for sub in subs:  # two LMS names made into one id (an off-roster name clash): keep neither silently
        if sub.student in seen:
            raise UserError(f"two hand-ins would be graded as {sub.student!r}",
                            "add both students to the roster with their LMS ids")
        seen[sub.student] = sub
    return subs


def _take_group(source: Path, group: Group, student: str, spec: IntakeSpec, report: IntakeReport
                ) -> Submission | None:
    nested = [m for m in group.members if m.lower().endswith(".zip")]
    own = [m for m in group.members if not m.lower().endswith(".zip")]
    if nested and not any(m.lower().endswith((".ipynb", ".py")) for m in own):
        if len(nested) > 1:
            report.ambiguous.append(f"{student} handed in {len(nested)} zips ({', '.join(nested[:3])})")
            return None
        if source.is_dir():  # a student's own zip, as a file: read in place like any plain zip
            sub = take_zip(student, source / nested[0], spec)
        else:
            report.ambiguous.append(f"{student} handed in a zip ({nested[0]}) inside the download zip; unzip the "
                                    "download once and pass the folder")
            return None
    else:
        sub = assemble(student, source, own, spec, {m: group.named[m] for m in own})
    sub.originals = [readable(m) for m in group.members + group.superseded][:50]
    sub.lms = group.lms
    if group.marked_late:
        sub.lms["marked_late"] = "1"
    return sub


# --- when: file times, a CSV of times, and the deadline ----------------------------------------------------------


def _times_from_files(subs: list[Submission], infos: dict[str, zipfile.ZipInfo], zone: tzinfo) -> None:
    """The latest time of the members a submission uses: a zip's (written in local time, read in the
    course's zone) or, in a folder, the file's modification time."""
    for sub in subs:
        used = [m for m in [sub.notebook, *sub.files.values(), sub.report] if m]
        if sub.path.is_file() and sub.path.suffix == ".zip" and not infos:  # a student's own zip
            try:
                with zipfile.ZipFile(sub.path) as z:
                    times = [_zip_time(z.getinfo(m), zone) for m in used]
            except (OSError, KeyError, zipfile.BadZipFile, ValueError):
                times = []
            how = "zip time"
        elif infos:
            times = [_zip_time(infos[m], zone) for m in used if m in infos]
            how = "zip time"
        elif sub.path.is_file():  # a notebook handed in alone
            times, how = [datetime.fromtimestamp(sub.path.stat().st_mtime, UTC)], "file time"
        else:
            times = [datetime.fromtimestamp((sub.path / m).stat().st_mtime, UTC) for m in used
                     if (sub.path / m).is_file()]
            how = "file time"
        if times:
            sub.handed_in, sub.handed_in_from = max(times), how


def _zip_time(info: zipfile.ZipInfo, zone: tzinfo) -> datetime:
    return datetime(*info.date_time, tzinfo=zone)


def _times_from_csv(path: Path, subs: list[Submission], index: RosterIndex | None, course: CourseSpec | None,
                    zone: tzinfo, report: IntakeReport) -> None:
    """Hand-in times from the LMS's own export: a row per student, an id column and a time column (the
    first of course.yaml's `handed_in_csv` lists the CSV has)."""
    import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

    columns = course.handed_in_csv if course is not None else HandedInColumns()
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path} does not exist", "pass the CSV of hand-in times the LMS exports") from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})", "save it as CSV UTF-8") from None
    headers = {str(c).strip().lower(): str(c) for c in frame.columns}
    id_column = next((headers[c.lower()] for c in columns.id if c.lower() in headers), None)
    time_column = next((headers[c.lower()] for c in columns.time if c.lower() in headers), None)
    if id_column is None or time_column is None:
        missing = "student" if id_column is None else "time"
        field = "id" if id_column is None else "time"
        raise UserError(f"{path}: no {missing} column (looked for {', '.join(getattr(columns, field))})",
                        f"name it in course.yaml: handed_in_csv: {{{field}: [<the column>]}}; the CSV has "
                        f"{', '.join(map(str, frame.columns))}")
    by_key: dict[str, Submission] = {}
    for sub in subs:
        for key in ("user_id", "participant_id", "name"):
            if sub.lms.get(key):
                by_key.setdefault(sub.lms[key].lower(), sub)
        by_key.setdefault(sub.student.lower(), sub)
    by_student = {s.student: s for s in subs}
    unknown: list[str] = []
    bad: list[str] = []
    for line, (raw_id, raw_time) in enumerate(zip(frame[id_column], frame[time_column], strict=True), start=2):
        key = re.sub(r"^participant\s*", "", str(raw_id).strip(), flags=re.IGNORECASE)
        if not key:
            continue
        row = by_key.get(key.lower())
        if row is None and index is not None:
            found = index.by_id("handed_in", key)
            row = by_student.get(next(iter(found))) if len(found) == 1 else None
        if row is None:
            unknown.append(readable(key))
            continue
        moment = _parse_time(str(raw_time), zone)
        if moment is None:
            if str(raw_time).strip() not in ("", "-"):
                bad.append(f"line {line} ({readable(str(raw_time))[:40]})")
            continue
        if row.handed_in_from != "csv" or row.handed_in is None or moment > row.handed_in:
            row.handed_in, row.handed_in_from = moment, "csv"
    if unknown:
        report.notes.append(f"{len(unknown)} rows of {path.name} match no hand-in: {_listed(unknown, 6)}")
    if bad:
        report.notes.append(f"times in {path.name} that could not be read: {_listed(bad, 6)}")
    without = [s.student for s in subs if s.handed_in_from != "csv"]
    if without:
        report.notes.append(f"{len(without)} hand-ins have no time in {path.name}; their file times are used: "
                            f"{_listed(without, 6)}")


def _parse_time(text: str, zone: tzinfo) -> datetime | None:
    import pandas as pd

    text = text.strip()
    if not text or text == "-":
        return None
    try:
        moment = pd.Timestamp(text).to_pydatetime()
    except (ValueError, TypeError, OverflowError):
        return None
    if moment is None or moment != moment:  # NaT
        return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _judge_lateness(sub: Submission, lab: str, course: CourseSpec | None) -> None:
    marked = "canvas" if sub.lms.get("marked_late") else ""
    if course is None:
        sub.late = lateness.late(sub.handed_in, None, False, marked)
        return
    deadline, extended = course.deadline(lab, sub.student)
    handed_in = sub.handed_in
    if sub.lms.get("layout") == "canvas" and sub.handed_in_from != "csv" and not extended:
        # Canvas's own mark (against its due date) decides, not a zip time, which need not be the hand-in's;
        # an extension in course.yaml, which Canvas may not know of, is held against the time
        handed_in = None
    sub.late = lateness.late(handed_in, deadline, extended, marked, course.late_policy_of(lab))
