"""What a TA reads at the end of a run: one row per student, the verdict and why."""

from __future__ import annotations

import re
from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.results import SubmissionResult

STYLE = {"G": "bold green", "U": "bold red", "review": "bold yellow", "error": "bold magenta"}


# ANSI/VT escape sequences and other control characters: student code chooses these messages.
_CONTROL = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> Text:
    """Text safe for a TA's terminal: no escape sequences, and never read as rich markup."""
    return Text(_CONTROL.sub("", text))


def reasons(result: SubmissionResult) -> list[str]:
    """Criteria that kept the verdict from G; skipped ones only when nothing else explains it."""
    failing = result.failed()
    shown = [c for c in failing if c.status != "skipped"] or failing
    return [c.id for c in shown]


def first_reason(result: SubmissionResult) -> str:
    for c in result.failed():
        if c.status != "skipped":
            return c.message
    return ""


def table(results: list[SubmissionResult], title: str = "") -> Table:
    t = Table(title=title or None, title_justify="left", expand=False)
    t.add_column("Student", no_wrap=True)
    t.add_column("Verdict", no_wrap=True)
    t.add_column("Failed criteria")
    t.add_column("Reason", max_width=80, overflow="fold")
    for r in results:
        t.add_row(clean(r.student), Text(r.verdict, style=STYLE[r.verdict]), ", ".join(reasons(r)) or "-",
                  clean(first_reason(r)))
    return t


def summary(results: list[SubmissionResult]) -> str:
    counts = Counter(r.verdict for r in results)
    return ", ".join(f"{v}: {counts[v]}" for v in ("G", "U", "review", "error") if counts[v])


def print_results(console: Console, results: list[SubmissionResult], title: str = "") -> None:
    console.print(table(results, title))
    console.print(f"{len(results)} submissions: {summary(results)}")
