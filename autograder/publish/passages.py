"""Two students' work side by side with what they share highlighted, for a TA deciding on a copy.

- Texts (reflections): every word in a 3-word run that the other text holds too is marked, the runs
  the originality check counts (`criteria.analysis.originality`: 3-word shingles of the words, Markdown's
  code blocks, tags and link targets left out of the other text).
- Code: the line ranges the code originality check found (contract: `details["similar_to"][i]["passages"]`,
  1-based inclusive `mine`/`theirs` ranges), each pair in its own colour, with line numbers.

Both sides are student text and the ranges come from the store, so everything is escaped by the template,
long texts are capped, and ranges that are reversed, overlapping or past the end are mended or left out
with a note, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from markupsafe import Markup

from autograder.criteria.analysis.text import echoed_spans, strip_markdown, tokens
from autograder.publish.html import strip_ansi, templates

RUN = 3  # words: the shingle length of criteria.analysis.originality
MAX_TEXT_CHARS = 20_000  # per side: a reflection is a few hundred words
MAX_LINES = 1_500  # per side of a code listing
MAX_LINE_CHARS = 400
MAX_PASSAGES = 40
COLOURS = 6  # pair k is drawn in colour k % COLOURS (pg-c0 .. pg-c5 in passages.html)


@dataclass
class Segment:
    text: str
    marked: bool = False


@dataclass
class TextSide:
    label: str
    segments: list[Segment]
    shared_words: int
    words: int
    note: str = ""


@dataclass
class Line:
    number: int
    text: str
    pairs: list[int] = field(default_factory=list)  # 1-based passage numbers that hold this line

    @property
    def colour(self) -> int | None:
        return (self.pairs[0] - 1) % COLOURS if self.pairs else None


@dataclass
class CodeSide:
    label: str
    lines: list[Line]
    note: str = ""


@dataclass
class Pair:
    number: int
    mine: tuple[int, int]
    theirs: tuple[int, int]

    @property
    def colour(self) -> int:
        return (self.number - 1) % COLOURS


def _capped_text(text: object, limit: int) -> tuple[str, str]:
    """(text without terminal escapes, cut at `limit` characters; a note when cut or not text)."""
    if not isinstance(text, str):
        return "", "(no text recorded)"
    text = strip_ansi(text)
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"({len(text) - limit:,} more characters not shown)"


# A line break inside a paragraph, as Markdown reads it: a space (one character for one, so offsets hold). Not
# before a blank line, a list item, a heading, a quote or a table row, which keep their own lines.
_SOFT_BREAK = re.compile(r"(?<!\n)\n(?![ \t]*(?:\n|[-*+#>|]|\d+[.)]))")


def _side(label: str, text: str, note: str, other: str) -> TextSide:
    spans = echoed_spans(text, strip_markdown(other), RUN)
    text = _SOFT_BREAK.sub(" ", text)  # after the spans: same length, so they still fit
    segments, at = [], 0
    for start, end in spans:
        if start > at:
            segments.append(Segment(text[at:start]))
        segments.append(Segment(text[start:end], marked=True))
        at = end
    if at < len(text):
        segments.append(Segment(text[at:]))
    shared = sum(len(tokens(text[start:end])) for start, end in spans)
    return TextSide(label, segments, shared, len(tokens(text)), note)


def shared_text_html(mine: object, theirs: object, *, mine_label: str = "this student",
                     theirs_label: str = "the other student") -> Markup:
    """Two texts side by side, the words of each that lie in a 3-word run the other also has in <mark>."""
    a, a_note = _capped_text(mine, MAX_TEXT_CHARS)
    b, b_note = _capped_text(theirs, MAX_TEXT_CHARS)
    sides = [_side(mine_label, a, a_note, b), _side(theirs_label, b, b_note, a)]
    return Markup(templates().get_template("passages.html").render(mode="text", sides=sides, pairs=[], notes=[]))


def _lines(code: object) -> tuple[list[str], str]:
    text, note = _capped_text(code, 10**9)
    lines = text.split("\n") if text else []
    if text.endswith("\n"):
        lines.pop()
    long = sum(len(line) > MAX_LINE_CHARS for line in lines)
    lines = [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " ..." for line in lines]
    if len(lines) > MAX_LINES:
        note = f"(lines {MAX_LINES + 1:,}-{len(lines):,} not shown)"
        lines = lines[:MAX_LINES]
    elif long:
        note = f"({long} long line{'s' if long > 1 else ''} cut at {MAX_LINE_CHARS} characters)"
    return lines, note


def _range(value: object, length: int) -> tuple[int, int] | None:
    """A [first, last] pair of line numbers as stored, mended: ordered and clipped to 1..length; None when it
    is not two integers or lies wholly outside the listing."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    first, last = sorted(value)
    if last < 1 or first > length:
        return None
    return max(first, 1), min(last, length)


def _pairs(passages: object, mine_length: int, theirs_length: int) -> tuple[list[Pair], list[str]]:
    if passages is None:
        return [], []
    if not isinstance(passages, list):
        return [], ["(the passages recorded are not a list; none are shown)"]
    pairs: list[Pair] = []
    dropped = 0
    for item in passages:
        mine = _range(item.get("mine"), mine_length) if isinstance(item, Mapping) else None
        theirs = _range(item.get("theirs"), theirs_length) if isinstance(item, Mapping) else None
        if mine is None or theirs is None:
            dropped += 1
            continue
        if len(pairs) < MAX_PASSAGES:
            pairs.append(Pair(len(pairs) + 1, mine, theirs))
    notes = []
    if dropped:
        notes.append(f"({dropped} recorded passage{'s' if dropped > 1 else ''} not shown: not two line ranges "
                     "within the code)")
    kept = len(passages) - dropped
    if kept > MAX_PASSAGES:
        notes.append(f"({kept - MAX_PASSAGES} more passages not shown)")
    return pairs, notes


def code_passages_html(mine_code: object, theirs_code: object, passages: object, *,
                       mine_label: str = "this student", theirs_label: str = "the other student") -> Markup:
    """Two code listings side by side with line numbers, each passage pair's lines in its own colour.

    `passages`: [{"mine": [first, last], "theirs": [first, last]}, ...], 1-based inclusive line numbers into
    `mine_code` and `theirs_code` (contract 2 of issue 16). Whatever a corrupt store holds there is mended
    (reversed ranges ordered, ranges clipped to the listing) or left out with a note."""
    mine_lines, mine_note = _lines(mine_code)
    theirs_lines, theirs_note = _lines(theirs_code)
    pairs, notes = _pairs(passages, len(mine_lines), len(theirs_lines))
    sides = [CodeSide(mine_label, [Line(i, t) for i, t in enumerate(mine_lines, 1)], mine_note),
             CodeSide(theirs_label, [Line(i, t) for i, t in enumerate(theirs_lines, 1)], theirs_note)]
    for pair in pairs:
        for side, (first, last) in zip(sides, (pair.mine, pair.theirs)):
            for line in side.lines[first - 1:last]:
                line.pairs.append(pair.number)
    return Markup(templates().get_template("passages.html").render(mode="code", sides=sides, pairs=pairs,
                                                                  notes=notes))
