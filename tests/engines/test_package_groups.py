"""Package groups with the real engines: adding a light package keeps the grouped package's layer.

Two images per engine (docker, buildah with layers), each engine empty at the start (a dockerd or a
buildah storage of the test's own): the second adds one package. With a group
for ``six``, the second image reuses the first one's ``six`` layer (same digest, not uploaded
again: the registry's access log), and that layer holds ``six``; without the group nothing after
the venv is shared.

For the native builder, its own grouping (a big distribution in a layer of its own) is checked the
same way, with a 20 MB wheel from a package index of the test's own.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagespec import ImageSpec, build

from ..registry.package_index import add_wheel, serve_index
from ..registry.registry_servers import (
    Registry,
    blob,
    layers,
    requests_of,
    shared_prefix,
    start_registry,
    uploaded_blobs,
)
from .engine_helpers import MACHINE_CA
from .machines import machine

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    d = tmp_path_factory.mktemp("groups-registry")
    reg = start_registry(d, d / "storage", access_log=True)
    yield reg
    reg.stop()


@pytest.fixture(params=["docker", "buildah"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def layer_files(registry: Registry, repo: str, digest: str) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(registry, repo, digest)))) as tar:
        return tar.getnames()


def test_adding_a_package_keeps_the_grouped_layer(
    engine: str,
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with machine(engine, tmp_path / "machine", monkeypatch):
        adding_a_package(engine, registry, python_base, imagespec_wheel)


def adding_a_package(engine: str, registry: Registry, python_base: str, imagespec_wheel: Path) -> None:
    prefixes = {}
    # The control (no groups) runs on docker only: buildah with layers on vfs takes minutes a build.
    for grouped in (True, False) if engine == "docker" else (True,):
        name = f"groups-{engine}-{'on' if grouped else 'off'}"
        options: dict[str, object] = {"layers": True} if engine == "buildah" else {}
        if grouped:
            options["package_groups"] = [["six"]]

        def spec(packages: list[str], name: str = name, options: dict[str, object] = options) -> ImageSpec:
            return ImageSpec(
                name=name,
                registry=registry.host,
                base_image=python_base,
                python_version="3.11",
                packages=packages,
                builder_options=options,
            )

        first = spec(["six==1.16.0"])
        report = build(first, builder=engine, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
        assert report[first].outcome == "built", report.summary()
        first_name = report[first].name
        second = spec(["six==1.16.0", "attrs==23.2.0"])
        before = len(requests_of(registry))
        report = build(second, builder=engine, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
        assert report[second].outcome == "built", report.summary()
        one, two = layers(first_name), layers(report[second].name)
        prefixes[grouped] = shared_prefix(one, two)
        if grouped:
            six = one[prefixes[grouped] - 1]
            files = layer_files(registry, name, six)
            assert any(f.endswith("site-packages/six.py") for f in files), files[:20]
            uploaded = uploaded_blobs(registry, before)
            assert six not in uploaded, uploaded
    if False in prefixes:
        assert prefixes[True] == prefixes[False] + 1, prefixes


def test_native_keeps_a_big_distribution_layer_when_a_package_is_added(
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The native builder's own grouping: a distribution of 16 MB or more is a layer of its own. A
    small package added makes that layer again from the same tar, so its blob is linked from the
    cache (the same file, not compressed again) and the push does not upload it."""
    root = tmp_path / "index"
    add_wheel(root, "big-blob", {"big_blob/__init__.py": b"", "big_blob/data.bin": os.urandom(20 << 20)})
    add_wheel(root, "tiny-a", {"tiny_a/__init__.py": b"A = 1\n"})
    add_wheel(root, "tiny-b", {"tiny_b/__init__.py": b"B = 1\n"})
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(cache))
    names = []
    with serve_index(root, "127.0.0.1") as index:
        for packages in (["big-blob==1.0", "tiny-a==1.0"], ["big-blob==1.0", "tiny-a==1.0", "tiny-b==1.0"]):
            spec = ImageSpec(
                name="groups-native",
                registry=registry.host,
                base_image=python_base,
                python_version="3.11",
                packages=packages,
                pip_index=index,
                pip_extra_args="--trusted-host 127.0.0.1",
            )
            before = len(requests_of(registry))
            report = build(spec, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
            assert report[spec].outcome == "built", report.summary()
            names.append(report[spec].name)
    one, two = layers(names[0]), layers(names[1])
    (big,) = [
        d
        for d in one
        if any(f.endswith("big_blob/data.bin") for f in layer_files(registry, "groups-native", d))
    ]
    assert big in two
    uploaded = uploaded_blobs(registry, before)
    assert uploaded and big not in uploaded, uploaded
    # Both builds' cache entries hold the blob, and they are one file.
    copies = [p for p in cache.rglob(big.split(":")[1]) if p.is_file()]
    assert len(copies) >= 3, copies  # the two installs' entries and the blob kept by its tar
    assert len({p.stat().st_ino for p in copies}) == 1, copies
