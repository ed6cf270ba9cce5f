"""A student's executed notebook as an HTML fragment a TA can read, with nothing of the student's active.

The executed notebook passed through student code, so every field may be hostile: wrong types, huge
outputs, HTML, SVG or JavaScript outputs, an "image" that is really a page. What is shown:

- markdown and raw cells as their escaped source (never rendered: Markdown passes HTML through);
- code cells' escaped source with their execution count;
- stream, text/plain and error outputs as escaped text, terminal escapes removed, each capped;
- PNG and JPEG images inline as data: URIs, only when the base64 decodes, the bytes start with the
  format's magic number (the type shown is the one the bytes have, not the one claimed) and they are
  under a size cap;
- every other MIME type (text/html, image/svg+xml, JavaScript, widgets, ...) as a note naming it, text
  types with their escaped source under it.

The page as a whole is capped too; a notebook that cannot be read gives a one-line note, never an error.
Escaping is the template's (autoescaping, see `publish.html.templates`); nothing here builds markup.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup

from autograder.notebooks import MAX_NOTEBOOK_BYTES
from autograder.publish.html import strip_ansi, templates
from autograder.workspace import read_capped

MAX_BYTES = 5_000_000  # the whole fragment, images included: a TA's page stays quick to open
MAX_IMAGE_BYTES = 1_500_000  # one decoded image; a matplotlib figure at 100 dpi is 20-100 kB
MAX_TEXT_CHARS = 10_000  # one output's or cell's text
MAX_SOURCE_CHARS = 2_000  # the escaped source of an output type that is not shown
MAX_OUTPUTS = 100  # per cell; a loop that prints in a million outputs shows the first ones and a count
OVERHEAD = 200  # what a cell or output costs the page beyond its text (its tags), so empty ones count too

IMAGE_TYPES = ("image/png", "image/jpeg")
MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
# Shown as escaped source when nothing better is there: text a TA can read.
TEXT_LIKE = ("text/", "image/svg+xml", "application/javascript", "application/json", "application/x-latex")


@dataclass
class Output:
    """One thing under a cell: text (`kind` names its style), an image, or a note about what is left out."""

    kind: Literal["stdout", "stderr", "result", "error", "image", "note", "source"]
    text: str = ""
    uri: str = ""  # a data: URI this module built from checked bytes (kind "image")


@dataclass
class Cell:
    kind: Literal["code", "markdown", "raw", "other"]
    index: int
    source: str
    count: int | None = None
    outputs: list[Output] = field(default_factory=list)


class _Budget:
    """What is left of the page's size; once spent, nothing more is shown."""

    def __init__(self, limit: int):
        self.left = limit

    def take(self, size: int) -> bool:
        self.left -= size + OVERHEAD
        return self.left >= 0


def notebook_html(nb_or_path: Path | str | Mapping[str, Any], *, max_bytes: int = MAX_BYTES,
                  max_image_bytes: int = MAX_IMAGE_BYTES, max_text_chars: int = MAX_TEXT_CHARS) -> Markup:
    """The executed notebook (a path, or the parsed JSON / an nbformat node) as safe HTML for a TA's page.

    Never raises on what the notebook holds: a missing, oversized, non-JSON or non-v4 notebook gives a
    short note in place of the cells."""
    nb, problem = _read(nb_or_path)
    cells: list[Cell] = []
    truncated = ""
    if nb is not None:
        budget = _Budget(max_bytes)
        raw_cells = nb["cells"]
        for index, raw in enumerate(raw_cells):
            cell = _cell(index, raw, budget, max_image_bytes, max_text_chars)
            if budget.left < 0:
                truncated = (f"The rest of the notebook ({len(raw_cells) - index:,} of {len(raw_cells):,} cells) is "
                             f"not shown: this view is capped at {_size(max_bytes)}.")
                if cell.outputs or cell.source:  # what fitted of the cell that spent the budget
                    cells.append(cell)
                break
            cells.append(cell)
    rendered = templates().get_template("notebook.html").render(cells=cells, problem=problem, truncated=truncated)
    return Markup(rendered)


def _read(nb_or_path: Path | str | Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    """(the notebook as a v4 JSON object with a list of cells, "") or (None, why it cannot be shown)."""
    if isinstance(nb_or_path, Mapping):
        nb: object = nb_or_path
    else:
        path = Path(nb_or_path)
        data = read_capped(path, MAX_NOTEBOOK_BYTES)
        if data is None:
            return None, (f"The notebook {path.name} is missing, not a file, or larger than "
                          f"{_size(MAX_NOTEBOOK_BYTES)}.")
        try:
            nb = json.loads(data.decode("utf-8", "replace"))
        except (ValueError, RecursionError) as e:
            return None, f"The notebook {path.name} is not valid JSON ({str(e)[:120]})."
    if not isinstance(nb, Mapping):
        return None, "The notebook is not a JSON object."
    version = nb.get("nbformat")
    if version != 4 or isinstance(version, bool):
        return None, f"The notebook's format is {str(version)[:40]!r}, not nbformat 4: not shown."
    if not isinstance(nb.get("cells"), list):
        return None, "The notebook has no list of cells."
    return nb, ""


def _text(value: object) -> str | None:
    """A notebook string field (a string, or a list of lines as nbformat writes them); None if neither."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    return None


def _capped(text: str, limit: int) -> str:
    text = strip_ansi(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n... ({len(text) - limit:,} more characters not shown)"


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _cell(index: int, raw: object, budget: _Budget, max_image: int, max_text: int) -> Cell:
    if not isinstance(raw, Mapping):
        budget.take(0)
        return Cell("other", index, "", outputs=[Output("note", "(a cell that is not a JSON object, not shown)")])
    source = _text(raw.get("source", ""))
    if source is None:
        source, note = "", [Output("note", "(the cell's source is not text, not shown)")]
    else:
        source, note = _capped(source, max_text), []
    cell_type = raw.get("cell_type")
    kind: Literal["code", "markdown", "raw", "other"] = (
        cell_type if cell_type in ("code", "markdown", "raw") else "other")
    if kind == "other":
        note.append(Output("note", f"(a cell of type {str(cell_type)[:40]!r})"))
    count = raw.get("execution_count")
    cell = Cell(kind, index, source, count if isinstance(count, int) and not isinstance(count, bool) else None,
                outputs=note)
    if not budget.take(len(source)):
        cell.source = ""
        return cell
    if kind != "code":
        return cell
    outputs = raw.get("outputs", [])
    if not isinstance(outputs, list):
        cell.outputs.append(Output("note", "(the cell's outputs are not a list, not shown)"))
        return cell
    for raw_output in outputs[:MAX_OUTPUTS]:
        for out in _output(raw_output, max_image, max_text):
            if not budget.take(len(out.text) + len(out.uri)):
                return cell
            cell.outputs.append(out)
    if len(outputs) > MAX_OUTPUTS:
        cell.outputs.append(Output("note", f"({len(outputs) - MAX_OUTPUTS:,} more outputs of this cell not shown)"))
    return cell


def _output(raw: object, max_image: int, max_text: int) -> list[Output]:
    if not isinstance(raw, Mapping):
        return [Output("note", "(an output that is not a JSON object, not shown)")]
    kind = raw.get("output_type")
    if kind == "stream":
        text = _text(raw.get("text"))
        if text is None:
            return [Output("note", "(a stream output whose text is not text, not shown)")]
        return [Output("stderr" if raw.get("name") == "stderr" else "stdout", _capped(text, max_text))]
    if kind == "error":
        lines = raw.get("traceback")
        lines = [lines] if isinstance(lines, str) else lines if isinstance(lines, list) else []
        text = "\n".join(str(line) for line in lines) or f"{raw.get('ename', '')}: {raw.get('evalue', '')}"
        return [Output("error", _capped(text, max_text))]
    if kind in ("execute_result", "display_data"):
        data = raw.get("data")
        if not isinstance(data, Mapping):
            return [Output("note", f"(a {kind} output without data, not shown)")]
        return _rich(data, max_image, max_text)
    return [Output("note", f"(an output of type {str(kind)[:40]!r}, not shown)")]


def _rich(data: Mapping[str, Any], max_image: int, max_text: int) -> list[Output]:
    """A display's data: the first image that checks out, else its text/plain; every other type named."""
    shown: list[Output] = []
    notes: list[Output] = []
    for mime in IMAGE_TYPES:
        if mime in data and not shown:
            image = _image(mime, data[mime], max_image)
            (shown if image.kind == "image" else notes).append(image)
    plain = _text(data.get("text/plain"))
    if not shown and plain is not None:
        shown.append(Output("result", _capped(plain, max_text)))
    for mime in data:
        if mime in IMAGE_TYPES or mime == "text/plain":
            continue
        name = str(mime)[:80]
        notes.append(Output("note", f"(output of type {name} not shown)"))
        source = _text(data[mime]) if not shown and str(mime).startswith(TEXT_LIKE) else None
        if source is not None:
            notes.append(Output("source", _capped(source, MAX_SOURCE_CHARS)))
    return shown + notes


def _image(mime: str, value: object, max_image: int) -> Output:
    """An inline image made from checked bytes, or a note saying why it is not shown."""
    encoded = _text(value)
    if encoded is None:
        return Output("note", f"(an {mime} output that is not base64 text, not shown)")
    encoded = "".join(encoded.split())
    if len(encoded) * 3 // 4 > max_image:
        return Output("note", f"(an {mime} image of {_size(len(encoded) * 3 // 4)}, over the "
                              f"{_size(max_image)} shown inline, not shown)")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return Output("note", f"(an {mime} output that is not valid base64, not shown)")
    actual = next((kind for magic, kind in MAGIC.items() if raw.startswith(magic)), None)
    if actual is None:
        return Output("note", f"(an {mime} output whose bytes are not a PNG or JPEG image, not shown)")
    return Output("image", f"figure ({actual})", uri=f"data:{actual};base64," + base64.b64encode(raw).decode("ascii"))
