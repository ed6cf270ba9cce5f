"""A TA's review in a real browser: headless Chromium (Debian's, driven by Playwright) on `autograder serve` over
a graded copy of the lab1 sample cohort, with one hostile hand-in added.

The flow is the one a TA follows: open the printed URL with its token, open the review queue, read the evidence,
decide with a note from the keyboard, see the student's verdict change and the next item open, undo, decide every
item without typing a student id, regrade with `--force` and find the decisions kept, and export once nothing
waits. The hostile hand-in (script tags and event handlers in its reflection and outputs, HTML, SVG and
JavaScript outputs, a 4000x4000 image) must render inert: nothing runs, nothing is even attempted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest
from nbformat.v4 import new_code_cell
from serve import TOKEN, chromium, copy_store, serving, why_no_browser

REPO = Path(__file__).resolve().parents[1]
LAB = "lab1-mlp"
SAMPLES = REPO / "examples" / "submissions" / LAB
PAYLOAD = ("<script>window.pwned = 1; document.title = 'pwned'</script>"
           "<img src=x onerror=\"window.pwned = 1; document.title = 'pwned'\">")
HOSTILE_CELL = f"""
import base64, io
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import HTML, SVG, Javascript, display
from PIL import Image
print({PAYLOAD!r})
display(HTML({PAYLOAD!r}))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="window.pwned = 1">'
            '<script>window.pwned = 1</script></svg>'))
display(Javascript("window.pwned = 1; document.title = 'pwned'"))
display({{"image/png": base64.b64encode(b"<html><script>window.pwned = 1</script></html>").decode()}}, raw=True)
buf = io.BytesIO()
Image.new("L", (4000, 4000), 200).save(buf, format="PNG")  # huge on screen, small in bytes
display({{"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<4000x4000>"}}, raw=True)
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [2, 0, 1])
buf = io.BytesIO()
fig.savefig(buf, format="png")
display({{"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"}}, raw=True)
raise ValueError({PAYLOAD!r})
"""

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def hostile_hand_in(folder: Path) -> Path:
    """copycat's notebook (its reflection a copy of another student's, so it goes to review) with the payload in
    its reflection and a last cell that prints, displays and raises it."""
    nb = nbformat.read(SAMPLES / "copycat.ipynb", as_version=4)
    reflection = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "reflection")
    reflection.source += "\n\n" + PAYLOAD
    nb.cells.append(new_code_cell(HOSTILE_CELL))
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "mallory.ipynb")
    return folder


def autograder(*args: str, cwd: Path) -> str:
    """The CLI, as a TA runs it beside the app, on the local backend; its output."""
    env = {**os.environ, "AUTOGRADER_BACKEND": "local", "HOME": str(cwd), "MPLCONFIGDIR": str(cwd / "mpl"),
           "IPYTHONDIR": str(cwd / "ipython")}
    done = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class Site:
    url: str
    db: Path
    out: Path
    tmp: Path
    browser: object

    def url_of(self, path: str) -> str:
        return self.url + path


@dataclass
class Watched:
    """A TA's tab, and whatever the page said or tried: console lines, uncaught errors, dialogs."""

    page: object
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        bad = [f"{kind}: {text}" for kind, text in self.console if kind in ("error", "warning")]
        return bad + [f"uncaught: {e}" for e in self.errors] + [f"dialog: {d}" for d in self.dialogs]


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):
    why = why_no_browser()
    if why:
        pytest.skip(why)
    _, store = request.getfixturevalue("graded_cohort")(LAB)
    tmp = tmp_path_factory.mktemp("review-site")
    db = copy_store(store.path, tmp / "db")
    autograder("grade", LAB, str(hostile_hand_in(tmp / "hand-ins")), "--db", str(db), "--root", str(REPO),
               "--cell-timeout", "25", cwd=tmp)
    with serving(db, root=REPO, out=tmp / "exports") as url, chromium(tmp) as browser:
        yield Site(url, db, tmp / "exports", tmp, browser)


@pytest.fixture
def tab(site):
    """A fresh browser context (its own cookies), signed in with the token as the printed URL does."""
    context = site.browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watched = Watched(page)
    page.on("console", lambda m: watched.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("dialog", lambda d: (watched.dialogs.append(d.message), d.dismiss()))
    page.goto(site.url_of(f"/?token={TOKEN}"))
    assert page.url == site.url_of("/"), "the token leaves the address bar once it has set the session"
    yield watched
    context.close()


def evidence_path(student: str, criterion: str) -> str:
    return f"/lab/{LAB}/review/{quote(student, safe='')}/{quote(criterion, safe='')}"


def queue_items(page) -> list[str]:
    return [a.get_attribute("href") for a in page.locator("a.item").all()]


def decide_by_keys(page, key: str, note: str, ctrl_enter: bool = False) -> None:
    """Decide the open item from the keyboard and wait for the page that follows."""
    with page.expect_navigation():
        if ctrl_enter:  # the key first: the note gets the focus, Ctrl+Enter records
            page.keyboard.press(key)
            page.keyboard.type(note)
            page.keyboard.press("Control+Enter")
        else:  # the note first, Escape leaves it, the key records
            page.fill("#note", note)
            page.keyboard.press("Escape")
            page.keyboard.press(key)


def assert_evidence(page) -> None:
    """The open item is a copy in review, and its page shows both sides with what they share marked, and the
    student's executed notebook."""
    assert page.locator("#status").inner_text() == "review"
    if page.url.endswith("/reflection"):  # the texts: words of shared 3-word runs marked on both sides
        sides = page.locator(".pg-texts").first.locator("div.pg-text")
        marked = "mark"
    else:  # the code: the lines of the first passage coloured on both sides
        sides = page.locator(".pg-codes").first.locator("pre.pg-code")
        marked = ".pg-line.pg-c0"
    assert sides.count() == 2
    assert sides.nth(0).locator(marked).count() >= 1 and sides.nth(1).locator(marked).count() >= 1
    assert page.locator("#notebook .nb-cell").count() > 5


def export(page, fmt: str) -> None:
    with page.expect_navigation():
        page.locator(f"#export button[value={fmt}]").click()
    assert page.locator("#last-export").is_visible()


def student_page_text(page, site: Site, student: str) -> str:
    page.goto(site.url_of(f"/lab/{LAB}/student/{quote(student, safe='')}"))
    text = page.locator("body").inner_text()
    assert student in page.title() and "<html" not in text, "the student's page is a page, not its source"
    assert page.locator("a", has_text="Back to the TA view").count() == 1  # the app's bar above it
    return text


def test_a_ta_decides_every_item_from_the_queue_and_exports(site, tab):
    page = tab.page
    # Exports wait while reviews are open: Gradescope's holds the students in review back.
    gradescope = site.out / LAB / f"{LAB}-gradescope"
    page.goto(site.url_of(f"/lab/{LAB}/export"))
    assert page.locator("#held-back").is_visible()
    export(page, "gradescope")
    assert "held back" in page.locator("#last-export").inner_text()
    assert (gradescope / "good" / "results.json").is_file() and not (gradescope / "copycat").exists()

    # The overview links to the queue; the queue lists copycat's reflection and the hostile hand-in's.
    page.goto(site.url_of("/"))
    page.get_by_role("link", name="to decide").first.click()
    assert page.url == site.url_of(f"/lab/{LAB}/review")
    items = queue_items(page)
    assert evidence_path("copycat", "reflection") in items and evidence_path("mallory", "reflection") in items

    # The first item: its evidence, the two students' work side by side with what they share marked.
    page.locator("a.item").first.click()
    first = items[0]
    assert page.url == site.url_of(first)
    assert_evidence(page)
    student = page.locator("h1 .student-id").inner_text()

    # Decide with a note by keys: the next item opens by itself.
    decide_by_keys(page, "f", "This is the same work as another student's; please write your own.")
    assert page.url == site.url_of(items[1])
    text = student_page_text(page, site, student)
    assert "Verdict: U" in text and "please write your own" in text and "Decided by a teacher" in text

    # Undo from the queue: the item is back, undecided.
    page.goto(site.url_of(f"/lab/{LAB}/review"))
    assert first not in queue_items(page)
    with page.expect_navigation():
        page.locator("#decided form.undo button").first.click()
    assert queue_items(page) == items
    assert "Decided by a teacher" not in student_page_text(page, site, student)

    # Every item, from the first, by keys alone: no student id typed anywhere.
    page.goto(site.url_of(f"/lab/{LAB}/review"))
    page.locator("a.item").first.click()
    decided = []
    while "/review/" in page.url and len(decided) <= len(items):
        assert_evidence(page)
        decided.append(page.url)
        decide_by_keys(page, "p", "Read and compared: the text is the student's own.", ctrl_enter=len(decided) % 2 == 0)
    assert sorted(decided) == sorted(site.url_of(i) for i in items)
    assert page.url == site.url_of(f"/lab/{LAB}/review")
    assert page.locator("#all-decided").is_visible()
    assert "Verdict: G" in student_page_text(page, site, "copycat")

    # A regrade with --force keeps the decisions.
    regraded = autograder("grade", LAB, str(SAMPLES / "copycat.ipynb"), "--db", str(site.db), "--root", str(REPO),
                          "--force", cwd=site.tmp)
    assert "1 submissions: G: 1" in regraded  # graded again, and recorded with the decisions applied
    text = student_page_text(page, site, "copycat")
    assert "Verdict: G" in text and "the text is the student's own" in text
    page.goto(site.url_of(f"/lab/{LAB}/review"))
    assert page.locator("#all-decided").is_visible()

    # Exports unblock and write their files, every student in them.
    page.goto(site.url_of(f"/lab/{LAB}/export"))
    assert page.locator("#held-back").count() == 0
    for fmt in ("json", "csv", "gradescope"):
        export(page, fmt)
        assert "held back" not in page.locator("#last-export").inner_text()
    exported = json.loads((site.out / LAB / f"{LAB}.json").read_text())
    assert "copycat" in json.dumps(exported) and "mallory" in json.dumps(exported)
    assert "copycat" in (site.out / LAB / f"{LAB}.csv").read_text()
    assert (gradescope / "copycat" / "results.json").is_file() and (gradescope / "mallory" / "results.json").is_file()
    assert tab.problems() == []


def test_a_hostile_hand_in_renders_inert(site, tab):
    page = tab.page
    for path in (evidence_path("mallory", "reflection"), f"/lab/{LAB}/student/mallory", f"/lab/{LAB}/review",
                 f"/lab/{LAB}?q=mallory"):
        page.goto(site.url_of(path))
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.pwned") == "undefined", path
        assert "pwned" not in page.title(), path
        scripts = page.evaluate("[...document.scripts].map(s => s.src || s.textContent.slice(0, 40))")
        assert scripts in ([], [site.url_of("/static/review.js")]), (path, scripts)
        handlers = page.evaluate("[...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
                                 ".filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))")
        assert handlers == [], (path, handlers)
        sources = page.evaluate("[...document.images].map(i => i.src.slice(0, 22))")
        assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64")) for s in sources), sources
        assert page.locator("svg script, iframe, object, embed").count() == 0
    # The evidence page shows the payload as text, the outputs it may show, and names the rest.
    page.goto(site.url_of(evidence_path("mallory", "reflection")))
    notebook = page.locator("#notebook").inner_text()
    assert PAYLOAD in notebook  # printed, and in the reflection cell's source: text, not markup
    for mime in ("text/html", "image/svg+xml", "application/javascript"):
        assert f"(output of type {mime} not shown)" in notebook
    assert "whose bytes are not a PNG or JPEG image" in notebook
    figures = page.locator("#notebook img")
    assert figures.count() == 2  # the 4000x4000 image and the plot; not the "PNG" that is HTML
    width = page.evaluate("document.querySelector('#notebook img').getBoundingClientRect().width")
    assert width <= 1280  # scaled to the page, not 4000 px across
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert tab.problems() == []


def test_two_tas_in_two_browsers_decide_at_once(site, tab):
    """Two sessions (two browser contexts, each with its own cookie), each on its own item, send their decisions
    together: both are kept. Runs after the flow above, so it first puts two decided items back in the queue."""
    first = tab.page
    first.goto(site.url_of(f"/lab/{LAB}/review"))
    for _ in range(2):
        with first.expect_navigation():
            first.locator("#decided form.undo button").first.click()
    items = queue_items(first)
    assert len(items) >= 2
    context = site.browser.new_context()
    try:
        second = context.new_page()
        second.goto(site.url_of(f"/?token={TOKEN}"))
        notes = {}
        for page, item, who in ((first, items[0], "first"), (second, items[1], "second")):
            page.goto(site.url_of(item))
            notes[item] = f"Compared side by side by the {who} TA."
            page.fill("#note", notes[item])
        with first.expect_navigation(), second.expect_navigation():
            first.evaluate("document.getElementById('decide').requestSubmit(document.getElementById('pass'))")
            second.evaluate("document.getElementById('decide').requestSubmit(document.getElementById('pass'))")
    finally:
        context.close()
    first.goto(site.url_of(f"/lab/{LAB}/review"))
    assert first.locator("#all-decided").is_visible()
    decided = first.locator("#decided").inner_text()
    assert all(note in decided for note in notes.values())
    assert tab.problems() == []
