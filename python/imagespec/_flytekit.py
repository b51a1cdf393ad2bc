"""The bridge into flytekit: conversions both ways and imagespec as a flytekit image builder.

flytekit is imported only here, and only when one of these is called: ``import imagespec`` never
imports it. See docs/flytekit.md.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from imagespec import _core
from imagespec._spec import _REAL_NAMES, ImageSpec

BUILDER_NAME = "imagespec"
"""The name imagespec registers under in flytekit's ``ImageBuildEngine``."""
BUILDER_OPTION = "imagespec_builder"
"""``builder_options`` key of a flytekit spec: which imagespec builder (docker, buildah, ...) builds it."""
ADD_FLYTEKIT_OPTION = "imagespec_add_flytekit"
"""``builder_options`` key of a flytekit spec: ``False`` builds it without adding flytekit."""
DEFAULT_PRIORITY = 0
"""Priority of the entry-point registration: only specs that name ``builder="imagespec"`` use it."""

# flytekit's own builder: a Dockerfile build, which imagespec's plan does with its best engine.
_FLYTEKIT_DEFAULT_BUILDER = "default"
_PACKAGE_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _import(module: str) -> Any:
    """A flytekit module, or ImportError saying how to install flytekit."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and not e.name.startswith("flytekit"):
            raise
        raise ImportError(
            "the flytekit bridge needs flytekit: pip install 'imagespec-build[flytekit]' (or flytekit>=1.10)"
        ) from e


def _fk_image_spec_module() -> Any:
    return _import("flytekit.image_spec.image_spec")


def _fk_fields(fk_class: Any) -> set[str]:
    """The fields the installed flytekit's ImageSpec has (older releases have fewer)."""
    return {f.name for f in dataclasses.fields(fk_class)}


def _flytekit_version() -> str:
    version = getattr(sys.modules.get("flytekit"), "__version__", None)
    if not isinstance(version, str) or not version:
        from importlib.metadata import version as dist_version

        version = dist_version("flytekit")
    return version


def flytekit_requirement() -> str:
    """``flytekit==<the running version>`` (plain ``flytekit`` for a development version), as
    flytekit's own builder adds it."""
    version = _flytekit_version()
    if not version or "dev" in version:
        return "flytekit"
    return f"flytekit=={version}"


def _is_flytekit(package: str) -> bool:
    m = _PACKAGE_NAME.match(package)
    return m is not None and m.group(1).lower().replace("_", "-") == "flytekit"


def with_flytekit(spec: ImageSpec) -> ImageSpec:
    """``spec`` as the flytekit bridge builds it: ``flytekit_requirement()`` added to ``packages``
    (and to a base spec's, by the base's own options), since flytekit runs the task in the image.
    Unchanged when a package already is flytekit or ``builder_options["imagespec_add_flytekit"]``
    is false."""
    changes: dict[str, Any] = {}
    base = spec.base_image
    if isinstance(base, ImageSpec):
        added = with_flytekit(base)
        if added is not base:
            changes["base_image"] = added
    wanted = (spec.builder_options or {}).get(ADD_FLYTEKIT_OPTION, True) is not False
    if wanted and not any(_is_flytekit(p) for p in spec.packages or ()):
        changes["packages"] = [*(spec.packages or ()), flytekit_requirement()]
    return spec.replace(**changes) if changes else spec


def bridged_id(spec: ImageSpec) -> str | None:
    """The id of ``with_flytekit(spec)``: what ``IMAGESPEC_IMG_ID`` holds in the image the bridge
    built for ``spec`` (``spec.is_container()`` reads it). None where flytekit is not installed."""
    try:
        return with_flytekit(spec).id
    except ImportError:  # PackageNotFoundError: no flytekit, so no image the bridge built
        return None


# --------------------------------------------------------------------------------- conversions


def to_flytekit(spec: ImageSpec) -> Any:
    """``spec`` as a ``flytekit.ImageSpec`` that imagespec builds (``builder="imagespec"``).

    Every set field is carried over with its value; a base spec is converted too. ``builder``
    becomes ``builder_options["imagespec_builder"]``. ``python_version`` and ``platform`` are
    passed as imagespec resolved them, so flytekit's defaults do not change them. Raises
    ``SpecError`` for a set field the installed flytekit does not have.
    """
    mod = _fk_image_spec_module()
    fk_class = mod.ImageSpec
    known = _fk_fields(fk_class)
    values = spec._core.to_dict()
    kwargs: dict[str, Any] = {}
    for field in _core.FIELDS:
        value: Any
        if field == "builder":
            continue
        if field == "base_image":
            base = spec.base_image
            value = to_flytekit(base) if isinstance(base, ImageSpec) else base
        elif field == "source_copy_mode":
            mode = spec.source_copy_mode
            value = None if mode is None else _fk_copy_mode(mode.name)
        elif field == "pip_secret_mounts":
            mounts = values.get(field)
            value = None if mounts is None else [(str(s), str(t)) for s, t in mounts]
        else:
            value = values.get(field)
        if value is None:
            continue
        kwargs[field] = value
    if spec.builder is not None:
        kwargs["builder_options"] = {**(kwargs.get("builder_options") or {}), BUILDER_OPTION: spec.builder}
    if kwargs.get("copy") and os.path.realpath(spec._core.copy_root) != os.path.realpath(os.getcwd()):
        raise _core.SpecError(
            f"copy: its paths are relative to {spec._core.copy_root}, but flytekit reads them relative to "
            f"the working directory ({os.getcwd()}); convert from {spec._core.copy_root}"
        )
    lacking = sorted(k for k in kwargs if k not in known)
    if lacking:
        raise _core.SpecError(
            f"{', '.join(lacking)}: set, but the installed flytekit ({_flytekit_version()}) has no such "
            "ImageSpec field; upgrade flytekit or leave the field unset"
        )
    try:
        fk_spec = fk_class(builder=BUILDER_NAME, **kwargs)
    except (TypeError, ValueError) as e:
        raise _core.SpecError(f"flytekit refused the converted spec: {e}") from e
    if spec.is_force_push:
        fk_spec = fk_spec.force_push()
    return fk_spec


def _fk_copy_mode(name: str) -> Any:
    return _import("flytekit.constants").CopyFileDetection[name]


def from_flytekit(fk_spec: Any, *, add_flytekit: bool = False) -> ImageSpec:
    """A ``flytekit.ImageSpec`` as an imagespec ``ImageSpec``; the inverse of ``to_flytekit``.

    ``builder="imagespec"`` becomes ``builder_options["imagespec_builder"]`` (or none: the plan's
    choice), flytekit's ``"default"`` builder becomes none, other builder names are kept.
    ``add_flytekit`` adds ``flytekit==<running version>`` to
    ``packages`` unless a package already is flytekit or ``builder_options["imagespec_add_flytekit"]``
    is false: what the flytekit builder does, since flytekit runs the task in the image.
    """
    mod = _fk_image_spec_module()
    if not isinstance(fk_spec, mod.ImageSpec):
        raise TypeError(f"from_flytekit takes a flytekit.ImageSpec, not {type(fk_spec).__name__}")
    ours = set(_core.FIELDS)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(fk_spec):
        value = getattr(fk_spec, f.name)
        if value is None:
            continue
        if f.name not in ours:
            raise _core.SpecError(
                f"{f.name}: a flytekit ImageSpec field imagespec does not support; unset it"
            )
        fields[f.name] = value

    options = dict(fields.pop("builder_options", None) or {})
    builder = fields.pop("builder", None)
    if builder == BUILDER_NAME:
        builder = options.pop(BUILDER_OPTION, None)
    elif builder == _FLYTEKIT_DEFAULT_BUILDER:
        builder = None
    if builder is not None:
        fields["builder"] = builder
    if options:
        fields["builder_options"] = options

    base = fields.get("base_image")
    if isinstance(base, mod.ImageSpec):
        fields["base_image"] = from_flytekit(base)

    mode = fields.get("source_copy_mode")
    if mode is not None:
        fields["source_copy_mode"] = getattr(mode, "name", mode)

    if "pip_secret_mounts" in fields:
        fields["pip_secret_mounts"] = [tuple(m) for m in fields["pip_secret_mounts"]]

    spec = ImageSpec(**fields)
    if getattr(fk_spec, "_is_force_push", False) and not spec.is_force_push:
        spec = spec.force_push()
    return with_flytekit(spec) if add_flytekit else spec


# ------------------------------------------------------------------------------------- builder


def _flytekit_name(fk_spec: Any) -> str:
    """The name flytekit gives ``fk_spec`` before any builder reported one (its map's key)."""
    name = f"{fk_spec.name}:{fk_spec.tag}"
    return f"{fk_spec.registry}/{name}" if fk_spec.registry else name


def _say(message: str, color: str) -> None:
    """A line like flytekit's own builder messages."""
    try:
        click: Any = importlib.import_module("click")
    except ImportError:  # pragma: no cover - flytekit depends on click
        print(message)
    else:
        click.secho(message, fg=color)


def should_build(fk_spec: Any) -> bool:
    """Our registry check for a flytekit spec (fail closed, as ``imagespec.build`` decides).

    ``True`` when the image is missing or force-pushed. ``False`` when it exists; then flytekit's
    name map points at it (pinned by digest), so the task template names the image that is there.
    An unknown answer (registry unreachable, auth refused) raises ``BuildError`` with the reason,
    unless assuming present is opted in (``IMAGESPEC_ASSUME_PRESENT=1`` or
    ``FLYTE_IMG_FAST_FAIL=false``): then ``False``, with a warning.
    """
    from imagespec._engine import _assume_present
    from imagespec._registry import check

    spec = from_flytekit(fk_spec, add_flytekit=True)
    key = _flytekit_name(fk_spec)
    name = spec.image_name()
    if spec.is_force_push:
        _say(f"Overwriting existing image {name} (force push).", "blue")
        return True
    status = check([spec])[0]
    if status.status == "missing":
        _say(f"Image {name} not found. building...", "blue")
        return True
    if status.status == "exists":
        real = f"{name}@{status.digest}" if status.digest and spec.registry and "@" not in name else name
        if real != name:
            _REAL_NAMES[name] = real
        _fk_image_spec_module().ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME[key] = real
        _say(f"Image {name} found. Skip building.", "blue")
        return False
    if _assume_present(None):
        warnings.warn(
            f"cannot tell whether {name} exists ({status.reason}); assuming it does, as asked",
            stacklevel=2,
        )
        _fk_image_spec_module().ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME[key] = name
        return False
    raise _core.BuildError(
        f"cannot tell whether {name} exists: {status.reason}; nothing is built blind. "
        "Fix the registry access, or set IMAGESPEC_ASSUME_PRESENT=1 (or FLYTE_IMG_FAST_FAIL=false) "
        "to assume the image is there"
    )


def build_image(fk_spec: Any) -> str:
    """Builds (and pushes) a flytekit spec with imagespec's plan; returns the name to run it by.

    The image's ``_F_IMG_ID`` is flytekit's id of ``fk_spec`` and its ``IMAGESPEC_IMG_ID`` ours, so
    inside it both ``fk_spec.is_container()`` and ``from_flytekit(fk_spec, add_flytekit=True)
    .is_container()`` are True.
    """
    from imagespec._engine import build

    spec = from_flytekit(fk_spec, add_flytekit=True)

    def report(event: Any) -> None:
        if event.kind in ("building", "pushing", "done"):
            _say(
                f"imagespec: {event.kind} {event.image}" + (f" ({event.message})" if event.message else ""),
                "blue",
            )
        elif event.kind in ("failed", "warning"):
            about = f" {event.image}:" if event.image else ":"
            _say(f"imagespec: {event.kind}{about} {event.message}", "red")

    result = build([spec], on_event=report, flytekit_ids={spec: fk_spec.id})[spec]
    return result.name


@functools.cache
def builder_class() -> type:
    """``FlytekitBuilder``: a subclass of flytekit's ``ImageSpecBuilder`` (made on first use, so that
    flytekit is imported only when it is wanted)."""
    base = _fk_image_spec_module().ImageSpecBuilder

    def _build_image(self: Any, image_spec: Any) -> str:
        return build_image(image_spec)

    def _should_build(self: Any, image_spec: Any) -> bool:
        return should_build(image_spec)

    _build_image.__doc__ = build_image.__doc__
    _should_build.__doc__ = should_build.__doc__
    return type(
        "FlytekitBuilder",
        (base,),
        {
            "__module__": "imagespec.flytekit",
            "__doc__": "imagespec as a flytekit image builder: our plan builds, our registry client checks.",
            "builder_type": BUILDER_NAME,
            "build_image": _build_image,
            "should_build": _should_build,
        },
    )


def register(priority: int = DEFAULT_PRIORITY) -> None:
    """Registers imagespec in flytekit's ``ImageBuildEngine`` as ``"imagespec"`` (again: replaces),
    and makes flytekit take imagespec's ``ImageSpec`` as a task's image (``imagespec._flytekit_hooks``).

    The entry point does this when flytekit is imported, with priority 0, so only specs that name
    ``builder="imagespec"`` use it; a higher ``priority`` (flytekit's own builder has 1) makes it
    the builder of specs that name none.
    """
    from imagespec._flytekit_hooks import install

    engine = _fk_image_spec_module().ImageBuildEngine
    engine.register(BUILDER_NAME, builder_class()(), priority)
    install()


def _register_from_entry_point() -> None:
    """Called while ``import flytekit`` loads its plugins: a failure must not break that import."""
    try:
        registry: Mapping[str, Any] = _fk_image_spec_module().ImageBuildEngine.get_registry()
        if BUILDER_NAME not in registry:
            register()
    except Exception as e:
        warnings.warn(f"imagespec: could not register as a flytekit image builder: {e}", stacklevel=2)
