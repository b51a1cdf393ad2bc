"""Registry faults, injected by a proxy in front of the real registry: each ends in a precise answer."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from imagespec import check

from .registry_servers import (
    FaultProxy,
    Images,
    RawRequest,
    Registry,
    TokenServer,
    hard_close,
    send,
    write_config,
)


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        send(w, status, headers or {}, body, head=req.method == "HEAD")
        return True

    return fault


def first(k: int, fault: Any) -> Any:
    """Applies `fault` to the first k requests of each path, then forwards."""

    def f(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        return n <= k and bool(fault(p, req, n, w, s))

    return f


def manifest_requests(proxy: FaultProxy) -> list[tuple[str, str, dict[str, str], float]]:
    return proxy.requests_to("/manifests/")


def test_html_instead_of_a_registry(proxy: FaultProxy) -> None:
    proxy.reset(answer(200, {"Content-Type": "text/html"}, b"<html>login</html>"), match="/")
    r, _ = check([f"{proxy.host}/app:present", f"{proxy.host}/app:absent"])
    assert r.status == "unknown"
    assert (
        r.reason == "unexpected answer: the manifest answer is not JSON (text/html), not a registry manifest"
    )


def test_html_instead_of_a_manifest(proxy: FaultProxy) -> None:
    proxy.reset(answer(200, {"Content-Type": "text/html; charset=utf-8"}, b"<html>hi</html>"))
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "unknown"
    assert (
        r.reason == "unexpected answer: the manifest answer is not JSON (text/html), not a registry manifest"
    )
    assert [m for m, *_ in manifest_requests(proxy)] == ["HEAD", "GET"]


def test_json_that_is_not_a_manifest(proxy: FaultProxy) -> None:
    proxy.reset(answer(200, {"Content-Type": "application/json"}, b'{"hello": "world"}'))
    [r] = check([f"{proxy.host}/app:present"])
    assert (
        r.reason
        == "unexpected answer: the answer (application/json) is JSON but not an image manifest or index"
    )


def test_garbage_instead_of_http(proxy: FaultProxy) -> None:
    def garbage(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        w.write(b"\x00\x01\x02 this is not http\r\n\r\n")
        w.flush()
        return True

    proxy.reset(garbage)
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and r.reason.startswith("unexpected answer: ")
    assert "malformed HTTP answer" in r.reason
    assert len(manifest_requests(proxy)) == 1


def test_huge_headers(proxy: FaultProxy) -> None:
    proxy.reset(answer(200, {"X-Filler": "a" * (1 << 20)}))
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "unknown"
    assert (
        r.reason
        == f"unexpected answer: {proxy.host}/v2/app/manifests/present sent headers that are too large"
    )


def test_slow_answer_past_the_timeout(proxy: FaultProxy) -> None:
    def slow(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        time.sleep(1.5)
        return False

    proxy.reset(slow)
    [r] = check([f"{proxy.host}/app:present"], timeout=0.3)
    assert r.status == "unknown"
    assert r.reason == f"timeout: no answer from {proxy.host}/v2/app/manifests/present in time"
    assert len(manifest_requests(proxy)) == 1  # timeouts are not retried


def reset_mid_answer(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: appl")
    w.flush()
    hard_close(s)
    return True


def test_connection_reset_mid_answer_is_retried(proxy: FaultProxy, images: Images) -> None:
    proxy.reset(first(1, reset_mid_answer))
    [r] = check([f"{proxy.host}/app:present"])
    assert (r.status, r.digest) == ("exists", images.single_digest)
    assert len(manifest_requests(proxy)) == 2


def test_connection_reset_every_time(proxy: FaultProxy) -> None:
    proxy.reset(reset_mid_answer)
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and r.reason.startswith("connection reset: "), r.reason
    assert len(manifest_requests(proxy)) == 4  # the first try and three retries


def test_429_with_retry_after_is_honoured(proxy: FaultProxy) -> None:
    proxy.reset(first(1, answer(429, {"Retry-After": "1"})))
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "exists"
    seen = manifest_requests(proxy)
    assert len(seen) == 2
    assert seen[1][3] - seen[0][3] >= 0.95  # waited as asked (a lower bound: cannot flake)


def test_429_asking_for_too_long_is_reported(proxy: FaultProxy) -> None:
    proxy.reset(answer(429, {"Retry-After": "3600"}))
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "unknown"
    assert r.reason == f"rate limited: {proxy.host} answered HTTP 429 (Retry-After: 3600)"
    assert len(manifest_requests(proxy)) == 1


def test_429_without_retry_after_backs_off_then_reports(proxy: FaultProxy) -> None:
    proxy.reset(answer(429))
    [r] = check([f"{proxy.host}/app:present"])
    assert r.reason == f"rate limited: {proxy.host} answered HTTP 429"
    assert len(manifest_requests(proxy)) == 4


@pytest.mark.parametrize("codes", [[503], [502, 504], [503, 503, 503]])
def test_5xx_then_success(proxy: FaultProxy, codes: list[int]) -> None:
    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        if n <= len(codes):
            send(w, codes[n - 1], {}, b"busy", head=req.method == "HEAD")
            return True
        return False

    proxy.reset(fault)
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "exists"
    assert len(manifest_requests(proxy)) == len(codes) + 1


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "unexpected answer: HTTP 500 for {h}/app:present"),
        (403, "auth refused: access to app denied (HTTP 403)"),
    ],
)
def test_errors_that_are_not_retried(proxy: FaultProxy, status: int, reason: str) -> None:
    proxy.reset(answer(status))
    [r] = check([f"{proxy.host}/app:present"])
    assert (r.status, r.reason) == ("unknown", reason.format(h=proxy.host))
    assert len(manifest_requests(proxy)) == 1


def test_404_is_missing_and_not_retried(proxy: FaultProxy) -> None:
    [r] = check([f"{proxy.host}/app:absent"])
    assert r.status == "missing"
    assert len(manifest_requests(proxy)) == 1


def test_head_refused_falls_back_to_get(proxy: FaultProxy, images: Images) -> None:
    def no_head(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        if req.method == "HEAD":
            send(w, 405, {}, head=True)
            return True
        return False

    proxy.reset(no_head)
    [r] = check([f"{proxy.host}/app:present"])
    assert (r.status, r.digest) == ("exists", images.single_digest)
    assert [m for m, *_ in manifest_requests(proxy)] == ["HEAD", "GET"]


def challenge(realm: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": f'Bearer realm="{realm}",service="imagespec-test",scope="repository:app:pull"'
    }


def test_401_loop_stops_after_one_fresh_token(proxy: FaultProxy, token_server: TokenServer) -> None:
    proxy.reset(answer(401, challenge(token_server.realm)))
    [r] = check([f"{proxy.host}/app:present"])
    assert (r.status, r.reason) == ("unknown", f"auth refused: {proxy.host} (HTTP 401)")
    seen = manifest_requests(proxy)
    assert len(seen) == 2
    assert "authorization" not in seen[0][2] and seen[1][2]["authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("token_answer", "reason"),
    [
        ((500, b"oops"), "auth refused: the token endpoint at 127.0.0.1 answered HTTP 500"),
        (
            (200, b'{"nothing": "here"}'),
            "auth refused: the token endpoint at 127.0.0.1 answered without a token",
        ),
        (
            (200, b"<html>"),
            "auth refused: the token endpoint at 127.0.0.1 answered something that is not JSON",
        ),
        (
            (401, b""),
            "auth refused: the token endpoint at 127.0.0.1 refused anonymous access (HTTP 401) and no "
            "credentials are configured",
        ),
    ],
)
def test_token_endpoint_faults(proxy: FaultProxy, token_answer: tuple[int, bytes], reason: str) -> None:
    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        if req.path.startswith("/token"):
            send(w, token_answer[0], {"Content-Type": "application/json"}, token_answer[1])
            return True
        if "/manifests/" in req.path:
            send(w, 401, challenge(f"http://{p.host}/token"), head=req.method == "HEAD")
            return True
        return False

    proxy.reset(fault, match="/")
    [r] = check([f"{proxy.host}/app:present"])
    assert (r.status, r.reason) == ("unknown", reason)


def test_redirect_to_another_host_carries_no_credentials(
    open_registry: Registry, proxy: FaultProxy, isolated: Path, images: Images
) -> None:
    """The registry wants Basic auth and redirects the manifest to another host, which answers."""
    other = FaultProxy(open_registry.host, bind="127.0.0.2")
    good = "Basic " + base64.b64encode(b"bob:b0b-s3cret").decode()

    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        head = req.method == "HEAD"
        if req.headers.get("authorization") != good:
            send(w, 401, {"WWW-Authenticate": 'Basic realm="test"'}, head=head)
            return True
        if "/manifests/" in req.path:
            send(w, 307, {"Location": f"http://{other.host}{req.path}"}, head=head)
            return True
        return False

    try:
        write_config(
            isolated / "config.json", {"auths": {proxy.host: {"username": "bob", "password": "b0b-s3cret"}}}
        )
        proxy.reset(fault, match="/")
        [r] = check([f"{proxy.host}/app:present"])
        assert (r.status, r.digest) == ("exists", images.single_digest)
        # Asked without credentials, challenged, asked again with them, redirected.
        seen = manifest_requests(proxy)
        assert [m for m, *_ in seen] == ["HEAD", "HEAD"]
        assert "authorization" not in seen[0][2] and seen[1][2]["authorization"] == good
        got = other.requests_to("/manifests/")
        assert len(got) == 1
        assert "authorization" not in got[0][2]
        assert all("s3cret" not in json.dumps(h) for *_, h, _t in got)
    finally:
        other.stop()
