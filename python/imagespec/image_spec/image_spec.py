"""flytekit's ``flytekit.image_spec.image_spec`` module, on imagespec: the spec, the builder base
class, the registry of builders and the names of the environment variables they read.

>>> from imagespec.image_spec.image_spec import _F_IMG_ID, FLYTE_IMG_FAST_FAIL, ImageSpec
>>> _F_IMG_ID, FLYTE_IMG_FAST_FAIL
('_F_IMG_ID', 'FLYTE_IMG_FAST_FAIL')
>>> ImageSpec is __import__("imagespec").ImageSpec
True
"""

from __future__ import annotations

from imagespec._builders import IMAGE_ID_VAR as _F_IMG_ID
from imagespec._builders import ImageBuildEngine, ImageSpecBuilder
from imagespec._environ import FAST_FAIL_VAR as FLYTE_IMG_FAST_FAIL
from imagespec._environ import FORCE_PUSH_VAR as FLYTE_FORCE_PUSH_IMAGE_SPEC
from imagespec._spec import CopyFileDetection, ImageSpec

__all__ = [
    "FLYTE_FORCE_PUSH_IMAGE_SPEC",
    "FLYTE_IMG_FAST_FAIL",
    "_F_IMG_ID",
    "CopyFileDetection",
    "ImageBuildEngine",
    "ImageSpec",
    "ImageSpecBuilder",
]
