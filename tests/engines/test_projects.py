"""Specs from what the project has, built by the real engines: a PEP 723 script's dependencies
are installed (packages from the index), whichever builder builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagespec import ImageSpec, build

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
