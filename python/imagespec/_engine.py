"""The build plan: every image once, bases first, existence checked in one batch, only what is
missing built, by the builders registered in ``ImageBuildEngine`` (``_builders.py``).

>>> from imagespec import build
>>> report = build([])
>>> len(report), report.ok
(0, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from imagespec import _core
from imagespec._builders import (
    BuilderNotRegisteredError,
    EngineBuilder,
    ImageBuildEngine,
    ImageSpecBuilder,
    NoOpBaseImageError,
    NoOpBuilder,
)
from imagespec._core import BuildError
from imagespec._environ import FAST_FAIL_VAR, flytekit_flag, own_flag
from imagespec._runtime import wheel_for_build
from imagespec._spec import _REAL_NAMES, ImageSpec

__all__ = [
    "BuildEvent",
    "BuildReport",
    "BuilderNotRegisteredError",
    "EngineBuilder",
    "ImageBuildEngine",
    "ImageResult",
    "ImageSpecBuilder",
    "NoOpBaseImageError",
    "NoOpBuilder",
    "build",
]

Outcome = Literal["exists", "skipped", "assumed", "built", "failed"]
EventKind = Literal[
    "checking", "exists", "missing", "unknown", "building", "step", "pushing", "done", "failed", "warning"
]


@dataclass(frozen=True)
class BuildEvent:
    """Progress of a plan: ``kind`` is checking, exists, missing, unknown, building, step, pushing,
    done, failed or warning; ``message`` is the step, the reason or the built name."""

    kind: EventKind
    image: str | None
    message: str | None = None
    seconds: float | None = None
    count: int | None = None


@dataclass(frozen=True)
class ImageResult:
    """What happened to one image: ``outcome`` is exists, skipped, assumed, built or failed."""

    image: str
    """The name the tag scheme gives."""
    name: str
    """The name to run it by (pinned by digest when known)."""
    id: str
    outcome: Outcome
    builder: str | None
    reason: str | None
    seconds: float
    specs: tuple[ImageSpec, ...] = field(repr=False)
    """The specs given to ``build`` that are this image (empty for a base only built for them)."""

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


@dataclass(frozen=True)
class BuildReport:
    """Every image of a plan, bases first."""

    results: tuple[ImageResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[ImageResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def built(self) -> tuple[ImageResult, ...]:
        return tuple(r for r in self.results if r.outcome == "built")

    def __iter__(self) -> Iterator[ImageResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, spec: ImageSpec) -> ImageResult:
        for r in self.results:
            if any(s is spec for s in r.specs):
                return r
        for r in self.results:
            if spec in r.specs:
                return r
        raise KeyError(repr(spec))

    def summary(self) -> str:
        lines = []
        for r in self.results:
            line = f"{r.outcome:8} {r.name}"
            if r.outcome == "built":
                line += f"  ({r.builder}, {r.seconds:.1f} s)"
            if r.reason:
                line += f"\n         {r.reason}"
            lines.append(line)
        return "\n".join(lines)


def _assume_present(explicit: bool | None) -> bool:
    """FLYTE_IMG_FAST_FAIL keeps flytekit's meaning: true fails on an unknown answer whatever else
    says; false (explicitly) assumes present, as flytekit does. Unset: fail closed."""
    fast_fail = flytekit_flag(FAST_FAIL_VAR)
    if fast_fail is True:
        return False
    if explicit is not None:
        return explicit
    mine = own_flag("IMAGESPEC_ASSUME_PRESENT")
    if mine is not None:
        return mine
    return fast_fail is False


def _engines(value: str | Sequence[str] | None) -> str | None:
    """The engine pool: as given, else ``$IMAGESPEC_ENGINES``; None for none."""
    if value is None:
        value = os.environ.get("IMAGESPEC_ENGINES", "")
    text = value if isinstance(value, str) else ",".join(value)
    return text.strip() or None


def _max_parallel(value: int | None) -> int:
    if value is None:
        text = os.environ.get("IMAGESPEC_MAX_PARALLEL", "").strip()
        if not text:
            return 2
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise BuildError(f"IMAGESPEC_MAX_PARALLEL must be a whole number of at least 1, not {text!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BuildError(f"max_parallel must be a whole number of at least 1, not {value!r}")
    return value


def _flytekit_ids(ids: Mapping[ImageSpec, str] | None) -> dict[str, str] | None:
    if not ids:
        return None
    from imagespec._build import flytekit_ids_by_image

    return flytekit_ids_by_image(ids)


def _named(specs: Iterable[ImageSpec], builder: str | None) -> set[str]:
    """The builder names a plan's specs (and their bases) ask for."""
    names = {builder} if builder else set()
    for s in specs:
        base: object = s
        while isinstance(base, ImageSpec):
            if base.builder:
                names.add(base.builder)
            base = base.base_image
    return names


def _plan_builders(specs: list[ImageSpec], builder: str | None) -> list[tuple[str, int, object]]:
    """The registry as the plan takes it: a built-in engine by its name (run in Rust), any other
    builder as the Python object, whose ``should_build`` (if any) then replaces the registry check.

    The default noop builder goes as the Rust noop unless the plan uses it: the plan asks every
    image's builder first whenever a Python builder is registered, which costs engine probes."""
    named = _named(specs, builder)
    out: list[tuple[str, int, object]] = []
    for name, (obj, priority) in ImageBuildEngine._REGISTRY.items():
        target: object = obj
        if isinstance(obj, EngineBuilder) and (
            obj._runs_in_rust() or (type(obj) is NoOpBuilder and name == "noop" and name not in named)
        ):
            target = obj.engine
        out.append((name, priority, target))
    if builder is not None:
        ImageBuildEngine.get(builder)
    return out


def build(
    specs: ImageSpec | Iterable[ImageSpec],
    *,
    builder: str | None = None,
    force_push: bool = False,
    max_parallel: int | None = None,
    assume_present: bool | None = None,
    no_cache: bool = False,
    on_event: Callable[[BuildEvent], object] | None = None,
    imagespec_wheel: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    check: bool = True,
    check_timeout: float = 10.0,
    lock_dir: str | os.PathLike[str] | None = None,
    flytekit_ids: Mapping[ImageSpec, str] | None = None,
    engines: str | Sequence[str] | None = None,
) -> BuildReport:
    """Builds every image of ``specs`` that is missing, in one plan.

    Base images given as specs are built first; the same image asked twice is built once;
    existence is checked for all of them in one batch; independent builds run in parallel (at most
    ``max_parallel``, default 2 or ``$IMAGESPEC_MAX_PARALLEL``). An image whose existence cannot be
    told fails with the reason unless ``assume_present`` (or ``IMAGESPEC_ASSUME_PRESENT=1``, or
    ``FLYTE_IMG_FAST_FAIL=false``) says to assume it is there. ``builder`` overrides the specs' own
    choice; ``force_push`` rebuilds even what exists (as ``spec.force_push()`` does for one spec).

    ``engines`` (default ``$IMAGESPEC_ENGINES``) spreads the builds over a pool of engines, such as
    ``["docker@tcp://h1:2376?tls=/etc/h1", "docker@ssh://ci@h2", "native"]``: each image goes to
    one engine (images sharing dependencies to the same one), an engine that dies mid-plan hands
    its images to the others (docs/engines.md).

    ``ca_bundle`` (a PEM file, a folder of them, or PEM text; default ``$IMAGESPEC_CA_BUNDLE``)
    reaches the install steps as a build secret, for package indexes behind a TLS-intercepting
    proxy. ``imagespec_wheel`` (default ``$IMAGESPEC_WHEEL``) is the wheel of
    imagespec-build the images get (wheels for other platforms beside it serve those), or
    ``"index"`` for the index's release; by default an installation from the index gives the
    index's, any other its own wheel (docs/runtime.md).

    ``flytekit_ids`` maps specs (of ``specs`` or their bases) that are built for a flytekit spec
    to flytekit's id of it (``fk_spec.id``): their image's ``_F_IMG_ID`` then holds that id, so
    flytekit's ``is_container()`` is True inside, and ``IMAGESPEC_IMG_ID`` holds ours, so ours is
    too. The image's name and tag do not change. The flytekit bridge and ``imagespec build`` set
    it for flytekit tasks' images.

    Raises ``BuildError`` listing the failures when any image failed and ``check`` is true (the
    report is its ``report`` attribute); returns the report otherwise.

    >>> report = build(ImageSpec(registry="localhost:5000"), on_event=print)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    items = [specs] if isinstance(specs, ImageSpec) else list(specs)
    for i, s in enumerate(items):
        if not isinstance(s, ImageSpec):
            raise BuildError(f"build: item {i} is a {type(s).__name__}, not an ImageSpec")
    given = items  # the report is looked up by the caller's specs, not by the changed copies below
    if force_push:
        items = [s.force_push() for s in items]
    loaded: list[str] | None = None
    for s in items:
        loaded = loaded or s._loaded()
    handler = on_event

    def callback(e: _core.Event) -> None:
        kind, image, message = e.kind, e.image, e.message
        # An image being built again loses its old pinned name (its builder is asked for the tag);
        # one just built is known by its real name at once (its dependants' builds see that name).
        if image is not None:
            if kind == "building":
                _REAL_NAMES.pop(image, None)
            elif kind == "done" and message and message != image:
                _REAL_NAMES[image] = message
        if handler is not None:
            handler(BuildEvent(kind=kind, image=image, message=message, seconds=e.seconds, count=e.count))

    raw = _core.run_plan(
        [s._core for s in items],
        _plan_builders(items, builder),
        from_core=ImageSpec._from_core,
        on_event=callback,
        loaded_modules=loaded,
        imagespec_wheel=wheel_for_build(imagespec_wheel),
        ca_bundle=ca_bundle or os.environ.get("IMAGESPEC_CA_BUNDLE") or None,
        max_parallel=_max_parallel(max_parallel),
        assume_present=_assume_present(assume_present),
        no_cache=no_cache,
        lock_dir=lock_dir,
        check_timeout=check_timeout,
        builder=builder,
        flytekit_ids=_flytekit_ids(flytekit_ids),
        engines=_engines(engines),
    )
    results = []
    for r in raw:
        result = ImageResult(
            image=r.image,
            name=r.name,
            id=r.id,
            outcome=r.outcome,
            builder=r.builder,
            reason=r.reason,
            seconds=r.seconds,
            specs=tuple(given[i] for i in r.inputs),
        )
        if result.outcome in ("built", "exists"):
            if result.name != result.image:
                _REAL_NAMES[result.image] = result.name
            else:
                _REAL_NAMES.pop(result.image, None)
        results.append(result)
    report = BuildReport(tuple(results))
    if check and not report.ok:
        err = BuildError(
            f"{len(report.failed)} of {len(report)} images failed:\n"
            + "\n".join(f"  {r.image}: {r.reason}" for r in report.failed)
        )
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report
