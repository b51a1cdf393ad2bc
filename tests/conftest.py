from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV_VARS = (
    "_F_IMG_ID",
    "FLYTE_FORCE_PUSH_IMAGE_SPEC",
    "IMAGESPEC_FORCE_PUSH_IMAGE_SPEC",
    "IMAGESPEC_NO_DIGEST_CACHE",
)


@pytest.fixture(autouse=True)
def clean_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test sees the caller's image id, force-push flags or digest cache. Tests that build no
    image look at recipes: a released imagespec's, whose runtime is the index's imagespec-build
    (tests/test_runtime.py covers this installation's own wheel)."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    if request.node.get_closest_marker("engines") is None:
        monkeypatch.setenv("IMAGESPEC_WHEEL", "index")
    yield


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Creates `files` (relative path → content) under `root`."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def program_on_path(folder: Path, name: str, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Writes the script `text` as the program `name` in `folder`, first on PATH for the test."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text(text)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return exe


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Runs `code` in a fresh interpreter (as a user's script would run) and returns its stdout."""
    full_env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# A module prefix that leaves one builder, a Python one that "builds" by naming the image: tests
# of what the CLI plans and reports, which need no engine.
FAKE_BUILDER = textwrap.dedent(
    """
    from imagespec import ImageBuildEngine

    class Fake:
        def should_build(self, spec):
            return True
        def build_image(self, spec):
            return spec.image_name() + "-built"

    # Only this builder: the test needs no engine.
    for name in list(ImageBuildEngine.get_registry()):
        ImageBuildEngine.remove(name)
    ImageBuildEngine.register("fake", Fake())
    """
)
