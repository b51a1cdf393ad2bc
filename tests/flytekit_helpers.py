"""Real flytekit for the bridge tests, without installing it (it is large) into the test venv.

``scripts/flytekit-venv.sh`` makes (once, cached) a venv with flytekit only; each session builds a
wheel of this imagespec and pip-installs it into a folder of its own, which the tests put on
``PYTHONPATH``: flytekit then finds imagespec's entry point there, as it would in a real install.
When that cannot be done, the tests fail under ``CI`` (CI must have everything) and skip
elsewhere, with the reason.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]
VENV_SCRIPT = ROOT / "scripts" / "flytekit-venv.sh"
REGISTRY_HELPERS = ROOT / "tests" / "registry"
# Variables a test must not inherit (the caller's image id, force push, fast-fail, assume-present).
CLEARED = (
    "_F_IMG_ID",
    "FLYTE_FORCE_PUSH_IMAGE_SPEC",
    "IMAGESPEC_FORCE_PUSH_IMAGE_SPEC",
    "IMAGESPEC_NO_DIGEST_CACHE",
    "IMAGESPEC_ASSUME_PRESENT",
    "FLYTE_IMG_FAST_FAIL",
    "PYTHONPATH",
)


def missing(reason: str) -> NoReturn:
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"flytekit tests: {reason}", pytrace=False)
    pytest.skip(f"flytekit tests: {reason}")


@dataclass
class Flytekit:
    """A Python with real flytekit, and this imagespec (its wheel) on its path."""

    python: Path
    site: Path
    wheel: Path
    seconds: dict[str, float]

    def run(
        self,
        code: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if k not in CLEARED}
        full["PYTHONPATH"] = os.pathsep.join([str(self.site), str(REGISTRY_HELPERS), str(cwd)])
        full["FLYTE_SDK_RICH_TRACEBACKS"] = "0"
        full.update(env or {})
        proc = subprocess.run(
            [str(self.python), "-c", code],
            cwd=cwd,
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"flytekit python failed ({proc.returncode})\n--- stdout\n{proc.stdout[-4000:]}\n"
                f"--- stderr\n{proc.stderr[-6000:]}"
            )
        return proc


# One venv and wheel per test session, whichever test module asks first.
_MADE: list[Flytekit] = []


def make_flytekit(workdir: Path) -> Flytekit:
    """The flytekit venv (made or reused) with a fresh wheel of imagespec on its path."""
    if _MADE:
        return _MADE[0]
    seconds: dict[str, float] = {}
    t = time.monotonic()
    proc = subprocess.run(
        ["bash", str(VENV_SCRIPT)], capture_output=True, text=True, timeout=1200, check=False
    )
    seconds["venv"] = time.monotonic() - t
    if proc.returncode != 0:
        missing(f"scripts/flytekit-venv.sh could not make the flytekit venv:\n{proc.stderr[-3000:]}")
    python = Path(proc.stdout.strip().splitlines()[-1])
    t = time.monotonic()
    # This installation as a wheel (what its images get, docs/runtime.md): the code under test.
    from imagespec._runtime import own_wheel

    wheel = own_wheel()
    site = workdir / "site"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    seconds["wheel"] = time.monotonic() - t
    _MADE.append(Flytekit(python, site, wheel, seconds))
    return _MADE[0]
