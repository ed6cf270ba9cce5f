"""The sandbox image build and the doctor, against the real Docker engine (no mocks of docker).

Tests that need the engine ask for the `client` fixture, which skips them when none answers, and are marked
`docker`; the rest (wheel platform tags, staleness rules, the doctor without an engine) run everywhere.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import uuid
from pathlib import Path

import docker
import pytest

from autograder.errors import UserError
from autograder.sandbox.build.doctor import doctor, host_gpus, render
from autograder.sandbox.build.image import (
    BOOTSTRAP_BASE,
    DEFAULT_BASE,
    DEFAULT_IMAGE,
    LABEL,
    BuildOptions,
    bootstrap_base,
    build_image,
    combined_requirements,
    engine,
    ensure_base,
    has_image,
    image_status,
    stage_tag,
    staleness,
)
from autograder.sandbox.build.wheelhouse import Target, download_wheelhouse, manylinux_platforms, sha256_text

SANDBOX = Path(__file__).resolve().parents[1] / "sandbox"
DOCKERFILE = (SANDBOX / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=10)
        c.ping()
    except Exception as e:  # any failure to reach it means: no engine here
        pytest.skip(f"no Docker engine answers ({type(e).__name__}); start dockerd to run these tests")
    return c


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context: the real Dockerfile and a one-line requirements file."""
    folder = tmp_path / "sandbox"
    folder.mkdir()
    shutil.copyfile(SANDBOX / "Dockerfile", folder / "Dockerfile")
    (folder / "requirements.txt").write_text("cloudpickle>=3.0  # what the test image needs\n")
    return folder


def labels_for(requirements: str, torch: str = "torch==2.13.0") -> dict[str, str]:
    return {
        LABEL: "1",
        f"{LABEL}.requirements": sha256_text(combined_requirements(requirements, torch)),
        f"{LABEL}.dockerfile": sha256_text(DOCKERFILE),
        f"{LABEL}.torch": torch,
    }


# --- no engine needed -------------------------------------------------------------------------


def test_platform_tags_for_glibc_2_36_x86_64_cover_every_older_manylinux():
    tags = manylinux_platforms("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_37_x86_64" not in tags
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux_2_5_x86_64"} <= set(tags)
    # The legacy names stand right after the manylinux_2_X they alias.
    assert tags[tags.index("manylinux_2_17_x86_64") + 1] == "manylinux2014_x86_64"
    assert tags[tags.index("manylinux_2_12_x86_64") + 1] == "manylinux2010_x86_64"
    assert tags[-1] == "manylinux1_x86_64"
    assert len(tags) == len(range(5, 37)) + 3


def test_platform_tags_for_arm_start_at_manylinux2014():
    tags = manylinux_platforms((2, 31), "aarch64")
    assert tags[0] == "manylinux_2_31_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert not any("manylinux1" in t or "2_16" in t for t in tags)


def test_pip_targets_the_image_not_the_host():
    args = Target(python="3.11", abi="cp311", glibc="2.36", arch="x86_64").pip_args()
    assert args[:7] == ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms == manylinux_platforms("2.36", "x86_64")


def test_combined_requirements_drop_comments_and_add_torch_unless_empty():
    text = "# lab deps\npapermill>=2.6  # runner\n\nnumpy>=1.26\n"
    assert combined_requirements(text, "torch==2.13.0") == "papermill>=2.6\nnumpy>=1.26\ntorch==2.13.0\n"
    assert combined_requirements(text, "") == "papermill>=2.6\nnumpy>=1.26\n"
    # A comment edit is not a change of what the image holds.
    assert combined_requirements(text.replace("runner", "the runner"), "") == combined_requirements(text, "")


def test_staleness_compares_requirements_dockerfile_and_torch():
    reqs = "numpy>=1.26\n"
    labels = labels_for(reqs)
    assert staleness(labels, reqs, DOCKERFILE) == ""
    assert "requirements.txt changed" in staleness(labels, reqs + "scipy\n", DOCKERFILE)
    assert "Dockerfile changed" in staleness(labels, reqs, DOCKERFILE + "RUN true\n")
    assert "torch" in staleness(labels, reqs, DOCKERFILE, torch="torch==2.14.0")
    # torch=None compares with what the image was built with: a CUDA build is not stale for being one.
    assert staleness(labels_for(reqs, "torch==2.13.0+cu128"), reqs, DOCKERFILE) == ""
    assert "no org.autograder.sandbox label" in staleness({}, reqs, DOCKERFILE)


def test_build_options_reject_a_bad_tag():
    with pytest.raises(ValueError, match="not an image name"):
        BuildOptions(tag="My Image")


def test_engine_that_does_not_answer_is_a_user_error_with_the_fix(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(UserError, match="no Docker engine answers") as e:
        engine(timeout=2)
    assert "dockerd" in e.value.hint


def test_doctor_without_engine_reports_instead_of_raising(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    checks = {c.name: c for c in doctor(timeout=2)}
    assert checks["engine"].status == "fail" and "dockerd" in checks["engine"].fix
    assert checks["image"].status == "warn" and "not checked" in checks["image"].detail
    assert "engine" in render(list(checks.values()))


def test_pip_failure_is_a_user_error_with_pips_last_lines(tmp_path):
    target = Target(python="3.11", abi="cp311", glibc="2.36", arch="x86_64")
    with pytest.raises(UserError, match="pip could not download") as e:
        download_wheelhouse("cloudpickle==0.0.0.dev0\n", target, tmp_path / "cache")
    assert "cloudpickle" in e.value.message and "--index-url" in e.value.hint
    assert not any((tmp_path / "cache").iterdir()), "a failed download leaves no wheelhouse behind"


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch):
    """An nvidia-smi on PATH that lists two GPUs, as the real one prints them with our query."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 81559'\necho '1, NVIDIA H100 80GB HBM3, 81559'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return smi


def test_gpus_are_read_from_nvidia_smi(fake_smi):
    gpus, check = host_gpus()
    assert [(g.index, g.memory_mb) for g in gpus] == [("0", 81559), ("1", 81559)]
    assert check.status == "ok" and "2 GPUs" in check.detail


def test_no_nvidia_smi_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus, check = host_gpus()
    assert gpus == [] and check.status == "warn" and "no NVIDIA GPU" in check.detail


# --- the real engine --------------------------------------------------------------------------


@pytest.mark.docker
def test_doctor_against_the_engine(client):
    checks = {c.name: c for c in doctor(runtime="runsc")}
    assert list(checks) == ["engine", "limits", "image", "runtime", "gpu", "gpu-runtime", "base"]
    assert checks["engine"].status == "ok" and "API" in checks["engine"].detail
    image = checks["image"]
    if image_status(client, DEFAULT_IMAGE).present:
        assert image.status in ("ok", "warn")
    else:
        assert image.status == "fail" and image.fix == "autograder sandbox build"
    runtime = checks["runtime"]
    assert runtime.status == "fail" and "gVisor" in runtime.fix and "daemon.json" in runtime.fix
    assert {c.status for c in doctor(runtime="runc") if c.name == "runtime"} == {"ok"}
    assert all(c.fix == "" for c in checks.values() if c.status == "ok")


@pytest.mark.docker
def test_doctor_asks_for_the_gpu_toolkit_when_gpus_have_no_runtime(client, fake_smi):
    checks = {c.name: c for c in doctor()}
    if "nvidia" in (client.info().get("Runtimes") or {}):
        pytest.skip("this engine has the nvidia runtime")
    assert checks["gpu"].status == "ok"
    assert checks["gpu-runtime"].status == "fail" and "nvidia-ctk runtime configure" in checks["gpu-runtime"].fix


@pytest.mark.docker
def test_an_explicit_base_that_cant_be_had_is_not_replaced_by_debian(client):
    with pytest.raises(UserError, match="can't get the base image") as e:
        ensure_base(client, f"autograder-test-missing-base:{uuid.uuid4().hex[:10]}")
    assert "docker load" in e.value.hint


@pytest.mark.docker
def test_bootstrap_names_the_missing_piece(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no debootstrap on it
    with pytest.raises(UserError) as e:
        bootstrap_base(client, f"autograder-test-base:{uuid.uuid4().hex[:10]}")
    fix = "apt-get install -y debootstrap" if os.geteuid() == 0 else "as root"
    assert fix in e.value.hint and "--base-image" in e.value.hint


@pytest.fixture
def labelled_image(client):
    """make(labels) -> tag of a one-file image carrying those labels (docker import: no build, no base)."""
    tags = []

    def make(labels: dict[str, str]) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("marker")
            tar.addfile(info, io.BytesIO(b""))
        tag = f"autograder-test-labels:{uuid.uuid4().hex[:10]}"
        changes = [f'LABEL {key}="{value}"' for key, value in labels.items()]
        client.api.import_image_from_data(buf.getvalue(), *tag.split(":"), changes=changes)
        tags.append(tag)
        return tag

    yield make
    for tag in tags:
        client.images.remove(tag, force=True)


@pytest.mark.docker
def test_image_status_sees_a_changed_requirements_file(client, labelled_image, context):
    requirements = (context / "requirements.txt").read_text()
    tag = labelled_image(labels_for(requirements))
    status = image_status(client, tag, context_dir=context)
    assert status.present and not status.stale and status.labels[f"{LABEL}.torch"] == "torch==2.13.0"
    (context / "requirements.txt").write_text(requirements + "scipy>=1.11\n")
    status = image_status(client, tag, context_dir=context)
    assert status.stale and "requirements.txt changed" in status.reason
    assert image_status(client, tag, context_dir=context, torch="torch==2.14.0").stale


@pytest.mark.docker
def test_image_status_of_a_missing_image(client):
    status = image_status(client, f"autograder-test-missing:{uuid.uuid4().hex[:10]}")
    assert not status.present and not status.stale and "no image" in status.reason


@pytest.mark.slow
@pytest.mark.docker
def test_build_a_tiny_image_end_to_end(client, context, tmp_path):
    """The real build path, without torch: python stage, wheelhouse, build, smoke test, labels."""
    if not any(has_image(client, base) for base in (DEFAULT_BASE, BOOTSTRAP_BASE)):
        pytest.skip(f"neither {DEFAULT_BASE} nor {BOOTSTRAP_BASE} is here; bootstrapping one takes minutes")
    tag = f"autograder-test-build:{uuid.uuid4().hex[:10]}"
    options = BuildOptions(
        tag=tag, torch="", context_dir=context, wheelhouse_dir=tmp_path / "wheelhouse", check_imports=["cloudpickle"]
    )
    lines: list[str] = []
    try:
        first = build_image(options, log=lines.append)
        assert first.tag == tag and first.torch is None and first.python.startswith("3.")
        assert not first.wheelhouse_reused
        assert (first.wheelhouse / "requirements.txt").read_text() == "cloudpickle>=3.0\n"
        assert any(w.name.startswith("cloudpickle-") for w in first.wheelhouse.glob("*.whl"))
        assert any("smoke test" in line for line in lines)
        assert has_image(client, stage_tag(tag)), "the install stage is kept as the next build's layer cache"
        status = image_status(client, tag, context_dir=context)
        assert status.present and not status.stale, status.reason
        assert status.labels[f"{LABEL}.torch"] == "" and first.python.startswith(status.labels[f"{LABEL}.python"])

        second = build_image(options, log=lambda _: None)  # the wheelhouse and layers are cached
        assert second.wheelhouse_reused and second.image_id == first.image_id

        # A smoke test that fails keeps the tag off: here the image is the one already tagged, which stays.
        failing = options.model_copy(update={"tag": f"{tag}-bad", "check_imports": ["numpy"]})
        with pytest.raises(UserError, match="smoke test: import numpy"):
            build_image(failing)
        assert not has_image(client, f"{tag}-bad") and has_image(client, tag)
    finally:
        for name in (tag, stage_tag(tag)):
            if has_image(client, name):
                client.images.remove(name, force=True)
