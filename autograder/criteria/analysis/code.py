"""Copied code across a cohort: token fingerprints, winnowed as MOSS and JPlag do, with the handout taken out.

How two students' code is compared:

1. Tokens. The standard `tokenize` reads the code; every identifier becomes `V`, every number `N`,
   every string `S`; comments, docstrings (a string that is a statement of its own), blank lines,
   line breaks inside brackets and a trailing comma before a closing bracket are dropped; keywords,
   operators and the structure (end of statement, indent, dedent) stay. So renaming, recommenting and
   reformatting change nothing. IPython lines (`%magic`, `!cmd`, a `%%cell` magic's first line) are
   blanked first, keeping line numbers. A part that still does not tokenise (a cut-off string, a
   shell cell, binary junk) is read line by line by a plain pattern lexer: compared, never a crash.
2. Fingerprints. Each run of `k` tokens is hashed (a polynomial hash over stable token codes, so the
   same code gives the same fingerprints in every process), and winnowing keeps the smallest hash
   of every `window` consecutive ones (the rightmost on ties). Any run of `k + window - 1` tokens two
   programs share gives both at least one fingerprint in common; a set has no order, so reordered
   functions or cells change nothing, and inserted dead code breaks only the runs it lands in.
3. The handout. Every `k`-run of the released code (the notebook's code cells, the modules handed out
   to fill in, the provided ones) is removed from a student's fingerprints, so the handout's
   boilerplate, stubs and signatures never count.
4. Similarity. Fingerprints in common / fingerprints of the one of the two with fewer: the share of
   the smaller program found in the other, so a copy padded with dead code or extra cells still
   scores high. Pairs are counted through one student-by-fingerprint matrix over the fingerprints held
   by two or more students, so a cohort costs one matrix product, not a set operation per pair.

Why not the `copydetect` package: it reads files by name, fingerprints *characters* of a
pygments-filtered text (its `k` counts characters, and docstrings stay in as strings), knows nothing
of notebook magics, reports matches as character offsets, and compares every pair in a Python loop.
Here the code is text in the store, matches must be line ranges, and a cohort of 300 is one product.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
import zlib
from collections.abc import Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from nbformat import NotebookNode

CODE_CAP = 200_000  # characters of a student's code kept and compared (the labs' own code is a few thousand)
MAX_PASSAGES = 30  # per pair, the longest first
MAX_MATCHES = 5  # pairs kept per student, the most alike first
CELL_HEADER = "# ---- cell {n} ----"
MODULE_HEADER = "# ---- module {name} ----"
HEADER = re.compile(r"^# ---- (?:cell \d+|module .+) ----$")

_MOD = (1 << 61) - 1
_BASE = 1_000_003
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)  # Python 3.12+: f-strings come in parts
_FSTRING_END = getattr(tokenize, "FSTRING_END", -1)
_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_CLOSING = {")", "]", "}"}
_STATEMENT = {";", "{", "}"}  # what a docstring follows: the start of a statement
HELP = re.compile(r"^\s*(?:\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")  # IPython's help: `np.max?`, `??f`
_LINE_TOKEN = re.compile(r"""[^\W\d]\w*|\d[\w.]*|"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|#.*|\S""")


@dataclass(frozen=True)
class Token:
    text: str  # the normalised token: V, N, S, a keyword or an operator; `;`, `{`, `}` for structure
    line: int  # 1-based, in the document it came from


def _blank_ipython(source: str) -> str:
    """IPython's own syntax as blank lines (line numbers kept): `%magic`, `!cmd`, `name?`, and a cell
    magic's first line (its body is compared as it stands, and read by lines if it is not Python)."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("%", "!")) or HELP.match(line):
            lines[i] = ""
    return "\n".join(lines)


def _python_tokens(source: str, first_line: int) -> list[Token]:
    """The normalised tokens of Python source; raises on what `tokenize` cannot read."""
    raw = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in _SKIPPED]
    out: list[Token] = []
    depth = 0  # inside an f-string's parts (3.12+): one S for the whole string
    for i, tok in enumerate(raw):
        line = tok.start[0] + first_line - 1
        if tok.type == _FSTRING_START:
            if depth == 0:
                out.append(Token("S", line))
            depth += 1
            continue
        if depth:
            depth -= tok.type == _FSTRING_END
            continue
        if tok.type == tokenize.NAME:
            out.append(Token(tok.string if keyword.iskeyword(tok.string) else "V", line))
        elif tok.type == tokenize.NUMBER:
            out.append(Token("N", line))
        elif tok.type == tokenize.STRING:
            after = raw[i + 1] if i + 1 < len(raw) else None
            alone = (not out or out[-1].text in _STATEMENT) and (
                after is None or after.type == tokenize.NEWLINE or after.string == ";")
            if not alone:  # a docstring or a bare string is a comment in disguise
                out.append(Token("S", line))
        elif tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or tok.string == ";":
            text = {tokenize.INDENT: "{", tokenize.DEDENT: "}"}.get(tok.type, ";")
            if text != ";" or (out and out[-1].text not in _STATEMENT):  # also the end of a dropped docstring
                out.append(Token(text, line))
        elif tok.string == "," and i + 1 < len(raw) and raw[i + 1].string in _CLOSING:
            continue  # a trailing comma is formatting
        elif tok.type == tokenize.ERRORTOKEN and not tok.string.strip():
            continue
        else:
            out.append(Token(tok.string, line))
    return out


def _line_tokens(source: str, first_line: int) -> list[Token]:
    """Tokens of code that does not tokenise as Python, line by line: compared all the same."""
    out: list[Token] = []
    for n, line in enumerate(source.split("\n"), start=first_line):
        for m in _LINE_TOKEN.finditer(line):
            word = m.group(0)
            if word.startswith("#"):
                break
            if word[0] in "\"'":
                text = "S"
            elif word[0].isdigit():
                text = "N"
            elif word[0].isalpha() or word[0] == "_":
                text = word if keyword.iskeyword(word) else "V"
            else:
                text = word
            out.append(Token(text, n))
        if out and out[-1].line == n and out[-1].text != ";":
            out.append(Token(";", n))
    return out


def tokens(source: str, first_line: int = 1) -> list[Token]:
    """The normalised tokens of one piece of code (a cell, a module), lines counted from `first_line`."""
    blanked = _blank_ipython(source)
    for attempt in (blanked, source) if blanked != source else (source,):
        try:  # blanking a line that continues a statement (`% (a, b)` in brackets) breaks it: then as it is
            return _python_tokens(attempt, first_line)
        except (tokenize.TokenError, SyntaxError, ValueError):  # IndentationError is a SyntaxError
            continue
    return _line_tokens(blanked, first_line)


def _code(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "replace")) + 1


def kgram_hashes(toks: list[Token], k: int) -> list[int]:
    """The hash of every run of k tokens, in order (a rolling polynomial hash, the same in every process)."""
    if len(toks) < k:
        return []
    codes = [_code(t.text) for t in toks]
    top = pow(_BASE, k - 1, _MOD)
    h = 0
    for c in codes[:k]:
        h = (h * _BASE + c) % _MOD
    out = [h]
    for i in range(k, len(codes)):
        h = ((h - codes[i - k] * top) * _BASE + codes[i]) % _MOD
        out.append(h)
    return out


def winnow(hashes: list[int], window: int) -> list[int]:
    """The positions winnowing keeps: the smallest hash of each window (the rightmost on ties), each once."""
    if not hashes:
        return []
    if len(hashes) <= window:
        return [min(range(len(hashes)), key=lambda j: (hashes[j], -j))]
    picked: list[int] = []
    for start in range(len(hashes) - window + 1):
        best = min(range(start, start + window), key=lambda j: (hashes[j], -j))
        if not picked or picked[-1] != best:
            picked.append(best)
    return picked


def parts(document: str) -> list[tuple[int, str]]:
    """The pieces of a code document (first line, text), split at its `# ---- cell/module ----` lines, so
    one piece that does not tokenise leaves the others read as Python."""
    lines = document.split("\n")
    out: list[tuple[int, list[str]]] = []
    for n, line in enumerate(lines, start=1):
        if HEADER.match(line) or not out:
            out.append((n, [line]))
        else:
            out[-1][1].append(line)
    return [(first, "\n".join(body)) for first, body in out]


def document_tokens(document: str) -> list[Token]:
    return [t for first, text in parts(document) for t in tokens(text, first)]


def template_hashes(sources: list[str], k: int) -> set[int]:
    """Every k-run of the handout's code: what a student's fingerprints lose."""
    return {h for source in sources for h in kgram_hashes(tokens(source), k)}


@dataclass
class Fingerprints:
    """One student's fingerprints after the handout is removed: hash -> the token positions it starts at."""

    tokens: list[Token]
    k: int
    at: dict[int, list[int]] = field(default_factory=dict)
    own_tokens: int = 0  # tokens covered by a k-run that is not the handout's
    own_lines: int = 0  # the lines those tokens are on

    def lines(self, position: int) -> tuple[int, int]:
        return self.tokens[position].line, self.tokens[position + self.k - 1].line


def fingerprint(document: str, k: int, window: int, ignore: Set[int] = frozenset()) -> Fingerprints:
    """The winnowed fingerprints of a code document, less those in `ignore` (the handout's k-runs)."""
    toks = document_tokens(document)
    hashes = kgram_hashes(toks, k)
    covered = np.zeros(len(toks), dtype=bool)
    for i, h in enumerate(hashes):
        if h not in ignore:
            covered[i:i + k] = True
    fp = Fingerprints(tokens=toks, k=k, own_tokens=int(covered.sum()),
                      own_lines=len({toks[i].line for i in np.flatnonzero(covered)}))
    for i in winnow(hashes, window):
        if hashes[i] not in ignore:
            fp.at.setdefault(hashes[i], []).append(i)
    return fp


def _normalised(source: str) -> tuple[str, ...]:
    return tuple(t.text for t in tokens(source))


def student_code(submitted: NotebookNode | None, modules: dict[str, str], released_cells: list[str],
                 cap: int = CODE_CAP) -> tuple[str, bool]:
    """(the student's code as one document, whether it was cut at `cap` characters): the submitted
    notebook's code cells that are not a released cell (after normalisation) nor empty, each under a line
    `# ---- cell N ----` (N counts every cell from 1, as Jupyter shows them), then the student's modules
    under `# ---- module NAME ----`."""
    released = {_normalised(s) for s in released_cells}
    pieces: list[str] = []
    used = 0
    cells = [(CELL_HEADER.format(n=n), cell.get("source")) for n, cell in
             enumerate(submitted.cells if submitted is not None else [], start=1) if cell.get("cell_type") == "code"]
    for header, source in cells + [(MODULE_HEADER.format(name=name), modules[name]) for name in sorted(modules)]:
        if used > cap:
            break  # past the cap: what follows is neither read nor kept
        if not isinstance(source, str):
            continue
        source = source[:cap - used + 1].rstrip()
        normal = _normalised(source)
        if normal and (header.startswith("# ---- module") or normal not in released):
            pieces.append(f"{header}\n{source}")
            used += len(pieces[-1]) + 1
    # text that can be stored and shown: no NUL, no lone surrogate (a notebook's JSON may carry one)
    document = "\n".join(pieces).encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    if len(document) <= cap:
        return document, False
    cut = document[:cap]
    return (cut[:cut.rfind("\n")] if "\n" in cut else cut), True


class CodePair(BaseModel):
    """Two students whose code looks copied, one from the other (which way round is not known)."""

    a: str
    b: str
    similarity: float = Field(description="Fingerprints in common, of the smaller of the two sets (0..1).")
    shared: int = Field(description="Fingerprints in common.")
    passages: list[tuple[tuple[int, int], tuple[int, int]]] = Field(
        description="Matched line ranges ((first, last) in a's code, (first, last) in b's), 1-based, inclusive.")


def passages(a: Fingerprints, b: Fingerprints, shared: set[int], gap: int) -> list[tuple[tuple[int, int],
                                                                                           tuple[int, int]]]:
    """The matched line ranges of two students' code: fingerprints in common, taken in a's order and
    joined into one passage while both sides move forward by at most `gap` tokens. A lone fingerprint
    (one run of k tokens that only looks alike, such as `return x` and the next `def` line) is left out
    where longer passages exist."""
    hits = sorted((pa, h) for h in shared for pa in a.at[h])
    runs: list[list[int]] = []  # [a first, a last, b first, b last, fingerprints] token positions
    for pa, h in hits:
        run = runs[-1] if runs else None
        # where the same k tokens occur more than once in b, the one that continues the passage
        follows = [pb for pb in b.at[h] if run is not None and 0 <= pb - run[3] <= gap]
        if run is not None and pa - run[1] <= gap and follows:
            run[1], run[3], run[4] = pa, min(follows), run[4] + 1
        else:
            runs.append([pa, pa, b.at[h][0], b.at[h][0], 1])
    runs = [r for r in runs if r[4] > 1] or runs
    out = [((a.lines(r[0])[0], a.lines(r[1])[1]), (b.lines(r[2])[0], b.lines(r[3])[1])) for r in runs]
    out.sort(key=lambda p: -(p[0][1] - p[0][0]))
    return sorted(out[:MAX_PASSAGES])


def find_code_copies(prints: dict[str, Fingerprints], bar: float, min_fingerprints: int = 1,
                     per_student: int = MAX_MATCHES) -> list[CodePair]:
    """The pairs of students whose shared fingerprints reach `bar` of the smaller set, most alike first:
    for each student, the `per_student` most alike of theirs (a ring copying one text would otherwise
    give each member a list of everyone, and a passage search per pair).

    Students with fewer than `min_fingerprints` are left out. The counts come from one product of a
    0/1 student-by-fingerprint matrix over the fingerprints that two or more students hold.
    """
    names = sorted(s for s, fp in prints.items() if len(fp.at) >= max(1, min_fingerprints))
    holders: dict[int, list[int]] = {}
    for i, name in enumerate(names):
        for h in prints[name].at:
            holders.setdefault(h, []).append(i)
    common = [ix for ix in holders.values() if len(ix) > 1]
    if not common:
        return []
    incidence = np.zeros((len(names), len(common)), dtype=np.float32)
    for j, ix in enumerate(common):
        incidence[ix, j] = 1.0
    counts = incidence @ incidence.T
    sizes = np.array([len(prints[n].at) for n in names], dtype=np.float32)
    smaller = np.minimum.outer(sizes, sizes)
    share = np.triu(counts / smaller, k=1)
    found = sorted(((-float(share[i, j]), int(i), int(j)) for i, j in zip(*np.nonzero(share >= bar - 1e-9))))
    kept: dict[int, int] = {}
    chosen = []
    for _, i, j in found:
        if kept.get(i, 0) < per_student or kept.get(j, 0) < per_student:
            kept[i], kept[j] = kept.get(i, 0) + 1, kept.get(j, 0) + 1
            chosen.append((i, j))
    pairs = []
    for i, j in chosen:
        a, b = prints[names[i]], prints[names[j]]
        shared = a.at.keys() & b.at.keys()
        gap = 2 * (a.k + 8)
        pairs.append(CodePair(a=names[i], b=names[j], similarity=round(len(shared) / min(len(a.at), len(b.at)), 3),
                              shared=len(shared), passages=passages(a, b, shared, gap)))
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b))
