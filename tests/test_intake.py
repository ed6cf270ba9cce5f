"""Intake of notebooks, student folders and zips: what is taken, what is refused, and why.

Broken and hostile zips: tests/hostile/test_hostile_hand_ins.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hand_ins import MODULES, by_student, nb_bytes, zipped

from autograder.errors import UserError
from autograder.grading.intake import IntakeSpec, discover, take_beside


def folder(root: Path, name: str, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / name / rel).write_bytes(data)
    return root / name


def test_a_notebook_alone_keeps_its_plain_hash(tmp_path):
    path = tmp_path / "ada.ipynb"
    path.write_bytes(nb_bytes())
    [sub] = discover(path)
    assert sub.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # results of earlier labs stay valid
    assert sub.problem is None and sub.notebook_bytes() == path.read_bytes()


def test_folders_and_zips_take_the_notebook_and_the_named_modules(tmp_path):
    subs = tmp_path / "subs"
    folder(subs, "ada", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "scratch.txt": b"ignored"})
    zipped(subs, "bo", {"bo/lab.ipynb": nb_bytes(), "bo/rules.py": b"X = 2\n", "__MACOSX/bo/._rules.py": b"junk"})
    folder(subs, "cy", {"work/lab.ipynb": nb_bytes(), "src/rules.py": b"X = 3\n"})  # found anywhere when unique
    found = by_student(discover(subs, MODULES))
    assert {s: found[s].problem for s in found} == {"ada": None, "bo": None, "cy": None}
    assert found["bo"].file_bytes("rules.py") == b"X = 2\n"
    assert found["cy"].files == {"rules.py": "src/rules.py"}
    # Same notebook, different module: different submissions.
    assert len({s.sha256 for s in found.values()}) == 3


def test_a_missing_module_is_a_clear_problem(tmp_path):
    subs = tmp_path / "subs"
    folder(subs, "ada", {"lab.ipynb": nb_bytes()})
    (subs / "bo.ipynb").write_bytes(nb_bytes())
    found = by_student(discover(subs, MODULES))
    assert "rules.py is missing from the folder" in found["ada"].problem
    assert "the notebook was handed in alone, without rules.py" in found["bo"].problem
    assert "hand in a folder or zip with the notebook and rules.py" in found["bo"].problem


def test_two_modules_of_one_name_must_be_told_apart(tmp_path):
    subs = tmp_path / "subs"
    folder(subs, "ada", {"nb/lab.ipynb": nb_bytes(), "a/rules.py": b"", "b/rules.py": b""})
    folder(subs, "bo", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "old/rules.py": b"X = 0\n"})
    found = by_student(discover(subs, MODULES))
    assert "2 files named rules.py" in found["ada"].problem
    assert found["bo"].problem is None and found["bo"].file_bytes("rules.py") == b"X = 1\n"  # beside wins


def test_one_students_folder_is_one_submission(tmp_path):
    work = folder(tmp_path, "mywork", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n"})
    [sub] = discover(work, MODULES)
    assert sub.student == "mywork" and sub.problem is None


def test_the_self_check_takes_the_notebook_and_its_modules_beside_it(tmp_path):
    work = folder(tmp_path, "kit", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "scratch.ipynb": nb_bytes(),
                                    "tests/test_public.py": b""})
    sub = take_beside("lab", work / "lab.ipynb", MODULES)
    assert sub.problem is None and sub.files == {"rules.py": "rules.py"}
    (work / "rules.py").unlink()
    assert "rules.py is missing" in take_beside("lab", work / "lab.ipynb", MODULES).problem


def test_two_submissions_of_one_student_stop_the_batch_before_it_starts(tmp_path):
    subs = tmp_path / "subs"
    folder(subs, "ada", {"lab.ipynb": nb_bytes(), "rules.py": b""})
    zipped(subs, "ada", {"lab.ipynb": nb_bytes(), "rules.py": b""})
    with pytest.raises(UserError, match="two submissions for student 'ada'"):
        discover(subs, MODULES)


REPORTED = IntakeSpec(lab="lab", notebook="lab.ipynb", student_files=["rules.py"], report="report")


def test_the_report_is_found_beside_the_notebook_and_counts_in_the_hash(tmp_path):
    subs = tmp_path / "subs"
    folder(subs, "ada", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "report.md": b"# Ethics\n"})
    folder(subs, "bo", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "report.txt": b"a", "Report.pdf": b"%PDF",
                        "report.md": b"b"})
    folder(subs, "cy", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "Lab2 writeup (final).pdf": b"%PDF-1"})
    folder(subs, "dan", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n"})
    folder(subs, "eve", {"lab.ipynb": nb_bytes(), "rules.py": b"X = 1\n", "a.md": b"", "b.txt": b""})
    found = by_student(discover(subs, REPORTED))
    assert found["ada"].report == "report.md" and found["ada"].report_bytes() == b"# Ethics\n"
    assert found["bo"].report == "Report.pdf"  # several: the first of .pdf, .md, .txt, and said so
    assert found["bo"].notes == ["several reports were handed in; Report.pdf was read, not report.md, report.txt"]
    assert found["cy"].report == "Lab2 writeup (final).pdf" and "the one document handed in" in found["cy"].notes[0]
    assert found["dan"].report is None and found["dan"].problem is None  # the reflection criterion says so
    assert found["eve"].report is None and "none was read as the report" in found["eve"].notes[0]
    with pytest.raises(LookupError):
        found["dan"].report_bytes()
    # the same code without a report keeps the hash it had; a report changes it
    plain = by_student(discover(subs, MODULES))
    assert plain["dan"].sha256 == found["dan"].sha256 and plain["ada"].sha256 != found["ada"].sha256


def test_a_module_only_lab_takes_the_modules_and_ignores_a_stray_notebook(tmp_path):
    spec = IntakeSpec(lab="lab1", notebook=None, modules_only=True, student_files=["mlp.py"], report="report")
    subs = tmp_path / "subs"
    folder(subs, "ada", {"mlp.py": b"W = 1\n", "report.txt": b"My reflection."})
    folder(subs, "bo", {"src/mlp.py": b"W = 2\n", "scratch.ipynb": nb_bytes()})
    zipped(subs, "cy", {"cy/mlp_final.py": b"W = 3\n"})
    folder(subs, "dan", {"notes.py": b""})
    (subs / "eve.ipynb").write_bytes(nb_bytes())
    found = by_student(discover(subs, spec))
    assert found["ada"].problem is None and found["ada"].notebook is None and not found["ada"].has_notebook
    assert found["ada"].files == {"mlp.py": "mlp.py"} and found["ada"].report == "report.txt"
    assert found["bo"].problem is None and found["bo"].files == {"mlp.py": "src/mlp.py"}
    assert found["cy"].file_bytes("mlp.py") == b"W = 3\n" and found["cy"].notes == ["mlp.py was read from "
                                                                                     "cy/mlp_final.py"]
    assert "this lab is graded from mlp.py" in found["dan"].problem
    assert "handed in as mlp.py, without a notebook" in found["eve"].problem
    with pytest.raises(LookupError):
        found["ada"].notebook_bytes()
    [one] = discover(subs / "ada", spec)  # a student's own folder
    assert one.student == "ada" and one.problem is None


def test_a_notebook_named_as_the_labs_is_told_from_scratch_notebooks(tmp_path):
    subs = tmp_path / "subs"
    folder(subs, "ada", {"lab.ipynb": nb_bytes(), "scratch.ipynb": nb_bytes(), "rules.py": b""})
    folder(subs, "bo", {"Lab_final.ipynb": nb_bytes(), "rules.py": b""})
    found = by_student(discover(subs, REPORTED))
    assert found["ada"].notebook == "lab.ipynb" and "scratch.ipynb" in found["ada"].notes[0]
    assert found["bo"].problem is None and found["bo"].notebook == "Lab_final.ipynb"
