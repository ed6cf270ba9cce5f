"""`serve`: the TAs' review app in the browser, over the results store (autograder/serve/)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from autograder.cli.options import Parents, epilog
from autograder.console import err, out
from autograder.errors import UserError
from autograder.store import DEFAULT_DB

SERVE_EXIT_CODES = """\
exit codes:
  0   stopped with Ctrl-C (or --new-token printed a token)
  2   a usage mistake: no store, a --host beyond this machine without reviewers in course.yaml, a port in use
  3   an internal error (a bug: rerun with --debug and report the traceback)
"""


def add_serve(sub: argparse._SubParsersAction, p: Parents) -> None:
    s = sub.add_parser("serve", parents=[p.common, p.db],
                       help="the review app in the browser: the cohort, the review queue with its evidence, decisions, "
                       "students' pages, exports", **epilog(SERVE_EXIT_CODES))
    s.add_argument("--course", nargs="?", const="course.yaml", type=Path, default=None,
                   help="course.yaml (default when given bare: the course folder's): per-TA tokens (`reviewers`), "
                   "the roster and codes for the exports, the module grade")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; any other needs `reviewers` in "
                   "course.yaml)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--out", type=Path, default=Path("exports"),
                   help="folder the export buttons write into (default: exports/ in the current folder)")
    s.add_argument("--token", default=os.environ.get("AUTOGRADER_SERVE_TOKEN"),
                   help="the token that opens the app, for scripts (default: $AUTOGRADER_SERVE_TOKEN, else a fresh "
                   "random one, printed in the URL); ignored with reviewers in course.yaml")
    s.add_argument("--new-token", metavar="NAME",
                   help="print a fresh token for the TA NAME and the line to add under `reviewers:` in course.yaml, "
                   "then exit")
    s.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from autograder.serve.auth import new_token, reviewer_line

    if args.new_token is not None:
        name = args.new_token.strip()
        if not name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise UserError("--new-token takes the TA's name: plain text on one line")
        token = new_token()
        out.print(f"token for {name} (give it to them; it is not stored anywhere): {token}", markup=False,
                  highlight=False)
        out.print("add under `reviewers:` in course.yaml:", markup=False, highlight=False)
        out.print(reviewer_line(name, token), markup=False, highlight=False, soft_wrap=True)
        return 0
    return _serve(args)


MIN_TOKEN = 16  # characters of a token given with --token: a random one has 43


def _serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from autograder.publish.course import load_course
    from autograder.serve.app import create_app

    if args.token is not None and len(args.token) < MIN_TOKEN:
        raise UserError(f"--token is {len(args.token)} characters long; a token that opens the app needs {MIN_TOKEN} "
                        "or more", "leave --token out for a fresh random one, or make one with --new-token NAME")
    course = None
    if args.course is not None:
        course = load_course(None if args.course == Path("course.yaml") else args.course, args.root)
    app = create_app(args.db or DEFAULT_DB, course, token=args.token, root=args.root, host=args.host, out=args.out,
                     debug=args.debug)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host.strip("[]"), args.port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                        "pick another --port (0 picks a free one), or stop what holds it") from None
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if app.state.token is not None:
        err.print(f"review app: http://{shown}:{port}/?token={app.state.token}", markup=False, highlight=False,
                  soft_wrap=True)
    else:
        names = ", ".join(r.name for r in course.reviewers) if course is not None else ""
        err.print(f"review app: http://{shown}:{port}/?token=YOUR-TOKEN (reviewers: {names})", markup=False,
                  highlight=False, soft_wrap=True)
    err.print("stop with Ctrl-C", markup=False, highlight=False)
    config = uvicorn.Config(app, log_level="info" if args.debug else "warning", access_log=args.debug,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops on the first Ctrl-C, then raises it again for its caller
        pass
    finally:
        sock.close()
    err.print("stopped; every decision is in the store", markup=False, highlight=False)
    return 0
