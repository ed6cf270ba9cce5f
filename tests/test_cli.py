"""The CLI end to end on the toy course: grade, the table, export, validate-lab, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from graded import sigint_as_at_a_terminal

from autograder.cli import main

# The tests that grade or validate a lab run its notebooks (slow); the usage errors stop before anything runs.


@pytest.mark.slow
def test_grade_then_export(course, submissions, tmp_path, capsys):
    submissions("ana")
    submissions("bo", "1/0")
    db = tmp_path / "g.db"
    code = main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db), "-j", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ana" in out and "bo" in out and "ZeroDivisionError" in out
    assert "2 submissions: G: 1, U: 1" in out

    target = tmp_path / "out" / "results.json"
    assert main(["export", "toy", "--db", str(db), "--format", "json", "-o", str(target)]) == 0
    rows = json.loads(target.read_text())
    assert {r["student"]: r["verdict"] for r in rows} == {"ana": "G", "bo": "U"}

    assert main(["export", "toy", "--db", str(db), "--format", "csv", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("student,verdict,")


@pytest.mark.slow
def test_a_rerun_says_what_it_reused(course, submissions, tmp_path, capsys):
    submissions("ana")
    args = ["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(tmp_path / "g.db")]
    assert main(args) == 0
    assert "already graded" not in capsys.readouterr().err
    assert main(args) == 0
    assert "1 of 1 were already graded" in capsys.readouterr().err


def test_an_unusable_store_path_is_a_user_error(course, submissions, tmp_path, capsys):
    submissions("ana")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(blocker / "g.db")])
    assert code == 2
    assert "cannot open the results store" in capsys.readouterr().err


@pytest.mark.slow
def test_export_of_an_ungraded_lab_says_what_exists(tmp_path, capsys, course, submissions):
    db = tmp_path / "g.db"
    submissions("ana")
    main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db)])
    capsys.readouterr()
    assert main(["export", "lab9", "--db", str(db), "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert "no results for lab 'lab9'" in err and "labs with results: toy" in err


@pytest.mark.slow
def test_validate_lab_passes_on_a_good_lab(course, capsys):
    assert main(["validate-lab", "toy", "--root", str(course)]) == 0
    assert "the solved student notebook gets G" in capsys.readouterr().out


@pytest.mark.slow
def test_validate_lab_fails_when_the_template_would_pass(course, capsys):
    solution = course / "reference" / "toy" / "solution.ipynb"
    (course / "assignments" / "toy" / "toy.ipynb").write_bytes(solution.read_bytes())
    rubric = course / "rubrics" / "toy.yaml"  # a released answer is the template: only a rubric without
    text = rubric.read_text()                 # a reflection lets the handed-out notebook pass
    rubric.write_text(text[:text.index("  - id: reflection")])
    assert main(["validate-lab", "toy", "--root", str(course)]) == 1
    assert "student-template got G, expected U" in capsys.readouterr().out


@pytest.mark.slow
def test_validate_lab_checks_cells_and_probe_outputs_against_the_rubric(course, capsys):
    rubric = course / "rubrics" / "toy.yaml"
    text = rubric.read_text().replace("split: test", "split: test\n    probe: scores").replace(
        "kind: reflection", "kind: reflection\n    cell: essay")
    rubric.write_text(text + "  - id: val-accuracy\n    kind: accuracy\n    split: train\n    min: 0.5\n")
    (course / "reference" / "toy" / "probes.py").write_text(
        "import numpy as np\n\n\ndef probe_scores(exports, inputs):\n"
        "    return {'test': np.asarray(exports['predict'](inputs['test']))}\n")
    assert main(["validate-lab", "toy", "--root", str(course)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "names cell 'essay', which the student notebook (toy.ipynb) does not have" in out
    assert "probe 'scores' gives no output for split 'train' (it gives: test)" in out


def test_usage_errors_exit_2_with_a_hint(course, tmp_path, capsys):
    assert main(["grade", "toy", str(tmp_path / "missing"), "--root", str(course)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["grade", "toy", str(tmp_path), "--root", str(course), "--backend", "k8s"]) == 2
    assert "unknown sandbox backend" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "autograder", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "exit codes:" in proc.stdout


@pytest.mark.slow
def test_ctrl_c_stops_the_sandboxes_and_records_nothing_half_done(course, submissions, tmp_path):
    import signal
    import sqlite3
    import time

    import psutil

    submissions("sleeper", "import subprocess, time\nsubprocess.Popen(['sleep', '876543'])\ntime.sleep(600)")
    db = tmp_path / "g.db"
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "grade", "toy", str(submissions.folder),
                             "--root", str(course), "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=sigint_as_at_a_terminal)

    def marked():
        return [p for p in psutil.process_iter(["cmdline"]) if "876543" in (p.info["cmdline"] or [])]

    deadline = time.monotonic() + 60
    while not marked() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked(), "the notebook never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert b"interrupted" in err and b"Traceback" not in err
    time.sleep(0.5)
    assert marked() == []
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0


def test_a_limit_override_out_of_range_is_a_usage_error(course, submissions, capsys):
    submissions("ana")
    args = ["grade", "toy", str(submissions.folder), "--root", str(course)]
    assert main([*args, "--pids", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --pids: Input should be greater than or equal to 16") and "Traceback" not in err
    assert main([*args, "--gpus", "0,0"]) == 2
    assert "not a list of distinct GPU indices" in capsys.readouterr().err


@pytest.mark.slow
def test_export_formats_and_the_course_roll_up_from_the_command_line(course, submissions, tmp_path, capsys):
    """The export and course verbs as staff type them: a course.yaml and roster beside the toy lab."""
    import pandas as pd

    submissions("ana")
    submissions("bo", "def predict(X):\n    return 1 - (X[:, 0] > 0).astype(int)\n")
    db = tmp_path / "g.db"
    assert main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db)]) == 0
    (course / "roster.csv").write_text("student,name,canvas_id,sis_user_id,sis_login_id,section,ladok_id\n"
                                       "ana,Ana,1,S1,ana1,A,L-1\nbo,Bo,2,S2,bo2,A,L-2\ncy,Cy,3,S3,cy3,A,L-3\n")
    (course / "course.yaml").write_text("course: DT0001\nmodule: LAB1\nroster: roster.csv\n"
                                        "labs:\n  - lab: toy\n    canvas_assignment: Toy (7)\n")
    capsys.readouterr()
    assert main(["course", "results", "--root", str(course), "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "ana" in text and "cy" in text
    canvas = tmp_path / "canvas.csv"
    assert main(["export", "toy", "-f", "canvas", "--course", "--root", str(course), "--db", str(db),
                 "-o", str(canvas)]) == 0
    sheet = pd.read_csv(canvas)
    assert list(sheet.columns)[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert "cy" in capsys.readouterr().err  # on the roster, no result: said, not dropped
    gs = tmp_path / "gs"
    assert main(["export", "toy", "-f", "gradescope", "--db", str(db), "--root", str(course), "-o", str(gs)]) == 0
    assert sorted(p.parent.name for p in gs.rglob("results.json")) == ["ana", "bo"]
    assert main(["export", "-f", "ladok", "--course", str(course / "course.yaml"), "--root", str(course),
                 "--db", str(db), "-o", "-", "--date", "2026-11-27"]) == 0
    assert "L-1" in capsys.readouterr().out
    assert main(["export", "-f", "ladok", "--db", str(db), "-o", "-"]) == 2  # neither lab nor course


@pytest.mark.slow
def test_feedback_and_report_from_the_command_line(course, submissions, tmp_path, capsys):
    """The report beside the feedback pages links each student in review to their page."""
    submissions("ana")
    submissions("bo", "def predict(X):\n    return 1 - (X[:, 0] > 0).astype(int)\n")
    db = tmp_path / "g.db"
    assert main(["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db)]) == 0
    out = tmp_path / "fb"
    assert main(["feedback", "toy", "-o", str(out), "--root", str(course), "--db", str(db)]) == 0
    assert {p.name for p in out.iterdir()} >= {"index.html", "ana.html", "ana.md", "bo.html", "bo.md"}
    assert main(["report", "toy", "-o", str(out / "report.html"), "--root", str(course), "--db", str(db)]) == 0
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert main(["report", "lab9", "--root", str(course), "--db", str(db)]) == 2


def test_the_command_starts_without_the_heavy_libraries():
    """Each verb imports its domain where it runs: `--help`, `show` and the other quick verbs would
    otherwise pay for numpy, pytest, nbformat and the Docker SDK at every start (2.6 s against 0.3 s)."""
    heavy = ["numpy", "docker", "pytest", "torch", "nbformat", "papermill", "pandas", "nbgrader"]
    code = ("import sys, autograder.cli; autograder.cli.parser(); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
