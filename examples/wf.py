"""The seed's workflow (flytekit's ImageSpec example), with imagespec.

    imagespec run examples/wf.py wf                   # locally: tasks as plain Python
    imagespec build examples/wf.py wf                 # the images its tasks need, when missing
    imagespec run examples/wf.py wf --in-containers   # each task in its own image (local Docker)

The data is a small heart-disease-like CSV next to this file (no network needed); `source_root`
puts this folder, CSV included, in /root of both images. `scripts/example.sh` (`make example`)
sets EXAMPLE_REGISTRY and EXAMPLE_BASE_IMAGE to a loopback registry and a base made on the
machine, because its machines reach no public registry.
"""

import os
import typing
from pathlib import Path

import pandas as pd

from imagespec import CopyFileDetection, ImageSpec, Resources, task, workflow

HERE = Path(__file__).resolve().parent
registry = os.environ.get("EXAMPLE_REGISTRY", "localhost:30000")
base_image = os.environ.get("EXAMPLE_BASE_IMAGE")  # None: python:3.11-slim
# The base is part of a spec's identity. The images carry EXAMPLE_BASE_IMAGE, so that this module,
# imported inside them, declares the same specs there and is_container() answers truly.
base_env = {"EXAMPLE_BASE_IMAGE": base_image} if base_image else {}

pandas_image_spec = ImageSpec(
    name="wf-pandas",
    packages=["pandas", "numpy"],
    env={"Debug": "True", **base_env},
    registry=registry,
    base_image=base_image,
    python_version="3.11",
    source_root=HERE,
    # ALL, not LOADED_MODULES: heart.csv is data, not a module, and the tasks read it in the image.
    source_copy_mode=CopyFileDetection.ALL,
)

# This module imports pandas at the top, so the scikit-learn image needs it too.
sklearn_image_spec = ImageSpec(
    name="wf-sklearn",
    packages=["scikit-learn", "pandas"],
    env=base_env,
    registry=registry,
    base_image=base_image,
    python_version="3.11",
    source_root=HERE,
    # ALL, not LOADED_MODULES: heart.csv is data, not a module, and the tasks read it in the image.
    source_copy_mode=CopyFileDetection.ALL,
)

# True in the scikit-learn image and outside any container; False in the pandas image.
if sklearn_image_spec.is_container():
    from sklearn.linear_model import LogisticRegression


@task(container_image=pandas_image_spec)
def get_pandas_dataframe() -> typing.Tuple[pd.DataFrame, pd.Series]:  # noqa: UP006 - the seed's spelling
    df = pd.read_csv(HERE / "heart.csv")
    return df[["age", "thalach", "trestbps", "chol", "oldpeak"]], df.pop("target")


@task(container_image=sklearn_image_spec, requests=Resources(cpu="1", mem="1Gi"))
def get_model(max_iter: int, multi_class: str) -> typing.Any:
    # scikit-learn 1.8 removed `multi_class`; "auto" was its default, the only behaviour left.
    options = {} if multi_class == "auto" else {"multi_class": multi_class}
    return LogisticRegression(max_iter=max_iter, **options)


# Get a basic model to train
@task(container_image=sklearn_image_spec, requests=Resources(cpu="1", mem="1Gi"))
def train_model(model: typing.Any, feature: pd.DataFrame, target: pd.Series) -> typing.Any:
    model.fit(feature, target)
    return model


# Define a workflow to capture dependencies between the tasks
@workflow
def wf() -> typing.Any:
    feature, target = get_pandas_dataframe()
    model = get_model(max_iter=3000, multi_class="auto")
    return train_model(model=model, feature=feature, target=target)


# Execute the workflow locally
if __name__ == "__main__":
    print(f"Running wf() {wf()}")
