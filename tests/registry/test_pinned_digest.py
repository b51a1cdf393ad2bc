"""A digest-pinned reference is what its digest says (issue 14, item 5): `check`, `inspect` and the
native builder's base resolution (index children included) hash what the registry sends and
require the digest asked for; a mismatch names both digests.

The attack: a proxy in front of the real registry (a compromised mirror, or anything on the path of
plain HTTP) answers requests for ``sha256:X`` with another image's manifest, with or without a
``Docker-Content-Digest`` that claims X.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from imagespec import ImageSpec, RegistryError, build, check, inspect

from .registry_servers import MT_INDEX, MT_MANIFEST, FaultProxy, Images, Pusher, RawRequest, Registry, send


def registry_get(host: str, repo: str, what: str, ref: str) -> bytes:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{what}/{ref}")
    req.add_header("Accept", f"{MT_INDEX}, {MT_MANIFEST}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()  # type: ignore[no-any-return]


@dataclass
class Evil:
    """Another amd64 image, pushed untagged into ``app`` and ``multi``: what the attacker serves."""

    digest: str
    manifest: bytes
    config_digest: str
    amd64_child: str  # the genuine amd64 child of multi:v1


@pytest.fixture(scope="module")
def evil(open_registry: Registry, images: Images) -> Evil:
    p = Pusher(open_registry.host)
    try:
        desc = p.image("app", None, "amd64", note=" but not the one pinned")
        p.image("multi", None, "amd64", note=" but not the one pinned")
    finally:
        p.close()
    manifest = registry_get(open_registry.host, "app", "manifests", desc["digest"])
    index = json.loads(registry_get(open_registry.host, "multi", "manifests", "v1"))
    child = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    return Evil(desc["digest"], manifest, json.loads(manifest)["config"]["digest"], child)


def swap(ref: str, body: bytes, claim: str | None, head_status: int = 200) -> Any:
    """Answers manifest requests for ``ref`` with ``body`` and, when given, a
    ``Docker-Content-Digest`` of ``claim``; forwards everything else."""

    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        if not req.path.endswith(f"/manifests/{ref}"):
            return False
        head = req.method == "HEAD"
        headers = {"Content-Type": MT_MANIFEST, **({"Docker-Content-Digest": claim} if claim else {})}
        send(w, head_status if head else 200, headers, body, head=head)
        return True

    return fault


@pytest.fixture
def pinned(proxy: FaultProxy, images: Images) -> Iterator[str]:
    yield f"{proxy.host}/app@{images.single_digest}"


def test_head_naming_another_digest_is_a_mismatch(
    proxy: FaultProxy, images: Images, evil: Evil, pinned: str
) -> None:
    proxy.reset(swap(images.single_digest, evil.manifest, claim=evil.digest))
    [r] = check([pinned])
    assert r.status == "unknown"
    assert r.reason == (
        f"digest mismatch: asked {proxy.host} for app@{images.single_digest}, it answered with "
        f"{evil.digest} (named in Docker-Content-Digest); the registry (or something between) serves "
        "other content under that digest"
    )
    assert r.digest is None


@pytest.mark.parametrize(
    ("claim", "head_status", "platforms"),
    [
        ("pinned", 200, None),  # HEAD agrees, which a HEAD cannot prove: the GET is hashed
        (None, 200, None),  # HEAD names no digest: the GET is hashed
        ("pinned", 405, None),  # HEAD refused
        ("pinned", 200, ["linux/amd64"]),  # platforms: straight to GET
    ],
)
def test_a_swapped_manifest_is_caught_by_its_hash(
    proxy: FaultProxy,
    images: Images,
    evil: Evil,
    pinned: str,
    claim: str | None,
    head_status: int,
    platforms: list[str] | None,
) -> None:
    claimed = images.single_digest if claim == "pinned" else None
    proxy.reset(swap(images.single_digest, evil.manifest, claim=claimed, head_status=head_status))
    [r] = check([pinned], platforms=platforms, use_cache=False)
    if claim == "pinned" and head_status == 200 and platforms is None:
        # What the issue accepts for HEAD: the registry names exactly the digest asked for.
        assert (r.status, r.digest) == ("exists", images.single_digest)
        return
    assert r.status == "unknown", r
    assert r.reason is not None
    assert r.reason.startswith(
        f"digest mismatch: asked {proxy.host} for app@{images.single_digest}, it answered with {evil.digest} "
        "(the hash of the manifest it sent)"
    ), r.reason


def test_the_genuine_pinned_manifest_exists(proxy: FaultProxy, images: Images, pinned: str) -> None:
    proxy.reset(None)
    [r] = check([pinned], platforms=["linux/amd64"])
    assert (r.status, r.digest) == ("exists", images.single_digest)
    assert inspect(pinned).digest == images.single_digest


def test_a_tag_whose_digest_header_lies_about_its_content(
    proxy: FaultProxy, images: Images, evil: Evil
) -> None:
    proxy.reset(swap("present", evil.manifest, claim=images.single_digest))
    [r] = check([f"{proxy.host}/app:present"], platforms=["linux/amd64"])
    assert r.status == "unknown"
    assert r.reason == (
        f"digest mismatch: {proxy.host} named {images.single_digest} as the digest of app:present but sent "
        f"a manifest whose hash is {evil.digest}"
    )


def test_inspect_of_a_pinned_reference_hashes_the_manifest(
    proxy: FaultProxy, images: Images, evil: Evil, pinned: str
) -> None:
    proxy.reset(swap(images.single_digest, evil.manifest, claim=images.single_digest))
    with pytest.raises(RegistryError) as e:
        inspect(pinned)
    assert f"app@{images.single_digest}, it answered with {evil.digest}" in str(e.value)


def test_inspect_hashes_the_index_child(proxy: FaultProxy, evil: Evil) -> None:
    proxy.reset(swap(evil.amd64_child, evil.manifest, claim=evil.amd64_child))
    with pytest.raises(RegistryError) as e:
        inspect(f"{proxy.host}/multi:v1", platform="linux/amd64")
    assert f"multi@{evil.amd64_child}, it answered with {evil.digest}" in str(e.value)


def test_inspect_hashes_the_config_blob(
    proxy: FaultProxy, open_registry: Registry, images: Images, evil: Evil, pinned: str
) -> None:
    genuine = json.loads(registry_get(open_registry.host, "app", "manifests", images.single_digest))
    config = genuine["config"]["digest"]
    other = registry_get(open_registry.host, "app", "blobs", evil.config_digest)

    def fault(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
        if req.path.endswith(f"/blobs/{config}"):
            send(w, 200, {"Content-Type": "application/octet-stream"}, other)
            return True
        return False

    proxy.reset(fault, match="/blobs/")
    with pytest.raises(
        RegistryError, match=f"blob {config} of {proxy.host}/app arrived with content whose hash is"
    ):
        inspect(pinned)
    [r] = check([pinned], platforms=["linux/amd64"], use_cache=False)
    assert r.status == "unknown"
    assert r.reason is not None and r.reason.startswith(f"digest mismatch: blob {config}"), r.reason


@pytest.mark.parametrize("base", ["index child", "pinned"])
def test_native_base_resolution_hashes_what_it_is_sent(
    proxy: FaultProxy, open_registry: Registry, images: Images, evil: Evil, base: str
) -> None:
    if base == "pinned":
        ref, target, repo = f"{proxy.host}/app@{images.single_digest}", images.single_digest, "app"
    else:
        ref, target, repo = f"{proxy.host}/multi:v1", evil.amd64_child, "multi"
    proxy.reset(swap(target, evil.manifest, claim=target))
    spec = ImageSpec(
        name="victim", builder="native", base_image=ref, registry=open_registry.host, platform="linux/amd64"
    )
    report = build(spec, check=False)
    [result] = report.results
    assert result.outcome == "failed"
    assert result.reason is not None
    assert (
        f"{repo}@{target}, it answered with {evil.digest} (the hash of the manifest it sent)" in result.reason
    ), result.reason
