"""Specs from what the project has, built by the real engines: a PEP 723 script's dependencies, a
uv workspace (with its member, the project itself and an override against the lock) and a poetry
project (with its path dependency) are installed from the index, the same whichever builder builds
them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagespec import ImageSpec, build

from ..project_files import locked_versions, poetry_project, uv_workspace
from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, Buildah, DockerEngine

pytestmark = pytest.mark.timeout(900)

JOB = """\
# /// script
# requires-python = "==3.11.*"
# dependencies = ["six==1.16.0", "attrs==23.2.0"]
# ///

import attrs, six
print(six.__version__, attrs.__version__)
"""


@pytest.mark.parametrize("builder", ["native", "docker", "buildah"])
def test_a_pep723_scripts_dependencies_are_in_the_image(
    builder: str,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if builder == "buildah":
        b: Buildah = request.getfixturevalue("buildah")
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(b.storage_conf))
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    job = tmp_path / "job.py"
    job.write_text(JOB)
    spec = ImageSpec.from_script(
        job,
        name=f"script-{builder}",
        registry=loopback_registry.host,
        base_image=python_base,
        source_root=str(tmp_path),
        source_copy_mode="ALL",
    )
    assert spec.python_version == "3.11"  # what requires-python allows, and the base has
    report = build(spec, builder=builder, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[spec].outcome == "built", report.summary()
    docker_engine.created.add(report[spec].name)
    out = docker_engine("run", "--rm", report[spec].name, "python", "/root/job.py")
    assert out.split() == ["1.16.0", "23.2.0"]


# What the image holds, name → version, read by the image's own Python (a native image has no pip).
LIST = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
)


@pytest.fixture(scope="module")
def uv_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return uv_workspace(tmp_path_factory.mktemp("uv-project") / "ws")


@pytest.fixture(scope="module")
def poetry_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return poetry_project(tmp_path_factory.mktemp("poetry-project") / "po")


def _use(
    builder: str, docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if builder == "buildah":
        b: Buildah = request.getfixturevalue("buildah")
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(b.storage_conf))
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)


def _installed(docker_engine: DockerEngine, image: str) -> dict[str, str]:
    return json.loads(docker_engine("run", "--rm", image, "python", "-c", LIST))


@pytest.mark.parametrize("builder", ["native", "docker", "buildah"])
def test_a_uv_workspace_is_installed_as_locked_with_its_member_and_an_override(
    builder: str,
    uv_project: Path,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    _use(builder, docker_engine, monkeypatch, request)
    spec = ImageSpec.from_project(
        uv_project,
        install_project=True,
        # The lock pins packaging (which the member needs) at its newest: the override wins.
        # colorama: nothing asks for it, so its override installs nothing (uv's --override semantics).
        overrides=["packaging==24.0", "colorama==0.4.6"],
        constraints=["six<1.17"],
        name=f"uv-project-{builder}",
        registry=loopback_registry.host,
        base_image=python_base,
    )
    report = build(spec, builder=builder, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[spec].outcome == "built", report.summary()
    image = report[spec].name
    docker_engine.created.add(image)
    out = docker_engine("run", "--rm", image, "python", "-c", "import app; print(app.NAME, app.greet())")
    assert out.split() == ["app", "hi"]
    locked = locked_versions(uv_project)
    assert locked["packaging"] != "24.0"  # the override is visible only if the lock says otherwise
    want = {**locked, "packaging": "24.0"}
    have = _installed(docker_engine, image)
    assert {k: have.get(k) for k in want} == want
    assert "colorama" not in have


@pytest.mark.parametrize("builder", ["native", "docker", "buildah"])
def test_a_poetry_projects_dependencies_with_its_path_dependency(
    builder: str,
    poetry_app: Path,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    _use(builder, docker_engine, monkeypatch, request)
    spec = ImageSpec.from_project(
        poetry_app, name=f"poetry-project-{builder}", registry=loopback_registry.host, base_image=python_base
    )
    report = build(spec, builder=builder, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[spec].outcome == "built", report.summary()
    image = report[spec].name
    docker_engine.created.add(image)
    have = _installed(docker_engine, image)
    want = locked_versions(poetry_app)  # lib1 (the path dependency), six, attrs, packaging
    assert {k: have.get(k) for k in want} == want
    assert "papp" not in have  # dependencies only: the project itself is not installed
    out = docker_engine("run", "--rm", image, "python", "-c", "import lib1; print(lib1.VALUE)")
    assert out.split() == ["1"]
