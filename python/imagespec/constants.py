"""flytekit's ``flytekit.constants``, for the name ImageSpec uses: ``CopyFileDetection``.

>>> from imagespec.constants import CopyFileDetection
>>> CopyFileDetection.LOADED_MODULES.value, CopyFileDetection.ALL.value, CopyFileDetection.NO_COPY.value
(1, 2, 3)
"""

from __future__ import annotations

from imagespec._spec import CopyFileDetection

__all__ = ["CopyFileDetection"]
