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
    load_course,
    load_roster,
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
    assert [(e.lab, e.required) for e in spec.labs] == [("lab1-mlp", True), ("lab2-cnn", True),
                                                        ("lab3-autoencoder", True)]
    roster = load_roster(spec.roster_path)
    handed_in = {p.stem for lab in COHORTS.iterdir() for p in lab.iterdir()}
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
    assert "DT9000 / LAB1" in text and "not in the roster" in text and "lab3-autoencoder (optional)" in text
    assert summary(grades) == "3 students: U: 3"


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
