"""The child process that reads a student's PDF: the PDF on stdin, one line of JSON on stdout.

A PDF is hostile input parsed on the grading host, outside the sandbox, so the parsing happens here,
in a process of its own that `documents.py` starts with a wall-clock timeout and that caps itself
before reading a byte: address space, CPU seconds, no files written, and pypdf's own limits on what one
stream may inflate to. A decompression bomb or an endless content stream ends this process (or is cut
short), never the batch. Run by path (`python -I pdf_worker.py PAGES CHARS MEMORY CPU`), it imports the
standard library and pypdf only, never `autograder`, so it starts in a fraction of a second.

The answer is {"status": ..., ...}: `ok` (text, pages, read, cut: why it stopped early, errors of single
pages), `encrypted` (password: True when only a password opens it, False when pypdf can't decrypt its kind
of encryption), `too-big` (a pypdf limit was reached) or `unreadable` (error).
"""

from __future__ import annotations

import json
import sys


def _limit(memory: int, cpu: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX: the parent's wall clock still bounds us
        return
    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, 0),
                         (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # pragma: no cover - a hard limit already lower: keep it
            pass


# Pages in the page tree: pypdf walks the whole tree before the first page (7 s for 20,000), so a PDF with more
# is too large to read, not read in part. A lab report has 5-30 pages.
MAX_PAGE_TREE = 2000


def _configure(pypdf) -> None:
    """pypdf's own caps, far below its defaults: a report's page holds kilobytes, not 75 MB."""
    overwrite = getattr(pypdf, "overwrite_configuration", None)
    if overwrite is None:  # pragma: no cover - pypdf < 7: the rlimits alone bound it
        return
    mb = 1024**2
    overwrite(maximum_declared_stream_length=32 * mb, zlib_maximum_output_length=16 * mb,
              lzw_maximum_output_length=16 * mb, run_length_maximum_output_length=16 * mb,
              array_based_stream_maximum_output_length=16 * mb, stream_decoding_work_maximum_length=64 * mb,
              image_maximum_buffer_size=16 * mb, stream_parsing_work_maximum_count=200_000,
              page_tree_maximum_entries=MAX_PAGE_TREE, page_tree_maximum_page_entries=64 * MAX_PAGE_TREE,
              jbig2dec_binary=None)


def extract(data: bytes, max_pages: int, max_chars: int, budget: float) -> dict:
    """The text of the first pages, within the page, character and time budgets."""
    import io
    import time

    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError

    _configure(pypdf)
    start = time.monotonic()
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner password alone (permissions) opens with the empty one
            except (DependencyError, NotImplementedError) as exc:
                return {"status": "encrypted", "password": False, "error": str(exc)}
            if not opened:
                return {"status": "encrypted", "password": True, "error": "a password is needed to open it"}
        pages = len(reader.pages)
        parts: list[str] = []
        errors: list[str] = []
        chars = 0
        cut = ""
        for page in reader.pages:
            if len(parts) >= max_pages:
                cut = "pages"
            elif chars >= max_chars:
                cut = "characters"
            elif time.monotonic() - start > budget:
                cut = "time"
            if cut:
                break
            try:
                text = page.extract_text() or ""
            except (DependencyError, FileNotDecryptedError, LimitReachedError):
                raise
            except Exception as exc:  # one broken page: keep the others, and say so
                text = ""
                errors.append(f"page {len(parts) + 1}: {type(exc).__name__}: {exc}"[:300])
            parts.append(text[:max_chars - chars])
            chars += len(parts[-1])
        text = "\n\n".join(parts)
        if errors and not text.strip():
            return {"status": "unreadable", "error": "; ".join(errors[:3])}
        return {"status": "ok", "text": text, "pages": pages, "read": len(parts), "cut": cut, "errors": errors[:3]}
    except LimitReachedError as exc:
        return {"status": "too-big", "error": str(exc)[:300]}
    except (DependencyError, FileNotDecryptedError) as exc:
        return {"status": "encrypted", "password": False, "error": str(exc)[:300]}
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError,
            AssertionError, OSError) as exc:
        return {"status": "unreadable", "error": f"{type(exc).__name__}: {exc}"[:300]}


def main() -> None:
    import logging

    max_pages, max_chars, memory, cpu = (int(a) for a in sys.argv[1:5])
    _limit(memory, cpu)
    logging.disable(logging.CRITICAL)  # pypdf's warnings about a sloppy file are not ours to print
    data = sys.stdin.buffer.read()
    try:
        answer = extract(data, max_pages, max_chars, budget=cpu / 2)
    except MemoryError:
        answer = {"status": "unreadable", "error": "MemoryError: it needs more memory than a report may"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
