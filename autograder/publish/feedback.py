"""Feedback a student reads: one page per student (HTML, and Markdown for an LMS comment) and an index.

Built from the recorded result and what its stages left on disk, so it can be written again at any
time without re-running anything. Only what the student may see goes in: messages written for them,
public tests, and figures of public data. The hidden splits, a hidden test's name or message and
a criterion's `details` (the TA's evidence) never do. Everything a submission produced is untrusted:
escaped for HTML, escaped or fenced for Markdown, stripped of terminal control sequences in both,
and no traceback names a host path (`runner.scrub_paths`). A section the lab has no data for (training
curves in a lab without a `history` probe, time and memory in a lab without a notebook) is left out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autograder.arrays import ArrayRefused
from autograder.artifacts import ExecuteArtifacts, ProbeArtifacts
from autograder.console import measured, reasons
from autograder.criteria.analysis.metrics import METRICS, predicted_labels
from autograder.criteria.metric import MetricSpec
from autograder.errors import UserError
from autograder.labs.lab import Lab
from autograder.labs.spec import human_size
from autograder.notebooks import load_notebook
from autograder.publish import leaderboard
from autograder.publish.html import figure_data_uri, matplotlib_backend, render, strip_ansi
from autograder.results import HiddenTestResult, Override, SubmissionResult
from autograder.sandbox.runner import scrub_paths
from autograder.store import Store

VERDICT_MEANING = {
    "G": "Passed: every required criterion is met.",
    "U": "Not passed yet: fix the criteria marked \u201cnot met\u201d below and hand in again.",
    "review": "A teacher will look at the criteria marked \u201cteacher decides\u201d and decide; "
              "you need not do anything now.",
    "error": "The grader could not finish grading this submission. This is not your fault: "
             "the course staff will look into it.",
}
STATUS_WORDS = {"pass": "met", "fail": "not met", "review": "teacher decides", "error": "not graded (our fault)",
                "skipped": "not checked"}

HISTORY_PROBE = "history"
CONFUSION_SPLIT = "val"  # the public split the confusion matrix is drawn on; never a hidden one
TRACEBACK_CHARS = 4000  # of the failing cell's traceback, head and tail kept
ERROR_CHARS = 1000  # of its one-line error
MAX_POINTS = 5000  # per curve drawn; longer histories are thinned evenly
MAX_NPZ_BYTES = 64 * 1024**2  # uncompressed, per file read: probe outputs pass through student code
MAX_CLASSES = 30  # a larger confusion matrix is not read by anyone
MAX_PANELS = 6


# --- what a page shows, gathered from the result and its artifacts -------------------------------------------


@dataclass
class Failure:
    """Where the notebook stopped: the harness's own account, and the traceback the kernel printed."""

    status: str
    message: str
    cell: int | None
    error: str = ""  # "ValueError: ..." from the executed notebook
    traceback: str = ""  # ANSI stripped, capped

    @property
    def where(self) -> str:
        return f"Cell {self.cell}" if self.cell is not None else "The run"

    @property
    def shown_error(self) -> str:
        """The error line, unless the harness's message already says it."""
        return self.error if self.error and self.error not in strip_ansi(self.message) else ""


@dataclass
class Confusion:
    """Counts of true class (rows) against predicted class (columns) on a public split; predictions
    outside the lab's classes go to a last `other` column when there are any."""

    split: str
    counts: np.ndarray
    other: bool

    @property
    def accuracy(self) -> float:
        n = len(self.counts)
        return float(np.trace(self.counts[:, :n]) / max(1, self.counts.sum()))

    @property
    def classes(self) -> range:
        return range(len(self.counts))

    @property
    def rows(self) -> list[list[int]]:
        return [[int(x) for x in row] for row in self.counts]


@dataclass
class Feedback:
    lab: Lab
    result: SubmissionResult
    history: dict[str, np.ndarray] = field(default_factory=dict)
    confusion: Confusion | None = None
    failure: Failure | None = None
    board: leaderboard.Section | None = None  # the lab's leaderboard as this student sees it (write_feedback)

    @property
    def titles(self) -> dict[str, str]:
        return {c.id: c.title for c in self.lab.rubric.criteria if c.title}

    @property
    def has_curves(self) -> bool:
        """Whether the lab records training curves at all (a `history` probe): without one the page has
        no such section, rather than one saying there is nothing."""
        return bool(self.history) or HISTORY_PROBE in self.lab.probes


def gather(lab: Lab, store: Store, result: SubmissionResult) -> Feedback:
    """Everything one student's page shows; missing artifacts leave their part empty, never fail."""
    folders = store.artifacts(result)
    probe = folders.get("probe")
    return Feedback(lab=lab, result=result,
                    history=read_history(probe) if probe is not None else {},
                    confusion=confusion(lab, result, probe) if probe is not None else None,
                    failure=failure(result, folders.get("execute")))


def _npz(probe_folder: Path, probe: str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Plain arrays of a probe output (all, or the named keys), checked from their headers under a
    smaller cap than the judge's (a page needs curves, not data sets); {} when missing or refused."""
    try:
        return ProbeArtifacts(probe_folder).read(probe, keys=keys, max_bytes=MAX_NPZ_BYTES)
    except (OSError, ArrayRefused):
        return {}


def read_history(probe_folder: Path) -> dict[str, np.ndarray]:
    """name -> per-epoch values (float, non-finite as NaN) of every 1-D numeric array the history probe saved."""
    curves = {}
    for name, values in _npz(probe_folder, HISTORY_PROBE).items():
        if values.ndim == 1 and values.dtype.kind in "biuf" and len(values):
            v = values.astype(np.float64)
            v[~np.isfinite(v)] = np.nan
            curves[name] = v
    return curves


def confusion_criterion(lab: Lab):
    """The rubric's first criterion that measures classes against labels, when the lab has a public `val`
    split to show it on; None when the lab allows no confusion matrix."""
    if lab.spec.splits.get(CONFUSION_SPLIT) != "public":
        return None
    for c in lab.rubric.criteria:
        if c.kind == "accuracy":
            return c
        if isinstance(c, MetricSpec) and c.target == "labels" and METRICS[c.metric].compares == "classes":
            return c
    return None


def confusion(lab: Lab, result: SubmissionResult, probe_folder: Path) -> Confusion | None:
    """The confusion matrix on the public validation split from the probe's scores; None when the lab
    allows none or the outputs cannot be read as one row of scores or one label per input."""
    criterion = confusion_criterion(lab)
    if criterion is None:
        return None
    scores = _npz(probe_folder, criterion.probe, [CONFUSION_SPLIT]).get(CONFUSION_SPLIT)
    if scores is None:
        return None
    y = lab.split(CONFUSION_SPLIT)[1]
    if y is None:  # a split of inputs only
        return None
    labels = np.asarray(y)
    if (labels.ndim != 1 or labels.dtype.kind not in "biu" or not len(labels) or labels.min() < 0
            or scores.ndim not in (1, 2) or len(scores) != len(labels) or scores.dtype.kind not in "biuf"):
        return None
    values = scores.astype(np.float64)
    if not np.all(np.isfinite(values)) or (values.ndim == 1 and not np.all(values == np.round(values))):
        return None
    n = int(labels.max()) + 1
    if n > MAX_CLASSES:
        return None
    guesses = predicted_labels(values).astype(np.int64)
    outside = (guesses < 0) | (guesses >= n)
    counts = np.zeros((n, n + 1), dtype=np.int64)
    np.add.at(counts, (labels.astype(np.int64), np.where(outside, n, guesses)), 1)
    other = bool(outside.any())
    return Confusion(CONFUSION_SPLIT, counts if other else counts[:, :n], other)


def failure(result: SubmissionResult, execute_folder: Path | None) -> Failure | None:
    """Where the run stopped, with the first error the executed notebook holds; None when it ran through."""
    run = result.execution
    if run is None or run.status == "ok":
        return None
    found = Failure(status=run.status, message=run.message, cell=run.cell)
    nb = load_notebook(ExecuteArtifacts(execute_folder).notebook) if execute_folder is not None else None
    for cell in nb.cells if nb is not None else []:
        outputs = cell.get("outputs")
        error = next((o for o in outputs if isinstance(o, dict) and o.get("output_type") == "error"), None) \
            if isinstance(outputs, list) else None
        if error is not None:  # the notebook file passed through student code: any field may be odd
            found.error = _capped(scrub_paths(strip_ansi(f"{error.get('ename', '')}: {error.get('evalue', '')}")),
                                  ERROR_CHARS)
            lines = error.get("traceback")
            lines = [lines] if isinstance(lines, str) else lines if isinstance(lines, list) else []
            found.traceback = _capped(scrub_paths(strip_ansi("\n".join(str(line) for line in lines))))
            break
    return found


def _capped(text: str, limit: int = TRACEBACK_CHARS) -> str:
    """The start (the student's own cell) and the end (where it failed) of a long traceback."""
    if len(text) <= limit:
        return text
    head, tail = limit // 3, limit - limit // 3
    return f"{text[:head]}\n... ({len(text) - limit:,} characters left out) ...\n{text[-tail:]}"


# --- small formatting shared by both renderings -------------------------------------------------------------


def _overridden(o: Override) -> str:
    was = f" (the grader said {STATUS_WORDS.get(o.was, o.was)})" if o.was else ""
    return f"Decided by a teacher: {STATUS_WORDS[o.status]}{was}, by {o.by} on {o.at:%Y-%m-%d %H:%M} UTC: {o.note}"


def _resources(fb: Feedback) -> list[tuple[str, str]]:
    run, limits = fb.result.execution, fb.lab.spec.limits
    if run is None:
        return []
    rows = [("Run time", f"{run.duration_s:.1f} s (limit {limits.timeout:g} s)"),
            ("Peak memory", (f"{run.peak_memory_mb:.0f} MB" if run.peak_memory_mb is not None else "not measured")
             + f" (limit {human_size(int(limits.memory))})"),
            ("Device", run.device)]
    if run.peak_gpu_memory_mb is not None:
        rows.append(("Peak GPU memory", f"{run.peak_gpu_memory_mb:.0f} MB"))
    compute = fb.result.compute
    if compute is not None and compute.cpu_s is not None:
        rows.append(("CPU time", f"{compute.cpu_s:.1f} CPU-seconds over {compute.runs} sandbox run"
                     f"{'s' if compute.runs != 1 else ''}"))
    if compute is not None and compute.gpu_s:
        rows.append(("GPU time", f"{compute.gpu_s:.0f} GPU-seconds (run time x GPUs held)"))
    return rows


def graded_under(fb: Feedback) -> list[tuple[str, str]]:
    """'How this was graded': the reproducibility stamp, so a student (or a TA asked "why?") can run the
    notebook the same way. Seeds, the image, versions and hardware only: nothing of the hidden data."""
    env = fb.result.environment
    if env is None:
        return []
    seeds = ", ".join(str(s) for s in env.seeds) or "none set by the lab"
    rows = [("Seed" + ("s" if len(env.seeds) > 1 else ""), seeds)]
    if env.image:
        rows.append(("Sandbox image", f"{env.image} ({env.image_digest[:19] or 'id unknown'})"))
    rows.append(("Software", f"Python {env.python or '?'}" + (f", torch {env.torch}" if env.torch else "")
                 + (f", CUDA {env.cuda}" if env.cuda else "")))
    rows.append(("Hardware", (env.gpu + (f" (driver {env.driver})" if env.driver else "")) if env.gpu else env.cpu
                 or "unknown"))
    if env.deterministic:
        rows.append(("Settings", ", ".join(f"{k}={v}" for k, v in sorted(env.deterministic.items()))))
    rows.append(("Grader", f"autograder {env.harness_version or '?'} ({env.backend or '?'} backend)"))
    return rows


def _curve_summary(name: str, v: np.ndarray) -> str:
    finite = v[np.isfinite(v)]
    if not len(finite):
        return f"{name}: {len(v)} epochs, no finite values"
    return (f"{name}: {len(v)} epoch{'s' if len(v) != 1 else ''}, from {v[0]:.4g} to {v[-1]:.4g} "
            f"(lowest {finite.min():.4g}, highest {finite.max():.4g})")


def _panel(name: str) -> str:
    """train_accuracy and val_accuracy share the `accuracy` panel."""
    return re.sub(r"^(train|training|val|valid|validation|test)_", "", name) or name


def curves_figure(history: dict[str, np.ndarray]) -> str:
    """The training curves as an inline PNG: one panel per measure, every series against its epoch."""
    matplotlib_backend()
    from matplotlib.figure import Figure

    panels: dict[str, list[str]] = {}
    for name in history:
        panels.setdefault(_panel(name), []).append(name)
    shown = list(panels)[:MAX_PANELS]
    fig = Figure(figsize=(min(15.0, 5.0 * len(shown)), 3.4))
    for ax, panel in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown):
        for name in panels[panel]:
            v = history[name]
            step = -(-len(v) // MAX_POINTS)
            ax.plot(np.arange(1, len(v) + 1)[::step], v[::step], marker="o" if len(v) <= 30 else None, markersize=3,
                    label=_plain(name))
        ax.set_title(_plain(panel))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return figure_data_uri(fig)


def _plain(label: str) -> str:
    """A label matplotlib draws as written (no mathtext, not hidden from the legend)."""
    return strip_ansi(label).replace("$", r"\$").lstrip("_") or "?"


# --- HTML ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionRow:
    """One criterion as the page shows it: what the student may read, never its `details`."""

    id: str
    title: str
    required: bool
    status: str
    words: str  # the status in words
    measured: str
    message: str
    close: bool
    estimate: str
    decided: str  # the teacher's decision in words; "" when none
    advice: str


@dataclass(frozen=True)
class Curves:
    """The training-curves section: a line per curve, and the figure (a data: URI) or why there is none."""

    summaries: list[str]
    figure: str = ""
    failed: str = ""  # the exception's class, when the figure could not be drawn


def to_html(fb: Feedback) -> str:
    """The student's page (templates/feedback.html): the data is gathered here, laid out and escaped there."""
    r = fb.result
    public = [t for t in r.tests if t.public]  # by name and message; hidden ones only counted
    hidden = [t for t in r.tests if not t.public]
    return render("feedback.html", title=f"{fb.lab.name}: {r.student}", heading=fb.lab.spec.title or fb.lab.name,
                  student=r.student, graded_at=f"{r.graded_at:%Y-%m-%d %H:%M}", lab_version=r.lab_version,
                  submission=r.submission_hash[:12], verdict=r.verdict, meaning=VERDICT_MEANING[r.verdict],
                  criteria=criterion_rows(fb), tests=public, hidden=_hidden_count(hidden) if hidden else "",
                  curves=curves_section(fb.history) if fb.has_curves else None, confusion=fb.confusion,
                  failure=fb.failure, resources=_resources(fb), notes=r.notes, leaderboard=fb.board,
                  graded_under=graded_under(fb))


def criterion_rows(fb: Feedback) -> list[CriterionRow]:
    titles = fb.titles
    return [CriterionRow(id=c.id, title=titles.get(c.id, ""), required=c.required, status=c.status,
                         words=STATUS_WORDS[c.status], measured=measured(c), message=c.message, close=c.close,
                         estimate=c.estimate or "", decided=_overridden(c.override) if c.override is not None else "",
                         advice=c.advice)
            for c in fb.result.criteria]


def _hidden_count(hidden: list[HiddenTestResult]) -> str:
    passed = sum(t.outcome == "passed" for t in hidden)
    return (f"{len(hidden)} hidden test{'s' if len(hidden) != 1 else ''}: {passed} passed. Hidden tests are not "
            "named here; the criteria above say what failed.")


def curves_section(history: dict[str, np.ndarray]) -> Curves:
    summaries = [_curve_summary(n, v) for n, v in history.items()]
    if not history:
        return Curves(summaries)
    try:
        return Curves(summaries, figure=curves_figure(history))
    except Exception as exc:  # a figure is a convenience: its failure must not cost the student the page
        return Curves(summaries, failed=type(exc).__name__)


# --- Markdown -----------------------------------------------------------------------------------------------

# Characters Markdown would act on inside a line of text; < > & become entities instead.
_MD_ACTIVE = re.compile(r"([\\`*_\[\]|~#])")


def md_text(text: object) -> str:
    """Untrusted text as one line of Markdown text: no markup, no raw HTML, no line structure."""
    one = " ".join(strip_ansi(str(text)).split())
    one = one.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_ACTIVE.sub(r"\\\1", one)


def md_code(text: str) -> str:
    """Untrusted text as a fenced code block: the fence is longer than any backtick run inside, so
    nothing in the text can close it."""
    body = strip_ansi(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def to_markdown(fb: Feedback) -> str:
    r = fb.result
    titles = fb.titles
    lines = [f"# {md_text(fb.lab.spec.title or fb.lab.name)}", "",
             f"Feedback for **{md_text(r.student)}**; graded {r.graded_at:%Y-%m-%d %H:%M} UTC, lab version "
             f"{md_text(r.lab_version)}, submission {md_text(r.submission_hash[:12])}.", "",
             f"**Verdict: {md_text(r.verdict)}**. {md_text(VERDICT_MEANING[r.verdict])}", "", "## Criteria", ""]
    for c in r.criteria:
        head = f"- **{md_text(c.id)}**" + (f" ({md_text(titles[c.id])})" if c.id in titles else "")
        lines.append(f"{head}: {md_text(STATUS_WORDS[c.status])}" + ("" if c.required else " (optional)"))
        if c.value is not None:
            lines.append(f"  - Measured: {md_text(measured(c))}")
        lines.append(f"  - {md_text(c.message)}")
        if c.close:
            lines.append("  - Close to the bar: grading on hidden data may decide the other way; aim for a margin.")
        if c.estimate:
            lines.append(f"  - Estimate: {md_text(c.estimate)}.")
        if c.advice:
            lines.append(f"  - What to do: {md_text(c.advice)}")
        if c.override is not None:
            lines.append(f"  - {md_text(_overridden(c.override))}")
    if r.tests:
        lines += ["", "## Tests", ""]
        lines += [f"- {md_text(t.name)}: {md_text(t.outcome)}" + (f". {md_text(t.message)}" if t.message else "")
                  for t in r.tests if t.public]
        hidden = [t for t in r.tests if not t.public]
        if hidden:
            lines.append(f"- {md_text(_hidden_count(hidden))}")
    if fb.has_curves:
        lines += ["", "## Training curves", ""]
    if fb.history:
        lines += [f"- {md_text(_curve_summary(n, v))}" for n, v in fb.history.items()]
        lines.append("- The figure is in the HTML version of this feedback.")
    elif fb.has_curves:
        lines.append("Not available: the grader has no training history from this submission.")
    if fb.confusion is not None:
        cm = fb.confusion
        n = len(cm.counts)
        cols = [str(j) for j in range(n)] + (["other"] if cm.other else [])
        lines += ["", f"## Confusion matrix on the {md_text(cm.split)} set", "",
                  f"Rows: the true class; columns: the class your model predicted. Accuracy {cm.accuracy:.3f} on "
                  f"the {md_text(cm.split)} set (public data: the graded test set is not shown).", "",
                  "| true \\\\ predicted | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {i} | " + " | ".join(str(int(x)) for x in cm.counts[i]) + " |" for i in range(n)]
    if fb.failure is not None:
        f = fb.failure
        where = f"Cell {f.cell}" if f.cell is not None else "The run"
        lines += ["", "## Where the notebook stopped", "", f"**{where}** ({md_text(f.status)}): {md_text(f.message)}"]
        if f.error and f.error not in strip_ansi(f.message):
            lines += ["", f"Error: {md_text(f.error)}"]
        if f.traceback:
            lines += ["", md_code(f.traceback)]
    if fb.board is not None:
        lines += ["", "## Leaderboard", "", md_text(leaderboard.markdown_line(fb.board))]
    if fb.result.execution is not None:
        lines += ["", "## Time and memory", ""] + [f"- {md_text(k)}: {md_text(v)}" for k, v in _resources(fb)]
    if fb.result.environment is not None:
        lines += ["", "## How this was graded", ""] + [f"- {md_text(k)}: {md_text(v)}" for k, v in graded_under(fb)]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {md_text(n)}" for n in r.notes]
    return "\n".join(lines) + "\n"


# --- the index and the files --------------------------------------------------------------------------------


def index_html(lab: Lab, results: list[SubmissionResult], files: dict[str, str]) -> str:
    """The TA's list of pages (templates/index.html): student, verdict, the criteria not met."""
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICT_MEANING}
    return render("index.html", title=f"{lab.name}: feedback", heading=lab.spec.title or lab.name,
                  summary=", ".join(f"{v}: {n}" for v, n in counts.items() if n),
                  students=[{"student": r.student, "stem": files[r.student], "verdict": r.verdict,
                             "not_met": ", ".join(reasons(r)) or "-"} for r in results])


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def file_stems(students: Iterable[str]) -> dict[str, str]:
    """student -> a file name stem that is safe on every file system and distinct even where case is not
    (a student id can hold any character a file name can); `index` is kept for the index page."""
    stems: dict[str, str] = {}
    taken = {"index"}
    for student in students:
        stem = _UNSAFE.sub("_", student).lstrip(".")[:80] or "student"
        if stem != student or stem.lower() in taken:
            stem = f"{stem}-{hashlib.sha256(student.encode()).hexdigest()[:8]}"
        taken.add(stem.lower())
        stems[student] = stem
    return stems


def write_feedback(lab: Lab, store: Store, out_dir: Path, students: Iterable[str] | None = None) -> list[Path]:
    """Write <student>.html and <student>.md for each student's current result (all, or those named),
    and index.html listing them; returns the files written."""
    results = store.latest(lab.name)
    if not results:
        known = ", ".join(store.labs()) or "none"
        raise UserError(f"no results for lab {lab.name!r} in {store.path}", f"labs with results: {known}")
    if students is not None:
        wanted = list(dict.fromkeys(students))
        by_student = {r.student: r for r in results}
        missing = [s for s in wanted if s not in by_student]
        if missing:
            raise UserError(f"no result for {', '.join(map(repr, missing))} in lab {lab.name!r}",
                            f"students with results: {', '.join(r.student for r in results[:20])}")
        results = [by_student[s] for s in wanted]
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot create the feedback folder: {exc}", "pass -o with a writable folder"
                        ) from exc
    stems = file_stems(r.student for r in results)
    board = leaderboard.of_store(lab, store)  # the whole cohort's, whichever students are written
    written = []
    for r in results:
        fb = gather(lab, store, r)
        fb.board = leaderboard.section(board, r.student) if board is not None else None
        for suffix, text in ((".html", to_html(fb)), (".md", to_markdown(fb))):
            path = out_dir / f"{stems[r.student]}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    index = out_dir / "index.html"
    index.write_text(index_html(lab, results, stems), encoding="utf-8")
    written.append(index)
    return written
