"""Existence checks: does an image exist in its registry (or, without a registry, the local engine)?"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union, cast

from imagespec import _core

if TYPE_CHECKING:
    from imagespec._spec import ImageSpec

Status = Literal["exists", "missing", "unknown"]


@dataclass(frozen=True)
class ImageStatus:
    """One image's answer: ``exists``, ``missing`` or ``unknown``, with the reason when not ``exists``."""

    reference: str
    status: Status
    reason: str | None = None
    digest: str | None = None
    media_type: str | None = None
    cached: bool = False

    @property
    def exists(self) -> bool | None:
        """True, False, or None when the answer is unknown."""
        if self.status == "unknown":
            return None
        return self.status == "exists"


ImageLike = Union[str, "ImageSpec"]

_DEFAULT_TIMEOUT = 10.0


def _status(d: _core.CheckResult) -> ImageStatus:
    return ImageStatus(
        reference=d["reference"],
        status=d["status"],
        reason=d["reason"],
        digest=d["digest"],
        media_type=d["media_type"],
        cached=d["cached"],
    )


def check(
    images: ImageLike | Iterable[ImageLike],
    *,
    platforms: Sequence[str] | None = None,
    registry_config: str | os.PathLike[str] | None = None,
    insecure: Sequence[str] | None = None,
    use_cache: bool = True,
    timeout: float = _DEFAULT_TIMEOUT,
) -> list[ImageStatus]:
    """Check which images exist, concurrently, one ``ImageStatus`` per image in the given order.

    ``images`` are references (``localhost:5000/app:tag``) or specs. A spec brings its own
    platform(s), ``registry_config``, ``builder_options["insecure_registries"]`` and force-push
    flag (which bypasses the cache); a spec without a registry is looked up in the local engine.
    Keyword arguments apply to plain references and add to what specs bring.
    Raises ``RegistryError`` for a malformed reference or an unusable option.
    """
    from imagespec._spec import ImageSpec

    items: list[ImageLike] = [images] if isinstance(images, (str, ImageSpec)) else list(images)
    results: list[ImageStatus | None] = [None] * len(items)
    groups: dict[tuple[object, ...], list[tuple[int, str]]] = {}
    local: list[tuple[int, str]] = []
    config = os.fspath(registry_config) if registry_config is not None else None
    for i, item in enumerate(items):
        if isinstance(item, str):
            key: tuple[object, ...] = (tuple(platforms or ()), config, tuple(insecure or ()), use_cache)
            groups.setdefault(key, []).append((i, item))
            continue
        if not isinstance(item, ImageSpec):
            hint = ""
            if hasattr(item, "image_name"):
                hint = "; convert a flytekit spec with ImageSpec.from_flytekit(spec)"
            raise TypeError(f"check() takes image references or ImageSpecs, not {type(item).__name__}{hint}")
        name = item.image_name()
        if not item.registry:
            local.append((i, name))
            continue
        # The core's rule (the plan's): an insecure_registries string is split at commas, etc.
        spec_platforms, spec_config, spec_insecure = item._core.check_options
        key = (
            tuple(spec_platforms or platforms or ()),
            spec_config or config,
            tuple([*(insecure or ()), *spec_insecure]),
            use_cache and not item.is_force_push,
        )
        groups.setdefault(key, []).append((i, name))
    for (plats, cfg, insec, cache), members in groups.items():
        answers = _core.check(
            [name for _, name in members],
            platforms=list(cast("tuple[str, ...]", plats)) or None,
            registry_config=cast("str | None", cfg),
            insecure=list(cast("tuple[str, ...]", insec)) or None,
            use_cache=bool(cache),
            timeout=timeout,
        )
        for (i, _), answer in zip(members, answers):
            results[i] = _status(answer)
    if local:
        for (i, _), answer in zip(local, _core.check_local([n for _, n in local], timeout=timeout)):
            results[i] = _status(answer)
    return [r for r in results if r is not None]
