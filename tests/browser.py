"""Render an HTML file in headless Chromium, for tests that must see a page as a browser does.

One Chromium per render, driven over the DevTools protocol on `--remote-debugging-pipe` (it reads
NUL-terminated JSON commands on fd 3 and answers on fd 4): one launch gives the document after its
scripts ran, every console message, uncaught exception and browser log entry *with its level*, and
a screenshot, with the standard library only. (`--enable-logging=stderr` prints console lines too,
but all at INFO, so console.error, an uncaught exception and a CSP violation differ only in wording;
and `--dump-dom` and `--screenshot` would take two launches.)

Nothing reaches the network: a file:// URL only, a throwaway profile, HOME and XDG dirs, background
services off, no name resolves, and whatever still asks for the network meets a proxy that refuses.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers' /dev/shm is often too small for it
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-sync",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-breakpad",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1024,768",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--remote-debugging-pipe",
]
MAX_SCREENSHOT_HEIGHT = 8000  # CSS pixels: a whole feedback page, but not an endless one

# The DOM as `chromium --dump-dom` prints it: doctype, then the root element.
_DUMP_DOM = (
    "(document.doctype ? new XMLSerializer().serializeToString(document.doctype) + '\\n' : '')"
    " + document.documentElement.outerHTML"
)


@dataclass
class Rendered:
    """What Chromium made of a page.

    `console` has one line per console message, uncaught exception or browser log entry (CSP
    violations, failed loads), as "<level>: <text>" with Chromium's level ("error", "warning",
    "info", "log", "debug", "verbose"); an uncaught exception reads "error: Uncaught ...".
    """

    dom: str
    console: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def errors(self) -> list[str]:
        """The console lines at level error: uncaught exceptions, console.error, CSP violations."""
        return [line for line in self.console if line.startswith("error: ")]


def chromium() -> str | None:
    """The Chromium binary (Debian's `chromium` package: /usr/bin/chromium), or None if absent."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _DevTools:
    """The DevTools protocol over a pair of pipes: commands out; replies and events back."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.last_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept."""
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.write_fd, data):]
        while True:
            reply = self._receive()
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"Chromium: {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, matches, start: int = 0) -> int:
        """The index in `events` of the first event from `start` on that `matches`, waiting for it."""
        index = start
        while True:
            while index < len(self.events):
                if matches(self.events[index]):
                    return index
                index += 1
            self.events.append(self._receive())

    def _receive(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not finish in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def _console_lines(events: list[dict]) -> list[str]:
    lines = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(arg["value"]) if "value" in arg else arg.get("description", arg.get("type", ""))
                for arg in params.get("args", [])
            )
            kind = params.get("type", "log")
            lines.append(f"{'error' if kind == 'assert' else kind}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = (details.get("exception", {}).get("description") or "").splitlines()
            lines.append(f"error: {details.get('text', 'Uncaught')} {description[0] if description else ''}".rstrip())
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            where = f" ({entry['url']})" if entry.get("source") == "network" and entry.get("url") else ""
            lines.append(f"{entry.get('level', 'info')}: {entry.get('text', '')}{where}")
    return lines


def _high_fd(fd: int) -> int:
    """`fd` moved above 9, so that putting two fds on 3 and 4 cannot clobber one with the other."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _environment(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    dirs = {"XDG_CONFIG_HOME": "config", "XDG_CACHE_HOME": "cache", "XDG_DATA_HOME": "data", "XDG_RUNTIME_DIR": "run"}
    for sub in dirs.values():
        (home / sub).mkdir(parents=True, mode=0o700)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        **{name: str(home / sub) for name, sub in dirs.items()},
    }


def _load(devtools: _DevTools, url: str, screenshot: Path) -> str:
    """Open `url` in a fresh tab, wait for its load event, save a screenshot; the DOM."""
    target = devtools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = devtools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        devtools.send(f"{domain}.enable", session=session)
    devtools.events.clear()  # about:blank's
    navigated = devtools.send("Page.navigate", {"url": url}, session=session)
    if navigated.get("errorText"):
        raise RuntimeError(f"Chromium could not open {url}: {navigated['errorText']}")
    # This navigation's load event, not a late one of about:blank.
    committed = devtools.wait_for(
        lambda e: e.get("method") == "Page.frameNavigated"
        and e["params"]["frame"].get("loaderId") == navigated.get("loaderId")
    )
    devtools.wait_for(lambda e: e.get("method") == "Page.loadEventFired", start=committed)
    dom = devtools.send(
        "Runtime.evaluate", {"expression": _DUMP_DOM, "returnByValue": True}, session=session
    )["result"]["value"]
    size = devtools.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], MAX_SCREENSHOT_HEIGHT), "scale": 1}
    shot = devtools.send(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}, session=session
    )
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return dom


def render(html_path: Path, screenshot: Path, timeout: float = 60) -> Rendered:
    """Load `html_path` (a local file) in headless Chromium: its DOM, its console, a whole-page PNG.

    Raises FileNotFoundError where the page or Chromium is missing, TimeoutError where the page has
    not loaded within `timeout` seconds (start-up included), RuntimeError where Chromium fails;
    the last two quote the end of Chromium's log. Chromium and its helpers are killed either way.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    screenshot = Path(screenshot)
    deadline = time.monotonic() + timeout

    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        tmp = Path(tmp)
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        theirs = _high_fd(to_chrome_r), _high_fd(from_chrome_w)
        # bash puts the pipe ends on fds 3 and 4 (dash cannot name an fd above 9) and execs Chromium.
        command = [
            "/bin/bash", "-c", 'exec "$0" "$@" 3<&{0} 4>&{1} {0}<&- {1}>&-'.format(*theirs),
            binary, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "about:blank",
        ]
        log_path = tmp / "chromium.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, env=_environment(tmp), cwd=tmp, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=theirs, start_new_session=True,
            )
        for fd in theirs:
            os.close(fd)
        devtools = _DevTools(to_chrome_w, from_chrome_r, deadline)
        try:
            dom = _load(devtools, html_path.as_uri(), screenshot)
        except (OSError, RuntimeError, TimeoutError) as failure:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise type(failure)(f"{failure} (rendering {html_path}); Chromium's log ends:\n{tail}") from None
        finally:
            os.close(to_chrome_w)
            os.close(from_chrome_r)
            # Killed, not closed: a clean shutdown takes half a second and leaves nothing we want.
            try:  # the browser, its renderer and other helpers
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    return Rendered(dom=dom, console=_console_lines(devtools.events), screenshot=screenshot)
