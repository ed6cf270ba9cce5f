"""Exports checked against the structure each system documents: Canvas's gradebook CSV (read back
with pandas), Gradescope's results.json, the Ladok list and its dry run; pending students held back."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from autograder.errors import UserError
from autograder.publish import ladok
from autograder.publish.course import CourseSpec, load_course
from autograder.publish.export import (
    CANVAS_COLUMNS,
    POINTS_POSSIBLE,
    ExportOptions,
    export,
    to_csv,
    to_gradescope,
)
from autograder.results import CriterionResult, ExecutionResult, HiddenTestResult, Override, SubmissionResult
from autograder.store import Store

REPO = Path(__file__).resolve().parents[1]
ROSTER_HEADER = "student,name,canvas_id,sis_user_id,sis_login_id,section,ladok_id\n"


# --- Gradescope's documented structure (gradescope-autograders.readthedocs.io, "Autograder Specifications")
NUMBER = (int, float)
GS_TOP = {"score": NUMBER, "execution_time": NUMBER, "output": str, "output_format": str, "test_output_format": str,
          "test_name_format": str, "visibility": str, "stdout_visibility": str, "extra_data": dict, "tests": list,
          "leaderboard": list}
GS_TEST = {"score": NUMBER, "max_score": NUMBER, "status": str, "name": str, "name_format": str, "number": str,
           "output": str, "output_format": str, "tags": list, "visibility": str, "extra_data": dict}
GS_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
GS_OUTPUT_FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def check_gradescope(doc: dict) -> None:
    assert set(doc) <= set(GS_TOP), set(doc) - set(GS_TOP)
    for key, value in doc.items():
        assert isinstance(value, GS_TOP[key]), key
    assert "score" in doc or all("score" in t for t in doc["tests"])  # the spec asks for one or the other
    for key in ("visibility", "stdout_visibility"):
        assert doc.get(key, "visible") in GS_VISIBILITY
    for key in ("output_format", "test_output_format", "test_name_format"):
        assert doc.get(key, "text") in GS_OUTPUT_FORMATS
    for t in doc["tests"]:
        assert set(t) <= set(GS_TEST), set(t) - set(GS_TEST)
        for key, value in t.items():
            assert isinstance(value, GS_TEST[key]), (t.get("name"), key)
        assert t.get("status", "passed") in {"passed", "failed"}
        assert t.get("visibility", "visible") in GS_VISIBILITY
        assert t["name"]


# --- hand-made results in a temporary store

def crit(cid: str, status: str = "pass", message: str = "", **kw) -> CriterionResult:
    return CriterionResult(id=cid, kind=kw.pop("kind", "metric"), status=status,
                           message=message or f"{cid} is {status}", **kw)


def result(student: str, verdict: str, lab: str = "lab1-mlp", at: datetime | None = None, **kw) -> SubmissionResult:
    criteria = kw.pop("criteria", None) or [
        crit("runs", kind="notebook-runs"),
        crit("test-accuracy", "pass" if verdict == "G" else "fail", advice="Train longer."),
        crit("reflection", {"review": "review", "error": "error"}.get(verdict, "pass"), kind="reflection"),
    ]
    return SubmissionResult(lab=lab, student=student, submission_hash=f"sha-{student}", lab_version="1",
                            rubric_hash="r", verdict=verdict, criteria=criteria,
                            graded_at=at or datetime(2025, 1, 15, 10, tzinfo=UTC), **kw)


@pytest.fixture
def cohort(store: Store) -> Store:
    """ana G, bo U, cy review, dan error, eve G but not on the roster; fia on the roster, no hand-in."""
    for r in (result("ana", "G", timings={"execute": 30.4, "probe": 2.0}), result("bo", "U"),
              result("cy", "review"), result("dan", "error"), result("eve", "G")):
        store.record(r)
    return store


@pytest.fixture
def roster(tmp_path: Path) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER_HEADER + "ana,\"Andersson, Ana\",101,S1,ana001,A,uid-ana\n"
                    "bo,Bo Berg,102,S2,bob002,A,uid-bo\ncy,Cy Carr,103,S3,cyc003,B,uid-cy\n"
                    "dan,Dan Dahl,104,S4,dan004,B,uid-dan\nfia,Fia Falk,106,S6,fia006,B,uid-fia\n", encoding="utf-8")
    return path


def spec(tmp_path: Path, roster: Path | None = None, **kw) -> CourseSpec:
    data = {"course": "DT9000", "module": "LAB1", "labs": [{"lab": "lab1-mlp", "canvas_assignment": "Lab 1 (40901)"}],
            "canvas_assignment": "Lab module (40900)", "roster": str(roster) if roster else None, **kw}
    return CourseSpec.model_validate(data)


# --- canvas

def test_canvas_csv_round_trips_through_pandas_with_ids_mapped_and_pending_held_back(cohort, roster, tmp_path):
    out = tmp_path / "canvas.csv"
    report = export(cohort, "canvas", out, lab="lab1-mlp",
                    options=ExportOptions(roster=roster, assignment="Lab 1 (40901)", points=10))
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == [*CANVAS_COLUMNS, "Lab 1 (40901)"]
    assert df.iloc[0]["Student"] == POINTS_POSSIBLE and df.iloc[0]["Lab 1 (40901)"] == "10"
    students = df.iloc[1:].set_index("ID")
    assert students["Lab 1 (40901)"].to_dict() == {"101": "10", "102": "0"}
    assert students.loc["101", "Student"] == "Andersson, Ana"
    assert students.loc["101", ["SIS User ID", "SIS Login ID", "Section"]].tolist() == ["S1", "ana001", "A"]
    assert report.published == ["ana", "bo"]
    assert report.blocked == ["cy", "dan"]
    assert report.unknown == ["eve"] and report.missing == ["fia"]
    assert not report.complete and report.written == [out]
    text = "\n".join(report.lines())
    assert "cy, dan" in text and "--allow-pending" in text and "eve" in text and "fia" in text


def test_allow_pending_publishes_review_and_error_as_not_g(cohort, roster, tmp_path):
    out = tmp_path / "canvas.csv"
    report = export(cohort, "canvas", out, lab="lab1-mlp", options=ExportOptions(
        roster=roster, assignment="Lab 1 (40901)", allow_pending=True, canvas_grading="complete"))
    df = pd.read_csv(out, dtype=str, keep_default_na=False).iloc[1:]
    assert dict(zip(df["ID"], df["Lab 1 (40901)"])) == {"101": "complete", "102": "incomplete",
                                                         "103": "incomplete", "104": "incomplete"}
    assert report.blocked == [] and any("cy, dan" in n for n in report.notes)


def test_canvas_takes_column_and_roster_from_the_course_and_says_what_it_lacks(cohort, roster, tmp_path):
    out = tmp_path / "c.csv"
    export(cohort, "canvas", out, lab="lab1-mlp", course=spec(tmp_path, roster))
    assert pd.read_csv(out).columns[-1] == "Lab 1 (40901)"
    with pytest.raises(UserError, match="needs a roster"):
        export(cohort, "canvas", out, lab="lab1-mlp", options=ExportOptions(assignment="Lab 1 (1)"))
    with pytest.raises(UserError, match="column's name"):
        export(cohort, "canvas", out, lab="lab1-mlp", options=ExportOptions(roster=roster))
    report = export(cohort, "canvas", out, lab="lab1-mlp", options=ExportOptions(roster=roster, assignment="Lab 1"))
    assert any("no Canvas assignment id" in n for n in report.notes)


def test_a_roster_row_without_canvas_ids_is_reported_not_dropped(cohort, tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text(ROSTER_HEADER + "ana,Ana,,,,A,\nbo,Bo,102,,,A,\n", encoding="utf-8")
    report = export(cohort, "canvas", tmp_path / "c.csv", lab="lab1-mlp",
                    options=ExportOptions(roster=roster, assignment="Lab 1 (1)"))
    assert report.published == ["bo"] and "ana" in report.unknown
    assert any("ana is on the roster without a Canvas id" in n for n in report.notes)


# --- gradescope

def test_gradescope_results_follow_the_spec_and_never_name_a_hidden_test(store, tmp_path):
    tests = [HiddenTestResult(name="test_secret_weights", outcome="failed", message="expected 0.3217"),
             HiddenTestResult(name="test_shapes", outcome="failed", message="shape (2, 3) != (3,)", public=True),
             HiddenTestResult(name="test_history", outcome="passed", public=True, kit=True)]
    criteria = [crit("runs", kind="notebook-runs", message="ran in \x1b[31m12 s\x1b[0m"),
                crit("hidden-tests", "fail", kind="hidden-tests", message="2 of 3 tests failed; test_shapes: ...",
                     advice="Fix what the message names."),
                crit("reflection", "pass", kind="reflection",
                     override=Override(status="pass", note="Your own words; fine.", by="ta")),
                crit("style", "fail", required=False)]
    r = result("ana", "U", criteria=criteria, tests=tests, execution=ExecutionResult(status="ok", duration_s=41.6))
    doc = to_gradescope(r, {"runs": "The notebook runs"}, points=2, visibility="after_published")
    check_gradescope(doc)
    assert doc["score"] == 0.0 and doc["visibility"] == "after_published" and doc["execution_time"] == 42
    by_name = {t["name"]: t for t in doc["tests"]}
    assert by_name["runs: The notebook runs"]["status"] == "passed"
    assert by_name["runs: The notebook runs"]["output"] == "ran in 12 s"  # no terminal escapes
    assert by_name["hidden-tests"]["status"] == "failed" and "Fix what" in by_name["hidden-tests"]["output"]
    assert by_name["hidden-tests: test_shapes"]["output"] == "shape (2, 3) != (3,)"
    assert by_name["hidden-tests: test_history"]["status"] == "passed"
    assert "Your own words" in by_name["reflection"]["output"]
    assert "optional" in by_name["style"]["tags"]
    text = json.dumps(doc)
    assert "test_secret_weights" not in text and "0.3217" not in text
    assert to_gradescope(result("bo", "G"), points=2)["score"] == 2.0


def test_gradescope_writes_one_results_json_per_student_or_one_file(cohort, tmp_path):
    report = export(cohort, "gradescope", tmp_path / "gs", lab="lab1-mlp", options=ExportOptions(allow_pending=True))
    files = sorted(p.relative_to(tmp_path / "gs").as_posix() for p in report.written)
    assert files == [f"{s}/results.json" for s in ("ana", "bo", "cy", "dan", "eve")]
    for path in report.written:
        check_gradescope(json.loads(path.read_text()))
    assert json.loads((tmp_path / "gs" / "cy" / "results.json").read_text())["output"].startswith("Waiting")

    one = tmp_path / "results" / "results.json"
    export(cohort, "gradescope", one, lab="lab1-mlp", options=ExportOptions(students=["ana"]))
    assert json.loads(one.read_text())["score"] == 1.0
    with pytest.raises(UserError, match="5 students would go in it") as info:
        export(cohort, "gradescope", one, lab="lab1-mlp", options=ExportOptions(allow_pending=True))
    assert "--student" in info.value.hint
    blocked = export(cohort, "gradescope", tmp_path / "gs2", lab="lab1-mlp")
    assert blocked.blocked == ["cy", "dan"] and not (tmp_path / "gs2" / "cy").exists()


def test_gradescope_folder_names_never_leave_the_output_folder(store, tmp_path):
    store.record(result("../../evil", "G"))
    report = export(store, "gradescope", tmp_path / "gs", lab="lab1-mlp")
    assert all(p.resolve().is_relative_to((tmp_path / "gs").resolve()) for p in report.written)


def test_gradescope_names_tests_by_the_rubric_titles(store, tmp_path):
    store.record(result("ana", "G"))
    out = tmp_path / "r.json"
    export(store, "gradescope", out, lab="lab1-mlp", options=ExportOptions(root=REPO))
    names = [t["name"] for t in json.loads(out.read_text())["tests"]]
    assert "test-accuracy: Accuracy of the trained model on the hidden test set" in names


# --- ladok

class FakeComponent:
    def __init__(self, grade=None, when=None, attested=False, finalized=False, fail=None):
        self.grade, self.date, self.attested, self.finalized, self.fail = grade, when, attested, finalized, fail
        self.calls: list[tuple] = []

    def set_grade(self, grade, when):
        if self.fail:
            raise RuntimeError(self.fail)
        self.calls.append(("set_grade", grade, when))
        self.grade, self.date = grade, when

    def finalize(self, graders):
        self.calls.append(("finalize", graders))
        self.finalized = True


class FakeSession:
    """The part of ladok3.LadokSession that `ladok report` uses: student -> course -> module result."""

    def __init__(self, components: dict[str, FakeComponent]):
        self.components = components

    def get_student(self, ladok_id):
        session = self

        class Student:
            def courses(self, code):
                class Course:
                    def results(self, component):
                        found = session.components.get(ladok_id)
                        return [found] if found is not None and component == "LAB1" else []
                return [Course()] if code == "DT9000" else []
        return Student()


@pytest.fixture
def module_store(store: Store) -> Store:
    """Module grades with lab1 and lab2 required: ana G in both, bo U in lab2, cy review in lab2."""
    for s, v1, v2 in (("ana", "G", "G"), ("bo", "G", "U"), ("cy", "G", "review")):
        store.record(result(s, v1, at=datetime(2025, 1, 10, 9, tzinfo=UTC)))
        store.record(result(s, v2, lab="lab2-cnn", at=datetime(2025, 1, 16, 23, 30, tzinfo=UTC)))
    return store


def two_labs(tmp_path, roster, **kw) -> CourseSpec:
    return spec(tmp_path, roster, labs=[{"lab": "lab1-mlp"}, {"lab": "lab2-cnn"}], **kw)


def test_ladok_list_has_the_module_grades_and_the_dry_run_sends_nothing(module_store, roster, tmp_path):
    out = tmp_path / "ladok.csv"
    report = export(module_store, "ladok", out, course=two_labs(tmp_path, roster))
    rows = pd.read_csv(out, dtype=str)
    assert list(rows.columns) == ladok.HEADER
    # 23:30 UTC on the 16th is the 17th in Stockholm: the date of the last required lab's result
    assert rows.values.tolist() == [["DT9000", "LAB1", "uid-ana", "G", "2025-01-17", "ana", "Andersson, Ana"]]
    assert report.blocked == ["cy"] and report.missing == ["dan", "fia"] and not report.sent
    text = "\n".join(report.lines())
    assert "would report" in text and "uid-ana" in text and "nothing was sent" in text


def test_ladok_include_failed_date_and_grade_scale(module_store, roster, tmp_path):
    out = tmp_path / "ladok.csv"
    course = two_labs(tmp_path, roster, ladok_grades={"G": "P", "U": "F"})
    export(module_store, "ladok", out, course=course,
           options=ExportOptions(include_failed=True, exam_date=date(2025, 2, 1)))
    rows = pd.read_csv(out, dtype=str)
    assert rows[["ladok_id", "grade", "examination_date"]].values.tolist() == [
        ["uid-ana", "P", "2025-02-01"], ["uid-bo", "F", "2025-02-01"]]


def test_ladok_needs_a_course_and_a_module_for_a_lab(module_store, roster, tmp_path):
    with pytest.raises(UserError, match="needs the course's codes"):
        export(module_store, "ladok", tmp_path / "l.csv", lab="lab1-mlp", options=ExportOptions(roster=roster))
    with pytest.raises(UserError, match="no Ladok module of its own"):
        export(module_store, "ladok", tmp_path / "l.csv", lab="lab1-mlp", course=two_labs(tmp_path, roster))
    course = spec(tmp_path, roster, labs=[{"lab": "lab1-mlp", "module": "LAB1"}])
    report = export(module_store, "ladok", tmp_path / "l.csv", lab="lab1-mlp", course=course)
    assert report.published == ["ana", "bo", "cy"]  # lab1 alone: every one of them is G


def test_ladok_send_reports_through_the_session_and_says_what_it_could_not(module_store, tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text(ROSTER_HEADER + "ana,Ana,1,,,,uid-ana\nbo,Bo,2,,,,uid-bo\ncy,Cy,3,,,,uid-cy\n")
    course = spec(tmp_path, roster, labs=[{"lab": "lab1-mlp"}])  # all three are G on lab1
    session = FakeSession({"uid-ana": FakeComponent(), "uid-bo": FakeComponent(fail="Ladok said no"),
                           "uid-cy": FakeComponent("U", date(2025, 1, 2), attested=True)})
    dry = export(module_store, "ladok", tmp_path / "l.csv", course=course, options=ExportOptions(session=session))
    assert [a.action for a in dry.ladok_actions] == ["report", "report", "conflict"]
    assert session.components["uid-ana"].calls == []  # a dry run reads, never writes

    report = export(module_store, "ladok", tmp_path / "l.csv", course=course, options=ExportOptions(
        send=True, session=session, finalize=True, graders=["Ture TA <ture@example.org>"]))
    assert [a.action for a in report.ladok_actions] == ["reported", "failed", "conflict"]
    assert session.components["uid-ana"].calls == [("set_grade", "G", date(2025, 1, 10)),
                                                    ("finalize", ["Ture TA <ture@example.org>"])]
    assert "Ladok said no" in report.ladok_actions[1].detail and report.sent and not report.complete

    again = export(module_store, "ladok", tmp_path / "l.csv", course=course,
                   options=ExportOptions(send=True, session=session))
    assert again.ladok_actions[0].action == "unchanged"


def test_ladok_send_without_ladok3_says_how_to_get_it(module_store, roster, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ladok3", None)
    monkeypatch.setitem(__import__("sys").modules, "ladok3.cli", None)
    with pytest.raises(UserError, match="ladok3") as info:
        export(module_store, "ladok", tmp_path / "l.csv", course=two_labs(tmp_path, roster),
               options=ExportOptions(send=True))
    assert "autograder[ladok]" in info.value.hint


# --- csv and json, labs and modules

def test_csv_reads_back_one_row_per_student_and_a_column_per_criterion(cohort, tmp_path):
    out = tmp_path / "r.csv"
    report = export(cohort, "csv", out, lab="lab1-mlp")
    df = pd.read_csv(out)
    assert df["student"].tolist() == ["ana", "bo", "cy", "dan", "eve"]  # csv is for TAs: nothing held back
    assert {"runs:status", "test-accuracy:status", "reflection:status"} <= set(df.columns)
    assert report.blocked == [] and out.read_bytes() == to_csv(cohort.latest("lab1-mlp")).encode()


def with_tests(student: str, verdict: str, tests: list[HiddenTestResult]) -> SubmissionResult:
    criteria = [crit("runs", kind="notebook-runs"),
                crit("hidden-tests", "pass" if verdict == "G" else "fail", kind="hidden-tests",
                     details={"tests": [t.model_dump() for t in tests]})]
    return result(student, verdict, criteria=criteria, tests=tests)


RAN = [HiddenTestResult(name="test_shapes", outcome="passed", public=True, kit=True),
       HiddenTestResult(name="test_forward[=cmd|' /C calc'!A0]", outcome="failed", message="a, \"b\"\n=1+1",
                        public=True),
       HiddenTestResult(name="test_secret_weights", outcome="failed", message="expected 0.3217"),
       HiddenTestResult(name="test_shapes", outcome="passed")]  # a hidden test named like a kit's


def test_json_and_csv_carry_each_tests_outcome_for_staff(store, tmp_path):
    """JSON and CSV are staff's: every test by name, hidden ones marked so; the students' formats only count them."""
    store.record(with_tests("ana", "U", RAN))
    store.record(with_tests("bo", "U", []))  # the notebook stopped: no tests ran
    out = tmp_path / "r.json"
    export(store, "json", out, lab="lab1-mlp")
    rows = {r["student"]: r for r in json.loads(out.read_text())}
    assert [(t["name"], t["outcome"], t["public"]) for t in rows["ana"]["tests"]] == [
        (t.name, t.outcome, t.public) for t in RAN]
    assert rows["ana"]["tests"][2]["message"] == "expected 0.3217" and rows["bo"]["tests"] == []

    csv_out = tmp_path / "r.csv"
    export(store, "csv", csv_out, lab="lab1-mlp")
    df = pd.read_csv(csv_out, dtype=str, keep_default_na=False).set_index("student")
    tests = [c for c in df.columns if "test:" in c]
    assert tests == ["test:test_shapes", "test:test_forward[=cmd|' /C calc'!A0]", "hidden-test:test_secret_weights",
                     "hidden-test:test_shapes"]
    assert df.loc["ana", tests].tolist() == ["passed", "failed", "failed", "passed"]
    assert df.loc["bo", tests].tolist() == ["", "", "", ""]
    assert list(df.columns).index("reasons") < list(df.columns).index(tests[0])  # added after today's columns

    gs = to_gradescope(with_tests("ana", "U", RAN))
    names = [t["name"] for t in gs["tests"]]
    assert "hidden-tests: test_shapes" in names and not any("secret" in n for n in names)
    assert "0.3217" not in json.dumps(gs)


def test_a_rubric_without_tests_keeps_todays_json_and_csv(cohort, tmp_path):
    out = tmp_path / "r.json"
    export(cohort, "json", out, lab="lab1-mlp")
    assert all("tests" not in r for r in json.loads(out.read_text()))
    header = to_csv(cohort.latest("lab1-mlp")).split("\r\n")[0]
    assert header.endswith(",reasons") and "test:" not in header


def test_csv_is_written_as_the_csv_module_writes_it(tmp_path):
    """Through pandas, byte for byte what csv.writer wrote before: CRLF, minimal quoting, 387 not 387.0,
    an empty cell for no value, formulas guarded, numbers kept."""
    r = result("=cmd", "U", criteria=[crit("size", "fail", value=387, message='has "387", too\nmany'),
                                      crit("gap", "pass", value=0.1 + 0.2), crit("runs", "skipped"),
                                      crit("neg", "fail", value="-1", message="=HYPERLINK(\"x\")")])
    expected = ("student,verdict,graded_at,submission_hash,size:status,size:value,gap:status,gap:value,runs:status,"
                "runs:value,neg:status,neg:value,reasons\r\n"
                "'=cmd,U,2025-01-15T10:00:00+00:00,sha-=cmd,fail,387,pass,0.30000000000000004,skipped,,fail,-1,"
                "\"size: has \"\"387\"\", too\nmany | neg: =HYPERLINK(\"\"x\"\")\"\r\n")
    assert to_csv([r]) == expected


def test_module_grades_as_csv_json_and_stdout(module_store, roster, tmp_path, capsys):
    course = two_labs(tmp_path, roster)
    export(module_store, "csv", "-", course=course)
    df = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert df[["student", "grade", "lab1-mlp", "lab2-cnn"]].values.tolist() == [
        ["ana", "G", "G", "G"], ["bo", "U", "G", "U"], ["cy", "pending", "G", "review"]]
    assert "lab2-cnn: U" in df.iloc[1]["missing"]
    out = tmp_path / "m.json"
    export(module_store, "json", out, course=course)
    assert [g["grade"] for g in json.loads(out.read_text())] == ["G", "U", "pending"]
    with pytest.raises(UserError, match="one lab"):
        export(module_store, "gradescope", tmp_path / "gs", course=course)


def test_unknown_format_and_empty_lab_are_user_errors(store, tmp_path):
    with pytest.raises(UserError, match="unknown export format"):
        export(store, "xlsx", tmp_path / "x", lab="lab1-mlp")
    with pytest.raises(UserError, match="no results for lab"):
        export(store, "csv", tmp_path / "x", lab="lab1-mlp")


# --- the real cohort

@pytest.mark.slow
def test_every_format_on_the_graded_lab1_cohort(graded_cohort, tmp_path):
    results, store = graded_cohort("lab1-mlp")
    course = load_course(REPO / "course.yaml", REPO)
    assert results["copycat"].verdict == "review"

    out = tmp_path / "canvas.csv"
    report = export(store, "canvas", out, lab="lab1-mlp", course=course)
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == [*CANVAS_COLUMNS, "Lab 1 (40901)"]
    assert df.iloc[0]["Student"] == POINTS_POSSIBLE
    assert report.blocked == ["copycat"] and report.unknown == ["flood_output"]  # flood_output: not on the roster
    roster = pd.read_csv(REPO / "examples" / "roster.csv", dtype=str).set_index("student")
    expected = {roster.loc[s, "canvas_id"]: ("1" if r.verdict == "G" else "0")
                for s, r in results.items() if s not in ("copycat", "flood_output")}
    assert dict(zip(df["ID"].iloc[1:], df["Lab 1 (40901)"].iloc[1:])) == expected
    assert expected[roster.loc["good", "canvas_id"]] == "1"
    assert set(report.missing) == set(roster.index) - set(results)  # lab2/lab3 students and `absent`

    gs = export(store, "gradescope", tmp_path / "gs", lab="lab1-mlp",
                options=ExportOptions(root=REPO, allow_pending=True))
    assert len(gs.written) == len(results)
    hidden = {t.name for r in results.values() for t in r.tests if not t.public}
    for path in gs.written:
        doc = json.loads(path.read_text())
        check_gradescope(doc)
        assert not any(name in json.dumps(doc) for name in hidden)
        assert doc["score"] == (1.0 if results[path.parent.name].verdict == "G" else 0.0)

    lab1_only = course.model_copy(update={"labs": course.labs[:1]})
    lab1_only._folder = course._folder
    rows_out = tmp_path / "ladok.csv"
    lad = export(store, "ladok", rows_out, course=lab1_only)
    rows = pd.read_csv(rows_out, dtype=str)
    # flood_output is G too, but the roster can't map them
    assert sorted(rows["student"].tolist()) == ["borderline", "good"]
    assert set(rows["ladok_id"]) == {roster.loc[s, "ladok_id"] for s in ("borderline", "good")}
    assert lad.unknown == ["flood_output"]
    assert "would report" in "\n".join(lad.lines())

    full = export(store, "ladok", tmp_path / "none.csv", course=course)  # lab2 and lab3 are not graded here
    assert full.published == [] and full.blocked == []

    staff = tmp_path / "r.json"
    export(store, "json", staff, lab="lab1-mlp")
    ran = {r["student"]: r["tests"] for r in json.loads(staff.read_text())}
    assert [(t["name"], t["outcome"], t["public"]) for t in ran["good"]] == [
        (t.name, t.outcome, t.public) for t in results["good"].tests] and ran["good"]
    assert {t["outcome"] for t in ran["crash"]} <= {"skipped"}  # the notebook stopped: no test passed or failed
    sheet = pd.read_csv(io.StringIO(to_csv(store.latest("lab1-mlp"))), dtype=str, keep_default_na=False)
    columns = [c for c in sheet.columns if c.startswith(("test:", "hidden-test:"))]
    assert len(columns) == len(results["good"].tests)
    assert set(sheet.set_index("student").loc["good", columns]) == {"passed"}


def test_csv_cells_are_never_spreadsheet_formulas(tmp_path):
    """A student id is a hand-in's file name: '=HYPERLINK(...)' must reach a spreadsheet as text."""
    import pandas as pd

    from autograder.publish.export import to_csv

    hostile = SubmissionResult(
        lab="toy", student="=HYPERLINK(\"http://x\")", submission_hash="h", lab_version="1", rubric_hash="r",
        verdict="U", criteria=[CriterionResult(id="gap", kind="metric", status="fail", value=-0.25,
                                               message="@SUM(A1) is too large", required=True)])
    path = tmp_path / "r.csv"
    path.write_text(to_csv([hostile]))
    sheet = pd.read_csv(path)
    assert sheet["student"][0] == "'=HYPERLINK(\"http://x\")"
    assert sheet["gap:value"][0] == -0.25  # numbers stay numbers
    assert sheet["reasons"][0].startswith("gap: @SUM")  # not at the start of its cell: harmless
