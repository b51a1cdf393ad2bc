"""Remote Docker hosts for the engine-pool tests, made on this machine: each a network namespace
(its own addresses, routes and firewall) joined to this one by a veth pair, with a dockerd inside
that listens on ``tcp://10.214.N.2:2376`` with TLS (a CA, server and client certificates made with
openssl for the test). The namespace reaches no package index; its ``localhost:PORT`` is the test
registry, through two TCP relays (``relay.py``), so images keep the names they have here.

Everything a host makes (namespace, veth, relays, dockerd and its folders) goes with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from .engine_helpers import DOCKER_CLI, Missing, run

RELAY = Path(__file__).with_name("relay.py")


@dataclass
class RemoteDocker:
    """A dockerd in a namespace of its own, reached over TLS."""

    namespace: str
    url: str
    #: The client's folder: ca.pem, cert.pem, key.pem (what DOCKER_CERT_PATH names).
    tls: Path
    proc: subprocess.Popen[bytes]
    log: Path
    #: The same daemon's unix socket (the namespace shares this machine's files).
    socket: str

    @property
    def entry(self) -> str:
        """Its entry in an engine pool."""
        return f"docker@{self.url}?tls={self.tls}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": self.url,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.tls),
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return run([DOCKER_CLI, *args], env=self.env(), check=check, timeout=timeout).stdout

    def answers(self) -> bool:
        return run([DOCKER_CLI, "version"], env=self.env(), check=False, timeout=10).returncode == 0

    def kill(self) -> None:
        """The machine dies: the daemon stops at once, mid-build."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)


def make_certs(folder: Path, ip: str, name: str = "imagespec-test CA") -> Path:
    """A CA, a server certificate for ``ip`` and a client certificate in ``folder``; returns the
    client's folder (ca.pem, cert.pem, key.pem)."""
    folder.mkdir(parents=True, exist_ok=True)
    client = folder / "client"
    client.mkdir(exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, ca = folder / "ca-key.pem", folder / "ca.pem"
    run(
        [
            "openssl",
            "req",
            "-x509",
            *ec,
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
        ]
    )
    for who, key, cert, ext in (
        (
            "server",
            folder / "server-key.pem",
            folder / "server.pem",
            f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", client / "key.pem", client / "cert.pem", "extendedKeyUsage=clientAuth\n"),
    ):
        csr = folder / f"{who}.csr"
        extfile = folder / f"{who}.ext"
        extfile.write_text(ext)
        run(["openssl", "req", *ec, "-subj", f"/CN={who}", "-keyout", str(key), "-out", str(csr)])
        sign = ["-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2"]
        run(["openssl", "x509", "-req", "-in", str(csr), *sign, "-out", str(cert), "-extfile", str(extfile)])
    shutil.copy(ca, client / "ca.pem")
    return client


def _inside(namespace: str) -> list[str]:
    """A command's prefix to run it in the namespace's network only: ``ip netns exec`` would also
    give it a mount namespace with a fresh /sys, without the cgroup mounts dockerd needs."""
    return ["nsenter", f"--net=/run/netns/{namespace}"]


def _unmount_under(*folders: Path) -> None:
    """Detaches every mount left under ``folders``, deepest first: a dockerd that was killed
    (the failover test) leaves its data-root's mounts, which would keep the folder from going."""
    roots = [str(f) for f in folders]
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if any(point == r or point.startswith(r + "/") for r in roots):
            _quiet("umount", "-l", point)


def _quiet(*cmd: str) -> None:
    subprocess.run(cmd, capture_output=True, check=False, timeout=60)


def _relay(listen: str, target: str, namespace: str | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(RELAY), listen, target]
    if namespace:
        cmd = [*_inside(namespace), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise Missing(f"the relay {listen} -> {target} did not start")
    return proc


def _stop(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    if proc.stdout is not None:
        proc.stdout.close()
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=30)


@contextmanager
def _namespace(index: int) -> Iterator[tuple[str, str, str]]:
    """The namespace ``isd-hN`` and a veth pair to it: (namespace, this side's address, its address)."""
    for tool in ("ip", "nsenter", "openssl", "dockerd"):
        if shutil.which(tool) is None:
            raise Missing(f"{tool} is not installed (a remote host needs it)")
    ns, veth, peer = f"isd-h{index}", f"isd-v{index}", f"isd-p{index}"
    here, there = f"10.214.{index}.1", f"10.214.{index}.2"
    _quiet("ip", "netns", "del", ns)  # left by a run that was killed
    _quiet("ip", "link", "del", veth)
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", ns])
        run(["ip", "addr", "add", f"{here}/24", "dev", veth])
        run(["ip", "link", "set", veth, "up"])
        inside = ["ip", "netns", "exec", ns]
        run([*inside, "ip", "addr", "add", f"{there}/24", "dev", peer])
        run([*inside, "ip", "link", "set", peer, "up"])
        run([*inside, "ip", "link", "set", "lo", "up"])
        run([*inside, "ip", "route", "add", "default", "via", here])
        yield ns, here, there
    finally:
        _quiet("ip", "netns", "del", ns)
        _quiet("ip", "link", "del", veth)


@contextmanager
def remote_docker(index: int, workdir: Path, registry_port: int) -> Iterator[RemoteDocker]:
    """A remote Docker host for the block (index 1..250 picks its addresses)."""
    with ExitStack() as stack:
        ns, here, there = stack.enter_context(_namespace(index))
        tls = make_certs(workdir / "tls", there)
        port = str(registry_port)
        stack.callback(_stop, _relay(f"{here}:{port}", f"127.0.0.1:{port}", None), 5)
        stack.callback(_stop, _relay(f"127.0.0.1:{port}", f"{here}:{port}", ns), 5)
        exec_root = Path(tempfile.mkdtemp(prefix="isd-", dir="/run" if os.access("/run", os.W_OK) else None))
        stack.callback(shutil.rmtree, exec_root, ignore_errors=True)
        data = workdir / "data"
        stack.callback(shutil.rmtree, data, ignore_errors=True)
        log = workdir / "dockerd.log"
        server = workdir / "tls"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *_inside(ns), "dockerd",
                    "--data-root", str(data),
                    "--exec-root", str(exec_root),
                    "--pidfile", str(exec_root / "dockerd.pid"),
                    "-H", f"unix://{exec_root}/docker.sock",
                    "-H", f"tcp://{there}:2376",
                    "--tlsverify",
                    "--tlscacert", str(server / "ca.pem"),
                    "--tlscert", str(server / "server.pem"),
                    "--tlskey", str(server / "server-key.pem"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        stack.callback(_unmount_under, data, exec_root)  # after the daemon stops (callbacks run last first)
        stack.callback(_stop, proc)
        host = RemoteDocker(
            namespace=ns,
            url=f"tcp://{there}:2376",
            tls=tls,
            proc=proc,
            log=log,
            socket=f"unix://{exec_root}/docker.sock",
        )
        deadline = time.monotonic() + 60
        while not host.answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Missing(f"the dockerd of {ns} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield host


@dataclass
class SshAccess:
    """sshd in a remote host's namespace, letting in one key as root."""

    url: str
    #: A folder with an ``ssh`` that offers the key let in (and trusts the host key): first on PATH,
    #: the docker client's ``ssh://`` connections use it, as they would use ~/.ssh/config.
    bin: Path
    #: The same with a key the host does not let in.
    refused_bin: Path


def _ssh_wrapper(folder: Path, key: Path, known_hosts: Path) -> Path:
    folder.mkdir(parents=True)
    ssh = folder / "ssh"
    ssh.write_text(
        "#!/bin/sh\n"
        f"exec /usr/bin/ssh -i {key} -o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts} "
        '-o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null "$@"\n'
    )
    ssh.chmod(0o755)
    return folder


@contextmanager
def ssh_access(host: RemoteDocker, workdir: Path) -> Iterator[SshAccess]:
    """sshd (Debian's openssh-server) on the host's address for the block; a session there talks
    to the host's own dockerd (``docker system dial-stdio``)."""
    sshd = Path("/usr/sbin/sshd")
    if not sshd.is_file():
        raise Missing("openssh-server is not installed (scripts/engines.sh installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    there = host.url.removeprefix("tcp://").rsplit(":", 1)[0]
    for name in ("host_key", "client_key", "other_key"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(workdir / name)])
    (workdir / "authorized_keys").write_text((workdir / "client_key.pub").read_text())
    known = workdir / "known_hosts"
    known.write_text(f"{there} {(workdir / 'host_key.pub').read_text()}")
    config = workdir / "sshd_config"
    config.write_text(
        f"ListenAddress {there}:22\n"
        f"HostKey {workdir / 'host_key'}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "StrictModes no\nUsePAM no\n"
        f"SetEnv DOCKER_HOST={host.socket}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    with (workdir / "sshd.log").open("wb") as log:
        proc = subprocess.Popen(
            [*_inside(host.namespace), str(sshd), "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        good = _ssh_wrapper(workdir / "bin", workdir / "client_key", known)
        bad = _ssh_wrapper(workdir / "refused-bin", workdir / "other_key", known)
        deadline = time.monotonic() + 30
        while run([str(good / "ssh"), f"root@{there}", "true"], check=False, timeout=20).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Missing(
                    f"sshd in {host.namespace} did not start:\n{(workdir / 'sshd.log').read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield SshAccess(url=f"ssh://root@{there}", bin=good, refused_bin=bad)
    finally:
        _stop(proc, 10)
