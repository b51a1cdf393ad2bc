"""Helpers of the build-plan tests: pushing a tiny real image over plain HTTP, asking the registry
for a manifest, and a Python builder (the public extension point) that records what it was asked.

Standard library only (plus imagespec): the two-process test imports this module from a script.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def split_ref(ref: str) -> tuple[str, str, str]:
    """``host:port/repo:tag`` (a trailing ``@digest`` is dropped) → (host:port, repo, tag)."""
    ref = ref.split("@", 1)[0]
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    return host, repo, tag


def _request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202, 204),
) -> http.client.HTTPResponse:
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    if r.status not in ok:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
    return r


def push_tiny(ref: str, text: str = "imagespec plan test\n") -> str:
    """Pushes a one-small-layer linux/amd64 image as ``ref``; returns its manifest digest.

    ``text`` is the layer's one file, so different texts give different digests.
    """
    host, repo, tag = split_ref(ref)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = text.encode()
        ti = tarfile.TarInfo("placeholder.txt")
        ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
        tar.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]}},
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": MT_LAYER, "size": len(layer), "digest": _digest(layer)}],
        }
    ).encode()
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=30)
    try:
        for blob in (layer, config):
            d = _digest(blob)
            if _request(conn, "HEAD", f"/v2/{repo}/blobs/{d}", ok=(200, 404)).status == 200:
                continue
            loc = _request(conn, "POST", f"/v2/{repo}/blobs/uploads/").getheader("Location") or ""
            if loc.startswith("http"):
                loc = "/" + loc.split("/", 3)[3]
            sep = "&" if "?" in loc else "?"
            _request(
                conn,
                "PUT",
                f"{loc}{sep}digest={d}",
                body=blob,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(blob))},
            )
        _request(
            conn, "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": MT_MANIFEST}
        )
    finally:
        conn.close()
    return _digest(manifest)


def manifest_digest(ref: str) -> str | None:
    """The registry's digest for ``ref`` (``host:port/repo:tag``), None when it has no such manifest."""
    host, repo, tag = split_ref(ref)
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=10)
    try:
        r = _request(
            conn, "HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MT_MANIFEST}, ok=(200, 404)
        )
        return r.getheader("Docker-Content-Digest") if r.status == 200 else None
    finally:
        conn.close()


@dataclass
class Call:
    """One ``build_image`` call: the name it was asked to build, when, and what it saw."""

    image: str
    start: float
    end: float = 0.0
    base_name: str | None = None
    """For a spec whose base is a spec: the base's ``image_name()`` during the build."""
    base_present: bool | None = None
    """For a spec whose base is a spec: whether the base's manifest was in the registry."""


@dataclass
class RecordingBuilder:
    """A real Python builder: pushes a tiny image under ``spec.image_name()`` and records the call.

    ``sleep`` seconds pass inside the build; ``fail`` (an exception) is raised instead of building;
    ``result`` is what ``build_image`` returns: "name" (the name it built), "pinned" (that name
    with ``@digest``), None, or any other value as is. ``push=False`` records without pushing.
    """

    sleep: float = 0.0
    fail: BaseException | None = None
    result: Any = "name"
    push: bool = True
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def build_image(self, spec: Any) -> Any:
        image = spec.image_name()
        call = Call(image=image, start=time.monotonic())
        with self.lock:
            self.calls.append(call)
        base = spec.base_image
        if base is not None and not isinstance(base, str) and base.registry:
            call.base_name = base.image_name()
            call.base_present = manifest_digest(call.base_name) is not None
        if self.sleep:
            time.sleep(self.sleep)
        try:
            if self.fail is not None:
                raise self.fail
            digest = push_tiny(image, f"built {image}\n") if self.push and spec.registry else None
        finally:
            call.end = time.monotonic()
        if self.result == "name":
            return image
        if self.result == "pinned":
            return f"{image.split('@', 1)[0]}@{digest}"
        return self.result

    @property
    def images(self) -> list[str]:
        return [c.image for c in self.calls]


def overlapped(calls: list[Call]) -> bool:
    """Whether any two calls ran at the same time."""
    latest_end = None
    for start, end in sorted((c.start, c.end) for c in calls):
        if latest_end is not None and start < latest_end:
            return True
        latest_end = end if latest_end is None else max(latest_end, end)
    return False
