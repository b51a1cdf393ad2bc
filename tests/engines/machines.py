"""Machines of their own for the tests that compare two machines: what a fresh CI runner or a
colleague's laptop is to the engines the other tests share.

:func:`machine` gives imagespec's builder an empty engine: a second dockerd (:func:`second_docker`)
or a buildah storage of its own. The second dockerd has its own data-root (no image, no build
cache), exec-root, socket and bridge, and starts and stops with the test. Wiping the shared engine
instead (``docker image rm`` and ``builder prune`` while its build records still name those
layers) leaves Docker 20.10's layer store inconsistent ("failed to prepare …: committed: no such
file or directory") for every later build of the session.

Build steps need the package index, so the bridge gets the NAT a daemon with ``--iptables`` would
make; the rules name only this bridge and go with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest

from .engine_helpers import DockerEngine, Missing, make_buildah, missing, run

#: At most 15 characters (an interface name); the subnet is one no other engine here uses.
BRIDGE = "imgspec-br1"
GATEWAY = "10.213.7.1/24"
SUBNET = "10.213.7.0/24"
#: (table, chain, rule) added for the bridge's traffic and removed at the end: forwarding (the
#: first engine's FORWARD policy is DROP) and masquerading out of the machine.
RULES = (
    ("filter", "FORWARD", ("-i", BRIDGE, "-j", "ACCEPT")),
    ("filter", "FORWARD", ("-o", BRIDGE, "-j", "ACCEPT")),
    ("nat", "POSTROUTING", ("-s", SUBNET, "!", "-o", BRIDGE, "-j", "MASQUERADE")),
)


def _quiet(*cmd: str) -> None:
    subprocess.run(cmd, capture_output=True, check=False, timeout=60)


@contextmanager
def _bridge() -> Iterator[None]:
    for tool in ("ip", "iptables", "dockerd"):
        if shutil.which(tool) is None:
            raise Missing(f"{tool} is not installed (a second Docker engine needs it)")
    _quiet("ip", "link", "del", BRIDGE)  # left by a run that was killed
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    try:
        run(["ip", "addr", "add", GATEWAY, "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for table, chain, rule in RULES:
            while (
                subprocess.run(["iptables", "-t", table, "-D", chain, *rule], capture_output=True).returncode
                == 0
            ):
                pass  # a copy left by a run that was killed
            run(["iptables", "-t", table, "-I", chain, "1", *rule])
        yield
    finally:
        for table, chain, rule in RULES:
            _quiet("iptables", "-t", table, "-D", chain, *rule)
        _quiet("ip", "link", "del", BRIDGE)


@contextmanager
def second_docker(workdir: Path) -> Iterator[DockerEngine]:
    """A fresh dockerd for the duration of the block, as a :class:`DockerEngine` (its unix socket)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    # The exec-root holds containerd's sockets: a short path (a socket path has at most 107 bytes).
    exec_root = Path(tempfile.mkdtemp(prefix="isd-", dir="/run" if os.access("/run", os.W_OK) else None))
    try:
        with _bridge(), _dockerd(data, exec_root, workdir / "dockerd.log") as engine:
            yield engine
    finally:
        with suppress(OSError):
            shutil.rmtree(exec_root)
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def _dockerd(data: Path, exec_root: Path, log: Path) -> Iterator[DockerEngine]:
    sock = exec_root / "docker.sock"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(data),
                "--exec-root", str(exec_root),
                "--pidfile", str(exec_root / "dockerd.pid"),
                "-H", f"unix://{sock}",
                "--bridge", BRIDGE,
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    engine = DockerEngine(host=f"unix://{sock}")
    try:
        deadline = time.monotonic() + 60
        while run([engine.cli, "version"], env=engine.env(), check=False, timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Missing(f"a second dockerd did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield engine
    finally:
        proc.terminate()  # dockerd stops its containers and containerd, and unmounts, on TERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@contextmanager
def machine(engine: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine with an empty ``engine`` (no image, no build cache, no pip cache): a second dockerd,
    or buildah with a storage of its own, which imagespec's builder uses inside the block."""
    with monkeypatch.context() as m, ExitStack() as stack:
        try:
            if engine == "docker":
                docker = stack.enter_context(second_docker(workdir))
                m.setenv("DOCKER_HOST", docker.host)
            else:
                buildah = make_buildah(workdir)
                stack.callback(shutil.rmtree, workdir, ignore_errors=True)
                stack.callback(buildah.cleanup)
                m.setenv("CONTAINERS_STORAGE_CONF", str(buildah.storage_conf))
        except Missing as e:
            missing(str(e))
        yield
