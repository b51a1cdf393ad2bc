"""Declare container images in Python; imagespec tags them by content and builds only what is missing.

>>> from imagespec import ImageSpec
>>> spec = ImageSpec(packages=["pandas"], registry="localhost:5000", python_version="3.11")
>>> spec.image_name().startswith("localhost:5000/imagespec:")
True
"""

from __future__ import annotations

from imagespec._core import BuildError, ImageSpecError, RegistryError, SourceError, SpecError, __version__
from imagespec._spec import CopyFileDetection, ImageSpec

# Not `from typing import TYPE_CHECKING`: importing typing (and re, contextlib, collections with
# it) is a third of `import imagespec`; type checkers treat this name as True all the same.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from imagespec._build import BuildContext, BuildSecret, write_context
    from imagespec._diff import Diff, diff
    from imagespec._engine import (
        BuildEvent,
        BuildReport,
        EngineBuilder,
        ImageBuildEngine,
        ImageResult,
        ImageSpecBuilder,
        NoOpBuilder,
        build,
    )
    from imagespec._inspect import ImageInfo, inspect
    from imagespec._registry import ImageStatus, check
    from imagespec._task import (
        Resources,
        Task,
        Workflow,
        default_image,
        discover,
        images_needed,
        set_default_image,
        task,
        workflow,
    )

# Loaded on first use, so that `import imagespec` stays fast for task code that never checks.
_LAZY = {
    "ImageStatus": "imagespec._registry",
    "check": "imagespec._registry",
    "BuildContext": "imagespec._build",
    "BuildSecret": "imagespec._build",
    "write_context": "imagespec._build",
    "BuildEvent": "imagespec._engine",
    "BuildReport": "imagespec._engine",
    "EngineBuilder": "imagespec._engine",
    "ImageBuildEngine": "imagespec._engine",
    "ImageResult": "imagespec._engine",
    "ImageSpecBuilder": "imagespec._engine",
    "NoOpBuilder": "imagespec._engine",
    "build": "imagespec._engine",
    "Diff": "imagespec._diff",
    "diff": "imagespec._diff",
    "ImageInfo": "imagespec._inspect",
    "inspect": "imagespec._inspect",
    "Resources": "imagespec._task",
    "Task": "imagespec._task",
    "Workflow": "imagespec._task",
    "default_image": "imagespec._task",
    "discover": "imagespec._task",
    "images_needed": "imagespec._task",
    "set_default_image": "imagespec._task",
    "task": "imagespec._task",
    "workflow": "imagespec._task",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagespec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BuildContext",
    "BuildError",
    "BuildEvent",
    "BuildReport",
    "BuildSecret",
    "CopyFileDetection",
    "Diff",
    "EngineBuilder",
    "ImageBuildEngine",
    "ImageInfo",
    "ImageResult",
    "ImageSpec",
    "ImageSpecBuilder",
    "ImageSpecError",
    "ImageStatus",
    "NoOpBuilder",
    "RegistryError",
    "Resources",
    "SourceError",
    "SpecError",
    "Task",
    "Workflow",
    "__version__",
    "build",
    "check",
    "default_image",
    "diff",
    "discover",
    "images_needed",
    "inspect",
    "set_default_image",
    "task",
    "workflow",
    "write_context",
]
