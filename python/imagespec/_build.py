"""Build contexts: the Dockerfile of a spec and a folder with exactly the files it needs.

The layout and the layer order are documented in docs/image-layout.md. Engines (docker, buildah,
...) take a `BuildContext`, send `context` to the builder and pass each of `secrets` as a build
secret (`--secret id=ID,src=PATH`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagespec import _core
from imagespec._runtime import wheel_for_build
from imagespec._spec import ImageSpec


def flytekit_ids_by_image(ids: Mapping[ImageSpec, str] | None) -> dict[str, str] | None:
    """``{spec: flytekit's id}`` as the core takes it: keyed by the spec's tag-scheme name.

    >>> spec = ImageSpec(name="x", python_version="3.11")
    >>> flytekit_ids_by_image({spec: "fk-id"}) == {spec._core.image_name(None): "fk-id"}
    True
    """
    if not ids:
        return None
    return {spec._core.image_name(spec._loaded()): fk_id for spec, fk_id in ids.items()}


def _build_args(
    spec: ImageSpec,
    imagespec_wheel: str | os.PathLike[str] | None,
    ca_bundle: str | os.PathLike[str] | None,
    flytekit_ids: Mapping[ImageSpec, str] | None,
) -> _core.BuildArgs:
    """What the build of `spec` puts in its image besides the spec, as the core takes it."""
    return {
        "loaded_modules": spec._loaded(),
        "imagespec_wheel": wheel_for_build(imagespec_wheel),
        "ca_bundle": ca_bundle,
        "flytekit_ids": flytekit_ids_by_image(flytekit_ids),
    }


@dataclass(frozen=True)
class BuildSecret:
    """A secret the engine must pass to the build: ``--secret id=<id>,src=<path>``."""

    id: str
    path: Path


@dataclass(frozen=True)
class BuildContext:
    """A written build context."""

    dir: Path
    """The folder the context and its secrets were written in; remove it when done."""
    context: Path
    """``dir/context``: the only folder to send to an engine."""
    dockerfile: Path
    dockerfile_text: str
    files: tuple[str, ...]
    """Every file of the context, relative to it, sorted."""
    secrets: tuple[BuildSecret, ...]
    image: str
    tag: str
    id: str


def dockerfile(
    spec: ImageSpec,
    *,
    imagespec_wheel: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    buildkit: bool = True,
    engine: str = "docker",
    flytekit_ids: Mapping[ImageSpec, str] | None = None,
) -> str:
    """The Dockerfile of `spec`. `ca_bundle` is a PEM file, a folder of them, or PEM text.
    `flytekit_ids` maps a spec built for a flytekit spec to flytekit's id (see `build`)."""
    options = _build_args(spec, imagespec_wheel, ca_bundle, flytekit_ids)
    return spec._core.dockerfile(buildkit=buildkit, engine=engine, **options)


def plan_context(
    spec: ImageSpec,
    *,
    imagespec_wheel: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    buildkit: bool = True,
    engine: str = "docker",
    flytekit_ids: Mapping[ImageSpec, str] | None = None,
) -> _core.ContextPlan:
    """What `write_context` would write (Dockerfile text, files, secret ids), writing nothing."""
    options = _build_args(spec, imagespec_wheel, ca_bundle, flytekit_ids)
    return _core.plan_context(spec._core, buildkit=buildkit, engine=engine, **options)


def write_context(
    spec: ImageSpec,
    dir: str | os.PathLike[str] | None = None,
    *,
    imagespec_wheel: str | os.PathLike[str] | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    buildkit: bool = True,
    engine: str = "docker",
) -> BuildContext:
    """Writes the build context of `spec` into `dir` (a fresh temporary folder when None)."""
    made = dir is None
    if dir is None:
        dir = tempfile.mkdtemp(prefix="imagespec-build-")
    try:
        options = _build_args(spec, imagespec_wheel, ca_bundle, None)
        out = _core.write_context(spec._core, dir, buildkit=buildkit, engine=engine, **options)
    except BaseException:
        if made:
            shutil.rmtree(dir, ignore_errors=True)
        raise
    return BuildContext(
        dir=out.dir,
        context=out.context,
        dockerfile=out.dockerfile,
        dockerfile_text=out.dockerfile_text,
        files=tuple(out.files),
        secrets=tuple(BuildSecret(id, path) for id, path in out.secrets),
        image=out.image,
        tag=out.tag,
        id=out.id,
    )
