"""The written reflection: written, in the student's own words, long enough, on the rubric's themes.

The answer is a notebook cell (`source: cell`) or the student's written report (`source: report`: the
lab's `files.report`, PDF, Markdown or text, or one section of it by heading); see documents.py for how
a report is read. The student is told which part of the report was read and how many words it has.

In order: not written (only the placeholder) or only the question/template pasted back, or the question
lightly reworded -> fail; too short or too long -> fail; a list of keywords or word salad -> review;
nearly the reference solution's reflection -> review; fewer themes covered than needed -> fail, unless
that judgement is unsure, then review (below).

A theme is covered when one of its keywords is in the answer, or (with the sentence-embedding model)
when a sentence of the answer is close in meaning to the theme's description or one of its examples.
Without the model (package missing, or AUTOGRADER_EMBEDDINGS=off) keywords alone decide, and the
result says so. Thresholds are calibrated on tests/fixtures/reflections.yaml and
tests/fixtures/reflections_languages.yaml.

The answer's language is detected (analysis/language.py) and recorded in details["language"]; a theme's
examples may be given per language (`{en: [...], sv: [...]}`), and an answer is matched against those of
its language and English. A U only when sure: a themes-missing result becomes `review`, with the reason in
details["uncertain"] and "themes-missing" kept as details["reason"], when the themes were checked by
keywords alone, when the answer's language is unsure or one the embedding model is not calibrated for
(embeddings.CALIBRATED_LANGUAGES), or when a missed theme's closest sentence scores within `theme_band`
below `theme_similarity`. The sure fails (empty, template, near-template, too short, too long) stay fail.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autograder.criteria import register
from autograder.criteria.analysis import embeddings, language, originality
from autograder.criteria.analysis.documents import (
    Document,
    ReportFile,
    find_section,
    markdown_headings,
    normalise,
    read_document,
)
from autograder.criteria.analysis.text import (
    WORD,
    blank,
    echoed_spans,
    keyword_pattern,
    sentences,
    share_from,
    stop_share,
    strip_markdown,
    tokens,
)
from autograder.criteria.base import Criterion, CriterionSpec, Evidence, EvidenceMissing, LabProblem, Reference
from autograder.labs.spec import REPORT_SUFFIXES, Slug
from autograder.notebooks import find_cell, load_notebook
from autograder.results import CriterionResult, Status

if TYPE_CHECKING:
    from collections.abc import Iterator

    from autograder.labs.lab import Lab

__all__ = ["WORD", "Reflection", "ReflectionSpec", "Theme", "find_cell", "reference_text", "strip_markdown",
           "template_text"]

ANSWER_CAP = 5000  # characters of the answer kept in the result for the TA
# Characters of the answer that are analysed at all: a reflection is a few thousand; a hostile 20 MB
# cell would otherwise mean embedding some 200,000 sentences (about 10 ms each on two cores).
ANALYSED_CAP = 20_000
# Stuffing: the corpus's prose (English and Swedish) has 39-50 % function words and at most 6 % theme
# keywords; its keyword lists and word salad have 0-18 % and 27-60 %.
MIN_FUNCTION_WORDS = 0.25
MAX_KEYWORD_SHARE = 0.2
STUFFING_MIN_WORDS = 20  # shorter texts are judged by their length, not their style


class Theme(BaseModel):
    """Something the reflection must discuss."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    description: str = Field(min_length=1, description="Shown to a student who misses the theme; also matched "
                             "by meaning.")
    keywords: list[str] = Field(default_factory=list, description="English and Swedish in one list; whole words, "
                                "any case; a trailing * takes any ending (övertränin*), a space also matches a hyphen.")
    examples: list[str] | dict[str, list[str]] = Field(
        default_factory=list, description="Sentences a good answer might contain, matched by meaning, never shown. "
        "A description alone matches poorly: give four to eight. A list is English; a mapping gives them per "
        "language, by ISO 639-1 code ({en: [...], sv: [...]}): an answer is matched against its language's and "
        "English's.")

    @field_validator("examples")
    @classmethod
    def _languages(cls, examples: list[str] | dict[str, list[str]]) -> list[str] | dict[str, list[str]]:
        if isinstance(examples, dict):
            if not examples:
                raise ValueError("examples is an empty mapping: give a list (English) or {en: [...], sv: [...]}")
            for code in examples:
                if code in language.MISTAKEN or code.lower() in language.NAMES and code != code.lower():
                    meant = language.MISTAKEN.get(code, code.lower())
                    raise ValueError(f"examples: {code!r} is not the language code of {language.name(meant)}: "
                                     f"write {meant!r} (ISO 639-1 codes, lower case)")
                if code not in language.NAMES or code == language.UNKNOWN:
                    raise ValueError(f"examples: unknown language code {code!r}: use ISO 639-1 codes such as en "
                                     "(English), sv (Swedish), de (German)")
        return examples

    def examples_for(self, code: str | None) -> list[str]:
        """The examples an answer in language `code` is matched against: English's and its own; all of
        them when its language is not known for sure (None)."""
        if isinstance(self.examples, list):
            return list(self.examples)
        if code is None:
            return [e for group in self.examples.values() for e in group]
        return [*self.examples.get("en", []), *(self.examples.get(code, []) if code != "en" else [])]


class ReflectionSpec(CriterionSpec):
    kind: Literal["reflection"]
    source: Literal["cell", "report"] = Field(
        "cell", description="Where the answer is: a notebook cell (`cell`), or the written report that lab.yaml names "
        "under files.report (`report`: report.pdf, report.md or report.txt).")
    cell: str = Field("reflection", description="nbgrader grade_id (or cell tag) of the answer cell (source: cell).")
    section: str | None = Field(
        None, min_length=1, description="source: report: the heading whose text is the answer (a Markdown heading, or "
        "in a PDF or text file a line that is the heading alone; any case, numbering allowed). Without it the "
        "whole report is the answer.")
    prompt: str | None = Field(None, description="source: cell: grade_id or tag of the question's cell in the "
                               "released notebook. source: report: the question itself, as text. Either way its "
                               "text counts as template.")
    min_words: int = Field(50, ge=1, description="Words of the student's own (text repeated from the question "
                           "does not count).")
    max_words: int | None = Field(None, ge=1)
    placeholders: list[str] = Field(
        default_factory=lambda: ["YOUR ANSWER HERE"], description="Template text that does not count as an answer."
    )
    template_similarity: float = Field(
        0.6, gt=0, le=1, description="Fail as the question reworded when this share of the answer's content words "
        "come from the template (the question reworded scores 0.89-1, answers at most 0.14 on the corpus).")
    themes: list[Theme] = Field(default_factory=list)
    min_themes: int | None = Field(None, ge=0, description="Themes to cover; default: all of them.")
    theme_similarity: float = Field(
        0.45, gt=0, le=1, description="Cosine similarity at which a sentence covers a theme (corpus: answers on "
        "the theme 0.49 and up, off-topic ones at most 0.40).")
    theme_band: float = Field(
        0.04, ge=0, lt=1, description="A missed theme whose closest sentence scores within this below "
        "theme_similarity is too close to call: the result goes to review, not fail (corpora: English answers "
        "that miss a theme score at most 0.404 on it, one that touches it without saying it 0.417).")
    originality: bool = Field(True, description="Compare with the rest of the cohort after a batch: a passing "
                              "answer nearly the same as another student's goes to review.")
    reference_similarity: float | None = Field(
        None, gt=0, le=1, description="Send to review when this share of the answer's 3-word runs are the "
        "reference solution's (or its meaning is that close: cosine >= 0.93). Off unless set; 0.4 suits.")

    @model_validator(mode="after")
    def _consistent(self) -> ReflectionSpec:
        if self.source == "cell" and self.section is not None:
            raise ValueError("section names a heading of the report: set `source: report`, or remove it")
        if self.source == "report" and "cell" in self.model_fields_set:
            raise ValueError("cell names a notebook cell, but `source: report` reads the report: remove `cell` "
                             "(or name a heading with `section`)")
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        if self.min_themes is not None and self.min_themes > len(self.themes):
            raise ValueError(f"min_themes ({self.min_themes}) is more than the {len(self.themes)} themes listed")
        ids = [t.id for t in self.themes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"theme ids must be unique: {ids}")
        return self

    @property
    def needed(self) -> int:
        return len(self.themes) if self.min_themes is None else self.min_themes

    def references(self) -> list[Reference]:
        if self.source == "report":
            return []
        prompt = [Reference("prompt", "cell", self.prompt)] if self.prompt else []
        return [Reference("cell", "cell", self.cell), *prompt]

    def lab_problems(self, lab: Lab) -> Iterator[LabProblem]:
        yield from super().lab_problems(lab)
        if self.source != "report":
            return
        if lab.spec.files.report is None:
            yield LabProblem("source", "reads the written report, but lab.yaml names none",
                             "add `files: {report: report}` to lab.yaml (students hand in report.pdf, report.md or "
                             "report.txt), or read a notebook cell with `source: cell`")
            return
        path = report_template_path(lab)
        if self.section is not None and path is not None and path.is_file():
            text = staff_file(path) or ""
            if find_section(text, "markdown", self.section) is None:
                headings = ", ".join(repr(h) for _, h in markdown_headings(text).values()) or "none"
                yield LabProblem("section", f"names the heading {self.section!r}, which the released report template "
                                 f"{path.name} does not have", f"headings there: {headings}")


@lru_cache(maxsize=32)
def _staff_cells(path: str, stamp: tuple[int, int], ids: tuple[str, ...]) -> dict[str, str | None]:
    """Text of some cells of a staff notebook (released or solution), read once per version of the file."""
    nb = load_notebook(Path(path))
    cells = {i: find_cell(nb, i) if nb is not None else None for i in ids}
    return {i: strip_markdown(c.get("source", "")) if c is not None else None for i, c in cells.items()}


def staff_cells(path: Path, *ids: str) -> dict[str, str | None]:
    try:
        st = path.stat()
    except OSError:
        return {i: None for i in ids}
    return _staff_cells(str(path), (st.st_mtime_ns, st.st_size), ids)


@lru_cache(maxsize=32)
def _staff_file(path: str, stamp: tuple[int, int]) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def staff_file(path: Path) -> str | None:
    """A staff text file (the report template, the model report), read once per version; None if absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _staff_file(str(path), (st.st_mtime_ns, st.st_size))


def report_template_path(lab: Any) -> Path | None:
    """The report template as handed out, assignments/<lab>/<report>.md (in a kit: its pristine copy, never
    the student's working one); None when the lab reads no report."""
    stem = lab.spec.files.report
    return Path(lab.release_dir) / f"{stem}.md" if stem else None


def _staff_section(text: str | None, spec: ReflectionSpec) -> str | None:
    """A staff Markdown report's answer part: the section, or the whole of it; None when it has no such section."""
    if text is None:
        return None
    if spec.section is None:
        return strip_markdown(text)
    found = find_section(text, "markdown", spec.section)
    return strip_markdown(found.text) if found is not None else None


def report_headings(lab: Any) -> list[str]:
    """The released template's headings: where a section of a PDF or text report ends."""
    path = report_template_path(lab)
    text = staff_file(path) if path is not None else None
    return [h for _, h in markdown_headings(text).values()] if text else []


def template_text(lab: Any, spec: ReflectionSpec) -> str:
    """What every answer starts from or may repeat, and the placeholders. For a cell: the answer cell as
    released and the question (the `prompt` cell), from the released notebook. For a report: the released
    report template's section (or the whole template) and the question (`prompt`). Staff files only."""
    if spec.source == "report":
        path = report_template_path(lab)
        part = _staff_section(staff_file(path), spec) if path is not None else None
        if part is None and path is not None:  # the template lacks the section: all of it is template
            part = strip_markdown(staff_file(path) or "")
        return "\n\n".join([part or "", spec.prompt or "", *spec.placeholders])
    ids = (spec.cell,) if spec.prompt is None else (spec.cell, spec.prompt)
    released = staff_cells(Path(lab.notebook_path), *ids)
    return "\n\n".join([*(released[i] or "" for i in ids), *spec.placeholders])


def reference_text(lab: Any, spec: ReflectionSpec) -> str | None:
    """The reference solution's answer, or None when the solution has none (or, in the self-check, is hidden).
    For a report: reference/<lab>/<report>.md (or .txt), the model report, where the course writes one."""
    if getattr(lab, "public_only", False):
        return None
    if spec.source == "report":
        hidden = getattr(lab, "reference_dir", None)
        stem = lab.spec.files.report
        texts = [staff_file(Path(hidden) / f"{stem}{suffix}") for suffix in (".md", ".txt")] if hidden and stem else []
        answer = _staff_section(next((t for t in texts if t is not None), None), spec)
        return (answer.strip() or None) if answer else None
    text = staff_cells(Path(lab.solution_path), spec.cell)[spec.cell]
    return (text.strip() or None) if text else None


def _one_line(text: str, cap: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= cap else text[:cap - 1].rstrip() + "…"


def _listing(items: list[str]) -> str:
    quoted = [f"'{_one_line(i, 200)}'" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _themes_covered(covered: int, total: int) -> str:
    if covered < total:
        return f"{covered} of the {total} themes"
    return {1: "its theme", 2: "both themes"}.get(total, f"all {total} themes")


def _units(text: str, template: str) -> list[str]:
    """Sentences, and the clauses of long ones, that say something beyond the question."""
    out = []
    for sentence in sentences(text):
        parts = [p.strip() for p in re.split(r"[;:]\s+", sentence)]
        for unit in [sentence] + [p for p in parts if p != sentence and len(tokens(p)) >= 4]:
            if len(tokens(blank(unit, echoed_spans(unit, template)))) >= 3:
                out.append(unit)
    return out


@register
class Reflection(Criterion):
    kind = "reflection"
    Spec = ReflectionSpec
    spec: ReflectionSpec
    advice = {
        "fail": "Write the reflection in your own words, in full sentences, and hand in again.",
        "review": "Nothing to do for now: a teacher will read your reflection and contact you if needed.",
    }

    def evaluate(self, evidence: Evidence) -> CriterionResult:
        s = self.spec
        if s.source == "report":
            answer = self._report_answer(evidence)
            if isinstance(answer, CriterionResult):
                return answer
            source, markdown, where = answer
        else:
            nb = evidence.submitted or evidence.notebook  # the answer as written, not as the run left it
            if nb is None:
                raise EvidenceMissing("the notebook could not be read", student=True)
            cell = find_cell(nb, s.cell)
            if cell is None:
                return self._result("fail", "missing-cell", f"The reflection cell ({s.cell!r}) is missing: restore "
                                    "it from the original notebook.", 0, advice="Copy the reflection cell from the "
                                    "original notebook, answer in it and hand in again.")
            source, markdown, where = cell.get("source", ""), True, {}
        template, reference = self._staff_texts(evidence)
        text = strip_markdown(source[:ANALYSED_CAP]) if markdown else source[:ANALYSED_CAP]
        for placeholder in s.placeholders:
            text = text.replace(placeholder, " ")
        words = tokens(text)
        own_text = blank(text, echoed_spans(text, template))
        own = len(tokens(own_text))
        uses_model = bool(s.themes or s.reference_similarity is not None) and embeddings.available()
        detected = language.detect(own_text)
        try:
            themes, ref = self._measured(text, own_text, template, reference, uses_model, detected)
        except embeddings.Unavailable:  # the model failed to load just now: keywords decide, and say why
            uses_model = False
            themes, ref = self._measured(text, own_text, template, reference, uses_model, detected)
        similarity = round(share_from(own_text, template), 3) if tokens(template) else 0.0
        function_share, keyword_share = round(stop_share(words), 3), self._keyword_share(own_text)
        if where:  # what the student is told was read: the file, the section, the words
            part = f"section {s.section!r} of {where['report']}" if s.section else f"the whole of {where['report']}"
            where["read"] = f"{part} ({len(words)} words)"
        details = {
            **where,
            "text": text.strip()[:ANSWER_CAP],
            "text_truncated": len(text.strip()) > ANSWER_CAP,
            "analysed_chars": min(len(source), ANALYSED_CAP),
            "chars": len(source),
            "words": len(words),
            "own_words": own,
            "method": self._method(uses_model),
            "language": detected.details(embeddings.CALIBRATED_LANGUAGES),
            "themes": themes,
            "template_similarity": similarity,
            "template_similarity_bar": s.template_similarity,
            "reference_similarity": ref.model_dump() if ref else None,
            "reference_similarity_bar": s.reference_similarity,
            "stuffing": {"function_word_share": function_share, "keyword_share": keyword_share},
        }
        if not words:
            return self._result("fail", "empty", "The reflection is not written yet (only the template's "
                                "placeholder).", 0, advice=f"Write your reflection in {self._place()} and hand in "
                                "again.", **details)
        if own == 0:
            return self._result("fail", "template", "The reflection only repeats the question or the template: "
                                "nothing is written in your own words.", 0, advice="Replace the pasted text with "
                                "your own answer to the question and hand in again.", **details)
        return self._decide(own, own < len(words), similarity, themes, ref, function_share, keyword_share,
                            uses_model, detected, details)

    def _measured(self, text: str, own_text: str, template: str, reference: str | None, uses_model: bool,
                  detected: language.Detection) -> tuple[dict[str, Any] | None, originality.Similarity | None]:
        """(themes, likeness to the reference): what the model measures, where it is used."""
        code = detected.code if detected.sure else None
        trusted = code in embeddings.CALIBRATED_LANGUAGES
        themes = self._themes(text, own_text, template, uses_model, code, trusted) if self.spec.themes else None
        ref = None
        if reference and tokens(text):  # the whole text as stored in details, so a cohort pass reuses its vector
            ref = originality.compare(text.strip(), reference, ignore=template, semantic=uses_model)
        return themes, ref

    def _decide(self, own: int, echoed: bool, similarity: float, themes: dict | None,
                ref: originality.Similarity | None, function_share: float, keyword_share: float,
                uses_model: bool, detected: language.Detection, details: dict[str, Any]) -> CriterionResult:
        s = self.spec
        if similarity >= s.template_similarity:
            return self._result(
                "fail", "near-template", f"The reflection is mostly the question reworded ({similarity:.0%} of its "
                "words come from it): answer it in your own words.", own, advice="Answer the question in your own "
                "words instead of restating it, and hand in again.", **details)
        counted = " of your own (text repeated from the question does not count)" if echoed else ""
        if own < s.min_words:
            return self._result(
                "fail", "too-short", f"The reflection has {own} words{counted}; at least {s.min_words} are needed.",
                own, advice=f"Extend your reflection to at least {s.min_words} words and hand in again.", **details)
        if s.max_words is not None and own > s.max_words:
            return self._result(
                "fail", "too-long", f"The reflection has {own} words{counted}; at most {s.max_words} are allowed.",
                own, advice=f"Shorten your reflection to at most {s.max_words} words and hand in again.", **details)
        if own >= STUFFING_MIN_WORDS and (function_share < MIN_FUNCTION_WORDS or keyword_share > MAX_KEYWORD_SHARE):
            why = (f"{function_share:.0%} of its words are small words like 'the', 'and' or 'of', where written "
                   "sentences have about 40-50%" if function_share < MIN_FUNCTION_WORDS else
                   f"{keyword_share:.0%} of its words are the rubric's keywords, where written sentences have "
                   "under 10%")
            return self._result("review", "stuffing", f"The reflection reads like a list of keywords rather than "
                                f"sentences ({why}): a teacher will read it.", own, **details)
        if ref is not None and s.reference_similarity is not None:
            flagged = ref.flagged(lexical=s.reference_similarity)
            if flagged:
                value = ref.semantic if flagged == ["semantic"] else ref.lexical
                return self._result(
                    "review", "reference-copy", f"The reflection is nearly the same as the course's model answer "
                    f"(similarity {value:.2f}): a teacher will compare them.", own, **details)
        how = "" if uses_model or not s.themes else f" (checked by keywords only, because {embeddings.reason()})"
        if themes is not None:
            covered, total, needed = len(themes["covered"]), len(s.themes), s.needed
            if covered < needed:
                missing = [t["description"] for t in themes["missing"]]
                of = f"{covered} of the {needed} themes needed" if needed == total else \
                    f"{covered} of the {total} themes ({needed} needed)"
                uncertain = self._uncertain(themes["missing"], uses_model, detected)
                if uncertain:
                    return self._result(
                        "review", "themes-missing", f"The reflection seems to cover {of} (missing "
                        f"{_listing(missing)}), but it is {uncertain}: a teacher will read it and decide.", own,
                        uncertain=uncertain, **details)
                return self._result(
                    "fail", "themes-missing", f"The reflection covers {of}: missing {_listing(missing)}{how}.", own,
                    advice="Add a few sentences on what the message says is missing and hand in again.", **details)
            return self._result("pass", "themes-covered", f"The reflection is written ({own} words) and covers "
                                f"{_themes_covered(covered, total)}{how}.", own, **details)
        return self._result("pass", "written", f"The reflection is written ({own} words).", own, **details)

    def _uncertain(self, missing: list[dict[str, Any]], uses_model: bool, detected: language.Detection) -> str:
        """Why a judgement that themes are missing is not sure enough for a U, in words for the student
        (completing "it is ..."); empty when it is sure."""
        if not uses_model:
            return f"checked by keywords only ({embeddings.reason()}), which miss answers in words of their own"
        if not detected.sure:
            return "not clear which language it is written in, and the grader's language model reads English only"
        if detected.code not in embeddings.CALIBRATED_LANGUAGES:
            return f"written in {detected.name}, which the grader's language model is not calibrated for"
        bar = self.spec.theme_similarity
        close = [t for t in missing if t.get("similarity", -1) >= bar - self.spec.theme_band]
        if close:
            t = max(close, key=lambda t: t["similarity"])
            return (f"close to the bar on '{_one_line(t['description'], 80)}' (its closest sentence scores "
                    f"{t['similarity']:.2f}, the bar is {bar:.2f})")
        return ""

    def _result(self, status: Status, reason: str, message: str, count: int, advice: str = "",
                **details: Any) -> CriterionResult:
        """A result that also records the reason and its own verdict, for a cohort pass to build on; a
        report's tells the student which part of it was read."""
        if details.get("read"):
            message = f"{message} Read: {details['read']}."
        return self.result(status, message, count, self.spec.min_words, advice=advice, reason=reason,
                           own_status=status, own_message=message, **details)

    def _place(self) -> str:
        if self.spec.source == "cell":
            return "its cell"
        return f"your report, under the heading {self.spec.section!r}" if self.spec.section else "your report"

    def _report_answer(self, evidence: Evidence) -> CriterionResult | tuple[str, bool, dict[str, Any]]:
        """The report's text to judge (the section, or all of it), whether it is Markdown, and what was read;
        or the result when there is none to judge."""
        s = self.spec
        report: ReportFile | None = getattr(evidence, "report", None)
        documents = " or ".join([", ".join(REPORT_SUFFIXES[:-1]), REPORT_SUFFIXES[-1]])
        if report is None:
            stem = evidence.lab.spec.files.report or "report"
            names = documents.replace(".", f"{stem}.")
            if evidence.execution is not None and evidence.execution.status == "invalid":
                # The hand-in itself could not be taken: its reason is the verdict's, said once
                raise EvidenceMissing(f"no report handed in ({names})", student=True)
            return self._result("fail", "no-report", f"No report handed in ({names}).", 0,
                                advice=f"Hand in your report as {names}, beside your code, and hand in again.")
        document = read_document(report)
        where: dict[str, Any] = {"source": "report", "report": document.name, "section": s.section,
                                 "pages": document.pages, "pages_read": document.pages_read,
                                 "cut": document.cut or None, "read_seconds": document.seconds}
        if document.problem is not None:
            p = document.problem
            advice = ("Nothing to do for now: a teacher will read your report and contact you if needed."
                      if p.status == "review" else "Fix what the message says and hand in again.")
            return self._result(p.status, p.reason, p.message, 0, advice=advice, staff_detail=p.detail, **where)
        if s.section is None:
            return document.text, document.kind == "markdown", where
        section = find_section(document.text, document.kind, s.section, report_headings(evidence.lab))
        if section is None:
            return self._missing_section(document, where)
        where["ends_at"] = section.ends_at
        return section.text, document.kind == "markdown", where

    def _missing_section(self, document: Document, where: dict[str, Any]) -> CriterionResult:
        """No heading of that name: the student's doing in Markdown or text; in a PDF, whose lines the reader
        may run together, sure only when the heading's words are nowhere in it; a report read in part, never."""
        heading = self.spec.section or ""
        if document.cut:
            return self._result(
                "review", "section-not-read", f"The heading {heading!r} is not in the part of {document.name} the "
                f"grader reads (the first {document.pages_read} of its {document.pages} pages): a teacher will read "
                "it.", 0, **where)
        mentioned = document.kind == "pdf" and normalise(heading) in " ".join(document.text.split()).casefold()
        if mentioned:
            return self._result(
                "review", "section-unclear", f"{document.name} has no line that is the heading {heading!r} alone, "
                "though the words are in it: a teacher will read it.", 0, **where)
        return self._result(
            "fail", "no-section", f"{document.name} has no section {heading!r}: the reflection goes under a heading "
            f"{heading!r}.", 0, advice=f"Put your reflection under a heading {heading!r} in your report (as in the "
            "report template) and hand in again.", **where)

    def _staff_texts(self, evidence: Evidence) -> tuple[str, str | None]:
        """(template, reference), from staff files; a prompt cell the released notebook lacks is our fault."""
        s = self.spec
        released = evidence.lab.notebook_path
        if (s.source == "cell" and s.prompt is not None
                and (released is None or staff_cells(Path(released), s.prompt)[s.prompt] is None)):
            raise EvidenceMissing(f"the rubric's prompt cell {s.prompt!r} is not in the released notebook",
                                  student=False)
        return template_text(evidence.lab, s), reference_text(evidence.lab, s)

    def _method(self, uses_model: bool) -> str:
        if not self.spec.themes:
            return "no themes in the rubric"
        return f"semantic ({embeddings.MODEL})" if uses_model else f"keywords only ({embeddings.reason()})"

    def _keyword_share(self, own_text: str) -> float:
        words = tokens(own_text)
        hits = [m.span() for t in self.spec.themes for k in t.keywords for m in keyword_pattern(k).finditer(own_text)]
        starts = {w.start() for start, end in hits for w in WORD.finditer(own_text, start, end)}
        return round(len(starts) / len(words), 3) if words else 0.0

    def _themes(self, text: str, own_text: str, template: str, uses_model: bool, code: str | None,
                trusted: bool) -> dict[str, Any]:
        """Which themes the answer covers and how (keyword or sentence), and which it misses; sentences are
        matched against the examples in the answer's language (`code`, None when unsure: all of them).

        A sentence covers a theme only where the model is calibrated for the language (`trusted`): MiniLM
        scores any two Swedish sentences 0.5-0.75 alike, so a Swedish answer that never names a theme would
        pass on it. Elsewhere the similarity is recorded for the TA and keywords decide (a shortfall then
        goes to review)."""
        units = _units(text, template) if uses_model else []
        unit_vectors = embeddings.encode(units) if units else None
        covered, missing = [], []
        for theme in self.spec.themes:
            entry: dict[str, Any] = {"id": theme.id, "description": theme.description}
            if unit_vectors is not None:
                refs = [theme.description, *theme.examples_for(code)]
                sims = unit_vectors @ embeddings.encode(refs).T
                i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
                entry |= {"sentence": _one_line(units[i], 300), "similarity": round(float(sims[i, j]), 3),
                          "closest_to": refs[j]}
            hit = next(((k, m.group(0)) for k in theme.keywords if (m := keyword_pattern(k).search(own_text))), None)
            if hit:
                covered.append({**entry, "by": "keyword", "keyword": hit[0], "match": _one_line(hit[1], 80)})
            elif entry.get("similarity", -1) >= self.spec.theme_similarity and trusted:
                covered.append({**entry, "by": "sentence"})
            else:
                missing.append(entry)
        return {"covered": covered, "missing": missing, "needed": self.spec.needed}
