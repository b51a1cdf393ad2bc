"""Another local user for the attack tests: uid 65534 (``nobody``), a real second uid on this
machine, and a folder of the shared temporary directory it can write in, as /tmp is.

Switching uid needs root: elsewhere these tests fail under CI and skip otherwise (``missing``).
The attacker runs the system Python (``/usr/bin/python3``, standard library only), which any uid
can execute, with a bare environment: nothing of ours is handed to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .engine_helpers import missing

OTHER_UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"


def require_other_user() -> None:
    """Fails (CI) or skips unless this process can become uid 65534."""
    if os.geteuid() != 0:
        missing(f"becoming another uid ({OTHER_UID}) needs root; this test runs as uid {os.geteuid()}")
    try:
        pwd.getpwuid(OTHER_UID)
    except KeyError:
        missing(f"no user with uid {OTHER_UID} on this machine")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        missing(f"{SYSTEM_PYTHON} is missing (the other user's Python)")


def other_user_env(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8", **extra}


def as_other_user(
    argv: Sequence[str], *, timeout: float = 120, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``argv`` as uid/gid 65534 with no supplementary groups; returns it, output captured."""
    return subprocess.run(
        list(argv),
        input=stdin,
        user=OTHER_UID,
        group=OTHER_UID,
        extra_groups=[],
        env=env or other_user_env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_as_other_user(argv: Sequence[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts ``argv`` as uid/gid 65534 in the background (stdout and stderr piped)."""
    return subprocess.Popen(
        list(argv),
        user=OTHER_UID,
        group=OTHER_UID,
        extra_groups=[],
        env=env or other_user_env(),
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def shared_folder() -> Iterator[Path]:
    """A fresh folder of /tmp with /tmp's mode (1777: everyone writes, only owners rename or
    remove), removed at the end whatever the other user left in it."""
    path = Path(tempfile.mkdtemp(prefix="imagespec-shared-", dir="/tmp"))
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
