"""flytekit's builder protocol on imagespec: ImageSpecBuilder, ImageBuildEngine, NoOpBuilder.

Each test states flytekit's behaviour with its source line (flytekit v1.16.24), then checks ours,
with real builders pushing to a real loopback registry (the builders are the public extension
point; a ``unittest.mock.Mock`` builder is what flytekit's own tests register).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest

from imagespec import BuildError, ImageBuildEngine, ImageSpec, ImageSpecBuilder, NoOpBuilder, SpecError, build
from imagespec._builders import EngineBuilder
from imagespec._spec import _REAL_NAMES

from ..plan_helpers import RecordingBuilder, manifest_digest, push_tiny
from ..registry.registry_servers import Registry, free_port, start_registry

ENV = ("FLYTE_IMG_FAST_FAIL", "IMAGESPEC_ASSUME_PRESENT", "IMAGESPEC_WHEEL", "DOCKER_HOST")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("compat-registry")
    reg = start_registry(workdir, workdir / "storage")
    yield reg
    reg.stop()


@pytest.fixture(autouse=True)
def own_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry of builders, the name map and what build() built, restored after each test."""
    registered = dict(ImageBuildEngine._REGISTRY)
    real_names = dict(_REAL_NAMES)
    built = dict(ImageBuildEngine._BUILT)
    docker = tmp_path / "docker-config"
    docker.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    yield
    ImageBuildEngine._REGISTRY.clear()
    ImageBuildEngine._REGISTRY.update(registered)
    _REAL_NAMES.clear()
    _REAL_NAMES.update(real_names)
    ImageBuildEngine._BUILT.clear()
    ImageBuildEngine._BUILT.update(built)


@pytest.fixture
def name() -> str:
    return f"compat-{uuid.uuid4().hex[:10]}"


class Pushing(RecordingBuilder, ImageSpecBuilder):
    """A subclass, as flytekit users write them: flytekit's default should_build, a real push."""


def closed_host() -> str:
    return f"127.0.0.1:{free_port()}"


# ------------------------------------------------------------------------------ ImageSpecBuilder


def test_image_spec_builder_is_a_base_class_and_any_build_image_counts() -> None:
    # flytekit/image_spec/image_spec.py:452-464: a class with an abstract build_image(image_spec)
    # to subclass. Ours also counts any object with a build_image, as our Protocol did.
    class Duck:
        def build_image(self, spec: ImageSpec) -> None:
            return None

    assert isinstance(Pushing(), ImageSpecBuilder)
    assert isinstance(Duck(), ImageSpecBuilder) and issubclass(Duck, ImageSpecBuilder)
    assert isinstance(Mock(), ImageSpecBuilder)  # flytekit's tests register Mocks
    assert not isinstance(object(), ImageSpecBuilder)
    assert isinstance(ImageBuildEngine.get("docker"), ImageSpecBuilder)
    assert isinstance(ImageBuildEngine.get("noop"), ImageSpecBuilder)

    class Nothing(ImageSpecBuilder):
        pass

    # A deliberate difference: flytekit's class is no ABC, so this fails only when building.
    with pytest.raises(TypeError, match="build_image"):
        Nothing()  # type: ignore[abstract]


def test_default_should_build_is_flytekits(
    registry: Registry, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # flytekit/image_spec/image_spec.py:481-501: exist() False -> True; True -> True only when
    # force-pushed; None -> RuntimeError when FLYTE_IMG_FAST_FAIL is true, else False (assumed there).
    builder = Pushing()
    spec = ImageSpec(name=name, registry=registry.host)
    assert builder.should_build(spec) is True
    push_tiny(spec.image_name())
    assert builder.should_build(spec) is False
    assert builder.should_build(spec.force_push()) is True

    unknown = ImageSpec(name=name, registry=closed_host())
    with pytest.warns(UserWarning, match="assuming it does"):
        assert builder.should_build(unknown) is False
    # flytekit/clis/helpers.py:32 (str2bool): every value but false/0/off/no is true.
    for value in ("true", "1", "yes", ""):
        monkeypatch.setenv("FLYTE_IMG_FAST_FAIL", value)
        with pytest.raises(RuntimeError, match="FLYTE_IMG_FAST_FAIL"):
            builder.should_build(unknown)
    monkeypatch.setenv("FLYTE_IMG_FAST_FAIL", "off")
    with pytest.warns(UserWarning):
        assert builder.should_build(unknown) is False


def test_engine_should_build_is_the_plans_check_and_fails_closed(
    registry: Registry, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ours, deliberately stricter than flytekit/image_spec/image_spec.py:491-501: an unknown answer
    # is an error unless assuming present is opted in.
    docker = ImageBuildEngine.get("docker")
    assert isinstance(docker, EngineBuilder)
    spec = ImageSpec(name=name, registry=registry.host)
    assert docker.should_build(spec) is True
    digest = push_tiny(spec.image_name())
    plain = spec.image_name()
    assert docker.should_build(spec) is False
    assert spec.image_name() == f"{plain}@{digest}"  # the existing image, pinned
    unknown = ImageSpec(name=name, registry=closed_host())
    assert docker.should_build(unknown.force_push()) is True  # forced: nothing asked
    with pytest.raises(BuildError, match=r"cannot tell whether .* exists"):
        docker.should_build(unknown)
    for var, value in (("IMAGESPEC_ASSUME_PRESENT", "1"), ("FLYTE_IMG_FAST_FAIL", "false")):
        with monkeypatch.context() as m:
            m.setenv(var, value)
            with pytest.warns(UserWarning, match="assuming it does"):
                assert docker.should_build(unknown) is False


def test_the_plan_asks_a_subclass_its_inherited_should_build(registry: Registry, name: str) -> None:
    # flytekit/image_spec/image_spec.py:541: the builder's should_build decides. A subclass keeps
    # flytekit's default there too: present -> not built; unknown -> assumed present.
    builder = Pushing()
    ImageBuildEngine.register("mine", builder)
    spec = ImageSpec(name=name, registry=registry.host, builder="mine")
    assert build(spec)[spec].outcome == "built"
    again = build(spec)[spec]
    assert (again.outcome, again.reason) == ("skipped", "its builder's should_build said no")
    unknown = ImageSpec(name=name, registry=closed_host(), builder="mine")
    with pytest.warns(UserWarning, match="assuming it does"):
        assert build(unknown)[unknown].outcome == "skipped"
    assert len(builder.calls) == 1


# ------------------------------------------------------------------------------ ImageBuildEngine


def test_register_defaults_to_priority_5_above_every_built_in() -> None:
    # flytekit/image_spec/image_spec.py:516: register(..., priority=5).
    ImageBuildEngine.register("mine", Pushing())
    registry = ImageBuildEngine.get_registry()
    assert registry["mine"][1] == 5
    assert {n: p for n, (_, p) in registry.items() if n != "mine"} == {
        "docker": 3,
        "buildah": 2,
        "podman": 1,
        "envd": 1,
        "native": 1,
        "noop": 0,
        "buildkit": 0,
    }


def test_build_runs_once_per_process(registry: Registry, name: str) -> None:
    # flytekit/image_spec/image_spec.py:523-525: build is lru_cache'd, so a second call with an
    # equal spec does nothing, even after its builder was removed (flytekit's test_image_spec).
    builder = Pushing()
    ImageBuildEngine.register("mine", builder)
    spec = ImageSpec(name=name, registry=registry.host, builder="mine")
    out = ImageBuildEngine.build(spec)
    assert out == spec.image_name() and builder.images == [out]
    ImageBuildEngine.remove("mine")
    assert ImageBuildEngine.build(ImageSpec(name=name, registry=registry.host, builder="mine")) == out
    assert len(builder.calls) == 1
    # Other options are another call (lru_cache keys on every argument).
    ImageBuildEngine.register("mine", builder)
    ImageBuildEngine.build(spec, force_push=True)
    assert len(builder.calls) == 2


def test_build_builds_base_specs_first_with_their_own_builders(registry: Registry, name: str) -> None:
    # flytekit/image_spec/image_spec.py:535-537: the base spec is built first (by cls.build, so
    # with its own builder, and cached too).
    first, second = Pushing(), Pushing()
    ImageBuildEngine.register("first", first)
    ImageBuildEngine.register("second", second)
    base = ImageSpec(name=f"{name}-base", registry=registry.host, builder="first")
    app = ImageSpec(name=name, registry=registry.host, builder="second", base_image=base)
    ImageBuildEngine.build(app)
    assert first.images == [base.image_name()] and second.images == [app.image_name()]
    assert first.calls[0].end <= second.calls[0].start
    assert second.calls[0].base_present is True
    ImageBuildEngine.build(base)
    assert len(first.calls) == 1


def test_unregistered_builders_raise_flytekits_assertion_error(registry: Registry, name: str) -> None:
    # flytekit/image_spec/image_spec.py:548-551: AssertionError "Image builder X is not
    # registered." / "There is no image builder registered."; the base first (line 536).
    builder = Pushing()
    ImageBuildEngine.register("mine", builder)
    with pytest.raises(AssertionError, match="Image builder flyte is not registered") as err:
        ImageBuildEngine.build(ImageSpec(name=name, registry=registry.host, builder="flyte"))
    assert isinstance(err.value, BuildError)
    base = ImageSpec(name=f"{name}-base", registry=registry.host, builder="gone")
    app = ImageSpec(name=name, registry=registry.host, builder="mine", base_image=base)
    with pytest.raises(AssertionError, match="Image builder gone is not registered"):
        ImageBuildEngine.build(app)
    assert builder.calls == []  # refused before anything ran
    ImageBuildEngine._REGISTRY.clear()
    with pytest.raises(AssertionError, match="There is no image builder registered"):
        ImageBuildEngine.build(ImageSpec(name=name, registry=registry.host))


def test_a_spec_without_builder_gets_the_highest_priority(registry: Registry, name: str) -> None:
    # flytekit/image_spec/image_spec.py:146-149 (at construction; ours when built) and flytekit's
    # test_image_spec_engine_priority: the priority-10 Mock builds, once, given the spec; its name
    # becomes image_name() (lines 543-544).
    high = Mock()
    high.build_image.return_value = "fqn.xyz/flytekit"
    default = Mock()
    default.build_image.side_effect = ValueError("should not be called")
    ImageBuildEngine.register("build_10", high, priority=10)
    ImageBuildEngine.register("build_default", default)
    spec = ImageSpec(name=name, registry=closed_host())
    ImageBuildEngine.build(spec)
    high.build_image.assert_called_once_with(spec)
    # Nothing else of the Mock (which has every attribute) is used: no availability probe.
    assert [c[0] for c in high.mock_calls] == ["should_build", "build_image"]
    assert default.mock_calls == []
    assert spec.image_name() == "fqn.xyz/flytekit"
    assert ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME is _REAL_NAMES


def test_a_builder_returning_none_leaves_the_name(registry: Registry, name: str) -> None:
    # flytekit/image_spec/image_spec.py:462 and 543: None means image_spec.image_name().
    builder = Pushing(result=None)
    ImageBuildEngine.register("mine", builder)
    spec = ImageSpec(name=name, registry=registry.host, builder="mine")
    before = spec.image_name()
    assert ImageBuildEngine.build(spec) == before == spec.image_name()
    assert manifest_digest(before) is not None


# ---------------------------------------------------------------------------------- NoOpBuilder


def test_noop_builder_is_flytekits() -> None:
    # flytekit/image_spec/noop_builder.py:9-31: should_build is always True; build_image returns
    # base_image when it is a string, else ValueError.
    noop = ImageBuildEngine.get("noop")
    assert type(noop) is NoOpBuilder and noop.builder_type == "noop"
    named = ImageSpec(name="app", base_image="ghcr.io/org/prebuilt:1", registry=closed_host())
    assert noop.should_build(named) is True
    assert noop.build_image(named) == "ghcr.io/org/prebuilt:1"
    for spec in (ImageSpec(name="app"), ImageSpec(name="app", base_image=ImageSpec(name="base"))):
        with pytest.raises(
            ValueError, match="base_image must be a string to use the noop image builder"
        ) as e:
            noop.build_image(spec)
        assert isinstance(e.value, SpecError)


def test_noop_names_the_base_without_asking_any_registry() -> None:
    # flytekit/image_spec/noop_builder.py:21 and image_spec.py:541-544: always "built", and the
    # base's name is mapped. The registry here is closed: any request would fail the plan.
    spec = ImageSpec(name="app", builder="noop", base_image="ghcr.io/org/prebuilt:1", registry=closed_host())
    report = build(spec)
    assert report[spec].outcome == "built" and report[spec].builder == "noop"
    assert spec.image_name() == "ghcr.io/org/prebuilt:1"


def test_noop_is_never_picked_for_a_spec_that_names_no_builder(name: str) -> None:
    # flytekit/image_spec/__init__.py:13: noop has priority 0 (flytekit's default builder, 1,
    # outranks it). Ours never picks it on its own, whatever its priority.
    for other in [n for n in ImageBuildEngine.get_registry() if n != "noop"]:
        ImageBuildEngine.remove(other)
    ImageBuildEngine.register("noop", NoOpBuilder(), priority=99)
    with pytest.raises(BuildError, match="no builder is registered"):
        build(ImageSpec(name=name, base_image="ghcr.io/org/prebuilt:1", registry=closed_host()).force_push())


def test_the_plan_runs_built_in_engines_in_rust_and_other_builders_in_python() -> None:
    """Ours: an engine runs in Rust unless its class overrides build_image or should_build; the
    default noop goes as the Rust noop to plans that do not use it (no Python builder to ask)."""
    from imagespec._engine import _plan_builders

    class MyDocker(EngineBuilder):
        def build_image(self, image_spec: ImageSpec) -> Any:
            return "mine"

    ImageBuildEngine.register("docker", EngineBuilder("docker"), priority=3)
    ImageBuildEngine.register("mydocker", MyDocker("docker"))
    plain = ImageSpec(name="app")
    targets = {n: t for n, _, t in _plan_builders([plain], None)}
    assert targets["docker"] == "docker" and targets["noop"] == "noop"
    assert isinstance(targets["mydocker"], MyDocker)  # overridden: its Python code runs
    noop_spec = ImageSpec(name="app2", builder="noop", base_image="x:1")
    targets = {n: t for n, _, t in _plan_builders([noop_spec], None)}
    assert isinstance(targets["noop"], NoOpBuilder)
