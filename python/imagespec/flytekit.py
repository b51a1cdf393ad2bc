"""imagespec inside flytekit: ``flytekit.ImageSpec(builder="imagespec", ...)`` is built by imagespec's
plan and checked by its registry client, and specs convert both ways.

With imagespec installed next to flytekit, ``import flytekit`` registers the builder through
flytekit's plugin entry point (group ``flytekit.plugins``) and makes flytekit take imagespec's
``ImageSpec`` wherever it takes its own (``@flytekit.task(container_image=spec)``); ``register()``
does both explicitly (and takes a priority). Importing this module does not import flytekit. See
docs/flytekit.md.
"""

from __future__ import annotations

from typing import Any

from imagespec._flytekit import (
    ADD_FLYTEKIT_OPTION,
    BUILDER_NAME,
    BUILDER_OPTION,
    DEFAULT_PRIORITY,
    build_image,
    builder_class,
    flytekit_requirement,
    from_flytekit,
    register,
    should_build,
    to_flytekit,
)


def __getattr__(name: str) -> Any:
    if name == "FlytekitBuilder":  # a subclass of flytekit's ImageSpecBuilder, made on first use
        return builder_class()
    raise AttributeError(f"module 'imagespec.flytekit' has no attribute {name!r}")


__all__ = [
    "ADD_FLYTEKIT_OPTION",
    "BUILDER_NAME",
    "BUILDER_OPTION",
    "DEFAULT_PRIORITY",
    "build_image",
    "builder_class",
    "flytekit_requirement",
    "from_flytekit",
    "register",
    "should_build",
    "to_flytekit",
]
