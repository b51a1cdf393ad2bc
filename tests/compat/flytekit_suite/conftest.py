# Vendored from flytekit v1.16.24 (commit e96c7203089a1edc5709c92a606a2d4abb481c0e): tests/flytekit/unit/conftest.py
# Copyright the Flyte authors (see NOTICE); licensed under the Apache License, Version 2.0 (LICENSE,
# https://www.apache.org/licenses/LICENSE-2.0). Changed for imagespec: only the lines below, which
# import ImageSpec names from imagespec instead of flytekit (original line numbers):
#   6: from flytekit.image_spec.image_spec import ImageSpecBuilder
#      -> from imagespec.image_spec.image_spec import ImageSpecBuilder
# Only the fixture mock_image_spec_builder and its class (original lines 3, 6 and 9-16) are taken; the
# rest of that conftest (hypothesis profiles, exec_prefix) is not used by the files here.
# tests/compat/test_flytekit_suite.py runs this file against imagespec, and against flytekit with
# the changed lines turned back.
import pytest

from imagespec.image_spec.image_spec import ImageSpecBuilder


class MockImageSpecBuilder(ImageSpecBuilder):
    def build_image(self, img):
        print("Building an image...")


@pytest.fixture()
def mock_image_spec_builder():
    return MockImageSpecBuilder()
