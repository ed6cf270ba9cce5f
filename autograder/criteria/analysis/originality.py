"""Near-duplicate written answers across a cohort (and against the reference solution).

Two measures, each with its own bar, because they mean different things:

- lexical: the share of 3-word runs two texts have in common (of the shorter text's runs). A copy
  with a few words changed keeps most runs; two answers written independently share almost none.
- semantic: cosine similarity of the whole texts' sentence embeddings, when the model is available.
  Answers to the same prompt are semantically alike anyway, so only a very high value means a copy
  (a paraphrase sentence by sentence).

Calibrated on tests/fixtures/reflections.yaml: copies with a few words changed score 0.71-0.79 lexical
and 0.92-0.99 semantic; independent answers at most 0.08 lexical (0.18 for two keyword lists) and 0.84
semantic.
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from autograder.criteria.analysis import embeddings
from autograder.criteria.analysis.text import containment, shingles, strip_markdown, tokens

LEXICAL_COPY = 0.4
SEMANTIC_COPY = 0.93
MIN_WORDS = 20  # shorter texts (empty, a placeholder, one line) say nothing about copying
REFERENCE = "(reference solution)"


class Similarity(BaseModel):
    lexical: float = Field(description="Share of 3-word runs in common, of the shorter text's runs (0..1).")
    semantic: float | None = Field(None, description="Cosine of whole-text embeddings; None without the model.")

    def flagged(self, lexical: float = LEXICAL_COPY,
                semantic: float = SEMANTIC_COPY) -> list[Literal["lexical", "semantic"]]:
        """The measures at or over their bar."""
        out: list[Literal["lexical", "semantic"]] = ["lexical"] if self.lexical >= lexical else []
        if self.semantic is not None and self.semantic >= semantic:
            out.append("semantic")
        return out


class SimilarPair(BaseModel):
    """Two texts that look copied, one from the other (which way round is not known)."""

    a: str
    b: str = Field(description=f"The other student, or {REFERENCE!r}.")
    similarity: float = Field(description="The highest of the measures that crossed their bar.")
    lexical: float
    semantic: float | None = None
    by: Literal["lexical", "semantic", "both"]


def _runs(text: str, ignore: set) -> set:
    return shingles(tokens(strip_markdown(text))) - ignore


def _vectors(texts: list[str]) -> np.ndarray | None:
    """The texts' vectors (kept ones need no model), or None without the model: words alone then decide."""
    if not texts or not embeddings.available():
        return None
    try:
        return embeddings.encode(texts)
    except embeddings.Unavailable:
        return None


def compare(a: str, b: str, ignore: str = "", semantic: bool = True) -> Similarity:
    """How alike two texts are; word runs of `ignore` (the question, the template) do not count.
    `semantic=False` skips the model (it is loaded on first use, which takes seconds)."""
    skip = shingles(tokens(ignore))
    vectors = _vectors([a, b]) if semantic else None
    return Similarity(lexical=round(containment(_runs(a, skip), _runs(b, skip)), 3),
                      semantic=None if vectors is None else round(float(vectors[0] @ vectors[1]), 3))


def find_copies(
    texts: dict[str, str],
    reference: str | None = None,
    *,
    ignore: str = "",
    lexical: float = LEXICAL_COPY,
    semantic: float = SEMANTIC_COPY,
    min_words: int = MIN_WORDS,
) -> list[SimilarPair]:
    """The pairs of {student: text} (plus the reference, named REFERENCE) that look copied, most alike first.

    Each text is embedded once and compared by one matrix product, so 300 students take seconds.
    Texts under `min_words` words are left out; word runs of `ignore` (the question) do not count.
    """
    names = [s for s, t in texts.items() if len(tokens(t)) >= min_words]
    bodies = [texts[s] for s in names]
    if reference is not None and len(tokens(reference)) >= min_words:
        names.append(REFERENCE)
        bodies.append(reference)
    skip = shingles(tokens(ignore))
    runs = [_runs(t, skip) for t in bodies]
    vectors = _vectors(bodies)
    cosine = None if vectors is None else vectors @ vectors.T
    pairs = []
    for i, j in combinations(range(len(names)), 2):
        sim = Similarity(lexical=round(containment(runs[i], runs[j]), 3),
                         semantic=None if cosine is None else round(float(cosine[i, j]), 3))
        by = sim.flagged(lexical, semantic)
        if not by:
            continue
        a, b = (names[j], names[i]) if names[i] == REFERENCE else (names[i], names[j])
        pairs.append(SimilarPair(
            a=a, b=b, lexical=sim.lexical, semantic=sim.semantic, by="both" if len(by) == 2 else by[0],
            similarity=max(sim.lexical if "lexical" in by else 0.0,
                           sim.semantic if "semantic" in by and sim.semantic is not None else 0.0),
        ))
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b))
