"""A registry cache that is bad gives a full build with the right content, said in one line.

The native builder's cache entries (``imagespec-native-<key>``) are damaged in the ways a registry
or a person can damage them: a config that is not JSON, a layer that is not in the registry, a
config of another media type, a config and a manifest that list other layers. A machine with an
empty cache folder then says why it does not use each entry, installs, and makes the same layers
as the first machine (the native builder is reproducible); the entries are written again, so a
third machine takes them. For docker, the inline-cache tag retagged to an unrelated image: the
second machine (a dockerd of its own) builds every step, and none of that image's layers is in
the result.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagespec import BuildEvent, ImageSpec, build

from ..registry.registry_servers import Pusher, Registry, start_registry
from .engine_helpers import MACHINE_CA, Missing, missing
from .second_docker import second_docker
from .test_package_groups import layers, shared_prefix
from .test_source_only import manifest, put_manifest, tags

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
    d = tmp_path_factory.mktemp("cache-faults-registry")
    reg = start_registry(d, d / "storage", access_log=True)
    yield reg
    reg.stop()


def blob(registry: Registry, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"http://{registry.host}/v2/{repo}/blobs/{digest}", timeout=30) as r:
        return bytes(r.read())


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
    fault: str,
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def spec(run: str) -> ImageSpec:
        return ImageSpec(
            name="cache-faults",
            registry=registry.host,
            base_image=python_base,
            python_version="3.11",
            packages=["six==1.16.0"],
            env={"RUN": run},
            builder_options={"cache": "registry"},
        )

    def build_on(machine: str, s: ImageSpec) -> tuple[str, list[str]]:
        monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / machine))
        steps: list[str] = []

        def on_event(e: BuildEvent) -> None:
            if e.kind == "step":
                steps.append(e.message or "")

        report = build(
            s, builder="native", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA, on_event=on_event
        )
        assert report[s].outcome == "built", report.summary()
        return report[s].name, steps

    first, _ = build_on("machine-1", spec("one"))
    entries = [t for t in tags(registry, "cache-faults") if t.startswith(NATIVE_PREFIX)]
    assert len(entries) == 2, entries  # the packages and the runtime
    for tag in entries:
        damage(fault, registry, "cache-faults", tag)

    second, steps = build_on("machine-2", spec("two"))
    skipped = [s for s in steps if s.startswith("registry cache not used")]
    assert len(skipped) == 2, steps
    for line in skipped:  # one line each, naming the entry and what is wrong with it
        assert FAULTS[fault] in line and "\n" not in line, line
        assert any(tag in line for tag in entries), (line, entries)
    assert not [s for s in steps if s.startswith("from the registry cache")], steps
    assert layers(second) == layers(first)  # installed again, the same content

    third, steps = build_on("machine-3", spec("three"))
    assert len([s for s in steps if s.startswith("from the registry cache")]) == 2, steps
    assert layers(third) == layers(first)


def test_a_retagged_docker_cache_image_gives_every_step_again(
    registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def spec(packages: list[str]) -> ImageSpec:
        return ImageSpec(
            name="cache-faults-docker",
            registry=registry.host,
            base_image=python_base,
            python_version="3.11",
            packages=packages,
            builder_options={"cache": "registry", "package_groups": [["six"]]},
        )

    def build_on(machine: str, s: ImageSpec) -> str:
        try:
            with second_docker(tmp_path / machine) as docker:
                monkeypatch.setenv("DOCKER_HOST", docker.host)
                report = build(s, builder="docker", imagespec_wheel=imagespec_wheel, ca_bundle=MACHINE_CA)
        except Missing as e:
            missing(str(e))
        assert report[s].outcome == "built", report.summary()
        return report[s].name

    first = build_on("machine-1", spec(["six==1.16.0"]))
    assert "imagespec-cache" in tags(registry, "cache-faults-docker")
    pusher = Pusher(registry.host)
    try:
        pusher.image("cache-faults-docker", "imagespec-cache", note=" not a cache")
    finally:
        pusher.close()
    strange_layers = layers(f"{registry.host}/cache-faults-docker:imagespec-cache")

    second = build_on("machine-2", spec(["six==1.16.0", "attrs==23.2.0"]))
    one, two = layers(first), layers(second)
    assert not set(strange_layers) & set(two), (strange_layers, two)
    # Nothing came from the cache: the user, venv and six steps were made again (new file times).
    assert shared_prefix(one, two) < len(layers(python_base)) + 3, (one, two)
