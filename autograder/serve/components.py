"""The evidence page's components, from publish/ (contract 4 of issue 16): two texts or two code listings side
by side with what they share marked, and the student's executed notebook, all safe markup that never raises
on what a submission holds. One place to call them, so the page never reaches into their modules."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from autograder.artifacts import ExecuteArtifacts
from autograder.publish.notebook_html import notebook_html
from autograder.publish.passages import code_passages_html, shared_text_html


def text_pair(mine: str, theirs: str, student: str, other: str) -> Markup:
    return shared_text_html(mine, theirs, mine_label=student, theirs_label=other)


def code_pair(mine: str, theirs: str, passages: object, student: str, other: str) -> Markup:
    return code_passages_html(mine, theirs, passages, mine_label=student, theirs_label=other)


def notebook(execute_folder: Path) -> Markup:
    return notebook_html(ExecuteArtifacts(execute_folder).notebook)
