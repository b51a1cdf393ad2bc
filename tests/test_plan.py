"""The build plan with builders written in Python, against a real loopback CNCF registry.

Every builder here is a Python builder registered by the test (the public extension point); the
built-in engines are taken out of the registry for each test, so nothing needs docker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagespec import BuildError, ImageBuildEngine, ImageSpec, build
from imagespec._engine import BuildEvent, EngineBuilder
from imagespec._spec import _REAL_NAMES

from .plan_helpers import RecordingBuilder, manifest_digest, overlapped, push_tiny
from .registry.registry_servers import FaultProxy, RawRequest, Registry, free_port, send, start_registry

HERE = Path(__file__).resolve().parent
PLAN_VARS = (
    "FLYTE_IMG_FAST_FAIL",
    "IMAGESPEC_ASSUME_PRESENT",
    "IMAGESPEC_MAX_PARALLEL",
    "IMAGESPEC_WHEEL",
    "IMAGESPEC_CA_BUNDLE",
)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("plan-registry")
    reg = start_registry(workdir, workdir / "storage")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def _proxy(registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_proxy: FaultProxy) -> Iterator[FaultProxy]:
    _proxy.reset()
    yield _proxy
    _proxy.reset()


@pytest.fixture(autouse=True)
def own_builders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the builders a test registers; the registry of builders and of real names restored after.

    Also isolates the docker config and clears the plan's environment variables."""
    registered = dict(ImageBuildEngine._REGISTRY)
    real_names = dict(_REAL_NAMES)
    for name, (builder, _) in registered.items():
        if isinstance(builder, EngineBuilder):
            del ImageBuildEngine._REGISTRY[name]
    docker = tmp_path / "docker-config"
    docker.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    for var in (*PLAN_VARS, "IMAGESPEC_INSECURE_REGISTRIES", "DOCKER_HOST"):
        monkeypatch.delenv(var, raising=False)
    yield
    ImageBuildEngine._REGISTRY.clear()
    ImageBuildEngine._REGISTRY.update(registered)
    _REAL_NAMES.clear()
    _REAL_NAMES.update(real_names)


@pytest.fixture
def name() -> str:
    """A repository name no other test uses (the registry lives for the whole session)."""
    return f"plan-{uuid.uuid4().hex[:10]}"


def closed_host() -> str:
    """A loopback address where nothing listens."""
    return f"127.0.0.1:{free_port()}"


def register(name: str = "rec", priority: int = 5, **kwargs: Any) -> RecordingBuilder:
    builder = RecordingBuilder(**kwargs)
    ImageBuildEngine.register(name, builder, priority=priority)
    return builder


def answer_500(p: FaultProxy, req: RawRequest, n: int, w: Any, s: Any) -> bool:
    send(w, 500, {}, b"internal error", head=req.method == "HEAD")
    return True


# ---------------------------------------------------------------------------- ImageBuildEngine


def test_register_get_remove() -> None:
    b = RecordingBuilder()
    ImageBuildEngine.register("mine", b, priority=7)
    assert ImageBuildEngine.get("mine") is b
    assert ImageBuildEngine.get_registry()["mine"] == (b, 7)
    ImageBuildEngine.register("mine", b)  # replaces, default priority 5
    assert ImageBuildEngine.get_registry()["mine"] == (b, 5)
    ImageBuildEngine.register("other", RecordingBuilder())
    ImageBuildEngine.remove("mine")
    assert "mine" not in ImageBuildEngine.get_registry()
    ImageBuildEngine.remove("mine")  # no error the second time
    with pytest.raises(BuildError, match=r"'mine' is not registered \(registered: other\)"):
        ImageBuildEngine.get("mine")


@pytest.mark.parametrize("bad", [object(), None, "builder", type("NoBuild", (), {"build_image": 3})()])
def test_register_refuses_what_cannot_build(bad: object) -> None:
    with pytest.raises(BuildError, match="has no build_image"):
        ImageBuildEngine.register("bad", bad)
    assert "bad" not in ImageBuildEngine.get_registry()


@pytest.mark.parametrize("priority", ["high", 1.5, True, None])
def test_register_refuses_a_bad_priority(priority: object) -> None:
    with pytest.raises(BuildError, match="priority of 'bad' must be an int"):
        ImageBuildEngine.register("bad", RecordingBuilder(), priority=priority)  # type: ignore[arg-type]
    with pytest.raises(BuildError, match="builder_type must be a non-empty string"):
        ImageBuildEngine.register("", RecordingBuilder())


def test_highest_priority_wins_and_a_spec_builder_wins_over_priority(registry: Registry, name: str) -> None:
    low = register("low", priority=1)
    high = register("high", priority=9)
    middle = register("middle", priority=4)
    auto = ImageSpec(name=name, registry=registry.host, packages=["a"])
    named = ImageSpec(name=name, registry=registry.host, packages=["b"], builder="low")
    report = build([auto, named])
    assert high.images == [auto.image_name()]
    assert low.images == [named.image_name()]
    assert middle.calls == []
    assert (report[auto].builder, report[named].builder) == ("high", "low")


def test_equal_priorities_pick_the_first_registered(registry: Registry, name: str) -> None:
    first = register("first", priority=3)
    second = register("second", priority=3)
    build(ImageSpec(name=name, registry=registry.host))
    assert len(first.calls) == 1 and second.calls == []


def test_unknown_builder_name_lists_the_registered_ones(registry: Registry, name: str) -> None:
    register("alpha")
    register("beta")
    spec = ImageSpec(name=name, registry=registry.host, builder="nope")
    with pytest.raises(BuildError) as err:
        build(spec)
    [failed] = err.value.report.failed  # type: ignore[attr-defined]
    assert failed.reason is not None
    assert '"nope" is not registered (registered: alpha, beta)' in failed.reason
    assert "nope" in str(err.value)
    # The builder= argument is checked before anything runs.
    with pytest.raises(BuildError, match=r"'gamma' is not registered \(registered: alpha, beta\)"):
        build(ImageSpec(name=name, registry=registry.host), builder="gamma")


@pytest.mark.parametrize(
    "options", [{"builder": "low"}, {"force_push": True}, {"builder": "low", "force_push": True}]
)
def test_report_is_indexed_by_the_specs_given_when_options_change_them(
    registry: Registry, name: str, options: dict[str, Any]
) -> None:
    low = register("low", priority=1)
    register("high", priority=9)
    spec = ImageSpec(name=name, registry=registry.host)
    report = build(spec, **options)
    assert report[spec].outcome == "built" and report[spec].specs == (spec,)
    assert report[spec].builder == options.get("builder", "high")
    # flytekit's entry point takes the same options.
    assert ImageBuildEngine.build(spec, **options) == spec.image_name()
    builds = 2 if options.get("force_push") else 1  # else present the second time
    assert len(low.calls) == (builds if "builder" in options else 0)


def test_no_builder_registered(registry: Registry, name: str) -> None:
    with pytest.raises(BuildError, match="no builder is registered"):
        build(ImageSpec(name=name, registry=registry.host))


def test_flytekit_build_returns_the_name(registry: Registry, name: str) -> None:
    b = register()
    spec = ImageSpec(name=name, registry=registry.host)
    out = ImageBuildEngine.build(spec)
    assert out == spec.image_name() and b.images == [out]
    # Once per process, as flytekit's (lru_cache): the same name, nothing asked or built.
    assert ImageBuildEngine.build(spec) == out
    # The plan asks again: present now, its name comes back pinned by the registry's digest.
    digest = manifest_digest(out)
    assert digest is not None and build(spec)[spec].name == f"{out}@{digest}"
    assert len(b.calls) == 1


# ------------------------------------------------------------------------------ what is built


def test_base_spec_is_built_first(registry: Registry, name: str) -> None:
    b = register(sleep=0.05)
    base = ImageSpec(name=f"{name}-base", registry=registry.host, packages=["numpy"])
    app = ImageSpec(name=name, registry=registry.host, base_image=base, packages=["pandas"])
    report = build(app, max_parallel=4)
    assert b.images == [base.image_name(), app.image_name()]
    assert b.calls[1].base_present is True
    assert b.calls[1].start >= b.calls[0].end
    assert [r.image for r in report] == [base.image_name(), app.image_name()]
    assert [r.outcome for r in report] == ["built", "built"]
    assert report.results[0].specs == ()  # only built for the app
    assert report[app].specs == (app,)


def test_dependant_build_sees_the_real_name_of_its_base(registry: Registry, name: str) -> None:
    b = register(result="pinned")
    base = ImageSpec(name=f"{name}-base", registry=registry.host)
    app = ImageSpec(name=name, registry=registry.host, base_image=base)
    report = build(app)
    base_name = report.results[0].name
    assert base_name == f"{base.image_name().split('@')[0]}@{manifest_digest(base_name)}"
    assert b.calls[1].base_name == base_name == base.image_name()
    assert app.image_name() == report[app].name != report[app].image


def test_identical_specs_are_built_once(registry: Registry, name: str) -> None:
    b = register()
    one = ImageSpec(name=name, registry=registry.host, packages=["a"])
    two = ImageSpec(name=name, registry=registry.host, packages=["a"])
    assert one is not two
    # The same base given twice too: once as a base, once on its own.
    base = ImageSpec(name=f"{name}-base", registry=registry.host)
    app = ImageSpec(name=f"{name}-app", registry=registry.host, base_image=base)
    report = build([one, two, app, ImageSpec(name=f"{name}-base", registry=registry.host)])
    assert sorted(b.images) == sorted([one.image_name(), base.image_name(), app.image_name()])
    assert len(report) == 3
    assert report[one] is report[two]
    assert report[one].specs == (one, two)


def test_what_exists_is_skipped(registry: Registry, name: str) -> None:
    b = register()
    specs = [ImageSpec(name=name, registry=registry.host, packages=[p]) for p in ("a", "b")]
    first = build(specs)
    assert [r.outcome for r in first] == ["built", "built"]
    events: list[BuildEvent] = []
    second = build(specs, on_event=events.append)
    assert [r.outcome for r in second] == ["exists", "exists"]
    assert len(b.calls) == 2
    for r in second:
        assert r.builder is None and r.seconds == 0
        assert r.name == f"{r.image}@{manifest_digest(r.image)}"
    assert [e.kind for e in events] == ["checking", "exists", "exists"]
    assert events[0].count == 2


def test_an_image_pushed_by_someone_else_is_not_built(registry: Registry, name: str) -> None:
    b = register()
    spec = ImageSpec(name=name, registry=registry.host)
    digest = push_tiny(spec.image_name(), "pushed by hand\n")
    report = build(spec)
    assert report[spec].outcome == "exists" and b.calls == []
    assert report[spec].name == f"{report[spec].image}@{digest}"
    assert spec.image_name() == report[spec].name


@pytest.mark.parametrize("how", ["method", "argument"])
def test_force_push_rebuilds(registry: Registry, name: str, how: str) -> None:
    b = register()
    spec = ImageSpec(name=name, registry=registry.host)
    build(spec)
    assert build(spec)[spec].outcome == "exists"  # spec.image_name() is pinned by digest now
    assert "@sha256:" in spec.image_name()
    report = build(spec.force_push()) if how == "method" else build(spec, force_push=True)
    assert len(b.calls) == 2
    [r] = report
    assert r.outcome == "built"
    # The builder is asked for the tag, not for the pinned name of the previous answer, and the
    # old digest is forgotten.
    assert b.calls[1].image == r.image
    assert spec.image_name() == r.name == r.image


@pytest.mark.parametrize("var", ["FLYTE_FORCE_PUSH_IMAGE_SPEC", "IMAGESPEC_FORCE_PUSH_IMAGE_SPEC"])
def test_force_push_env_is_read_when_the_spec_is_made(
    registry: Registry, name: str, var: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = register()
    before = ImageSpec(name=name, registry=registry.host)
    build(before)
    monkeypatch.setenv(var, "true")
    assert build(before)[before].outcome == "exists"  # made before the variable was set
    after = ImageSpec(name=name, registry=registry.host)
    assert after.is_force_push
    assert build(after)[after].outcome == "built"
    assert len(b.calls) == 2


def test_force_push_does_not_ask_the_registry() -> None:
    b = register(push=False)
    spec = ImageSpec(name="anything", registry=closed_host()).force_push()
    events: list[BuildEvent] = []
    report = build(spec, on_event=events.append)
    assert report[spec].outcome == "built" and len(b.calls) == 1
    assert [e.kind for e in events] == ["building", "done"]


# --------------------------------------------------------------------- existence unknown


def test_unreachable_registry_fails_closed() -> None:
    b = register()
    host = closed_host()
    spec = ImageSpec(name="app", registry=host)
    with pytest.raises(BuildError) as err:
        build(spec)
    report = err.value.report  # type: ignore[attr-defined]
    [r] = report.failed
    assert r.outcome == "failed" and r.image == spec.image_name()
    assert r.reason is not None
    assert "cannot tell whether it exists" in r.reason and "refused the connection" in r.reason
    assert f"{spec.image_name()}: {r.reason}" in str(err.value)
    assert b.calls == []


def test_registry_answering_500_fails_closed(proxy: FaultProxy, name: str) -> None:
    b = register()
    proxy.reset(answer_500)
    spec = ImageSpec(name=name, registry=proxy.host)
    report = build(spec, check=False)
    r = report[spec]
    assert r.outcome == "failed" and not report.ok
    assert r.reason is not None and "HTTP 500" in r.reason
    assert b.calls == []
    assert proxy.requests_to(f"/v2/{name}/manifests/")


def test_assume_present_when_unknown() -> None:
    b = register()
    spec = ImageSpec(name="app", registry=closed_host())
    events: list[BuildEvent] = []
    report = build(spec, assume_present=True, on_event=events.append)
    r = report[spec]
    assert r.outcome == "assumed" and report.ok
    assert r.reason is not None and "assumed present" in r.reason
    assert b.calls == []
    assert [e.kind for e in events] == ["checking", "unknown", "warning"]
    assert events[2].message is not None and "assuming it is present" in events[2].message


def test_same_image_asked_plain_and_forced_is_built_once(registry: Registry, name: str) -> None:
    b = register()
    spec = ImageSpec(name=name, registry=registry.host)
    build(spec)
    report = build([spec, ImageSpec(name=name, registry=registry.host).force_push()])
    assert len(report) == 1 and report[spec].outcome == "built"
    assert len(b.calls) == 2


@pytest.mark.parametrize(
    ("env", "explicit", "outcome"),
    [
        ({"FLYTE_IMG_FAST_FAIL": "true"}, True, "failed"),
        ({"FLYTE_IMG_FAST_FAIL": "true", "IMAGESPEC_ASSUME_PRESENT": "1"}, None, "failed"),
        ({"FLYTE_IMG_FAST_FAIL": "false"}, None, "assumed"),
        ({"FLYTE_IMG_FAST_FAIL": "false"}, False, "failed"),
        ({"IMAGESPEC_ASSUME_PRESENT": "1"}, None, "assumed"),
        ({"IMAGESPEC_ASSUME_PRESENT": "1"}, False, "failed"),
        ({"IMAGESPEC_ASSUME_PRESENT": "0", "FLYTE_IMG_FAST_FAIL": "false"}, None, "failed"),
        ({}, None, "failed"),
    ],
)
def test_assume_present_settings(
    env: dict[str, str], explicit: bool | None, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spec = ImageSpec(name="app", registry=closed_host())
    assert build(spec, assume_present=explicit, check=False)[spec].outcome == outcome


# --------------------------------------------------------------------------- failures


def test_failed_base_fails_its_dependants_only(registry: Registry, name: str) -> None:
    good = register("good", sleep=0.05)
    bad = register("bad", fail=RuntimeError("no space left"))
    base = ImageSpec(name=f"{name}-base", registry=registry.host, builder="bad")
    app = ImageSpec(name=f"{name}-app", registry=registry.host, base_image=base, builder="good")
    other = ImageSpec(name=f"{name}-other", registry=registry.host, builder="good")
    events: list[BuildEvent] = []
    with pytest.raises(BuildError) as err:
        build([app, other], on_event=events.append)
    report = err.value.report  # type: ignore[attr-defined]
    assert len(bad.calls) == 1 and good.images == [other.image_name()]
    rb, ra, ro = report.results
    assert rb.image == base.image_name()
    assert (rb.outcome, rb.builder) == ("failed", "bad")
    assert rb.reason == 'builder "bad": build_image raised RuntimeError: no space left'
    assert ra.outcome == "failed" and ra.reason == f"its base image {base.image_name()} failed"
    assert (ro.outcome, ro.builder) == ("built", "good") and ro.seconds >= 0.05
    assert "2 of 3 images failed" in str(err.value)
    assert ("failed", app.image_name()) in [(e.kind, e.image) for e in events]
    assert manifest_digest(other.image_name()) is not None
    assert manifest_digest(app.image_name()) is None


def test_build_image_raising_is_one_line(
    registry: Registry, name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    register("x", fail=ValueError("bad requirements"))
    spec = ImageSpec(name=name, registry=registry.host)
    report = build(spec, check=False)
    assert report[spec].reason == 'builder "x": build_image raised ValueError: bad requirements'
    out, errout = capfd.readouterr()
    assert "Traceback" not in out + errout


@pytest.mark.parametrize("result", [42, b"bytes", ["a"]])
def test_build_image_returning_a_non_str(registry: Registry, name: str, result: object) -> None:
    register("x", result=result)
    spec = ImageSpec(name=name, registry=registry.host)
    report = build(spec, check=False)
    assert report[spec].outcome == "failed"
    assert report[spec].reason == 'builder "x": build_image must return the image\'s name (a str) or None'


def test_build_image_returning_none_means_the_tag_name(registry: Registry, name: str) -> None:
    register(result=None)
    spec = ImageSpec(name=name, registry=registry.host)
    report = build(spec)
    assert report[spec].outcome == "built" and report[spec].name == report[spec].image == spec.image_name()


def test_the_real_name_returned_is_the_image_name(registry: Registry, name: str) -> None:
    register(result="pinned")
    spec = ImageSpec(name=name, registry=registry.host)
    tag_name = spec.image_name()
    report = build(spec)
    digest = manifest_digest(tag_name)
    assert digest is not None
    assert report[spec].name == f"{tag_name}@{digest}"
    assert report[spec].image == tag_name
    assert spec.image_name() == f"{tag_name}@{digest}"
    # Another object with the same fields names the same image.
    assert ImageSpec(name=name, registry=registry.host).image_name() == f"{tag_name}@{digest}"


def test_report_has_timings_and_builders(registry: Registry, name: str) -> None:
    register("slow", sleep=0.2)
    spec = ImageSpec(name=name, registry=registry.host)
    report = build(spec)
    r = report[spec]
    assert r.outcome == "built" and r.builder == "slow"
    assert r.seconds >= 0.2
    assert re.search(r"  \(slow, \d+\.\d s\)$", report.summary())


# --------------------------------------------------------------------------- parallelism


def test_independent_builds_overlap(registry: Registry, name: str) -> None:
    b = register(sleep=0.4)
    specs = [ImageSpec(name=f"{name}-{i}", registry=registry.host) for i in range(2)]
    report = build(specs, max_parallel=2)
    assert report.ok and len(b.calls) == 2
    assert overlapped(b.calls)


@pytest.mark.parametrize("how", ["argument", "env"])
def test_max_parallel_one_never_overlaps(
    registry: Registry, name: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = register(sleep=0.1)
    specs = [ImageSpec(name=f"{name}-{i}", registry=registry.host) for i in range(3)]
    if how == "env":
        monkeypatch.setenv("IMAGESPEC_MAX_PARALLEL", "1")
        report = build(specs)
    else:
        report = build(specs, max_parallel=1)
    assert report.ok and len(b.calls) == 3
    assert not overlapped(b.calls)


@pytest.mark.parametrize("value", ["two", "1.5", "0", "-3", " "])
def test_bad_max_parallel_env(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b = register()
    monkeypatch.setenv("IMAGESPEC_MAX_PARALLEL", value)
    if value.strip():
        message = f"IMAGESPEC_MAX_PARALLEL must be a whole number of at least 1, not {value!r}"
        with pytest.raises(BuildError, match=re.escape(message)):
            build(ImageSpec(name="app", registry=closed_host()))
        assert b.calls == []
    else:  # blank is unset
        spec = ImageSpec(name="app", registry=closed_host())
        assert build(spec, check=False)[spec].outcome == "failed"


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2"])
def test_bad_max_parallel_argument(value: object) -> None:
    register()
    with pytest.raises(BuildError, match="max_parallel must be a whole number of at least 1"):
        build(ImageSpec(name="app", registry=closed_host()), max_parallel=value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- should_build


class Decides(RecordingBuilder):
    def __init__(self, answer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answer = answer
        self.asked: list[str] = []

    def should_build(self, spec: ImageSpec) -> bool:
        self.asked.append(spec.image_name())
        if isinstance(self.answer, BaseException):
            raise self.answer
        return bool(self.answer)


def test_should_build_false_skips_without_asking_the_registry() -> None:
    b = Decides(False)
    ImageBuildEngine.register("decides", b)
    spec = ImageSpec(name="app", registry=closed_host())  # any registry request would fail
    events: list[BuildEvent] = []
    report = build(spec, on_event=events.append)
    r = report[spec]
    assert r.outcome == "skipped" and report.ok
    assert r.reason == "its builder's should_build said no"
    assert b.asked == [spec.image_name()] and b.calls == []
    assert events == []


def test_should_build_true_builds_what_exists(registry: Registry, name: str) -> None:
    plain = register("plain", priority=1)
    spec = ImageSpec(name=name, registry=registry.host)
    build(spec)
    assert len(plain.calls) == 1
    b = Decides(True)
    ImageBuildEngine.register("decides", b, priority=9)
    report = build(spec)
    assert report[spec].outcome == "built" and report[spec].builder == "decides"
    assert len(b.calls) == 1


def test_should_build_raising_fails_the_image() -> None:
    b = Decides(KeyError("missing-config"))
    ImageBuildEngine.register("decides", b)
    spec = ImageSpec(name="app", registry=closed_host())
    with pytest.raises(BuildError) as err:
        build(spec)
    [r] = err.value.report.failed  # type: ignore[attr-defined]
    assert r.reason is not None
    assert "should_build" in r.reason and "KeyError" in r.reason and "missing-config" in r.reason
    assert b.calls == []


def test_should_build_is_not_asked_for_a_forced_image() -> None:
    b = Decides(False, push=False)
    ImageBuildEngine.register("decides", b)
    spec = ImageSpec(name="app", registry=closed_host()).force_push()
    assert build(spec)[spec].outcome == "built"
    assert b.asked == [] and len(b.calls) == 1


def test_a_spec_without_registry_decided_by_its_builder() -> None:
    """Without a registry the local engine would be asked; a builder's should_build replaces that."""
    b = Decides(True)
    ImageBuildEngine.register("decides", b)
    spec = ImageSpec(name="local-only")
    report = build(spec)
    assert report[spec].outcome == "built"
    assert report[spec].name == spec.image_name() and "/" not in spec.image_name()
    assert b.images == [spec.image_name()]


# ------------------------------------------------------------------------------------ events


def test_events_of_a_build(registry: Registry, name: str) -> None:
    register("rec")
    spec = ImageSpec(name=name, registry=registry.host)
    events: list[BuildEvent] = []
    build(spec, on_event=events.append)
    image = spec.image_name()
    assert [(e.kind, e.image) for e in events] == [
        ("checking", None),
        ("missing", image),
        ("building", image),
        ("done", image),
    ]
    assert events[0].count == 1
    assert events[1].message is not None and "manifest unknown" in events[1].message
    assert events[2].message == "rec"
    assert events[3].message == image and events[3].seconds is not None and events[3].seconds >= 0


def test_a_raising_callback_does_not_break_the_build(
    registry: Registry, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = register()
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    def callback(e: BuildEvent) -> None:
        raise RuntimeError(f"callback broke on {e.kind}")

    spec = ImageSpec(name=name, registry=registry.host)
    report = build(spec, on_event=callback)
    assert report[spec].outcome == "built" and len(b.calls) == 1
    # Each failure is reported to sys.unraisablehook, not swallowed.
    assert [str(u.exc_value) for u in seen] == [
        "callback broke on checking",
        "callback broke on missing",
        "callback broke on building",
        "callback broke on done",
    ]


# -------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("items", "message"), [([1], "item 0 is a int"), (["a", "b"], "item 0 is a str")])
def test_build_refuses_what_is_not_a_spec(items: list[Any], message: str) -> None:
    register()
    with pytest.raises(BuildError, match=message):
        build(items)


def test_build_names_the_bad_item(registry: Registry) -> None:
    register()
    with pytest.raises(BuildError, match="item 1 is a dict"):
        build([ImageSpec(name="ok", registry=registry.host), {"name": "x"}])  # type: ignore[list-item]


def test_empty_plan_is_fine() -> None:
    register()
    report = build([])
    assert report.ok and len(report) == 0


# -------------------------------------------------------------------------- two processes

SCRIPT = """
import json, sys, time
from pathlib import Path

sys.path.insert(0, {tests!r})
from plan_helpers import push_tiny

from imagespec import ImageBuildEngine, ImageSpec, build

work = Path({work!r})
me = sys.argv[1]


class Slow:
    def build_image(self, spec):
        with open(work / "calls.log", "a") as f:
            f.write(me + " " + spec.image_name() + "\\n")
        time.sleep(1.0)
        push_tiny(spec.image_name(), "built by " + me + "\\n")
        return spec.image_name()


for name in list(ImageBuildEngine.get_registry()):
    ImageBuildEngine.remove(name)
ImageBuildEngine.register("slow", Slow())
spec = ImageSpec(name={name!r}, registry={host!r})
(work / ("ready-" + me)).touch()
while not (work / "go").exists():
    time.sleep(0.005)
events = []
report = build(spec, lock_dir=work / "locks", on_event=lambda e: events.append(e.kind))
r = report[spec]
print(json.dumps({{"outcome": r.outcome, "reason": r.reason, "image": r.image, "events": events}}))
"""


def test_two_processes_build_once(registry: Registry, name: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "plan_script.py"
    script.write_text(SCRIPT.format(tests=str(HERE), work=str(work), name=name, host=registry.host))
    env = {**os.environ, "IMAGESPEC_CACHE_DIR": str(tmp_path / "cache")}
    for var in PLAN_VARS:
        env.pop(var, None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), me],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in ("a", "b")
    ]
    try:
        deadline = time.monotonic() + 20
        while not all((work / f"ready-{me}").exists() for me in ("a", "b")):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "the scripts did not start"
            time.sleep(0.01)
        (work / "go").touch()
        outs = [p.communicate(timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    calls = (work / "calls.log").read_text().splitlines()
    assert len(calls) == 1, calls
    assert sorted(r["outcome"] for r in results) == ["built", "exists"], results
    image = results[0]["image"]
    assert calls[0].split(" ", 1)[1] == image
    assert manifest_digest(image) is not None
    # Whoever did not build either saw it present at once or waited for the lock and checked again.
    waiter = next(r for r in results if r["outcome"] == "exists")
    assert waiter["events"] in (
        ["checking", "exists"],
        ["checking", "missing", "warning", "exists"],
    ), waiter
    if "warning" in waiter["events"]:
        assert waiter["reason"] == "built by another process meanwhile"
    # Lock files only in the lock folder given.
    locks = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.lock"))
    assert locks and all(p.parts[:2] == ("work", "locks") for p in locks), locks
    assert not (tmp_path / "cache" / "locks").exists()
