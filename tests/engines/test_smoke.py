"""The engine test infrastructure works, with real components and none of imagespec's build code:
docker (BuildKit) and buildah build FROM the debootstrap base in the loopback registry, reach PyPI
through the machine's CA bundle passed as a build secret (which stays out of the image), push, and
run; the base is PEP 668 managed; the engine answers over loopback TCP (the remote-engine path)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..registry.registry_servers import Registry
from .engine_helpers import (
    MACHINE_CA,
    Buildah,
    DockerEngine,
    find_in_archive,
    missing,
    pem_bodies,
    pem_lines,
    registry_archive,
    run,
)

WHEEL = "six==1.16.0"  # 11 kB, pure Python
WHEEL_FILE = "six-1.16.0-py2.py3-none-any.whl"

DOCKERFILE = """\
FROM {base}
RUN --mount=type=secret,id=ca,target=/run/ca.pem \\
    PIP_CERT=/run/ca.pem python3 -m pip download --disable-pip-version-check --no-deps \\
        --dest /wheels {wheel} \\
 && sha256sum /run/ca.pem | cut -d' ' -f1 > /wheels/ca.sha256
"""

# What the built image must show: the wheel, the secret seen during the build (by its hash), and
# neither the secret's mount point nor the machine's CA in the image's own bundle.
CHECK = """
import hashlib, json, os, sys
stock = open("/etc/ssl/certs/ca-certificates.crt", "rb").read()
print(json.dumps({
    "wheels": sorted(os.listdir("/wheels")),
    "secret_sha256": open("/wheels/ca.sha256").read().strip(),
    "secret_mount_left": os.path.exists("/run/ca.pem"),
    "stock_bundle_sha256": hashlib.sha256(stock).hexdigest(),
    "python": sys.version.split()[0],
}))
"""


@dataclass
class CaSecret:
    """The machine's CA bundle as a build secret, with a marker line no image may contain."""

    path: Path
    sha256: str
    marker: bytes
    #: a base64 line of each machine certificate that Debian's stock bundle lacks
    machine_only: list[bytes]

    @property
    def needles(self) -> list[bytes]:
        return [self.marker, *self.machine_only]


@pytest.fixture(scope="module")
def ca_secret(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine, python_base: str
) -> CaSecret:
    if not MACHINE_CA.is_file():
        missing(f"no machine CA bundle at {MACHINE_CA}")
    bundle = MACHINE_CA.read_text()
    stock = docker_engine("run", "--rm", python_base, "cat", "/etc/ssl/certs/ca-certificates.crt")
    extra = pem_bodies(bundle) - pem_bodies(stock)
    # A PEM bundle may carry text between certificates: a unique marker makes the leak check
    # meaningful even on a machine whose bundle is the stock one.
    marker = f"# imagespec-test-secret-{uuid.uuid4().hex}".encode()
    content = marker + b"\n" + MACHINE_CA.read_bytes()
    path = tmp_path_factory.mktemp("secret") / "ca.pem"
    path.write_bytes(content)
    return CaSecret(path, hashlib.sha256(content).hexdigest(), marker, pem_lines(bundle, extra))


def write_context(d: Path, base: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text(DOCKERFILE.format(base=base, wheel=WHEEL))
    return d


def check_image(docker: DockerEngine, ref: str, secret: CaSecret) -> dict[str, object]:
    """Runs ``ref`` (pulled from the registry) and checks what it shows."""
    out = json.loads(docker("run", "--rm", ref, "python3", "-c", CHECK))
    assert out["wheels"] == sorted([WHEEL_FILE, "ca.sha256"])
    assert out["secret_sha256"] == secret.sha256  # the secret was there during the build...
    assert out["secret_mount_left"] is False  # ...and its mount point is gone
    assert out["stock_bundle_sha256"] != secret.sha256
    assert str(out["python"]).startswith("3.11.")
    return out


def assert_no_secret(archive: bytes, secret: CaSecret, what: str) -> None:
    found = find_in_archive(archive, secret.needles)
    assert not found, f"the CA secret leaked into {what}: {found[:5]}"
    assert b"imagespec-test-secret" not in archive  # the marker's prefix, anywhere, even split


@pytest.fixture(scope="module")
def docker_image(
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    ca_secret: CaSecret,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The smoke image built by docker (BuildKit), pushed, and removed locally (runs pull it back)."""
    ref = f"{loopback_registry.host}/smoke/docker:{uuid.uuid4().hex[:12]}"
    ctx = write_context(tmp_path_factory.mktemp("docker-ctx"), python_base)
    t0 = time.monotonic()
    # --no-cache: BuildKit's cache outlives dockerd (in /var/lib/docker) and ignores secrets' content,
    # so without it a second session would prove nothing.
    log = docker_engine.build(ctx, ref, "--no-cache", "--secret", f"id=ca,src={ca_secret.path}")
    print(f"docker build: {time.monotonic() - t0:.1f} s")
    assert "Saved /wheels/" + WHEEL_FILE in log
    docker_engine("push", ref)
    return ref


def test_docker_buildkit_secret_push_run(
    docker_engine: DockerEngine, docker_image: str, ca_secret: CaSecret
) -> None:
    docker_engine("image", "rm", docker_image)
    check_image(docker_engine, docker_image, ca_secret)  # pulled back from the registry


def test_docker_image_has_no_secret(
    docker_engine: DockerEngine, docker_image: str, ca_secret: CaSecret, tmp_path: Path
) -> None:
    history = docker_engine("history", "--no-trunc", "--format", "{{.CreatedBy}}", docker_image)
    assert "PIP_CERT=/run/ca.pem python3 -m pip download" in history  # the RUN is recorded (not its mounts)
    for needle in ca_secret.needles:
        assert needle.decode() not in history
    inspect = docker_engine("image", "inspect", docker_image)
    assert "imagespec-test-secret" not in inspect
    saved = tmp_path / "saved.tar"
    docker_engine("save", "-o", str(saved), docker_image)
    assert_no_secret(saved.read_bytes(), ca_secret, "docker save")
    assert_no_secret(registry_archive(docker_image, tmp_path), ca_secret, "the pushed image")


def test_buildah_secret_push_run(
    buildah: Buildah,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    ca_secret: CaSecret,
    tmp_path: Path,
) -> None:
    ref = f"{loopback_registry.host}/smoke/buildah:{uuid.uuid4().hex[:12]}"
    ctx = write_context(tmp_path / "ctx", python_base)
    t0 = time.monotonic()
    log = buildah.bud(ctx, ref, "--no-cache", "--secret", f"id=ca,src={ca_secret.path}")
    print(f"buildah bud: {time.monotonic() - t0:.1f} s")
    assert "Saved /wheels/" + WHEEL_FILE in log
    buildah.push(ref)
    history = buildah("inspect", "--type", "image", ref)
    assert "imagespec-test-secret" not in history
    assert_no_secret(registry_archive(ref, tmp_path), ca_secret, "the pushed image")
    docker_engine.created.add(ref)
    check_image(docker_engine, ref, ca_secret)  # another engine runs it from the registry


def test_base_lacks_the_machine_ca(docker_engine: DockerEngine, python_base: str) -> None:
    """Without the secret, pip in the base cannot reach PyPI here: the CA option is needed."""
    proc = run(
        [
            docker_engine.cli,
            "run",
            "--rm",
            python_base,
            "python3",
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--retries",
            "0",
            "--timeout",
            "20",
            "--no-deps",
            "--dest",
            "/tmp/w",
            WHEEL,
        ],
        env=docker_engine.env(),
        check=False,
    )
    assert proc.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stdout + proc.stderr or "SSLError" in proc.stdout + proc.stderr


def test_pep668_system_pip_refused_venv_works(docker_engine: DockerEngine, docker_image: str) -> None:
    refused = run(
        [
            docker_engine.cli,
            "run",
            "--rm",
            docker_image,
            "python3",
            "-m",
            "pip",
            "install",
            "--no-index",
            "six",
        ],
        env=docker_engine.env(),
        check=False,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stdout + refused.stderr
    script = (
        "python3 -m venv /opt/venv"
        f" && /opt/venv/bin/pip install --disable-pip-version-check --no-index /wheels/{WHEEL_FILE}"
        " && /opt/venv/bin/python -c 'import six, sys; print(six.__version__, sys.prefix)'"
    )
    out = docker_engine("run", "--rm", docker_image, "sh", "-c", script)
    assert out.strip().splitlines()[-1] == "1.16.0 /opt/venv"


def test_remote_engine_over_loopback_tcp(
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    ca_secret: CaSecret,
    tmp_path: Path,
) -> None:
    """DOCKER_HOST=tcp://127.0.0.1:PORT reaches the engine: info, run, and a BuildKit build with a
    secret (the client streams the context and the secret over the TCP connection)."""
    if docker_engine.tcp_host is None:
        missing("the Docker engine here was not started by scripts/engines.sh: it has no TCP address")
    tcp = docker_engine.tcp_host
    assert tcp.startswith("tcp://127.0.0.1:")
    local = docker_engine("info", "--format", "{{.ID}}")
    assert docker_engine("info", "--format", "{{.ID}}", host=tcp) == local and local.strip()
    out = docker_engine("run", "--rm", python_base, "python3", "-c", "print('over tcp')", host=tcp)
    assert out.strip() == "over tcp"
    ref = f"{loopback_registry.host}/smoke/tcp:{uuid.uuid4().hex[:12]}"
    ctx = write_context(tmp_path / "ctx", python_base)
    log = docker_engine.build(ctx, ref, "--no-cache", "--secret", f"id=ca,src={ca_secret.path}", host=tcp)
    assert "Saved /wheels/" + WHEEL_FILE in log
    docker_engine("push", ref, host=tcp)
    docker_engine("image", "rm", ref)
    check_image(docker_engine, ref, ca_secret)


def test_leak_check_finds_a_copied_secret(
    docker_engine: DockerEngine, python_base: str, ca_secret: CaSecret, tmp_path: Path
) -> None:
    """The negative control: the same checks do find the secret when a build copies it."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "ca.pem").write_bytes(ca_secret.path.read_bytes())
    (ctx / "Dockerfile").write_text(f"FROM {python_base}\nCOPY ca.pem /etc/leaked.pem\n")
    tag = f"imagespec-test/leak:{uuid.uuid4().hex[:12]}"
    docker_engine.build(ctx, tag, "--no-cache")
    saved = tmp_path / "saved.tar"
    docker_engine("save", "-o", str(saved), tag)
    found = find_in_archive(saved.read_bytes(), ca_secret.needles)
    assert {n for _, n in found} == set(ca_secret.needles)
    assert all(path.endswith("etc/leaked.pem") for path, _ in found)
