"""One exception hierarchy; user-facing errors print as one line and a hint, no traceback."""

from __future__ import annotations

from pathlib import Path


class AutograderError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UserError(AutograderError):
    """The user asked for something that can't be done: wrong name, bad path, bad option."""

    exit_code = 2


class ConfigError(UserError):
    """A lab spec or rubric on disk is malformed; names the file, the field and a fix."""

    def __init__(self, path: Path | str, field: str | None, problem: str, hint: str | None = None):
        where = f"{path}" + (f": {field}" if field else "")
        super().__init__(f"{where}: {problem}", hint)
        self.path = Path(path)
        self.field = field
        self.problem = problem
