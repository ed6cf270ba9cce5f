"""The cohort report: one HTML page that shows course staff how a lab went (`autograder report LAB`).

Self-contained (CSS and PNG figures inline, no script, no network), so it opens offline, from a share
or a mail attachment. It is for staff: it names students and quotes their messages, every one escaped
(the sections are gathered here as plain data; templates/report.html lays them out, autoescaping).
Of a criterion's details (the TA's evidence) it reads only named numeric keys, never dumps them.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard
from urllib.parse import quote

import numpy as np

from autograder.criteria.metric import AccuracySpec, GapSpec, MetricSpec
from autograder.criteria.runtime import RuntimeSpec
from autograder.errors import UserError
from autograder.labs.lab import Lab
from autograder.publish import html
from autograder.publish.feedback import file_stems
from autograder.results import CriterionResult, ExecutionResult, SubmissionResult, Verdict
from autograder.store import Store

VERDICTS: tuple[Verdict, ...] = ("G", "U", "review", "error")
STATUSES = ("pass", "fail", "review", "error", "skipped")
COLOURS = {"pass": "#2e8b57", "fail": "#c0392b", "review": "#e0a000", "error": "#7f7f7f", "skipped": "#c8c8c8",
           "G": "#2e8b57", "U": "#c0392b"}
SLOWEST = 10
MAX_LABELS = 20  # students named beside their point in a scatter; more would be unreadable


def write_report(lab: Lab, store: Store, out: Path, feedback_dir: str | None = "feedback") -> Path:
    """Write the cohort report of the lab's current results to `out` and return it.

    `feedback_dir`: where `autograder feedback` wrote the students' pages, relative to `out`'s folder; the
    review queue links each student to its page there (named by feedback.file_stems), or nowhere if None."""
    results = store.latest(lab.name)
    if not results:
        known = ", ".join(store.labs()) or "none"
        raise UserError(f"no results for lab {lab.name!r} in {store.path}",
                        f"grade it first (autograder grade {lab.name} SUBMISSIONS); labs with results: {known}")
    text = render(lab, results, feedback_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")  # a reader never sees half a page
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def render(lab: Lab, results: list[SubmissionResult], feedback_dir: str | None = "feedback") -> str:
    """The whole page for these results, judged against the lab's current rubric."""
    return html.render("report.html", title=f"{lab.name}: cohort report", lab=lab.name,
                       overview=_overview(lab, results), verdicts=_verdicts(results),
                       metric=_hidden_metric(lab, results), gap=_generalization(lab, results),
                       criteria=_criteria(results), queue=_review_queue(results, feedback_dir),
                       probe_failures=_probe_failures(results), resources=_resources(lab, results),
                       compute=_compute(results), leaderboard=getattr(lab.rubric, "leaderboard", None) is not None)


# -- sections ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    students: int
    first: str  # when the first and last were graded, UTC
    last: str
    version: str
    stale: int  # graded with another lab version or rubric


def _overview(lab: Lab, results: list[SubmissionResult]) -> Overview:
    stale = [r for r in results if r.rubric_hash != lab.rubric_hash or r.lab_version != lab.version]
    return Overview(len(results), f"{min(r.graded_at for r in results):%Y-%m-%d %H:%M}",
                    f"{max(r.graded_at for r in results):%Y-%m-%d %H:%M}", lab.version, len(stale))


@dataclass(frozen=True)
class Verdicts:
    counts: dict[str, int]
    shares: dict[str, str]
    total: int
    names: tuple[str, ...] = VERDICTS


def _verdicts(results: list[SubmissionResult]) -> Verdicts:
    counts = Counter(r.verdict for r in results)
    return Verdicts({v: counts[v] for v in VERDICTS}, {v: _percent(counts[v], len(results)) for v in VERDICTS},
                    len(results))


@dataclass
class Bar:
    """The rubric's bar on one metric: which criterion, its threshold, and which side passes."""

    id: str
    name: str  # the metric in words, e.g. "accuracy"
    threshold: float
    higher_is_better: bool
    split: str

    @property
    def rule(self) -> str:
        return (f"at least {self.threshold:g} passes (min; higher is better)" if self.higher_is_better
                else f"at most {self.threshold:g} passes (max; lower is better)")


def metric_bar(lab: Lab) -> Bar | None:
    """The rubric's first accuracy or metric criterion measured on a hidden split."""
    for spec in lab.rubric.criteria:
        if (spec.kind in ("accuracy", "metric") and isinstance(spec, (MetricSpec, AccuracySpec))
                and lab.spec.splits.get(spec.split) == "hidden"):
            higher = spec.max is None
            threshold = spec.min if higher else spec.max
            assert threshold is not None  # a spec gives exactly one of min and max
            return Bar(spec.id, spec.describe(), float(threshold), higher, spec.split)
    return None


def gap_bar(lab: Lab) -> Bar | None:
    for spec in lab.rubric.criteria:
        if spec.kind == "generalization-gap" and isinstance(spec, GapSpec):
            return Bar(spec.id, spec.describe(), float(spec.max), spec.measured().higher_is_better, spec.test)
    return None


@dataclass(frozen=True)
class MetricSection:
    """The hidden metric against its bar: how many were measured and reach it, their spread, the histogram."""

    bar: Bar
    missing: str  # who has no value, in words ("" when everyone has one)
    measured: int = 0
    passing: int = 0
    median: float = math.nan
    low: float = math.nan
    high: float = math.nan
    figure: str = ""


def _hidden_metric(lab: Lab, results: list[SubmissionResult]) -> MetricSection | None:
    bar = metric_bar(lab)
    if bar is None:
        return None
    values = [v for r in results if (v := _number(_criterion(r, bar.id), "value")) is not None]
    missing = _missing(len(results) - len(values), "without a value (their run or probe failed)")
    if not values:
        return MetricSection(bar, missing)
    passing = sum(v >= bar.threshold if bar.higher_is_better else v <= bar.threshold for v in values)
    return MetricSection(bar, missing, len(values), passing, statistics.median(values), min(values), max(values),
                         _histogram(values, bar))


@dataclass(frozen=True)
class GapSection:
    """Training against hidden-set values per student, and the scatter ("" when no one has both)."""

    bar: Bar
    missing: str
    figure: str = ""


def _generalization(lab: Lab, results: list[SubmissionResult]) -> GapSection | None:
    bar = gap_bar(lab)
    if bar is None:
        return None
    points: list[tuple[str, float, float, str]] = []
    for r in results:
        c = _criterion(r, bar.id)
        train, test = _number(c, "train"), _number(c, "test")
        if c is not None and train is not None and test is not None:
            points.append((r.student, train, test, c.status))
    missing = _missing(len(results) - len(points), "without values")
    return GapSection(bar, missing, _scatter(points, bar) if points else "")


@dataclass(frozen=True)
class CriterionCounts:
    id: str
    kind: str
    counts: list[int]  # per status, in STATUSES' order
    decided: int  # by a teacher
    rate: str  # pass rate, in words


@dataclass(frozen=True)
class CriteriaSection:
    rows: list[CriterionCounts]
    figure: str  # "" when there are no criteria
    statuses: tuple[str, ...] = STATUSES


def _criteria(results: list[SubmissionResult]) -> CriteriaSection:
    ids: list[str] = []
    kinds: dict[str, str] = {}
    for r in results:
        for c in r.criteria:
            if c.id not in kinds:
                ids.append(c.id)
                kinds[c.id] = c.kind
    counts: dict[str, Counter[str]] = {i: Counter() for i in ids}
    decided: Counter[str] = Counter()
    for r in results:
        for c in r.criteria:
            counts[c.id][c.status] += 1
            decided[c.id] += c.override is not None
    rows = [CriterionCounts(i, kinds[i], [counts[i][s] for s in STATUSES], decided[i],
                            _percent(counts[i]["pass"], sum(counts[i].values()))) for i in ids]
    return CriteriaSection(rows, _status_bars(ids, counts) if ids else "")


def review_queue(results: list[SubmissionResult]) -> list[tuple[SubmissionResult, list[CriterionResult]]]:
    """Results a human must look at, each with the criteria that hold it: verdict review or error, or a
    criterion under review (as `autograder review` lists them); review first, then error, then U."""
    order = {"review": 0, "error": 1, "U": 2, "G": 3}
    queue = []
    for r in results:
        held = [c for c in r.criteria if c.status == "review"]
        if r.verdict == "error":
            held += [c for c in r.criteria if c.status == "error"] or [c for c in r.criteria if c.status == "skipped"]
        if r.verdict in ("review", "error") or held:
            queue.append((r, held))
    return sorted(queue, key=lambda item: (order[item[0].verdict], item[0].student))


@dataclass(frozen=True)
class QueueItem:
    """One submission waiting for a human, as the report lists it."""

    student: str
    href: str  # its feedback page, "" when the report links none
    verdict: str
    held: list[CriterionResult]  # the page reads their id, status and message only
    run: ExecutionResult | None  # when the run did not end well
    notes: list[str] = field(default_factory=list)


def _review_queue(results: list[SubmissionResult], feedback_dir: str | None) -> list[QueueItem]:
    stems = file_stems(r.student for r in results)  # as `autograder feedback` names the pages of this cohort
    return [QueueItem(r.student, feedback_link(feedback_dir, stems[r.student]) if feedback_dir is not None else "",
                      r.verdict, held, r.execution if r.execution is not None and r.execution.status != "ok" else None,
                      list(r.notes))
            for r, held in review_queue(results)]


@dataclass(frozen=True)
class ProbeFailure:
    student: str
    probe: str
    shown: str  # what the student was shown
    whole: str  # the whole text, held back from them


def _probe_failures(results: list[SubmissionResult]) -> list[ProbeFailure]:
    """Staff only: the whole text of each failed probe, where the student's message held it back
    (a hidden probe's, or one raised once hidden inputs were in reach of the student's code)."""
    return [ProbeFailure(r.student, name, st.error, st.detail)
            for r in sorted(results, key=lambda r: r.student) if r.probes is not None
            for name, st in r.probes.probes.items() if st.status == "failed" and st.detail and st.detail != st.error]


def feedback_link(feedback_dir: str, stem: str) -> str:
    """Relative URL of the feedback page `stem`.html in `feedback_dir` (percent-encoded, so it stays one name)."""
    folder = quote(feedback_dir.rstrip("/"), safe="/")
    return f"{folder}/{quote(stem, safe='')}.html" if folder else f"{quote(stem, safe='')}.html"


@dataclass(frozen=True)
class Spread:
    median: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        return cls(statistics.median(values), max(values)) if values else None


@dataclass(frozen=True)
class SlowRun:
    student: str
    status: str
    seconds: float
    memory: str  # peak MiB, "-" when not measured
    verdict: str


@dataclass(frozen=True)
class ResourcesSection:
    timeout: float  # the lab's limits: seconds per run, MiB of memory
    memory: float
    budget: float | None  # the rubric's run-time bar, when it has one
    missing: str
    seconds: Spread | None
    memory_used: Spread | None
    figure: str
    slowest: list[SlowRun]


def _resources(lab: Lab, results: list[SubmissionResult]) -> ResourcesSection | None:
    runs = [(r, r.execution) for r in results if r.execution is not None]
    seconds = [run.duration_s for _, run in runs if _finite(run.duration_s)]
    memory = [run.peak_memory_mb for _, run in runs if _finite(run.peak_memory_mb)]
    if not seconds and not memory:
        return None
    limits = lab.spec.limits
    budget = next((float(s.max_seconds) for s in lab.rubric.criteria
                   if s.kind == "runtime" and isinstance(s, RuntimeSpec) and s.cell is None), None)
    seconds_bar = ("the rubric's bar", budget) if budget is not None else ("the run's limit", float(limits.timeout))
    memory_bar = ("the memory limit", int(limits.memory) / 1024**2)
    slowest = sorted(runs, key=lambda pair: pair[1].duration_s, reverse=True)[:SLOWEST]
    return ResourcesSection(
        timeout=float(limits.timeout), memory=int(limits.memory) / 1024**2, budget=budget,
        missing=_missing(len(results) - len(runs), "without a recorded run"),
        seconds=Spread.of(seconds), memory_used=Spread.of(memory),
        figure=_resource_histograms(seconds, memory, seconds_bar, memory_bar),
        slowest=[SlowRun(r.student, run.status, run.duration_s, _cell(run.peak_memory_mb), r.verdict)
                 for r, run in slowest])


@dataclass(frozen=True)
class ComputeSection:
    """What grading the cohort cost (results.Compute summed): CPU- and GPU-seconds, the largest peaks."""

    counted: int  # results with a recorded cost
    missing: str
    runs: int
    wall_total: float
    cpu_total: float | None  # None: no result measured CPU time
    cpu: Spread | None  # per result: median and most
    gpu_total: float
    gpu: Spread | None
    peak_memory: float | None  # MiB, the largest over the cohort
    peak_gpu_memory: float | None
    over_budget: int  # results failed by the course's GPU budget (`compute-budget`)


def _compute(results: list[SubmissionResult]) -> ComputeSection | None:
    costs = [r.compute for r in results if r.compute is not None]
    if not costs:
        return None
    cpu = [c.cpu_s for c in costs if c.cpu_s is not None]
    gpu = [c.gpu_s for c in costs]
    peaks = [c.peak_memory_mb for c in costs if c.peak_memory_mb is not None]
    gpu_peaks = [c.peak_gpu_memory_mb for c in costs if c.peak_gpu_memory_mb is not None]
    return ComputeSection(
        counted=len(costs), missing=_missing(len(results) - len(costs), "graded before costs were recorded"),
        runs=sum(c.runs for c in costs), wall_total=sum(c.wall_s for c in costs),
        cpu_total=sum(cpu) if cpu else None, cpu=Spread.of(cpu), gpu_total=sum(gpu),
        gpu=Spread.of(gpu) if any(gpu) else None, peak_memory=max(peaks) if peaks else None,
        peak_gpu_memory=max(gpu_peaks) if gpu_peaks else None,
        over_budget=sum(any(c.id == "compute-budget" and c.status == "fail" for c in r.criteria) for r in results))


# -- figures ----------------------------------------------------------------------------------------------------


def _figure(width: float = 7, height: float = 3.6):
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, no GUI backend

    return Figure(figsize=(width, height))


def _histogram(values: list[float], bar: Bar) -> str:
    fig = _figure()
    ax = fig.subplots()
    low, high, log = _axis(values + [bar.threshold], not bar.higher_is_better)
    bins = _bins(low, high, bar.threshold, log, int(min(30, max(8, math.sqrt(len(values)) * 2))))
    low, high = bins[0], bins[-1]
    ax.hist(values, bins=bins, color="#4a74a8", edgecolor="white")
    ax.axvline(bar.threshold, color=COLOURS["fail"], linewidth=2)
    if bar.higher_is_better:
        ax.axvspan(low, bar.threshold, color=COLOURS["fail"], alpha=0.08)
    else:
        ax.axvspan(bar.threshold, high, color=COLOURS["fail"], alpha=0.08)
    if log:
        ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_title(f"the bar: {bar.rule}", fontsize=9)
    ax.set_xlabel(f"{bar.name} on the hidden {bar.split} set" + (" (log scale)" if log else ""))
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return html.figure_data_uri(fig)


def _scatter(points: list[tuple[str, float, float, str]], bar: Bar) -> str:
    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    low, high, log = _axis([p[1] for p in points] + [p[2] for p in points], not bar.higher_is_better)
    xs = np.geomspace(low, high, 200) if log else np.linspace(low, high, 2)
    shift = -bar.threshold if bar.higher_is_better else bar.threshold
    ax.plot(xs, xs, color="#999", linestyle=":", linewidth=1, label="no gap (y = x)")
    ax.plot(xs, xs + shift, color=COLOURS["fail"], linewidth=1.5,
            label=f"largest gap that passes ({bar.threshold:g})")
    if bar.higher_is_better:
        ax.fill_between(xs, low, xs + shift, color=COLOURS["fail"], alpha=0.1, label="overfitting")
    else:
        ax.fill_between(xs, xs + shift, high, color=COLOURS["fail"], alpha=0.1, label="overfitting")
    for status in STATUSES:
        mine = [p for p in points if p[3] == status]
        if mine:
            ax.scatter([p[1] for p in mine], [p[2] for p in mine], color=COLOURS[status], edgecolor="black",
                       linewidth=0.4, s=36, zorder=3, label=status)
    for student, x, y, _ in [p for p in points if p[3] != "pass"][:MAX_LABELS]:
        ax.annotate(_plain(student), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7,
                    parse_math=False)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    scale = " (log scale)" if log else ""
    ax.set_xlabel(f"{bar.name} on the training data{scale}")
    ax.set_ylabel(f"{bar.name} on the hidden {bar.split} set{scale}")
    ax.legend(loc="best", fontsize=8)
    return html.figure_data_uri(fig)


def _status_bars(ids: list[str], counts: dict[str, Counter]) -> str:
    fig = _figure(7, 0.45 * len(ids) + 1.2)
    ax = fig.subplots()
    left = np.zeros(len(ids))
    totals = np.array([max(1, sum(counts[i].values())) for i in ids], dtype=float)
    for status in STATUSES:
        share = np.array([counts[i][status] for i in ids]) / totals
        if share.any():
            ax.barh(range(len(ids)), share, left=left, color=COLOURS[status], label=status)
            left += share
    ax.set_yticks(range(len(ids)), [_plain(i) for i in ids], fontsize=8, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of students")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(STATUSES), fontsize=8, frameon=False)
    return html.figure_data_uri(fig)


def _resource_histograms(seconds: list[float], memory: list[float], seconds_bar: tuple[str, float],
                         memory_bar: tuple[str, float]) -> str:
    fig = _figure(9, 3.2)
    for ax, values, (name, bar), label in zip(fig.subplots(1, 2), (seconds, memory), (seconds_bar, memory_bar),
                                              ("run time (s)", "peak memory (MiB)"), strict=True):
        if values:
            # From 0 to past the limit, so the distance to it shows.
            ax.hist(values, bins=np.linspace(0, max(max(values), bar) * 1.04, 31), color="#4a74a8", edgecolor="white")
            ax.axvline(bar, color=COLOURS["fail"], linewidth=1.5, label=f"{name}: {bar:g}")
            ax.legend(fontsize=8)
            ax.yaxis.get_major_locator().set_params(integer=True)
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("students")
    return html.figure_data_uri(fig)


# -- helpers ----------------------------------------------------------------------------------------------------


def _criterion(result: SubmissionResult, criterion: str) -> CriterionResult | None:
    return next((c for c in result.criteria if c.id == criterion), None)


def _number(c: CriterionResult | None, key: str) -> float | None:
    """A finite number from a criterion: its value, or one named key of its details (never the rest)."""
    if c is None:
        return None
    v = c.value if key == "value" else c.details.get(key)
    return float(v) if _finite(v) else None


def _finite(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _axis(values: list[float], errors: bool) -> tuple[float, float, bool]:
    """Axis limits around the values with a margin (never empty), and whether to use a log scale: for errors
    (lower is better, unbounded) that span a decade, as one student's error 15 times the others' would
    squash them into a corner."""
    low, high = min(values), max(values)
    if errors and low > 0 and high / low > 10:
        return low / 1.3, high * 1.3, True
    pad = (high - low) * 0.06 or max(abs(high) * 0.05, 1e-3)
    return low - pad, high + pad, False


def _bins(low: float, high: float, edge: float, log: bool, n: int) -> np.ndarray:
    """About n bin edges over [low, high], one of them on `edge` (the bar), so no bin holds both sides."""
    if log:
        return np.exp(_bins(math.log(low), math.log(high), math.log(edge), False, n))
    step = (high - low) / n
    return edge + step * np.arange(math.floor((low - edge) / step), math.ceil((high - edge) / step) + 1)


def _plain(text: str, width: int = 24) -> str:
    """Untrusted text for a figure: no control characters, short."""
    text = html.strip_ansi(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _percent(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _cell(v: float | None) -> str:
    return f"{v:.0f}" if _finite(v) else "-"


def _missing(n: int, what: str) -> str:
    """' 2 students without a value.': who a figure leaves out, and why."""
    return f" {n} {'student' if n == 1 else 'students'} {what}." if n else ""
