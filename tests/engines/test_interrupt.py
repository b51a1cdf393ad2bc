"""Ctrl-C during a real docker build: the build stops, nothing is pushed under the tag, and the
build's temporary folder is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ..registry.registry_servers import Registry
from .engine_helpers import DockerEngine


def test_ctrl_c_stops_the_build_and_pushes_nothing(
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "image.yaml").write_text(
        f"name: e2e-interrupted\nregistry: {loopback_registry.host}\nbase_image: {python_base}\n"
        f"python_version: '3.11'\ncommands: ['echo {uuid.uuid4().hex}; sleep 120']\n"
    )
    env = {
        **os.environ,
        "DOCKER_HOST": docker_engine.host,
        "IMAGESPEC_WHEEL": str(imagespec_wheel),
        "IMAGESPEC_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagespec", "build", "-v", "image.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background (`cmd &` in a script) ignores SIGINT, and Python
        # keeps an ignored SIGINT ignored: give the CLI the default a terminal user has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "sleep 120" in line:  # the long step is running
            break
    assert any("sleep 120" in line for line in seen), "".join(seen)[-3000:]
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        _, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, rest = proc.communicate()
        raise AssertionError(  # noqa: B904 (the timeout itself says nothing)
            f"still running 60 s after SIGINT; stderr:\n{''.join(seen)[-2000:]}{rest[-3000:]}"
        )
    stopped_in = time.monotonic() - t0
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert stopped_in < 30
    image = subprocess.run(
        [sys.executable, "-m", "imagespec", "tag", "image.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    probe = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{image}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0, "a tag was pushed by an interrupted build"
    leftovers = [p for p in Path(tempfile.gettempdir()).glob(f"imagespec-*-{proc.pid}-*")]
    assert leftovers == []
