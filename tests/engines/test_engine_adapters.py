"""The built-in engines against real components: docker (client detection, the remote engine over
TCP, the legacy builder), buildah and podman build the spec's context, push to the loopback
registry, and the pushed image runs with what the spec asked for; the returned name is pinned by
the digest the registry serves."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagespec import BuildError, ImageSpec, _core

from ..registry.registry_servers import PASSWORD, USER, Registry, start_registry
from .engine_helpers import MACHINE_CA, Buildah, DockerEngine, missing

SIX = "six==1.16.0"
CHECK = "import json, os, six; print(json.dumps({'six': six.__version__, 'marker': os.environ['MARKER']}))"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
LEGACY_CLI = Path("/usr/local/bin/docker")

# A cold build installs from PyPI; buildah's vfs storage copies a root filesystem per layer (about
# 200 s here for the small spec), so these tests get more than the suite's default timeout.
pytestmark = pytest.mark.timeout(900)


def small_spec(name: str, registry: str, base: str, marker: str, **extra: Any) -> ImageSpec:
    fields: dict[str, Any] = {"packages": [SIX], **extra}
    return ImageSpec(name=name, registry=registry, base_image=base, env={"MARKER": marker}, **fields)


def build(engine: str, spec: ImageSpec, wheel: Path, **kw: Any) -> dict[str, Any]:
    kw.setdefault("push", True)
    kw.setdefault("ca_bundle", str(MACHINE_CA))
    t0 = time.monotonic()
    out = _core.engine_build(
        engine,
        spec._core,
        image=spec.image_name(),
        loaded_modules=spec._loaded(),
        imagespec_wheel=wheel,
        **kw,
    )
    print(f"{engine} build of {spec.image_name()}: {time.monotonic() - t0:.1f} s")  # shown with -s
    return out


def registry_digest(ref: str) -> str:
    """The digest the registry serves for ``host/repo:tag`` (HEAD of the manifest)."""
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    req = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": ACCEPT}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def run_check(docker: DockerEngine, name: str) -> dict[str, Any]:
    docker.created.add(name.split("@")[0])
    out = docker("run", "--rm", "--pull", "always", "--entrypoint", "python3", name, "-c", CHECK)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def assert_pushed_and_runs(docker: DockerEngine, spec: ImageSpec, built: dict[str, Any], marker: str) -> None:
    image = spec.image_name()
    digest = registry_digest(image)
    assert built == {"name": f"{image}@{digest}", "digest": digest}
    assert run_check(docker, built["name"]) == {"six": "1.16.0", "marker": marker}


@pytest.fixture
def docker_env(docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> DockerEngine:
    """The engine on its socket; the client is left for the adapter to detect from the real PATH."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.delenv("IMAGESPEC_DOCKER", raising=False)
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    return docker_engine


def build_and_check(
    engine: str, name: str, docker: DockerEngine, registry: str, base: str, wheel: Path
) -> None:
    """The engine answers its probe, builds and pushes a small spec; the pushed image runs."""
    assert _core.engine_probe(engine) is None
    marker = uuid.uuid4().hex
    spec = small_spec(name, registry, base, marker)
    built = build(engine, spec, wheel)
    assert_pushed_and_runs(docker, spec, built, marker)


def test_docker_detects_a_buildkit_client_builds_pushes_and_runs(
    docker_env: DockerEngine, loopback_registry: Registry, python_base: str, imagespec_wheel: Path
) -> None:
    build_and_check(
        "docker", "adapters-docker", docker_env, loopback_registry.host, python_base, imagespec_wheel
    )


def test_docker_remote_engine_over_tcp(
    docker_env: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not docker_env.tcp_host:
        missing("dockerd has no TCP address (start it with scripts/engines.sh)")
    monkeypatch.setenv("DOCKER_HOST", docker_env.tcp_host)
    monkeypatch.setenv("IMAGESPEC_DOCKER", "/usr/bin/docker")
    # The port lets in only clients with the run's certificate: without it the probe says so.
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    why = _core.engine_probe("docker")
    assert why is not None and f"{docker_env.tcp_host} does not answer" in why, why
    for name, value in docker_env.tls_env().items():
        monkeypatch.setenv(name, value)
    build_and_check(
        "docker", "adapters-docker-tcp", docker_env, loopback_registry.host, python_base, imagespec_wheel
    )


def test_docker_probe_names_the_engine_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("docker") is None:
        missing("docker is not installed (apt-get install -y docker.io)")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    t0 = time.monotonic()
    why = _core.engine_probe("docker")
    assert time.monotonic() - t0 < 15
    assert why is not None
    assert "tcp://127.0.0.1:9 does not answer" in why
    assert "start dockerd or set DOCKER_HOST" in why


def test_docker_legacy_client_refuses_secrets_and_builds_without(
    docker_env: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not os.access(LEGACY_CLI, os.X_OK):
        missing(f"{LEGACY_CLI} (a Docker client without buildx) is not on this machine")
    monkeypatch.setenv("IMAGESPEC_DOCKER", str(LEGACY_CLI))
    marker = uuid.uuid4().hex
    spec = small_spec("adapters-docker-legacy", loopback_registry.host, python_base, marker)
    with pytest.raises(BuildError, match="BuildKit") as info:
        build("docker", spec, imagespec_wheel)
    assert "BEGIN CERTIFICATE" not in str(info.value)

    # Without a secret (no package from the index: the wheel needs none) the legacy builder builds.
    plain = ImageSpec(
        name="adapters-docker-legacy",
        registry=loopback_registry.host,
        base_image=python_base,
        env={"MARKER": marker},
    )
    built = build("docker", plain, imagespec_wheel, ca_bundle=None)
    digest = registry_digest(plain.image_name())
    assert built == {"name": f"{plain.image_name()}@{digest}", "digest": digest}
    docker_env.created.add(plain.image_name())
    out = docker_env(
        "run", "--rm", "--entrypoint", "python3", built["name"], "-c",
        "import imagespec, os; print(os.environ['MARKER'])",
    )  # fmt: skip
    assert out.strip() == marker


def test_buildah_builds_pushes_and_runs(
    buildah: Buildah,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(buildah.storage_conf))
    build_and_check(
        "buildah", "adapters-buildah", docker_engine, loopback_registry.host, python_base, imagespec_wheel
    )


def test_podman_builds_and_pushes(
    buildah: Buildah,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("podman") is None:
        missing("podman is not installed (apt-get install -y podman)")
    # The session's private vfs storage: podman shares buildah's storage configuration.
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(buildah.storage_conf))
    build_and_check(
        "podman", "adapters-podman", docker_engine, loopback_registry.host, python_base, imagespec_wheel
    )


def test_noop_returns_the_base(python_base: str) -> None:
    spec = ImageSpec(name="adapters-noop", base_image=python_base)
    assert _core.engine_probe("noop") is None
    built = _core.engine_build("noop", spec._core, image=spec.image_name(), push=False)
    assert built == {"name": python_base, "digest": None}
    with pytest.raises(BuildError, match="no base_image"):
        plain = ImageSpec(name="adapters-noop")
        _core.engine_build("noop", plain._core, image=plain.image_name(), push=False)


def test_envd_without_envd_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no envd here, whatever the machine has
    spec = ImageSpec(name="adapters-envd", base_image="localhost:5000/base:1")
    why = _core.engine_probe("envd")
    assert why is not None
    assert "not installed" in why
    with pytest.raises(BuildError, match="cannot run offline"):
        _core.engine_build("envd", spec._core, image=spec.image_name(), push=False)


def test_unknown_engine() -> None:
    with pytest.raises(BuildError, match="no built-in engine"):
        _core.engine_probe("kaniko")


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A CNCF registry at localhost:PORT that wants basic auth (htpasswd, bcrypt) for every call."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        missing("htpasswd is not installed (apt-get install -y apache2-utils)")
    workdir = tmp_path_factory.mktemp("auth-registry")
    line = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True).stdout
    (workdir / "htpasswd").write_bytes(line.strip() + b"\n")
    auth = {"htpasswd": {"realm": "imagespec-test", "path": str(workdir / "htpasswd")}}
    reg = start_registry(workdir, workdir / "storage", auth=auth, hostname="localhost")
    yield reg
    reg.stop()


def authed_digest(ref: str) -> str:
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": ACCEPT, "Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


@pytest.mark.parametrize("engine", ["docker", "buildah", "native"])
def test_the_spec_registry_config_pushes_to_a_registry_that_wants_credentials(
    engine: str,
    auth_registry: Registry,
    docker_engine: DockerEngine,
    buildah: Buildah,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The engines' own configs know nothing of this registry: only the spec's file has the login.
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "no-auth.json"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(buildah.storage_conf))
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conf = tmp_path / "team-registry.json"  # any name: docker itself only reads config.json
    conf.write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    marker = uuid.uuid4().hex
    name = f"adapters-auth-{engine}"
    spec = small_spec(name, auth_registry.host, python_base, marker, registry_config=str(conf))
    built = build(engine, spec, imagespec_wheel)
    assert built["digest"] == authed_digest(spec.image_name())
    if engine == "docker":
        docker_engine.created.add(spec.image_name())

    # Without the file the push is refused, and the error says so without any secret in it.
    plain = small_spec(name + "-nologin", auth_registry.host, python_base, marker)
    with pytest.raises(BuildError) as info:
        build(engine, plain, imagespec_wheel)
    text = str(info.value)
    assert PASSWORD not in text and token not in text
    assert any(w in text.lower() for w in ("auth", "credential", "401", "denied")), text
    if engine == "docker":
        docker_engine.created.add(plain.image_name())
