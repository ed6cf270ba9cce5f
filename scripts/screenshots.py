"""Screenshots of the review app for the docs, made from the real thing so they stay current.

    .venv/bin/python scripts/screenshots.py [--db GRADES_DB] [--out docs/img]

Grades lab1-mlp's sample cohort into a temporary store on the local backend (about a minute), unless --db names
a store that holds it; starts `autograder serve` on it with a known token on a free loopback port; opens the
review queue and the evidence of copycat's reflection (a copy of another student's) in headless Chromium
(Debian's /usr/bin/chromium, driven by Playwright, no network); and writes docs/img/review-queue.png and
docs/img/evidence.png, 1200 px wide.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = "lab1-mlp"
CHROMIUM = "/usr/bin/chromium"
# tests/browser.py's precautions: no sandbox or GPU, background services off, no name resolves, and
# whatever still asks for the network meets a proxy that refuses (loopback bypasses it).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9"]
WIDTH = 1200


def cli(*args: str, home: Path, **extra: str) -> subprocess.Popen:
    env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": str(home / "mpl"), "IPYTHONDIR": str(home / "ipython"),
           **extra}
    return subprocess.Popen([sys.executable, "-m", "autograder", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def grade(tmp: Path) -> Path:
    db = tmp / "grades.db"
    print(f"grading {LAB}'s sample cohort into {db} (local backend) ...", flush=True)
    process = cli("grade", LAB, str(REPO / "examples" / "submissions" / LAB), "--db", str(db), "--backend", "local",
                  "--jobs", "2", "--cell-timeout", "25", home=tmp)
    output, _ = process.communicate()
    if process.returncode != 0:
        sys.exit(f"grading failed:\n{output}")
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    """Until the app listens on `port`; exits, with what it printed, if it stops first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"autograder serve stopped:\n{process.stdout.read() if process.stdout else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    sys.exit("autograder serve did not start within a minute")


def shoot(base: str, token: str, out: Path, tmp: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(tmp), "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 400})  # the queue: as tall as it is
            page.goto(f"{base}/?token={token}")
            page.goto(f"{base}/lab/{LAB}/review")
            written.append(out / "review-queue.png")
            page.screenshot(path=str(written[-1]), full_page=True)
            page.goto(f"{base}/lab/{LAB}/review/copycat/reflection")
            page.set_viewport_size({"width": WIDTH, "height": 1400})
            written.append(out / "evidence.png")
            page.screenshot(path=str(written[-1]))  # the top: decision form, the two texts side by side
        finally:
            browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help=f"a results store that holds {LAB} (default: grade it now)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="where the PNGs go")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp_name:
        tmp = Path(tmp_name)
        db = args.db.resolve() if args.db else grade(tmp)
        token, port = secrets.token_urlsafe(24), free_port()
        server = cli("serve", "--db", str(db), "--root", str(REPO), "--port", str(port), "--out", str(tmp / "exports"),
                     home=tmp, AUTOGRADER_SERVE_TOKEN=token)  # not on the command line, where `ps` shows it
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(port, server)
            for path in shoot(base, token, args.out, tmp):
                print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
                      f"({path.stat().st_size // 1024} kB)")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
