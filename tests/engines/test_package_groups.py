"""Package groups with the real engines: adding a light package keeps the grouped package's layer.

Two images per engine (docker, buildah with layers), each engine empty at the start (a dockerd or a
buildah storage of the test's own): the second adds one package. With a group
for ``six``, the second image reuses the first one's ``six`` layer (same digest, not uploaded
again: the registry's access log), and that layer holds ``six``; without the group nothing after
the venv is shared.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from imagespec import ImageSpec, build

from ..registry.registry_servers import Registry, requests_of, start_registry
from .engine_helpers import MACHINE_CA, Missing, make_buildah, missing
from .second_docker import second_docker

pytestmark = pytest.mark.timeout(900)

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    d = tmp_path_factory.mktemp("groups-registry")
    reg = start_registry(d, d / "storage", access_log=True)
    yield reg
    reg.stop()


@pytest.fixture(params=["docker", "buildah"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def machine(engine: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine of its own with an empty engine (no image, no build cache, no pip cache): a second
    dockerd, or buildah with a storage of its own. imagespec's builder is pointed at it inside the
    block. Earlier tests' builds on the shared engine then decide nothing here."""
    with monkeypatch.context() as m, ExitStack() as stack:
        try:
            if engine == "docker":
                docker = stack.enter_context(second_docker(workdir))
                m.setenv("DOCKER_HOST", docker.host)
            else:
                buildah = make_buildah(workdir)
                stack.callback(shutil.rmtree, workdir, ignore_errors=True)
                stack.callback(buildah.cleanup)
                m.setenv("CONTAINERS_STORAGE_CONF", str(buildah.storage_conf))
        except Missing as e:
            missing(str(e))
        yield


def layers(image: str) -> list[str]:
    """The layer digests of ``image`` (``host/repo:tag[@digest]``), from its loopback registry."""
    host, rest = image.split("/", 1)
    repo, ref = rest.split("@")[0].rsplit(":", 1)
    if "@" in rest:
        ref = rest.split("@")[1]
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}")
    req.add_header("Accept", MANIFEST_TYPES)
    with urllib.request.urlopen(req, timeout=10) as r:
        return [layer["digest"] for layer in json.load(r)["layers"]]


def layer_files(registry: Registry, repo: str, digest: str) -> list[str]:
    with urllib.request.urlopen(f"http://{registry.host}/v2/{repo}/blobs/{digest}", timeout=30) as r:
        data = r.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return tar.getnames()


def shared_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


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
            uploaded = [p for m, p in requests_of(registry)[before:] if m == "PUT" and "digest=" in p]
            assert not [p for p in uploaded if six.split(":")[1] in p], uploaded
    if False in prefixes:
        assert prefixes[True] == prefixes[False] + 1, prefixes


def registry_cache_case(
    engine: str,
    cache: str,
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, int, list[str], list[str]]:
    """An image built on one machine, an image with one more package built on another: the layers
    shared by the two, the base's layer count, and both layer lists."""
    options: dict[str, object] = {"package_groups": [["six"]], "cache": cache}

    def spec(packages: list[str]) -> ImageSpec:
        return ImageSpec(
            name=f"cache-{engine}-{cache}",
            registry=registry.host,
            base_image=python_base,
            python_version="3.11",
            packages=packages,
            builder_options=options,
        )

    first = spec(["six==1.16.0"])
    with machine(engine, tmp_path / "machine-1", monkeypatch):
        report = build(first, builder=engine, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[first].outcome == "built", report.summary()
    first_name = report[first].name
    second = spec(["six==1.16.0", "attrs==23.2.0"])
    with machine(engine, tmp_path / "machine-2", monkeypatch):
        report = build(second, builder=engine, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[second].outcome == "built", report.summary()
    one, two = layers(first_name), layers(report[second].name)
    return shared_prefix(one, two), len(layers(python_base)), one, two


def test_the_registry_cache_serves_a_machine_with_an_empty_one(
    engine: str,
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared, base, one, two = registry_cache_case(
        engine, "registry", registry, python_base, imagespec_wheel, tmp_path, monkeypatch
    )
    # The user, venv and six steps came from the registry: same layers, not made again.
    assert shared >= base + 3, (shared, base, one, two)


def test_without_the_registry_cache_a_fresh_engine_makes_every_step_again(
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control of the test above (docker only: buildah with layers on vfs takes minutes)."""
    shared, base, one, two = registry_cache_case(
        "docker", "local", registry, python_base, imagespec_wheel, tmp_path, monkeypatch
    )
    # Made again: pip's and useradd's files carry new times, so the layers differ from there on.
    assert shared < base + 3, (shared, base, one, two)


def test_native_installs_nothing_on_a_machine_with_an_empty_cache(
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The native builder's registry cache: a second machine (an empty cache folder) building an
    image with the same packages takes the package and runtime layers from the registry: no
    install, no upload of them."""

    def spec(env: str) -> ImageSpec:
        return ImageSpec(
            name="cache-native",
            registry=registry.host,
            base_image=python_base,
            python_version="3.11",
            packages=["six==1.16.0"],
            env={"RUN": env},
            builder_options={"cache": "registry"},
        )

    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / "machine-1"))
    first = spec("one")
    report = build(first, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[first].outcome == "built", report.summary()
    first_name = report[first].name
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / "machine-2"))
    second = spec("two")
    steps: list[str] = []
    before = len(requests_of(registry))
    report = build(
        second,
        builder="native",
        imagespec_wheel=imagespec_wheel,
        ca_bundle=MACHINE_CA,
        on_event=lambda e: steps.append(e.message or "") if e.kind == "step" else None,
    )
    assert report[second].outcome == "built", report.summary()
    assert report[second].reason is None  # a full build: env is not a source file
    hits = [s for s in steps if s.startswith("from the registry cache")]
    assert len(hits) == 2, steps  # the packages and the runtime
    one, two = layers(first_name), layers(report[second].name)
    assert one == two  # env is config only: every layer is the first machine's
    uploaded = [p for m, p in requests_of(registry)[before:] if m == "PUT" and "digest=" in p]
    assert len(uploaded) == 1, uploaded  # the config
