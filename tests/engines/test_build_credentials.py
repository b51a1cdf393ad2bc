"""Credentials of a private package server through real builds (docs/security.md, items 3, 4, 8e).

A package server on this machine answers only with the right token (HTTP basic auth), as a
private GitLab or Artifactory would. Per builder (docker with BuildKit, buildah, native):

* a `packages` entry `secretpkg @ http://u:TOKEN@host/...whl` installs, and the token is in no file
  of any layer, config or history of the pushed image (item 3);
* native: while uv downloads from `pip_index=http://u:TOKEN@...`, another local user (uid 65534)
  reads every process's command line and environment it can and tries the build's folders: it
  finds no token (item 4; the server holds the download until the other user has looked);
* native without a cache folder: a cache folder another user made first in the temporary folder
  is refused, and nothing is written into it (item 8e).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socketserver
import subprocess
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from imagespec import BuildError, ImageSpec, build

from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, DockerEngine, find_in_archive, registry_archive
from .other_user import SYSTEM_PYTHON, as_other_user, require_other_user, shared_folder

pytestmark = pytest.mark.timeout(900)

WHEEL_NAME = "secretpkg-1.0-py3-none-any.whl"


def make_wheel(marker: str) -> bytes:
    """A pure-Python wheel whose module holds `marker` (to check what the image got)."""
    info = "secretpkg-1.0.dist-info"
    files = {
        "secretpkg/__init__.py": f"MARKER = {marker!r}\n".encode(),
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: secretpkg\nVersion: 1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = ("".join(f"{k},,\n" for k in files) + f"{info}/RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


@dataclass
class PackageServer:
    """A simple index (`/simple/secretpkg/`) and the wheel (`/files/...`), for `user:token` only.
    With `hold` set, the first authorised request waits until `release` is set."""

    token: str
    marker: str
    port: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    unauthorised: int = 0

    def url(self, host: str, path: str, credentials: bool = True) -> str:
        who = f"u:{self.token}@" if credentials else ""
        return f"http://{who}{host}:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[PackageServer]:
    state = PackageServer(token=f"tok-{uuid.uuid4().hex}", marker=uuid.uuid4().hex)
    wheel = make_wheel(state.marker)
    expected = "Basic " + base64.b64encode(f"u:{state.token}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            if self.headers.get("Authorization") != expected:
                state.unauthorised += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if state.hold.is_set() and not state.held.is_set():
                state.held.set()
                state.release.wait(120)
            path = self.path.split("?")[0].rstrip("/")
            if path == "/simple/secretpkg":
                digest = hashlib.sha256(wheel).hexdigest()
                data = f'<a href="/files/{WHEEL_NAME}#sha256={digest}">{WHEEL_NAME}</a>'.encode()
                kind = "text/html"
            elif path == f"/files/{WHEEL_NAME}":
                data, kind = wheel, "application/octet-stream"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    # Every address: docker's build containers reach it through the bridge's gateway address.
    httpd = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    socketserver.TCPServer.allow_reuse_address = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def bridge_gateway(docker: DockerEngine) -> str:
    """The address of this machine on docker's default bridge, as build containers see it."""
    out = docker(
        "network",
        "inspect",
        "bridge",
        "--format",
        '{{range .IPAM.Config}}{{.Gateway}} {{end}}|{{index .Options "com.docker.network.bridge.name"}}',
    )
    gateways, _, name = out.strip().partition("|")
    if gateways.split():
        return gateways.split()[0]
    # A daemon's first start on a machine shows no Gateway (moby/moby#26799): the bridge's own
    # address is the gateway.
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", name.strip() or "docker0"], capture_output=True, text=True
    ).stdout.split()
    assert len(shown) > 3, f"docker's bridge {name!r} has no IPv4 address"
    return shown[3].split("/")[0]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder of /tmp with /tmp's mode (1777): a shared cache or temporary folder."""
    with shared_folder() as path:
        yield path


def assert_token_nowhere(ref: str, token: str, workdir: Path) -> None:
    archive = registry_archive(ref, workdir)
    found = find_in_archive(archive, [token.encode()])
    assert not found, f"the token is in {ref}: {[p for p, _ in found][:5]}"


def run_marker(docker: DockerEngine, ref: str) -> str:
    return docker("run", "--rm", ref, "python", "-c", "import secretpkg; print(secretpkg.MARKER)").strip()


@pytest.mark.parametrize("builder", ["docker", "buildah", "native"])
def test_a_package_url_token_installs_and_reaches_no_layer(
    builder: str,
    request: pytest.FixtureRequest,
    server: PackageServer,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    host = "127.0.0.1"
    if builder == "docker":
        host = bridge_gateway(docker_engine)
    elif builder == "buildah":
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(request.getfixturevalue("buildah").storage_conf))
    spec = ImageSpec(
        name=f"credentials-{builder}",
        registry=loopback_registry.host,
        base_image=python_base,
        python_version="3.11",
        packages=[f"secretpkg @ {server.url(host, '/files/' + WHEEL_NAME)}"],
        env={"RUN": uuid.uuid4().hex},
    )
    report = build(
        spec, builder=builder, no_cache=True, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA
    )
    result = report[spec]
    assert result.outcome == "built", report.summary()
    assert server.token not in report.summary()
    docker_engine.created.add(result.image)
    assert run_marker(docker_engine, result.name) == server.marker
    assert_token_nowhere(result.image, server.token, tmp_path)


# Run as the other user: the token in any command line, environment or file it can read.
LOOK = """
import json, os, sys
token = sys.stdin.read().strip()
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    if token.encode() in f.read():
                        found.append(f"/proc/{pid}/{what}")
            except OSError:
                pass
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top):
        for n in files:
            try:
                with open(os.path.join(d, n), "rb") as f:
                    if token.encode() in f.read():
                        found.append(os.path.join(d, n))
            except OSError:
                pass
print(json.dumps(found))
"""


def test_no_other_user_sees_the_index_token_while_uv_runs(
    server: PackageServer,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    shared: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_other_user()
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(shared / "cache"))
    spec = ImageSpec(
        name="credentials-native-index",
        registry=loopback_registry.host,
        base_image=python_base,
        python_version="3.11",
        pip_index=server.url("127.0.0.1", "/simple"),
        packages=["secretpkg==1.0"],
        env={"RUN": uuid.uuid4().hex},
    )
    server.hold.set()
    done: dict[str, Any] = {}

    def run_build() -> None:
        try:
            done["report"] = build(spec, builder="native", no_cache=True, imagespec_wheel=imagespec_wheel)
        except BaseException as e:  # handed to the test's thread
            done["error"] = e

    builder = threading.Thread(target=run_build)
    builder.start()
    try:
        assert server.held.wait(300), f"uv never asked the index: {done}"
        look = as_other_user([SYSTEM_PYTHON, "-c", LOOK, str(shared)], stdin=server.token)
    finally:
        server.release.set()
        builder.join(600)
    assert look.returncode == 0, look.stderr
    assert json.loads(look.stdout) == [], "another user saw the index token"
    assert "error" not in done, done.get("error")
    result = done["report"][spec]
    assert result.outcome == "built", done["report"].summary()
    docker_engine.created.add(result.image)
    assert run_marker(docker_engine, result.name) == server.marker
    assert_token_nowhere(result.image, server.token, tmp_path)


def test_a_cache_folder_another_user_made_first_is_refused(
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    shared: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No configured cache folder (no IMAGESPEC_CACHE_DIR, XDG_CACHE_HOME or HOME): the native
    builder's cache would be in the temporary folder, where another user made it first to read the
    layers made there or plant its own (layers.json names the files of a cached layer)."""
    require_other_user()
    planted = [shared / "imagespec-native", shared / f"imagespec-{os.geteuid()}"]
    code = "import os, sys\nfor p in sys.argv[1:]:\n    os.mkdir(p)\n    os.chmod(p, 0o777)\n"
    made = as_other_user([SYSTEM_PYTHON, "-c", code, *map(str, planted)])
    assert made.returncode == 0, made.stderr
    for var in ("IMAGESPEC_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TMPDIR", str(shared))
    spec = ImageSpec(
        name="credentials-native-cache",
        registry=loopback_registry.host,
        base_image=python_base,
        python_version="3.11",
        env={"RUN": uuid.uuid4().hex},
    )
    with pytest.raises(BuildError, match="is not a folder of this user") as e:
        build(spec, builder="native", imagespec_wheel=imagespec_wheel)
    assert "set IMAGESPEC_CACHE_DIR to a folder of your own" in str(e.value)
    for p in planted:
        assert list(p.iterdir()) == [], f"the build wrote into {p}"
