# Vendored from flytekit v1.16.24 (commit e96c7203089a1edc5709c92a606a2d4abb481c0e): tests/flytekit/unit/core/image_spec/test_image_spec.py
# Copyright the Flyte authors (see NOTICE); licensed under the Apache License, Version 2.0 (LICENSE,
# https://www.apache.org/licenses/LICENSE-2.0). Changed for imagespec: only the lines below, which
# import ImageSpec names from imagespec instead of flytekit (original line numbers):
#   10: from flytekit.constants import CopyFileDetection
#       -> from imagespec.constants import CopyFileDetection
#   14: from flytekit.image_spec import ImageSpec
#       -> from imagespec.image_spec import ImageSpec
#   15: from flytekit.image_spec.image_spec import _F_IMG_ID, ImageBuildEngine
#       -> from imagespec.image_spec.image_spec import _F_IMG_ID, ImageBuildEngine
#   364: from flytekit.image_spec.noop_builder import NoOpBuilder
#        -> from imagespec.image_spec.noop_builder import NoOpBuilder
# Left out (the original lines, with the blank lines after them):
#   159-172 test_no_build_during_execution: it patches flytekit's DefaultImageBuilder (a flytekit
#     builder imagespec does not have) and checks flytekit's own guard against building inside a task
#     execution (FlyteContextManager's execution mode), a flytekit internal.
#   207-261 test_update_image_spec_copy_handling: it tests
#     flytekit.core.python_auto_container.update_image_spec_copy_handling, flytekit's serialisation
#     step that edits a flytekit ImageSpec in place, a flytekit internal (imagespec specs are immutable).
# Kept skipped, as flytekit does: test_nested_build (it needs _FLYTEKIT_TEST_IMAGE_BUILD_ENGINE=1 and an
# engine build of torch). Its other flytekit imports (configuration, context_manager,
# python_auto_container, mock) are unchanged: the suite runs in a venv with flytekit installed.
# requirements.txt and registry_config.json beside it are flytekit's (same commit, same folder).
# tests/compat/test_flytekit_suite.py runs this file against imagespec, and against flytekit with
# the changed lines turned back.
import os
import sys
from unittest.mock import Mock

import mock
import pytest

from flytekit.configuration import (FastSerializationSettings, ImageConfig,
                                    SerializationSettings)
from imagespec.constants import CopyFileDetection
from flytekit.core import context_manager
from flytekit.core.context_manager import ExecutionState
from flytekit.core.python_auto_container import update_image_spec_copy_handling
from imagespec.image_spec import ImageSpec
from imagespec.image_spec.image_spec import _F_IMG_ID, ImageBuildEngine

REQUIREMENT_FILE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "requirements.txt")
REGISTRY_CONFIG_FILE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "registry_config.json")


def test_image_spec(mock_image_spec_builder, monkeypatch):
    base_image = ImageSpec(name="base", builder="dummy", base_image="base_image")

    image_spec = ImageSpec(
        name="FLYTEKIT",
        builder="dummy",
        packages=["pandas"],
        apt_packages=["git"],
        python_version="3.9",
        registry="localhost:30001",
        base_image=base_image,
        cuda="11.2.2",
        cudnn="8",
        requirements=REQUIREMENT_FILE,
        registry_config=REGISTRY_CONFIG_FILE,
        entrypoint=["/bin/bash"],
        copy=["/src/file1.txt"],
        builder_options={"builder_option": "builder_option_value"},
    )
    assert image_spec._is_force_push is False

    image_spec = image_spec.with_commands("echo hello")
    image_spec = image_spec.with_packages("numpy")
    image_spec = image_spec.with_apt_packages("wget")
    image_spec = image_spec.with_copy(["/src", "/src/file2.txt"])
    image_spec = image_spec.force_push()

    assert image_spec.python_version == "3.9"
    assert image_spec.base_image == base_image
    assert image_spec.packages == ["pandas", "numpy"]
    assert image_spec.apt_packages == ["git", "wget"]
    assert image_spec.registry == "localhost:30001"
    assert image_spec.requirements == REQUIREMENT_FILE
    assert image_spec.registry_config == REGISTRY_CONFIG_FILE
    assert image_spec.cuda == "11.2.2"
    assert image_spec.cudnn == "8"
    assert image_spec.name == "flytekit"
    assert image_spec.builder == "dummy"
    assert image_spec.source_root is None
    assert image_spec.env is None
    assert image_spec.pip_index is None
    assert image_spec.is_container() is True
    assert image_spec.commands == ["echo hello"]
    assert image_spec._is_force_push is True
    assert image_spec.entrypoint == ["/bin/bash"]
    assert image_spec.copy == ["/src/file1.txt", "/src", "/src/file2.txt"]
    assert image_spec.builder_options == {"builder_option": "builder_option_value"}

    assert image_spec.image_name() == f"localhost:30001/flytekit:{image_spec.tag}"
    ctx = context_manager.FlyteContext.current_context()
    with context_manager.FlyteContextManager.with_context(
        ctx.with_execution_state(ctx.execution_state.with_params(mode=ExecutionState.Mode.TASK_EXECUTION))
    ):
        os.environ[_F_IMG_ID] = image_spec.id
        assert image_spec.is_container() is True

    ImageBuildEngine.register("dummy", mock_image_spec_builder)
    ImageBuildEngine.build(image_spec)

    assert "dummy" in ImageBuildEngine._REGISTRY
    assert image_spec.exist() is None

    # Remove the dummy builder, and build the image again
    # The image has already been built, so it shouldn't fail.
    del ImageBuildEngine._REGISTRY["dummy"]
    ImageBuildEngine.build(image_spec)

    with pytest.raises(AssertionError, match="Image builder flyte is not registered"):
        ImageBuildEngine.build(ImageSpec(builder="flyte"))

    # ImageSpec should be immutable
    image_spec.with_commands("ls")
    assert image_spec.commands == ["echo hello"]


@pytest.mark.skipif(
    os.environ.get("_FLYTEKIT_TEST_IMAGE_BUILD_ENGINE", "0") == "0",
    reason="Set _FLYTEKIT_TEST_IMAGE_BUILD_ENGINE=1 to run this test",
)
def test_nested_build(monkeypatch):
    monkeypatch.setenv("FLYTE_PUSH_IMAGE_SPEC", "0")
    base_image = ImageSpec(
        name="base",
        packages=["torch"],
        python_version="3.11"
    )

    image_spec = ImageSpec(
        name="final",
        packages=["pandas"],
        python_version="3.11",
        base_image=base_image,
    )
    assert image_spec._is_force_push is False

    ImageBuildEngine.build(image_spec)


def test_image_spec_engine_priority():
    new_image_name = "fqn.xyz/flytekit"
    mock_image_builder_10 = Mock()
    mock_image_builder_10.build_image.return_value = new_image_name
    mock_image_builder_default = Mock()
    mock_image_builder_default.build_image.side_effect = ValueError("should not be called")

    ImageBuildEngine.register("build_10", mock_image_builder_10, priority=10)
    ImageBuildEngine.register("build_default", mock_image_builder_default)

    image_spec = ImageSpec(name="FLYTEKIT")

    ImageBuildEngine.build(image_spec)
    mock_image_builder_10.build_image.assert_called_once_with(image_spec)

    assert image_spec.image_name() == new_image_name
    del ImageBuildEngine._REGISTRY["build_10"]
    del ImageBuildEngine._REGISTRY["build_default"]


def test_build_existing_image_with_force_push():
    image_spec = ImageSpec(name="hello", builder="test").force_push()

    builder = Mock()
    builder.build_image.return_value = "fqn.xyz/new_image_name:v-test"
    ImageBuildEngine.register("test", builder)

    ImageBuildEngine.build(image_spec)
    builder.build_image.assert_called_once()


def test_custom_tag():
    spec = ImageSpec(
        name="my_image",
        python_version="3.11",
        tag_format="{spec_hash}-dev",
    )
    assert spec.image_name() == f"my_image:{spec.tag}"


@pytest.mark.parametrize(
    "parameter_name", [
        "packages", "conda_channels", "conda_packages",
        "apt_packages", "pip_extra_index_url", "entrypoint", "commands"
    ]
)
@pytest.mark.parametrize("value", ["requirements.txt", [1, 2, 3]])
def test_image_spec_validation_string_list(parameter_name, value):
    msg = f"{parameter_name} must be a list of strings or None"

    input_params = {parameter_name: value}

    with pytest.raises(ValueError, match=msg):
        ImageSpec(**input_params)

@pytest.mark.parametrize(
    "parameter_name", ["pip_secret_mounts", ]
)
@pytest.mark.parametrize("value", ["secrets.txt", ("secret_src", "id", "secret_dst")])
def test_image_spec_validation_two_string_tuple_list(parameter_name, value):
    msg = f"{parameter_name} must be a list of tuples of two strings or None"

    input_params = {parameter_name: value}

    with pytest.raises(ValueError, match=msg):
        ImageSpec(**input_params)



def test_copy_is_set_if_source_root_is_set():
    image_spec = ImageSpec(name="my_image", python_version="3.12", source_root="/tmp")
    assert image_spec.source_copy_mode == CopyFileDetection.LOADED_MODULES


def test_registry_name():
    invalid_registry_names = [
        "invalid:port:50000",
        "ghcr.io/flyteorg:latest",
        "flyteorg:latest"
    ]
    for invalid_registry_name in invalid_registry_names:
        with pytest.raises(ValueError, match="Invalid container registry name"):
            ImageSpec(registry=invalid_registry_name)

    valid_registry_names = [
        "localhost:30000",
        "localhost:30000/flyte",
        "192.168.1.1:30000",
        "192.168.1.1:30000/myimage",
        "ghcr.io/flyteorg",
        "my.registry.com/myimage",
        "my.registry.com:5000/myimage",
        "myregistry:5000/myimage",
        "us-west1-docker.pkg.dev/example.com/my-project/my-repo"
        "flyteorg",
    ]
    for valid_registry_name in valid_registry_names:
        ImageSpec(registry=valid_registry_name)


def test_image_spec_from_env_error():
    msg = "python_version can not be used with `from_env`"
    with pytest.raises(ValueError, match=msg):
        ImageSpec.from_env(pinned_packages=["joblib"], python_version="3.9")


def test_image_spec_from_env_with_pinned_packages():
    import joblib
    import msgpack
    joblib_version = joblib.__version__
    msgpack_version = msgpack.__version__

    version_info = sys.version_info
    python_version = f"{version_info.major}.{version_info.minor}"

    image_spec = ImageSpec.from_env(pinned_packages=["joblib", "msgpack"], packages=["scikit-learn"])
    assert image_spec.python_version == python_version
    assert f"joblib=={joblib_version}" in image_spec.packages
    assert f"msgpack=={msgpack_version}" in image_spec.packages
    assert 'scikit-learn' in image_spec.packages


def test_image_spec_from_env_empty():
    version_info = sys.version_info
    python_version = f"{version_info.major}.{version_info.minor}"

    image_spec = ImageSpec.from_env()
    assert image_spec.python_version == python_version


def test_image_spec_same_id_and_tag_with_pip_secret_mounts():
    image_spec = ImageSpec(name="my_image")
    image_spec_with_pip_secret_mounts = ImageSpec(name="my_image", pip_secret_mounts=[("src", "dst")])
    assert image_spec.id == image_spec_with_pip_secret_mounts.id
    assert image_spec.tag == image_spec_with_pip_secret_mounts.tag


def test_image_spec_same_id_and_tag_with_builder():
    image_spec = ImageSpec(name="my_image")
    image_spec_with_builder = ImageSpec(name="my_image", builder="envd")
    assert image_spec.id == image_spec_with_builder.id
    assert image_spec.tag == image_spec_with_builder.tag


def test_dev_packages():
    image_spec = ImageSpec(name="localhost:30000/flytekit:0.1.5")
    new_image_spec = image_spec.with_runtime_packages(["my-new-package"])
    assert new_image_spec.runtime_packages == ["my-new-package"]

def test_invalid_builder_options():
    msg = "builder_options must be a dictionary or None"
    with pytest.raises(ValueError, match=msg):
        ImageSpec(name="localhost:30000/flytekit:0.1.5", builder_options="invalid_builder_option")
    with pytest.raises(ValueError, match=msg):
        ImageSpec(name="localhost:30000/flytekit:0.1.5",
                  builder_options=["invalid_builder_option"])

def test_with_builder_options():
    image_spec = ImageSpec(
      name="localhost:30000/flytekit:0.1.5",
      builder_options={
          "existing_builder_option_1": "existing_builder_option_value_1",
      }
    )
    new_image_spec = image_spec.with_builder_options(
        {"new_builder_option_1": "new_builder_option_value_1"})

    assert image_spec.builder_options == {
        "existing_builder_option_1": "existing_builder_option_value_1",
    }
    assert new_image_spec.builder_options == {
        "existing_builder_option_1": "existing_builder_option_value_1",
        "new_builder_option_1": "new_builder_option_value_1"
    }

def test_noop_builder_updates_image_name_mapping():
    from imagespec.image_spec.noop_builder import NoOpBuilder

    # Clear any existing mappings to ensure clean test state
    ImageBuildEngine._REGISTRY.pop("noop", None)
    ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME.clear()

    # Register NoOpBuilder
    ImageBuildEngine.register("noop", NoOpBuilder())

    # Create an image spec with NoOpBuilder
    expected_image_name = "localhost:30000/test_image:latest"
    image_spec = ImageSpec(
        name="test_image",
        builder="noop",
        base_image=expected_image_name
    )

    # Get the image name before building
    img_name = image_spec.image_name()

    # Build the image
    ImageBuildEngine.build(image_spec)

    # Verify that the mapping was created in _IMAGE_NAME_TO_REAL_NAME
    assert img_name in ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME

    # Verify the mapping value is correct
    actual_real_name = ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME[img_name]
    assert actual_real_name == expected_image_name

    # Clean up
    ImageBuildEngine._REGISTRY.pop("noop", None)
    ImageBuildEngine._IMAGE_NAME_TO_REAL_NAME.clear()
