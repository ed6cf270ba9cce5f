"""The review app's routes: FastAPI over the results store, every page a template of the shared environment.

Every request passes one guard (`_guard`): a token or a signed session, else 403 with nothing of the
store; every POST also comes from the app's own origin and carries the session's CSRF token; every
response gets the strict headers (`HEADERS`) and no traceback ever reaches the browser. A GET never
writes. Decisions go through `grading.decisions` (one write transaction each) and answer with a
redirect to the next undecided item (Post/Redirect/Get).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, PackageLoader
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException

from autograder.errors import AutograderError, UserError
from autograder.labs.course import CourseSpec
from autograder.publish.html import templates
from autograder.serve import views
from autograder.serve.auth import CSRF_FIELD, SESSION_COOKIE, TOKEN_PARAM, Access, new_token, same_origin
from autograder.store import Store

log = logging.getLogger("autograder.serve")

CSP = ("default-src 'none'; script-src 'self'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
# The meta copy of the page's CSP: frame-ancestors only works as a header (a browser ignores it in a meta tag,
# with a console error), so the meta carries the rest and the header the whole.
META_CSP = CSP.replace("; frame-ancestors 'none'", "")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_BODY = 256 * 1024  # a POST's body: a form with a note; anything larger is refused before it is read
MAX_NOTE = 4000  # characters of a decision's note (the student reads it; a page, not an essay)
STATIC = Path(__file__).parent / "static"
LAB_FORMATS = ("json", "csv", "canvas", "gradescope", "ladok")
COURSE_FORMATS = ("json", "csv", "canvas", "ladok")
FILE_NAMES = {"json": "{}.json", "csv": "{}.csv", "canvas": "{}-canvas.csv", "gradescope": "{}-gradescope",
              "ladok": "{}-ladok.csv"}


class PageError(Exception):
    """A page that cannot be shown: its status, what went wrong, and links to what exists instead."""

    def __init__(self, status: int, message: str, hint: str = "", links: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status, self.message, self.hint, self.links = status, message, hint, links or []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Served:
    """What the routes share: the store (one connection, serialised by its lock, safe across the thread pool),
    who may enter, the pages' environment, and the labs read from the course folder."""

    store: Store
    access: Access
    env: Environment
    course: CourseSpec | None
    root: Path | None
    out: Path
    debug: bool
    labs: dict[str, Any] = field(default_factory=dict)
    lab_problems: dict[str, str] = field(default_factory=dict)
    exports: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # target -> (by, the report's lines)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lab(self, name: str):
        """The lab's definition from the course folder (titles, the student's page), or None with the reason
        kept: the review itself needs only the store."""
        with self.lock:
            if name not in self.labs and name not in self.lab_problems:
                from autograder.labs.lab import load_lab

                try:
                    self.labs[name] = load_lab(name, self.root)
                except AutograderError as exc:
                    self.lab_problems[name] = f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            return self.labs.get(name)

    def titles(self, lab: str) -> dict[str, str]:
        found = self.lab(lab)
        return {c.id: c.title for c in found.rubric.criteria if c.title} if found is not None else {}


def page_environment() -> Environment:
    """The shared environment (contract 1) with the app's own templates in front of the static pages'."""
    base = templates()
    loader = base.loader
    assert loader is not None
    env = base.overlay(loader=ChoiceLoader([PackageLoader("autograder.serve", "templates"), loader]))
    env.globals.update(evidence_url=views.evidence_url, student_url=views.student_url, lab_url=views.lab_url)
    return env


def create_app(store_path: Path | str, course: CourseSpec | None = None, *, token: str | None = None,
               root: Path | None = None, host: str = "127.0.0.1", out: Path | str = "exports", debug: bool = False,
               user: str | None = None) -> FastAPI:
    """The app over one results store. Without `course.reviewers`, one token opens it (`token`, or a fresh one:
    `app.state.token`) and decisions are recorded under `user` (default: the login name); with them, each TA's
    own token, and decisions under their name. A `host` beyond this machine needs reviewers."""
    path = Path(store_path)
    if not path.is_file():
        raise UserError(f"{path}: no results store there",
                        "grade a lab first, or pass --db with the path of its grades.db")
    reviewers = course.reviewers if course is not None else []
    if not is_loopback(host) and not reviewers:
        raise UserError(f"--host {host} serves beyond this machine, which needs a token per TA",
                        "add `reviewers:` to course.yaml (autograder serve --new-token NAME prints an entry) and "
                        "pass --course")
    if reviewers:
        access, token = Access.reviewers(reviewers), None
    else:
        from autograder.grading.decisions import _who

        token = token or new_token()
        access = Access.single(token, user or _who())
    served = Served(store=Store(path), access=access, env=page_environment(), course=course, root=root,
                    out=Path(out), debug=debug)
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        served.store.close()

    app = FastAPI(title="autograder review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.served, app.state.token = served, token
    _routes(app, served)
    return app


# --- rendering ---------------------------------------------------------------------------------------------


def _render(served: Served, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    context.setdefault("lab", None)
    html = served.env.get_template(template).render(
        csp=META_CSP, who=getattr(request.state, "who", None), csrf=served.access.csrf(session) if session else "",
        csrf_field=CSRF_FIELD, course=served.course, **context)
    return HTMLResponse(html, status_code=status)


def _error_page(served: Served, request: Request, error: PageError) -> HTMLResponse:
    return _render(served, request, "problem.html", error.status, title="Not available", error=error)


def _denied(served: Served, request: Request, why: str) -> HTMLResponse:
    return _render(served, request, "denied.html", 403, title="Token needed", why=why)


# --- the guard: who, origin, headers, errors -----------------------------------------------------------------


def _guard(app: FastAPI, served: Served) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        try:
            response = await _checked(served, request, call_next)
        except Exception:  # a bug: logged here, never a traceback in the browser
            log.error("internal error on %s %s", request.method, request.url.path, exc_info=served.debug)
            response = _render(served, request, "problem.html", 500, title="Internal error", error=PageError(
                500, "Something went wrong on the server; nothing was recorded by this request.",
                "the terminal running `autograder serve --debug` shows the traceback"))
        response.headers.update(HEADERS)
        return response


async def _checked(served: Served, request: Request, call_next) -> Response:
    size = request.headers.get("content-length")
    if request.method not in ("GET", "HEAD", "POST"):
        return Response(status_code=405)
    if request.method == "POST" and (size is None or not size.isdigit() or int(size) > MAX_BODY):
        return _render(served, request, "problem.html", 413, title="Too large", error=PageError(
            413, f"A form may send at most {MAX_BODY // 1024} KiB.", "shorten the note"))
    token = request.query_params.get(TOKEN_PARAM)
    if token is not None and request.method in ("GET", "HEAD"):
        name = served.access.who(token)
        if name is None:
            return _denied(served, request, "This token opens nothing here.")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
        response: Response = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), 303)
        response.set_cookie(SESSION_COOKIE, served.access.session(name), httponly=True, samesite="strict", path="/")
        return response
    cookie = request.cookies.get(SESSION_COOKIE)
    name = served.access.session_name(cookie)
    if name is None or cookie is None:
        return _denied(served, request, "Open the link with the token that `autograder serve` printed.")
    request.state.who, request.state.session = name, cookie
    if request.method == "POST" and not same_origin(request.headers, request.headers.get("host")):
        return _denied(served, request, "Refused: this form was not sent from this app's own page.")
    return await call_next(request)


def _poster(served: Served):
    def check(request: Request, csrf: str = Form("")) -> str:
        """A POST's own proof: the CSRF token of the session (origin and session were checked by the guard)."""
        if not served.access.csrf_ok(request.state.session, csrf):
            raise PageError(403, "Refused: the form's CSRF token is missing or wrong; nothing was recorded.",
                            "reload the page and send the form again")
        return request.state.who

    return check


# --- the routes ----------------------------------------------------------------------------------------------


def _routes(app: FastAPI, served: Served) -> None:
    _guard(app, served)
    store = served.store
    poster = Depends(_poster(served))

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> HTMLResponse:
        return _error_page(served, request, exc)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> HTMLResponse:
        return _error_page(served, request, PageError(400, exc.message, exc.hint or ""))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        message = "No such page." if exc.status_code == 404 else str(exc.detail)
        return _error_page(served, request, PageError(exc.status_code, message, "", [("Labs", "/")]))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        return _error_page(served, request, PageError(400, "The request is missing a field or has one of the wrong "
                                                      "kind.", "send the form from the app's page"))

    def require_lab(lab: str) -> None:
        labs = store.labs()
        if lab not in labs:
            raise PageError(404, f"No results for lab {lab!r} in {store.path}.", "labs with results:",
                            [(name, views.lab_url(name)) for name in labs])

    def require_result(lab: str, student: str):
        require_lab(lab)
        result = store.latest_of(lab, student)
        if result is None:
            raise PageError(404, f"No result for student {student!r} in {lab}.",
                            f"{len(store.latest(lab))} students have results; find them in the cohort:",
                            [(f"{lab}: the cohort", views.lab_url(lab))])
        return result

    def require_criterion(lab: str, student: str, criterion: str):
        result = require_result(lab, student)
        c = next((c for c in result.criteria if c.id == criterion), None)
        if c is None:
            raise PageError(404, f"{student}'s result for {lab} has no criterion {criterion!r}.", "its criteria:",
                            [(o.id, views.evidence_url(lab, student, o.id)) for o in result.criteria])
        return result, c

    @app.get("/static/review.js")
    def script() -> FileResponse:
        return FileResponse(STATIC / "review.js", media_type="text/javascript")

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        labs = []
        for name in store.labs():
            results = store.latest(name)
            q = views.queue(store, name, results)
            labs.append((name, len(results), sum(r.verdict == "G" for r in results), len(q.items)))
        return _render(served, request, "overview.html", title="Labs", labs=labs)

    @app.get("/lab/{lab}", response_class=HTMLResponse)
    def lab_page(request: Request, lab: str, verdict: str = "", criterion: str = "", status: str = "",
                 q: str = "") -> HTMLResponse:
        require_lab(lab)
        if verdict and verdict not in views.VERDICTS:
            raise PageError(400, f"Unknown verdict {verdict!r}.", f"use one of {', '.join(views.VERDICTS)}")
        if status and status not in views.STATUSES:
            raise PageError(400, f"Unknown status {status!r}.", f"use one of {', '.join(views.STATUSES)}")
        data = views.cohort(store, lab, verdict, criterion, status, q)
        if criterion and criterion not in data.criteria:
            raise PageError(400, f"{lab} has no criterion {criterion!r}.", f"criteria: {', '.join(data.criteria)}")
        return _render(served, request, "lab.html", title=f"{lab}: cohort", lab=lab, cohort=data,
                       filters={"verdict": verdict, "criterion": criterion, "status": status, "q": q},
                       verdicts=views.VERDICTS, statuses=views.STATUSES, titles=served.titles(lab))

    @app.get("/lab/{lab}/review", response_class=HTMLResponse)
    def review(request: Request, lab: str) -> HTMLResponse:
        require_lab(lab)
        return _render(served, request, "queue.html", title=f"{lab}: review", lab=lab,
                       queue=views.queue(store, lab), titles=served.titles(lab))

    def evidence_page(request: Request, lab: str, student: str, criterion: str, status: int = 200,
                      problem: str = "", note: str = "") -> HTMLResponse:
        result, c = require_criterion(lab, student, criterion)
        current = store.latest(lab)
        items = views.queue(store, lab, current).items
        key = (result.student, c.id)
        keys = [i.key for i in items]
        return _render(served, request, "evidence.html", status, title=f"{lab}: {student}: {criterion}", lab=lab,
                       ev=views.evidence(store, result, c, current), title_of=served.titles(lab).get(c.id, ""),
                       position=keys.index(key) + 1 if key in keys else None, total=len(items),
                       next=views.after(items, key), previous=views.before(items, key), problem=problem, note=note,
                       max_note=MAX_NOTE)

    @app.get("/lab/{lab}/review/{student:path}/{criterion}", response_class=HTMLResponse)
    def evidence(request: Request, lab: str, student: str, criterion: str) -> HTMLResponse:
        segments = _raw_segments(request)
        return evidence_page(request, lab, "/".join(segments[4:-1]), segments[-1])

    @app.get("/lab/{lab}/evidence", response_class=HTMLResponse)
    def evidence_by_query(request: Request, lab: str, student: str, criterion: str) -> HTMLResponse:
        return evidence_page(request, lab, student, criterion)

    @app.post("/lab/{lab}/decide")
    def decide(request: Request, lab: str, student: str = Form(), criterion: str = Form(),
               decision: str = Form(""), note: str = Form(""), who: str = poster) -> Response:
        from autograder.grading.decisions import override

        require_criterion(lab, student, criterion)
        problem = ""
        if decision not in ("pass", "fail"):
            problem = "Choose pass or fail."
        elif not note.strip():
            problem = "A note is required: say why, in a sentence the student may read. Nothing was recorded."
        elif len(note) > MAX_NOTE:
            problem = f"The note is {len(note):,} characters; keep it under {MAX_NOTE:,}. Nothing was recorded."
        if problem:
            return evidence_page(request, lab, student, criterion, 400, problem, note[:MAX_NOTE])
        before = views.queue(store, lab).items
        override(store, lab, student, criterion, "pass" if decision == "pass" else "fail", note, by=who)
        nxt = views.next_after_deciding(before, views.queue(store, lab).items, (student, criterion))
        target = views.evidence_url(lab, nxt.student, nxt.criterion) if nxt else views.lab_url(lab, "review")
        return RedirectResponse(target, 303)

    @app.post("/lab/{lab}/undo")
    def undo_decision(lab: str, student: str = Form(), criterion: str = Form(), back: str = Form("queue"),
                      who: str = poster) -> Response:
        from autograder.grading.decisions import undo

        require_criterion(lab, student, criterion)
        undo(store, lab, student, criterion, by=who)
        target = views.evidence_url(lab, student, criterion) if back == "evidence" else views.lab_url(lab, "review")
        return RedirectResponse(target, 303)

    def student_page(lab: str, student: str) -> HTMLResponse:
        from autograder.publish.feedback import gather, to_html

        result = require_result(lab, student)
        definition = served.lab(lab)
        if definition is None:
            raise PageError(404, f"The student's page needs the lab's definition: {served.lab_problems.get(lab, '')}",
                            "start `autograder serve` in the course folder, or pass --root")
        html = to_html(gather(definition, store, result))
        bar = served.env.get_template("student_bar.html").render(lab=lab, student=result.student,
                                                                 result=result)
        return HTMLResponse(_after_body(html, Markup(bar)))

    @app.get("/lab/{lab}/student/{student:path}", response_class=HTMLResponse)
    def student(request: Request, lab: str, student: str) -> HTMLResponse:
        return student_page(lab, "/".join(_raw_segments(request)[4:]))

    @app.get("/lab/{lab}/student", response_class=HTMLResponse)
    def student_by_query(lab: str, student: str) -> HTMLResponse:
        return student_page(lab, student)

    @app.get("/lab/{lab}/export", response_class=HTMLResponse)
    def export_page(request: Request, lab: str) -> HTMLResponse:
        require_lab(lab)
        return _render(served, request, "exports.html", title=f"{lab}: exports", target=lab, lab=lab,
                       formats=LAB_FORMATS, waiting=views.cohort(store, lab).waiting, last=served.exports.get(lab),
                       out=served.out.resolve(), action=views.lab_url(lab, "export"))

    @app.post("/lab/{lab}/export")
    def export_lab(lab: str, format: str = Form(), who: str = poster) -> Response:
        require_lab(lab)
        _export(served, format, lab, who)
        return RedirectResponse(views.lab_url(lab, "export"), 303)

    @app.get("/course/export", response_class=HTMLResponse)
    def course_export_page(request: Request) -> HTMLResponse:
        course = require_course()
        return _render(served, request, "exports.html", title=f"{course.code}: exports", target=course.code, lab=None,
                       formats=COURSE_FORMATS, waiting=None, last=served.exports.get(""), out=served.out.resolve(),
                       action="/course/export")

    @app.post("/course/export")
    def export_course(format: str = Form(), who: str = poster) -> Response:
        require_course()
        _export(served, format, None, who)
        return RedirectResponse("/course/export", 303)

    def require_course() -> CourseSpec:
        if served.course is None:
            raise PageError(404, "The module grade needs the course: start `autograder serve` with --course.")
        return served.course


def _raw_segments(request: Request) -> list[str]:
    """The path's segments as sent, each decoded once on its own: a student id's `%2F` stays inside its segment
    and a `%252f` stays `%2f` (the decoded path the router matched on has lost both)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return [unquote(segment) for segment in raw.decode("utf-8", "replace").split("?", 1)[0].split("/")]


def _after_body(document: str, bar: Markup) -> str:
    """The student's page as it is, with the app's bar (a link to the TA view) first in its body."""
    at = document.find("<body>")
    bar_html = str(bar)  # a str: Markup + str would escape the page (Markup.__add__ escapes the other side)
    if at < 0:
        return bar_html + document
    at += len("<body>")
    return document[:at] + bar_html + document[at:]


def _export(served: Served, fmt: str, lab: str | None, who: str) -> None:
    """One export, written under --out as `autograder export` writes it (the same function: students in review
    or error held back from the publishing formats); what it said is kept for the export page."""
    from autograder.publish.export import ExportOptions, export

    formats = LAB_FORMATS if lab is not None else COURSE_FORMATS
    if fmt not in formats:
        raise PageError(400, f"Unknown export format {fmt!r}.", f"use one of {', '.join(formats)}")
    course = served.course
    folder = served.out / (lab if lab is not None else f"{course.course}-{course.module}" if course else "course")
    target = folder / FILE_NAMES[fmt].format(lab or "module")
    try:
        report = export(served.store, fmt, target, lab=lab, course=course, options=ExportOptions(root=served.root))
        lines = report.lines()
    except AutograderError as exc:
        lines = [f"not exported: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")]
    served.exports[lab or ""] = (who, lines)
