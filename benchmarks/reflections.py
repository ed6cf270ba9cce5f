"""What judging written reflections costs: loading the model, one answer, one cohort's originality pass.

Judges every answer of tests/fixtures/reflections.yaml with lab1-mlp's reflection criterion, with the
sentence-embedding model and with keywords only, then runs the cohort-wide copy search on 300 texts
(the corpus answers, each in several lightly varied copies under other names), computed and then as a
later process finds it, with the vectors kept in the store. Appends the medians to
docs/benchmarks.md. Not a test: run on demand (`make bench`).

`--languages` measures the answers' language instead: loading the detector, detecting one answer's
language, and judging the English and Swedish answers of tests/fixtures/reflections_languages.yaml with
each lab's rubric, with the model and with keywords only; it prints what each kind of answer got (the
table in docs/analysis.md) and appends the times as a section of its own.

    python benchmarks/reflections.py [--repeat 3] [--no-write] [--languages]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import nbformat
import yaml

from autograder.criteria import build
from autograder.criteria.analysis import embeddings, language
from autograder.criteria.analysis.originality import find_copies
from autograder.criteria.base import Evidence
from autograder.labs.lab import load_lab
from autograder.notebooks import find_cell
from autograder.store import Store

REPO = Path(__file__).resolve().parents[1]
CORPUS = yaml.safe_load((REPO / "tests" / "fixtures" / "reflections.yaml").read_text(encoding="utf-8"))
LANGUAGES = yaml.safe_load((REPO / "tests" / "fixtures" / "reflections_languages.yaml").read_text(encoding="utf-8"))


def judge_all(lab, spec, released) -> list[float]:
    """Seconds per answer to judge the whole corpus once."""
    times = []
    for answer in CORPUS["answers"]:
        nb = copy.deepcopy(released)
        find_cell(nb, spec.cell).source = answer["text"]
        evidence = Evidence(lab=lab, execution=None, notebook=None, probes=None, labels={}, submitted=nb)
        t = time.perf_counter()
        build(spec).check(evidence)
        times.append(time.perf_counter() - t)
    return times


def cohort(n: int) -> dict[str, str]:
    """n texts: the corpus answers and copies of them with a few words dropped, under new names."""
    rng = random.Random(0)
    texts = [a["text"] for a in CORPUS["answers"]]
    out = {}
    for i in range(n):
        words = texts[i % len(texts)].split()
        for _ in range(min(i // len(texts), len(words) - 1)):  # some answers are empty or a few words
            del words[rng.randrange(len(words))]
        out[f"student{i:03d}"] = " ".join(words)
    return out


def judge_languages() -> tuple[Counter, list[float]]:
    """Every answer of the languages corpus judged once with its lab's rubric: (lab, language, expected,
    got) -> count, and the seconds per answer."""
    counts: Counter = Counter()
    times = []
    for name, entries in LANGUAGES["labs"].items():
        lab = load_lab(name, REPO)
        spec = next(c for c in lab.rubric.criteria if c.kind == "reflection")
        released = nbformat.read(lab.notebook_path, as_version=4)
        for entry in entries:
            nb = copy.deepcopy(released)
            find_cell(nb, spec.cell).source = entry["text"]
            evidence = Evidence(lab=lab, execution=None, notebook=None, probes=None, labels={}, submitted=nb)
            t = time.perf_counter()
            result = build(spec).check(evidence)
            times.append(time.perf_counter() - t)
            counts[(name, entry["language"], entry["expected"], result.status)] += 1
    return counts, times


def outcome_table(counts: Counter) -> str:
    """Per lab and language: pass -> pass / review / fail, fail -> fail / review / pass."""
    lines = ["| lab | language | pass → pass | pass → review | pass → fail (U) | fail → fail | fail → review "
             "| fail → pass |", "|---|---|---|---|---|---|---|---|"]
    for name in LANGUAGES["labs"]:
        for code in ("en", "sv"):
            cells = [counts[(name, code, expected, got)] for expected, got in (
                ("pass", "pass"), ("pass", "review"), ("pass", "fail"), ("fail", "fail"), ("fail", "review"),
                ("fail", "pass"))]
            lines.append(f"| {name} | {code} | " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def languages(args: argparse.Namespace) -> None:
    rows = []
    t = time.perf_counter()
    language.detect("warm up")
    rows.append(("loading the language detector (once per process)", f"{time.perf_counter() - t:.2f} s"))
    answers = [a["text"] for a in CORPUS["answers"]] + [e["text"] for entries in LANGUAGES["labs"].values()
                                                        for e in entries]
    detect_times = []
    for _ in range(args.repeat):
        for text in answers:
            t = time.perf_counter()
            language.detect(text)
            detect_times.append(time.perf_counter() - t)
    rows.append((f"detecting one answer's language (median of {len(answers)} answers, English and Swedish)",
                 f"{statistics.median(detect_times) * 1000:.2f} ms"))
    flood = answers[0] * 20_000
    t = time.perf_counter()
    language.detect(flood)
    rows.append((f"detecting the language of a {len(flood) / 1e6:.0f} MB answer (read in part)",
                 f"{(time.perf_counter() - t) * 1000:.1f} ms"))
    if not embeddings.available():
        raise SystemExit(f"the model is needed for this benchmark: {embeddings.reason()}")
    embeddings.encode(["warm up"])
    tables = {}
    for mode in ("with the model", "keywords only"):
        if mode == "keywords only":
            os.environ["AUTOGRADER_EMBEDDINGS"] = "off"
        per = []
        for _ in range(args.repeat):
            embeddings.reset()
            if mode == "with the model":
                embeddings.encode(["warm up"])
            counts, times = judge_languages()
            per.append(statistics.median(times))
        tables[mode] = outcome_table(counts)
        rows.append((f"judging one answer of the languages corpus, {mode} (median of {len(times)})",
                     f"{statistics.median(per) * 1000:.1f} ms"))
    os.environ.pop("AUTOGRADER_EMBEDDINGS", None)
    for mode, table in tables.items():
        print(f"\nOutcomes, {mode}:\n\n{table}\n")
    _section("Reflections in Swedish and English", "--languages", "the language detector (py3langid) and the "
             "reflection criterion of lab1-mlp, lab2-cnn and lab3-autoencoder on "
             "tests/fixtures/reflections_languages.yaml", rows, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cohort", type=int, default=300)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--languages", action="store_true", help="measure the language detection and the "
                    "English/Swedish corpus instead")
    args = ap.parse_args()
    if args.languages:
        languages(args)
        return

    lab = load_lab("lab1-mlp", REPO)
    spec = next(c for c in lab.rubric.criteria if c.kind == "reflection")
    released = nbformat.read(lab.notebook_path, as_version=4)
    rows = []

    t = time.perf_counter()
    if not embeddings.available():
        raise SystemExit(f"the model is needed for this benchmark: {embeddings.reason()}")
    embeddings.encode(["warm up"])
    rows.append(("loading the model (once per process)", f"{time.perf_counter() - t:.1f} s"))

    semantic = []
    for _ in range(args.repeat):
        embeddings.reset()  # an empty cache, as for a fresh batch; the model load is not timed here
        embeddings.encode(["warm up"])
        semantic.append(statistics.median(judge_all(lab, spec, released)))
    rows.append((f"one answer, with the model (median of {len(CORPUS['answers'])} answers)",
                 f"{statistics.median(semantic) * 1000:.1f} ms"))
    os.environ["AUTOGRADER_EMBEDDINGS"] = "off"
    embeddings.reset()
    keywords = [statistics.median(judge_all(lab, spec, released)) for _ in range(args.repeat)]
    rows.append(("one answer, keywords only", f"{statistics.median(keywords) * 1000:.1f} ms"))
    os.environ.pop("AUTOGRADER_EMBEDDINGS")
    embeddings.reset()
    embeddings.encode(["warm up"])

    texts = cohort(args.cohort)
    pass_times, found = [], 0
    for _ in range(args.repeat):
        embeddings.reset()  # no cached embeddings: as a fresh batch would, after the model is loaded
        embeddings.encode(["warm up"])
        t = time.perf_counter()
        found = len(find_copies(texts))
        pass_times.append(time.perf_counter() - t)
    rows.append((f"copy search over a cohort of {len(texts)} (each answer in about 8 copies: {found} pairs)",
                 f"{statistics.median(pass_times):.1f} s"))

    with tempfile.TemporaryDirectory() as tmp:  # the same pass in a later process: vectors kept in the store
        store = Store(Path(tmp) / "grades.db")
        with embeddings.kept_in(store):
            find_copies(texts)  # the first grading keeps them
            kept_times = []
            for _ in range(args.repeat):
                embeddings.reset()  # a new process: no model, nothing in memory
                t = time.perf_counter()
                find_copies(texts)
                kept_times.append(time.perf_counter() - t)
            loaded = embeddings.loads()
        store.close()
    rows.append((f"the same copy search in a later process, vectors kept in the store (model loads: {loaded})",
                 f"{statistics.median(kept_times):.2f} s"))

    _section("Judging reflections", "", "lab1-mlp's reflection criterion on the corpus of "
             "tests/fixtures/reflections.yaml", rows, args)


def _section(title: str, flags: str, what: str, rows: list[tuple[str, str]], args: argparse.Namespace) -> None:
    """Print the figures as a section of docs/benchmarks.md, and append it there unless --no-write."""
    command = " ".join(filter(None, ["benchmarks/reflections.py", flags, f"--repeat {args.repeat}"]))
    lines = [f"## {title}, {date.today().isoformat()}", "",
             f"`{command}`: {what}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}. Medians of {args.repeat} runs.", "",
             "| what | time |", "|---|---|"] + [f"| {what} | {value} |" for what, value in rows] + [""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
