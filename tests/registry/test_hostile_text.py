"""Text from a registry reaches reasons and errors without acting on a terminal (issue 14, item 8h):
escape sequences, carriage returns and text-reordering controls are shown as ``\\u{..}``.

Each test has a proxy in front of the real registry answer with text made to drive a terminal
(clear the screen, set the window title), then checks what imagespec hands back to be printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagespec import ImageSpec, build, check

from .registry_servers import MT_INDEX, FaultProxy, RawRequest, Registry, send, write_config

# Colour the text, set the window title, return the cursor, reverse the text that follows.
HOSTILE = "\x1b[31m\x1b]0;pwned\x07\r\u202e"
SHOWN = "\\u{1b}[31m\\u{1b}]0;pwned\\u{7}\\u{d}\\u{202e}"


def assert_inert(text: str | None) -> None:
    assert text is not None
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in text), repr(text)


def hostile_index(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
    """An index whose only image claims an architecture made of escape sequences."""
    if not req.path.endswith("/manifests/hostile"):
        return False
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "a" * 64,
        "size": 2,
        "platform": {"os": "linux", "architecture": f"arm{HOSTILE}"},
    }
    body = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry]}).encode()
    send(w, 200, {"Content-Type": MT_INDEX}, body, head=req.method == "HEAD")
    return True


def test_platform_names_from_an_index(proxy: FaultProxy) -> None:
    proxy.reset(hostile_index)
    [r] = check([f"{proxy.host}/multi:hostile"], platforms=["linux/amd64"])
    assert r.status == "missing"
    assert r.reason == f"the index lacks platform linux/amd64 (it has linux/arm{SHOWN})"
    assert_inert(r.reason)


def test_the_exists_command_prints_them_inert(proxy: FaultProxy) -> None:
    proxy.reset(hostile_index)
    cmd = [
        sys.executable,
        "-m",
        "imagespec",
        "exists",
        "--platform",
        "linux/amd64",
        f"{proxy.host}/multi:hostile",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1, out.stderr
    assert SHOWN in out.stdout + out.stderr
    assert_inert((out.stdout + out.stderr).replace("\n", ""))


def test_native_base_errors(proxy: FaultProxy, open_registry: Registry) -> None:
    """The native builder's base resolution lists the index's platforms in its error."""
    proxy.reset(hostile_index)
    spec = ImageSpec(
        name="victim",
        builder="native",
        base_image=f"{proxy.host}/multi:hostile",
        registry=open_registry.host,
        platform="linux/amd64",
    )
    [result] = build(spec, check=False).results
    assert result.outcome == "failed"
    assert f"(it has linux/arm{SHOWN})" in (result.reason or ""), result.reason
    assert_inert(result.reason)


def test_registry_error_documents(proxy: FaultProxy, open_registry: Registry) -> None:
    """A blob the registry refuses with an error document whose message is escape sequences."""

    def refuse(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        doc = {"errors": [{"code": "DENIED", "message": f"no{HOSTILE}"}]}
        send(w, 500, {"Content-Type": "application/json"}, json.dumps(doc).encode())
        return True

    proxy.reset(refuse, match="/blobs/")
    spec = ImageSpec(
        name="victim",
        builder="native",
        base_image=f"{proxy.host}/app:present",
        registry=open_registry.host,
        platform="linux/amd64",
    )
    [result] = build(spec, check=False).results
    assert result.outcome == "failed"
    assert f"HTTP 500 (DENIED no{SHOWN})" in (result.reason or ""), result.reason
    assert_inert(result.reason)


def test_credential_helper_output(
    proxy: FaultProxy, cred_helper: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(isolated / "config.json", {"credHelpers": {proxy.host: "imagespec-test"}})
    monkeypatch.setenv("IMAGESPEC_TEST_HELPER_MODE", "escapes")

    def challenge(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        send(w, 401, {"WWW-Authenticate": 'Basic realm="test"'}, head=req.method == "HEAD")
        return True

    proxy.reset(challenge)
    [r] = check([f"{proxy.host}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and "locked\\u{1b}]0;pwned\\u{7}\\u{1b}[2J" in r.reason, r.reason
    assert_inert(r.reason)
