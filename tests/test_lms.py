"""LMS downloads: a Canvas and a Moodle download of lab2-cnn (examples/make_lms_downloads.py) map every
student to the roster, with the work each handed in and when; hostile downloads get a reason or a
line in the intake report, never a guess; and the Canvas download grades as the plain cohort does."""

from __future__ import annotations

import importlib.util
import sqlite3
import stat
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hand_ins import nb_bytes

from autograder.errors import UserError
from autograder.grading import lateness
from autograder.grading.intake import MAX_MODULE_BYTES, IntakeSpec, discover
from autograder.grading.lms import detect, plain_words, read_download
from autograder.labs.course import CourseSpec, Roster, RosterEntry, load_roster
from autograder.labs.lab import load_lab
from autograder.results import CriterionResult, SubmissionResult

REPO = Path(__file__).resolve().parents[1]
LMS = REPO / "examples" / "lms"
COHORT = REPO / "examples" / "submissions" / "lab2-cnn"


def _script():
    spec = importlib.util.spec_from_file_location("make_lms_downloads", REPO / "examples" / "make_lms_downloads.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


DOWNLOADS = _script()


@pytest.fixture(scope="module")
def lab2():
    return load_lab("lab2-cnn", REPO)


def course(**lab) -> CourseSpec:
    return CourseSpec.model_validate({"course": "DT9000", "module": "LAB1", "labs": [
        {"lab": "lab2-cnn", "deadline": "2026-02-13 17:00", "extensions": {"omaham": "2026-02-16 17:00"}, **lab}]})


def roster() -> Roster:
    return load_roster(LMS / "roster.csv")


def cohort_hashes(lab2) -> dict[str, str]:
    return {s.student: s.sha256 for s in discover(COHORT, IntakeSpec.of(lab2.spec))}


def test_the_committed_downloads_are_what_the_script_makes():
    assert (LMS / "lab2-cnn-canvas.zip").read_bytes() == DOWNLOADS.canvas_zip()
    assert (LMS / "lab2-cnn-moodle.zip").read_bytes() == DOWNLOADS.moodle_zip()
    assert (LMS / "roster.csv").read_text(encoding="utf-8") == DOWNLOADS.roster_csv()
    assert len(DOWNLOADS.STUDENTS) >= 20


@pytest.mark.parametrize("kind", ["canvas", "moodle"])
def test_a_download_maps_every_student_to_the_roster_with_the_work_they_handed_in(lab2, kind):
    download = LMS / f"lab2-cnn-{kind}.zip"
    assert detect(download) == kind
    intake = read_download(download, IntakeSpec.of(lab2.spec), None, course(), roster())
    subs = {s.student: s for s in intake.submissions}
    hashes = cohort_hashes(lab2)
    off = "studenttest-340999" if kind == "canvas" else "Test_Student-5199"
    expected = {s.student if s.on_roster else off: s for s in DOWNLOADS.STUDENTS}
    assert set(subs) == set(expected)
    for student, s in expected.items():
        sub = subs[student]
        if s.module is None:  # the notebook alone: the same reason as the cohort's missing_module
            assert "cnn.py is missing" in sub.problem
        else:  # the very work of the cohort student, whatever the files were called: same hash, same cache
            assert sub.problem is None and sub.sha256 == hashes[s.work], student
        assert sub.handed_in == datetime.strptime(s.when, "%Y-%m-%d %H:%M").replace(
            tzinfo=course().zone), student
        assert sub.lms["layout"] == kind and sub.originals
    r = intake.report
    assert r.off_roster == [off] and r.no_hand_in == ["frelun"] and r.late == ["johber"]
    assert subs["johber"].late is not None and subs["omaham"].late is None  # handed in within the extension
    assert sorted(r.mapped) == sorted(s.student for s in DOWNLOADS.STUDENTS if s.on_roster)
    text = "\n".join(r.lines())
    assert f"{kind} download (recognised), 23 students: 22 on the roster" in text
    assert "on the roster without a hand-in: frelun" in text
    assert "NOT GRADED" not in text


def test_canvas_resubmissions_renamed_modules_and_a_name_match_are_said(lab2):
    intake = read_download(LMS / "lab2-cnn-canvas.zip", IntakeSpec.of(lab2.spec), None, course(), roster())
    subs = {s.student: s for s in intake.submissions}
    assert subs["astlin"].notebook.endswith("_lab2-cnn-1.ipynb") and subs["astlin"].files["cnn.py"].endswith(
        "_cnn-1.py")
    assert subs["fatdia"].files["cnn.py"].endswith("_cnn-2.py")  # cnn.py, cnn-1.py, cnn-2.py: the last
    assert any(n.endswith("_cnn.py") for n in subs["astlin"].originals)  # staff still see every file
    assert subs["astlin"].notes == []  # Canvas's own -1 is no news to the student
    assert subs["piokow"].notes == ["cnn.py was read from my_cnn.py"]
    assert subs["mateek"].notes == ["cnn.py was read from lab2_cnn.py"]
    assert intake.report.superseded == 5
    assert intake.report.by_name == ["holmoskar -> oskhol"]  # no Canvas id on the roster: matched by name
    late = subs["johber"].late
    assert late.marked_by == "canvas" and late.deadline == course().deadline("lab2-cnn", "johber")[0]


def test_moodle_times_come_from_its_grading_worksheet(lab2, tmp_path):
    intake = read_download(LMS / "lab2-cnn-moodle.zip", IntakeSpec.of(lab2.spec), None, course(), roster(),
                           LMS / "moodle-times.csv")
    subs = {s.student: s for s in intake.submissions}
    assert {s.handed_in_from for s in subs.values()} == {"csv"}
    assert subs["johber"].late.by_s == (16 * 60 + 12) * 60
    assert intake.report.times == "moodle-times.csv" and not intake.report.notes
    bad = tmp_path / "times.csv"
    bad.write_text("Who,When\nx,y\n")
    with pytest.raises(UserError) as info:
        read_download(LMS / "lab2-cnn-moodle.zip", IntakeSpec.of(lab2.spec), None, course(), roster(), bad)
    assert "no student column" in info.value.message and "handed_in_csv" in info.value.hint
    odd = tmp_path / "odd.csv"
    odd.write_text("Identifier,Last modified (submission)\nParticipant 5101,soon\nParticipant 9,2026-02-01 10:00\n")
    intake = read_download(LMS / "lab2-cnn-moodle.zip", IntakeSpec.of(lab2.spec), None, course(), roster(), odd)
    notes = "\n".join(intake.report.notes)
    assert "1 rows of odd.csv match no hand-in: 9" in notes and "line 2 (soon)" in notes
    assert "23 hand-ins have no time in odd.csv" in notes  # the zip times stand


def test_a_layout_can_be_forced_and_a_plain_folder_is_named_by_the_roster(lab2, tmp_path):
    intake = read_download(LMS / "lab2-cnn-canvas.zip", IntakeSpec.of(lab2.spec), "plain", course(), roster())
    [sub] = intake.submissions  # the whole zip as one student's: a clear reason, not 23 students
    assert "notebooks" in sub.problem and intake.report.forced
    with pytest.raises(UserError, match="no moodle hand-ins"):
        read_download(LMS / "lab2-cnn-canvas.zip", IntakeSpec.of(lab2.spec), "moodle", course(), roster())
    people = Roster(path=tmp_path, students={s: RosterEntry(student=s, sis_login_id=login) for s, login in
                                             [("good", "go1"), ("crash", "cr1")]})
    subs = tmp_path / "subs"
    for name in ("good", "crash"):
        (subs / ("go1" if name == "good" else name)).mkdir(parents=True)
        for f in (COHORT / name).iterdir():
            (subs / ("go1" if name == "good" else name) / f.name).write_bytes(f.read_bytes())
    intake = read_download(subs, IntakeSpec.of(lab2.spec), None, None, people)
    assert sorted(s.student for s in intake.submissions) == ["crash", "good"]  # go1 is good's login
    assert intake.report.layout == "plain" and all(s.handed_in_from == "file time" for s in intake.submissions)


def test_names_are_compared_without_accents_case_or_order():
    assert plain_words("Nyström, Elin") == "nystromelin" == plain_words("NYSTROM elin")
    r = Roster(path=Path("r.csv"), students={"åse": RosterEntry(student="åse", name="Ødegård, Åse")})
    from autograder.grading.lms import RosterIndex

    index = RosterIndex(r, None)
    assert index.by_name("Åse Ødegård") == index.by_name("ødegårdåse") == {"åse"}


# --- hostile and careless downloads ------------------------------------------------------------------------------


def canvas(path: Path, files: dict[str, bytes], extra=None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        if extra:
            extra(z)
    return path


def two(ana_id: str = "11", bo_id: str = "12") -> Roster:
    return Roster(path=Path("r.csv"), students={
        "ana": RosterEntry(student="ana", name="Berg, Ana", canvas_id=ana_id),
        "bo": RosterEntry(student="bo", name="Ek, Bo", canvas_id=bo_id)})


SPEC = IntakeSpec(lab="lab", notebook="lab.ipynb", student_files=["rules.py"])


def test_a_hostile_canvas_zip_is_read_in_place_and_never_guessed_at(tmp_path):
    def hostile(z: zipfile.ZipFile) -> None:
        link = zipfile.ZipInfo("bergana_11_1_rules.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/passwd")
        z.writestr("../../ekbo_12_2_lab.ipynb", nb_bytes())  # zip-slip: never taken, never written
        z.writestr("/abs/ekbo_12_2_rules.py", b"X = 1\n")

    path = canvas(tmp_path / "dl.zip", {"bergana_11_1_lab.ipynb": nb_bytes(), "ekbo_12_2_lab.ipynb": nb_bytes(),
                                        "ekbo_12_2_rules.py": b"#" * (MAX_MODULE_BYTES + 1), "readme.txt": b"hi"},
                  hostile)
    intake = read_download(path, SPEC, None, None, two())
    subs = {s.student: s for s in intake.submissions}
    assert "rules.py is missing" in subs["ana"].problem  # the link is not a file
    assert "larger than the 2 MiB limit" in subs["bo"].problem  # whatever the zip declares
    assert intake.report.unmatched == ["readme.txt"]
    assert not list(tmp_path.rglob("*.ipynb"))  # nothing was extracted


def test_a_zip_with_a_name_twice_leaves_that_student_out_and_says_so(tmp_path):
    path = tmp_path / "dl.zip"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "w") as z:
        z.writestr("bergana_11_1_lab.ipynb", nb_bytes())
        z.writestr("bergana_11_1_rules.py", b"X = 1\n")
        z.writestr("bergana_11_1_rules.py", b"X = 2\n")
        z.writestr("ekbo_12_2_lab.ipynb", nb_bytes())
        z.writestr("ekbo_12_2_rules.py", b"X = 3\n")
    intake = read_download(path, SPEC, "canvas", None, two())
    assert [s.student for s in intake.submissions] == ["bo"]
    assert "bergana_11_1_rules.py' more than once" in intake.report.lines()[-1]


def test_two_hand_ins_that_fit_one_student_are_not_guessed_between(tmp_path):
    files = {"bergana_11_1_lab.ipynb": nb_bytes(), "bergana_11_1_rules.py": b"",
             "bergana_77_3_lab.ipynb": nb_bytes(), "bergana_77_3_rules.py": b"",  # a second account, same name
             "ekbo_12_2_lab.ipynb": nb_bytes(), "ekbo_12_2_rules.py": b"",
             "ekbo_13_4_lab.ipynb": nb_bytes(), "ekbo_13_4_rules.py": b""}
    intake = read_download(canvas(tmp_path / "dl.zip", files), SPEC, None, None, two(bo_id=""))
    # ana: her id wins over a name match; bo (no Canvas id on the roster): two by name, neither taken.
    # What is not taken is not graded: staff fix the roster (or the download) and grade again.
    assert [s.student for s in intake.submissions] == ["ana"]
    text = "\n".join(intake.report.lines())
    assert "bergana (canvas id 77) also fits roster student ana" in text
    assert "2 hand-ins fit roster student bo; none was taken" in text
    assert intake.report.no_hand_in == ["bo"]


def test_a_file_that_fits_two_modules_is_a_reason_not_a_guess(tmp_path):
    spec = IntakeSpec(lab="lab", notebook="lab.ipynb", student_files=["cnn.py", "cnn_layers.py"])
    path = canvas(tmp_path / "dl.zip", {"bergana_11_1_lab.ipynb": nb_bytes(), "bergana_11_1_cnn_layers-1.py": b""})
    [sub] = read_download(path, spec, None, None, two()).submissions
    assert "cnn_layers-1.py could be cnn.py or cnn_layers.py" in sub.problem


def test_a_canvas_folder_with_odd_names_links_and_a_students_own_zip(tmp_path):
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "bergana_11_1_lab.ipynb").write_bytes(nb_bytes())
    (folder / b"bergana_11_1_rules\xe9.py".decode("utf-8", "surrogateescape")).write_bytes(b"X = 1\n")
    (folder / "ekbo_12_2_rules.py").symlink_to("/etc/passwd")
    with zipfile.ZipFile(folder / "ekbo_12_2_mywork.zip", "w") as z:
        z.writestr("mywork/lab.ipynb", nb_bytes())
        z.writestr("mywork/rules.py", b"X = 2\n")
    intake = read_download(folder, SPEC, None, None, two())
    subs = {s.student: s for s in intake.submissions}
    assert subs["ana"].problem is None and subs["ana"].notes == ["rules.py was read from rules\\xe9.py"]
    assert subs["bo"].problem is None and subs["bo"].file_bytes("rules.py") == b"X = 2\n"  # the link was skipped


def test_a_download_that_is_not_one_says_what_to_pass(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="does not exist"):
        read_download(tmp_path / "nothing.zip", SPEC)
    with pytest.raises(UserError, match="not a folder or a zip"):
        read_download(tmp_path / "notes.txt", SPEC, "canvas")
    (tmp_path / "broken.zip").write_bytes(b"PK junk")
    with pytest.raises(UserError, match="not a readable zip"):
        read_download(tmp_path / "broken.zip", SPEC, "canvas")


# --- the late policy -------------------------------------------------------------------------------------------


def graded(verdict="G") -> SubmissionResult:
    return SubmissionResult(lab="lab2-cnn", student="ana", submission_hash="h", lab_version="1", rubric_hash="r",
                            verdict=verdict, criteria=[CriterionResult(id="acc", kind="metric", status="pass",
                                                                       message="ok")])


@pytest.mark.parametrize("policy, verdict, status", [("mark", "G", None), ("review", "review", "review"),
                                                     ("fail", "U", "fail")])
def test_the_late_policy_marks_sends_to_review_or_fails_and_is_idempotent(policy, verdict, status):
    from autograder.grading.intake import Submission

    deadline = datetime(2026, 2, 13, 16, tzinfo=UTC)
    handed = datetime(2026, 2, 13, 18, 5, tzinfo=UTC)
    sub = Submission(student="ana", path=Path("x"), sha256="h", size=1, handed_in=handed,
                     late=lateness.late(handed, deadline, False, policy=policy))
    once = lateness.stamp(graded(), sub)
    assert once.verdict == verdict and once.handed_in == handed and once.late.by_s == 7500
    late = [c for c in once.criteria if c.id == "late"]
    assert [c.status for c in late] == ([status] if status else [])
    if policy == "mark":
        assert once.notes == ["Handed in late: handed in 2 h 5 min after the deadline (2026-02-13 16:00 +0000)."]
    else:
        assert "2 h 5 min after the deadline" in late[0].message
    assert lateness.stamp(once, sub) == once
    on_time = sub.model_copy(update={"late": None})
    assert lateness.stamp(once, on_time).verdict == "G" and lateness.stamp(once, on_time).notes == []


def test_lateness_by_the_times_and_by_the_lms_mark():
    deadline = datetime(2026, 2, 13, 16, tzinfo=UTC)
    assert lateness.late(deadline, deadline, False) is None  # at the deadline is on time
    assert lateness.late(None, deadline, False) is None  # no time: nothing says late
    assert lateness.late(None, None, False, "canvas").marked_by == "canvas"
    assert lateness.late(datetime(2026, 2, 14, tzinfo=UTC), deadline, True).extended


# --- graded end to end -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("download, off_roster", [("lab2-cnn-canvas.zip", "studenttest-340999"),
                                                  ("lab2-cnn-moodle.zip", "Test_Student-5199")])
def test_each_download_grades_as_the_plain_cohort_does(graded_cohort, lab2, tmp_path, download, off_roster):
    """Every student gets the verdict of the cohort student whose work they handed in. The cohort's
    stage outputs are reused (same content hashes), so only the judging runs again."""
    from autograder.grading.pipeline import Grader, Options
    from autograder.sandbox import get_backend
    from autograder.store import Store

    cohort, cohort_store = graded_cohort("lab2-cnn")
    store = Store(tmp_path / "grades.db")
    try:
        # the cohort's recorded stages, not its results (which the originality pass would compare with)
        db = sqlite3.connect(store.path)
        db.execute("ATTACH DATABASE ? AS cohort", (str(cohort_store.path),))
        db.execute("INSERT INTO stages SELECT * FROM cohort.stages")
        recorded = {key for (key,) in db.execute("SELECT key FROM cohort.stages")}
        db.commit()
        db.close()
        intake = read_download(LMS / download, IntakeSpec.of(lab2.spec), None, course(), roster())
        grader = Grader(lab2, store, get_backend("local"), Options(jobs=2, scratch=tmp_path))
        results = {r.student: r for r in grader.grade_all(intake.submissions)}
        expected = {s.student if s.on_roster else off_roster:
                    cohort[DOWNLOADS.expected_verdict_source(s)].verdict for s in DOWNLOADS.STUDENTS}
        assert {s: r.verdict for s, r in results.items()} == expected
        assert all(set(r.stages.values()) <= recorded for r in results.values())  # nothing ran again
        assert results["johber"].handed_in is not None
        assert [h.student for h in store.handins("lab2-cnn", "johber")] == ["johber"]
        if download.endswith("canvas.zip"):  # Canvas marks the late hand-in itself
            assert results["johber"].late is not None
    finally:
        store.close()


def test_the_grade_command_names_a_missing_csv_of_times_and_a_wrong_layout(tmp_path, capsys):
    from autograder.cli import main

    args = ["grade", "lab2-cnn", str(LMS / "lab2-cnn-canvas.zip"), "--root", str(REPO), "--db", str(tmp_path / "g.db")]
    assert main([*args, "--handed-in", str(tmp_path / "times.csv")]) == 2
    assert "times.csv does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--layout", "blackboard"])
    assert "invalid choice: 'blackboard'" in capsys.readouterr().err
    assert main([*args, "--layout", "moodle"]) == 2
    assert "no moodle hand-ins" in capsys.readouterr().err


def test_the_pipeline_stamps_recorded_results_again_when_the_deadline_changes(course, store, tmp_path):
    """A refused hand-in is judged at once (no sandbox): enough to see the policy applied to a fresh
    result, to the same content found on record, and the hand-in kept once."""
    from autograder.grading.intake import Submission
    from autograder.grading.pipeline import Grader, Options
    from autograder.sandbox import get_backend

    grader = Grader(load_lab("toy", course), store, get_backend("local"), Options(scratch=tmp_path))
    handed = datetime(2026, 2, 14, 9, tzinfo=UTC)
    deadline = datetime(2026, 2, 13, 16, tzinfo=UTC)
    sub = Submission(student="ana", path=tmp_path / "ana.ipynb", sha256="s", size=0, problem="unreadable",
                     handed_in=handed, handed_in_from="zip time", originals=["bergana_11_1_lab.ipynb"],
                     late=lateness.late(handed, deadline, False, policy="review"))
    first, cached = grader.grade(sub)
    assert not cached and first.late is not None and any(c.id == "late" for c in first.criteria)
    extended = sub.model_copy(update={"late": None})  # an extension was added to course.yaml
    again, cached = grader.grade(extended)
    assert cached and again.late is None and not any(c.id == "late" for c in again.criteria)
    assert store.latest_of("toy", "ana").late is None  # recorded anew, without running anything
    assert grader.grade(extended) == (store.latest_of("toy", "ana"), True)
    [kept] = store.handins("toy", "ana")
    assert kept.handed_in == handed and kept.originals == ["bergana_11_1_lab.ipynb"] and kept.source == "zip time"


@pytest.mark.slow
def test_grade_reads_a_canvas_download_and_show_names_the_files_as_handed_in(course, tmp_path, capsys):
    """The command as staff type it, on the toy lab: the intake report first, roster ids in the table,
    and `show` with the hand-in's time and original names."""
    from autograder.cli import main

    (course / "roster.csv").write_text("student,name,canvas_id\nana,\"Berg, Ana\",11\nbo,\"Ek, Bo\",12\n")
    (course / "course.yaml").write_text("course: DT0001\nmodule: LAB1\nroster: roster.csv\nlate_policy: review\n"
                                        "labs:\n  - lab: toy\n    deadline: 2026-02-13 17:00\n")
    download = canvas(tmp_path / "submissions.zip", {})
    with zipfile.ZipFile(download, "w") as z:
        z.writestr(zipfile.ZipInfo("bergana_11_100_toy-1.ipynb", (2026, 2, 13, 16, 59, 0)), nb_bytes())
        z.writestr(zipfile.ZipInfo("ekbo_LATE_12_101_Toy final.ipynb", (2026, 2, 14, 8, 0, 0)), nb_bytes())
        z.writestr(zipfile.ZipInfo("zedzed_99_102_toy.ipynb", (2026, 2, 13, 10, 0, 0)), nb_bytes())
    db = tmp_path / "g.db"
    assert main(["grade", "toy", str(download), "--root", str(course), "--db", str(db), "-j", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("intake: canvas download (recognised), 3 students: 2 on the roster")
    assert "not on the roster (graded under the LMS's name): zedzed-99" in captured.err
    assert "late: bo" in captured.err
    assert "3 submissions: G: 2, review: 1" in captured.out  # bo, late, waits for a teacher
    assert main(["show", "toy", "bo", "--db", str(db)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "bo: review" in shown and "after the deadline" in shown
    assert "handed in 2026-02-14 08:00 +0100" in shown and "ekbo_LATE_12_101_Toy final.ipynb" in shown


def test_a_plain_folders_student_off_the_roster_keeps_its_file_name():
    from autograder.grading.lms import IntakeReport

    report = IntakeReport(layout="plain", source=Path("subs"), roster=True, mapped=["ana"], off_roster=["flood_output"])
    assert "  not on the roster (graded under its file or folder name): flood_output" in report.lines()
    canvas = report.model_copy(update={"layout": "canvas"})
    assert "  not on the roster (graded under the LMS's name): flood_output" in canvas.lines()
