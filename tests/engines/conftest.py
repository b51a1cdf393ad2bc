"""Session fixtures of the real-engine tests: dockerd, buildah, a loopback registry and the Python
base images pushed to it (this machine's architecture, arm64, and an index of both).

A missing component fails the test loudly when ``CI`` is set (CI must have everything) and skips
it elsewhere, with the reason and how to install it either way. Every test under tests/engines is
marked ``engines`` (``pytest -m "not engines"`` leaves them out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..registry.registry_servers import Registry, start_registry
from .engine_helpers import (
    BASE_IMAGE_SH,
    Buildah,
    DockerEngine,
    Missing,
    engines_start,
    engines_stop,
    make_buildah,
    missing,
    push_base_image,
)

HERE = Path(__file__).resolve().parent
#: What scripts/engines.sh enables so that arm64 binaries run here (qemu-user-static, F flag).
AARCH64_HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
#: A cold arm64 base runs debootstrap's second stage under qemu: minutes, not seconds.
BASE_TIMEOUT = 1800


#: Fixtures that need the arm64 base, made in the background by scripts/with-engines.sh.
ARM64_FIXTURES = {"arm64_base", "multiarch_base"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.engines)
    # Tests that need the arm64 base last: a cold one is made while the others run.
    items.sort(key=lambda item: bool(ARM64_FIXTURES & set(getattr(item, "fixturenames", ()))))


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
    engine = DockerEngine(tcp_host=_engines.get("DOCKER_TCP"), cert_path=_engines.get("DOCKER_CERT_PATH"))
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


def arm64_emulation() -> None:
    """Fails (CI) or skips unless the kernel hands aarch64 binaries to qemu with the F flag, which
    the arm64 base's second stage and every arm64 container need."""
    text = AARCH64_HANDLER.read_text() if AARCH64_HANDLER.exists() else ""
    flags = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags:")), "")
    if not text.startswith("enabled") or "F" not in flags:
        missing(
            f"aarch64 binaries cannot run here ({AARCH64_HANDLER}: {text.splitlines()[:1] or 'absent'}, "
            f"flags {flags.strip() or 'none'}); scripts/engines.sh start installs qemu-user-static "
            "and enables it with the F flag"
        )


def base_image(*args: str) -> None:
    """Runs scripts/base-image.sh ARGS (a cached image is only pushed); missing() on failure."""
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BASE_IMAGE_SH), *args], capture_output=True, text=True, timeout=BASE_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        missing(f"scripts/base-image.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    print(f"base-image.sh {' '.join(args)}: {time.monotonic() - t0:.1f} s")  # shown with -s / -rP


@pytest.fixture(scope="session")
def arm64_base(loopback_registry: Registry, _engines: dict[str, str]) -> str:
    """``localhost:PORT/imagespec-test/python-arm64:3.11-bookworm``: the Python base for arm64, the
    same packages made by debootstrap's second stage under qemu, pushed to the loopback registry
    (one manifest, not an index). Its containers run here through qemu."""
    arm64_emulation()
    ref = f"{loopback_registry.host}/imagespec-test/python-arm64:3.11-bookworm"
    base_image("--arch", "arm64", "push", ref)
    return ref


@pytest.fixture(scope="session")
def multiarch_base(loopback_registry: Registry, _engines: dict[str, str]) -> str:
    """An OCI index of the Python base for amd64 and arm64 (both complete; the arm64 one runs
    through qemu), pushed to the loopback registry."""
    arm64_emulation()
    ref = f"{loopback_registry.host}/imagespec-test/python-multi:3.11-bookworm"
    base_image("push-index", ref, "amd64", "arm64")
    return ref


@pytest.fixture(scope="session")
def imagespec_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This installation as a wheel (``imagespec._runtime.own_wheel``, what its images get by
    default: the code under test), for images to install imagespec without the package index. Made
    in about a second, as the flytekit tests' is: no Rust build inside the test session; kept in
    the session's temporary folder, not in the user's cache."""
    from imagespec._runtime import own_wheel

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path_factory.mktemp("wheel")))
        return own_wheel()
