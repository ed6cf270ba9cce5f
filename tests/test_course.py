"""The course roll-up: course.yaml and the roster load or say what is wrong; the module grade is G
only when every required lab is G, and everyone else is told what is missing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from autograder.errors import ConfigError
from autograder.publish.course import (
    CourseSpec,
    course_results,
    lab_headings,
    load_course,
    load_roster,
    missing_lines,
    module_grade,
    results_table,
    summary,
)
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import Store

REPO = Path(__file__).resolve().parents[1]
COHORTS = REPO / "examples" / "submissions"


def result(student: str, lab: str, verdict: str, at: datetime | None = None) -> SubmissionResult:
    status = {"G": "pass", "U": "fail"}.get(verdict, verdict)
    return SubmissionResult(lab=lab, student=student, submission_hash=f"{lab}-{student}", lab_version="1",
                            rubric_hash="r", verdict=verdict,
                            criteria=[CriterionResult(id="test-accuracy", kind="metric", status=status, message="m")],
                            graded_at=at or datetime(2025, 1, 10, 12, tzinfo=UTC))


def course(**kw) -> CourseSpec:
    data = {"course": "DT9000", "module": "LAB1",
            "labs": [{"lab": "lab1-mlp"}, {"lab": "lab2-cnn"}, {"lab": "lab3-autoencoder", "required": False}]}
    return CourseSpec.model_validate({**data, **kw})


def test_the_course_file_names_the_three_labs_and_a_roster_of_the_sample_cohorts():
    spec = load_course(REPO / "course.yaml", REPO)
    assert spec.code == "DT9000 / LAB1"
    assert [(e.lab, e.required) for e in spec.labs if e.required] == [
        ("lab1-mlp", True), ("lab2-cnn", True), ("lab3-autoencoder", True)]
    roster = load_roster(spec.roster_path)
    handed_in = {p.stem for lab in COHORTS.iterdir() if spec.lab(lab.name) for p in lab.iterdir()}
    assert set(roster.students) - handed_in == {"absent"}  # on the roll, never handed anything in
    assert handed_in - set(roster.students) == {"flood_output"}  # a cohort student the roster lacks
    for entry in roster.students.values():
        assert entry.name and entry.canvas_id and entry.sis_user_id and entry.section and entry.ladok_id


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["labs"].__setitem__(0, {"lab": "lab1-mpl"}), "labs[0].lab", "no lab named 'lab1-mpl'"),
    (lambda d: d.pop("module"), "module", "Field required"),
    (lambda d: d.__setitem__("timezone", "Mars/Olympus"), "timezone", "unknown time zone"),
    (lambda d: d.__setitem__("examination_date", "tomorrow"), "examination_date", "neither `last-result`"),
    (lambda d: d["labs"].append({"lab": "lab2-cnn"}), "labs", "listed twice"),
    (lambda d: d.__setitem__("roster", "nowhere.csv"), "roster", "not found"),
    (lambda d: d.__setitem__("labz", []), "labz", "Extra inputs"),
])
def test_a_malformed_course_file_names_the_file_the_field_and_a_fix(tmp_path, change, field, words):
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["roster"] = str(REPO / "examples" / "roster.csv")
    change(data)
    path = tmp_path / "course.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_course(path, REPO)
    assert info.value.path == path and info.value.field == field and words in info.value.problem
    assert str(path) in str(info.value)


def test_a_roster_takes_other_column_names_and_a_spreadsheets_bom(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("\ufeffStudent,Name,ID,SIS ID,Login,Section,Personnummer,Extra\n"
                    " ana ,Ana,7, S1,ana1,A,uid-1,x\n\n", encoding="utf-8")
    entry = load_roster(path).get("ana")
    assert (entry.canvas_id, entry.sis_user_id, entry.sis_login_id, entry.ladok_id) == ("7", "S1", "ana1", "uid-1")


@pytest.mark.parametrize("text, field, words", [
    ("name,canvas_id\nAna,1\n", "student", "no `student` column"),
    ("student,name\nana,Ana\nana,Ana B\n", "line 3", "listed twice"),
    ("student,name\nana,Ana,extra\n", "line 2", "3 cells under 2 columns"),
    ("student,name\n,Ana\n", "line 2: student", "at least 1 character"),
    ("", None, "empty file"),
])
def test_a_bad_roster_names_the_line_and_column(tmp_path, text, field, words):
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_roster(path)
    assert info.value.field == field and words in info.value.problem


def test_the_module_is_g_only_when_every_required_lab_is_g(store: Store):
    late = datetime(2025, 1, 16, 23, 30, tzinfo=UTC)  # the 17th in Stockholm
    for r in (result("ana", "lab1-mlp", "G"), result("ana", "lab2-cnn", "G", late),
              result("bo", "lab1-mlp", "G"), result("bo", "lab2-cnn", "U"), result("bo", "lab3-autoencoder", "G"),
              result("cy", "lab1-mlp", "G"), result("cy", "lab2-cnn", "review"),
              result("dan", "lab1-mlp", "error"), result("dan", "lab2-cnn", "U"),
              result("eve", "lab2-cnn", "G"), result("eve", "lab3-autoencoder", "U")):
        store.record(r)
    grades = {g.student: g for g in course_results(course(), store)}
    assert {s: g.grade for s, g in grades.items()} == {"ana": "G", "bo": "U", "cy": "pending", "dan": "U", "eve": "U"}
    assert grades["ana"].missing == [] and grades["ana"].exam_date == date(2025, 1, 17)
    assert grades["ana"].complete and grades["bo"].complete and not grades["cy"].complete
    assert grades["bo"].missing == ["lab2-cnn: U (test-accuracy)"]  # the optional lab3 is never required
    assert grades["cy"].missing == ["lab2-cnn: waiting for a teacher's review (test-accuracy)"]
    assert grades["cy"].exam_date is None
    assert grades["dan"].missing[0].startswith("lab1-mlp: the grader could not grade it")
    assert grades["eve"].missing == ["lab1-mlp: not handed in"]
    assert [s.verdict for s in grades["eve"].labs] == [None, "G", "U"]
    fixed = course_results(course(examination_date="2025-02-01"), store, on=None)
    assert fixed[0].exam_date == date(2025, 2, 1)
    assert course_results(course(), store, on=date(2025, 3, 3))[0].exam_date == date(2025, 3, 3)


def test_the_roster_adds_who_never_handed_in_and_marks_who_it_lacks(store: Store, tmp_path):
    store.record(result("ana", "lab1-mlp", "G"))
    store.record(result("zed", "lab1-mlp", "G"))
    roster = tmp_path / "r.csv"
    roster.write_text("student,name\nana,Ana A\nfia,Fia F\n")
    spec = course(roster=str(roster))
    grades = course_results(spec, store)
    assert [(g.student, g.name, g.in_roster, g.grade) for g in grades] == [
        ("ana", "Ana A", True, "U"), ("fia", "Fia F", True, "U"), ("zed", "", False, "U")]
    assert grades[1].missing == ["lab1-mlp: not handed in", "lab2-cnn: not handed in"]
    console = Console(record=True, width=200)
    console.print(results_table(spec, grades))
    text = console.export_text()
    assert "DT9000 / LAB1" in text and "not in the roster" in text
    assert "lab3*" in text and "lab1 = lab1-mlp" in text and "optional: lab3 = lab3-autoencoder" in text
    assert summary(grades) == "3 students: U: 3"


def test_what_is_missing_goes_under_a_narrow_table_each_line_escaped():
    g = module_grade(course(), "ana\x1b[31m", {"lab1-mlp": result("ana", "lab1-mlp", "G")})
    console = Console(record=True, width=80)
    console.print(results_table(course(), [g], missing=False))
    for line in missing_lines([g]):
        console.print(line)
    text = console.export_text()
    assert "Missing" not in text.split("lab1 = ")[0]  # no column for it
    assert "ana:\n  lab2-cnn: not handed in\n" in text and "\x1b" not in text  # the escape sequence dropped


def test_lab_columns_are_headed_short_where_that_is_unique():
    assert lab_headings(["lab1-mlp", "lab2-cnn"]) == {"lab1-mlp": "lab1", "lab2-cnn": "lab2"}
    assert lab_headings(["lab1-mlp", "lab1-extra", "final"]) == {"lab1-mlp": "lab1-mlp", "lab1-extra": "lab1-extra",
                                                                "final": "final"}


def test_a_student_named_like_markup_is_printed_as_text():
    g = module_grade(course(), "[bold]x[/bold]", {"lab1-mlp": result("x", "lab1-mlp", "G")})
    console = Console(record=True, width=200)
    console.print(results_table(course(), [g]))
    assert "[bold]x[/bold]" in console.export_text()


@pytest.mark.slow
def test_the_roll_up_on_the_graded_lab1_cohort(graded_cohort):
    results, store = graded_cohort("lab1-mlp")
    spec = load_course(REPO / "course.yaml", REPO)
    grades = {g.student: g for g in course_results(spec, store)}
    assert set(grades) == set(results) | set(load_roster(spec.roster_path).students)
    assert all(g.grade != "G" for g in grades.values())  # lab2 and lab3 are not graded in this store
    assert grades["good"].missing == ["lab2-cnn: not handed in", "lab3-autoencoder: not handed in"]
    assert grades["copycat"].missing[0].startswith("lab1-mlp: waiting for a teacher's review")
    assert grades["underfit"].missing[0].startswith("lab1-mlp: U (")
    assert not grades["flood_output"].in_roster and grades["absent"].labs[0].verdict is None
    lab1_only = spec.model_copy(update={"labs": spec.labs[:1]})
    lab1_only._folder = spec._folder
    passed = sorted(g.student for g in course_results(lab1_only, store) if g.grade == "G")
    assert passed == sorted(s for s, r in results.items() if r.verdict == "G")
    assert "good" in passed


def test_the_examination_date_is_the_day_of_the_hand_in_and_a_forced_regrade_does_not_move_it(store: Store):
    """Before hand-in times were kept, the date was the day of the latest grading: `grade --force` a
    week later moved every student's examination date in Ladok."""
    handed = datetime(2025, 1, 16, 23, 30, tzinfo=UTC)  # the 17th in Stockholm
    for lab in ("lab1-mlp", "lab2-cnn"):
        first = result("ana", lab, "G", datetime(2025, 1, 18, 9, tzinfo=UTC))
        first.handed_in = handed if lab == "lab2-cnn" else datetime(2025, 1, 10, 9, tzinfo=UTC)
        store.record(first)
    regraded = result("ana", "lab2-cnn", "G", datetime(2025, 2, 20, 9, tzinfo=UTC))  # --force, a month on
    regraded.handed_in = handed
    store.record(regraded)
    [grade] = course_results(course(), store)
    assert grade.grade == "G" and grade.exam_date == date(2025, 1, 17)
    # A result recorded before hand-in times were kept falls back to when it was graded.
    store.record(result("bo", "lab1-mlp", "G", datetime(2025, 1, 5, tzinfo=UTC)))
    store.record(result("bo", "lab2-cnn", "G", datetime(2025, 1, 6, tzinfo=UTC)))
    assert course_results(course(), store)[1].exam_date == date(2025, 1, 6)


def test_deadlines_are_read_in_the_course_zone_and_extensions_are_the_students_own():
    spec = course(labs=[{"lab": "lab1-mlp", "deadline": "2026-02-13 17:00",
                         "extensions": {"ana": "2026-02-20 17:00"}, "late_policy": "review"},
                        {"lab": "lab2-cnn", "deadline": "2026-02-20T17:00:00+00:00"}],
                  late_policy="fail")
    deadline, extended = spec.deadline("lab1-mlp", "bo")
    assert deadline.isoformat() == "2026-02-13T17:00:00+01:00" and not extended  # Stockholm, winter time
    assert spec.deadline("lab1-mlp", "ana") == (datetime(2026, 2, 20, 16, tzinfo=UTC), True)
    assert spec.deadline("lab2-cnn", "ana")[0] == datetime(2026, 2, 20, 17, tzinfo=UTC)
    assert spec.deadline("lab3-autoencoder", "ana") == (None, False)
    assert spec.late_policy_of("lab1-mlp") == "review" and spec.late_policy_of("lab2-cnn") == "fail"


@pytest.mark.parametrize("labs, field, words", [
    ([{"lab": "lab1-mlp", "deadline": "2026-02-13"}], "labs[0].deadline", "no time of day"),
    ([{"lab": "lab1-mlp", "deadline": "Friday"}], "labs[0].deadline", "datetime"),
    ([{"lab": "lab1-mlp", "extensions": {"ana": "2026-02-13"}}], "labs[0].extensions", "no time of day"),
    ([{"lab": "lab1-mlp", "extensions": {"nobody": "2026-02-20 17:00"}}], "labs[0].extensions.nobody",
     "not on the roster"),
    ([{"lab": "lab1-mlp", "late_policy": "ignore"}], "labs[0].late_policy", "'mark', 'review' or 'fail'"),
])
def test_a_careless_deadline_names_its_field(tmp_path, labs, field, words):
    data = yaml.safe_load((REPO / "course.yaml").read_text())
    data["roster"] = str(REPO / "examples" / "roster.csv")
    data["labs"] = labs
    path = tmp_path / "course.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_course(path, REPO)
    assert info.value.field == field and words in info.value.problem


def test_a_roster_keeps_the_columns_a_download_is_matched_by(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("Student,Name,Participant ID,E-mail,Kth Id\nana,\"Åberg, Ana\",5101,ana@x.se,u1ana\n",
                    encoding="utf-8")
    entry = load_roster(path).get("ana")
    assert (entry.name, entry.moodle_id, entry.email) == ("Åberg, Ana", "5101", "ana@x.se")
    assert entry.column("kth_id") == "u1ana" and entry.column("nothing") == ""


def test_a_roster_that_is_not_utf8_or_not_a_file_says_so(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("student,name\nana,Åberg\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_roster(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_roster(tmp_path / "nowhere.csv")
