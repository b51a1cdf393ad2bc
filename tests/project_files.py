"""Real projects for the tests: a uv workspace with a path member and a poetry project with a path
dependency, each locked by the real tool (uv from this environment, poetry through `uv tool run`)
against the package index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

UV = Path(sys.prefix) / "bin" / "uv"
CA = "/etc/ssl/certs/ca-certificates.crt"

HATCH = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
POETRY_CORE = '[build-system]\nrequires = ["poetry-core>=2"]\nbuild-backend = "poetry.core.masonry.api"\n'


def _env() -> dict[str, str]:
    env = dict(os.environ, UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    if Path(CA).is_file():
        env.update(UV_NATIVE_TLS="1", REQUESTS_CA_BUNDLE=CA, SSL_CERT_FILE=CA)
    return env


def run_tool(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"{args} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def uv_workspace(root: Path, *, requires_python: str = ">=3.11", lock: bool = True) -> Path:
    """`app` (six, and the member `helper`) with the member `packages/helper` (which needs
    packaging: the lock pins it, transitively)."""
    write(
        root / "pyproject.toml",
        f'[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = "{requires_python}"\n'
        'dependencies = ["helper", "six==1.16.0"]\n\n'
        '[tool.uv.workspace]\nmembers = ["packages/*"]\n\n'
        "[tool.uv.sources]\nhelper = { workspace = true }\n\n" + HATCH,
    )
    app = 'from helper import greet\n\n__all__ = ["NAME", "greet"]\nNAME = "app"\n'
    write(root / "src/app/__init__.py", app)
    write(
        root / "packages/helper/pyproject.toml",
        '[project]\nname = "helper"\nversion = "0.2.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["packaging>=24"]\n\n' + HATCH,
    )
    write(root / "packages/helper/src/helper/__init__.py", 'def greet():\n    return "hi"\n')
    if lock:
        run_tool([str(UV), "lock", "--quiet"], root)
    return root


def poetry_project(root: Path) -> Path:
    """`papp` (six, attrs, and `lib1` from the path `lib`), locked by poetry 2."""
    write(
        root / "pyproject.toml",
        '[project]\nname = "papp"\nversion = "0.1.0"\nrequires-python = ">=3.11,<4"\n'
        'dependencies = ["six==1.16.0", "attrs (>=22)", "lib1"]\n\n'
        '[tool.poetry.dependencies]\nlib1 = { path = "lib", develop = false }\n\n' + POETRY_CORE,
    )
    write(root / "src/papp/__init__.py", 'NAME = "papp"\n')
    write(
        root / "lib/pyproject.toml",
        '[project]\nname = "lib1"\nversion = "0.3.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["packaging"]\n\n' + POETRY_CORE,
    )
    write(root / "lib/src/lib1/__init__.py", "VALUE = 1\n")
    poetry_lock(root)
    return root


def poetry_lock(root: Path) -> None:
    run_tool(
        [str(UV), "tool", "run", "--quiet", "--from", "poetry>=2,<3", "poetry", "lock", "--no-interaction"],
        root,
    )


def locked_versions(root: Path) -> dict[str, str]:
    """Every package the lock pins, name → version, as the lock file says (not as imagespec reads it)."""
    lock = root / "uv.lock"
    if not lock.is_file():
        lock = root / "poetry.lock"
    data = tomllib.loads(lock.read_text())
    return {p["name"]: p["version"] for p in data.get("package", []) if "version" in p}
