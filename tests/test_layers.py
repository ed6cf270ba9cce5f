"""The package's rooms and the direction of their imports (docs/architecture.md draws them).

Imports go only downward: cli -> schema -> grading / publish / sandbox.build -> labs / frames -> criteria /
sandbox / store / artifacts -> notebooks / console / arrays -> the lab spec -> the models. A room may import
itself freely, never a room of its own tier or above, so that, for one, nothing below the
pipeline can reach it and the sandbox runtime never needs the image tools. Imports under
`if TYPE_CHECKING:` are for annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"

# room (a module or package prefix) -> tier; a module belongs to the longest prefix that names it.
TIERS = {
    "autograder": 0,  # the package itself: errors, results, ids, workspace
    "autograder.labs.spec": 1,  # lab.yaml's models, which the sandbox's limits come from
    "autograder.arrays": 2,
    "autograder.notebooks": 2,
    "autograder.labs.environment": 2,  # a lab's packages: what the backends check and the images hold
    "autograder.console": 2,
    "autograder.artifacts": 3,
    "autograder.store": 3,
    "autograder.sandbox": 3,
    "autograder.criteria": 3,
    "autograder.labs": 4,  # with labs.course: course.yaml and the roster, read by intake and publish alike
    "autograder.frames": 4,  # results as DataFrames for staff: over the store, under the exports
    "autograder.grading": 5,  # with grading.lms (LMS downloads) and grading.lateness, which import intake
    "autograder.publish": 5,
    "autograder.sandbox.build": 5,
    "autograder.serve": 6,  # the review app (`autograder serve`): over publish and grading
    "autograder.schema": 6,  # the JSON Schemas of every file staff write (lab, rubric, course)
    "autograder.probing": 6,  # the probe authors' API: a name that stays put
    "autograder.cli": 7,
    "autograder.__main__": 8,
}


def room(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in TIERS:
            return prefix
    raise AssertionError(f"{module} is in no room")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every autograder import that runs, at module level or inside functions."""
    found: list[tuple[int, str]] = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "autograder")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] == "autograder":
                # `from autograder.x import y` may name a submodule y: count the deepest module named.
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    known = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").is_file() or (
                        PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").is_file()
                    found.append((node.lineno, candidate if known else base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_a_room():
    assert {room(module_name(p)) for p in MODULES} <= set(TIERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    here = room(module_name(path))
    wrong = []
    for line, target in imports(path):
        there = room(target)
        if there == here or target == "autograder":
            continue
        if TIERS[there] >= TIERS[here]:
            wrong.append(f"line {line}: {target} ({there}, tier {TIERS[there]}) from {here} (tier {TIERS[here]})")
    assert not wrong, f"{path.relative_to(PACKAGE)} imports sideways or up:\n" + "\n".join(wrong)


def test_the_sandbox_runner_imports_nothing_of_ours():
    """It runs next to student code, in an image without this package: the standard library only."""
    runner = PACKAGE / "sandbox" / "runner.py"
    assert imports(runner) == []
    tree = ast.parse(runner.read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert top <= {"__future__", "argparse", "ctypes", "importlib", "json", "os", "signal", "sys", "tempfile",
                   "time", "traceback", "pathlib", "typing"}


def test_a_sideways_import_is_caught(tmp_path):
    """The checker itself: an import from publish in grading is reported (a test that can fail)."""
    fake = PACKAGE / "grading" / "_layer_probe_tmp.py"
    fake.write_text("from autograder.publish.feedback import write_feedback\n")
    try:
        here = room(module_name(fake))
        targets = [room(t) for _, t in imports(fake)]
        assert targets == ["autograder.publish"] and TIERS[targets[0]] >= TIERS[here]
    finally:
        fake.unlink()
