"""flytekit's ``flytekit.image_spec.noop_builder`` module, on imagespec.

>>> from imagespec.image_spec.noop_builder import NoOpBuilder
>>> from imagespec import ImageSpec
>>> builder = NoOpBuilder()
>>> spec = ImageSpec(base_image="ghcr.io/org/prebuilt:1", builder="noop")
>>> builder.should_build(spec), builder.build_image(spec)
(True, 'ghcr.io/org/prebuilt:1')
"""

from __future__ import annotations

from imagespec._builders import ImageSpecBuilder, NoOpBuilder
from imagespec._spec import ImageSpec

__all__ = ["ImageSpec", "ImageSpecBuilder", "NoOpBuilder"]
