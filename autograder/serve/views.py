"""What each page of the app shows, gathered from the store: plain data, rendered by the templates.

Nothing here writes. Everything a submission produced (messages, details, texts, code, student ids)
stays plain text until the template escapes it; the only markup made here is the evidence components
(`evidence.py`) and the bar chart of a metric, whose numbers are formatted, never copied.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup

from autograder.grading.decisions import GRADER_ADVICE, waiting
from autograder.results import CriterionResult, Override, SubmissionResult
from autograder.store import Store

VERDICTS = ("G", "U", "review", "error")
STATUSES = ("pass", "fail", "review", "error", "skipped")
NOT_MET = ("fail", "review", "error")
# Details shown in their own part of the evidence page (or not at all), not in the table of details.
SHOWN_APART = {"text", "similar_to", "code", "own_status", "own_message", "own_advice", GRADER_ADVICE, "runs", "rerun"}
MAX_DETAIL_CHARS = 4000  # one detail's text in the table; the rest is cut with a note
MAX_TEXT_CHARS = 50_000  # a text shown alone (a reflection is a few hundred words)


# --- links: student ids may hold any character, so they are quoted whole (a / included) ---------------------


def _segment(text: str) -> str:
    return quote(text, safe="")


def _path_safe(student: str) -> bool:
    """A browser resolves a path segment of dots (`..`, `%2e%2e`) before sending it: such an id goes in the
    query string instead."""
    return student.strip(".") != ""


def lab_url(lab: str, page: str = "") -> str:
    return f"/lab/{_segment(lab)}" + (f"/{page}" if page else "")


def evidence_url(lab: str, student: str, criterion: str) -> str:
    if _path_safe(student):
        return f"/lab/{_segment(lab)}/review/{_segment(student)}/{_segment(criterion)}"
    return f"/lab/{_segment(lab)}/evidence?" + urlencode({"student": student, "criterion": criterion})


def student_url(lab: str, student: str) -> str:
    if _path_safe(student):
        return f"/lab/{_segment(lab)}/student/{_segment(student)}"
    return f"/lab/{_segment(lab)}/student?" + urlencode({"student": student})


# --- the cohort ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    student: str
    verdict: str
    unmet: list[CriterionResult]
    decided: int  # criteria a TA decided


@dataclass
class Cohort:
    lab: str
    total: int
    counts: dict[str, int]
    criteria: list[str]
    rows: list[Row]
    waiting: int


def cohort(store: Store, lab: str, verdict: str = "", criterion: str = "", status: str = "",
           search: str = "") -> Cohort:
    """Today's report, live: verdict counts over the whole lab, and the students the filters keep (a verdict;
    a criterion with a status, or not met when no status is given; a status on any criterion; a part of the id)."""
    results = store.latest(lab)
    criteria: list[str] = []
    for r in results:
        criteria += [c.id for c in r.criteria if c.id not in criteria]
    counts: Counter[str] = Counter(r.verdict for r in results)
    rows = []
    needle = search.strip().casefold()
    for r in results:
        if verdict and r.verdict != verdict:
            continue
        if needle and needle not in r.student.casefold():
            continue
        by_id = {c.id: c for c in r.criteria}
        if criterion:
            c = by_id.get(criterion)
            if c is None or (c.status != status if status else c.status not in NOT_MET):
                continue
        elif status and not any(c.status == status for c in r.criteria):
            continue
        rows.append(Row(student=r.student, verdict=r.verdict, unmet=[c for c in r.criteria if c.status in NOT_MET],
                        decided=sum(c.override is not None for c in r.criteria)))
    return Cohort(lab=lab, total=len(results), counts={v: counts.get(v, 0) for v in VERDICTS}, criteria=criteria,
                  rows=rows, waiting=sum(1 for r in results if r.verdict in ("review", "error")))


# --- the review queue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One undecided criterion of one student."""

    student: str
    criterion: str
    kind: str
    message: str

    @property
    def key(self) -> tuple[str, str]:
        return self.student, self.criterion


@dataclass
class Decided:
    student: str
    criterion: str
    override: Override
    status: str


@dataclass
class Queue:
    items: list[Item]
    decided: list[Decided]
    stuck: list[SubmissionResult]  # waiting (review or error) with no criterion a TA can decide


def queue(store: Store, lab: str, current: list[SubmissionResult] | None = None) -> Queue:
    """Each criterion in `review` without a decision, in the order of `review` (student, then rubric); the
    decided criteria of the current results, latest first; results waiting with nothing to decide.
    `current`: the lab's current results, where the caller has them."""
    current = store.latest(lab) if current is None else current
    items, stuck = [], []
    for r, criteria in waiting(store, lab, current):
        if not criteria:
            stuck.append(r)
        items += [Item(r.student, c.id, c.kind, c.message) for c in criteria]
    decided = [Decided(r.student, c.id, c.override, c.status)
               for r in current for c in r.criteria if c.override is not None]
    decided.sort(key=lambda d: d.override.at, reverse=True)
    return Queue(items=items, decided=decided, stuck=stuck)


def after(items: list[Item], key: tuple[str, str]) -> Item | None:
    """The undecided item after `key` in the queue's order (wrapping round): the next one where `key` is in the
    queue; where it is not (a decided item), the first of the same student or a later one. None when nothing
    else waits."""
    keys = [i.key for i in items]
    if key in keys:
        at = keys.index(key)
        rest = items[at + 1:] + items[:at]
        return rest[0] if rest else None
    return next((i for i in items if i.student >= key[0]), items[0] if items else None)


def before(items: list[Item], key: tuple[str, str]) -> Item | None:
    keys = [i.key for i in items]
    if key in keys:
        at = keys.index(key)
        rest = items[at + 1:] + items[:at]
        return rest[-1] if rest else None
    return next((i for i in reversed(items) if i.student < key[0]), items[-1] if items else None)


def next_after_deciding(old: list[Item], new: list[Item], key: tuple[str, str]) -> Item | None:
    """Where a TA goes after deciding `key`: the first item after it in the queue as it was (wrapping round) that
    still waits, so a second TA's decisions meanwhile are skipped; else anything still waiting."""
    waiting = {i.key: i for i in new}
    keys = [i.key for i in old]
    at = keys.index(key) if key in keys else -1
    for item in old[at + 1:] + old[:max(at, 0)]:
        if item.key in waiting:
            return waiting[item.key]
    return new[0] if new else None


# --- one criterion's evidence --------------------------------------------------------------------------------


@dataclass
class Bar:
    """A measured value against its bar, and where the cohort's values lie."""

    value: float
    bar: float
    at_least: bool | None  # True: the value must reach the bar; False: stay under it; None: not known
    cohort: list[float]
    chart: Markup


@dataclass
class Pair:
    """The other student a text or code looks copied from, with both side by side."""

    student: str
    similarity: float | None
    how: str
    html: Markup


@dataclass
class Run:
    """One run of a notebook judged on several seeds (grading/reruns.py), as text for the table."""

    seed: str
    value: str
    interval: str
    status: str
    message: str
    stages: str


@dataclass
class Evidence:
    result: SubmissionResult
    criterion: CriterionResult
    details: list[tuple[str, str]]
    bar: Bar | None
    text: str
    pairs: list[Pair] = field(default_factory=list)
    notebook: Markup | None = None
    runs: list[Run] = field(default_factory=list)
    runs_summary: str = ""


def runs_of(c: CriterionResult) -> tuple[list[Run], str]:
    """The runs of a borderline criterion re-run with other seeds, and one line on how they went."""
    found = c.details.get("runs")
    if not isinstance(found, list):
        return [], ""
    rows = []
    for run in found:
        if not isinstance(run, dict):
            continue
        value, interval = _number(run.get("value")), run.get("interval")
        span = (f"{low:.4g} to {high:.4g}" if isinstance(interval, list) and len(interval) == 2
                and (low := _number(interval[0])) is not None and (high := _number(interval[1])) is not None else "")
        stages = run.get("stages")
        stages = stages if isinstance(stages, dict) else {}
        rows.append(Run(seed=str(run.get("seed", "")), value=f"{value:.4g}" if value is not None else "no value",
                        interval=span, status=str(run.get("status", "")), message=str(run.get("message", "")),
                        stages=", ".join(f"{k} {str(v)[:12]}" for k, v in stages.items())))
    plan = c.details.get("rerun")
    plan = plan if isinstance(plan, dict) else {}
    median = _number(c.details.get("median"))
    summary = f"{len(rows)} of {plan.get('planned', len(rows))} planned runs"
    if median is not None:
        summary += f"; median {median:.4g}"
    if plan.get("stopped"):
        summary += f"; stopped: {plan['stopped']}"
    return rows, summary


def details_table(details: dict[str, Any]) -> list[tuple[str, str]]:
    """The TA-only details as (name, text) rows, nested values written compactly, each capped."""
    rows = []
    for key, value in details.items():
        if key in SHOWN_APART or value in (None, "", [], {}):
            continue
        text = _compact(value)
        if len(text) > MAX_DETAIL_CHARS:
            text = text[:MAX_DETAIL_CHARS] + f" ... ({len(text) - MAX_DETAIL_CHARS} more characters)"
        rows.append((str(key), text))
    return rows


def _compact(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_compact(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def bar(c: CriterionResult, results: list[SubmissionResult]) -> Bar | None:
    """The value against the bar, for a criterion that measured a number against a numeric threshold."""
    value, threshold = _number(c.value), _number(c.threshold)
    if value is None or threshold is None:
        return None
    at_least: bool | None = None
    metric = c.details.get("metric")
    if c.kind == "generalization-gap":
        at_least = False
    elif isinstance(metric, str):
        from autograder.criteria.analysis.metrics import METRICS

        known = METRICS.get(metric)
        at_least = known.higher_is_better if known is not None else None
    values = [v for r in results for o in r.criteria if o.id == c.id and (v := _number(o.value)) is not None]
    return Bar(value=value, bar=threshold, at_least=at_least, cohort=values, chart=strip_chart(value, threshold,
                                                                                               values))


def strip_chart(value: float, threshold: float, cohort: list[float], width: int = 560, height: int = 70) -> Markup:
    """An inline SVG: the cohort's values as grey ticks, the bar as a red line, this student's value as a
    blue dot. Only formatted numbers go into it."""
    points = [value, threshold, *cohort]
    low, high = min(points), max(points)
    if high == low:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad

    def x(v: float) -> str:
        return f"{20 + (v - low) / (high - low) * (width - 40):.1f}"

    ticks = "".join(f'<line x1="{x(v)}" x2="{x(v)}" y1="18" y2="42" stroke="#9a9a9a"/>' for v in cohort)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="value {value:.4g} against the bar {threshold:.4g}">'
           f'<line x1="20" x2="{width - 20}" y1="30" y2="30" stroke="#d0d0d0"/>{ticks}'
           f'<line x1="{x(threshold)}" x2="{x(threshold)}" y1="8" y2="52" stroke="#a3141a" stroke-width="2"/>'
           f'<circle cx="{x(value)}" cy="30" r="6" fill="#1f5fbf"/>'
           f'<text x="20" y="66" font-size="11" fill="#555">{low:.4g}</text>'
           f'<text x="{width - 20}" y="66" font-size="11" fill="#555" text-anchor="end">{high:.4g}</text>'
           f'</svg>')
    return Markup(svg)  # noqa: S704  # numbers formatted above, nothing of a submission's


def evidence(store: Store, result: SubmissionResult, c: CriterionResult,
             current: list[SubmissionResult] | None = None) -> Evidence:
    """One criterion's evidence; `current`: the lab's current results, where the caller has them."""
    from autograder.serve import components

    lab_results = store.latest(result.lab) if current is None else current
    others = {r.student: r for r in lab_results}
    text = str(c.details.get("text") or "")
    code = str(c.details.get("code") or "")
    pairs = []
    for entry in c.details.get("similar_to") or []:
        if not isinstance(entry, dict):
            continue
        other = str(entry.get("student", ""))
        theirs = next((o for o in others[other].criteria if o.id == c.id), None) if other in others else None
        theirs_details = theirs.details if theirs is not None else {}
        if code or "passages" in entry:
            html = components.code_pair(code, str(theirs_details.get("code") or ""), entry.get("passages") or [],
                                        result.student, other)
        else:
            html = components.text_pair(text, str(theirs_details.get("text") or ""), result.student, other)
        how = ", ".join(f"{k} {v:.2f}" for k in ("lexical", "semantic") if isinstance(v := entry.get(k), float))
        if entry.get("by"):
            how = f"{how} (by {entry['by']})" if how else f"by {entry['by']}"
        pairs.append(Pair(student=other, similarity=_number(entry.get("similarity")), how=how, html=html))
    folders = store.artifacts(result)
    notebook = components.notebook(folders["execute"]) if "execute" in folders else None
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"\n... ({len(text) - MAX_TEXT_CHARS:,} more characters not shown)"
    runs, runs_summary = runs_of(c)
    return Evidence(result=result, criterion=c, details=details_table(c.details), bar=bar(c, lab_results),
                    text=text if not pairs else "", pairs=pairs, notebook=notebook, runs=runs,
                    runs_summary=runs_summary)
