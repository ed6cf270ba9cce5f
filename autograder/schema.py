"""JSON Schemas of the files course staff write, for editors and CI checks."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from autograder.labs.rubric import Rubric
from autograder.labs.spec import LabSpec
from autograder.publish.course import CourseSpec
from autograder.results import SubmissionResult

SCHEMAS: dict[str, type[BaseModel]] = {
    "lab.schema.json": LabSpec, "rubric.schema.json": Rubric, "result.schema.json": SubmissionResult,
    "course.schema.json": CourseSpec,
}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = folder / name
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
