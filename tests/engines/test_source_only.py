"""Source-only builds: after a full build, a change of source files alone is built in the registry
(a new source layer on the dependencies image), with no engine, on a cold machine.

Per builder (docker, buildah, native): a full build records the dependencies image; the engine's
storage and imagespec's cache are wiped; a source change is built. The registry's access log shows
what that second build uploaded (the source layer and the config) and the image is run to check
what it holds. Then the faults: a dependencies tag that names another image, a deleted one, and a
spec whose commands need the source.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagespec import BuildEvent, ImageSpec, build

from ..registry.registry_servers import (
    MANIFEST_TYPES,
    FaultProxy,
    Registry,
    manifest,
    put_manifest,
    refuse_uploads,
    requests_of,
    start_registry,
    tags,
    uploaded_blobs,
)
from .engine_helpers import MACHINE_CA, Buildah, DockerEngine

pytestmark = pytest.mark.timeout(900)

DEPS_PREFIX = "imagespec-deps-"

INSIDE = r"""
import json, os, imagespec
print(json.dumps({
    "main": open("/root/main.py").read(),
    "helper": open("/root/pkg/helper.py").read(),
    "root": sorted(os.listdir("/root")),
    "img_id": os.environ.get("_F_IMG_ID"),
    "uid": os.getuid(),
    "imagespec": imagespec.__version__,
    "env": os.environ.get("E2E_SOURCE_ONLY"),
}))
"""


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of this test alone, with its access log on."""
    d = tmp_path_factory.mktemp("source-only-registry")
    reg = start_registry(d, d / "storage", access_log=True)
    yield reg
    reg.stop()


@pytest.fixture(params=["docker", "buildah", "native"])
def builder(
    request: pytest.FixtureRequest, docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "buildah":
        b: Buildah = request.getfixturevalue("buildah")
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(b.storage_conf))
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    return str(request.param)


def project(root: Path, main: str) -> Path:
    src = root / "src"
    (src / "pkg").mkdir(parents=True, exist_ok=True)
    (src / "main.py").write_text(main)
    (src / "pkg" / "helper.py").write_text("HELP = 1\n")
    (src / "pkg" / "__init__.py").write_text("")
    return src


def spec_of(
    src: Path, registry: Registry, base: str, builder: str, *, via: str | None = None, **extra: object
) -> ImageSpec:
    """The spec of these tests; ``via``: another address of the registry (a proxy)."""
    options = {"layers": True} if builder == "buildah" else {}
    return ImageSpec(
        name=f"source-only-{builder}",
        registry=via or registry.host,
        base_image=base,
        python_version="3.11",
        source_root=str(src),
        source_copy_mode="ALL",
        env={"E2E_SOURCE_ONLY": "yes"},
        builder_options=options,
        **extra,  # type: ignore[arg-type]
    )


def run_inside(docker: DockerEngine, ref: str) -> dict[str, object]:
    return dict(json.loads(docker("run", "--rm", ref, "python", "-c", INSIDE)))


def local_images(docker: DockerEngine, buildah: Buildah | None) -> str:
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    if buildah is not None:
        listed += buildah("images", "--format", "{{.Name}}:{{.Tag}}", check=False)
    return listed


def test_a_source_change_is_built_in_the_registry_without_an_engine(
    builder: str,
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buildah: Buildah | None = request.getfixturevalue("buildah") if builder == "buildah" else None
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / "cache-1"))
    src = project(tmp_path, "print('one')\n")
    first = spec_of(src, registry, python_base, builder)
    events: list[BuildEvent] = []
    report = build(
        first, builder=builder, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA, on_event=events.append
    )
    assert report[first].outcome == "built", report.summary()
    assert report[first].reason is None, report.summary()
    first_image = report[first].image
    repo = f"source-only-{builder}"
    deps = [t for t in tags(registry, repo) if t.startswith(DEPS_PREFIX)]
    assert len(deps) == 1, (tags(registry, repo), [e.message for e in events if e.kind == "step"][-1])
    docker_engine.created.add(report[first].image)

    # A cold runner: the engine's images and imagespec's cache are gone.
    docker_engine.cleanup(registry.host)
    if buildah is not None:
        buildah.cleanup()
    monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / "cache-2"))
    (src / "main.py").write_text("print('two')\n")
    second = spec_of(src, registry, python_base, builder)
    assert second.image_name() != first_image
    before = len(requests_of(registry))
    events.clear()
    # And no engine to run: none of docker, buildah or uv can be found.
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    report = build(
        second, builder=builder, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA, on_event=events.append
    )
    monkeypatch.setenv("PATH", path)
    result = report[second]
    assert result.outcome == "built", report.summary()
    assert result.reason is not None and result.reason.startswith("source only"), report.summary()
    assert result.image == second.image_name().split("@")[0]
    assert result.name.startswith(result.image + "@sha256:")
    steps = [e.message for e in events if e.kind == "step"]
    assert not any("Python packages" in s or s.startswith("#") for s in steps if s), steps
    # No engine made it: nothing was built into the engine's storage.
    assert result.image not in local_images(docker_engine, buildah)
    # What went to the registry: the source layer and the config, then the manifest, by tag, last.
    requests = requests_of(registry)[before:]
    sent = uploaded_blobs(registry, before)
    assert len(sent) == 2, requests
    puts = [p for m, p in requests if m == "PUT" and "/manifests/" in p]
    assert puts == [f"/v2/{repo}/manifests/{result.image.rsplit(':', 1)[1]}"], requests
    body, _ = manifest(registry, repo, result.image.rsplit(":", 1)[1])
    dbody, _ = manifest(registry, repo, deps[0])
    layers = [layer["digest"] for layer in json.loads(body)["layers"]]
    deps_layers = [layer["digest"] for layer in json.loads(dbody)["layers"]]
    assert layers[:-1] == deps_layers
    assert sent[0] in (layers[-1], json.loads(body)["config"]["digest"])

    docker_engine.created.add(result.name)
    inside = run_inside(docker_engine, result.name)
    assert inside["main"] == "print('two')\n"
    assert inside["helper"] == "HELP = 1\n"
    assert {"main.py", "pkg"} <= set(inside["root"])  # type: ignore[arg-type]
    assert inside["img_id"] == second.id
    assert inside["uid"] == 1000
    assert inside["env"] == "yes"
    assert inside["imagespec"]
    labels = json.loads(docker_engine("inspect", "--format", "{{json .Config.Labels}}", result.name))
    assert labels["dev.imagespec.engine"] == "source-layer"
    assert labels["dev.imagespec.tag"] == result.image.rsplit(":", 1)[1]
    assert labels["dev.imagespec.deps"] == deps[0]


@pytest.fixture
def native_first(
    registry: Registry, python_base: str, imagespec_wheel: Path, tmp_path: Path
) -> tuple[Path, ImageSpec, str]:
    """A native full build that recorded its dependencies image; returns the source folder, the spec
    and the dependencies tag."""
    src = project(tmp_path, "print('one')\n")
    first = spec_of(src, registry, python_base, "native")
    report = build(first, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[first].outcome == "built", report.summary()
    deps = [t for t in tags(registry, "source-only-native") if t.startswith(DEPS_PREFIX)]
    assert len(deps) == 1
    return src, first, deps[0]


def test_a_retagged_dependencies_image_gives_a_full_build(
    native_first: tuple[Path, ImageSpec, str],
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    src, first, deps = native_first
    repo = "source-only-native"
    # The dependencies tag now names the full image (with its old source): never to be used.
    body, media_type = manifest(registry, repo, first.image_name().split("@")[0].rsplit(":", 1)[1])
    put_manifest(registry, repo, deps, body, media_type)
    (src / "main.py").write_text("print('two')\n")
    second = spec_of(src, registry, python_base, "native")
    report = build(second, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    result = report[second]
    assert result.outcome == "built", report.summary()
    assert result.reason is not None and result.reason.startswith("full build:"), result.reason
    assert "retagged" in result.reason
    assert "full build" in report.summary()
    docker_engine.created.add(result.name)
    inside = run_inside(docker_engine, result.name)
    assert inside["main"] == "print('two')\n"


def test_a_deleted_dependencies_image_gives_a_full_build_that_records_it_again(
    native_first: tuple[Path, ImageSpec, str],
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
) -> None:
    src, _, deps = native_first
    repo = "source-only-native"
    _, _ = manifest(registry, repo, deps)
    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{deps}")
    req.add_header("Accept", MANIFEST_TYPES)
    with urllib.request.urlopen(req, timeout=10) as r:
        digest = r.headers["Docker-Content-Digest"]
    delete = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{digest}", method="DELETE")
    with urllib.request.urlopen(delete, timeout=10) as r:
        assert r.status == 202
    assert deps not in tags(registry, repo)
    (src / "main.py").write_text("print('two')\n")
    second = spec_of(src, registry, python_base, "native")
    report = build(second, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[second].outcome == "built", report.summary()
    assert report[second].reason is None
    assert deps in tags(registry, repo)


def test_commands_that_need_the_source_get_no_dependencies_image(
    registry: Registry, python_base: str, imagespec_wheel: Path, tmp_path: Path
) -> None:
    src = project(tmp_path, "print('one')\n")
    spec = spec_of(
        src,
        registry,
        python_base,
        "native",
        builder_config={"commands_need_source": True},
    )
    report = build(spec, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
    assert report[spec].outcome == "built", report.summary()
    assert not [t for t in tags(registry, "source-only-native") if t.startswith(DEPS_PREFIX)]


def test_a_source_only_push_that_fails_leaves_no_tag(
    native_first: tuple[Path, ImageSpec, str],
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
) -> None:
    """Every blob upload fails (a reset, then a 500): the source-only build's push fails, so does
    the full build tried after it, and the image's tag is not written; the dependencies tag stands."""
    src, _, deps = native_first
    proxy = FaultProxy(registry.host)

    try:
        proxy.reset(refuse_uploads, match="/blobs/uploads/")
        (src / "main.py").write_text("print('never pushed')\n")
        spec = spec_of(src, registry, python_base, "native", via=proxy.host)
        events: list[BuildEvent] = []
        report = build(
            spec,
            builder="native",
            imagespec_wheel=imagespec_wheel,
            ca_bundle=MACHINE_CA,
            on_event=events.append,
            check=False,
        )
    finally:
        proxy.stop()
    assert report[spec].outcome == "failed", report.summary()
    steps = [e.message or "" for e in events if e.kind == "step"]
    assert any(s.startswith("source only") for s in steps), steps  # it was tried first
    tag = spec.image_name().rsplit(":", 1)[1]
    assert tag not in tags(registry, "source-only-native")
    assert deps in tags(registry, "source-only-native")
