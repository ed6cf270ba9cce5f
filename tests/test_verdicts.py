"""Every verdict path, on real notebooks run by papermill in the local sandbox (toy lab, NumPy only)."""

from __future__ import annotations

import json

import nbformat
import psutil
import pytest
from graded import GOOD_PREDICT, by_id, executed_notebook

pytestmark = pytest.mark.slow


def test_cohort_gets_a_verdict_with_reasons_each(submissions, grade):
    submissions("good")
    submissions("crash", "import numpy as np\nnp.zeros(3) @ np.zeros(4)")
    submissions("wrong", "def predict(X):\n    return (X[:, 1] > 0).astype(int)")
    submissions("short", reflection="Overfitting is bad for people.")
    submissions("blank", reflection="YOUR ANSWER HERE")
    submissions("no_export", "x = 1")
    submissions("bad_shape", "def predict(X):\n    return [1, 0]")
    results = grade(submissions.folder)

    assert {s: r.verdict for s, r in results.items()} == {
        "good": "G", "crash": "U", "wrong": "U", "short": "U", "blank": "U", "no_export": "U", "bad_shape": "U"}

    good = by_id(results["good"])
    assert all(c.status == "pass" for c in good.values())
    assert good["test-accuracy"].value == 1.0 and good["test-accuracy"].threshold == 0.9
    assert good["hidden-tests"].value == 1.0 and good["hidden-tests"].details["passed"] == "2/2"
    assert results["good"].metrics["positive_rate"] == pytest.approx(0.5, abs=0.15)

    crash = by_id(results["crash"])
    assert crash["runs"].status == "fail"
    assert crash["runs"].message.startswith("Cell 4 raised ValueError")
    # What depends on a finished run is skipped, not failed a second time.
    assert {crash[i].status for i in ("test-accuracy", "gap", "hidden-tests")} == {"skipped"}
    assert crash["reflection"].status == "pass"

    wrong = by_id(results["wrong"])
    assert wrong["test-accuracy"].status == "fail" and wrong["test-accuracy"].value < 0.7
    assert wrong["test-accuracy"].message.endswith("below the 0.90 needed.")

    assert by_id(results["short"])["reflection"].message.startswith("The reflection has 5 words")
    assert by_id(results["blank"])["reflection"].message.startswith("The reflection is not written yet")

    no_export = by_id(results["no_export"])
    assert no_export["test-accuracy"].status == "fail"
    assert "`predict` not defined by the notebook" in no_export["test-accuracy"].message
    assert "not defined by the notebook" in no_export["hidden-tests"].message

    assert "expected one row of class scores per input" in by_id(results["bad_shape"])["test-accuracy"].message
    for r in results.values():
        assert all(c.message and "\n" not in c.message for c in r.criteria), r.student


def test_endless_cell_is_stopped_at_the_cell_limit(submissions, grade):
    submissions("loop", "import subprocess\nsubprocess.Popen(['sleep', '987653'])\nwhile True:\n    pass")
    r = grade(submissions.folder, cell_timeout=2)["loop"]
    assert r.verdict == "U"
    assert r.execution.status == "cell-timeout"
    assert by_id(r)["runs"].message.startswith("Cell 4 ran longer than 2 s")
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if "987653" in (p.info["cmdline"] or [])]
    assert leftovers == []


def test_whole_run_limit_kills_the_process_tree(submissions, grade):
    submissions("sleeper", "import subprocess, time\nsubprocess.Popen(['sleep', '987654'])\ntime.sleep(600)")
    r = grade(submissions.folder, timeout=8, cell_timeout=600)["sleeper"]
    assert r.verdict == "U"
    assert r.execution.status == "timeout"
    assert "stopped after 8 s" in by_id(r)["runs"].message
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if "987654" in (p.info["cmdline"] or [])]
    assert leftovers == []


def test_memory_limit_counts_the_whole_tree(submissions, grade):
    body = (
        "import subprocess, sys, time\n"
        "hog = 'import time; b = bytearray(200 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(60)'\n"
        "procs = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(3)]\n"
        "time.sleep(60)"
    )
    submissions("hog", body)
    r = grade(submissions.folder, memory="400MiB", cell_timeout=120)["hog"]
    assert r.verdict == "U"
    assert r.execution.status == "memory"
    assert "400 MiB" in by_id(r)["runs"].message


def test_memory_error_inside_a_cell_is_reported_as_memory(submissions, grade):
    submissions("bomb", "import numpy as np\nx = np.ones(10**10)")
    r = grade(submissions.folder, memory="512MiB")["bomb"]
    assert r.execution.status == "memory" and r.verdict == "U"


def test_killed_kernel_is_the_students_failure_with_the_cell(submissions, grade):
    submissions("exit", "import os\nos._exit(3)")
    r = grade(submissions.folder)["exit"]
    assert r.verdict == "U"
    # Retried once (a sandbox dying may be the machine's doing); the same crash twice is the student's.
    message = by_id(r)["runs"].message
    assert message.startswith("Cell 4 crashed the notebook's kernel") and "both runs" in message


def test_unreadable_notebook_gets_a_verdict_not_a_crash(submissions, grade):
    submissions("good")
    (submissions.folder / "garbled.ipynb").write_text("{not json")
    (submissions.folder / "v3.ipynb").write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    results = grade(submissions.folder)
    assert results["good"].verdict == "G"
    for student in ("garbled", "v3"):
        assert results[student].verdict == "U"
        assert "can't be graded" in by_id(results[student])["runs"].message


def test_output_flood_is_truncated_and_graded_normally(submissions, grade, store):
    submissions("flood", "for _ in range(400):\n    print('x' * 50_000)\n" + GOOD_PREDICT)
    r = grade(submissions.folder)["flood"]
    assert r.verdict == "G"
    assert r.execution.output_truncated_bytes > 15_000_000
    assert "more output than the lab keeps" in r.notes[0]
    executed = next(store.artifacts_root.rglob("executed.ipynb"))
    assert executed.stat().st_size < 3 * 1024**2
    assert "output truncated" in executed.read_text()


def test_regrade_skips_same_content_and_rejudges_a_new_rubric_without_rerunning(submissions, grade, course, store):
    submissions("good")
    first = grade(submissions.folder)["good"]
    again = grade(submissions.folder)["good"]
    assert again.graded_at == first.graded_at  # skipped: same content, lab version and rubric

    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace("min: 0.9", "min: 0.95"))
    rejudged = grade(submissions.folder)["good"]
    assert rejudged.graded_at > first.graded_at
    assert rejudged.rubric_hash != first.rubric_hash
    # Execution and probes came from the store: no notebook ran.
    assert rejudged.execution.duration_s == first.execution.duration_s
    forced = grade(submissions.folder, force=True)["good"]
    assert forced.execution.duration_s != first.execution.duration_s
    assert len(store.latest("toy")) == 1


def test_a_broken_hidden_test_is_an_error_not_the_students_fault(submissions, grade, course):
    (course / "reference" / "toy" / "tests" / "test_broken.py").write_text("import nonexistent_module\n")
    submissions("good")
    r = grade(submissions.folder)["good"]
    assert r.verdict == "error"
    assert by_id(r)["hidden-tests"].status == "error"
    assert "could not run the hidden tests" in by_id(r)["hidden-tests"].message


def test_crafted_export_only_harms_its_own_probe(submissions, grade):
    evil = (
        "class Evil:\n"
        "    def __reduce__(self):\n"
        "        return (exec, ('raise SystemExit(\"pwned\")',))\n"
        "predict = Evil()"
    )
    submissions("evil", evil)
    submissions("good")
    results = grade(submissions.folder)
    assert results["good"].verdict == "G"
    assert results["evil"].verdict == "U"
    assert "could not be loaded: SystemExit: pwned" in by_id(results["evil"])["test-accuracy"].message


def test_execution_sandbox_sees_no_staff_files_or_host_environment(submissions, grade, store, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", "hunter2")
    spy = (
        "import os, json\n"
        "files = sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs)\n"
        "print('SPY' + json.dumps({'env': dict(os.environ), 'files': files, 'cwd': os.getcwd()}))\n"
        + GOOD_PREDICT
    )
    submissions("spy", spy)
    r = grade(submissions.folder)["spy"]
    assert r.verdict == "G"
    nb = executed_notebook(store)
    text = next(o["text"] for c in nb.cells for o in c.get("outputs", []) if "SPY" in o.get("text", ""))
    seen = json.loads(text.split("SPY", 1)[1])
    visible = {f for f in seen["files"] if not f.startswith((".home", ".tmp"))}
    assert visible <= {"submission.ipynb", "executed.ipynb", ".job.json", "data/train.npz"}
    blob = json.dumps(seen)
    for secret in ("hunter2", "reference", "test.npz", "test_hidden", "probes.py", "rubrics"):
        assert secret not in blob, secret
    assert seen["env"]["HOME"].startswith(seen["cwd"])
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == ""


def test_probe_sandbox_holds_no_inputs_labels_or_probes(submissions, grade, monkeypatch):
    """The student's objects see only what a call sends them. The spy raises on the first call, on
    the hidden split (the toy lab lists it first): the student reads the type only, staff the text."""
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", "hunter2")
    spy = (
        "def predict(X):\n"
        "    import os, numpy as np\n"
        "    files = sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs\n"
        "                   if not d.startswith(('./.home', './.tmp')))\n"
        "    arrays = {f: list(np.load(f).shape) for f in files if f.endswith('.npy')}\n"
        "    raise RuntimeError(repr((files, arrays, dict(os.environ))))\n"
    )
    submissions("spy", spy)
    r = grade(submissions.folder)["spy"]
    assert by_id(r)["test-accuracy"].message == "Evaluating your exported objects failed: your code raised RuntimeError"
    detail = r.probes.probes["scores"].detail
    files, arrays, env = eval(detail.split("RuntimeError: ", 1)[1])  # noqa: S307 - our own test's output
    assert set(files) <= {".job.json", "exports/predict.pkl"}
    assert arrays == {}
    blob = repr(env)
    for secret in ("hunter2", "AUTOGRADER", "reference", "rubrics", "test_hidden"):
        assert secret not in blob, secret


def test_fake_result_files_in_the_workdir_change_nothing(submissions, grade):
    forge = (
        "import json, os\n"
        "os.makedirs('exports', exist_ok=True)\n"
        "json.dump({'status': 'ok'}, open('report.json', 'w'))\n"
        "open('executed.ipynb', 'w').write('{}')\n"
        "raise RuntimeError('genuinely broken')\n"
    )
    submissions("forger", forge)
    r = grade(submissions.folder)["forger"]
    assert r.verdict == "U"
    assert by_id(r)["runs"].message == "Cell 4 raised RuntimeError: genuinely broken"


def test_executed_notebook_is_valid_and_parameterised(submissions, grade, store):
    submissions("good")
    grade(submissions.folder)
    nb = executed_notebook(store)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'data_dir = "data"' in injected[0].source


def test_two_labs_with_same_named_hidden_tests_do_not_share_them(submissions, grade, course, store, tmp_path):
    import shutil

    from autograder.grading.intake import discover
    from autograder.grading.pipeline import Grader, Options
    from autograder.labs.lab import load_lab
    from autograder.sandbox import get_backend

    for folder in ("assignments", "reference"):
        shutil.copytree(course / folder / "toy", course / folder / "toy2")
    rubric = (course / "rubrics" / "toy.yaml").read_text()
    (course / "rubrics" / "toy2.yaml").write_text(rubric.replace("lab: toy", "lab: toy2"))
    spec = course / "assignments" / "toy2" / "lab.yaml"
    spec.write_text(spec.read_text().replace("name: toy", "name: toy2"))
    (course / "reference" / "toy2" / "tests" / "test_hidden.py").write_text(
        "import pytest\n\n\n@pytest.mark.public\ndef test_always_fails():\n"
        "    assert False, 'toy2 has its own tests'\n")
    submissions("good")
    assert grade(submissions.folder)["good"].verdict == "G"
    grader = Grader(load_lab("toy2", course), store, get_backend("local"), Options(scratch=tmp_path))
    result, _ = grader.grade(discover(submissions.folder)[0])
    tests = {c.id: c for c in result.criteria}["hidden-tests"]
    assert tests.status == "fail" and "toy2 has its own tests" in tests.message


def test_an_export_that_cannot_be_pickled_says_why(submissions, grade):
    submissions("locked", "import threading\nclass P:\n    lock = threading.Lock()\n    def __call__(self, X):\n"
                          "        return (X[:, 0] > 0).astype(int)\n    def __reduce__(self):\n"
                          "        raise TypeError('cannot pickle this predictor')\npredict = P()")
    r = grade(submissions.folder)["locked"]
    assert r.verdict == "U"
    assert "`predict` could not be saved: TypeError: cannot pickle this predictor" in by_id(r)["test-accuracy"].message


def test_borderline_accuracy_goes_to_review(submissions, grade, course):
    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace("    min: 0.9\n", "    min: 0.9\n    review_margin: 0.05\n"))
    # Wrong on one in eight points: about 0.875, within 0.05 of the 0.9 bar.
    submissions("close", "def predict(X):\n    y = (X[:, 0] > 0).astype(int)\n    y[::8] = 1 - y[::8]\n    return y")
    submissions("far", "def predict(X):\n    y = (X[:, 0] > 0).astype(int)\n    y[::3] = 1 - y[::3]\n    return y")
    results = grade(submissions.folder)
    close, far = by_id(results["close"])["test-accuracy"], by_id(results["far"])["test-accuracy"]
    assert close.status == "review" and results["close"].verdict == "review"
    assert "a teacher will decide" in close.message
    assert far.status == "fail" and results["far"].verdict == "U"


def test_asking_for_input_is_explained(submissions, grade):
    submissions("asker", "name = input('your name? ')")
    r = grade(submissions.folder)["asker"]
    assert by_id(r)["runs"].message == "Cell 4 asks for keyboard input (input()), which is not available when grading."


def test_identical_submissions_run_once_and_both_get_their_verdict(submissions, grade, store):
    twin = submissions("twin_a")
    (submissions.folder / "twin_b.ipynb").write_bytes(twin.read_bytes())
    results = grade(submissions.folder, jobs=2)
    assert results["twin_a"].verdict == results["twin_b"].verdict == "G"
    assert results["twin_a"].execution.duration_s == results["twin_b"].execution.duration_s
    assert len(list(store.artifacts_root.rglob("executed.ipynb"))) == 1


def test_output_is_capped_across_the_whole_notebook_too(submissions, grade):
    # 40 cells of 40 kB each: every one under a 64 KiB per-cell cap, together over the 16 x 64 KiB total.
    nb = nbformat.read(submissions("chatty"), as_version=4)
    for _ in range(40):
        nb.cells.insert(3, nbformat.v4.new_code_cell("print('y' * 40_000)"))
    nbformat.write(nb, submissions.folder / "chatty.ipynb")
    r = grade(submissions.folder, output="64KiB")["chatty"]
    assert r.verdict == "G"
    kept = 40 * 40_001 - r.execution.output_truncated_bytes  # print adds a newline
    assert kept == 16 * 64 * 1024


def test_a_daemon_rewriting_the_executed_notebook_changes_nothing(submissions, grade, store):
    # A detached child keeps overwriting executed.ipynb after papermill has written it.
    forge = (
        "import subprocess, sys, textwrap\n"
        "fake = '{\"cells\": [], \"metadata\": {}, \"nbformat\": 4, \"nbformat_minor\": 5}'\n"
        "loop = textwrap.dedent(f'''\n"
        "    import time\n"
        "    for _ in range(3000):\n"
        "        open('executed.ipynb', 'w').write({fake!r})\n"
        "        time.sleep(0.005)\n"
        "''')\n"
        "subprocess.Popen([sys.executable, '-c', loop], start_new_session=True)\n"
        + GOOD_PREDICT
    )
    submissions("forger", forge)
    r = grade(submissions.folder)["forger"]
    assert r.verdict == "G"
    nb = executed_notebook(store)
    assert len(nb.cells) > 3 and any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_filling_the_work_dir_is_stopped_by_size_or_by_file_count(submissions, grade):
    big = ("import os, time\nfor i in range(4):\n    open(f'big{i}', 'wb').write(os.urandom(32 * 1024 * 1024))\n"
           "time.sleep(60)\n")
    many = ("import os, time\nos.makedirs('junk')\nfor i in range(120_000):\n    open(f'junk/{i}', 'w').close()\n"
            "time.sleep(60)\n")
    submissions("big", big)
    submissions("many", many)
    results = grade(submissions.folder, disk="64MiB", cell_timeout=120, timeout=120)
    assert results["big"].execution.status == "disk"
    assert "64 MiB disk limit" in by_id(results["big"])["runs"].message
    assert results["many"].execution.status == "disk"
    assert "more than 100,000 files" in by_id(results["many"])["runs"].message
