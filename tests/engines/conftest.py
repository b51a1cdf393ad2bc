"""Session fixtures of the real-engine tests: dockerd, buildah, a loopback registry and the Python
base image pushed to it.

A missing component fails the test loudly when ``CI`` is set (CI must have everything) and skips
it elsewhere, with the reason and how to install it either way. Every test under tests/engines is
marked ``engines`` (``pytest -m "not engines"`` leaves them out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The registry helpers live beside the registry tests: one way to start the CNCF registry.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from engine_helpers import (
    Buildah,
    DockerEngine,
    Missing,
    engines_start,
    engines_stop,
    make_buildah,
    missing,
    push_base_image,
)
from registry_servers import Registry, start_registry

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, str]]:
    """scripts/engines.sh start under this process's lease; stop at the end (which leaves dockerd
    running when another lease, e.g. `make test`'s, still holds it)."""
    lease = str(os.getpid())
    try:
        status = engines_start(lease)
    except Missing as e:
        engines_stop(lease)
        missing(str(e))
    yield status
    engines_stop(lease)


@pytest.fixture(scope="session")
def docker_engine(_engines: dict[str, str], loopback_registry: Registry) -> Iterator[DockerEngine]:
    """The Docker engine on /var/run/docker.sock with the 20.10 CLI (BuildKit built in). At the end,
    the images built in the session and the local names in the session's registry are removed."""
    if not os.access("/usr/bin/docker", os.X_OK):
        missing("/usr/bin/docker is missing (apt-get install -y docker.io)")
    engine = DockerEngine(tcp_host=_engines.get("DOCKER_TCP"))
    engine("version")
    yield engine
    engine.cleanup(loopback_registry.host)


@pytest.fixture(scope="session")
def buildah(_engines: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    """buildah with a private vfs storage for this session (removed at the end)."""
    workdir = tmp_path_factory.mktemp("buildah")
    try:
        b = make_buildah(workdir)
    except Missing as e:
        missing(str(e))
    yield b
    b.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def loopback_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A CNCF registry on localhost:PORT over plain HTTP (engines allow that for loopback); its
    storage is removed at the end."""
    if shutil.which("docker-registry") is None:
        missing("docker-registry is not installed (apt-get install -y docker-registry, or scripts/setup.sh)")
    workdir = tmp_path_factory.mktemp("engine-registry")
    reg = start_registry(workdir, workdir / "storage", hostname="localhost")
    yield reg
    reg.stop()
    shutil.rmtree(workdir / "storage", ignore_errors=True)


@pytest.fixture(scope="session")
def python_base(loopback_registry: Registry, _engines: dict[str, str]) -> str:
    """``localhost:PORT/imagespec-test/python:3.11-bookworm``: Debian bookworm with python3, pip and
    venv, WITHOUT this machine's CA bundle, pushed to the loopback registry."""
    try:
        return push_base_image(loopback_registry.host)
    except Missing as e:
        missing(str(e))


@pytest.fixture(scope="session")
def imagespec_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout (``maturin build --release``), for images to install imagespec
    without the package index; built once per session into a temporary folder."""
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent)) or shutil.which("maturin")
    if maturin is None:
        missing("maturin is not installed (make setup)")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [maturin, "build", "--release", "--quiet", "-o", str(out)],
        cwd=HERE.parents[1],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    wheels = sorted(out.glob("imagespec_build-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.fail(f"maturin build failed:\n{proc.stderr[-3000:]}", pytrace=False)
    return wheels[0]
