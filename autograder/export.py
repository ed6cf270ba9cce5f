"""Exports of recorded results: JSON for tools, CSV for spreadsheets and LMS gradebooks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Literal

from autograder.results import SubmissionResult

Format = Literal["json", "csv"]


def to_json(results: list[SubmissionResult]) -> str:
    rows = [
        {
            "student": r.student,
            "verdict": r.verdict,
            "criteria": [
                {"id": c.id, "status": c.status, "value": c.value, "threshold": c.threshold, "message": c.message,
                 "advice": c.advice,
                 "override": c.override.model_dump(mode="json") if c.override is not None else None}
                for c in r.criteria
            ],
        }
        for r in results
    ]
    return json.dumps(rows, indent=2) + "\n"


def to_csv(results: list[SubmissionResult]) -> str:
    """One row per student: verdict, then status and value per criterion (columns in rubric order)."""
    ids: list[str] = []
    for r in results:
        ids += [c.id for c in r.criteria if c.id not in ids]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", "verdict", "graded_at", "submission_hash"]
                    + [f"{i}:{part}" for i in ids for part in ("status", "value")] + ["reasons"])
    for r in results:
        by_id = {c.id: c for c in r.criteria}
        cells = []
        for i in ids:
            c = by_id.get(i)
            cells += [c.status, "" if c.value is None else c.value] if c else ["", ""]
        reasons = " | ".join(f"{c.id}: {c.message}" for c in r.failed() if c.status != "skipped")
        writer.writerow([r.student, r.verdict, r.graded_at.isoformat(), r.submission_hash[:16], *cells, reasons])
    return buf.getvalue()


def write(results: list[SubmissionResult], fmt: Format, out: Path) -> None:
    """Replace a regular file atomically (no half-written export); write through anything else
    (a symlink, a pipe, /dev/stdout) rather than replacing it with a file."""
    text = to_json(results) if fmt == "json" else to_csv(results)
    if out.exists() and (out.is_symlink() or not out.is_file()):
        with out.open("w", encoding="utf-8") as f:
            f.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
