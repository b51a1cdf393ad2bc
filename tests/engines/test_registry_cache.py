"""The build cache in the registry (``builder_options={"cache": "registry"}``): a second machine
reuses what the first built, and a damaged cache gives a full build with the right content.

Each machine is one of its own (tests/engines/machines.py): a dockerd or buildah storage with
nothing in it, or for the native builder an empty cache folder. With the cache, the second machine
takes the user, venv and grouped steps from the registry (docker, buildah) or runs no install and
uploads no package layer (native); without it, docker makes every step again. Then the faults: the
native entries (``imagespec-native-<key>``) damaged as a registry or a person can damage them, and
docker's cache tag retagged to an unrelated image.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagespec import BuildEvent, ImageSpec, build

from ..registry.registry_servers import (
    Pusher,
    Registry,
    blob,
    layers,
    manifest,
    put_manifest,
    requests_of,
    shared_prefix,
    start_registry,
    tags,
    uploaded_blobs,
)
from .engine_helpers import MACHINE_CA
from .machines import machine

pytestmark = pytest.mark.timeout(900)

NATIVE_PREFIX = "imagespec-native-"
#: fault → what the step that skips the entry says
FAULTS = {
    "config-not-json": "its config is not a list of layers",
    "layer-missing": "is not in the registry",
    "foreign-config": "is not a native layer cache entry",
    "lists-differ": "its manifest and its config list other layers",
}


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    d = tmp_path_factory.mktemp("cache-registry")
    reg = start_registry(d, d / "storage", access_log=True)
    yield reg
    reg.stop()


def two_machines(
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

    names = []
    for n, packages in enumerate((["six==1.16.0"], ["six==1.16.0", "attrs==23.2.0"]), 1):
        s = spec(packages)
        with machine(engine, tmp_path / f"machine-{n}", monkeypatch):
            report = build(s, builder=engine, imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
        assert report[s].outcome == "built", report.summary()
        names.append(report[s].name)
    one, two = layers(names[0]), layers(names[1])
    return shared_prefix(one, two), len(layers(python_base)), one, two


@pytest.mark.parametrize("engine", ["docker", "buildah"])
def test_the_registry_cache_serves_a_machine_with_an_empty_one(
    engine: str,
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared, base, one, two = two_machines(
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
    shared, base, one, two = two_machines(
        "docker", "local", registry, python_base, imagespec_wheel, tmp_path, monkeypatch
    )
    # Made again: pip's and useradd's files carry new times, so the layers differ from there on.
    assert shared < base + 3, (shared, base, one, two)


class Native:
    """Native builds of one image (``env`` varies, so each is a full build) on machines that differ
    by their cache folder."""

    def __init__(
        self, registry: Registry, base: str, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.registry, self.base, self.wheel = registry, base, wheel
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch

    def build_on(self, machine: str, run: str) -> tuple[str, list[str], list[str]]:
        """Builds on ``machine``; returns the image's name, the step events and the blobs uploaded."""
        spec = ImageSpec(
            name="cache-native",
            registry=self.registry.host,
            base_image=self.base,
            python_version="3.11",
            packages=["six==1.16.0"],
            env={"RUN": run},
            builder_options={"cache": "registry"},
        )
        self.monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(self.tmp_path / machine))
        steps: list[str] = []

        def on_event(e: BuildEvent) -> None:
            if e.kind == "step":
                steps.append(e.message or "")

        before = len(requests_of(self.registry))
        report = build(
            spec, builder="native", imagespec_wheel=self.wheel, ca_bundle=MACHINE_CA, on_event=on_event
        )
        assert report[spec].outcome == "built", report.summary()
        assert report[spec].reason is None  # a full build: env is not a source file
        uploaded = uploaded_blobs(self.registry, before)
        return report[spec].name, steps, uploaded


@pytest.fixture
def native(
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Native:
    return Native(registry, python_base, imagespec_wheel, tmp_path, monkeypatch)


def from_cache(steps: list[str]) -> list[str]:
    return [s for s in steps if s.startswith("from the registry cache")]


def test_native_installs_nothing_on_a_machine_with_an_empty_cache(native: Native) -> None:
    """A second machine building an image with the same packages takes the package and runtime
    layers from the registry: no install, no upload of them."""
    first, _, _ = native.build_on("machine-1", "one")
    second, steps, uploaded = native.build_on("machine-2", "two")
    assert len(from_cache(steps)) == 2, steps  # the packages and the runtime
    assert layers(first) == layers(second)  # env is config only: every layer is the first machine's
    assert len(uploaded) == 1, uploaded  # the config


def damage(fault: str, registry: Registry, repo: str, tag: str) -> None:
    body, media_type = manifest(registry, repo, tag)
    doc = json.loads(body)
    config = blob(registry, repo, doc["config"]["digest"])
    facts = json.loads(config)
    if fault == "config-not-json":
        config = b"{not json"
    elif fault == "layer-missing":
        # The registry refuses a manifest naming a blob it lacks: the blob goes after the manifest.
        req = urllib.request.Request(
            f"http://{registry.host}/v2/{repo}/blobs/{doc['layers'][0]['digest']}", method="DELETE"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 202
        return
    elif fault == "foreign-config":
        doc["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"
    elif fault == "lists-differ":
        config = json.dumps([*facts, facts[0]]).encode()
    pusher = Pusher(registry.host)
    try:
        doc["config"]["digest"] = pusher.blob(repo, config)
    finally:
        pusher.close()
    doc["config"]["size"] = len(config)
    put_manifest(registry, repo, tag, json.dumps(doc).encode(), media_type)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_bad_native_cache_entry_is_said_and_the_install_runs(
    fault: str, native: Native, registry: Registry
) -> None:
    """Each damaged entry is named in one step line with what is wrong; the install runs and makes
    the first machine's layers again (the native builder is reproducible); the entry is written
    again, so a third machine takes it."""
    first, _, _ = native.build_on("machine-1", "one")
    entries = [t for t in tags(registry, "cache-native") if t.startswith(NATIVE_PREFIX)]
    assert len(entries) == 2, entries  # the packages and the runtime
    for tag in entries:
        damage(fault, registry, "cache-native", tag)

    second, steps, _ = native.build_on("machine-2", "two")
    skipped = [s for s in steps if s.startswith("registry cache not used")]
    assert len(skipped) == 2, steps
    for line in skipped:
        assert FAULTS[fault] in line and "\n" not in line, line
        assert any(tag in line for tag in entries), (line, entries)
    assert not from_cache(steps), steps
    assert layers(second) == layers(first)

    third, steps, _ = native.build_on("machine-3", "three")
    assert len(from_cache(steps)) == 2, steps
    assert layers(third) == layers(first)


def test_a_retagged_docker_cache_image_gives_every_step_again(
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docker's cache tag names an unrelated image: the second machine makes every step, and none of
    that image's layers is in the result."""

    def build_on(n: int, packages: list[str]) -> str:
        s = ImageSpec(
            name="cache-retagged",
            registry=registry.host,
            base_image=python_base,
            python_version="3.11",
            packages=packages,
            builder_options={"cache": "registry", "package_groups": [["six"]]},
        )
        with machine("docker", tmp_path / f"machine-{n}", monkeypatch):
            report = build(s, builder="docker", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
        assert report[s].outcome == "built", report.summary()
        return report[s].name

    first = build_on(1, ["six==1.16.0"])
    assert "imagespec-cache" in tags(registry, "cache-retagged")
    pusher = Pusher(registry.host)
    try:
        pusher.image("cache-retagged", "imagespec-cache", note=" not a cache")
    finally:
        pusher.close()
    strange = layers(f"{registry.host}/cache-retagged:imagespec-cache")

    second = build_on(2, ["six==1.16.0", "attrs==23.2.0"])
    one, two = layers(first), layers(second)
    assert not set(strange) & set(two), (strange, two)
    # Nothing came from the cache: the user, venv and six steps were made again (new file times).
    assert shared_prefix(one, two) < len(layers(python_base)) + 3, (one, two)
