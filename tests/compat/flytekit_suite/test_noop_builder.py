# Vendored from flytekit v1.16.24 (commit e96c7203089a1edc5709c92a606a2d4abb481c0e): tests/flytekit/unit/core/image_spec/test_noop_builder.py
# Copyright the Flyte authors (see NOTICE); licensed under the Apache License, Version 2.0 (LICENSE,
# https://www.apache.org/licenses/LICENSE-2.0). Changed for imagespec: only the lines below, which
# import ImageSpec names from imagespec instead of flytekit (original line numbers):
#   2: from flytekit.image_spec.noop_builder import NoOpBuilder
#      -> from imagespec.image_spec.noop_builder import NoOpBuilder
#   3: from flytekit import ImageSpec
#      -> from imagespec import ImageSpec
# tests/compat/test_flytekit_suite.py runs this file against imagespec, and against flytekit with
# the changed lines turned back.
import pytest
from imagespec.image_spec.noop_builder import NoOpBuilder
from imagespec import ImageSpec


def test_noop_builder():
    builder = NoOpBuilder()

    image_spec = ImageSpec(base_image="localhost:30000/flytekit")
    image = builder.build_image(image_spec)
    assert image == "localhost:30000/flytekit"


@pytest.mark.parametrize("base_image", [
    None,
    ImageSpec(base_image="another_none")
])
def test_noop_builder_error(base_image):
    builder = NoOpBuilder()

    msg = "base_image must be a string to use the noop image builder"
    image_spec = ImageSpec(base_image=base_image)
    with pytest.raises(ValueError, match=msg):
        builder.build_image(image_spec)


def test_noop_builder_should_build():
    """Test that NoOpBuilder.should_build always returns True."""
    builder = NoOpBuilder()

    # Test with different image specs to ensure should_build always returns True
    test_cases = [
        ImageSpec(base_image="localhost:30000/flytekit"),
        ImageSpec(base_image="python:3.9"),
        ImageSpec(base_image="custom/image:latest"),
    ]

    for image_spec in test_cases:
        result = builder.should_build(image_spec)
        assert result is True, f"should_build should return True for {image_spec.base_image}"
