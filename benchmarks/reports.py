"""What reading a written report costs: a typical 10-page PDF in process and in the bounded child
process the grader uses (documents.py), the child's own start, and a Markdown report, as medians.

The PDF is written like the tests' (tests/test_report_reflection.py): ten pages of about 3,000
characters (50 lines of prose) each. Not a test: run on demand and copy the table into
docs/benchmarks.md.

    python benchmarks/reports.py [-n 15]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from test_report_reflection import GOOD, METHOD, markdown_report, page, pdf, wrap  # noqa: E402

from autograder.criteria.analysis import documents  # noqa: E402


def ten_pages() -> bytes:
    prose = wrap((METHOD + " " + GOOD + " ") * 4)
    return pdf([page(["Ethics" if i == 9 else f"{i + 1} Section", *prose[:50]]) for i in range(10)], compress=True)


def median(f, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=15)
    n = parser.parse_args().n
    data = ten_pages()
    import pypdf

    def in_process() -> str:
        return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)

    def child() -> None:
        documents._cache.clear()
        doc = documents.read_document(documents.ReportFile("report.pdf", data))
        assert doc.problem is None and doc.pages == 10, doc

    def bare_start() -> None:  # the interpreter and pypdf's import, no PDF
        subprocess.run([sys.executable, "-I", "-c", "import pypdf"], check=True)

    text = markdown_report().encode()

    def markdown() -> None:
        documents._cache.clear()
        documents.read_document(documents.ReportFile("report.md", text))

    chars = len(in_process())
    rows = [("10-page PDF, pypdf in the grader's process", median(in_process, n)),
             ("the same in the bounded child process (read_document)", median(child, n)),
             ("the child's start alone (python -I, import pypdf)", median(bare_start, n)),
             ("a Markdown report (read_document)", median(markdown, n))]
    print(f"{len(data) / 1024:.0f} KiB PDF, {chars:,} characters; medians of {n}, {sys.version.split()[0]}, "
          f"pypdf {pypdf.__version__}\n")
    print("| step | median |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
