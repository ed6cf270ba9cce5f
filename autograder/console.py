"""Terminal output: what a TA reads at the end of a run (one row per student, the verdict and why),
the review queue and one student's criteria, made safe from what students wrote; and the consoles."""

from __future__ import annotations

import re
import sys
from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.ids import readable
from autograder.results import CriterionResult, SubmissionResult

STYLE = {"G": "bold green", "U": "bold red", "review": "bold yellow", "error": "bold magenta"}


# ANSI/VT escape sequences and other control characters: student code chooses these messages.
_CONTROL = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> Text:
    """Text safe for a TA's terminal: no escape sequences, and never read as rich markup; format
    characters (a right-to-left override) and text that is not UTF-8 shown as escapes."""
    return Text(readable(_CONTROL.sub("", text)))


def reasons(result: SubmissionResult) -> list[str]:
    """Criteria that kept the verdict from G; skipped ones only when nothing else explains it."""
    failing = result.failed()
    shown = [c for c in failing if c.status != "skipped"] or failing
    return [c.id for c in shown]


# Which criterion's message explains a verdict best: the one of the status that decided it (a fail decides
# U even where a criterion before it in the rubric waits for review, e.g. code that looks copied).
_DECIDING = {"fail": 0, "error": 1, "review": 2}


def first_reason(result: SubmissionResult) -> str:
    shown = sorted((c for c in result.failed() if c.status != "skipped"), key=lambda c: _DECIDING.get(c.status, 3))
    return shown[0].message if shown else ""


def table(results: list[SubmissionResult], title: str = "") -> Table:
    t = Table(title=title or None, title_justify="left", expand=False)
    t.add_column("Student", no_wrap=True)
    t.add_column("Verdict", no_wrap=True)
    t.add_column("Failed criteria")
    t.add_column("Reason", max_width=80, overflow="fold")
    for r in results:
        verdict = Text(r.verdict, style=STYLE[r.verdict])
        decided = [c.id for c in r.criteria if c.override is not None]
        if decided:  # the verdict says that a teacher decided part of it
            verdict.append(f" (teacher: {', '.join(decided)})", style="dim")
        t.add_row(clean(r.student), verdict, ", ".join(reasons(r)) or "-", clean(first_reason(r)))
    return t


def summary(results: list[SubmissionResult]) -> str:
    counts = Counter(r.verdict for r in results)
    return ", ".join(f"{v}: {counts[v]}" for v in ("G", "U", "review", "error") if counts[v])


def print_results(console: Console, results: list[SubmissionResult], title: str = "") -> None:
    console.print(table(results, title))
    console.print(f"{len(results)} submissions: {summary(results)}")


CRITERION_STYLE = {"pass": "green", "fail": "red", "review": "yellow", "error": "magenta", "skipped": "dim"}


def measured(c: CriterionResult) -> str:
    """'0.812 (bar 0.75)': the value against its bar, as a TA scans it."""
    if c.value is None:
        return "-"
    if c.threshold is None:
        return _number(c.value)
    return f"{_number(c.value)} (bar {_number(c.threshold)})"


def _number(v: float | int | str) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def criteria_table(result: SubmissionResult) -> Table:
    """Every criterion of one result: status, value against the bar, what was found, what to do."""
    t = Table(title=f"{result.student}: {result.verdict}", title_justify="left", show_lines=True)
    for column in ("Criterion", "Status", "Value", "Message", "What to do"):
        t.add_column(column, overflow="fold")
    for c in result.criteria:
        status = Text(c.status, style=CRITERION_STYLE[c.status])
        if c.override is not None:
            status.append(f"\n(teacher; was {c.override.was})", style="dim")
        message = clean(c.message)
        if c.close:
            message.append("\nClose to the bar: grading on hidden data may decide the other way; aim for a margin.",
                           style="yellow")
        if c.estimate:
            message.append(f"\nEstimate: {c.estimate}.", style="dim")
        if c.override is not None:
            message.append(f"\nDecided by {c.override.by} on {c.override.at:%Y-%m-%d}: {c.override.note}")
        t.add_row(clean(c.id), status, measured(c), message, clean(c.advice))
    return t


def handin_lines(result: SubmissionResult, originals: list[str]) -> list[str]:
    """For staff: when the graded work was handed in, whether it was late, and its files as named then."""
    lines = []
    if result.handed_in is not None:
        lines.append(f"handed in {result.handed_in:%Y-%m-%d %H:%M %z}")
    if result.late is not None:
        lines.append(f"late: {result.late.describe()} (policy: {result.late.policy})")
    if originals:
        lines.append("files as handed in: " + ", ".join(originals))
    return lines


def evidence_lines(c: CriterionResult) -> list[str]:
    """What a TA needs to decide a criterion under review, from its details."""
    lines = [f"{c.id} ({c.kind}): {c.message}"]
    if c.value is not None:
        lines.append(f"  measured: {measured(c)}")
    d = c.details
    if d.get("failed"):
        lines.append("  it failed its check; the rubric sends such failures to a teacher instead of U")
    for pair in d.get("similar_to", []) or []:
        lines.append(f"  similar to {pair.get('student')}: similarity {pair.get('similarity', 0):.2f} "
                     f"(by {pair.get('by', '?')})")
    for key, value in d.items():
        if key not in SHOWN_APART:
            lines += _nested(key, value, "  ")
    lines += run_lines(c, "  ")
    text = d.get("text")
    if text:
        lines.append("  text:")
        lines += [f"    {line}" for line in str(text).splitlines() if line.strip()]
    return lines


SHOWN_APART = {"text", "similar_to", "own_message", "own_status", "own_advice", "failed", "runs", "rerun"}


def run_lines(c: CriterionResult, indent: str = "") -> list[str]:
    """The runs of a criterion judged on several seeds (grading/reruns.py): one line per run, seed, value,
    interval, status, and why a run gave no value; [] for a criterion judged on one run."""
    runs = c.details.get("runs")
    if not isinstance(runs, list) or not runs:
        return []
    plan = c.details.get("rerun") or {}
    median = c.details.get("median")
    head = f"{indent}runs of {c.id}, {len(runs)} of {plan.get('planned', '?')} planned"
    if isinstance(median, int | float):
        head += f", median {median:.4g}"
    stopped = plan.get("stopped")
    lines = [head + (f" (stopped: {stopped})" if stopped else "") + ":"]
    for run in runs:
        if not isinstance(run, dict):
            continue
        value, interval = run.get("value"), run.get("interval")
        shown = f"{value:.4g}" if isinstance(value, int | float) else "no value"
        if isinstance(interval, list) and len(interval) == 2:
            shown += f" (95% {interval[0]:.3f}-{interval[1]:.3f})"
        line = f"{indent}  seed {run.get('seed')}: {shown}, {run.get('status', '?')}"
        if value is None and run.get("message"):
            line += f": {run['message']}"
        stages = run.get("stages") or {}
        if stages:
            line += " [" + ", ".join(f"{stage} {str(key)[:12]}" for stage, key in stages.items()) + "]"
        lines.append(line)
    return lines
MAX_ITEMS = 20


def _nested(key: str, value: object, indent: str) -> list[str]:
    """key: value, with dicts and lists of dicts one level further in, so nested evidence stays readable."""
    if value in (None, "", [], {}):
        return []
    if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
        return [f"{indent}{key}:"] + [line for k, v in value.items() for line in _nested(k, v, indent + "  ")]
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        lines = [f"{indent}{key}:"] + [f"{indent}  - {_compact(item)}" for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            lines.append(f"{indent}  ... and {len(value) - MAX_ITEMS} more")
        return lines
    return [f"{indent}{key}: {_compact(value)}"]


def _compact(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_compact(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    return str(value)


def print_review(console: Console, queue: list[tuple[SubmissionResult, list[CriterionResult]]]) -> None:
    for result, items in queue:
        console.rule(Text(f"{result.student} ({result.verdict})", style=STYLE[result.verdict]), align="left")
        for c in items:
            for line in evidence_lines(c):
                console.print(clean(line))
        for note in result.notes:
            console.print(clean(f"note: {note}"))
    console.print(f"{len(queue)} submissions wait for a decision")


# The terminal itself: tables and progress on these, errors as plain lines through `say`.
err = Console(stderr=True)
# Piped output (CI logs, `| less`) gets a table wide enough to read rather than rich's 80 columns.
out = Console() if Console().is_terminal else Console(width=120)


def say(*lines: str) -> None:
    """Errors go out as plain lines, never wrapped or styled, so scripts and people read them alike."""
    sys.stderr.write("".join(f"{line}\n" for line in lines if line))
