"""Declare container images in Python: content-derived tags, registry checks and builds."""

from imagespec._core import ImageSpecError, RegistryError, SourceError, SpecError, __version__
from imagespec._registry import ImageStatus, check

__all__ = [
    "ImageSpecError",
    "ImageStatus",
    "RegistryError",
    "SourceError",
    "SpecError",
    "__version__",
    "check",
]
