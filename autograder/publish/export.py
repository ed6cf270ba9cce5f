"""Exports of recorded results: JSON for tools, CSV for spreadsheets, and what the university's
systems import: Canvas's gradebook CSV, Gradescope's results.json, the list reported to Ladok.

A lab's export carries each student's verdict; a course's (`--course`) the lab module grade.
Publishing formats (canvas, gradescope, ladok) hold back a student still in review or with a
grading error, and name them, unless the TA allows it; a student the roster cannot map is named
too, never silently dropped.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, Field

from autograder.errors import AutograderError, UserError
from autograder.publish import ladok
from autograder.publish.course import (
    CourseSpec,
    ModuleGrade,
    Roster,
    RosterEntry,
    course_results,
    earned_at,
    load_roster,
    require_lab,
)
from autograder.publish.html import strip_ansi
from autograder.results import SubmissionResult
from autograder.store import Store

if TYPE_CHECKING:
    from autograder.labs.rubric import Rubric

Format = Literal["json", "csv"]
ExportFormat = Literal["json", "csv", "canvas", "gradescope", "ladok"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
PUBLISHING = frozenset({"canvas", "gradescope", "ladok"})
Visibility = Literal["hidden", "after_due_date", "after_published", "visible"]
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "    Points Possible"  # the second row of Canvas's own export, spaces included


def to_json(results: list[SubmissionResult]) -> str:
    """Every criterion of each student with its value, bar, message, advice and decision; where the rubric runs
    tests, `tests`: each one's name, outcome, whether it is public, and its message; `environment` (the
    reproducibility stamp: seeds, image, versions, hardware) and `compute` (CPU/GPU seconds, peak memory).
    For staff: hidden tests are named here (the students' formats only count them)."""
    from autograder.frames import ran_tests

    rows = []
    for r in results:
        row: dict[str, Any] = {
            "student": r.student,
            "verdict": r.verdict,
            "criteria": [
                {"id": c.id, "status": c.status, "value": c.value, "threshold": c.threshold, "message": c.message,
                 "advice": c.advice,
                 "override": c.override.model_dump(mode="json") if c.override is not None else None}
                for c in r.criteria
            ],
        }
        if any(c.kind == "hidden-tests" for c in r.criteria):
            row["tests"] = [{"name": t.name, "outcome": t.outcome, "public": t.public, "message": t.message}
                            for _, t in ran_tests(r)]
        # The reproducibility stamp and the cost (null for results graded before they were recorded).
        row["environment"] = r.environment.model_dump(mode="json") if r.environment is not None else None
        row["compute"] = r.compute.model_dump(mode="json") if r.compute is not None else None
        rows.append(row)
    return json.dumps(rows, indent=2) + "\n"


# Formats whose rows need the roster's ids: a student the roster can't map is left out of them.
ROSTER_BOUND = ("canvas", "ladok")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(cell: object) -> object:
    """A CSV cell a spreadsheet reads as text, never as a formula: a student id is a hand-in's file name
    and a message may quote the student, so '=HYPERLINK(...)' gets a leading apostrophe. Numbers stay."""
    if isinstance(cell, str) and cell.startswith(_FORMULA):
        try:
            float(cell)
        except ValueError:
            return "'" + cell
    return cell


def _csv(columns: list[str], rows: list[list], head: list[list] | None = None, lineterminator: str = "\r\n") -> str:
    """CSV text through pandas: the header, any `head` rows as they are (Canvas's points row), then the
    rows with every cell guarded (`_cell`). Cells keep their Python values (object columns), so 387 is
    written 387 and 0.93 0.93, as the csv module writes them, never 387.0."""
    import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

    body = [[_cell(c) for c in row] for row in rows]
    df = pd.DataFrame([*(head or []), *body], columns=pd.Index(columns, dtype=object), dtype=object)
    return df.to_csv(index=False, lineterminator=lineterminator, na_rep="")


def _test_columns(results: list[SubmissionResult]) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's test columns, one per test in the order the tests ran (`test:NAME` for a public test,
    `hidden-test:NAME` for a hidden one), and per result the outcome under each."""
    from autograder.frames import ran_tests

    names: list[str] = []
    cells: list[dict[str, str]] = []
    for r in results:
        mine: dict[str, str] = {}
        for _, t in ran_tests(r):
            name = f"{'test' if t.public else 'hidden-test'}:{t.name}"
            n = 1
            while (name if n == 1 else f"{name} ({n})") in mine:  # two tests of one name (a kit's and a hidden one)
                n += 1
            name = name if n == 1 else f"{name} ({n})"
            mine[name] = t.outcome
            if name not in names:
                names.append(name)
        cells.append(mine)
    return names, cells


def to_csv(results: list[SubmissionResult]) -> str:
    """One row per student: verdict, then status and value per criterion (columns in rubric order), the
    reasons, then the outcome of each test the rubric ran (columns `test:NAME` and `hidden-test:NAME`, in
    the order they ran; empty where a student's tests did not run). For staff: hidden tests are named."""
    ids: list[str] = []
    for r in results:
        ids += [c.id for c in r.criteria if c.id not in ids]
    tests, outcomes = _test_columns(results)
    rows = []
    for r, ran in zip(results, outcomes, strict=True):
        by_id = {c.id: c for c in r.criteria}
        cells: list[object] = []
        for i in ids:
            c = by_id.get(i)
            cells += [c.status, "" if c.value is None else c.value] if c else ["", ""]
        reasons = " | ".join(f"{c.id}: {c.message}" for c in r.failed() if c.status != "skipped")
        rows.append([r.student, r.verdict, r.graded_at.isoformat(), r.submission_hash[:16], *cells, reasons,
                     *(ran.get(t, "") for t in tests)])
    columns = (["student", "verdict", "graded_at", "submission_hash"]
               + [f"{i}:{part}" for i in ids for part in ("status", "value")] + ["reasons", *tests])
    return _csv(columns, rows)


def module_json(grades: list[ModuleGrade]) -> str:
    return json.dumps([g.model_dump(mode="json") for g in grades], indent=2) + "\n"


def module_csv(course: CourseSpec, grades: list[ModuleGrade]) -> str:
    """One row per student: the module grade, its date, each lab's verdict, and what is missing."""
    rows = [[g.student, g.name, g.grade, g.exam_date.isoformat() if g.exam_date else "",
             *(s.verdict or "" for s in g.labs), " | ".join(g.missing)] for g in grades]
    return _csv(["student", "name", "grade", "examination_date", *(e.lab for e in course.labs), "missing"], rows)


def canvas_csv(rows: list[tuple[RosterEntry, str]], assignment: str, points: float) -> str:
    """Canvas's gradebook import: its five student columns, then the assignment column, with the
    points-possible row Canvas's own export has second."""
    body = [[entry.name or entry.student, entry.canvas_id, entry.sis_user_id, entry.sis_login_id, entry.section,
             value] for entry, value in rows]
    return _csv([*CANVAS_COLUMNS, assignment], body, head=[[POINTS_POSSIBLE, "", "", "", "", _number(points)]],
                lineterminator="\n")


def to_gradescope(result: SubmissionResult, titles: dict[str, str] | None = None, points: float = 1.0,
                  visibility: Visibility = "visible", board: list[dict[str, Any]] | None = None
                  ) -> dict[str, Any]:
    """Gradescope's autograder results.json for one submission. The score is the verdict (all points
    for G, none otherwise); each criterion is a test with its status and the lines the student's
    feedback has, and each public test is one too. Hidden tests are never named: the hidden-tests
    criterion's own message says how many failed. `board` (publish/leaderboard.py, `gradescope`), for a
    lab with a leaderboard, is the top-level `leaderboard` field."""
    titles = titles or {}
    tests: list[dict[str, Any]] = []
    for c in result.criteria:
        lines = [c.message]
        if c.status != "pass" and c.advice:
            lines.append(c.advice)
        if c.override is not None:
            lines.append(f"A teacher decided ({c.override.status}): {c.override.note}")
        title = titles.get(c.id, "")
        tests.append(_gs_test(f"{c.id}: {title}" if title else c.id, c.status == "pass", "\n".join(lines),
                              visibility, [c.id] if c.required else [c.id, "optional"]))
        if c.kind == "hidden-tests":
            for t in result.tests:
                if t.public:
                    output = "" if t.outcome == "passed" else t.message or t.outcome
                    tests.append(_gs_test(f"{c.id}: {t.name}", t.outcome == "passed", output, visibility,
                                          [c.id, "public-test"]))
    duration = sum(result.timings.values()) or (result.execution.duration_s if result.execution else 0.0)
    doc: dict[str, Any] = {
        "score": float(points) if result.verdict == "G" else 0.0,
        "execution_time": round(duration),
        "output": verdict_line(result),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": visibility,
        "stdout_visibility": "hidden",
        "extra_data": {"lab": result.lab, "verdict": result.verdict, "lab_version": result.lab_version},
        "tests": tests,
    }
    if board:
        doc["leaderboard"] = board
    return doc


def _gs_test(name: str, passed: bool, output: str, visibility: Visibility, tags: list[str]) -> dict[str, Any]:
    # Scores live at the top (U/G is not a sum of points); a test only passes or fails.
    return {"name": strip_ansi(name), "score": 0.0, "max_score": 0.0, "status": "passed" if passed else "failed",
            "output": strip_ansi(output), "output_format": "text", "visibility": visibility, "tags": tags}


def verdict_line(result: SubmissionResult) -> str:
    failed = [c.id for c in result.failed() if c.status != "skipped"] or [c.id for c in result.failed()]
    if result.verdict == "G":
        return "G (pass): every required criterion is met."
    if result.verdict == "U":
        return f"U (not passed yet): {', '.join(failed)} not met; each test below says what to do."
    if result.verdict == "review":
        return f"Waiting for a teacher's decision on {', '.join(failed)}; the result is not final."
    return "The grader could not grade this submission; a teacher will look at it. This is not held against you."


@dataclass
class ExportOptions:
    """What the CLI's export options set; every field has the default a plain export uses."""

    roster: Path | None = None  # the roster CSV; default: the course's
    assignment: str | None = None  # canvas: the column, 'Lab 1 (12345)'; default: from course.yaml
    points: float = 1.0  # canvas, gradescope: the points G is worth
    canvas_grading: Literal["points", "complete"] = "points"  # complete: 'complete'/'incomplete' cells
    allow_pending: bool = False  # publish review/error (module: pending) as not G instead of holding back
    exam_date: date | None = None  # ladok, module grades: the examination date, over the course's rule
    include_failed: bool = False  # ladok: report U too (for students whose every required lab is final)
    students: list[str] | None = None  # only these students (a Gradescope run grades one)
    root: Path | None = None  # the course folder, for criterion titles in Gradescope
    visibility: Visibility = "visible"  # gradescope: when students see the results
    send: bool = False  # ladok: report to Ladok through ladok3 (nothing is sent without it)
    finalize: bool = False  # ladok --send: mark results ready for attestation (klarmarkera)
    graders: list[str] = field(default_factory=list)  # ladok --finalize: 'Name <email>' of who graded
    session: Any = None  # ladok: a ladok3.LadokSession (tests pass a fake); default: opened on --send


class ExportReport(BaseModel):
    format: str
    target: str = Field(description="The lab, or the course code for module grades.")
    written: list[Path] = Field(default_factory=list)
    published: list[str] = Field(default_factory=list, description="Students in the export.")
    blocked: list[str] = Field(default_factory=list, description="Held back: in review or error (module: pending).")
    unknown: list[str] = Field(default_factory=list, description="With a result, but the roster can't map them.")
    missing: list[str] = Field(default_factory=list, description="On the roster without a result.")
    notes: list[str] = Field(default_factory=list)
    ladok_actions: list[ladok.LadokAction] = Field(default_factory=list,
                                                   description="ladok: the dry run, or what --send did.")
    sent: bool = False

    @property
    def complete(self) -> bool:
        """Everyone with a result was published, and Ladok took every row it was sent."""
        bad = {"failed", "conflict"}
        held = self.unknown if self.format in ROSTER_BOUND else []
        return not self.blocked and not held and not any(a.action in bad for a in self.ladok_actions)

    def lines(self) -> list[str]:
        """What the CLI prints on stderr after an export."""
        out = []
        where = ", ".join(str(p) for p in self.written[:3]) + (f" and {len(self.written) - 3} more"
                                                               if len(self.written) > 3 else "")
        out.append(f"{self.format} export of {self.target}: {_count(len(self.published), 'student')}"
                   + (f" written to {where}" if where else ""))
        if self.blocked:
            then = ("they are reported once decided" if self.format == "ladok"
                    else "or pass --allow-pending to publish them as not G")
            out.append(f"held back {_count(len(self.blocked), 'student')} waiting for a teacher's review or with a "
                       f"grading error: {', '.join(self.blocked)} (decide with `autograder review`; {then})")
        if self.unknown and self.format in ROSTER_BOUND:
            out.append(f"not published, the roster cannot map them: {', '.join(self.unknown)} (add them to the "
                       "roster with the ids this export needs)")
        elif self.unknown:
            out.append(f"not on the roster (exported all the same): {', '.join(self.unknown)}")
        if self.missing:
            out.append(f"on the roster without a result: {', '.join(self.missing)}")
        out += self.notes
        if self.ladok_actions or self.format == "ladok":
            out += ladok.describe(self.ladok_actions, self.sent)
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass
class _Row:
    """One student as an export sees them: the verdict or module grade, and where it came from."""

    student: str
    grade: str  # G, U, review, error (a lab) or G, U, pending (the module)
    result: SubmissionResult | None = None
    module: ModuleGrade | None = None
    exam_date: date | None = None

    @property
    def pending(self) -> bool:
        return self.grade in ("review", "error", "pending")


def export(store: Store, fmt: str, out: Path | str, lab: str | None = None, course: CourseSpec | None = None,
           options: ExportOptions | None = None) -> ExportReport:
    """Export a lab's results (`lab`), or the course's module grades (`course` without `lab`; with
    both, the lab's results with the course's roster, Canvas column and Ladok codes). `out` is a
    file, '-' for stdout, or for gradescope a folder (one <student>/results.json each) or one
    results.json when a single student is exported."""
    o = options or ExportOptions()
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if lab is None and course is None:
        raise UserError("nothing to export: name a lab", "or pass --course course.yaml for the module grades")
    if fmt == "gradescope" and lab is None:
        raise UserError("gradescope takes one lab: its results.json is per assignment",
                        "name the lab, e.g. `autograder export lab1-mlp --format gradescope -o results/`")
    # A lab's results, or (no lab, so a course) the module grades.
    module = course if lab is None else None
    target = lab if lab is not None else course.code if course is not None else ""
    report = ExportReport(format=fmt, target=target)
    roster = _roster(fmt, course, o)
    rows = _module_rows(store, module, roster, o) if module is not None else _lab_rows(store, target, course, o)
    if o.students is not None:
        wanted = set(o.students)
        unknown = wanted - {r.student for r in rows}
        if unknown:
            raise UserError(f"no result for {', '.join(sorted(unknown))} in {target}",
                            f"students with results: {', '.join(r.student for r in rows[:20]) or 'none'}")
        rows = [r for r in rows if r.student in wanted]

    if roster is not None:
        present = {r.student for r in rows}
        report.unknown = [r.student for r in rows if roster.get(r.student) is None]
        report.missing = [s for s in roster.students if s not in present and (o.students is None or s in o.students)]
    if fmt in PUBLISHING:
        if o.allow_pending:
            pending = [r.student for r in rows if r.pending]
            if pending:
                report.notes.append(f"published as not G although still pending: {', '.join(pending)}")
        else:
            report.blocked = [r.student for r in rows if r.pending]
    held = set(report.blocked) | (set(report.unknown) if fmt in ("canvas", "ladok") else set())
    publish = [r for r in rows if r.student not in held]

    if fmt in ("json", "csv"):
        if module is not None:
            text = module_json(_modules(publish)) if fmt == "json" else module_csv(module, _modules(publish))
        else:
            text = to_json(_results(publish)) if fmt == "json" else to_csv(_results(publish))
        report.published = [r.student for r in publish]
        _emit(out, text, report)
    elif fmt == "gradescope":
        _gradescope(publish, target, o, out, report)
    elif roster is None:  # _roster raises first: canvas and ladok cannot go without one
        raise _no_roster(fmt)
    elif fmt == "canvas":
        _canvas(publish, roster, lab, course, o, out, report)
    else:
        _ladok(publish, roster, lab, course, o, out, report)
    return report


def _results(rows: list[_Row]) -> list[SubmissionResult]:
    """The results a lab's rows carry, every one of them."""
    results = [r.result for r in rows if r.result is not None]
    if len(results) != len(rows):
        lacking = ", ".join(r.student for r in rows if r.result is None)
        raise AutograderError(f"export: no recorded result behind the rows of {lacking}",
                              "a harness bug: report it with the command you ran")
    return results


def _modules(rows: list[_Row]) -> list[ModuleGrade]:
    """The module grades the course's rows carry, every one of them."""
    modules = [r.module for r in rows if r.module is not None]
    if len(modules) != len(rows):
        lacking = ", ".join(r.student for r in rows if r.module is None)
        raise AutograderError(f"export: no module grade behind the rows of {lacking}",
                              "a harness bug: report it with the command you ran")
    return modules


def _roster(fmt: str, course: CourseSpec | None, o: ExportOptions) -> Roster | None:
    if o.roster is not None:
        return load_roster(o.roster)
    if fmt != "gradescope" and course is not None and course.roster_path is not None:
        return load_roster(course.roster_path)
    if fmt in ROSTER_BOUND:
        raise _no_roster(fmt)
    return None


def _no_roster(fmt: str) -> UserError:
    need = "canvas_id or sis_user_id" if fmt == "canvas" else "ladok_id"
    return UserError(f"the {fmt} export needs a roster that maps students to their {need}",
                     "pass --roster roster.csv, or --course course.yaml with a `roster`")


def _lab_rows(store: Store, lab: str, course: CourseSpec | None, o: ExportOptions) -> list[_Row]:
    results = store.latest(lab)
    if not results:
        known = ", ".join(store.labs()) or "none"
        raise UserError(f"no results for lab {lab!r} in {store.path}", f"labs with results: {known}")
    rows = []
    for r in results:
        when = o.exam_date
        if when is None and course is not None:
            when = course.examination_date if isinstance(course.examination_date, date) else course.local_date(
                earned_at(r))  # the hand-in's day: a regrade does not move it
        rows.append(_Row(student=r.student, grade=r.verdict, result=r, exam_date=when))
    return rows


def _module_rows(store: Store, course: CourseSpec, roster: Roster | None, o: ExportOptions) -> list[_Row]:
    grades = course_results(course, store, roster, o.exam_date)
    # A student with no result in any lab has nothing to publish: the roster lists them as missing.
    handed_in = [g for g in grades if any(s.verdict is not None for s in g.labs)]
    if not handed_in:
        raise UserError(f"no results for any lab of {course.code} in {store.path}",
                        f"the course's labs: {', '.join(e.lab for e in course.labs)}; "
                        f"labs with results: {', '.join(store.labs()) or 'none'}")
    return [_Row(student=g.student, grade=g.grade, module=g, exam_date=g.exam_date) for g in handed_in]


def _canvas(rows: list[_Row], roster: Roster, lab: str | None, course: CourseSpec | None, o: ExportOptions,
            out: Path | str, report: ExportReport) -> None:
    assignment = o.assignment
    if assignment is None and course is not None:
        assignment = require_lab(course, lab).canvas_assignment if lab else course.canvas_assignment
    if not assignment:
        raise UserError("the canvas export needs the gradebook column's name",
                        "pass --assignment 'Lab 1 (12345)', as the header of Canvas's gradebook export names it, "
                        "or set canvas_assignment in course.yaml")
    if not assignment.rstrip().endswith(")"):
        report.notes.append(f"{assignment!r} has no Canvas assignment id in brackets: Canvas matches the column "
                            "by name, or makes a new assignment")
    cells = []
    for r in rows:
        entry = roster.get(r.student)
        if entry is None:  # held back before this; never published without one
            report.unknown.append(r.student)
            continue
        if not (entry.canvas_id or entry.sis_user_id or entry.sis_login_id):
            report.unknown.append(r.student)
            report.notes.append(f"{r.student} is on the roster without a Canvas id (canvas_id, sis_user_id or "
                                "sis_login_id)")
            continue
        passed = r.grade == "G"
        if o.canvas_grading == "complete":
            value = "complete" if passed else "incomplete"
        else:
            value = _number(o.points if passed else 0)
        cells.append((entry, value))
        report.published.append(r.student)
    _emit(out, canvas_csv(cells, assignment, o.points), report)


def _gradescope(rows: list[_Row], lab: str, o: ExportOptions, out: Path | str, report: ExportReport) -> None:
    if str(out) == "-":
        raise UserError("gradescope writes files, one results.json per student",
                        "pass -o FOLDER, or -o results.json with --student STUDENT")
    from autograder.publish import leaderboard  # here: it reads metrics (numpy), which `autograder --help` need not

    titles = _titles(lab, o.root, report)
    rubric = _rubric(lab, o.root)
    ranked = rubric.leaderboard if rubric is not None else None
    unranked: list[str] = []  # students of a leaderboard lab whose result has no value to rank
    out = Path(out)
    if out.suffix == ".json":
        if len(rows) != 1:
            raise UserError(f"-o {out} is one results.json, but {len(rows)} students would go in it",
                            "pick one with --student, or pass a folder for one results.json per student")
        files = {out: rows[0]}
    else:
        files = {out / _safe_name(r.student) / "results.json": r for r in rows}
    for (path, row), result in zip(files.items(), _results(list(files.values())), strict=True):
        board = leaderboard.gradescope(rubric, result) if rubric is not None else None
        doc = to_gradescope(result, titles, o.points, o.visibility, board)
        _write_text(path, json.dumps(doc, indent=2) + "\n")
        report.written.append(path)
        report.published.append(row.student)
        if ranked is not None and board is None:
            unranked.append(row.student)
    if ranked is not None and unranked:
        report.notes.append(f"not on Gradescope's leaderboard (no measured {ranked.criterion}): {', '.join(unranked)}")


def _ladok(rows: list[_Row], roster: Roster, lab: str | None, course: CourseSpec | None, o: ExportOptions,
           out: Path | str, report: ExportReport) -> None:
    if course is None:
        raise UserError("the ladok export needs the course's codes", "pass --course course.yaml")
    module = course.module
    if lab is not None:
        lab_module = require_lab(course, lab).module
        if not lab_module:
            raise UserError(f"{lab} has no Ladok module of its own in course.yaml",
                            "report the module grade (--course without a lab), or set `module` for the lab")
        module = lab_module
    entries = []
    for r in rows:
        final = r.module.complete if r.module is not None else r.grade in ("G", "U")
        if not (r.grade == "G" or (o.include_failed and r.grade == "U" and final)):
            continue
        entry = roster.get(r.student)
        if entry is None:  # held back before this; never published without one
            report.unknown.append(r.student)
            continue
        if not entry.ladok_id:
            report.unknown.append(r.student)
            report.notes.append(f"{r.student} is on the roster without a ladok_id")
            continue
        if r.exam_date is None:  # a lab export without a course date rule gets the course's
            raise UserError(f"no examination date for {r.student}", "pass --date YYYY-MM-DD")
        grade = course.ladok_grades.G if r.grade == "G" else course.ladok_grades.U
        entries.append(ladok.LadokRow(student=r.student, name=entry.name, ladok_id=entry.ladok_id,
                                      course=course.course, module=module, grade=grade, exam_date=r.exam_date))
        report.published.append(r.student)
    if not o.include_failed:
        not_g = sum(r.grade != "G" for r in rows)
        if not_g:
            report.notes.append(f"{_count(not_g, 'student')} without G not in the Ladok list (--include-failed "
                                "adds U where every required lab is final)")
    _emit(out, ladok.to_csv(entries), report)
    if o.send:
        session = o.session if o.session is not None else ladok.open_session()
        report.ladok_actions = ladok.send(entries, session, o.finalize, o.graders)
        report.sent = True
    else:
        report.ladok_actions = ladok.plan(entries, o.session)


def _titles(lab: str, root: Path | None, report: ExportReport) -> dict[str, str]:
    """Criterion id -> title from the rubric, so a student reads 'Accuracy on the hidden test set'."""
    from autograder.labs.lab import find_root
    from autograder.labs.loading import load_model
    from autograder.labs.rubric import Rubric

    try:
        path = find_root(root) / "rubrics" / f"{lab}.yaml"
    except UserError:
        report.notes.append("no course folder found: the tests are named by criterion id (pass --root for titles)")
        return {}
    if not path.is_file():
        report.notes.append(f"{path} not found: the tests are named by criterion id")
        return {}
    return {c.id: c.title for c in load_model(path, Rubric).criteria if c.title}


def _rubric(lab: str, root: Path | None) -> Rubric | None:
    """The lab's rubric for its leaderboard block; None where it cannot be found (_titles has said so)."""
    from autograder.labs.lab import find_root
    from autograder.labs.loading import load_model
    from autograder.labs.rubric import Rubric

    try:
        path = find_root(root) / "rubrics" / f"{lab}.yaml"
    except UserError:
        return None
    return load_model(path, Rubric) if path.is_file() else None


def _safe_name(student: str) -> str:
    """A student id as one folder name: ids come from file names, but never trust them as paths."""
    name = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in student).lstrip(".")
    return name or "_"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _emit(out: Path | str, text: str, report: ExportReport) -> None:
    if str(out) == "-":
        sys.stdout.write(text)
        return
    _write_text(Path(out), text)
    report.written.append(Path(out))


def _write_text(out: Path, text: str) -> None:
    """Replace a regular file atomically (no half-written export); write through anything else
    (a symlink, a pipe, /dev/stdout) rather than replacing it with a file."""
    if out.exists() and (out.is_symlink() or not out.is_file()):
        with out.open("w", encoding="utf-8") as f:
            f.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)


def write(results: list[SubmissionResult], fmt: Format, out: Path) -> None:
    _write_text(out, to_json(results) if fmt == "json" else to_csv(results))
