"""The opt-in leaderboard (the rubric's `leaderboard:` block, publish/leaderboard.py): ranking, pseudonyms, the
pages and Gradescope's field, from real SubmissionResults recorded in a real SQLite store."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from page_checks import assert_inert, made_up
from test_exports import check_gradescope

from autograder.cli import main
from autograder.errors import ConfigError, UserError
from autograder.labs.lab import load_lab
from autograder.labs.loading import load_model
from autograder.labs.rubric import Rubric
from autograder.publish import leaderboard
from autograder.publish.export import ExportOptions, export
from autograder.publish.feedback import file_stems, write_feedback
from autograder.results import CriterionResult, ExecutionResult, Override
from autograder.store import Store

# Distinctive ids, so that finding one in a page cannot be a coincidence of the page's own words.
VALUES = {"stud-ana-4711": 0.83, "stud-bo-0815": 0.85, "stud-cy-2222": 0.85, "stud-dee-3333": None,
          "stud-eve-4444": 0.8125, "stud-fay-5555": 0.8130, "stud-gus-6666": 0.61}
PSEUDONYM = re.compile(r"[A-Z][a-z]+ [A-Z][a-z]+ [0-9a-f]{4}")
OWN_ROW = re.compile(r'<tr class="lb-own" id="your-row"><td class="num">(\d+)</td><td>([^<]*) \(you\)</td>')


@pytest.fixture(scope="module")
def lab2():
    return load_lab("lab2-cnn", REPO)


def accuracy(value, status: str = "pass", **kw) -> CriterionResult:
    return CriterionResult(id="test-accuracy", kind="accuracy", status=status, value=value, threshold=0.8,
                           message=f"Accuracy on the hidden test set is {value}.", **kw)


def record(store: Store, lab, values: dict, execution: ExecutionResult | None = None) -> None:
    for student, value in values.items():
        criterion = accuracy(value, "pass" if value is not None and value >= 0.8 else
                             "fail" if value is not None else "skipped")
        store.record(made_up(lab, student, "G" if criterion.status == "pass" else "U",
                             [CriterionResult(id="runs", kind="notebook-runs", status="pass", message="ran"),
                              criterion], execution))


@pytest.fixture
def cohort(lab2, tmp_path: Path) -> Store:
    store = Store(tmp_path / "grades.db")
    record(store, lab2, VALUES)
    yield store
    store.close()


def rubric(tmp_path: Path, name: str = "lab2-cnn", **board) -> Rubric:
    """A course rubric with its leaderboard block replaced, loaded from a file as `load_lab` loads one."""
    data = yaml.safe_load((REPO / "rubrics" / f"{name}.yaml").read_text())
    data["leaderboard"] = board
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_model(path, Rubric)


# --- the rubric block ---------------------------------------------------------------------------------------------


def test_lab2_has_a_pseudonymous_board_that_leaves_the_rubric_hash_alone(lab2):
    board = lab2.rubric.leaderboard
    assert board is not None and (board.criterion, board.names, board.top) == ("test-accuracy", "pseudonym", 50)
    # presentation only: the hash that decides stale results and reused judgements is that of the criteria
    assert lab2.rubric.model_copy(update={"leaderboard": None}).model_dump_json() == lab2.rubric.model_dump_json()
    assert load_lab("lab1-mlp", REPO).rubric.leaderboard is None


@pytest.mark.parametrize(("board", "problem"), [
    ({"criterion": "test-acuracy"}, "`criterion: test-acuracy` names no criterion of this rubric"),
    ({"criterion": "reflection"}, "`criterion: reflection` is of `kind: reflection`, which measures no value"),
    ({"criterion": "generalization-gap"}, "is of `kind: generalization-gap`"),
    ({}, "Field required"),
])
def test_a_board_on_no_measured_criterion_fails_at_load_naming_the_metric_criteria(tmp_path, board, problem):
    with pytest.raises(ConfigError) as raised:
        rubric(tmp_path, **board)
    assert raised.value.path == tmp_path / "lab2-cnn.yaml" and raised.value.field.startswith("leaderboard")
    assert problem in raised.value.problem
    if "criterion" in board:
        assert "use one of: test-accuracy" in raised.value.problem


@pytest.mark.parametrize(("board", "field"), [
    ({"criterion": "test-accuracy", "names": "real"}, "leaderboard.names"),
    ({"criterion": "test-accuracy", "top": 0}, "leaderboard.top"),
    ({"criterion": "test-accuracy", "order": "asc"}, "leaderboard.order"),  # order comes from the metric
    ({"criterion": "test-accuracy", "title": "x" * 81}, "leaderboard.title"),
])
def test_a_careless_block_names_its_field(tmp_path, board, field):
    with pytest.raises(ConfigError) as raised:
        rubric(tmp_path, **board)
    assert raised.value.field == field


def test_a_rubric_without_any_metric_says_so(tmp_path):
    data = {"lab": "x", "criteria": [{"id": "runs", "kind": "notebook-runs"}], "leaderboard": {"criterion": "runs"}}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="this rubric has none: add one, or remove the leaderboard"):
        load_model(path, Rubric)


# --- the ranking --------------------------------------------------------------------------------------------------


def test_ranked_best_first_ties_share_a_rank_and_the_unmeasured_are_counted(lab2, cohort):
    board = leaderboard.of_store(lab2, cohort)
    assert [(e.student, e.rank) for e in board.entries][2:] == [
        ("stud-ana-4711", 3), ("stud-fay-5555", 4), ("stud-eve-4444", 5), ("stud-gus-6666", 6)]
    tied = board.entries[:2]
    assert {e.student for e in tied} == {"stud-bo-0815", "stud-cy-2222"} and [e.rank for e in tied] == [1, 1]
    assert tied[0].name < tied[1].name  # tied rows by the name shown, never by id
    assert board.order == "desc" and board.left_out == {leaderboard.NO_VALUE: 1}
    assert board.left_out_line() == "1 student is not ranked: 1 with no value measured."
    assert [r.shown for r in board.rows()][:4] == ["0.850", "0.850", "0.830", "0.813"]


def test_neighbours_that_three_decimals_show_alike_get_more(lab2, tmp_path):
    results = [made_up(lab2, s, "G", [accuracy(v)], None) for s, v in (("a", 0.8125), ("b", 0.8124), ("c", 0.5))]
    board = leaderboard.build(lab2.name, lab2.rubric, results, b"k" * 32)
    assert [r.shown for r in board.rows()] == ["0.8125", "0.8124", "0.5000"]


def test_lower_is_better_ranks_ascending(tmp_path):
    r3 = rubric(tmp_path, "lab3-autoencoder", criterion="test-reconstruction")
    lab3 = load_lab("lab3-autoencoder", REPO)
    mse = [made_up(lab3, s, "G", [CriterionResult(id="test-reconstruction", kind="metric", status="pass", value=v,
                                                  threshold=0.02, message="mse")], None)
           for s, v in (("a", 0.0142), ("b", 0.011), ("c", 0.0144), ("d", 0.011))]
    board = leaderboard.build("lab3-autoencoder", r3, mse, b"k" * 32)
    assert [e.value for e in board.entries] == [0.011, 0.011, 0.0142, 0.0144]
    assert [e.rank for e in board.entries] == [1, 1, 3, 4] and board.order == "asc"
    assert board.title == "Mean squared error" and "lowest first" in leaderboard.section(board, "a").about
    assert leaderboard.gradescope(r3, mse[0]) == [{"name": "Mean squared error", "value": 0.0142, "order": "asc"}]


def test_what_is_not_a_finite_measurement_is_left_out_and_counted(lab2):
    def one(student, criterion):
        return made_up(lab2, student, "U", [criterion] if criterion is not None else [], None)

    results = [one("nan", accuracy(float("nan"), "fail")), one("inf", accuracy(float("inf"))),
               one("text", accuracy("0.9")), one("word", accuracy("high")), one("none", accuracy(None, "fail")),
               one("error", accuracy(0.95, "error")), one("skipped", accuracy(0.95, "skipped")),
               one("older-rubric", None), one("ok", accuracy(0.9))]
    board = leaderboard.build(lab2.name, lab2.rubric, results, b"k" * 32)
    assert [e.student for e in board.entries] == ["ok"]
    assert board.left_out == {leaderboard.NO_VALUE: 2, leaderboard.NOT_GRADED: 2, leaderboard.NOT_A_NUMBER: 4}
    assert board.left_out_line().startswith("8 students are not ranked: 2 with no value measured, 2 not graded")
    assert all(leaderboard.gradescope(lab2.rubric, r) is None for r in results[:-1])


def test_a_nan_recorded_in_the_store_comes_back_unranked(lab2, tmp_path):
    store = Store(tmp_path / "g.db")
    store.record(made_up(lab2, "nan", "U", [accuracy(float("nan"), "fail")], None))
    board = leaderboard.of_store(lab2, store)
    assert board.entries == [] and sum(board.left_out.values()) == 1
    store.close()


def test_overridden_and_review_results_rank_on_the_measured_value(lab2, tmp_path):
    """Decided: the value is the measured one. A teacher's decision changes the verdict, not what was measured,
    and a result waiting for review (a borderline value) is ranked on its value meanwhile."""
    store = Store(tmp_path / "g.db")
    decided = accuracy(0.79, "pass", override=Override(status="pass", note="fine", by="ta", was="fail"))
    store.record(made_up(lab2, "decided", "G", [decided], None))
    store.record(made_up(lab2, "waiting", "review", [accuracy(0.798, "review")], None))
    store.record(made_up(lab2, "failed-by-ta", "U", [accuracy(0.9, "fail", override=Override(
        status="fail", note="used the test set", by="ta", was="pass"))], None))
    board = leaderboard.of_store(lab2, store)
    assert [(e.student, e.value) for e in board.entries] == [("failed-by-ta", 0.9), ("waiting", 0.798),
                                                            ("decided", 0.79)]
    store.close()


# --- pseudonyms ---------------------------------------------------------------------------------------------------


def test_pseudonyms_are_stable_distinct_and_need_the_stores_secret(lab2, cohort, tmp_path):
    first = {e.student: e.name for e in leaderboard.of_store(lab2, cohort).entries}
    assert all(PSEUDONYM.fullmatch(n) for n in first.values()) and len(set(first.values())) == len(first)
    path = cohort.path
    cohort.close()
    again = Store(path)  # another publish, another process: the secret was kept in the store
    assert {e.student: e.name for e in leaderboard.of_store(lab2, again).entries} == first
    assert again.secret(leaderboard.SECRET) == Store.reader(path).secret(leaderboard.SECRET)
    assert len(again.secret(leaderboard.SECRET)) == 32 and again.secret("other") != again.secret(leaderboard.SECRET)
    # another course's store (another secret) names the same students otherwise: a name cannot be computed
    # from a student id without the store, and a student id not read from one
    other = Store(tmp_path / "other.db")
    record(other, lab2, VALUES)
    others = {e.student: e.name for e in leaderboard.of_store(lab2, other).entries}
    assert all(others[s] != first[s] for s in first)
    # and per lab: one student's names on two labs' boards do not link them
    secret = again.secret(leaderboard.SECRET)
    assert leaderboard.pseudonym(secret, "lab2-cnn", "stud-ana-4711") != leaderboard.pseudonym(
        secret, "lab3-autoencoder", "stud-ana-4711")
    again.close()
    other.close()


def test_a_read_only_store_without_a_secret_is_a_user_error(lab2, tmp_path):
    store = Store(tmp_path / "g.db")
    record(store, lab2, {"a": 0.9})
    store.close()
    with pytest.raises(UserError, match="cannot keep the leaderboard secret") as raised:
        leaderboard.of_store(lab2, Store.reader(tmp_path / "g.db"))
    assert "writable store" in raised.value.hint


def test_students_who_would_share_a_pseudonym_both_get_longer_ones(monkeypatch):
    monkeypatch.setattr(leaderboard, "COLOURS", ("Teal",) * 32)
    monkeypatch.setattr(leaderboard, "ANIMALS", ("Heron",) * 32)
    students = [f"s{i}" for i in range(2000)]  # 2000 names in 65,536: some share their four digits
    names = leaderboard.pseudonyms(b"k" * 32, "lab", students)
    assert len(set(names.values())) == len(students)
    assert any(len(n.split()[-1]) == 8 for n in names.values()) and any(len(n.split()[-1]) == 4
                                                                        for n in names.values())


# --- the pages ----------------------------------------------------------------------------------------------------


def own_rows(text: str) -> list[tuple[str, str]]:
    return OWN_ROW.findall(text)


def test_the_board_page_names_no_student_and_highlights_nobody(lab2, cohort, tmp_path):
    page = leaderboard.write_leaderboard(lab2, cohort, tmp_path / "leaderboard.html")
    text = page.read_text(encoding="utf-8")
    for student in VALUES:
        assert student not in text and student.split("-")[1] not in text.lower().split()
    assert "lb-own" not in text.replace(".lb tr.lb-own", "") and "(you)" not in text
    assert len(PSEUDONYM.findall(text)) == 6 and "1 student is not ranked" in text
    assert "may be shared with the class" in text
    assert_inert(text)
    assert leaderboard.write_leaderboard(load_lab("lab1-mlp", REPO), cohort, tmp_path / "none.html") is None
    assert not (tmp_path / "none.html").exists()


def test_each_feedback_page_highlights_its_own_row_and_names_no_one_else(lab2, cohort, tmp_path):
    write_feedback(lab2, cohort, tmp_path)
    board = leaderboard.of_store(lab2, cohort)
    stems = file_stems(VALUES)
    for student in VALUES:
        text = (tmp_path / f"{stems[student]}.html").read_text(encoding="utf-8")
        others = [s for s in VALUES if s != student]
        assert not [s for s in others if s in text], student
        section = text[text.index("<h2>Leaderboard"):]
        section = section[:section.index("</table>")]
        assert student not in section
        own = board.entry(student)
        if own is None:
            assert own_rows(text) == [] and "You are not on the leaderboard" in section
        else:
            assert own_rows(text) == [(str(own.rank), own.name)]
            assert f"as \u201c{own.name}\u201d" in unescape(section)
        assert len(set(PSEUDONYM.findall(section))) == 6
        markdown = (tmp_path / f"{stems[student]}.md").read_text(encoding="utf-8")
        assert "## Leaderboard" in markdown and not [s for s in others if s in markdown]
        assert_inert(text)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Leaderboard" not in index  # the TA's list is not a board


def test_a_student_below_the_top_rows_sees_their_own_after_a_gap(lab2, cohort):
    r2 = lab2.rubric.model_copy(update={"leaderboard": lab2.rubric.leaderboard.model_copy(update={"top": 2})})
    board = leaderboard.build(lab2.name, r2, cohort.latest(lab2.name), cohort.secret(leaderboard.SECRET))
    last = leaderboard.section(board, "stud-gus-6666")
    assert [(r.rank, r.own, r.after_gap) for r in last.rows] == [(1, False, False), (1, False, False),
                                                                 (6, True, True)]
    assert last.more == "3 more ranked students are not shown." and last.you.startswith("You are ranked 6 of 6")
    third = leaderboard.section(board, "stud-ana-4711")  # right after the top: no gap to mark
    assert [(r.rank, r.own, r.after_gap) for r in third.rows][-1] == (3, True, False)
    tied = leaderboard.section(board, "stud-bo-0815")
    assert len(tied.rows) == 2 and tied.you.startswith("You are ranked 1 (shared) of 6")
    assert leaderboard.section(board, "stud-dee-3333").rows == board.rows()


def test_names_student_shows_ids_escaped(lab2, tmp_path):
    hostile = "<script>alert(1)</script>"
    r2 = rubric(tmp_path, criterion="test-accuracy", names="student", title="<b>Best</b> & <i>worst</i>")
    results = [made_up(lab2, hostile, "G", [accuracy(0.9)], None), made_up(lab2, "bo", "G", [accuracy(0.85)], None)]
    board = leaderboard.build(lab2.name, r2, results, b"k" * 32)
    text = leaderboard.to_html(board)
    assert hostile not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<b>Best" not in text
    assert "This page names students" in text and not PSEUDONYM.search(text)
    assert_inert(text)
    assert leaderboard.section(board, hostile).you == "You are ranked 1 of 2 with 0.900."


def test_a_hostile_student_id_in_pseudonym_mode_is_nowhere_on_the_pages(lab2, tmp_path):
    hostile = "<script>alert(1)</script>"
    store = Store(tmp_path / "g.db")
    record(store, lab2, {hostile: 0.9, "zed-9999": 0.7})
    write_feedback(lab2, store, tmp_path / "fb")
    board_page = leaderboard.write_leaderboard(lab2, store, tmp_path / "fb" / "leaderboard.html").read_text()
    assert "alert(1)" not in board_page and "zed-9999" not in board_page
    zed = (tmp_path / "fb" / f"{file_stems([hostile, 'zed-9999'])['zed-9999']}.html").read_text()
    assert "alert(1)" not in zed and len(own_rows(zed)) == 1
    store.close()


def test_a_cohort_with_nothing_measured_gets_a_page_that_says_so(lab2, tmp_path):
    store = Store(tmp_path / "g.db")
    record(store, lab2, {"a": None, "b": None})
    text = leaderboard.write_leaderboard(lab2, store, tmp_path / "lb.html").read_text()
    assert "Nobody has a measured value to rank yet." in text and "2 students are not ranked" in text
    store.close()


def test_the_report_command_writes_the_board_beside_the_report(lab2, cohort, tmp_path):
    db = cohort.path
    cohort.close()
    out = tmp_path / "staff" / "report.html"
    assert main(["report", "lab2-cnn", "--root", str(REPO), "--db", str(db), "-o", str(out)]) == 0
    assert out.is_file() and (out.parent / "leaderboard.html").is_file()
    assert 'href="leaderboard.html"' in out.read_text()  # the report links to the board beside it
    assert main(["report", "lab2-cnn", "--root", str(REPO), "--db", str(db), "-o",
                 str(tmp_path / "leaderboard.html")]) == 2  # would overwrite one with the other
    store = Store(db)
    record(store, load_lab("lab1-mlp", REPO), {"ana": 0.9})
    store.close()
    assert main(["report", "lab1-mlp", "--root", str(REPO), "--db", str(db), "-o", str(tmp_path / "l1" / "r.html")]
                ) == 0
    assert not (tmp_path / "l1" / "leaderboard.html").exists()
    assert "leaderboard.html" not in (tmp_path / "l1" / "r.html").read_text()


# --- Gradescope ---------------------------------------------------------------------------------------------------


def test_gradescope_carries_the_field_for_a_leaderboard_lab_only(lab2, cohort, tmp_path):
    report = export(cohort, "gradescope", tmp_path / "gs", lab="lab2-cnn",
                    options=ExportOptions(root=REPO, allow_pending=True))
    docs = {p.parent.name: json.loads(p.read_text()) for p in report.written}
    assert set(docs) == set(VALUES)
    for student, doc in docs.items():
        check_gradescope(doc)
        if VALUES[student] is None:
            assert "leaderboard" not in doc
        else:
            assert doc["leaderboard"] == [{"name": "Hidden-test accuracy", "value": VALUES[student], "order": "desc"}]
    assert any("not on Gradescope's leaderboard" in n and "stud-dee-3333" in n for n in report.notes)

    store = Store(tmp_path / "l1.db")
    record(store, load_lab("lab1-mlp", REPO), {"ana": 0.9})
    doc = json.loads(export(store, "gradescope", tmp_path / "l1.json", lab="lab1-mlp",
                            options=ExportOptions(root=REPO)).written[0].read_text())
    assert "leaderboard" not in doc
    store.close()
