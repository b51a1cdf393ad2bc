"""Builders and their registry, as flytekit has them: ``ImageSpecBuilder``, ``ImageBuildEngine``.

A builder turns a spec into a pushed image (``build_image``) and may say whether that is needed
(``should_build``). ``ImageBuildEngine`` holds the builders by name, with priorities, and builds a
spec once per process. The plan that runs them is ``imagespec.build`` (``_engine.py``).

>>> from imagespec import ImageBuildEngine
>>> sorted(ImageBuildEngine.get_registry())
['buildah', 'buildkit', 'docker', 'envd', 'native', 'noop', 'podman']
"""

from __future__ import annotations

import os
import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Hashable, Iterator
from typing import Any, ClassVar

from imagespec import _core
from imagespec._core import BuildError, SpecError
from imagespec._environ import fast_fail
from imagespec._runtime import wheel_for_build
from imagespec._spec import _REAL_NAMES, ImageSpec

# flytekit's names for these variables (flytekit/image_spec/image_spec.py:25-29).
IMAGE_ID_VAR = _core.IMAGE_ID_VAR


class BuilderNotRegisteredError(BuildError, AssertionError):
    """A spec names a builder that is not registered, or none is registered at all.

    An ``AssertionError`` too, because flytekit raises that there (callers written for flytekit
    catch it); a ``BuildError`` for everyone else."""


class NoOpBaseImageError(SpecError, ValueError):
    """The noop builder was given a spec whose ``base_image`` is not an image name (flytekit raises
    ``ValueError`` there)."""


class _BuilderMeta(ABCMeta):
    """``isinstance(x, ImageSpecBuilder)`` is true for any object with a callable ``build_image``
    (duck typing, a ``unittest.mock.Mock`` included), as it was when this was a Protocol."""

    def __instancecheck__(cls, instance: Any) -> bool:
        if cls.__dict__.get("_duck_typed", False):
            return callable(getattr(instance, "build_image", None))
        return super().__instancecheck__(instance)


class ImageSpecBuilder(metaclass=_BuilderMeta):
    """What ``ImageBuildEngine.register`` takes; subclass it, or give any object a ``build_image``.

    ``build_image(spec)`` builds (and pushes) the image of ``spec`` and returns its full name, or
    None to mean ``spec.image_name()``. ``should_build(spec)`` says whether to build: the default
    is flytekit's (missing: yes; present: only when force-pushed; unknown: no, the image is assumed
    present, unless ``FLYTE_IMG_FAST_FAIL`` is set, which raises ``RuntimeError``). A builder
    without ``should_build`` (not a subclass) gets the plan's own check, which fails closed.

    >>> class Echo(ImageSpecBuilder):
    ...     def build_image(self, spec):
    ...         return spec.image_name()
    >>> class Duck:
    ...     def build_image(self, spec):
    ...         return None
    >>> isinstance(Echo(), ImageSpecBuilder), isinstance(Duck(), ImageSpecBuilder)
    (True, True)
    >>> issubclass(Duck, ImageSpecBuilder)
    True
    """

    _duck_typed: ClassVar[bool] = True

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        if cls is ImageSpecBuilder:
            return any(callable(c.__dict__.get("build_image")) for c in subclass.__mro__)
        return super().__subclasshook__(subclass)  # NotImplemented: the usual rules

    @abstractmethod
    def build_image(self, image_spec: ImageSpec) -> str | None:
        """Builds and pushes the image; returns its full name, or None for ``image_spec.image_name()``."""
        raise NotImplementedError

    def should_build(self, image_spec: ImageSpec) -> bool:
        """flytekit's answer (flytekit/image_spec/image_spec.py:466-501), from our registry check."""
        from imagespec._registry import check

        status = check([image_spec])[0]
        if status.exists is False:
            return True
        if status.exists:
            return image_spec.is_force_push
        if fast_fail():
            raise RuntimeError(
                "Build failed as ImageSpec failed to check if the image exists due to a permission issue "
                f"or other reason ({image_spec.image_name()}: {status.reason}). \n"
                "Note, this fast failure is configured with the env var `FLYTE_IMG_FAST_FAIL`."
            )
        warnings.warn(
            f"cannot tell whether {image_spec.image_name()} exists ({status.reason}); assuming it does, "
            "as flytekit's builders do (set FLYTE_IMG_FAST_FAIL=true to fail instead)",
            stacklevel=2,
        )
        return False


class EngineBuilder(ImageSpecBuilder):
    """A built-in engine (docker, buildah, podman, envd, native). The plan runs it in Rust."""

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def available(self) -> str | None:
        """None when the engine can build here now, else why not."""
        return _core.engine_probe(self.engine)

    def should_build(self, image_spec: ImageSpec) -> bool:
        """The plan's answer: missing or force-pushed, yes; present, no (and ``image_name()`` then
        names it pinned by digest); unknown, ``BuildError`` unless assuming present is opted in."""
        from imagespec._engine import _assume_present
        from imagespec._registry import check

        if image_spec.is_force_push:
            return True
        status = check([image_spec])[0]
        name = image_spec.image_name()
        if status.status == "missing":
            return True
        if status.status == "exists":
            if status.digest and image_spec.registry and "@" not in name:
                _REAL_NAMES[name] = f"{name}@{status.digest}"
            return False
        if _assume_present(None):
            warnings.warn(
                f"cannot tell whether {name} exists ({status.reason}); assuming it does",
                stacklevel=2,
            )
            return False
        raise BuildError(
            f"cannot tell whether {name} exists: {status.reason}; nothing is built blind. Fix the registry "
            "access, force a build with force_push(), or set IMAGESPEC_ASSUME_PRESENT=1 to assume it is there"
        )

    def build_image(self, image_spec: ImageSpec) -> str | None:
        """Builds (and pushes) ``image_spec`` alone, without checking whether it exists."""
        out = _core.engine_build(
            self.engine,
            image_spec._core,
            image=image_spec.image_name(),
            push=bool(image_spec.registry),
            loaded_modules=image_spec._loaded(),
            imagespec_wheel=wheel_for_build(None),
            ca_bundle=os.environ.get("IMAGESPEC_CA_BUNDLE") or None,
        )
        return out["name"]

    def _runs_in_rust(self) -> bool:
        """Whether the plan may run the Rust engine instead: nothing of this class's is overridden."""
        cls = type(self)
        return cls.build_image is EngineBuilder.build_image and cls.should_build is EngineBuilder.should_build

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EngineBuilder) and type(other) is type(self) and other.engine == self.engine

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.engine))


class NoOpBuilder(EngineBuilder):
    """flytekit's noop builder: builds nothing, the spec's ``base_image`` (a name) is the image.

    ``should_build`` is always True, so no registry is asked; ``build_image`` returns ``base_image``
    (flytekit/image_spec/noop_builder.py). Never picked for a spec that names no builder.

    >>> NoOpBuilder().build_image(ImageSpec(base_image="ghcr.io/org/app:1"))
    'ghcr.io/org/app:1'
    >>> NoOpBuilder().build_image(ImageSpec())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imagespec._builders.NoOpBaseImageError: base_image must be a string to use the noop image builder (...
    """

    builder_type = "noop"

    def __init__(self) -> None:
        super().__init__("noop")

    def should_build(self, image_spec: ImageSpec) -> bool:
        return True

    def build_image(self, image_spec: ImageSpec) -> str:
        base = image_spec.base_image
        if not isinstance(base, str):
            got = "no base_image" if base is None else "an ImageSpec as base_image"
            raise NoOpBaseImageError(
                f"base_image must be a string to use the noop image builder ({image_spec.name} has {got}): "
                "give the name of an existing image, or choose a builder that builds"
            )
        return base


def _chain(spec: ImageSpec) -> Iterator[ImageSpec]:
    """The spec's base specs, deepest first, then the spec."""
    base = spec.base_image
    if isinstance(base, ImageSpec):
        yield from _chain(base)
    yield spec


class ImageBuildEngine:
    """The registered builders, by name, with priorities (flytekit's registry, same calls).

    A spec that names a ``builder`` gets that one; a spec that names none gets the available one
    with the highest priority, chosen when it is built. Built-in engines have priorities 3 (docker),
    2 (buildah), 1 (podman, envd, native: picked only for specs it can build, see docs/native.md)
    and 0 (noop and buildkit, never picked on their own); ``register`` defaults to 5, so a builder
    you register is preferred.

    >>> class Mine(ImageSpecBuilder):
    ...     def build_image(self, spec):
    ...         return None
    >>> ImageBuildEngine.register("mine", Mine(), priority=7)
    >>> ImageBuildEngine.get_registry()["mine"][1]
    7
    >>> ImageBuildEngine.remove("mine")
    """

    _REGISTRY: ClassVar[dict[str, tuple[Any, int]]] = {
        name: (NoOpBuilder() if name == "noop" else EngineBuilder(name), priority)
        for name, priority in _core.BUILTIN_ENGINES
    }
    # Tag-scheme name -> the name a build reported (flytekit's map, the one image_name() reads).
    _IMAGE_NAME_TO_REAL_NAME: ClassVar[dict[str, str]] = _REAL_NAMES
    # What build() has built in this process, and the name it returned (flytekit's lru_cache).
    _BUILT: ClassVar[dict[Hashable, str]] = {}

    @classmethod
    def register(cls, builder_type: str, image_spec_builder: Any, priority: int = 5) -> None:
        """Registers (or replaces) a builder under ``builder_type``."""
        if not isinstance(builder_type, str) or not builder_type:
            raise BuildError("register: builder_type must be a non-empty string")
        if not callable(getattr(image_spec_builder, "build_image", None)):
            raise BuildError(f"register: builder {builder_type!r} has no build_image(spec) method")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise BuildError(f"register: priority of {builder_type!r} must be an int")
        cls._REGISTRY[builder_type] = (image_spec_builder, priority)

    @classmethod
    def get_registry(cls) -> dict[str, tuple[Any, int]]:
        return cls._REGISTRY

    @classmethod
    def get(cls, builder_type: str) -> Any:
        """The builder registered as ``builder_type``."""
        try:
            return cls._REGISTRY[builder_type][0]
        except KeyError:
            raise BuilderNotRegisteredError(
                f"builder {builder_type!r} is not registered (registered: {', '.join(sorted(cls._REGISTRY))})"
            ) from None

    @classmethod
    def remove(cls, builder_type: str) -> None:
        """Unregisters ``builder_type`` (a KeyError-free no-op when it is not registered)."""
        cls._REGISTRY.pop(builder_type, None)

    @classmethod
    def build(cls, image_spec: ImageSpec, **options: Any) -> str:
        """Builds ``image_spec`` (its base specs first) unless present; returns the name to run it by.

        Once per process, as flytekit's (an ``lru_cache``): a second call with an equal spec and the
        same options returns the first call's name and asks nothing, even if its builder was removed
        since. A spec (or base) naming an unregistered builder, or naming none when none is
        registered, raises ``BuilderNotRegisteredError`` (an ``AssertionError``, as flytekit's) before
        anything runs. ``options`` are ``imagespec.build``'s; a failed image raises ``BuildError``.
        """
        key = cls._key(image_spec, options)
        if key is not None and key in cls._BUILT:
            return cls._BUILT[key]
        if isinstance(image_spec, ImageSpec):
            cls._check_builders(image_spec, options.get("builder"))
        from imagespec._engine import build

        name = build(image_spec, **options)[image_spec].name
        if key is not None:
            cls._BUILT[key] = name
            for base in list(_chain(image_spec))[:-1]:
                base_key = cls._key(base, options)
                if base_key is not None:
                    cls._BUILT.setdefault(base_key, base.image_name())
        return name

    @staticmethod
    def _key(spec: ImageSpec, options: dict[str, Any]) -> Hashable | None:
        key = (spec, getattr(spec, "is_force_push", False), tuple(sorted(options.items())))
        try:
            hash(key)
        except TypeError:  # an unhashable option (a dict of flytekit ids): no caching, as lru_cache can't
            return None
        return key

    @classmethod
    def _check_builders(cls, spec: ImageSpec, override: str | None) -> None:
        registered = ", ".join(sorted(cls._REGISTRY)) or "none"
        for s in _chain(spec):
            name = override or s.builder
            if name is None and not cls._REGISTRY:
                raise BuilderNotRegisteredError(
                    "There is no image builder registered. Register one with ImageBuildEngine.register"
                )
            if name is not None and name not in cls._REGISTRY:
                raise BuilderNotRegisteredError(
                    f"Image builder {name} is not registered. (registered: {registered}); "
                    "register it with ImageBuildEngine.register"
                )
