"""`autograder serve`: the review app over a real store, through Starlette's TestClient and a real uvicorn.

Who may enter (tokens, sessions, per-TA tokens), what a POST must prove (CSRF, origin), that a GET never
writes, that whatever a submission made renders inert, that student ids of any character work, that a
decision is recorded, undone and survives `grade --force`, the exports, and two TAs deciding at once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from page_checks import PAYLOAD, Tags

from autograder.cli import main
from autograder.errors import UserError
from autograder.labs.course import CourseSpec
from autograder.results import CriterionResult, SubmissionResult
from autograder.serve import views
from autograder.serve.app import HEADERS, MAX_NOTE, create_app
from autograder.serve.auth import token_sha256
from autograder.store import StageRecord, Store

ORIGIN = "http://127.0.0.1:8000"
TOKEN = "the-known-token-0123"
TEMPLATE = "{{7*7}}{% raw %}x{% endraw %}"
ESCAPES = "\x1b[31mred\x1b]0;title\x07\x1b[2J"
HOSTILE_ID = f"<script>alert(1)</script><img src=x onerror=alert(2)>{TEMPLATE}"
ODD_IDS = ["a/b", "..", ".", "../../etc/passwd", "a%2fb", "名前 ü", "sp ace?#&", "x\\y"]
CODE = "# ---- cell 3 ----\ndef predict(X):\n    w = X.mean(axis=0)\n    return (X @ w > 0).astype(int)\n"
THEIR_CODE = ("# ---- cell 3 ----\nimport numpy as np\ndef guess(Z):\n    v = Z.mean(axis=0)\n"
              "    return (Z @ v > 0).astype(int)\n")
TEXT = ("Overfitting matters because a model that memorises its training data fails the people it is deployed "
        "on, and in media technology generated images shape what people believe.")


def criterion(cid: str, kind: str, status: str, **extra) -> CriterionResult:
    return CriterionResult(id=cid, kind=kind, status=status, message=extra.pop("message", f"{cid} is {status}."),
                           **extra)


def result(student: str, *criteria: CriterionResult, notes: list[str] | None = None) -> SubmissionResult:
    from autograder.labs.rubric import decide

    cs = list(criteria)
    return SubmissionResult(lab="toy", student=student, submission_hash=f"sha-{student}", lab_version="1",
                            rubric_hash="r", verdict=decide(cs), criteria=cs, notes=notes or [])


def cohort() -> list[SubmissionResult]:
    """ana passes; bo's reflection looks copied from ana's (review); cy's accuracy is under the bar (fail) and
    borderline elsewhere (review); the hostile student's every text is a payload; odd ids wait too."""
    acc = dict(value=0.93, threshold=0.9, details={"metric": "accuracy", "split": "test"})
    ana = result("ana", criterion("accuracy", "accuracy", "pass", **acc),
                 criterion("reflection", "reflection", "pass", details={"text": TEXT}),
                 criterion("code", "code-originality", "pass", details={"code": THEIR_CODE}))
    bo = result("bo", criterion("accuracy", "accuracy", "pass", **acc),
                criterion("reflection", "reflection", "review", message="Looks like another student's text.",
                          details={"text": TEXT + " Mine.", "own_status": "pass",
                                   "similar_to": [{"student": "ana", "similarity": 0.97, "lexical": 0.95,
                                                   "semantic": 0.99, "by": "words and meaning"}]}),
                criterion("code", "code-originality", "review", message="Parts of your code match another's.",
                          details={"code": CODE, "own_status": "pass", "similar_to": [
                              {"student": "ana", "similarity": 0.81,
                               "passages": [{"mine": [2, 4], "theirs": [3, 5]}, {"mine": [9, 1], "theirs": "x"}]}]}))
    cy = result("cy", criterion("accuracy", "accuracy", "review", value=0.88, threshold=0.9,
                                details={"metric": "accuracy", "split": "test"}),
                criterion("reflection", "reflection", "fail", details={"text": "Too short."}))
    hostile = result(HOSTILE_ID,
                     criterion("accuracy", "accuracy", "pass", **acc),
                     criterion("reflection", "reflection", "review", message=f"{PAYLOAD}{TEMPLATE}{ESCAPES}",
                               advice=PAYLOAD, details={"text": f"{PAYLOAD}\n{TEMPLATE}\n{ESCAPES}",
                                                        "staff_detail": PAYLOAD + ESCAPES}),
                     notes=[PAYLOAD + TEMPLATE])
    odd = [result(s, criterion("accuracy", "accuracy", "pass", **acc),
                  criterion("reflection", "reflection", "review", details={"text": f"text of {s}"})) for s in ODD_IDS]
    return [ana, bo, cy, hostile, *odd]


def hostile_notebook(folder: Path) -> None:
    """An executed notebook whose every output is an attack on the TA's browser."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    fake_png = base64.b64encode(b"<html><script>alert(3)</script></html>").decode()
    cell = new_code_cell(f"print({PAYLOAD!r})", execution_count=1, outputs=[
        new_output("stream", name="stdout", text=PAYLOAD + ESCAPES + TEMPLATE),
        new_output("display_data", data={"text/html": PAYLOAD, "application/javascript": "alert(4)",
                                         "image/svg+xml": "<svg onload=alert(5)></svg>", "image/png": fake_png}),
        new_output("error", ename="ValueError", evalue=PAYLOAD, traceback=[ESCAPES + PAYLOAD]),
    ])
    nb = new_notebook(cells=[new_markdown_cell(PAYLOAD + "<iframe src=//evil>"), cell])
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "executed.ipynb")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "db" / "grades.db"
    store = Store(path)
    stages = {}
    for r in cohort():
        if r.student == HOSTILE_ID:
            folder = tmp_path / "artifacts" / "execute-hostile"
            hostile_notebook(folder)
            r.stages = {"execute": "hostile-key"}
            stages = {"stages": [StageRecord(key="hostile-key", stage="execute", lab="toy", submission_hash=
                                             r.submission_hash, result={}, artifacts=folder)]}
        store.record(r, **stages)
        stages = {}
    store.close()
    return path


def signed_in(app, token: str = TOKEN) -> TestClient:
    client = TestClient(app, base_url=ORIGIN)
    assert client.get(f"/?token={token}").status_code == 200
    return client


@pytest.fixture
def app(db: Path, tmp_path: Path):
    return create_app(db, token=TOKEN, out=tmp_path / "exports", user="tove")


@pytest.fixture
def client(app) -> TestClient:
    return signed_in(app)


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def post(client: TestClient, url: str, data: dict, token: str | None = None, origin: str | None = ORIGIN):
    page = client.get("/lab/toy/export").text  # a page that always holds a form
    headers = {"Origin": origin} if origin else {}
    return client.post(url, data={"csrf": token if token is not None else csrf(page), **data}, headers=headers,
                       follow_redirects=False)


def counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as c:
        return (c.execute("SELECT COUNT(*) FROM results").fetchone()[0],
                c.execute("SELECT COUNT(*) FROM overrides").fetchone()[0])


def current(db: Path, student: str) -> SubmissionResult:
    store = Store(db)
    try:
        found = store.latest_of("toy", student)
        assert found is not None
        return found
    finally:
        store.close()


def queue_links(client: TestClient) -> list[str]:
    return [unescape(u) for u in re.findall(r'<a class="item" href="([^"]+)"', client.get("/lab/toy/review").text)]


# --- who may enter -------------------------------------------------------------------------------------------


def test_no_token_or_a_wrong_one_is_refused_and_shows_nothing(app):
    anonymous = TestClient(app, base_url=ORIGIN)
    for url in ["/", "/lab/toy", "/lab/toy/review", "/lab/toy/review/bo/reflection", "/lab/toy/student/bo",
                "/lab/toy/export", "/static/review.js", "/lab/nope", f"/?token={TOKEN}x", "/?token="]:
        response = anonymous.get(url, follow_redirects=False)
        assert response.status_code == 403, url
        assert "Token needed" in response.text
        secrets = ("memorises", "reflection", "accuracy", "/lab/", "student-id")
        assert not any(secret in response.text for secret in secrets)
    forged = TestClient(app, base_url=ORIGIN, cookies={"autograder_session": "dG92ZQ.abc.0000"})
    assert forged.get("/").status_code == 403
    response = anonymous.post("/lab/toy/decide", data={"student": "bo", "criterion": "reflection",
                                                       "decision": "pass", "note": "x"}, headers={"Origin": ORIGIN})
    assert response.status_code == 403


def test_the_token_sets_a_strict_cookie_and_leaves_the_url(app):
    client = TestClient(app, base_url=ORIGIN)
    response = client.get(f"/lab/toy?verdict=U&token={TOKEN}&q=c", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/lab/toy?verdict=U&q=c"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    page = client.get(response.headers["location"])
    assert page.status_code == 200 and "cy" in page.text and TOKEN not in page.text


def test_a_session_from_another_server_does_not_open_this_one(db, tmp_path):
    first = signed_in(create_app(db, token=TOKEN, user="tove"))
    second = create_app(db, token=TOKEN, user="tove")  # a restart: a new key
    assert TestClient(second, base_url=ORIGIN, cookies=dict(first.cookies)).get("/").status_code == 403


def test_every_response_has_the_strict_headers(client, app):
    responses = [client.get(u) for u in ["/", "/lab/toy", "/lab/toy/review", "/lab/nope", "/static/review.js",
                                         "/lab/toy/review/bo/reflection"]]
    responses += [TestClient(app, base_url=ORIGIN).get("/"), client.get(f"/?token={TOKEN}", follow_redirects=False),
                  post(client, "/lab/toy/decide", {"student": "bo"}, token="wrong")]
    for response in responses:
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (response.url, name)
    assert HEADERS["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self';")
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', client.get("/").text)[1]
    assert unescape(meta) == HEADERS["Content-Security-Policy"].replace("; frame-ancestors 'none'", "")


# --- pages ---------------------------------------------------------------------------------------------------


def test_the_cohort_filters_by_verdict_criterion_status_and_student(client):
    def shown(query: str) -> list[str]:
        html = client.get(f"/lab/toy{query}").text
        return sorted(unescape(s) for s in re.findall(r'<td class="student-id"><a href="[^"]+">([^<]*)</a>', html))

    everyone = shown("")
    assert len(everyone) == 4 + len(ODD_IDS)
    assert shown("?verdict=G") == ["ana"]
    assert shown("?criterion=accuracy&status=review") == ["cy"]
    assert shown("?criterion=reflection") == sorted(s for s in everyone if s != "ana")  # not met
    assert shown("?status=fail") == ["cy"]
    assert shown("?q=B") == ["a%2fb", "a/b", "bo"]  # any part, any case
    assert client.get("/lab/toy?verdict=maybe").status_code == 400
    assert client.get("/lab/toy?criterion=nope").status_code == 400


def test_the_queue_lists_each_undecided_criterion_and_the_evidence_shows_both_texts(client):
    links = queue_links(client)
    assert len(links) == 4 + len(ODD_IDS)  # bo (two), cy, the hostile one, the odd ids
    page = client.get("/lab/toy/review/bo/reflection").text
    assert "section class=\"pair\"" in page and "similarity 0.97" in page
    assert "<mark" in page  # the shared passages, highlighted (publish.passages)
    assert "Mine." in page and "deployed" in page
    bar = client.get("/lab/toy/review/cy/accuracy").text
    assert "<svg" in bar and "(at least)" in bar and "0.88" in bar
    code = client.get("/lab/toy/review/bo/code").text
    assert 'class="pair"' in code and "similarity 0.81" in code
    assert "def guess(Z):" in code and "w = X.mean(axis=0)" in code  # both sides, each line as text


def test_after_a_decision_the_next_item_in_the_queue_s_order_opens(client):
    links = queue_links(client)
    at = links.index("/lab/toy/review/bo/reflection")
    assert links[at + 1] == "/lab/toy/review/bo/code"  # the same student's next criterion, in rubric order
    response = post(client, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": "fail",
                                                "note": "Copied."})
    assert response.headers["location"] == "/lab/toy/review/bo/code"
    page = client.get("/lab/toy/review/bo/reflection").text  # decided: next and previous still lead on
    assert 'id="next" href="/lab/toy/review/bo/code"' in page
    last = post(client, "/lab/toy/decide", {"student": unquote(links[-1].split("/")[4]), "criterion": "reflection",
                                            "decision": "fail", "note": "No."})
    assert last.headers["location"] == links[0]  # wraps round to the first


def test_a_decision_is_recorded_under_the_ta_and_leads_to_the_next_item(client, db):
    first, second = queue_links(client)[:2]
    student, crit = views.queue(Store(db), "toy").items[0].key
    response = post(client, "/lab/toy/decide", {"student": student, "criterion": crit, "decision": "pass",
                                                "note": "Written in their own words."})
    assert response.status_code == 303 and response.headers["location"] == second
    decided = {c.id: c for c in current(db, student).criteria}[crit]
    assert (decided.status, decided.override.by, decided.override.note) == ("pass", "tove",
                                                                           "Written in their own words.")
    queue = client.get("/lab/toy/review").text
    assert first not in queue_links(client) and "Written in their own words." in queue
    assert "tove" in re.search(r'<table id="decided">.*?</table>', queue, re.S)[0]
    page = client.get(first).text
    assert 'id="decision"' in page and 'id="undo"' in page


def test_undo_takes_back_the_decision_and_restores_the_one_before(client, db):
    def decide(decision: str, note: str):
        assert post(client, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": decision,
                                                "note": note}).status_code == 303

    decide("fail", "Copied.")
    decide("pass", "Asked them: they wrote it together, allowed.")
    assert current(db, "bo").criteria[1].status == "pass"
    response = post(client, "/lab/toy/undo", {"student": "bo", "criterion": "reflection", "back": "evidence"})
    assert response.status_code == 303 and response.headers["location"] == "/lab/toy/review/bo/reflection"
    restored = current(db, "bo").criteria[1]
    assert (restored.status, restored.override.note, current(db, "bo").verdict) == ("fail", "Copied.", "U")
    assert post(client, "/lab/toy/undo", {"student": "bo", "criterion": "reflection"}).status_code == 303
    back = current(db, "bo").criteria[1]
    assert (back.status, back.override, back.advice) == ("review", None, "")
    assert "/lab/toy/review/bo/reflection" in queue_links(client)
    nothing = post(client, "/lab/toy/undo", {"student": "bo", "criterion": "reflection"})
    assert nothing.status_code == 400 and "no decision" in nothing.text


def test_a_missing_or_huge_note_shows_the_form_again_and_records_nothing(client, db):
    before = counts(db)
    for note in ["", "   \n "]:
        response = post(client, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": "pass",
                                                    "note": note})
        assert response.status_code == 400 and 'id="problem"' in response.text and 'id="decide"' in response.text
    long = post(client, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": "fail",
                                            "note": "x" * (MAX_NOTE + 1)})
    assert long.status_code == 400 and "characters" in long.text
    huge = post(client, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": "fail",
                                            "note": "x" * 3_000_000})
    assert huge.status_code == 413
    wrong = post(client, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": "clear",
                                             "note": "x"})
    assert wrong.status_code == 400
    assert counts(db) == before


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(client, db):
    before = counts(db)
    form = {"student": "bo", "criterion": "reflection", "decision": "pass", "note": "ok"}
    assert post(client, "/lab/toy/decide", form, token="").status_code == 403
    assert post(client, "/lab/toy/decide", form, token="0" * 64).status_code == 403
    assert post(client, "/lab/toy/decide", form, token="é" * 64).status_code == 403
    assert post(client, "/lab/toy/decide", form, origin="http://evil.example").status_code == 403
    assert post(client, "/lab/toy/decide", form, origin="null").status_code == 403
    assert post(client, "/lab/toy/decide", form, origin=None).status_code == 403
    page = client.get("/lab/toy/export").text
    cross = client.post("/lab/toy/decide", data={"csrf": csrf(page), **form}, follow_redirects=False,
                        headers={"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    null = client.post("/lab/toy/decide", data={"csrf": csrf(page), **form}, follow_redirects=False,
                       headers={"Origin": "null", "Sec-Fetch-Site": "same-site"})
    assert null.status_code == 403
    assert post(client, "/lab/toy/undo", {"student": "bo", "criterion": "reflection"}, token="x").status_code == 403
    assert post(client, "/lab/toy/export", {"format": "json"}, origin="http://evil.example").status_code == 403
    assert counts(db) == before
    assert not (Path(client.app.state.served.out) / "toy").exists()
    # What Chromium sends for the app's own form under Referrer-Policy: no-referrer.
    browser = client.post("/lab/toy/decide", data={"csrf": csrf(page), **form}, follow_redirects=False,
                          headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert browser.status_code == 303 and counts(db) != before


def test_a_get_never_writes(client, db):
    before = counts(db)
    urls = ["/", "/lab/toy", "/lab/toy/review", "/lab/toy/export", "/course/export", "/lab/toy/review/bo/reflection",
            "/lab/toy/student/bo", "/lab/toy/decide?student=bo&criterion=reflection&decision=pass&note=x",
            "/lab/toy/undo?student=bo&criterion=reflection", "/lab/toy/export?format=json"]
    for url in urls:
        assert client.get(url).status_code in (200, 404, 405), url
    assert counts(db) == before
    assert not Path(client.app.state.served.out).exists()


# --- what a submission made, and ids of any character ---------------------------------------------------------


def assert_inert(html: str) -> None:
    tags = Tags(html)
    scripts = [a for t, a in tags.tags if t == "script"]
    assert scripts in ([], [{"src": "/static/review.js", "defer": None}])
    assert tags.handlers() == []
    assert all(a.get("src", "").startswith("data:image/") for t, a in tags.tags if t == "img")
    assert "\x1b" not in html and "\x07" not in html


def test_hostile_texts_and_ids_render_inert(client):
    link = next(u for u in queue_links(client) if "script" in u)
    pages = {u: client.get(u) for u in ["/", "/lab/toy", "/lab/toy/review", link, "/lab/toy?q=" + "%3Cscript"]}
    for url, response in pages.items():
        assert response.status_code == 200, url
        assert_inert(response.text)
    evidence = pages[link].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evidence and "{{7*7}}" in evidence
    notebook = re.search(r'<div id="notebook">.*', evidence, re.S)[0]
    assert "nb-error" in notebook and "&lt;svg onload=alert(5)&gt;" in notebook  # shown as text, not run
    assert "<iframe" not in notebook and "<svg onload" not in notebook
    assert unescape(evidence).count(PAYLOAD) >= 2  # the message and the text, as text
    undo_field = re.search(r'name="student" value="([^"]*)"', evidence)[1]
    assert unescape(undo_field) == HOSTILE_ID  # the form sends the id back exactly


def test_student_ids_of_any_character_reach_their_pages(client, db):
    links = {unescape(u) for u in queue_links(client)}
    for student in ODD_IDS:
        link = views.evidence_url("toy", student, "reflection")
        assert link in links
        page = client.get(link)
        assert page.status_code == 200, student
        assert f"text of {student}" in unescape(page.text)
    dots = views.evidence_url("toy", "..", "reflection")
    assert "?" in dots  # a path of dots would be resolved by the browser: the id goes in the query
    response = post(client, "/lab/toy/decide", {"student": "../../etc/passwd", "criterion": "reflection",
                                                "decision": "fail", "note": "Not theirs."})
    assert response.status_code == 303
    assert current(db, "../../etc/passwd").verdict == "U"
    for url in ["/lab/toy/review/nobody/reflection", "/lab/toy/review/a%2Fc/reflection", "/lab/..%2F..%2Fetc/review",
                "/lab/toy/review/%00/reflection", "/lab/toy/student/%2e%2e%2f"]:
        assert client.get(url).status_code == 404, url


def test_unknown_lab_student_or_criterion_is_a_404_that_says_what_exists(client):
    lab = client.get("/lab/lab9")
    assert lab.status_code == 404 and "lab9" in lab.text and 'href="/lab/toy"' in lab.text
    student = client.get("/lab/toy/review/zed/reflection")
    assert student.status_code == 404 and "zed" in student.text and "cohort" in student.text
    crit = client.get("/lab/toy/review/bo/reflektion")
    assert crit.status_code == 404 and 'href="/lab/toy/review/bo/accuracy"' in crit.text
    assert client.get("/no/such/page").status_code == 404


def test_an_internal_error_shows_no_traceback(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /home/ta")

    monkeypatch.setattr(views, "queue", broken)
    response = client.get("/lab/toy/review")
    assert response.status_code == 500
    assert "Traceback" not in response.text and "secret internals" not in response.text
    assert response.headers["X-Frame-Options"] == "DENY"


# --- per-TA tokens and the host -------------------------------------------------------------------------------


def course_with(reviewers: dict[str, str]) -> CourseSpec:
    return CourseSpec.model_validate({
        "course": "DT9000", "module": "LAB1", "labs": [{"lab": "toy"}],
        "reviewers": [{"name": name, "token_sha256": token_sha256(t)} for name, t in reviewers.items()]})


def test_per_ta_tokens_record_each_decision_under_its_ta(db, tmp_path):
    app = create_app(db, course_with({"Tove": "tove-token", "Ali": "ali-token"}), out=tmp_path / "out")
    assert app.state.token is None
    tove, ali = signed_in(app, "tove-token"), signed_in(app, "ali-token")
    assert TestClient(app, base_url=ORIGIN).get("/?token=" + TOKEN).status_code == 403
    assert "signed in as Tove" in tove.get("/").text
    assert post(tove, "/lab/toy/decide", {"student": "bo", "criterion": "reflection", "decision": "fail",
                                          "note": "Copied."}).status_code == 303
    assert post(ali, "/lab/toy/decide", {"student": "cy", "criterion": "accuracy", "decision": "pass",
                                         "note": "Borderline; fine."}).status_code == 303
    assert current(db, "bo").criteria[1].override.by == "Tove"
    assert current(db, "cy").criteria[0].override.by == "Ali"
    # The module grade's exports, with the course.
    assert post(tove, "/course/export", {"format": "json"}).status_code == 303
    assert (tmp_path / "out" / "DT9000-LAB1" / "module.json").is_file()
    assert "by Tove" in tove.get("/course/export").text
    # One TA's form token is not another's.
    assert post(ali, "/lab/toy/undo", {"student": "bo", "criterion": "reflection"},
                token=csrf(tove.get("/lab/toy/export").text)).status_code == 403


def test_a_host_beyond_this_machine_needs_reviewers(db, capsys):
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(UserError, match="beyond this machine"):
            create_app(db, host=host)
    create_app(db, course_with({"Tove": "t"}), host="0.0.0.0")
    create_app(db, host="::1")
    create_app(db, host="localhost")
    assert main(["serve", "--db", str(db), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "reviewers" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--db", str(db), "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err
    assert main(["serve", "--db", str(db.parent / "none.db")]) == 2
    assert "no results store" in capsys.readouterr().err
    assert main(["serve", "--db", str(db), "--port", "0", "--token", "abc"]) == 2  # a careless TA's token
    assert "--token is 3 characters long" in capsys.readouterr().err


def test_new_token_prints_a_token_and_the_line_for_course_yaml(capsys):
    assert main(["serve", "--new-token", "Tove Ek"]) == 0
    printed = capsys.readouterr().out
    token = re.search(r": (\S{40,})$", printed.splitlines()[0])[1]
    line = printed.splitlines()[-1]
    entry = yaml.safe_load(line)[0]
    assert entry == {"name": "Tove Ek", "token_sha256": hashlib.sha256(token.encode()).hexdigest()}
    CourseSpec.model_validate({"course": "C", "module": "M", "labs": [{"lab": "toy"}], "reviewers": [entry]})
    with pytest.raises(ValueError, match="share one name"):
        CourseSpec.model_validate({"course": "C", "module": "M", "labs": [{"lab": "toy"}],
                                   "reviewers": [entry, {**entry, "token_sha256": "0" * 64}]})


# --- exports ---------------------------------------------------------------------------------------------------


def test_exports_are_held_back_while_reviews_are_open_as_the_cli_does(client, db, tmp_path):
    page = client.get("/lab/toy/export").text
    assert 'id="held-back"' in page
    assert post(client, "/lab/toy/export", {"format": "gradescope"}).status_code == 303
    out = tmp_path / "exports" / "toy"
    assert (out / "toy-gradescope" / "ana" / "results.json").is_file()
    assert not (out / "toy-gradescope" / "bo").exists()
    last = client.get("/lab/toy/export").text
    assert "held back" in last and "tove" in last
    assert post(client, "/lab/toy/export", {"format": "json"}).status_code == 303
    assert (out / "toy.json").is_file()
    canvas = post(client, "/lab/toy/export", {"format": "canvas"})
    assert canvas.status_code == 303 and "needs a roster" in client.get("/lab/toy/export").text
    assert post(client, "/lab/toy/export", {"format": "pdf"}).status_code == 400
    assert client.get("/course/export").status_code == 404  # no --course

    store = Store(db)
    for item in views.queue(store, "toy").items:  # every review decided: nothing is held back any more
        from autograder.grading.decisions import override

        override(store, "toy", item.student, item.criterion, "fail", "Decided.", by="tove")
    store.close()
    assert 'id="held-back"' not in client.get("/lab/toy/export").text
    post(client, "/lab/toy/export", {"format": "gradescope"})
    assert "held back" not in client.get("/lab/toy/export").text
    assert (out / "toy-gradescope" / "bo" / "results.json").is_file()


# --- two TAs at once, on a real server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_tas_deciding_at_once_on_a_real_server_keep_both_decisions(db, tmp_path):
    import uvicorn

    app = create_app(db, course_with({"Tove": "tove-token", "Ali": "ali-token"}), out=tmp_path / "out")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        # Each TA decides items of their own, two on one student (bo and cy each have one; odd ids share a
        # student's criteria across the two TAs: accuracy by one, reflection by the other).
        work = {"Tove": [("bo", "reflection", "fail"), ("a/b", "accuracy", "fail"), ("名前 ü", "reflection", "pass")],
                "Ali": [("cy", "accuracy", "pass"), ("a/b", "reflection", "pass"), ("..", "reflection", "fail")]}
        barrier = threading.Barrier(2)
        errors: list[str] = []

        def ta(name: str, token: str) -> None:
            with httpx.Client(base_url=base, follow_redirects=False) as c:
                assert c.get(f"/?token={token}").status_code == 303
                form_token = csrf(c.get("/lab/toy/export").text)
                barrier.wait()
                for student, crit, decision in work[name]:
                    r = c.post("/lab/toy/decide", headers={"Origin": base},
                               data={"csrf": form_token, "student": student, "criterion": crit,
                                     "decision": decision, "note": f"{name} decided {decision}."})
                    if r.status_code != 303:
                        errors.append(f"{name} {student} {crit}: {r.status_code}")

        threads = [threading.Thread(target=ta, args=a) for a in (("Tove", "tove-token"), ("Ali", "ali-token"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
    finally:
        server.should_exit = True
        thread.join(10)
    for name, items in work.items():
        for student, crit, decision in items:
            c = {c.id: c for c in current(db, student).criteria}[crit]
            assert (c.status, c.override.by) == (decision, name), (student, crit)
    both = {c.id: c.override.by for c in current(db, "a/b").criteria}
    assert both == {"accuracy": "Tove", "reflection": "Ali"}


# --- the CLI, and a real graded lab ----------------------------------------------------------------------------


def test_serve_prints_the_url_with_its_token_and_stops_cleanly_on_ctrl_c(db, tmp_path):
    from graded import sigint_as_at_a_terminal

    proc = subprocess.Popen([sys.executable, "-m", "autograder", "serve", "--db", str(db), "--port", "0",
                             "--token", TOKEN], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path, preexec_fn=sigint_as_at_a_terminal, env={**os.environ, "NO_COLOR": "1"})
    try:
        line = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert url is not None, line
        assert url[2] == TOKEN
        with httpx.Client(base_url=url[1]) as c:
            assert c.get(f"/?token={TOKEN}", follow_redirects=True).status_code == 200
            assert "toy" in c.get("/").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_a_decision_made_in_the_app_survives_a_forced_regrade(course, submissions, tmp_path):
    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace("min_words: 30", "min_words: 30\n    on_fail: review"))
    submissions("ana", reflection="Overfitting can hurt people.")
    db = tmp_path / "g.db"
    grade = ["grade", "toy", str(submissions.folder), "--root", str(course), "--db", str(db), "--backend", "local"]
    assert main(grade) == 0
    app = create_app(db, token=TOKEN, root=course, user="tove")
    client = signed_in(app)
    assert client.get("/lab/toy/review/ana/reflection").status_code == 200
    response = client.post("/lab/toy/decide", headers={"Origin": ORIGIN}, follow_redirects=False, data={
        "csrf": csrf(client.get("/lab/toy/export").text), "student": "ana", "criterion": "reflection",
        "decision": "pass", "note": "Brief, but it is all there."})
    assert response.status_code == 303 and response.headers["location"] == "/lab/toy/review"
    assert main([*grade, "--force"]) == 0
    page = client.get("/lab/toy/review/ana/reflection").text
    assert 'id="decision"' in page and "Brief, but it is all there." in page
    assert re.search(r'id="verdict">G<', page)
    student = client.get("/lab/toy/student/ana")
    assert student.status_code == 200 and "Brief, but it is all there." in student.text
    assert "Back to the TA view" in student.text
    assert student.text.startswith("<!DOCTYPE html>") and "&lt;!DOCTYPE" not in student.text  # a page, not its source
    assert 'id="all-decided"' in client.get("/lab/toy/review").text


def test_the_graded_lab1_cohort_in_the_app(graded_cohort, tmp_path):
    results, store = graded_cohort("lab1-mlp")
    db = tmp_path / "lab1.db"
    copy = sqlite3.connect(db)
    store._db.backup(copy)
    copy.close()
    from conftest import REPO

    client = signed_in(create_app(db, token=TOKEN, root=REPO, user="tove"))
    links = [unescape(u) for u in re.findall(r'<a class="item" href="([^"]+)"',
                                             client.get("/lab/lab1-mlp/review").text)]
    assert links, "the sample cohort has reviews (the copied reflection)"
    pages = {u: client.get(u).text for u in links}
    copied = [text for u, text in pages.items() if "copycat" in u and 'class="pair"' in text]
    assert copied, "copycat's evidence shows the text or code it shares, side by side"
    for text in pages.values():
        assert 'id="notebook"' in text and "nb-cell" in text  # the executed notebook, rendered
        assert_inert(text)
    for student in results:
        response = client.get(views.student_url("lab1-mlp", student))
        assert response.status_code == 200 and "Back to the TA view" in response.text
        assert response.text.startswith("<!DOCTYPE html>") and "&lt;/table&gt;" not in response.text
    cohort_page = client.get("/lab/lab1-mlp").text
    assert all(s in unescape(cohort_page) for s in results)
    shutil.rmtree(tmp_path / "exports", ignore_errors=True)
