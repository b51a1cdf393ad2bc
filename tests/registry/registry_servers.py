"""Real servers for the registry tests: the CNCF registry, a docker token server, a fault proxy.

Everything listens on loopback ports chosen by the kernel. Keys and certificates are made with the
``openssl`` program; htpasswd files with ``htpasswd -B`` (apache2-utils).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USER, PASSWORD = "alice", "wonderland-pw"


@dataclass
class Images:
    """What the session pushed, by repository and tag, on every set-up (one shared storage)."""

    single_digest: str
    index_digest: str


def write_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(json.dumps(config))
    return path


MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(program: str) -> str:
    """The program's path; fails loudly under CI, skips elsewhere, when it is missing."""
    import pytest

    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (scripts/setup.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*cmd: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(cmd, input=stdin, check=True, capture_output=True).stdout


# ---------------------------------------------------------------------------------------- TLS


@dataclass
class Pki:
    dir: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token_cert: Path
    token_key: Path
    token_kid: str


def make_pki(d: Path) -> Pki:
    """A test CA, a server certificate for localhost/127.0.0.1 signed by it, and a token-signing key."""
    openssl = need("openssl")
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = d / "ca.key", d / "ca.pem"
    run(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
        "-days",
        "2",
        "-subj",
        "/CN=imagespec test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    key, csr, cert = d / "server.key", d / "server.csr", d / "server.pem"
    run(
        openssl,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=localhost",
    )
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run(
        openssl,
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    tkey, tcert = d / "token.key", d / "token.pem"
    run(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(tkey),
        "-out",
        str(tcert),
        "-days",
        "2",
        "-subj",
        "/CN=imagespec test token issuer",
    )
    spki = run(openssl, "pkey", "-in", str(tkey), "-pubout", "-outform", "DER")
    # libtrust key id: base32 of the first 240 bits of SHA-256(SPKI), in groups of four.
    b32 = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    kid = ":".join(b32[i : i + 4] for i in range(0, 48, 4))
    return Pki(d, ca_cert, cert, key, tcert, tkey, kid)


# ----------------------------------------------------------------------------------- registry


@dataclass
class Registry:
    """A running ``docker-registry``; ``host`` is what references name (``127.0.0.1:PORT``)."""

    host: str
    proc: subprocess.Popen[bytes]
    scheme: str = "http"
    log: Path | None = None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_registry(
    workdir: Path,
    storage: Path,
    *,
    auth: dict[str, Any] | None = None,
    tls: Pki | None = None,
    hostname: str = "127.0.0.1",
    access_log: bool = False,
) -> Registry:
    """A registry on a free loopback port; with ``access_log`` every request it serves is a line of
    ``Registry.log`` (see ``requests_of``)."""
    exe = need("docker-registry")
    port = free_port()
    http_cfg: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": "imagespec-test"}
    if tls is not None:
        http_cfg["tls"] = {"certificate": str(tls.server_cert), "key": str(tls.server_key)}
    cfg: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": not access_log}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": http_cfg,
    }
    if auth:
        cfg["auth"] = auth
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"registry-{port}.yml"
    conf.write_text(json.dumps(cfg))  # JSON is YAML
    log = workdir / f"registry-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "serve", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    reg = Registry(f"{hostname}:{port}", proc, "https" if tls else "http", log)
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert)) if tls else None
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        conn = (
            http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
            if ctx
            else http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        )
        try:
            conn.request("GET", "/v2/")
            if conn.getresponse().status in (200, 401):
                return reg
        except OSError:
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            reg.stop()
            raise RuntimeError(f"docker-registry did not answer on port {port}: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def requests_of(reg: Registry) -> list[tuple[str, str]]:
    """``(method, path)`` of every request in the access log of ``reg`` (started with
    ``access_log=True``), in order."""
    assert reg.log is not None
    text = reg.log.read_text(errors="replace")
    return re.findall(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[0-9.]+"', text)


def uploaded_blobs(reg: Registry, since: int = 0) -> list[str]:
    """The digests (``sha256:…``) of the blob uploads ``reg`` completed after its ``since``-th
    request, in order (from its access log: the ``PUT`` that ends an upload names the digest)."""
    return [
        p.split("digest=", 1)[1].split("&", 1)[0].replace("%3A", ":")
        for m, p in requests_of(reg)[since:]
        if m == "PUT" and "/blobs/uploads/" in p and "digest=" in p
    ]


# --------------------------------------------------------------------------- reading what is there

#: What the reads below accept: an image manifest of either kind, or an index.
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.index.v1+json"
)


def tags(registry: Registry, repo: str) -> list[str]:
    with urllib.request.urlopen(f"http://{registry.host}/v2/{repo}/tags/list", timeout=10) as r:
        return list(json.load(r)["tags"] or [])


def manifest(registry: Registry, repo: str, ref: str) -> tuple[bytes, str]:
    """The manifest of ``repo`` at ``ref`` and its media type."""
    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{ref}")
    req.add_header("Accept", MANIFEST_TYPES)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read(), r.headers["Content-Type"]


def put_manifest(registry: Registry, repo: str, ref: str, body: bytes, media_type: str) -> None:
    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{ref}", data=body, method="PUT")
    req.add_header("Content-Type", media_type)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201


def blob(registry: Registry, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"http://{registry.host}/v2/{repo}/blobs/{digest}", timeout=30) as r:
        return bytes(r.read())


def layers(image: str) -> list[str]:
    """The layer digests of ``image`` (``host/repo:tag[@digest]``), from its plain-HTTP registry."""
    host, rest = image.split("/", 1)
    repo, ref = rest.split("@")[0].rsplit(":", 1)
    if "@" in rest:
        ref = rest.split("@")[1]
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}")
    req.add_header("Accept", MANIFEST_TYPES)
    with urllib.request.urlopen(req, timeout=10) as r:
        return [layer["digest"] for layer in json.load(r)["layers"]]


def shared_prefix(a: list[str], b: list[str]) -> int:
    """How many layers two images share from the bottom."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# ------------------------------------------------------------------------------------- pushing


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _layer(text: bytes) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        ti = tarfile.TarInfo("placeholder.txt")
        ti.size, ti.mtime, ti.mode = len(text), 0, 0o644
        tar.addfile(ti, io.BytesIO(text))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


class Pusher:
    """Pushes small real images (blobs, then manifests) to a plain-HTTP registry."""

    def __init__(self, host: str) -> None:
        h, p = host.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(h, int(p), timeout=30)

    def req(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
    ) -> http.client.HTTPResponse:
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        if r.status not in ok:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return r

    def close(self) -> None:
        self.conn.close()

    def blob(self, repo: str, data: bytes) -> str:
        d = _digest(data)
        if self.req("HEAD", f"/v2/{repo}/blobs/{d}", ok=(200, 404)).status == 200:
            return d
        loc = self.req("POST", f"/v2/{repo}/blobs/uploads/").getheader("Location") or ""
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        sep = "&" if "?" in loc else "?"
        self.req(
            "PUT",
            f"{loc}{sep}digest={d}",
            body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        return d

    def image(
        self, repo: str, tag: str | None, arch: str = "amd64", variant: str | None = None, note: str = ""
    ) -> dict[str, Any]:
        """Pushes a one-layer image (``note`` makes its content differ from the usual one);
        returns its manifest descriptor (digest, size, mediaType)."""
        raw, gz = _layer(f"imagespec test image {arch}{note}\n".encode())
        cfg: dict[str, Any] = {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        }
        if variant:
            cfg["variant"] = variant
        config = json.dumps(cfg, sort_keys=True).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "size": len(config), "digest": self.blob(repo, config)},
                "layers": [{"mediaType": MT_LAYER, "size": len(gz), "digest": self.blob(repo, gz)}],
            }
        ).encode()
        ref = tag or _digest(manifest)
        self.req("PUT", f"/v2/{repo}/manifests/{ref}", body=manifest, headers={"Content-Type": MT_MANIFEST})
        return {"mediaType": MT_MANIFEST, "digest": _digest(manifest), "size": len(manifest)}

    def index(self, repo: str, tag: str, platforms: list[tuple[str, str | None]]) -> str:
        """Pushes a multi-platform index over one image per (arch, variant); returns its digest."""
        entries = []
        for arch, variant in platforms:
            desc = self.image(repo, None, arch, variant)
            plat = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
            entries.append({**desc, "platform": plat})
        index = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}).encode()
        self.req("PUT", f"/v2/{repo}/manifests/{tag}", body=index, headers={"Content-Type": MT_INDEX})
        return _digest(index)


# -------------------------------------------------------------------------------- token server


@dataclass
class TokenServer:
    """A docker token endpoint: anonymous pull on ``public/*``, everything for the test user."""

    pki: Pki
    service: str
    users: dict[str, str]
    issuer: str = "imagespec-test-issuer"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, payload: dict[str, Any]) -> str:
        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "RS256", "kid": self.pki.token_kid}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
        sig = run(
            "openssl", "dgst", "-sha256", "-sign", str(self.pki.token_key), stdin=signing_input.encode()
        )
        return f"{signing_input}.{b64(sig)}"

    def grant(self, user: str | None, scope: str) -> list[dict[str, Any]]:
        parts = scope.split(":")
        if len(parts) != 3 or parts[0] != "repository":
            return []
        name, actions = parts[1], parts[2].split(",")
        if user is None and not name.startswith("public/"):
            return []
        return [{"type": "repository", "name": name, "actions": actions if user else ["pull"]}]

    def handle(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        user = None
        if authorization:
            if not authorization.startswith("Basic "):
                return 401, b'{"details": "only Basic"}'
            u, _, p = base64.b64decode(authorization[6:]).decode().partition(":")
            if self.users.get(u) != p:
                return 401, b'{"details": "bad credentials"}'
            user = u
        self.requests.append({"path": path, "user": user, "scope": query.get("scope", [""])[0]})
        now = int(time.time())
        access = [a for s in query.get("scope", []) for a in self.grant(user, s)]
        token = self.sign(
            {
                "iss": self.issuer,
                "sub": user or "",
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": os.urandom(8).hex(),
                "access": access,
            }
        )
        return 200, json.dumps({"token": token, "expires_in": 300, "issued_at": ""}).encode()

    def start(self) -> TokenServer:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                req = read_request(self.rfile)
                if req is None:
                    return
                status, body = owner.handle(req.path, req.headers.get("authorization"))
                send(self.wfile, status, {"Content-Type": "application/json"}, body)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


# ------------------------------------------------------------------------------- raw HTTP bits


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def read_request(rfile: Any) -> RawRequest | None:
    line = rfile.readline(65536)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) < 2:
        return None
    headers: dict[str, str] = {}
    while True:
        h = rfile.readline(65536).decode("latin-1")
        if h in ("\r\n", "\n", ""):
            break
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    body = rfile.read(n) if n else b""
    return RawRequest(parts[0], parts[1], headers, body)


def send(wfile: Any, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
    out = [f"HTTP/1.1 {status} X"]
    headers = {"Content-Length": str(len(body)), **headers}
    out += [f"{k}: {v}" for k, v in headers.items()]
    wfile.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))
    wfile.flush()


# ---------------------------------------------------------------------------------- fault proxy

# A fault: given the request and how many times this path was seen, either returns True after
# answering (or breaking) the connection itself, or returns False to forward it upstream.
Fault = Callable[["FaultProxy", RawRequest, int, Any, socket.socket], bool]


class FaultProxy:
    """Forwards to an upstream registry over plain HTTP, except where ``fault`` intervenes.

    ``fault`` applies to requests whose path contains ``match`` (default: manifest requests).
    Every request is recorded as (method, path, headers, time).
    """

    def __init__(self, upstream: str, bind: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.fault: Fault | None = None
        self.match = "/manifests/"
        self.seen: list[tuple[str, str, dict[str, str], float]] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                h, p = owner.upstream.rsplit(":", 1)
                up = http.client.HTTPConnection(h, int(p), timeout=30)
                try:
                    while self.one(up):
                        pass
                except (OSError, ValueError):
                    pass
                finally:
                    up.close()

            def one(self, up: http.client.HTTPConnection) -> bool:
                if self.rfile.peek(1)[:1] == b"\x16":
                    # A TLS ClientHello: answer as Go's HTTP servers do.
                    send(self.wfile, 400, {"Connection": "close"}, b"Bad Request")
                    return False
                req = read_request(self.rfile)
                if req is None:
                    return False
                with owner.lock:
                    owner.seen.append((req.method, req.path, req.headers, time.monotonic()))
                    n = owner.counts[req.path] = owner.counts.get(req.path, 0) + 1
                fault = owner.fault
                if (
                    fault is not None
                    and owner.match in req.path
                    and fault(owner, req, n, self.wfile, self.connection)
                ):
                    return True
                hdrs = {k: v for k, v in req.headers.items() if k not in ("host", "connection")}
                up.request(req.method, req.path, body=req.body or None, headers=hdrs)
                r = up.getresponse()
                body = r.read()
                out = {k: v for k, v in r.getheaders() if k.lower() not in ("content-length", "connection")}
                if req.method == "HEAD":
                    out["Content-Length"] = r.getheader("Content-Length") or "0"
                send(self.wfile, r.status, out, body, head=req.method == "HEAD")
                return True

        self.server = Server((bind, 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"{bind}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, fault: Fault | None = None, match: str = "/manifests/") -> None:
        with self.lock:
            self.fault, self.match = fault, match
            self.seen.clear()
            self.counts.clear()

    def requests_to(self, fragment: str) -> list[tuple[str, str, dict[str, str], float]]:
        with self.lock:
            return [s for s in self.seen if fragment in s[1]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hard_close(sock: socket.socket) -> None:
    """Closes with a TCP reset (SO_LINGER 0)."""
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The handler's file objects share the socket; detach so that closing the descriptor here is
    # final (and their later use fails with OSError instead of touching a reused descriptor).
    os.close(sock.detach())


def refuse_uploads(p: FaultProxy, req: Any, n: int, wfile: Any, sock: Any) -> bool:
    """A :class:`FaultProxy` fault: every blob upload that is not a mount fails, by turns with a
    reset connection and a 500."""
    if req.method != "POST" or "mount=" in req.path:
        return False
    if n % 2:
        hard_close(sock)
        return True
    wfile.write(b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n")
    wfile.flush()
    return True


# ------------------------------------------------------------------------------ TLS front server

# Answers one request (on the handler's writer): (the server, the request, the writer).
TlsHandler = Callable[["TlsServer", RawRequest, Any], None]


class TlsServer:
    """An HTTPS server with the test PKI's localhost certificate whose every answer ``handler``
    writes. Plain HTTP gets the ``400`` a Go server (the CNCF registry) answers on a TLS port, so a
    client that tries plain HTTP first on loopback moves on to HTTPS, as with a real registry.
    Every request is recorded as (method, path, headers)."""

    def __init__(self, pki: Pki, handler: TlsHandler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                try:
                    if sock.recv(1, socket.MSG_PEEK)[:1] != b"\x16":
                        with sock.makefile("rwb") as plain:
                            body = b"Client sent an HTTP request to an HTTPS server."
                            send(plain, 400, {"Connection": "close"}, body)
                        return
                    with ctx.wrap_socket(sock, server_side=True) as tls, tls.makefile("rwb") as f:
                        while True:
                            req = read_request(f)
                            if req is None:
                                return
                            owner.seen.append((req.method, req.path, req.headers))
                            owner.handler(owner, req, f)
                except (OSError, ssl.SSLError, ValueError):
                    pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # The certificate names localhost (and 127.0.0.1); references use the name.
        self.host = f"localhost:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def non_loopback_address() -> str | None:
    """This machine's address on a non-loopback interface (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") else addr


def with_hosts(lines: str, cmd: list[str], tmp: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd`` where /etc/hosts is ``lines``: in a mount namespace of its own (unshare, as
    root), so that a name resolves where a test says without touching the machine's file. Fails
    under CI, skips elsewhere, when this machine cannot make one."""
    import pytest

    unshare = need("unshare")
    hosts = tmp / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n" + lines)
    probe = subprocess.run(
        [unshare, "--mount", "sh", "-c", f"mount --bind {hosts} /etc/hosts"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        message = (
            f"cannot give a process its own /etc/hosts (unshare --mount, as root): {probe.stderr.strip()}"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return subprocess.run([unshare, "--mount", "sh", "-c", script, str(hosts), *cmd], text=True, **kw)
