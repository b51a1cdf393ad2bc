"""Existence against the open registry: present, missing, digests, indexes and platforms, the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import imagespec
from imagespec import ImageSpec, RegistryError, check

from .registry_servers import FaultProxy, Images, Pusher, Registry


def test_present_and_missing_in_one_batch(open_registry: Registry, images: Images) -> None:
    h = open_registry.host
    refs = [f"{h}/app:present", f"{h}/app:absent", f"{h}/nosuchrepo:x", f"{h}/app@{images.single_digest}"]
    got = check(refs)
    assert [r.reference for r in got] == refs
    assert [r.status for r in got] == ["exists", "missing", "missing", "exists"]
    assert got[0].digest == images.single_digest
    assert got[0].media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert got[1].reason is not None and "manifest unknown" in got[1].reason and "app:absent" in got[1].reason
    assert got[0].exists is True and got[1].exists is False


def test_index_is_platform_aware(open_registry: Registry, images: Images) -> None:
    ref = f"{open_registry.host}/multi:v1"
    [plain] = check([ref])
    assert plain.status == "exists" and plain.digest == images.index_digest
    assert plain.media_type == "application/vnd.oci.image.index.v1+json"
    [both] = check([ref], platforms=["linux/amd64", "linux/arm64/v8"])
    assert both.status == "exists"
    [lacking] = check([ref], platforms=["linux/amd64", "linux/s390x"])
    assert lacking.status == "missing"
    assert lacking.reason == "the index lacks platform linux/s390x (it has linux/amd64, linux/arm64)"


def test_single_platform_image_is_checked_against_its_config(open_registry: Registry, images: Images) -> None:
    ref = f"{open_registry.host}/app:present"
    assert check([ref], platforms=["linux/amd64"])[0].status == "exists"
    [arm] = check([ref], platforms=["linux/arm64"])
    assert arm.status == "missing"
    assert arm.reason == "the single-platform image lacks platform linux/arm64 (it has linux/amd64)"


def test_positive_answers_are_cached_and_negative_never(
    open_registry: Registry, images: Images, tmp_path: Path
) -> None:
    h = open_registry.host
    first = check([f"{h}/app:present", f"{h}/app:absent"])
    assert [r.cached for r in first] == [False, False]
    cache_files = list((tmp_path / "cache" / "exists").iterdir())
    assert len(cache_files) == 1
    second = check([f"{h}/app:present", f"{h}/app:absent"])
    assert [(r.status, r.cached) for r in second] == [("exists", True), ("missing", False)]
    assert second[0].digest == images.single_digest
    assert check([f"{h}/app:present"], use_cache=False)[0].cached is False
    # A cached answer is per platform set.
    assert check([f"{h}/app:present"], platforms=["linux/amd64"])[0].cached is False


def test_cache_is_never_consulted_for_what_it_did_not_see(open_registry: Registry, images: Images) -> None:
    h = open_registry.host
    assert check([f"{h}/batch:present-0"])[0].cached is False


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("UPPER/x", "repository name must be lowercase"),
        ("localhost:5000/app:", "the tag after ':' is empty"),
        ("localhost:70000/app", "port '70000'"),
        ("localhost:5000/app@sha256:123", "64 lowercase hex"),
        ("http://localhost:5000/app", "no scheme"),
        ("", "it is empty"),
    ],
)
def test_malformed_references_raise_registry_error(ref: str, message: str) -> None:
    with pytest.raises(RegistryError, match="invalid image reference") as e:
        check([ref])
    assert message in str(e.value)
    assert isinstance(e.value, imagespec.ImageSpecError)


def test_bad_options_raise() -> None:
    with pytest.raises(RegistryError, match='invalid platform "linux"'):
        check(["localhost:5000/a:b"], platforms=["linux"])
    with pytest.raises(RegistryError, match=r"registry_config /nonexistent/config\.json does not exist"):
        check(["localhost:5000/a:b"], registry_config="/nonexistent/config.json")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        check(["localhost:5000/a:b"], timeout=0)
    with pytest.raises(TypeError, match="not int"):
        check([42])  # type: ignore[list-item]


def test_unreachable_registry_is_unknown() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        [r] = check([f"127.0.0.1:{port}/a:b"])
    assert r.status == "unknown" and r.exists is None
    assert r.reason is not None and r.reason.startswith("registry unreachable")
    assert "refused the connection" in r.reason


def non_loopback_address() -> str | None:
    """This machine's address on a non-loopback interface (no packet is sent)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") else addr


def test_plain_http_to_a_non_loopback_host_only_when_listed(
    open_registry: Registry, images: Images, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    proxy = FaultProxy(open_registry.host, bind=addr)
    try:
        ref = f"{proxy.host}/app:present"
        [r] = check([ref], timeout=1)
        # Only HTTPS was tried: the plain-HTTP proxy never saw a request.
        assert r.status == "unknown"
        assert r.reason is not None and r.reason.startswith(("registry unreachable", "timeout")), r.reason
        assert not proxy.requests_to("/v2/")
        monkeypatch.setenv("IMAGESPEC_INSECURE_REGISTRIES", f"other:1, {proxy.host}")
        assert check([ref])[0].status == "exists"
        monkeypatch.delenv("IMAGESPEC_INSECURE_REGISTRIES")
        assert check([ref], insecure=[addr], use_cache=False)[0].status == "exists"
        spec = ImageSpec(
            name="app", registry=proxy.host, builder_options={"insecure_registries": [proxy.host]}
        )
        push_for(spec, open_registry.host)
        assert spec.exist() is True
    finally:
        proxy.stop()


def push_for(spec: ImageSpec, host: str, arch: str = "amd64") -> None:
    repo, tag = spec.image_name().split("/", 1)[1].rsplit(":", 1)
    p = Pusher(host)
    try:
        p.image(repo, tag, arch)
    finally:
        p.close()


def test_imagespec_exist(open_registry: Registry) -> None:
    spec = ImageSpec(name="exist-demo", registry=open_registry.host, packages=["numpy"])
    assert spec.exist() is False
    push_for(spec, open_registry.host)
    assert spec.exist() is True
    [status] = check([spec])
    assert status.reference == spec.image_name() and status.cached is True


def test_specs_bring_their_platforms(open_registry: Registry) -> None:
    base = ImageSpec(
        name="plat-demo", registry=open_registry.host, packages=["pandas"], platform="linux/amd64"
    )
    push_for(base, open_registry.host, arch="amd64")
    arm = base.replace(platform="linux/arm64")
    push_for(arm, open_registry.host, arch="amd64")  # an amd64 image under the arm64 spec's tag
    got = check([base, arm])
    assert [r.status for r in got] == ["exists", "missing"]
    assert got[1].reason == "the single-platform image lacks platform linux/arm64 (it has linux/amd64)"
    assert base.exist() is True and arm.exist() is False


def test_force_push_bypasses_the_cache(open_registry: Registry) -> None:
    spec = ImageSpec(name="force-demo", registry=open_registry.host)
    push_for(spec, open_registry.host)
    assert check([spec])[0].cached is False
    assert check([spec])[0].cached is True
    assert check([spec.force_push()])[0].cached is False


def test_spec_without_registry_asks_the_local_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman either
    spec = ImageSpec(name="local-demo")
    [r] = check([spec])
    assert r.status == "unknown" and r.exists is None and spec.exist() is None
    assert r.reason is not None and r.reason.startswith("no local container engine answered")
    assert "no-docker.sock" in r.reason and "podman: not installed" in r.reason


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagespec", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )


def test_cli_exists(open_registry: Registry, images: Images) -> None:
    h = open_registry.host
    ok = run_cli("exists", f"{h}/app:present", f"{h}/multi:v1")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["exists", f"{h}/app:present", images.single_digest]
    bad = run_cli("exists", f"{h}/app:present", f"{h}/app:absent")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[1].startswith(f"missing  {h}/app:absent")
    plat = run_cli("exists", "--platform", "linux/s390x", f"{h}/multi:v1")
    assert plat.returncode == 1 and "lacks platform linux/s390x" in plat.stdout
    err = run_cli("exists", "Bad/Ref")
    assert err.returncode == 1 and "repository name must be lowercase" in err.stderr
