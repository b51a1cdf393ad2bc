"""The seed's two images. `imagespec tag examples/images.py` prints their full names."""

from imagespec import ImageSpec

pandas_image = ImageSpec(
    name="pandas",
    packages=["pandas", "numpy"],
    env={"Debug": "True"},
    registry="localhost:30000",
    python_version="3.11",
)
sklearn_image = ImageSpec(
    name="sklearn", packages=["scikit-learn"], registry="localhost:30000", python_version="3.11"
)
