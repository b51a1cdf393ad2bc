"""The seed's two images. `imagespec tag examples/images.py` prints their full names and
`imagespec build examples/images.py` builds the missing ones.

`scripts/example.sh` (`make example`) sets the two variables to a loopback registry and a base
image made on the machine, because its machines reach no public registry.
"""

import os

from imagespec import ImageSpec

registry = os.environ.get("EXAMPLE_REGISTRY", "localhost:30000")
base_image = os.environ.get("EXAMPLE_BASE_IMAGE")  # None: python:3.11-slim

pandas_image = ImageSpec(
    name="pandas",
    packages=["pandas", "numpy"],
    env={"Debug": "True"},
    registry=registry,
    base_image=base_image,
    python_version="3.11",
)
sklearn_image = ImageSpec(
    name="sklearn",
    packages=["scikit-learn"],
    registry=registry,
    base_image=base_image,
    python_version="3.11",
)
