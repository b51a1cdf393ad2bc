"""What imagespec writes in shared places is this user's only (docs/security.md, item 8e): another
local user (uid 65534, a real second uid) can neither read a build context, its secrets or the
cache, nor plant the cache folder in the temporary folder before imagespec makes it.

Each test runs the other user's part with the system Python as that uid; switching uid needs
root, so elsewhere the tests fail under CI and skip otherwise. The native builder's work folders
and its file of index credentials: tests/engines/test_build_credentials.py.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagespec import ImageSpec, write_context

from .conftest import write_tree
from .flytekit_helpers import missing

OTHER_UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

# Run as the other user: which of the paths given on stdin it could open (files) or list (folders).
PROBE = """
import json, os, sys
opened = []
for p in json.load(sys.stdin):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, "rb").close()
        opened.append(p)
    except OSError:
        pass
print(json.dumps(opened))
"""


def other_user(argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        missing(f"becoming uid {OTHER_UID} needs root; these tests run as uid {os.geteuid()}")
    try:
        pwd.getpwuid(OTHER_UID)
    except KeyError:
        missing(f"no user with uid {OTHER_UID} on this machine")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        missing(f"{SYSTEM_PYTHON} is missing (the other user's Python)")
    return subprocess.run(
        argv,
        input=stdin,
        user=OTHER_UID,
        group=OTHER_UID,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def readable_by_other_user(paths: list[Path]) -> list[str]:
    out = other_user([SYSTEM_PYTHON, "-c", PROBE], json.dumps([str(p) for p in paths]))
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def everything_under(root: Path) -> list[Path]:
    return [Path(d) / n for d, dirs, files in os.walk(root) for n in [*dirs, *files]]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder of /tmp with /tmp's mode (1777), as a shared cache or build folder would be."""
    path = Path(tempfile.mkdtemp(prefix="imagespec-shared-", dir="/tmp"))
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_build_context_and_its_secrets_are_private(shared: Path, tmp_path: Path) -> None:
    proj = write_tree(tmp_path / "proj", {"app.py": "KEY = 'source-code'\n", "conf/settings.yaml": "a: 1\n"})
    spec = ImageSpec(
        python_version="3.11",
        source_root=proj,
        source_copy_mode="ALL",
        copy=[str(proj / "conf")],
        pip_index="https://me:s3cret@pypi.example.com/simple",
    )
    built = write_context(spec, shared / "ctx")
    paths = [shared / "ctx", *everything_under(shared / "ctx")]
    assert built.dockerfile in paths and any(s.path in paths for s in built.secrets)
    assert readable_by_other_user(paths) == []
    assert stat.S_IMODE(built.context.stat().st_mode) == 0o700


def test_cache_files_are_private(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(shared / "cache"))
    proj = write_tree(tmp_path / "proj", {"app.py": "x = 1\n", "lib/util.py": "y = 2\n"})
    # The digest cache stores a file's digest once the file is 2 s old (docs/source-selection.md).
    time.sleep(2.1)
    ImageSpec(python_version="3.11", source_root=proj, source_copy_mode="ALL").tag  # noqa: B018
    written = everything_under(shared / "cache")
    assert any(p.is_file() for p in written), "the digest cache wrote nothing"
    assert readable_by_other_user([shared / "cache", *written]) == []
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p


CACHE_ROOT = "from imagespec import _core; print(_core.cache_root())"


def cache_root_without_home(tmpdir: Path) -> str:
    """`_core.cache_root()` in a process with no configured cache folder: the temporary one."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME", "IMAGESPEC_CACHE_DIR")}
    env["TMPDIR"] = str(tmpdir)
    out = subprocess.run(
        [sys.executable, "-c", CACHE_ROOT], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_temporary_cache_folder_is_made_private(shared: Path) -> None:
    root = Path(cache_root_without_home(shared))
    assert root == shared / f"imagespec-{os.geteuid()}"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and root.stat().st_uid == os.geteuid()


def test_a_temporary_cache_folder_made_first_by_another_user_is_not_used(shared: Path) -> None:
    planted = shared / f"imagespec-{os.geteuid()}"
    code = f"import os; os.mkdir({str(planted)!r}); os.chmod({str(planted)!r}, 0o777)"
    made = other_user([SYSTEM_PYTHON, "-c", code])
    assert made.returncode == 0, made.stderr
    assert cache_root_without_home(shared) == "None"
    assert list(planted.iterdir()) == []
