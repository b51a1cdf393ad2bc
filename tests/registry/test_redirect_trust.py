"""What a redirect cannot do (issue 14, items 2 and 8c): make the client adopt an authentication
challenge from the host it was sent to, and so send the registry's credentials to a token server
that host names; or move a conversation that started over HTTPS to plain HTTP.

Each test performs the attack with real servers on loopback addresses: the CNCF registry behind
fault proxies, an attacker's recording server, and an HTTPS front with the test CA.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from imagespec import check, inspect

from .registry_servers import FaultProxy, Images, Pki, RawRequest, Registry, TlsServer, send, write_config

SECRET = "b0b-s3cret"


def token_answer(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
    """The attacker's token endpoint: records (FaultProxy does) and hands out a token."""
    send(w, 200, {"Content-Type": "application/json"}, b'{"token": "attacker-token", "expires_in": 300}')
    return True


@pytest.fixture
def attacker(open_registry: Registry) -> Any:
    """A token server at another loopback address, which only the attacker chose."""
    a = FaultProxy(open_registry.host, bind="127.0.0.3")
    a.reset(token_answer, match="/")
    yield a
    a.stop()


@pytest.fixture
def storage(open_registry: Registry, attacker: FaultProxy) -> Any:
    """The host the registry redirects manifests to (as registries do to blob storage): it answers
    with a 401 whose challenge names the attacker's token endpoint."""
    other = FaultProxy(open_registry.host, bind="127.0.0.2")

    def challenge(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        realm = f"http://{attacker.host}/token"
        headers = {"WWW-Authenticate": f'Bearer realm="{realm}",service="evil",scope="repository:app:pull"'}
        send(w, 401, headers, head=req.method == "HEAD")
        return True

    other.reset(challenge)
    yield other
    other.stop()


def redirect_to(target: FaultProxy) -> Any:
    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        send(w, 307, {"Location": f"http://{target.host}{req.path}"}, head=req.method == "HEAD")
        return True

    return fault


def test_a_challenge_from_a_redirect_target_gets_no_credentials(
    proxy: FaultProxy, storage: FaultProxy, attacker: FaultProxy, isolated: Path
) -> None:
    write_config(isolated / "config.json", {"auths": {proxy.host: {"username": "bob", "password": SECRET}}})
    proxy.reset(redirect_to(storage))
    [r] = check([f"{proxy.host}/app:present"])
    # The attacker's token endpoint was never asked, so it never saw the registry's password.
    leaked = [(m, path, h.get("authorization")) for m, path, h, _t in attacker.seen]
    assert leaked == [], f"the attacker's token endpoint was asked: {leaked}"
    assert r.status == "unknown"
    assert r.reason == (
        f"auth refused: {proxy.host} redirected to http://{storage.host}, which asked for authentication "
        "(HTTP 401); imagespec authenticates only with the registry's own address"
    )
    everything = json.dumps([h for *_, h, _t in proxy.seen + storage.seen])
    assert SECRET not in everything and base64.b64encode(f"bob:{SECRET}".encode()).decode() not in everything


def test_inspect_refuses_the_same_way(
    proxy: FaultProxy, storage: FaultProxy, attacker: FaultProxy, isolated: Path
) -> None:
    from imagespec import RegistryError

    write_config(isolated / "config.json", {"auths": {proxy.host: {"username": "bob", "password": SECRET}}})
    proxy.reset(redirect_to(storage))
    with pytest.raises(RegistryError) as e:
        inspect(f"{proxy.host}/app:present")
    leaked = [(m, path, h.get("authorization")) for m, path, h, _t in attacker.seen]
    assert leaked == [], f"the attacker's token endpoint was asked: {leaked}"
    assert f"redirected to http://{storage.host}, which asked for authentication" in str(e.value)


def test_the_registrys_own_challenge_is_still_followed(
    proxy: FaultProxy, storage: FaultProxy, isolated: Path, images: Images
) -> None:
    """The registry itself asks for Basic auth, then redirects to storage that answers: fine."""
    good = "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()

    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        head = req.method == "HEAD"
        if req.headers.get("authorization") != good:
            send(w, 401, {"WWW-Authenticate": 'Basic realm="test"'}, head=head)
            return True
        if "/manifests/" in req.path:
            send(w, 307, {"Location": f"http://{storage.host}{req.path}"}, head=head)
            return True
        return False

    write_config(isolated / "config.json", {"auths": {proxy.host: {"username": "bob", "password": SECRET}}})
    storage.reset(None)  # storage answers (forwards to the registry) this time
    proxy.reset(fault, match="/")
    [r] = check([f"{proxy.host}/app:present"])
    assert (r.status, r.digest) == ("exists", images.single_digest)
    assert all("authorization" not in h for *_, h, _t in storage.seen)


# ---------------------------------------------------------------------------------- item 8c


@pytest.fixture
def trust(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_cert))


def test_https_never_redirects_to_plain_http(pki: Pki, trust: None, proxy: FaultProxy) -> None:
    """An HTTPS registry sends the manifest request to plain HTTP on a loopback port, where any
    local user could be listening: the answer from there must not stand for the registry's."""

    def downgrade(server: TlsServer, req: RawRequest, w: Any) -> None:
        send(w, 307, {"Location": f"http://{proxy.host}{req.path}"}, head=req.method == "HEAD")

    server = TlsServer(pki, downgrade)
    try:
        [r] = check([f"{server.host}/app:present"])
        assert r.status == "unknown"
        assert r.reason == (
            f"unexpected answer: {server.host}/v2/app/manifests/present redirected from HTTPS to plain HTTP "
            f"at {proxy.host}/v2/app/manifests/present, which is refused"
        )
        assert [m for m, *_ in server.seen] == ["HEAD"]
        assert proxy.requests_to("/v2/") == []
    finally:
        server.stop()


def test_https_to_https_redirects_are_followed(pki: Pki, trust: None, images: Images) -> None:
    """The refusal is of the downgrade only: HTTPS to another HTTPS origin is followed."""
    tls_target: list[TlsServer] = []

    def forward(server: TlsServer, req: RawRequest, w: Any) -> None:
        send(w, 307, {"Location": f"https://{tls_target[0].host}{req.path}"}, head=req.method == "HEAD")

    def answer(server: TlsServer, req: RawRequest, w: Any) -> None:
        body = (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}'
        )
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        send(w, 200, headers, body, head=req.method == "HEAD")

    target = TlsServer(pki, answer)
    tls_target.append(target)
    front = TlsServer(pki, forward)
    try:
        [r] = check([f"{front.host}/app:present"])
        assert r.status == "exists", r.reason
        assert [m for m, *_ in target.seen] == ["HEAD", "GET"]
    finally:
        front.stop()
        target.stop()
