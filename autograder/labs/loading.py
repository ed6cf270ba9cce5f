"""Read YAML into pydantic models; every failure names the file, the field and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autograder.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# Hints for the error types a course author meets most; pydantic's own message says the rest.
_HINTS = {
    "missing": "add the field",
    "extra_forbidden": "remove it, or check its spelling against `autograder schema`",
    "union_tag_invalid": "use one of the kinds listed above",
    "union_tag_not_found": "every criterion needs a `kind`",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "greater_than": "use a larger value",
    "string_pattern_mismatch": "use lowercase letters, digits and dashes",
    "byte_size": "write a size such as 2GiB or 512MiB",
}


def field_path(loc: tuple) -> str:
    """`criteria[2].min` rather than pydantic's tuple, with union tags left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def config_error(path: Path, exc: ValidationError) -> ConfigError:
    """The first problem of a ValidationError as one ConfigError (others are listed in the hint)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    # A discriminated union reports the tag right after the list index; drop it from the field,
    # and only there: a field may share its name with a kind (`metric` of kind `metric`).
    tags = _kind_tags()
    loc = tuple(p for i, p in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and p in tags))
    hint = _HINTS.get(first["type"])
    if len(errors) > 1:
        more = f"{len(errors) - 1} more problem(s) in this file"
        hint = f"{hint}; {more}" if hint else more
    return ConfigError(path, field_path(loc) or None, first["msg"], hint)


def _kind_tags() -> set[str]:
    from autograder.criteria import CRITERIA

    return set(CRITERIA)


def read_yaml(path: Path) -> object:
    if not path.is_file():
        raise ConfigError(path, None, "file not found", "check the lab name and the project folder")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, where, f"not valid YAML: {problem}", "fix the indentation or quoting") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, "not UTF-8 text", "save the file as UTF-8") from exc


def load_model(path: Path, model: type[M], **context: object) -> M:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(path, None, "expected a mapping at the top level", "see `autograder schema`")
    try:
        return model.model_validate(data, context=context or None)
    except ValidationError as exc:
        raise config_error(path, exc) from exc
