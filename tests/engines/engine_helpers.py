"""Real container engines for the tests: dockerd (Debian's 20.10 engine and CLI), buildah, the base
image made with debootstrap, and tools to look inside built images.

Everything runs on this machine: no image comes from a public registry. ``scripts/engines.sh``
installs and starts the engines, ``scripts/base-image.sh`` makes the Python base image (cached
under ``~/.cache/imagespec-test``). See docs/engines.md.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[2]
ENGINES_SH = ROOT / "scripts" / "engines.sh"
BASE_IMAGE_SH = ROOT / "scripts" / "base-image.sh"
#: The Debian 20.10 client: BuildKit built in (DOCKER_BUILDKIT=1). /usr/local/bin/docker (first on
#: PATH here) is a Docker 28 client that needs the missing buildx plugin for BuildKit.
DOCKER_CLI = "/usr/bin/docker"
DOCKER_SOCKET = "/var/run/docker.sock"
#: The machine's CA bundle: package registries are reached through it (see shared/ENVIRONMENT.md).
MACHINE_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_REPOSITORY = "imagespec-test/python:3.11-bookworm"
INSTALL_HINT = "as root: scripts/engines.sh start (it apt-get installs docker.io, buildah, skopeo, ...)"


class Missing(Exception):
    """A component the engine tests need is not here; the message says how to get it."""


def missing(reason: str) -> NoReturn:
    """Fails the test under CI (where everything must be there), skips it elsewhere."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"engine tests: {reason}", pytrace=False)
    pytest.skip(f"engine tests: {reason}")


def run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
    check: bool = True,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command, capturing text output; on failure raises with the command and its output's tail."""
    proc = subprocess.run(
        list(cmd),
        env=env,
        cwd=cwd,
        timeout=timeout,
        capture_output=True,
        input=input.decode() if input is not None else None,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}"
        )
    return proc


# --------------------------------------------------------------------------------------- engines


def engines_start(lease: str) -> dict[str, str]:
    """``scripts/engines.sh start`` under ``lease``; returns the ``KEY=VALUE`` lines of its status."""
    if shutil.which("bash") is None:
        raise Missing("bash is required by scripts/engines.sh")
    env = {**os.environ, "IMAGESPEC_ENGINES_LEASE": lease}
    proc = subprocess.run(
        ["bash", str(ENGINES_SH), "start"], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        raise Missing(f"scripts/engines.sh start failed:\n{proc.stderr[-3000:]}\n({INSTALL_HINT})")
    return engines_status()


def engines_status() -> dict[str, str]:
    proc = subprocess.run(["bash", str(ENGINES_SH), "status"], capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if re.match(r"^[A-Z_]+=", line))


def engines_stop(lease: str) -> None:
    env = {**os.environ, "IMAGESPEC_ENGINES_LEASE": lease}
    subprocess.run(["bash", str(ENGINES_SH), "stop"], env=env, capture_output=True, timeout=120, check=False)


@dataclass
class DockerEngine:
    """A Docker engine that answers, and the CLI that builds with BuildKit against it."""

    cli: str = DOCKER_CLI
    host: str = f"unix://{DOCKER_SOCKET}"
    #: The same engine over loopback TCP (``tcp://127.0.0.1:PORT``), for the remote-engine path;
    #: None when the engine was not started by scripts/engines.sh.
    tcp_host: str | None = None
    #: The folder of the client certificate that port wants (``ca.pem``, ``cert.pem``, ``key.pem``):
    #: scripts/engines.sh makes them at each dockerd start, in its private state folder.
    cert_path: str | None = None
    #: What this session built: removed at the end of the session.
    created: set[str] = field(default_factory=set)

    def env(self, host: str | None = None, **extra: str) -> dict[str, str]:
        """The environment for the CLI: DOCKER_HOST (with the TLS client variables for the TCP
        port) and BuildKit on, plus ``extra``."""
        env = {**os.environ, "DOCKER_HOST": host or self.host, "DOCKER_BUILDKIT": "1", **extra}
        for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            env.pop(name, None)
        if host is not None and host == self.tcp_host:
            env.update(self.tls_env())
        return env

    def tls_env(self) -> dict[str, str]:
        """What a Docker client needs to be let in on ``tcp_host``."""
        if self.cert_path is None:
            raise Missing("scripts/engines.sh gave no DOCKER_CERT_PATH for the engine's TCP port")
        return {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": self.cert_path}

    def __call__(self, *args: str, host: str | None = None, timeout: float = 600, check: bool = True) -> str:
        """Runs ``docker ARGS`` and returns its stdout."""
        return run([self.cli, *args], env=self.env(host), timeout=timeout, check=check).stdout

    def build(
        self, context: Path, tag: str, *extra: str, host: str | None = None, timeout: float = 900
    ) -> str:
        """``docker build`` with BuildKit (plain progress: the log is the output); returns the log."""
        self.created.add(tag)
        proc = run(
            [self.cli, "build", "--progress=plain", "-t", tag, *extra, str(context)],
            env=self.env(host),
            timeout=timeout,
        )
        return proc.stderr + proc.stdout

    def cleanup(self, registry_host: str | None = None) -> None:
        """Removes the images built here and, with ``registry_host``, every local name in that
        (session) registry; the base keeps a stable local name so its layers stay for the next
        session (whose registry has another port)."""
        names = set(self.created)
        if registry_host:
            listed = self("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
            names |= {n for n in listed.split() if n.startswith(registry_host + "/")}
            base = f"{registry_host}/{BASE_REPOSITORY}"
            if base in names:
                run([self.cli, "tag", base, BASE_REPOSITORY], env=self.env(), check=False)
        if names:
            run([self.cli, "image", "rm", "-f", *sorted(names)], env=self.env(), check=False)
        self.created.clear()


@dataclass
class Buildah:
    """buildah as it works here: vfs storage (in a private folder), chroot isolation, and plain
    HTTP only for loopback registries.

    ``env`` points ``CONTAINERS_STORAGE_CONF`` at this session's storage, so that any buildah (or
    podman) started with it, the tests' own or imagespec's builder, shares it.
    """

    path: str
    storage_conf: Path
    #: global flags (before the command): the storage driver
    global_flags: tuple[str, ...] = ("--storage-driver", "vfs")
    #: flags of ``bud``/``from``/``run``: no namespaces but the mount one
    isolation_flags: tuple[str, ...] = ("--isolation", "chroot")
    #: flags of ``bud``/``from``/``pull``/``push`` for a plain-HTTP loopback registry
    insecure_flags: tuple[str, ...] = ("--tls-verify=false",)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_STORAGE_CONF": str(self.storage_conf)}

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return run([self.path, *self.global_flags, *args], env=self.env, timeout=timeout, check=check).stdout

    def bud(self, context: Path, tag: str, *extra: str, timeout: float = 900) -> str:
        """``buildah bud`` with the flags that work here; returns the log."""
        proc = run(
            [
                self.path,
                *self.global_flags,
                "bud",
                *self.isolation_flags,
                *self.insecure_flags,
                "-t",
                tag,
                *extra,
                str(context),
            ],
            env=self.env,
            timeout=timeout,
        )
        return proc.stderr + proc.stdout

    def push(self, ref: str) -> None:
        self("push", *self.insecure_flags, ref)

    def cleanup(self) -> None:
        self("rm", "--all", check=False)
        self("rmi", "--all", "--force", check=False)


def make_buildah(workdir: Path) -> Buildah:
    path = shutil.which("buildah")
    if path is None:
        raise Missing(f"buildah is not installed ({INSTALL_HINT})")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{workdir / "root"}"\nrunroot = "{workdir / "run"}"\n'
    )
    b = Buildah(path, conf)
    b("info", timeout=60)  # fails loudly when buildah cannot use the storage
    return b


def push_base_image(registry_host: str, timeout: float = 1200) -> str:
    """Makes (or takes from the cache) the Python base image and pushes it; returns its reference."""
    ref = f"{registry_host}/{BASE_REPOSITORY}"
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BASE_IMAGE_SH), "push", ref],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise Missing(f"scripts/base-image.sh push {ref} failed:\n{proc.stderr[-3000:]}")
    print(f"base image {ref} ready in {time.monotonic() - t0:.1f} s")  # shown with -s / -rP
    return ref


# ------------------------------------------------------------------------------ looking inside


def pem_bodies(bundle: str) -> set[str]:
    """The certificates of a PEM bundle, as their base64 bodies without line breaks."""
    found = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", bundle, re.S)
    return {"".join(b.split()) for b in found}


def pem_lines(bundle: str, certs: Iterable[str]) -> list[bytes]:
    """For each certificate body, its first full base64 line as it appears in ``bundle`` (what a
    byte search of a file copied from ``bundle`` would find)."""
    lines = []
    for body in certs:
        for line in bundle.splitlines():
            if len(line) >= 48 and line in body:
                lines.append(line.encode())
                break
    return lines


def walk_archive(data: bytes, name: str = "") -> Iterator[tuple[str, bytes]]:
    """Every regular file inside a tar (or gzipped tar), descending into tars and gzips inside it:
    ``(path, content)`` pairs, the path joined with ``!`` at each nesting."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            yield name, data
            return
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 (closed below)
    except tarfile.TarError:
        yield name, data
        return
    with tar:
        for member in tar:
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            assert f is not None
            content = f.read()
            path = f"{name}!{member.name}" if name else member.name
            if content[:2] == b"\x1f\x8b" or member.name.endswith(".tar") or "/blobs/" in member.name:
                yield from walk_archive(content, path)
            else:
                yield path, content


def find_in_archive(data: bytes, needles: Sequence[bytes]) -> list[tuple[str, bytes]]:
    """``(path, needle)`` for each file of the archive (see ``walk_archive``) containing a needle."""
    return [(path, n) for path, content in walk_archive(data) for n in needles if n in content]


def registry_archive(ref: str, workdir: Path) -> bytes:
    """The image at ``ref`` in a (loopback) registry, as skopeo copies it: an OCI layout in a tar."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise Missing(f"skopeo is not installed ({INSTALL_HINT})")
    out = workdir / "oci"
    shutil.rmtree(out, ignore_errors=True)
    run([skopeo, "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:image"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        tar.add(out, arcname=".")
    shutil.rmtree(out, ignore_errors=True)
    return buf.getvalue()
