"""The reflection read from a written report (`source: report`): Markdown, text and PDF, a section by its
heading, hostile PDFs (bombs, endless streams, encryption, damage, a scan) read in a bounded child
process, the cohort's originality pass over reports, and the plumbing from a hand-in to the criterion.

PDFs are written by hand here (tests/fixtures has none): a page is a content stream of text lines.
"""

from __future__ import annotations

import ast
import io
import re
import resource
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pydantic import ValidationError

from autograder.criteria.analysis import documents
from autograder.criteria.analysis.documents import ReportFile, find_section, normalise
from autograder.criteria.base import Evidence
from autograder.criteria.reflection import Reflection, ReflectionSpec, reference_text, template_text
from autograder.results import ExecutionResult

CORPUS = yaml.safe_load((Path(__file__).parent / "fixtures" / "reflections.yaml").read_text(encoding="utf-8"))
ANSWERS = {a["id"]: a["text"] for a in CORPUS["answers"]}
GOOD = ANSWERS["good-loans"]
QUESTION = " ".join(CORPUS["prompt"].split("\n", 2)[2].split())  # the prompt cell's text, without its heading
METHOD = ("We trained a small convolutional network with two layers of filters and a linear head, using the "
          "Adam optimiser with a learning rate of 0.001 for ten epochs, and kept the epoch with the best "
          "validation accuracy.")
TEMPLATE = f"""# Lab report

## Method

Describe your network and how you trained it.

## Ethics

{QUESTION}

YOUR ANSWER HERE

## References
"""


# --- PDFs written by hand --------------------------------------------------------------------------------


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def page(lines: list[str]) -> bytes:
    """A content stream that shows the lines one under another."""
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 770 Td", *(f"({_escape(line)}) Tj T*" for line in lines), "ET"]
    return "\n".join(ops).encode("latin-1")


def wrap(text: str, width: int = 90) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines


def pdf(pages: list[bytes | None], compress: bool = False) -> bytes:
    """A valid PDF: one page per content stream (None: a page with nothing on it, as a scan's text layer)."""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
    kids, number = [], 4
    for content in pages:
        kids.append(number)
        if content is None:
            objects[number] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"
            number += 1
            continue
        data = zlib.compress(content) if compress else content
        flate = b" /Filter /FlateDecode" if compress else b""
        objects[number + 1] = b"<< /Length %d%s >>\nstream\n" % (len(data), flate) + data + b"\nendstream"
        objects[number] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                           b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (number + 1))
        number += 2
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return assemble(objects)


def assemble(objects: dict[int, bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
                    for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def shared_pages(content: bytes, count: int, compress: bool = True) -> bytes:
    """`count` pages that all show one content stream: a small file with many pages."""
    data = zlib.compress(content, 9) if compress else content
    flate = b" /Filter /FlateDecode" if compress else b""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               4: b"<< /Length %d%s >>\nstream\n" % (len(data), flate) + data + b"\nendstream"}
    kids = list(range(5, 5 + count))
    for k in kids:
        objects[k] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                      b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>")
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), count)
    return assemble(objects)


def report_pdf(answer: str = GOOD, filler_pages: int = 0) -> bytes:
    """A report as a student exports it: a method page (and filler pages), then the Ethics section."""
    first = page(["Lab report", "", "1 Method", *wrap(METHOD)])
    filler = [page(wrap(METHOD * 6)) for _ in range(filler_pages)]
    ethics = page(["2 Ethics", *wrap(answer), "", "3 References", "LeCun et al. 1998."])
    return pdf([first, *filler, ethics])


def encrypted(user_password: str) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(report_pdf())))
    writer.encrypt(user_password=user_password, owner_password="the-owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- a stand-in lab and the criterion -------------------------------------------------------------------


@pytest.fixture
def lab(tmp_path):
    """What the criterion reads of a lab: files.report, the released template, the model report."""
    released, hidden = tmp_path / "assignments", tmp_path / "reference"
    released.mkdir()
    hidden.mkdir()
    (released / "report.md").write_text(TEMPLATE, encoding="utf-8")
    (hidden / "report.md").write_text(TEMPLATE.replace("YOUR ANSWER HERE", CORPUS["reference"]), encoding="utf-8")
    return SimpleNamespace(name="mlp", spec=SimpleNamespace(files=SimpleNamespace(report="report"), notebook=None),
                           release_dir=released, reference_dir=hidden, public_only=False, notebook_path=None)


@pytest.fixture(autouse=True)
def keywords_only(monkeypatch):
    """Keywords decide the themes: fast, and the same with or without the model installed."""
    monkeypatch.setenv("AUTOGRADER_EMBEDDINGS", "off")


def criterion(**changes) -> Reflection:
    rubric = {k: v for k, v in CORPUS["rubric"].items() if k not in ("cell", "prompt")}
    return Reflection(ReflectionSpec.model_validate({"id": "ethics", "kind": "reflection", "source": "report",
                                                     "section": "Ethics", **rubric, **changes}))


def check(lab, name: str | None, data: bytes | str = b"", crit: Reflection | None = None, status: str = "ok"):
    if isinstance(data, str):
        data = data.encode("utf-8")
    report = None if name is None else ReportFile(name=name, data=data)
    evidence = Evidence(lab=lab, execution=ExecutionResult(status=status), notebook=None, probes=None, labels={},
                        report=report)
    return (crit or criterion()).check(evidence)


def markdown_report(answer: str = GOOD) -> str:
    return TEMPLATE.replace("Describe your network and how you trained it.", METHOD).replace(
        f"{QUESTION}\n\nYOUR ANSWER HERE", answer) + "\n- LeCun et al. 1998.\n"


# --- reading each kind -----------------------------------------------------------------------------------


def test_a_markdown_report_is_judged_on_its_section(lab):
    result = check(lab, "report.md", markdown_report())
    assert (result.status, result.details["reason"]) == ("pass", "themes-covered"), result.message
    words = result.details["words"]
    assert result.message.endswith(f"Read: section 'Ethics' of report.md ({words} words).")
    assert result.details["text"].split() == GOOD.split()  # neither the method nor the references
    assert result.details["ends_at"] == "the next heading 'References'"
    assert result.details["source"] == "report" and result.details["own_message"] == result.message


def test_a_text_report_with_a_plain_heading_line(lab):
    text = f"Lab report\n\n1. Method\n{METHOD}\n\n2. Ethics:\n{GOOD}\n\n3. References\nLeCun et al. 1998.\n"
    result = check(lab, "report.txt", text)
    assert result.status == "pass", result.message
    # the section ends at the template's next heading, found as a numbered line of its own
    assert result.details["text"].split() == GOOD.split()
    assert "section 'Ethics' of report.txt" in result.message


def test_the_whole_report_without_a_section(lab):
    result = check(lab, "report.txt", GOOD, crit=criterion(section=None))
    assert result.status == "pass", result.message
    assert result.message.endswith(f"Read: the whole of report.txt ({result.details['words']} words).")
    assert result.details["section"] is None


def test_a_pdf_report(lab):
    result = check(lab, "report.pdf", report_pdf(filler_pages=3))
    assert (result.status, result.details["reason"]) == ("pass", "themes-covered"), result.message
    assert result.details["pages"] == result.details["pages_read"] == 5
    assert result.details["text"].split() == GOOD.split()
    assert "section 'Ethics' of report.pdf" in result.message
    assert result.details["ends_at"] == "the next heading '3 References'"


def test_a_compressed_pdf_reads_the_same(lab):
    data = pdf([page(["Ethics", *wrap(GOOD)])], compress=True)
    assert check(lab, "report.pdf", data).details["text"].split() == GOOD.split()


def test_what_the_student_reads_of_a_report_in_their_own_name(lab):
    """The file shown is the member as handed in, escaped; never a host path."""
    result = check(lab, "sub dir/Min rapport\u202e.md", markdown_report())
    assert "Min rapport\\u202e.md" in result.message and "sub dir" not in result.message


# --- the judgement, as for a cell -----------------------------------------------------------------------


def test_the_template_and_the_question_do_not_count(lab):
    untouched = check(lab, "report.md", TEMPLATE)
    assert (untouched.status, untouched.details["reason"]) == ("fail", "template"), untouched.message
    empty = check(lab, "report.md", TEMPLATE.replace(QUESTION, ""))
    assert (empty.status, empty.details["reason"]) == ("fail", "empty"), empty.message
    assert "under the heading 'Ethics'" in empty.advice
    pasted = check(lab, "report.md", markdown_report(f"{QUESTION}\n\n{ANSWERS['short-one-liner']}"))
    assert pasted.status == "fail" and pasted.details["reason"] in ("too-short", "template")


def test_a_question_given_as_text_counts_as_template(lab):
    crit = criterion(prompt=QUESTION)
    assert QUESTION in template_text(lab, crit.spec)
    result = check(lab, "report.md", markdown_report(ANSWERS["prompt-reworded"]), crit=crit)
    assert (result.status, result.details["reason"]) == ("fail", "near-template"), result.message


def test_short_stuffed_and_model_answers(lab):
    assert check(lab, "report.md", markdown_report(ANSWERS["short-one-liner"])).details["reason"] == "too-short"
    assert check(lab, "report.md", markdown_report(ANSWERS["stuffed-list"])).status == "review"
    copy = check(lab, "report.md", markdown_report(ANSWERS["reference-verbatim"]))
    assert (copy.status, copy.details["reason"]) == ("review", "reference-copy"), copy.message
    assert reference_text(lab, criterion().spec).split() == f"{QUESTION} {CORPUS['reference']}".split()
    lab.public_only = True  # the self-check's view has no model report
    assert reference_text(lab, criterion().spec) is None


# --- what keeps a report from being judged --------------------------------------------------------------


def test_no_report_handed_in(lab):
    result = check(lab, None)
    assert (result.status, result.details["reason"]) == ("fail", "no-report")
    assert result.message == "No report handed in (report.pdf, report.md or report.txt)."
    # a hand-in that could not be taken at all: its reason is the verdict's, this one is skipped
    assert check(lab, None, status="invalid").status == "skipped"


def test_a_missing_section_names_the_heading(lab):
    result = check(lab, "report.md", markdown_report().replace("## Ethics", "## Discussion"))
    assert (result.status, result.details["reason"]) == ("fail", "no-section")
    assert "no section 'Ethics'" in result.message and "'Ethics'" in result.advice
    # in a PDF whose reader ran the heading into a line, the words are there: a teacher decides
    unclear = check(lab, "report.pdf", pdf([page([f"Ethics {GOOD[:80]}", *wrap(GOOD[80:])])]))
    assert (unclear.status, unclear.details["reason"]) == ("review", "section-unclear")


def test_a_report_that_is_not_utf8(lab):
    result = check(lab, "report.txt", markdown_report().encode("latin-1", "replace").replace(b"the", b"\xf6the"))
    assert (result.status, result.details["reason"]) == ("fail", "not-utf8")
    assert "report.txt is not UTF-8 text" in result.message and "UTF-8" in result.message
    # UTF-16 with its byte-order mark (Notepad's "Unicode") is read
    assert check(lab, "report.md", markdown_report().encode("utf-16")).status == "pass"


def test_a_scan_goes_to_review(lab):
    result = check(lab, "report.pdf", pdf([None, None, page([])]))
    assert (result.status, result.details["reason"]) == ("review", "scan")
    assert result.message == "The report's PDF holds no text, only images: a teacher will read it."
    assert "3 pages" in result.details["staff_detail"]


def test_a_password_protected_pdf_fails_and_a_permissions_only_one_is_read(lab):
    result = check(lab, "report.pdf", encrypted("secret"))
    assert (result.status, result.details["reason"]) == ("fail", "password")
    assert "protected by a password" in result.message and "without one" in result.message
    assert check(lab, "report.pdf", encrypted("")).status == "pass"  # an owner password only: opens for anyone


def test_an_encryption_the_grader_cannot_open_goes_to_review(lab):
    """AES (declared here over RC4 keys) needs the `cryptography` package, which the grader does not have."""
    data = encrypted("").replace(b"/V 2\n/R 3\n", b"/V 4\n/R 4\n/CF << /StdCF << /CFM /AESV2 /AuthEvent /DocOpen "
                                 b"/Length 16 >> >>\n/StmF /StdCF\n/StrF /StdCF\n")
    data = re.sub(rb"startxref\n\d+", b"startxref\n%d" % (data.rfind(b"\nxref\n") + 1), data)
    result = check(lab, "report.pdf", data)
    assert result.status == "review", result.message
    try:
        import cryptography  # noqa: F401
    except ImportError:
        assert result.details["reason"] == "encrypted" and "can't open" in result.message


@pytest.mark.parametrize(("data", "status", "reason"), [
    (b"", "fail", "not-pdf"),
    (b"PK\x03\x04 a docx renamed", "fail", "not-pdf"),
    (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF", "review",
     "unreadable"),
    (pdf([page(["Ethics", "text"])])[:300], "review", "unreadable"),  # cut off in the middle
    (pdf([]), "fail", "no-pages"),
])
def test_malformed_pdfs(lab, data, status, reason):
    result = check(lab, "report.pdf", data)
    assert (result.status, result.details["reason"]) == (status, reason), result.message
    assert "Traceback" not in result.message and "/tmp" not in result.message


def test_a_decompression_bomb_is_bounded(lab, tmp_path):
    """A 0.3 MB file whose one stream inflates to 300 MB: pypdf's cap stops it, well inside the child's
    memory limit; the grader's own memory does not grow."""
    packer = zlib.compressobj(6)
    zeros = bytes(1024**2)
    bomb = b"".join([*(packer.compress(zeros) for _ in range(300)), packer.flush()])
    data = shared_pages(b"", 1, compress=False).replace(b"<< /Length 0 >>\nstream\n\nendstream",
                                                        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb)
                                                        + bomb + b"\nendstream")
    data = re.sub(rb"startxref\n\d+", b"startxref\n%d" % (data.rfind(b"\nxref\n") + 1), data)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    result = check(lab, "report.pdf", data)
    assert time.monotonic() - start < documents.PDF_TIMEOUT
    assert (result.status, result.details["reason"]) == ("review", "too-complex"), result.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB
    # The reading child's own peak, from a process that has no other children (this one has run kernels).
    (tmp_path / "bomb.pdf").write_bytes(data)
    probe = subprocess.run([sys.executable, "-c", (
        "import resource, sys; from pathlib import Path\n"
        "from autograder.criteria.analysis.documents import ReportFile, read_document\n"
        "read_document(ReportFile(name='report.pdf', data=Path(sys.argv[1]).read_bytes()))\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"), str(tmp_path / "bomb.pdf")],
        capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert int(probe.stdout.split()[-1]) < documents.PDF_MEMORY // 1024


def test_an_endless_content_stream_is_stopped_at_the_time_limit(lab, monkeypatch):
    """Fifty pages of 15,000 text operators each (under pypdf's cap on one stream): the wall clock ends it."""
    monkeypatch.setattr(documents, "PDF_TIMEOUT", 1.5)
    data = shared_pages(b"BT /F1 11 Tf 72 700 Td (a) Tj ET\n" * 15_000, 50)
    start = time.monotonic()
    result = check(lab, "report.pdf", data)
    assert time.monotonic() - start < 5
    assert (result.status, result.details["reason"]) == ("review", "too-complex"), result.message
    assert "took more than" in result.details["staff_detail"]


def test_a_huge_page_count_is_refused_quickly(lab):
    start = time.monotonic()
    result = check(lab, "report.pdf", shared_pages(page(["filler"]), 20_000))
    assert time.monotonic() - start < 10
    assert (result.status, result.details["reason"]) == ("review", "too-complex")


def test_pages_past_the_cap_are_not_read_and_a_section_there_goes_to_review(lab, monkeypatch):
    monkeypatch.setattr(documents, "MAX_PAGES", 3)
    data = pdf([page(wrap(METHOD))] * 4 + [page(["Ethics", *wrap(GOOD)])])
    result = check(lab, "report.pdf", data)
    assert (result.status, result.details["reason"]) == ("review", "section-not-read"), result.message
    assert result.details["cut"] == "pages" and "first 3 of its 5 pages" in result.message


def test_a_pdf_is_read_once_per_content(lab, monkeypatch):
    data = report_pdf()
    assert check(lab, "report.pdf", data).status == "pass"
    monkeypatch.setattr(documents, "_read_pdf", lambda *a: pytest.fail("read again"))
    assert check(lab, "report.pdf", data).status == "pass"


def test_the_worker_imports_nothing_of_ours():
    """It is run by path in a process of its own, with the standard library and pypdf only."""
    tree = ast.parse(documents.WORKER.read_text())
    top = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert top <= {"__future__", "io", "json", "logging", "resource", "sys", "time", "pypdf"}


# --- sections --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("heading", "same"), [
    ("## 3.2 **Ethics**:", True), ("ETHICS", True), ("# Ethics #", True), ("Ethics and society", False),
    ("IV. Ethics", True),
])
def test_headings_compare_without_marks_numbers_or_case(heading, same):
    assert (normalise(heading) == "ethics") is same


def test_sections_in_markdown():
    text = ("# Report\n\nEthics\n======\n\nFirst part.\n\n## Sub\n\nStill ethics.\n\n```\n# not a heading\n```\n\n"
            "Results\n=======\n\nNumbers.\n")
    found = find_section(text, "markdown", "ethics")
    assert found is not None and "Still ethics." in found.text and "# not a heading" in found.text
    assert "Numbers" not in found.text and found.ends_at == "the next heading 'Results'"
    # a table of contents names the heading too: the longest section wins
    toc = "Contents\nEthics\nResults\n\n" + text
    assert find_section(toc, "text", "Ethics", ["Results"]).text == found.text  # type: ignore[union-attr]
    assert find_section(text, "markdown", "Discussion") is None


# --- the rubric --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "error"), [
    ({"source": "cell", "section": "Ethics"}, "set `source: report`"),
    ({"source": "report", "cell": "reflection"}, "remove `cell`"),
    ({"source": "pdf"}, "source"),
    ({"source": "report", "section": ""}, "section"),
])
def test_rubric_mistakes_are_refused(changes, error):
    with pytest.raises(ValidationError, match=re.escape(error)):
        ReflectionSpec.model_validate({"id": "r", "kind": "reflection", **changes})


def test_the_lab_must_name_a_report_and_the_template_the_section(lab):
    spec = criterion().spec
    assert list(spec.lab_problems(lab)) == [] and spec.references() == []
    wrong = criterion(section="Discussion").spec
    [problem] = list(wrong.lab_problems(lab))
    assert problem.field == "section" and "'Discussion'" in problem.problem and "'Ethics'" in problem.hint
    lab.spec.files.report = None
    [problem] = list(spec.lab_problems(lab))
    assert problem.field == "source" and "files: {report: report}" in problem.hint


# --- the cohort and the plumbing ----------------------------------------------------------------------------


def test_two_reports_that_copy_each_other_go_to_review(lab, tmp_path):
    from autograder.grading.cohort import cross_check
    from autograder.labs.rubric import decide
    from autograder.results import SubmissionResult
    from autograder.store import Store

    crit = criterion()
    lab.rubric = SimpleNamespace(criteria=[crit.spec])
    hand_ins = {"ana": ("report.md", markdown_report(ANSWERS["good-dermatology"]).encode()),
                "bo": ("report.pdf", report_pdf(ANSWERS["copy-dermatology"])),
                "cy": ("report.txt", f"Ethics\n{ANSWERS['good-elections']}\n".encode())}
    store = Store(tmp_path / "grades.db")
    try:
        for student, (name, data) in hand_ins.items():
            c = check(lab, name, data, crit=crit)
            assert c.status == "pass", (student, c.message)
            store.record(SubmissionResult(lab="mlp", student=student, submission_hash=student * 8, lab_version="1",
                                          rubric_hash="r", verdict=decide([c]), criteria=[c]))
        changed = cross_check(lab, store)
        assert set(changed) == {"ana", "bo"}
        ana, bo = (changed[s].criteria[0] for s in ("ana", "bo"))
        assert ana.status == bo.status == "review" and changed["ana"].verdict == "review"
        assert [m["student"] for m in ana.details["similar_to"]] == ["bo"]
        # the student is told which part was read, never the other student or their text
        assert "very similar to another student's" in bo.message and "Read: section 'Ethics' of report.pdf" in \
            bo.message
        assert "ana" not in bo.message and ANSWERS["good-dermatology"][:40] not in bo.message + bo.advice
    finally:
        store.close()


def test_the_judge_reads_the_report_intake_found(tmp_path):
    from autograder.grading.intake import IntakeSpec, take_folder
    from autograder.grading.judge import _report

    folder = tmp_path / "ana"
    folder.mkdir()
    (folder / "mlp.py").write_text("def f():\n    return 1\n")
    (folder / "report.md").write_text(markdown_report(), encoding="utf-8")
    spec = IntakeSpec(lab="mlp", modules_only=True, student_files=["mlp.py"], report="report")
    sub = take_folder("ana", folder, spec)
    assert sub.problem is None, sub.problem
    report = _report(sub)
    assert report is not None and report.shown == "report.md" and report.data == markdown_report().encode()
    (folder / "report.md").unlink()  # gone between intake and judging: a reason, not "not handed in"
    assert _report(sub).error  # type: ignore[union-attr]
    assert _report(take_folder("ana", folder, spec)) is None


# --- on the toy course: the self-check finds the report, and a batch grades from reports --------------------


@pytest.fixture
def report_course(course):
    """The toy course with a report: lab.yaml names it, the rubric reads its Ethics section."""
    lab_yaml = course / "assignments" / "toy" / "lab.yaml"
    lab_yaml.write_text(lab_yaml.read_text() + "files:\n  report: report\n")
    (course / "assignments" / "toy" / "report.md").write_text(TEMPLATE, encoding="utf-8")
    rubric = course / "rubrics" / "toy.yaml"
    rubric.write_text(rubric.read_text().replace(
        "    kind: reflection\n", "    kind: reflection\n    source: report\n    section: Ethics\n").replace(
        "    originality: false\n", ""))
    return course


def test_the_self_check_reads_the_report_beside_the_notebook(report_course, tmp_path):
    import nbformat
    from make_course import SOLUTION, notebook

    from autograder.grading.selfcheck import submission_at
    from autograder.labs.lab import load_lab

    lab = load_lab("toy", report_course, public_only=True)
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(notebook(SOLUTION), work / "toy.ipynb")
    (work / "report.md").write_text(markdown_report(), encoding="utf-8")
    (work / "notes.md").write_text("scratch", encoding="utf-8")
    for where in (work, work / "toy.ipynb"):
        sub = submission_at(lab, where)
        assert sub.report == "report.md" and sub.report_bytes() == markdown_report().encode()


@pytest.mark.slow
def test_a_batch_graded_from_reports(report_course, tmp_path, store):
    """Real notebooks and the pipeline: Ana's Markdown report passes on its own, Bo's PDF copies it (both go
    to review after the cohort pass), Cy handed in no report (U, saying so)."""
    import nbformat
    from make_course import SOLUTION, notebook

    from autograder.grading.intake import IntakeSpec, discover
    from autograder.grading.pipeline import Grader, Options
    from autograder.labs.lab import load_lab
    from autograder.sandbox import get_backend

    folder = tmp_path / "hand-ins"
    for student in ("ana", "bo", "cy"):
        (folder / student).mkdir(parents=True)
        nbformat.write(notebook(SOLUTION), folder / student / "toy.ipynb")
    (folder / "ana" / "report.md").write_text(markdown_report(ANSWERS["good-dermatology"]), encoding="utf-8")
    (folder / "bo" / "report.pdf").write_bytes(report_pdf(ANSWERS["copy-dermatology"]))
    lab = load_lab("toy", report_course)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    grader = Grader(lab, store, get_backend("local"), Options(jobs=2, scratch=scratch))
    results = {r.student: r for r in grader.grade_all(discover(folder, IntakeSpec.of(lab.spec)))}
    latest = {r.student: r for r in store.latest("toy")}
    ethics = {s: next(c for c in r.criteria if c.id == "reflection") for s, r in latest.items()}
    assert {s: r.verdict for s, r in latest.items()} == {"ana": "review", "bo": "review", "cy": "U"}, \
        {s: c.message for s, c in ethics.items()}
    assert ethics["cy"].message == "No report handed in (report.pdf, report.md or report.txt)."
    assert "Read: section 'Ethics' of report.pdf" in ethics["bo"].message
    assert ethics["ana"].details["own_status"] == "pass" and ethics["ana"].details["similar_to"][0]["student"] == "bo"
    assert results["cy"].submission_hash != results["ana"].submission_hash
