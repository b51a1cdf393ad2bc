"""Loopback is an address, not a name (issue 14, items 8a and 8b): ``localhost``, 127.0.0.0/8 and
``::1`` get plain HTTP (and credentials over it); a name that ends in ``.localhost`` or starts with
``127.`` is whatever a resolver makes of it, and gets HTTPS with verified certificates.

The attack: a name of that shape that resolves to another machine (here this machine's
non-loopback address, through a private /etc/hosts), where a plain-HTTP server asks for the
registry's credentials.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from .registry_servers import (
    FaultProxy,
    Images,
    RawRequest,
    Registry,
    non_loopback_address,
    send,
    with_hosts,
    write_config,
)

SECRET = "b0b-s3cret"

CHECK = """
import json, sys
from imagespec import check
[r] = check([sys.argv[1]], timeout=2, use_cache=False)
print(json.dumps({"status": r.status, "reason": r.reason}))
"""


def wants_basic(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
    """Asks for Basic credentials until they come; then forwards (an open registry behind)."""
    if "authorization" in req.headers:
        return False
    send(w, 401, {"WWW-Authenticate": 'Basic realm="registry"'}, head=req.method == "HEAD")
    return True


@pytest.fixture
def remote(open_registry: Registry, images: Images) -> Any:
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    proxy = FaultProxy(open_registry.host, bind=addr)
    proxy.reset(wants_basic, match="/")
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("name", ["registry.localhost", "127.0.0.1.registry.example"])
def test_a_loopback_looking_name_gets_no_plain_http(
    remote: FaultProxy, isolated: Path, tmp_path: Path, name: str
) -> None:
    host = f"{name}:{remote.port}"
    write_config(isolated / "config.json", {"auths": {host: {"username": "bob", "password": SECRET}}})
    out = with_hosts(
        f"{remote.host.rsplit(':', 1)[0]} {name}\n",
        [sys.executable, "-c", CHECK, f"{host}/app:present"],
        tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    token = base64.b64encode(f"bob:{SECRET}".encode()).decode()
    sent = [(m, path, h.get("authorization")) for m, path, h, _t in remote.seen]
    assert all(token not in json.dumps(s) for s in sent), f"credentials went over plain HTTP: {sent}"
    # HTTPS only: the plain-HTTP server answers a TLS hello with 400, as a Go server does.
    assert r["status"] == "unknown", r
    assert r["reason"].startswith(("registry unreachable: ", "unexpected answer: ")), r
    assert f"{host}/v2/app/manifests/present" in r["reason"], r
    assert remote.requests_to("/v2/") == []


def test_the_same_server_listed_as_insecure_gets_plain_http(
    remote: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the name does lead to the server, and what the user lists as insecure is
    reached over plain HTTP there (without credentials, which go over plain HTTP to loopback only)."""
    host = f"registry.localhost:{remote.port}"
    remote.reset(None)
    monkeypatch.setenv("IMAGESPEC_INSECURE_REGISTRIES", host)
    out = with_hosts(
        f"{remote.host.rsplit(':', 1)[0]} registry.localhost\n",
        [sys.executable, "-c", CHECK, f"{host}/app:present"],
        tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "exists"
    assert [m for m, *_ in remote.requests_to("/manifests/")] == ["HEAD"]
