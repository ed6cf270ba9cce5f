"""Code originality: how far apart copies and independent code score, and what the cohort pass costs.

Separation, per lab, with the rubric defaults (`CodeOriginalitySpec`): every pair of independent
solutions (the two each sample generator writes, and tests/fixtures/code_solutions/<lab>/) against every
solution and its disguised copies (renamed, reordered, recommented, reformatted, dead code, all of it;
tests/fixtures/code_copies.py). Also the sample cohorts as committed (examples/submissions/<lab>/): the
pairs at or over the bar.

Cost: a cohort of N students (default 300) of lab2-cnn, the lab with the most code: each student one of
the solutions or a disguised copy, plus a cell of their own, so no two are the same. Each is judged by
the criterion alone (what a grading run adds per student), recorded in a fresh store, then the cohort
pass runs over the store (`grading.cohort.cross_check`: read every current result, fingerprint, count
shared fingerprints, record the changed ones), then once more (nothing changes: the cost of every later
batch). Not a test: run on demand.

    python benchmarks/code_originality.py [--students 300] [--skip-samples]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import platform
import random
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from code_copies import DISGUISES, LABS, Code, disguise, solutions  # noqa: E402

from autograder.criteria import build  # noqa: E402
from autograder.criteria.analysis import code  # noqa: E402
from autograder.criteria.base import Evidence  # noqa: E402
from autograder.criteria.code_originality import CodeOriginalitySpec, handout, own_prints  # noqa: E402
from autograder.grading.cohort import cross_check  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.labs.rubric import decide  # noqa: E402
from autograder.results import SubmissionResult  # noqa: E402
from autograder.store import Store  # noqa: E402

SPEC = CodeOriginalitySpec(id="code-originality", kind="code-originality")


def lab_alone(name: str):
    lab = load_lab(name, REPO)
    lab.rubric = lab.rubric.model_copy(update={"criteria": [SPEC]})
    return lab


def judge(lab, c: Code):
    evidence = Evidence(lab=lab, execution=None, notebook=c.notebook, probes=None, labels={}, submitted=c.notebook,
                        modules=c.modules)
    return build(SPEC).check(evidence)


def prints(lab, c: Code) -> code.Fingerprints:
    return own_prints(SPEC, judge(lab, c).details["code"], lab)


def share(a: code.Fingerprints, b: code.Fingerprints) -> float:
    return len(a.at.keys() & b.at.keys()) / max(1, min(len(a.at), len(b.at)))


def separation(name: str) -> dict:
    lab = lab_alone(name)
    sols = solutions(name)
    found = {s: prints(lab, c) for s, c in sols.items()}
    independent = [(share(found[a], found[b]), a, b) for a, b in combinations(found, 2)]
    copies = [(share(found[s], prints(lab, disguise(name, c, how))), s, how) for s, c in sols.items()
              for how in DISGUISES]
    by_disguise = {how: min(v for v, _, h in copies if h == how) for how in DISGUISES}
    return {"lab": name, "solutions": len(sols), "independent": max(independent), "copy": min(copies),
            "by_disguise": by_disguise, "tokens": {s: f.own_tokens for s, f in found.items()}}


def sample_pairs(name: str) -> list[tuple[float, str, str]]:
    """The committed sample cohort's pairs at or over the bar."""
    lab = lab_alone(name)
    cells = list(handout(lab, SPEC.k)[0])
    found = {}
    for path in sorted((REPO / "examples" / "submissions" / name).iterdir()):
        if path.suffix == ".zip":
            continue
        folder = path if path.is_dir() else None
        notebooks = sorted(folder.glob("*.ipynb")) if folder else [path]
        modules = {m: (folder / m).read_text(encoding="utf-8", errors="replace")
                   for m in lab.spec.files.student if folder and (folder / m).is_file()}
        nb = nbformat.read(notebooks[0], as_version=4) if notebooks else None
        document, _ = code.student_code(nb, modules, cells)
        fp = own_prints(SPEC, document, lab)
        if fp.own_tokens >= SPEC.min_tokens:
            found[path.stem] = fp
    return [(p.similarity, p.a, p.b) for p in code.find_code_copies(found, SPEC.bar)]


def cohort(n: int, seed: int = 0) -> list[Code]:
    """N distinct students of lab2-cnn: solutions and disguised copies, each with a cell of its own."""
    name = "lab2-cnn"
    rng = random.Random(seed)
    variants = [c for s, c in solutions(name).items()]
    variants += [disguise(name, c, how) for c in list(variants) for how in DISGUISES]
    out = []
    for i in range(n):
        c = copy.deepcopy(variants[i % len(variants)])
        own = "\n".join(f"v{i}_{j} = {rng.randrange(1000)} * np.ones({rng.randrange(1, 9)}) + {j}"
                        for j in range(rng.randrange(3, 12)))
        c.notebook.cells.append(nbformat.v4.new_code_cell(f"print('student {i}')\n{own}"))
        out.append(c)
    return out


def cost(n: int) -> dict:
    lab = lab_alone("lab2-cnn")
    students = cohort(n)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "grades.db")
        t = time.perf_counter()
        results = []
        for i, c in enumerate(students):
            r = judge(lab, c)
            digest = hashlib.sha256(r.details["code"].encode()).hexdigest()
            results.append(SubmissionResult(lab=lab.name, student=f"s{i:03d}", submission_hash=digest,
                                            lab_version="1", rubric_hash="r", verdict=decide([r]), criteria=[r]))
        judged = time.perf_counter() - t
        for r in results:
            store.record(r)
        t = time.perf_counter()
        changed = cross_check(lab, store)
        first = time.perf_counter() - t
        t = time.perf_counter()
        again = cross_check(lab, store)
        second = time.perf_counter() - t
    return {"students": n, "judge_each_ms": 1000 * judged / n, "pass_s": first, "again_s": second,
            "to_review": len(changed), "changed_again": len(again)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=300)
    ap.add_argument("--skip-samples", action="store_true")
    args = ap.parse_args()
    print(f"code-originality defaults: k={SPEC.k}, window={SPEC.window}, bar={SPEC.bar}, min_tokens={SPEC.min_tokens}")
    print(f"{platform.python_version()} on {platform.machine()}, {platform.processor() or platform.system()}")
    print("\n| lab | solutions | max independent (pair) | min copy (solution, disguise) |")
    print("|---|---|---|---|")
    low, high = 1.0, 0.0
    for name in LABS:
        s = separation(name)
        ind, cop = s["independent"], s["copy"]
        low, high = min(low, cop[0]), max(high, ind[0])
        print(f"| {name} | {s['solutions']} | {ind[0]:.2f} ({ind[1]}, {ind[2]}) | {cop[0]:.2f} ({cop[1]}, {cop[2]}) |")
        print("    lowest copy by disguise: " + ", ".join(f"{h} {v:.2f}" for h, v in s["by_disguise"].items()))
    print(f"\nall labs: independent at most {high:.2f}, copies at least {low:.2f}; bar {SPEC.bar}")
    if not args.skip_samples:
        print("\nsample cohorts as committed, pairs at or over the bar:")
        for name in LABS:
            pairs = sample_pairs(name)
            print(f"  {name}: " + (", ".join(f"{a}~{b} {v:.2f}" for v, a, b in pairs) or "none"))
    c = cost(args.students)
    print(f"\ncohort of {c['students']} (lab2-cnn): judging {c['judge_each_ms']:.1f} ms a student; cohort pass "
          f"{c['pass_s']:.2f} s ({c['to_review']} sent to review), again {c['again_s']:.2f} s "
          f"({c['changed_again']} changed)")


if __name__ == "__main__":
    main()
