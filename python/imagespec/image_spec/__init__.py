"""flytekit's ``flytekit.image_spec`` package, on imagespec: change ``flytekit`` to ``imagespec`` in
the import lines and the same names are there (flytekit/image_spec/__init__.py).

>>> from imagespec.image_spec import ImageBuildEngine, ImageSpec, ImageSpecBuilder, NoOpBuilder
>>> isinstance(ImageBuildEngine.get_registry()["noop"][0], NoOpBuilder)
True

flytekit's ``DefaultImageBuilder`` is not here: imagespec's engines (docker, buildah, ...) take its
place, see docs/flytekit.md, "Builders".
"""

from __future__ import annotations

from imagespec._builders import ImageBuildEngine, ImageSpecBuilder, NoOpBuilder
from imagespec._spec import ImageSpec

__all__ = ["ImageBuildEngine", "ImageSpec", "ImageSpecBuilder", "NoOpBuilder"]
