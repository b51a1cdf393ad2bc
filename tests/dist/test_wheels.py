"""The files `make dist` makes, installed as a user installs them, into every CPython 3.9-3.13 here.

The wheel (abi3, manylinux2014) goes with ``pip install --no-index`` into a fresh venv of each
interpreter found (one per minor version: pyenv's, else one on PATH); the sdist is built from
source once, by pip, as ``pip install imagespec-build`` does where no wheel fits. In each install
``tests/dist/smoke.py`` reports what a user sees: the import, a tag, the ``imagespec`` command,
the distribution's version, entry points and extras, and that nothing named ``imagespec`` came
along. dist/ is made or refreshed by ``scripts/dist.sh`` (a no-op when ``make dist`` already ran
on the same files).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import imagespec

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).resolve().parent / "smoke.py"
MINORS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# The Rust crate built from the sdist, in this checkout's target folder: `make setup` compiled its
# dependencies there in release mode, so a fresh CI machine compiles only the crate again (minutes
# less than compiling everything).
SDIST_TARGET = Path(os.environ.get("IMAGESPEC_SDIST_TARGET") or ROOT / "target")
# What a user's shell would not have: this checkout's paths, the test venv.
CLEARED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")
PROBE = (
    "import sys, platform, venv, ensurepip; "
    "print(platform.python_implementation(), '%d.%d' % sys.version_info[:2], platform.python_version())"
)


def missing(reason: str) -> None:
    """A machine without what the test needs: an error under CI (which must have it), else a skip."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in CLEARED}
    e.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return e


def candidates() -> list[Path]:
    """Interpreters to probe: pyenv's versions first (``pyenv root``, ``$PYENV_ROOT``, ~/.pyenv),
    then ``python3.X`` on PATH and in the usual prefixes."""
    roots = [Path(os.environ["PYENV_ROOT"])] if os.environ.get("PYENV_ROOT") else []
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30, check=False)
        roots += [Path(out.stdout.strip())] if out.returncode == 0 and out.stdout.strip() else []
    roots.append(Path.home() / ".pyenv")
    found = [p for root in roots for p in sorted((root / "versions").glob("*/bin/python3"))]
    for minor in MINORS:
        which = shutil.which(f"python{minor}")
        found += [Path(which)] if which else []
        found += [Path(prefix) / f"python{minor}" for prefix in ("/usr/local/bin", "/usr/bin")]
    return found


@functools.cache
def pythons() -> dict[str, tuple[Path, str]]:
    """Minor version → (interpreter, full version): the first CPython of each minor version that
    runs and has venv and ensurepip (so a venv gets pip)."""
    chosen: dict[str, tuple[Path, str]] = {}
    seen: set[Path] = set()
    for exe in candidates():
        real = exe.resolve()
        if real in seen or not exe.is_file():
            continue
        seen.add(real)
        try:
            out = subprocess.run(
                [str(exe), "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
            )
        except OSError:
            continue
        parts = out.stdout.split()
        if out.returncode == 0 and len(parts) == 3 and parts[0] == "CPython" and parts[1] in MINORS:
            chosen.setdefault(parts[1], (exe, parts[2]))
    return chosen


@pytest.fixture(scope="session")
def dist_files() -> tuple[Path, Path]:
    """(wheel, sdist) from scripts/dist.sh: made or refreshed now unless `make dist` already did."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "dist.sh")], capture_output=True, text=True, timeout=3000, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/dist.sh failed:\n{proc.stderr[-4000:]}", pytrace=False)
    wheel, sdist = (Path(line) for line in proc.stdout.split())
    return wheel, sdist


def make_venv(python: Path, where: Path) -> Path:
    subprocess.run([str(python), "-m", "venv", str(where)], env=env(), check=True, timeout=300)
    return where / "bin" / "python"


def smoke(venv_python: Path, cwd: Path) -> dict[str, Any]:
    # From an empty folder, so neither this checkout nor its python/ can be imported instead.
    out = subprocess.run(
        [str(venv_python), str(SMOKE)],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, f"smoke test failed in {venv_python}:\n{out.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def check_install(report: dict[str, Any], venv: Path) -> None:
    assert report["problems"] == [], "\n".join(report["problems"])
    assert Path(report["prefix"]) == venv
    assert report["version"] == imagespec.__version__
    # The tag is the core's: the same from this build on every Python as from the development build.
    assert (
        report["image_name"] == imagespec.ImageSpec(packages=["pandas"], python_version="3.11").image_name()
    )


def test_enough_pythons_are_found() -> None:
    found = pythons()
    if len(found) < 3:
        missing(
            f"found CPython {sorted(found) or 'none'} of {', '.join(MINORS)} (looked in pyenv's versions and "
            f"PATH: {[str(p) for p in candidates()]}); the wheel must be tried on at least three"
        )
    assert set(found) <= set(MINORS)


@pytest.mark.timeout(3600)  # the first one may build the wheel (scripts/dist.sh), minutes cold
@pytest.mark.parametrize("minor", MINORS)
def test_wheel_installs_and_works(minor: str, dist_files: tuple[Path, Path], tmp_path: Path) -> None:
    if minor not in pythons():
        pytest.skip(f"no CPython {minor} with venv on this machine")
    python, version = pythons()[minor]
    wheel = dist_files[0]
    assert wheel.name.startswith("imagespec_build-") and "-cp39-abi3-manylinux" in wheel.name, wheel.name
    venv_python = make_venv(python, tmp_path / "venv")
    proc = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--no-index", "-q", str(wheel)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"pip install {wheel.name} into CPython {version} failed:\n{proc.stderr}"
    (tmp_path / "cwd").mkdir()
    report = smoke(venv_python, tmp_path / "cwd")
    assert report["python"] == minor
    check_install(report, tmp_path / "venv")


@pytest.mark.timeout(3600)  # compiles the Rust crate: minutes
def test_sdist_builds_and_installs_from_source(dist_files: tuple[Path, Path], tmp_path: Path) -> None:
    found = pythons()
    if not found:
        missing("no CPython 3.9-3.13 with venv on this machine")
    minor = max(found, key=lambda m: tuple(map(int, m.split("."))))
    python, version = found[minor]
    sdist = dist_files[1]
    assert sdist.name == f"imagespec_build-{imagespec.__version__}.tar.gz", sdist.name
    venv_python = make_venv(python, tmp_path / "venv")
    # maturin's sdist gives every file one fixed date, older than any earlier build of the crate in
    # this folder, so cargo would take that build as fresh: the crate itself (only it; its
    # dependencies come from crates.io, unchanged) is forgotten first.
    for stale in (SDIST_TARGET / "release" / ".fingerprint").glob("imagespec-*"):
        shutil.rmtree(stale)
    started = time.time()
    proc = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--no-cache-dir", str(sdist)],
        env={**env(), "CARGO_TARGET_DIR": str(SDIST_TARGET)},
        capture_output=True,
        text=True,
        timeout=3300,
        check=False,
    )
    seconds = time.time() - started
    assert proc.returncode == 0, (
        f"pip install {sdist.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    print(f"pip install {sdist.name} (CPython {version}): {seconds:.0f} s")  # shown with -rP
    built = SDIST_TARGET / "release" / "deps" / "libimagespec.so"
    assert built.stat().st_mtime >= started, f"{built} was not compiled by this install"
    (tmp_path / "cwd").mkdir()
    report = smoke(venv_python, tmp_path / "cwd")
    assert report["python"] == minor
    check_install(report, tmp_path / "venv")
