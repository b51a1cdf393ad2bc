"""Session fixtures: the CNCF registry in three set-ups sharing one storage, pushed images, a
fault-injecting proxy, and an environment isolated from the user's docker config and cache."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import program_on_path
from .registry_servers import (
    PASSWORD,
    USER,
    FaultProxy,
    Images,
    Pki,
    Pusher,
    Registry,
    TokenServer,
    make_pki,
    need,
    start_registry,
)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="session")
def pki(workdir: Path) -> Pki:
    return make_pki(workdir / "pki")


@pytest.fixture(scope="session")
def open_registry(workdir: Path) -> Iterator[Registry]:
    reg = start_registry(workdir, workdir / "storage")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def images(open_registry: Registry) -> Images:
    p = Pusher(open_registry.host)
    single = p.image("app", "present")
    p.image("public/app", "present")
    index = p.index("multi", "v1", [("amd64", None), ("arm64", "v8")])
    for i in range(3):
        p.image("batch", f"present-{i}")
    p.close()
    return Images(single_digest=single["digest"], index_digest=index)


@pytest.fixture(scope="session")
def tls_registry(workdir: Path, pki: Pki, images: Images) -> Iterator[Registry]:
    """Basic auth (htpasswd, bcrypt) behind TLS with the test CA, at localhost:PORT."""
    htpasswd = need("htpasswd")
    line = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True).stdout
    path = workdir / "htpasswd"
    path.write_bytes(line.strip() + b"\n")
    auth = {"htpasswd": {"realm": "imagespec-test", "path": str(path)}}
    reg = start_registry(workdir, workdir / "storage", auth=auth, tls=pki, hostname="localhost")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_server(pki: Pki) -> Iterator[TokenServer]:
    ts = TokenServer(pki, service="imagespec-test", users={USER: PASSWORD}).start()
    yield ts
    ts.stop()


@pytest.fixture(scope="session")
def token_registry(workdir: Path, pki: Pki, token_server: TokenServer, images: Images) -> Iterator[Registry]:
    auth = {
        "token": {
            "realm": token_server.realm,
            "service": token_server.service,
            "issuer": token_server.issuer,
            "rootcertbundle": str(pki.token_cert),
        }
    }
    reg = start_registry(workdir, workdir / "storage", auth=auth)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def _proxy(open_registry: Registry, images: Images) -> Iterator[FaultProxy]:
    proxy = FaultProxy(open_registry.host)
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_proxy: FaultProxy) -> Iterator[FaultProxy]:
    _proxy.reset()
    yield _proxy
    _proxy.reset()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the user's docker config or cache; returns the DOCKER_CONFIG folder."""
    docker = tmp_path / "docker-config"
    docker.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("IMAGESPEC_INSECURE_REGISTRIES", "SSL_CERT_FILE", "SSL_CERT_DIR", "DOCKER_HOST"):
        monkeypatch.delenv(var, raising=False)
    return docker


HELPER = """#!/bin/sh
# A docker credential helper for the tests; its behaviour comes from $IMAGESPEC_TEST_HELPER_MODE.
read server
echo "$server" >> "$IMAGESPEC_TEST_HELPER_LOG"
case "$IMAGESPEC_TEST_HELPER_MODE" in
  ok) printf '{"ServerURL": "%s", "Username": "alice", "Secret": "wonderland-pw"}' "$server" ;;
  wrong) printf '{"ServerURL": "%s", "Username": "alice", "Secret": "not-the-password"}' "$server" ;;
  notfound) echo "credentials not found in native keychain"; exit 1 ;;
  fail) echo "the keychain is locked" >&2; exit 3 ;;
  garbage) echo "Secret=wonderland-pw but not json" ;;
  escapes) printf 'locked\033]0;pwned\007\033[2J\r\n' >&2; exit 3 ;;
esac
"""


@pytest.fixture
def cred_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Installs docker-credential-imagespec-test on PATH; returns the log of server URLs it was asked."""
    program_on_path(tmp_path / "bin", "docker-credential-imagespec-test", HELPER, monkeypatch)
    log = tmp_path / "helper.log"
    monkeypatch.setenv("IMAGESPEC_TEST_HELPER_LOG", str(log))
    monkeypatch.setenv("IMAGESPEC_TEST_HELPER_MODE", "ok")
    return log
