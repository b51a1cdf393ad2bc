"""Declare container images in Python; imagespec tags them by content and builds only what is missing.

>>> from imagespec import ImageSpec
>>> spec = ImageSpec(packages=["pandas"], registry="localhost:5000", python_version="3.11")
>>> spec.image_name().startswith("localhost:5000/imagespec:")
True
"""

from imagespec._core import ImageSpecError, RegistryError, SourceError, SpecError, __version__
from imagespec._registry import ImageStatus, check
from imagespec._spec import CopyFileDetection, ImageSpec

__all__ = [
    "CopyFileDetection",
    "ImageSpec",
    "ImageSpecError",
    "ImageStatus",
    "RegistryError",
    "SourceError",
    "SpecError",
    "__version__",
    "check",
]
