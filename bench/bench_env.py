"""What the build benchmarks share: dockerd (started by scripts/engines.sh when it does not answer,
and stopped after), a loopback registry holding the Python base image, and an imagespec wheel for
the images."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "registry"))

from package_index import add_wheel, serve_index  # noqa: E402
from registry_servers import Registry, requests_of, start_registry, uploaded_blobs  # noqa: E402

__all__ = [
    "Registry",
    "add_wheel",
    "buildah_storage",
    "engines_and_registry",
    "imagespec_wheel",
    "requests_of",
    "serve_index",
    "uploaded_blobs",
]


@contextmanager
def engines_and_registry(work: Path, name: str, access_log: bool = False) -> Iterator[tuple[Registry, str]]:
    """dockerd and a registry in ``work``; yields the registry and the base image's reference in it."""
    lease = {**os.environ, "IMAGESPEC_ENGINES_LEASE": f"{name}-{os.getpid()}"}
    subprocess.run(["bash", str(ROOT / "scripts/engines.sh"), "start"], check=True, env=lease)
    reg = start_registry(work / "reg", work / "reg" / "storage", hostname="localhost", access_log=access_log)
    try:
        base = f"{reg.host}/imagespec-test/python:3.11-bookworm"
        subprocess.run(["bash", str(ROOT / "scripts/base-image.sh"), "push", base], check=True)
        yield reg, base
    finally:
        reg.stop()
        subprocess.run(["bash", str(ROOT / "scripts/engines.sh"), "stop"], check=False, env=lease)


def imagespec_wheel(work: Path, given: Path | None) -> Path:
    """``given``, or a wheel of this checkout made by maturin into ``work``."""
    if given is not None:
        return given
    out = work / "wheel"
    maturin = str(ROOT / ".venv/bin/maturin")
    subprocess.run([maturin, "build", "--release", "--quiet", "-o", str(out)], cwd=ROOT, check=True)
    (wheel,) = out.glob("imagespec_build-*.whl")
    return wheel


def buildah_storage(work: Path) -> Path:
    """A vfs storage for buildah in ``work``, made this process's (``CONTAINERS_STORAGE_CONF``)."""
    conf = work / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{work / "buildah"}"\nrunroot = "{work / "buildah-run"}"\n'
    )
    os.environ["CONTAINERS_STORAGE_CONF"] = str(conf)
    return conf
