"""Code originality: fingerprints, the handout taken out, disguised copies caught, independent code left alone,
and the cohort pass on the real store (review for the pair, idempotent, cleared by a new hand-in, a TA's
decision kept)."""

from __future__ import annotations

import hashlib
import random
from itertools import combinations

import nbformat
import pytest
import yaml
from code_copies import DISGUISES, LABS, Code, disguise, solutions, template

from autograder.criteria import build
from autograder.criteria.analysis import code
from autograder.criteria.base import Evidence
from autograder.criteria.code_originality import CodeOriginalitySpec, own_prints
from autograder.errors import ConfigError
from autograder.grading.cohort import cross_check
from autograder.grading.decisions import override
from autograder.labs.lab import load_lab
from autograder.labs.loading import load_model
from autograder.labs.rubric import Rubric, decide
from autograder.results import SubmissionResult
from autograder.store import Store

SPEC = CodeOriginalitySpec(id="code-originality", kind="code-originality")


@pytest.fixture(scope="module")
def labs():
    """The course's labs, each judged by the criterion alone (with its defaults)."""
    out = {}
    for name in LABS:
        lab = load_lab(name)
        lab.rubric = lab.rubric.model_copy(update={"criteria": [SPEC]})
        out[name] = lab
    return out


def judged(lab, code_: Code, spec: CodeOriginalitySpec = SPEC):
    evidence = Evidence(lab=lab, execution=None, notebook=code_.notebook, probes=None, labels={},
                        submitted=code_.notebook, modules=code_.modules)
    return build(spec).check(evidence)


def prints(lab, code_: Code):
    return own_prints(SPEC, judged(lab, code_).details["code"], lab)


def similarity(a: code.Fingerprints, b: code.Fingerprints) -> float:
    return len(a.at.keys() & b.at.keys()) / min(len(a.at), len(b.at))


# --- the rubric entry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "field", "words"), [
    ({"bar": 1.5}, "criteria[0].bar", "less than or equal to 1"),
    ({"bar": 0}, "criteria[0].bar", "greater than 0"),
    ({"k": 2}, "criteria[0].k", "greater than or equal to 3"),
    ({"barr": 0.5}, "criteria[0].barr", "Extra inputs"),
])
def test_a_careless_rubric_entry_names_its_file_and_field(tmp_path, entry, field, words):
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump({"lab": "lab1-mlp", "criteria": [
        {"id": "code-originality", "kind": "code-originality", **entry}]}))
    with pytest.raises(ConfigError) as caught:
        load_model(path, Rubric)
    assert caught.value.field == field and words in caught.value.problem and caught.value.path == path


def test_the_labs_rubrics_use_it_with_the_measured_bar():
    for name in LABS:
        spec = next(c for c in load_lab(name).rubric.criteria if c.kind == "code-originality")
        assert isinstance(spec, CodeOriginalitySpec) and spec.bar == SPEC.bar == 0.6 and spec.required


# --- reading and fingerprinting code ---------------------------------------------------------------------------


def test_names_comments_docstrings_and_layout_do_not_change_the_tokens():
    a = 'def area(w, h):\n    """The area."""\n    # width times height\n    return w * h  # done\n'
    b = "def f(x,\n      y,):\n\n    return x * \\\n        y\n"
    assert [t.text for t in code.tokens(a)] == [t.text for t in code.tokens(b)]
    assert [t.text for t in code.tokens(a)][:8] == ["def", "V", "(", "V", ",", "V", ")", ":"]
    assert all(t.text != "S" for t in code.tokens(a))  # the docstring is dropped, not read as a string


def test_every_shared_run_of_k_plus_window_minus_one_tokens_leaves_a_common_fingerprint():
    rng = random.Random(0)
    k, w = 5, 4
    for _ in range(50):
        shared = [code.Token(rng.choice("abcdefgh"), 1) for _ in range(k + w - 1)]
        one = [code.Token(rng.choice("abcdefgh"), 1) for _ in range(rng.randrange(30))] + shared
        two = shared + [code.Token(rng.choice("abcdefgh"), 1) for _ in range(rng.randrange(30))]
        h1, h2 = code.kgram_hashes(one, k), code.kgram_hashes(two, k)
        assert {h1[i] for i in code.winnow(h1, w)} & {h2[i] for i in code.winnow(h2, w)}
    hashes = code.kgram_hashes([code.Token(str(i), 1) for i in range(200)], k)
    picked = code.winnow(hashes, w)
    assert all(b - a <= w for a, b in zip(picked, picked[1:]))  # one in every window, each once
    assert len(picked) < len(hashes) / 2


def test_magics_shell_lines_and_code_that_does_not_tokenise_are_read_never_crash():
    cell = "%matplotlib inline\n!pip install numpy\nx = compute(1)\nnp.max?\ny = x + 2\n"
    toks = code.tokens(cell, first_line=10)
    assert [t.text for t in toks] == ["V", "=", "V", "(", "N", ")", ";", "V", "=", "V", "+", "N", ";"]
    assert [t.line for t in toks][0] == 12 and toks[-1].line == 14
    broken = "%%bash\necho 'unterminated\ndef f(:\n    return [1, 2\n"
    lines = {t.line for t in code.tokens(broken, 1)}
    assert lines and lines <= {2, 3, 4}
    continued = "msg = ('accuracy %.2f'\n       % acc)\n"  # a `%` line that is not a magic stays code
    assert "%" in [t.text for t in code.tokens(continued)]
    assert code.tokens("\x00\xff\ufffd binary ((( junk")  # read by its lines


# --- the student's code, without the handout -----------------------------------------------------------------


def test_a_hand_in_of_the_handout_alone_has_no_code_of_its_own(labs):
    for name, lab in labs.items():
        result = judged(lab, template(name))
        assert result.status == "pass" and result.details["own_tokens"] == 0, name
        assert result.details["compared"] is False and "Too little code of your own" in result.message
        assert result.details["own_status"] == "pass"


def test_the_handout_is_removed_and_the_students_cells_kept_with_their_place(labs):
    lab = labs["lab1-mlp"]
    sample = solutions("lab1-mlp")["sample_a"]
    result = judged(lab, sample)
    document = result.details["code"]
    cells = [line for line in document.split("\n") if code.HEADER.match(line)]
    answered = [n for n, c in enumerate(sample.notebook.cells, start=1)
                if c.metadata.get("nbgrader", {}).get("grade_id") in ("mlp_forward", "train_model")]
    assert cells == [f"# ---- cell {n} ----" for n in answered]  # the locked cells, unchanged, are not theirs
    assert "import torch" not in document
    assert result.details["own_tokens"] < len(code.document_tokens(document))  # the stubs' signatures are out
    assert result.status == "pass" and "compared with the other students'" in result.message
    # The handout's signature and docstring with one line of the student's: only the runs that line touches count.
    released = template("lab1-mlp").notebook.cells[answered[0] - 1].source
    one_line = released.replace("# YOUR CODE HERE\n    raise NotImplementedError()", "return x")
    assert one_line != released
    mine = judged(lab, Code(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(one_line)])))
    assert 0 < mine.details["own_tokens"] <= 2 * SPEC.k and "Too little code" in mine.message


def test_modules_are_compared_under_their_name(labs):
    lab = labs["lab4-numpy-mlp"]
    result = judged(lab, solutions("lab4-numpy-mlp")["compact"])
    assert result.details["code"].startswith("# ---- module mlp.py ----\n")
    assert result.details["own_tokens"] >= SPEC.min_tokens


# --- what is a copy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lab_name", LABS)
def test_disguised_copies_are_caught_and_independent_solutions_are_not(labs, lab_name):
    lab = labs[lab_name]
    found = {name: prints(lab, c) for name, c in solutions(lab_name).items()}
    assert len(found) >= 4
    for a, b in combinations(found, 2):
        assert similarity(found[a], found[b]) < SPEC.bar, (a, b)
    for name, original in solutions(lab_name).items():
        for how in DISGUISES:
            copy = prints(lab, disguise(lab_name, original, how))
            assert similarity(found[name], copy) >= SPEC.bar, (name, how)


def test_passages_are_the_copied_lines_on_both_sides(labs):
    lab, name = labs["lab4-numpy-mlp"], "lab4-numpy-mlp"
    original = solutions(name)["sample_c"]
    a, b = prints(lab, original), prints(lab, disguise(name, original, "reordered"))
    pair = code.find_code_copies({"a": a, "b": b}, bar=0.5)[0]
    assert (pair.a, pair.b) == ("a", "b") and pair.similarity == 1.0
    doc_a = judged(lab, original).details["code"].split("\n")
    doc_b = judged(lab, disguise(name, original, "reordered")).details["code"].split("\n")
    for (a1, a2), (b1, b2) in pair.passages:
        assert 1 <= a1 <= a2 <= len(doc_a) and 1 <= b1 <= b2 <= len(doc_b)
        mine, theirs = {s.strip() for s in doc_a[a1 - 1:a2]}, {s.strip() for s in doc_b[b1 - 1:b2]}
        # the same code on both sides (reordering moved it, nothing else changed it); at the edges a line
        # that only looks the same once names are set aside (`return params` / `return net`) may join in
        assert len(mine & theirs) >= 0.6 * max(len(mine), len(theirs)), (mine, theirs)
    # the functions came in the other order: passages cross
    assert any(p[0][0] < q[0][0] and p[1][0] > q[1][0] for p in pair.passages for q in pair.passages)
    covered = {n for (a1, a2), _ in pair.passages for n in range(a1, a2 + 1)}
    code_lines = {t.line for t in a.tokens}
    assert len(covered & code_lines) >= 0.8 * a.own_lines  # nearly every line of their own is in a passage


# --- hostile hand-ins -----------------------------------------------------------------------------------------


def test_hostile_hand_ins_are_judged_not_crashed(labs):
    lab = labs["lab1-mlp"]
    new = nbformat.v4
    huge = "x = 1\n" + "y = [" + ", ".join(["1"] * 1_200_000) + "\n"  # ~5 MB, the bracket never closed
    for nb in (new.new_notebook(cells=[new.new_code_cell("def f(:\n  return '''")]),
               new.new_notebook(cells=[new.new_code_cell(huge)]),
               new.new_notebook(cells=[])):
        result = judged(lab, Code(nb))
        assert result.status == "pass"
        assert len(result.details["code"]) <= code.CODE_CAP
    assert judged(lab, Code(new.new_notebook(cells=[new.new_code_cell(huge)]))).details["code_cut"] is True
    junk = bytes(range(256)).decode("latin-1") * 400
    result = judged(labs["lab4-numpy-mlp"], Code(None, {"mlp.py": junk}))
    assert result.status == "pass" and "\x00" not in result.details["code"]
    surrogate = judged(lab, Code(new.new_notebook(cells=[new.new_code_cell("name = 'caf\udce9'\nx = 1")])))
    assert "\udce9" not in surrogate.details["code"] and surrogate.details["code"].count("\n") == 2
    surrogate.details["code"].encode("utf-8")  # storable as it is
    missing = judged(lab, Code(None))  # a notebook lab whose notebook could not be read
    assert missing.status in ("fail", "skipped") and "could not be read" in missing.message


# --- the cohort pass, on the real store ------------------------------------------------------------------------


def record(store: Store, lab, student: str, code_: Code) -> SubmissionResult:
    c = judged(lab, code_)
    digest = hashlib.sha256(c.details["code"].encode()).hexdigest()
    result = SubmissionResult(lab=lab.name, student=student, submission_hash=digest, lab_version="1",
                              rubric_hash="r", verdict=decide([c]), criteria=[c])
    store.record(result)
    return result


def own_code(result: SubmissionResult):
    return next(c for c in result.criteria if c.id == SPEC.id)


def test_the_cohort_pass_sends_the_pair_to_review_and_keeps_names_from_students(tmp_path, labs):
    lab, store = labs["lab2-cnn"], Store(tmp_path / "grades.db")
    sols = solutions("lab2-cnn")
    record(store, lab, "ana", sols["sample_c"])
    record(store, lab, "bo", disguise("lab2-cnn", sols["sample_c"], "all"))
    record(store, lab, "cy", sols["matmul_cols"])
    record(store, lab, "dee", template("lab2-cnn"))
    changed = cross_check(lab, store)
    assert set(changed) == {"ana", "bo"}
    latest = {r.student: r for r in store.latest(lab.name)}
    assert {s: r.verdict for s, r in latest.items()} == {"ana": "review", "bo": "review", "cy": "G", "dee": "G"}
    ana, bo = own_code(latest["ana"]), own_code(latest["bo"])
    assert [m["student"] for m in ana.details["similar_to"]] == ["bo"]
    assert [m["student"] for m in bo.details["similar_to"]] == ["ana"]
    assert ana.details["similar_to"][0]["similarity"] == bo.details["similar_to"][0]["similarity"] >= SPEC.bar
    for me, other in ((ana, bo), (bo, ana)):
        lines_me, lines_other = me.details["code"].split("\n"), other.details["code"].split("\n")
        passages = me.details["similar_to"][0]["passages"]
        assert passages and all(1 <= p["mine"][0] <= p["mine"][1] <= len(lines_me) and
                                1 <= p["theirs"][0] <= p["theirs"][1] <= len(lines_other) for p in passages)
        assert me.status == "review" and "very similar to another student's" in me.message
        assert other.details["similar_to"][0]["student"] not in me.message + me.advice
        assert me.details["own_status"] == "pass"
    mirrored = [(p["theirs"], p["mine"]) for p in bo.details["similar_to"][0]["passages"]]
    assert sorted(mirrored) == sorted((p["mine"], p["theirs"]) for p in ana.details["similar_to"][0]["passages"])
    assert "similar_to" not in own_code(latest["cy"]).details
    assert cross_check(lab, store) == {}  # idempotent: nothing changes a second time


def test_a_new_hand_in_clears_the_pair_and_a_tas_decision_stands(tmp_path, labs):
    lab, store = labs["lab3-autoencoder"], Store(tmp_path / "grades.db")
    sols = solutions("lab3-autoencoder")
    record(store, lab, "ana", sols["sample_d"])
    record(store, lab, "bo", disguise("lab3-autoencoder", sols["sample_d"], "renamed"))
    record(store, lab, "cy", sols["sample_a"])
    record(store, lab, "dee", disguise("lab3-autoencoder", sols["sample_a"], "dead_code"))
    cross_check(lab, store)
    # A TA decides that Cy's is her own; Bo hands in code of his own.
    override(store, lab.name, "cy", SPEC.id, "pass", "Written in the lab session; I saw it.", by="ta")
    record(store, lab, "bo", sols["sample_c"])
    changed = cross_check(lab, store)
    latest = {r.student: r for r in store.latest(lab.name)}
    assert set(changed) == {"ana"}  # Bo's new result was judged afresh; Cy's decision stands as it was
    assert latest["ana"].verdict == "G" and "similar_to" not in own_code(latest["ana"]).details
    assert own_code(latest["ana"]).message == own_code(latest["ana"]).details["own_message"]
    cy = own_code(latest["cy"])
    assert latest["cy"].verdict == "G" and cy.status == "pass" and cy.override is not None
    assert cy.override.was == "review" and cy.details["similar_to"][0]["student"] == "dee"
    assert latest["dee"].verdict == "review"
    assert cross_check(lab, store) == {}


@pytest.mark.slow
def test_the_graded_lab1_cohort_flags_only_the_students_who_share_code(graded_cohort):
    """Through the real pipeline (papermill, the store, the pass after the batch): the students who pass
    wrote their own code; the sample's copycat shares no_reflection's code, and both are told without a name."""
    results, _ = graded_cohort("lab1-mlp")
    by = {s: next(c for c in r.criteria if c.kind == "code-originality") for s, r in results.items()}
    for student in ("good", "flood_output"):
        assert by[student].status == "pass" and "similar_to" not in by[student].details, student
        assert by[student].details["compared"] is True
    copycat = by["copycat"]
    assert copycat.status == "review" and "no_reflection" in [m["student"] for m in copycat.details["similar_to"]]
    for c in by.values():
        for match in c.details.get("similar_to", []):
            assert match["student"] not in c.message + c.advice and match["passages"]


def test_the_terminal_table_explains_a_u_by_its_fail_not_by_a_copy_waiting_for_review():
    """code-originality comes before the reflection in the lab rubrics: a U student whose code also looks
    copied was shown the copy's message as the reason for the U."""
    from autograder.console import first_reason, reasons
    from autograder.results import CriterionResult, SubmissionResult

    criteria = [CriterionResult(id="code-originality", kind="code-originality", status="review",
                                message="Your code is very similar to another student's."),
                CriterionResult(id="reflection", kind="reflection", status="fail",
                                message="The reflection is missing.")]
    result = SubmissionResult(lab="lab1-mlp", student="s", submission_hash="h", lab_version="1", rubric_hash="r",
                              verdict="U", criteria=criteria)
    assert first_reason(result) == "The reflection is missing."
    assert reasons(result) == ["code-originality", "reflection"]  # every criterion still named, in rubric order


def test_validate_lab_does_not_hold_its_own_variants_alike_against_the_solution():
    """validate-lab grades the solution beside the solution with the module templates: their code matches by
    construction, and the cohort pass sent the solution to review (lab2-cnn's validation failed on it)."""
    from autograder.grading.validation import validation_verdict
    from autograder.results import CriterionResult, SubmissionResult

    alike = CriterionResult(id="code-originality", kind="code-originality", status="review", message="Alike.",
                            details={"own_status": "pass", "similar_to": [{"student": "module-templates",
                                                                           "similarity": 1.0, "passages": []}]})
    short = CriterionResult(id="reflection", kind="reflection", status="fail", message="Too short.")

    def result(student: str, *criteria: CriterionResult) -> SubmissionResult:
        return SubmissionResult(lab="lab2-cnn", student=student, submission_hash="h", lab_version="1",
                                rubric_hash="r", verdict="review", criteria=list(criteria))

    assert validation_verdict(result("reference-solution", alike)) == "G"
    assert validation_verdict(result("reference-solution", alike, short)) == "U"  # a real failure still counts
    assert validation_verdict(result("module-templates", alike)) == "review"  # only the solution is spared
    judged_alone = alike.model_copy(update={"details": {"own_status": "review", "similar_to": alike.details[
        "similar_to"]}})
    assert validation_verdict(result("reference-solution", judged_alone)) == "review"  # its own doubt stands
