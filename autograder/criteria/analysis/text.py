"""Plain-text tools for written answers: words, sentences, stop words (English and Swedish), keyword
patterns and lexical similarity. No model here: everything is cheap, deterministic and explainable."""

from __future__ import annotations

import re
from functools import lru_cache

WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")

# Function words of English and Swedish. Normal prose has roughly 40-55 % of them; a list of
# keywords or word salad has far fewer, which is how stuffing is told from writing.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
during each even ever every few for from further had hadn't has hasn't have haven't having he her here
hers herself him himself his how however i if in into is isn't it it's its itself just let's like may
me might more most much must mustn't my myself no nor not now of off often on once one only or other
others otherwise ought our ours ourselves out over own per quite rather same shall she should shouldn't
since so some such than that that's the their theirs them themselves then there there's therefore these
they they're this those though through thus to too under until up upon us very via was wasn't we we're
were weren't what when where whether which while who whom whose why will with within without won't would
wouldn't yet you your yours yourself yourselves
alla allt alltid andra annan annat att av bara blev bli blir de dem den denna deras dess det detta
dig din dina ditt du där då efter eftersom ej eller en er era ert ett från för genom ha hade han hans
har hen henne hennes hon honom hur här i icke ingen inget inom inte jag ju kan kunde man med medan mellan
men mer mig min mina mitt mot mycket många ni nu när någon något några och också om oss på samma sedan
sig sin sina sitt själv ska skall skulle som så sådan sådana till under upp ut utan vad var vara varför
varit varje vars vem vi vid vilka vilken vilket vår våra vårt än är ännu även åt över
""".split())


def tokens(text: str) -> list[str]:
    """The words of a text, lower-cased; numbers and punctuation are not words."""
    return [w.lower().replace("’", "'") for w in WORD.findall(text)]


def strip_markdown(text: str) -> str:
    """Markdown source as the reader sees it: no code blocks, HTML tags or link targets."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\(https?://[^)]*\)", " ", text)


# A sentence ends at . ! ? (closing quotes allowed) before a capital or digit, so "e.g. the" and
# "t.ex. en" do not split; a blank line or a list item always starts a new one.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-ZÅÄÖÉÜ0-9])")
_BLOCK = re.compile(r"\n\s*\n|\n\s*(?:[-*+•]|\d+[.)])\s+|\n\s*#+\s*")


def sentences(text: str) -> list[str]:
    """The sentences of a text, each stripped; a line of a list counts as one."""
    out = []
    for block in _BLOCK.split(text):
        for sentence in _SENTENCE_END.split(block.strip()):
            sentence = " ".join(sentence.split()).strip("-*•# ")
            if WORD.search(sentence):
                out.append(sentence)
    return out


def stop_share(words: list[str]) -> float:
    """The share of function words: about half in prose, little in a keyword list."""
    return sum(w in STOP_WORDS for w in words) / len(words) if words else 0.0


@lru_cache(maxsize=1024)
def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """A whole-word, case-insensitive pattern; a trailing `*` takes any ending ("övertränin*"),
    a space matches white space or a hyphen ("filter bubble*": "filter-bubbles")."""
    stem = keyword.strip()
    wildcard = stem.endswith("*")
    parts = stem.rstrip("*").split()
    body = r"[\s-]+".join(re.escape(p) for p in parts)
    tail = r"[\w'’-]*" if wildcard else ""
    return re.compile(rf"(?<![\w'’-]){body}{tail}(?![\w'’-])", re.IGNORECASE)


def shingles(words: list[str], n: int = 3) -> set[tuple[str, ...]]:
    """Runs of n consecutive words; a changed word spoils only the n runs that hold it."""
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def containment(a: set, b: set) -> float:
    """How much of the smaller set lies in the other: a copy padded with text of one's own still scores."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def lexical_similarity(a: str, b: str, n: int = 3) -> float:
    """Shared word runs of two texts (containment of 3-word shingles), 0..1."""
    return containment(shingles(tokens(a), n), shingles(tokens(b), n))


def share_from(answer: str, template: str) -> float:
    """The share of the answer's content words that the template already holds, in any order: a
    template with a few words swapped or moved still scores high, an answer in one's own words low."""
    words = [w for w in tokens(answer) if w not in STOP_WORDS]
    vocabulary = set(tokens(template))
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


def echoed_spans(text: str, template: str, n: int = 6) -> list[tuple[int, int]]:
    """Character spans of `text` that repeat the template: runs of at least n words found there too.

    A student who pastes the question above the answer is not penalised, but the pasted words do
    not count as written, and a keyword inside them ("harm" in the question) does not count as named.
    """
    matches = list(WORD.finditer(text))
    words = [m.group(0).lower().replace("’", "'") for m in matches]
    runs = {tuple(r) for r in _ngrams(tokens(template), n)}
    marked = [False] * len(words)
    for i, gram in enumerate(_ngrams(words, n)):
        if tuple(gram) in runs:
            marked[i:i + n] = [True] * n
    spans: list[tuple[int, int]] = []
    for m, hit in zip(matches, marked):
        if hit:
            if spans and not WORD.search(text, spans[-1][1], m.start()):
                spans[-1] = (spans[-1][0], m.end())
            else:
                spans.append((m.start(), m.end()))
    return spans


def _ngrams(words: list[str], n: int) -> list[list[str]]:
    return [words[i:i + n] for i in range(len(words) - n + 1)]


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with the spans replaced by spaces (offsets elsewhere unchanged)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)
