"""Re-judging at course scale: a recorded cohort of lab1-mlp students judged again from the store.

Builds a cohort of N students (default 300) whose execute and probe stages are on record, as a store
holds them after grading: lab1-mlp's good sample notebook is run once for real (local backend), and
each student's hand-in is that notebook with a reflection of its own (sentences drawn from the good
answers of tests/fixtures/reflections.yaml, a sentence of the student's own, and a few copied pairs),
graded once with the run's recorded outputs. Then, in one process, alternating for --repeat rounds:

  (a) a rubric change: every student judged again from the recorded stages, and the originality pass;
  (b) one late hand-in added: one new student graded from recorded stages, and the pass over N+1;
  (c) a rerun with nothing new: every result found on record, and the pass.

Each round starts with the sentence-embedding model and the in-memory vectors forgotten, as a new
`autograder grade` process would; the vectors kept in the store stay. The reflection work of each
phase (the reflection criterion plus the originality pass) is timed apart from the whole. The model's
own load is timed once. Prints a Markdown table; the figures go to docs/benchmarks.md by hand.

    python benchmarks/rejudge.py [--students 300] [--repeat 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import yaml

from autograder.criteria.analysis import embeddings
from autograder.criteria.reflection import Reflection
from autograder.grading import pipeline
from autograder.grading.intake import IntakeSpec, take
from autograder.labs.lab import load_lab
from autograder.notebooks import find_cell
from autograder.sandbox import get_backend
from autograder.store import Store

REPO = Path(__file__).resolve().parents[1]
CORPUS = yaml.safe_load((REPO / "tests" / "fixtures" / "reflections.yaml").read_text(encoding="utf-8"))
GOOD = REPO / "examples" / "submissions" / "lab1-mlp" / "good.ipynb"
COPIED_PAIRS = 3


# A small grammar for reflections on lab1's two themes (harm from overfitting; media and society): each slot
# is chosen on its own, so two students share a 3-word run only where a few choices coincide, as real answers do.
GRAMMAR = {
    "place": ["A loan office", "A hospital triage desk", "A hiring pipeline", "A school admissions office",
              "An insurance company", "A welfare agency", "A police department", "A dermatology clinic",
              "A bank", "A court", "A pharmacy chain", "A city council"],
    "harm": ["refuse", "misdiagnose", "overlook", "wrongly flag", "overcharge", "mislabel", "turn away",
             "penalise"],
    "group": ["older applicants", "people from small towns", "patients with darker skin", "first-time applicants",
              "non-native speakers", "families with irregular incomes", "young drivers", "night-shift workers"],
    "subject": ["my network", "a classifier like mine", "the MLP we trained", "such a model", "our model",
                "this kind of predictor"],
    "failure": ["memorised its training set", "learned the noise instead of the pattern", "fit a narrow sample",
                "only looked good on training data", "never met cases like theirs", "overfitted badly"],
    "media": ["Deepfakes", "Recommendation feeds", "Generated photos", "Synthetic voices", "Automatic moderation",
              "Filter bubbles", "Personalised news apps"],
    "verb": ["can distort", "quietly reshape", "undermine", "flood", "amplify", "narrow"],
    "object": ["what voters see", "the evening news", "trust in recordings", "public debate",
               "the facts people share", "what young readers believe", "election campaigns"],
    "consequence": ["misinformation travels faster than corrections", "nobody knows which clip is real",
                    "communities stop hearing each other", "scams get easier", "real evidence gets dismissed",
                    "outrage pays better than accuracy"],
    "who": ["Engineers", "The team deploying it", "Whoever buys such a system", "Regulators", "We as students",
            "Any hospital"],
    "should": ["ought to test", "must validate", "should audit", "have to monitor", "need to stress-test"],
    "what": ["the model on unseen groups", "every release against a held-out set", "errors by subgroup",
             "predictions after deployment", "the validation curve, not the training one"],
    "curve": ["validation loss", "held-out accuracy", "test error", "validation score"],
    "turn": ["turned upward", "stopped improving", "drifted away from training accuracy", "got worse"],
    "why": ["People it meets later rarely look like the ones it memorised.",
            "Scoring well on data it has already seen proves almost nothing.",
            "Noise in small samples looks like signal to big networks.",
            "Mistakes land on people who never agreed to be tested.",
            "Averaged accuracy hides who actually gets the errors.",
            "Training scores flatter; held-out scores tell the truth.",
            "Memorising quirks is cheap, generalising is the hard part.",
            "Nobody outside the lab sees our tidy validation split.",
            "Every extra parameter gives noise somewhere to hide.",
            "A confident wrong answer can be worse than no answer at all."],
    "lesson": ["so early stopping mattered", "which is exactly what overfitting looks like",
               "and that gap is the warning sign", "so more epochs only hurt", "which surprised me"],
}


def reflections(n: int, seed: int = 0) -> list[str]:
    """n reflections on lab1's themes from GRAMMAR, about 85 words each, each student's own draw; the last
    few are copies of earlier ones with a word changed (the originality pass flags those)."""
    rng = random.Random(seed)
    copies = min(COPIED_PAIRS, n // 8)
    out = []
    for i in range(n - copies):
        g = {k: rng.choice(v) for k, v in GRAMMAR.items()}
        h = {k: rng.choice(v) for k, v in GRAMMAR.items()}  # a second draw, for a second example of harm
        out.append(
            f"{g['place']} could {g['harm']} {g['group']} if {g['subject']} {g['failure']}. "
            f"{h['why']} {h['place']} might likewise {h['harm']} {h['group']}. "
            f"{g['media']} {g['verb']} {g['object']}, and {g['consequence']}. "
            f"{g['who']} {g['should']} {g['what']}. "
            f"{g['why']} "
            f"In my own run the {g['curve']} {g['turn']} after {5 + i % 40} epochs, {g['lesson']}.")
    for k in range(copies):
        words = out[k * 7].split()
        words[5] = "really"
        out.append(" ".join(words))
    return out


def write_cohort(folder: Path, texts: list[str], first: int = 0) -> list[Path]:
    """One notebook per text: the good sample with its reflection cell replaced."""
    nb = nbformat.read(GOOD, as_version=4)
    paths = []
    for i, text in enumerate(texts, start=first):
        find_cell(nb, "reflection").source = text
        path = folder / f"student{i:04d}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


@contextmanager
def recorded(execute_folder: Path, execute_result, probe_folder: Path, probe_report):
    """Every Grader's sandbox stages replaced by the one real run's outputs (copied as a store keeps them):
    how the cohort comes to be on record without running 300 notebooks. Only what a stage's run makes is
    replaced; keys, records and reuse are the Grader's own."""
    made = {"execute": (execute_folder, execute_result), "probe": (probe_folder, probe_report)}
    real_stage = pipeline.Grader._stage

    def stage(self, name, sub, key, model, run):
        def copy(folder: Path):
            source, result = made[name]
            shutil.copytree(source, folder, dirs_exist_ok=True)
            return model.model_validate(result.model_dump())
        return real_stage(self, name, sub, key, model, copy)

    pipeline.Grader._stage = stage  # type: ignore[method-assign]
    try:
        yield
    finally:
        pipeline.Grader._stage = real_stage  # type: ignore[method-assign]


class ReflectionClock:
    """Seconds spent in the reflection criterion and the originality pass, across threads."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._evaluate, self._cross = Reflection.evaluate, pipeline.cross_check

    def _timed(self, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds += time.perf_counter() - t
        return wrapper

    def __enter__(self) -> ReflectionClock:
        Reflection.evaluate = self._timed(self._evaluate)  # type: ignore[method-assign]
        pipeline.cross_check = self._timed(self._cross)
        return self

    def __exit__(self, *exc) -> None:
        Reflection.evaluate = self._evaluate  # type: ignore[method-assign]
        pipeline.cross_check = self._cross


def fresh_process_state() -> None:
    """As a new `grade` process starts: no model, no vectors in memory (the store's stay)."""
    embeddings.reset()


def timed(grader: pipeline.Grader, subs) -> tuple[float, float, list]:
    with ReflectionClock() as clock:
        t = time.perf_counter()
        results = grader.grade_all(subs)
        total = time.perf_counter() - t
    return total, clock.seconds, results


def with_rubric(root: Path, variant: int):
    """The lab with its rubric changed (the reflection's max_words), so every result is judged again."""
    lab = load_lab("lab1-mlp", root)
    criteria = [c.model_copy(update={"max_words": 300 + variant}) if c.kind == "reflection" else c
                for c in lab.rubric.criteria]
    lab.rubric = lab.rubric.model_copy(update={"criteria": criteria})
    return lab


def with_tests_changed(work: Path, variant: int):
    """The lab with a hidden test file edited (a comment added), in a copy of the course: a new lab version,
    so every result is judged again and every student's hidden tests run again (stages stay on record)."""
    root = work / f"course-{variant}"
    if not root.exists():
        for part in ("assignments", "rubrics", "reference"):
            shutil.copytree(REPO / part, root / part, symlinks=True)
    lab = load_lab("lab1-mlp", root)
    hidden = sorted(p for p in lab.test_files() if root in p.parents)[-1]
    hidden.write_text(hidden.read_text() + f"\n# edited {variant}\n")
    return load_lab("lab1-mlp", root)


def load_in_new_process() -> float:
    """Seconds a fresh Python process takes to import and load the model: what a late hand-in graded
    alone pays once, whatever is kept."""
    code = ("import time; t = time.perf_counter(); from autograder.criteria.analysis import embeddings; "
            "assert embeddings.load(), embeddings.reason(); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if not embeddings.available():
        raise SystemExit(f"the model is needed for this benchmark: {embeddings.reason()}")

    work = Path(tempfile.mkdtemp(prefix="rejudge-"))
    try:
        store = Store(work / "grades.db")
        embeddings.remember(store)  # as the grader does with its store
        lab = load_lab("lab1-mlp", REPO)
        backend = get_backend("local")
        spec = IntakeSpec.of(lab.spec)

        print("running the good sample once for real ...", flush=True)
        (work / "real").mkdir()
        real_sub = take("real", write_cohort(work / "real", [reflections(1)[0]])[0], spec)
        real = pipeline.Grader(lab, store, backend, pipeline.Options(jobs=1))
        result, _ = real.grade(real_sub)
        if result.verdict == "error" or set(result.stages) != {"execute", "probe"}:
            raise SystemExit(f"the real run failed: {result.verdict} {result.stages}")
        ex, pr = store.stage(result.stages["execute"]), store.stage(result.stages["probe"])
        assert ex is not None and pr is not None
        from autograder.results import ExecutionResult, ProbeReport

        texts = reflections(args.students + args.repeat)
        (work / "cohort").mkdir()
        paths = write_cohort(work / "cohort", texts[:args.students])
        late_paths = write_cohort(work / "cohort", texts[args.students:], first=args.students)
        subs = [take(p.stem, p, spec) for p in paths]
        late = [take(p.stem, p, spec) for p in late_paths]

        print(f"recording {len(subs)} students (judged once, as at first grading) ...", flush=True)
        t = time.perf_counter()
        stages = (ex.artifacts, ExecutionResult.model_validate(ex.result), pr.artifacts,
                  ProbeReport.model_validate(pr.result))
        with recorded(*stages):
            first = pipeline.Grader(lab, store, backend, pipeline.Options(jobs=args.jobs)).grade_all(subs)
        setup = time.perf_counter() - t
        verdicts = sorted({r.verdict for r in first})
        copies = sum(1 for r in first for c in r.criteria if c.details.get("similar_to"))

        model_load = statistics.median(load_in_new_process() for _ in range(args.repeat))

        rows: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": [], "d": []}
        loads: dict[str, int] = {"a": 0, "b": 0, "c": 0, "d": 0}
        for r in range(args.repeat):
            variant = with_rubric(REPO, r + 1)
            grader = pipeline.Grader(variant, store, backend, pipeline.Options(jobs=args.jobs))
            fresh_process_state()
            before = embeddings.loads()
            total, refl, results = timed(grader, subs)
            loads["a"] += embeddings.loads() - before
            assert all({"execute", "probe"} <= set(x.stages) for x in results), "a stage ran again"
            rows["a"].append((total, refl))

            fresh_process_state()
            embeddings.load()  # (b) with the model loaded: its load is timed once, above
            before = embeddings.loads()
            with recorded(*stages):  # its notebook's own run is not what is measured here
                total, refl, _ = timed(grader, [late[r]])
            rows["b"].append((total, refl))
            loads["b"] += embeddings.loads() - before

            fresh_process_state()
            before = embeddings.loads()
            total, refl, results = timed(grader, [*subs, late[r]])
            loads["c"] += embeddings.loads() - before
            rows["c"].append((total, refl))

            fresh_process_state()
            before = embeddings.loads()
            changed = pipeline.Grader(with_tests_changed(work, r + 1), store, backend, pipeline.Options(jobs=args.jobs))
            total, refl, results = timed(changed, subs)
            changed._close_backend()
            loads["d"] += embeddings.loads() - before
            assert all({"execute", "probe"} <= set(x.stages) for x in results), "a stage ran again"
            rows["d"].append((total, refl))
        store.close()
    finally:
        embeddings.remember(None)
        shutil.rmtree(work, ignore_errors=True)

    def med(phase: str, i: int) -> float:
        return statistics.median(x[i] for x in rows[phase])

    n = args.students
    table = [
        ("(a) rubric change: all students judged again from recorded stages, and the originality pass",
         f"{med('a', 0):.1f} s", f"{med('a', 1):.2f} s", loads["a"]),
        ("(b) one late hand-in added (its stages as its run left them; judged), the pass over the cohort",
         f"{med('b', 0):.2f} s", f"{med('b', 1):.2f} s", loads["b"]),
        ("(c) a rerun with nothing new (every result on record), the pass", f"{med('c', 0):.2f} s",
         f"{med('c', 1):.2f} s", loads["c"]),
        ("(d) a hidden-test change: all students judged again, their hidden tests run again, and the pass",
         f"{med('d', 0):.1f} s", f"{med('d', 1):.2f} s", loads["d"]),
    ]
    lines = [
        f"`benchmarks/rejudge.py --students {n} --repeat {args.repeat} --jobs {args.jobs}`: a recorded cohort of "
        f"{n} lab1-mlp students ({min(COPIED_PAIRS, n // 8)} copied reflections; {copies} results flagged; verdicts "
        f"{', '.join(verdicts)}), {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
        f"Medians of {args.repeat} rounds in one process; each round starts without the model or vectors in "
        "memory (vectors kept in the store stay). Recording the cohort (first judging, which embeds every "
        f"text): {setup:.0f} s. Loading the model in a new process (imports included): "
        f"{model_load:.1f} s; in (b) it is loaded before the clock starts (a late hand-in graded alone pays it "
        "once, as its text is new).", "",
        "| what | whole | reflection work | model loads |", "|---|---|---|---|",
        *[f"| {what} | {whole} | {refl} | {n_loads} |" for what, whole, refl, n_loads in table], ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
