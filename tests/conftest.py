"""Fixtures: a private copy of the tiny `toy` course, notebooks made to order, and a grader on it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from make_course import SOLUTION, notebook  # noqa: E402
from page_checks import BAD_SHAPE, HOSTILE  # noqa: E402

from autograder.grading.intake import IntakeSpec, discover  # noqa: E402
from autograder.grading.pipeline import Grader, Options  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.publish.feedback import write_feedback  # noqa: E402
from autograder.sandbox import get_backend  # noqa: E402
from autograder.store import Store  # noqa: E402

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
REPO = Path(__file__).resolve().parents[1]
# The CLI picks docker whenever an engine answers; tests choose their backend explicitly.
os.environ["AUTOGRADER_BACKEND"] = "local"

# --- markers: `make test-fast` is `pytest -m "not slow"` -------------------------------------------------------
# A test that asks for one of these fixtures (as an argument, or through a fixture's arguments) runs real notebooks
# in a sandbox, so it is `slow`; one that asks for the docker backend also needs the engine and the image
# (`docker`). Tests that run notebooks otherwise (through the CLI, validate-lab, the self-check, a Grader of their
# own, a fixture taken with request.getfixturevalue) carry the markers themselves, as do those that need Chromium
# (`browser`) or a GPU (`gpu`). The markers only select: what is missing still makes a test skip, saying why (the
# docker_backend fixture, the browser tests' own checks, tests/test_gpu_hardware.py).
SLOW_FIXTURES = {"grade", "graded_cohort", "docker_graded_cohort", "toy_pages", "docker_backend"}
DOCKER_FIXTURES = {"docker_backend", "docker_graded_cohort"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if used & DOCKER_FIXTURES:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_backend():
    """The docker backend on the sandbox image, or a skip that says what is missing (CI has both:
    .ci/run starts an engine and builds the image)."""
    from autograder.sandbox import BackendSettings
    from autograder.sandbox.containers import DockerBackend

    backend = DockerBackend(BackendSettings(image=os.environ.get("AUTOGRADER_TEST_IMAGE")))
    why = backend.unavailable()
    if why:
        pytest.skip(f"docker backend unavailable: {why}")
    return backend


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A writable copy of the toy course, so a test may break its files."""
    root = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, root)
    return root


@pytest.fixture
def submissions(tmp_path: Path):
    """write(student, body=SOLUTION, reflection=None) -> path of a toy notebook in one folder."""
    folder = tmp_path / "submissions"
    folder.mkdir()

    def write(student: str, body: str = SOLUTION, reflection: str | None = None) -> Path:
        nb = notebook(body) if reflection is None else notebook(body, reflection)
        path = folder / f"{student}.ipynb"
        nbformat.write(nb, path)
        return path

    write.folder = folder
    return write


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db" / "grades.db")
    yield s
    s.close()


@pytest.fixture
def grade(course: Path, store: Store, tmp_path: Path):
    """grade(folder_or_file, backend=None (local), force=False, **limits) -> {student: SubmissionResult}, toy lab."""

    def run(source: Path, force: bool = False, jobs: int = 2, backend=None, **limits):
        lab = load_lab("toy", course)
        scratch = tmp_path / "scratch"
        scratch.mkdir(exist_ok=True)
        grader = Grader(lab, store, backend or get_backend("local"), Options(force=force, jobs=jobs, limits=limits,
                                                                            scratch=scratch))
        return {r.student: r for r in grader.grade_all(discover(source, IntakeSpec.of(lab.spec)))}

    return run


# Per-lab limits for grading the sample cohorts in tests: lab1's timeout student would otherwise wait
# out the lab's own per-cell limit.
COHORT_LIMITS = {"lab1-mlp": {"cell_timeout": 25}}


def cohort_folder(lab: str) -> Path:
    return REPO / "examples" / "submissions" / lab


def _graded_cohorts(tmp_path_factory, backend, label: str):
    """get(lab) -> ({student: result}, store), each sample cohort graded on `backend` the first time it is
    asked for; and the stores, to close at the end of the session."""
    cache: dict[str, tuple[dict, Store]] = {}

    def get(name: str):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(f"{name}-{label}")
            lab = load_lab(name, REPO)
            store = Store(tmp / "grades.db")
            grader = Grader(lab, store, backend, Options(jobs=2, limits=COHORT_LIMITS.get(name, {}), scratch=tmp))
            results = grader.grade_all(discover(cohort_folder(name), IntakeSpec.of(lab.spec)))
            cache[name] = ({r.student: r for r in results}, store)
        return cache[name]

    return get, cache


# The graded cohorts are shared, read-only: a test that records, overrides or regrades must do so in a copy of
# its own (copy the store's grades.db into tmp_path), never in these stores.
@pytest.fixture(scope="session")
def graded_cohort(tmp_path_factory):
    """graded_cohort(lab) -> ({student: result}, store): a sample cohort graded once per session on the
    local backend, shared by the lab's own tests and the self-check's agreement test."""
    get, cache = _graded_cohorts(tmp_path_factory, get_backend("local"), "local")
    yield get
    for _, store in cache.values():
        store.close()


@pytest.fixture(scope="session")
def docker_graded_cohort(tmp_path_factory, docker_backend):
    """As graded_cohort, on the docker backend (a skip that says why where it is unavailable): the labs'
    end-to-end tests hold on both backends, each cohort graded once per session on each."""
    get, cache = _graded_cohorts(tmp_path_factory, docker_backend, "docker")
    yield get
    for _, store in cache.values():
        store.close()


# --- pages: the feedback and cohort report tests, and the hostile payloads in tests/hostile/ ---------------------


@pytest.fixture(scope="session")
def toy_pages(tmp_path_factory):
    """(results, {file name: text}, out folder) for two toy students graded once on the local backend."""
    tmp = tmp_path_factory.mktemp("feedback-toy")
    root = tmp / "course"
    shutil.copytree(FIXTURE_COURSE, root)
    folder = tmp / "submissions"
    folder.mkdir()
    nbformat.write(notebook(HOSTILE), folder / "hostile.ipynb")
    nbformat.write(notebook(BAD_SHAPE), folder / "badshape.ipynb")
    lab = load_lab("toy", root)
    store = Store(tmp / "db" / "grades.db")
    grader = Grader(lab, store, get_backend("local"), Options(jobs=2, scratch=tmp))
    results = {r.student: r for r in grader.grade_all(discover(folder, IntakeSpec.of(lab.spec)))}
    out = tmp / "feedback"
    written = write_feedback(lab, store, out)
    yield results, {p.name: p.read_text(encoding="utf-8") for p in written}, out
    store.close()


@pytest.fixture(scope="module")
def lab1():
    return load_lab("lab1-mlp", REPO)
