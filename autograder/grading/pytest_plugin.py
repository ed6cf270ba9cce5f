"""The pytest plugin that runs a lab's hidden tests on the host, against one submission's evidence.

Tests ask for what they need by fixture name (see docs/lab-authoring.md); they never see the
student's objects, only plain arrays the probes produced, the labels and the executed notebook.
Two markers shape how a result counts: `@pytest.mark.public` lets the student see the test's name
and failure message, `@pytest.mark.weight(w)` gives its share of the score (default 1).

Whether a test needs the notebook is decided by what it asks for: the `notebook` fixture, or a probe
output whose probe asked for an export (`ProbeData.needs_notebook`). When the notebook stopped, such
a test is skipped (the stopped run is reported once, by notebook-runs), and every other test still
runs: one that reads probes of the student's modules judges the modules though the notebook failed.
Tests never import a student's module themselves: that would run the student's code on the host.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from autograder.criteria.analysis.calls import AST_LOCK
from autograder.criteria.base import EvidenceMissing, ProbeData
from autograder.grading.probe import helper_modules, import_probes
from autograder.results import HiddenTestResult
from autograder.sandbox.runner import scrub_paths


class ProbeOutputs(Mapping):
    """probe name -> {key: array}; asking for a probe that failed fails the test with its reason."""

    def __init__(self, data: ProbeData) -> None:
        self._data = data

    def __getitem__(self, name: str) -> dict[str, np.ndarray]:
        try:
            return self._data.get(name)
        except EvidenceMissing as missing:
            if self._data.needs_notebook(name):
                pytest.skip(f"needs the notebook, which did not run to the end (probe {name})")
            pytest.fail(missing.message, pytrace=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data.arrays)

    def __len__(self) -> int:
        return len(self._data.arrays)


@dataclass
class TestContext:
    lab: Any
    probes: ProbeData
    notebook: Any
    metrics: dict[str, float] = field(default_factory=dict)
    ran: bool = True  # the notebook ran to its end (or the lab has none): False skips the tests that need it


MARKERS = {
    "public": "public: the student may see this test's name and failure message",
    "weight": "weight(w): this test's share of the hidden-tests score, a number >= 0 (default 1)",
}


class JudgePlugin:
    def __init__(self, context: TestContext) -> None:
        self.ctx = context
        self.results: list[HiddenTestResult] = []
        self.errors: list[str] = []
        self.marks: dict[str, tuple[bool, float]] = {}  # node id -> (public, weight)
        self.kit: dict[str, bool] = {}  # node id -> whether the test is one of the public ones students have

    def pytest_configure(self, config: pytest.Config) -> None:
        for line in MARKERS.values():
            config.addinivalue_line("markers", line)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            weight = 1.0
            mark = item.get_closest_marker("weight")
            if mark is not None:
                given = _weight(mark)
                if given is None:
                    self.errors.append(f"{item.nodeid}: @pytest.mark.weight takes one number >= 0, "
                                       f"not {mark.args or mark.kwargs}")
                else:
                    weight = given
            self.marks[item.nodeid] = (item.get_closest_marker("public") is not None, weight)
            self.kit[item.nodeid] = self.ctx.lab.public_test(Path(item.path))

    @pytest.fixture
    def probe_outputs(self) -> ProbeOutputs:
        return ProbeOutputs(self.ctx.probes)

    @pytest.fixture
    def inputs(self) -> dict[str, np.ndarray]:
        return self.ctx.lab.inputs()

    @pytest.fixture
    def labels(self) -> dict[str, np.ndarray]:
        return self.ctx.lab.labels()

    @pytest.fixture
    def notebook(self):
        if self.ctx.lab.spec.notebook is None:
            pytest.fail("the lab has no notebook: a test of a module-only lab reads probe outputs", pytrace=False)
        if not self.ctx.ran:
            pytest.skip("needs the notebook, which did not run to the end")
        if self.ctx.notebook is None:
            pytest.fail("the executed notebook is missing or larger than the harness keeps", pytrace=False)
        return self.ctx.notebook

    @pytest.fixture
    def record_metric(self) -> Callable[[str, float], None]:
        def record(name: str, value: float) -> None:
            self.ctx.metrics[str(name)] = float(value)

        return record

    @pytest.fixture
    def probes_module(self, request: pytest.FixtureRequest) -> ModuleType:
        """The probes of the test's own tier: public tests get the public probes, hidden tests the hidden."""
        lab = self.ctx.lab
        public = lab.public_test(Path(request.path))
        path = lab.public_probes_path if public or lab.public_only else lab.probes_path
        if not path.is_file():
            pytest.fail(f"the lab has no {path.relative_to(lab.root)}", pytrace=False)
        return import_probes(path, lab.helper_files())

    @pytest.fixture
    def lab(self):
        return self.ctx.lab

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(f"collecting {report.nodeid or 'tests'}: {_first_line(report.longreprtext)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = report.outcome if report.when == "call" else ("skipped" if report.skipped else "error")
            public, weight = self.marks.get(report.nodeid, (False, 1.0))
            kit = self.kit.get(report.nodeid, False)
            self.results.append(HiddenTestResult(name=name, outcome=outcome, message=_message(report),
                                                 public=public or kit, weight=weight, kit=kit))

    def pytest_internalerror(self, excrepr) -> None:
        self.errors.append(_first_line(str(excrepr)))


def _weight(mark: pytest.Mark) -> float | None:
    """The number of @pytest.mark.weight(w) (or weight=w), when it is one >= 0."""
    values = [*mark.args, *mark.kwargs.values()]
    if len(values) != 1 or isinstance(values[0], bool) or not isinstance(values[0], (int, float)):
        return None
    value = float(values[0])
    return value if math.isfinite(value) and value >= 0 else None


def _under(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(folder.resolve())


def _message(report: pytest.TestReport) -> str:
    if report.passed:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    if report.skipped and isinstance(report.longrepr, tuple):
        text = report.longrepr[2]
    text = text.split("\nassert ")[0]
    for prefix in ("AssertionError: ", "Failed: "):
        text = text.removeprefix(prefix)
    return scrub_paths(text.strip())[:500]  # a public test's message is shown: no course folder or work dir


def _first_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "unknown error"


def run_tests(files: list[Path], context: TestContext) -> tuple[list[HiddenTestResult], str]:
    """Run hidden test files in this process; returns the results and a harness error (or "")."""
    plugin = JudgePlugin(context)
    folders = sorted({f.parent.resolve() for f in files})
    args = [str(f) for f in files] + [
        # An empty config: the hidden tests never pick up the course repo's own pytest settings.
        "-c", os.devnull, "--rootdir", os.path.commonpath(folders), "-p", "no:cacheprovider", "-p", "no:terminal",
        "-p", "no:stepwise", "-s", "--import-mode=importlib", "-W", "ignore",
        # Its gc.collect() at unconfigure costs ~0.3 s in a process holding torch and the sentence model, most
        # of a re-judge's time; the warnings it would report are ignored above anyway.
        "-p", "no:unraisableexception",
    ]
    # pytest runs in this process and changes what is process-wide (sys.path, sys.modules, the environment)
    # and makes ASTs as it rewrites asserts: one run at a time, and never beside another thread's ast.parse.
    # A run takes well under a second against minutes of notebook.
    with AST_LOCK:
        return _run(files, folders, args, plugin, context)


def _run(files: list[Path], folders: list[Path], args: list[str], plugin: JudgePlugin,
         context: TestContext) -> tuple[list[HiddenTestResult], str]:
    saved_path = list(sys.path)
    saved_modules = set(sys.modules.copy())  # copy() is one step under the GIL; iterating is not
    # Third-party plugins of the host's environment (anyio, ...) have no business here, and loading
    # them costs time on every submission.
    saved_env = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    helpers = context.lab.helper_files() if hasattr(context.lab, "helper_files") else []
    try:
        with helper_modules(helpers, "autograder_test_helpers"):  # tests may import the probes' helpers too
            code = pytest.main(args, plugins=[plugin])
    finally:
        sys.path[:] = saved_path
        # Two labs may both have tests/test_hidden.py: never let one lab's module stand in for another's.
        for name, module in sys.modules.copy().items():
            if name not in saved_modules and any(_under(getattr(module, "__file__", None), folder)
                                                 for folder in folders):
                sys.modules.pop(name, None)
        if saved_env is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved_env
    error = "; ".join(plugin.errors)
    if not error and code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        error = f"pytest stopped with {pytest.ExitCode(code).name}"
    return plugin.results, error
