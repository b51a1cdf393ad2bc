"""flytekit's ImageSpec contract, field by field: each test states what flytekit 1.16 does (its
source, flytekit/image_spec/image_spec.py at v1.16.24 unless said otherwise) and checks ours.

Where we deliberately differ, the test says so and docs/flytekit.md gives the reason.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from imagespec import CopyFileDetection, ImageSpec, SourceError, SpecError, write_context

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


# --- construction: what flytekit refuses, and in which words ------------------------------------

LIST_FIELDS = [
    "packages",
    "conda_channels",
    "conda_packages",
    "apt_packages",
    "pip_extra_index_url",
    "entrypoint",
    "commands",
    "runtime_packages",
]


@pytest.mark.parametrize("field", LIST_FIELDS)
@pytest.mark.parametrize("value", ["requirements.txt", [1, 2, 3]])
def test_list_fields_refuse_other_types_in_flytekits_words(field: str, value: Any) -> None:
    # image_spec.py:151-167: ValueError(f"{parameter} must be a list of strings or None")
    with pytest.raises(ValueError, match=rf"^{field} must be a list of strings or None") as info:
        ImageSpec(**{field: value})
    assert isinstance(info.value, SpecError)
    assert info.value.field == field


@pytest.mark.parametrize("value", ["secrets.txt", [("src", "id", "dst")], [("src", 1)]])
def test_pip_secret_mounts_refuse_other_types_in_flytekits_words(value: Any) -> None:
    # image_spec.py:169-176
    with pytest.raises(
        ValueError, match=r"^pip_secret_mounts must be a list of tuples of two strings or None"
    ):
        ImageSpec(pip_secret_mounts=value)


@pytest.mark.parametrize("value", ["invalid_builder_option", ["invalid_builder_option"]])
def test_builder_options_refuse_other_types_in_flytekits_words(value: Any) -> None:
    # image_spec.py:178-179
    with pytest.raises(ValueError, match=r"^builder_options must be a dictionary or None"):
        ImageSpec(builder_options=value)


# image_spec.py:564-570 (validate_container_registry_name), called at 122 after lowering at 121;
# the lists are flytekit's own test's (tests/flytekit/unit/core/image_spec/test_image_spec.py:270-296).
INVALID_REGISTRIES = ["invalid:port:50000", "ghcr.io/flyteorg:latest", "flyteorg:latest"]
VALID_REGISTRIES = [
    "localhost:30000",
    "localhost:30000/flyte",
    "192.168.1.1:30000",
    "192.168.1.1:30000/myimage",
    "ghcr.io/flyteorg",
    "my.registry.com/myimage",
    "my.registry.com:5000/myimage",
    "myregistry:5000/myimage",
    "us-west1-docker.pkg.dev/example.com/my-project/my-repo",
    "flyteorg",
    "GHCR.io/FlyteOrg",
    "...",  # a placeholder published READMEs use
    "ghcr.io/my_org",
]


@pytest.mark.parametrize("registry", INVALID_REGISTRIES)
def test_registries_flytekit_refuses_are_refused_in_its_words(registry: str) -> None:
    with pytest.raises(ValueError, match=r"^Invalid container registry name: .*\n Expected formats:"):
        ImageSpec(registry=registry)


@pytest.mark.parametrize("registry", VALID_REGISTRIES)
def test_registries_flytekit_accepts_are_accepted_and_lowered(registry: str) -> None:
    assert ImageSpec(registry=registry).registry == registry.lower()


def test_a_placeholder_registry_fails_when_the_image_is_named() -> None:
    # flytekit names it ".../flytekit:<tag>", which no engine takes; ours says so at that point.
    spec = ImageSpec(registry="...", python_version="3.11")
    assert spec.is_container()  # the module that declares it imports
    with pytest.raises(SpecError, match=r"^registry: \"...\""):
        spec.image_name()


def test_unknown_keywords_are_type_errors() -> None:
    # A dataclass: TypeError("__init__() got an unexpected keyword argument ...").
    with pytest.raises(TypeError, match="unexpected keyword argument 'pakages'"):
        ImageSpec(pakages=["pandas"])  # type: ignore[call-arg]


# --- what flytekit sets when a spec is made -----------------------------------------------------


def test_name_is_lowered() -> None:
    # image_spec.py:117
    assert ImageSpec(name="FLYTEKIT").name == "flytekit"


def test_default_platform() -> None:
    # image_spec.py:131-139 (arm64 only for a localhost registry on an arm64 host)
    assert ImageSpec().platform == "linux/amd64"


def test_source_root_alone_means_loaded_modules(tmp_path: Path) -> None:
    # image_spec.py:143-144
    assert ImageSpec(source_root=str(tmp_path)).source_copy_mode == CopyFileDetection.LOADED_MODULES
    assert (
        ImageSpec(source_root=str(tmp_path), source_copy_mode="ALL").source_copy_mode == CopyFileDetection.ALL
    )
    assert ImageSpec().source_copy_mode is None


def test_flytekits_copy_mode_enum_is_taken() -> None:
    # flytekit/constants.py: CopyFileDetection(Enum) with the same names and values as ours.
    from imagespec.constants import CopyFileDetection as Mirrored

    assert Mirrored is CopyFileDetection
    assert [(m.name, m.value) for m in CopyFileDetection] == [
        ("LOADED_MODULES", 1),
        ("ALL", 2),
        ("NO_COPY", 3),
    ]


def test_positional_arguments_in_flytekits_field_order() -> None:
    # image_spec.py:84-112: a dataclass, so ImageSpec("plot-xgboost", ...) sets name, python_version, ...
    spec = ImageSpec("plot-xgboost", "3.11", None, None, {"A": "1"}, "localhost:30000", ["xgboost"])
    assert (spec.name, spec.python_version, spec.env, spec.registry, spec.packages) == (
        "plot-xgboost",
        "3.11",
        {"A": "1"},
        "localhost:30000",
        ["xgboost"],
    )


# --- result types ---------------------------------------------------------------------------------


def test_list_and_dict_fields_are_lists_and_dicts() -> None:
    # Dataclass fields typed List[str] / Dict[str, ...] (image_spec.py:84-112): flytekit users compare
    # them with lists, add lists to them and serialise them.
    spec = ImageSpec(
        packages=["pandas"], env={"A": "1"}, builder_options={"k": "v"}, pip_secret_mounts=[("a", "b")]
    )
    assert isinstance(spec.packages, list) and spec.packages == ["pandas"]
    assert spec.packages + ["numpy"] == ["pandas", "numpy"]  # noqa: RUF005 - what users write
    assert isinstance(spec.env, dict) and spec.env == {"A": "1"}
    assert spec.pip_secret_mounts == [("a", "b")]
    assert json.loads(json.dumps({"p": spec.packages, "e": spec.env})) == {"p": ["pandas"], "e": {"A": "1"}}
    assert pickle.loads(pickle.dumps(spec.packages)) == ["pandas"]
    assert copy.deepcopy(spec.env) == {"A": "1"}


def test_fields_cannot_be_changed_in_place() -> None:
    # Deliberate difference: flytekit's lists are the spec's own (a change changes the spec, after
    # its id may have been cached); ours are read-only and say which method makes a changed copy.
    spec = ImageSpec(packages=["pandas"])
    with pytest.raises(TypeError, match=r"spec\.with_packages\(\.\.\.\)"):
        spec.packages.append("numpy")  # type: ignore[union-attr]
    assert spec.packages == ["pandas"]


def test_force_push_flags() -> None:
    # image_spec.py:118 (_is_force_push from FLYTE_FORCE_PUSH_IMAGE_SPEC) and force_push() at 394-401.
    spec = ImageSpec()
    assert spec._is_force_push is False
    assert spec.force_push()._is_force_push is True
    assert spec._is_force_push is False


# --- identity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"pip_secret_mounts": [("src", "dst")]}, {"builder": "envd"}],
)
def test_id_and_tag_leave_out_how_the_image_is_built(change: dict[str, Any]) -> None:
    # image_spec.py:196: pip_secret_mounts and builder are excluded from the id (and so the tag).
    plain = ImageSpec(name="my_image", python_version="3.11")
    changed = ImageSpec(name="my_image", python_version="3.11", **change)
    assert (plain.id, plain.tag) == (changed.id, changed.tag)


def test_runtime_packages_are_part_of_the_image() -> None:
    # Deliberate difference: flytekit leaves runtime_packages out of the id (image_spec.py:196)
    # because its task entrypoint installs them at every start; imagespec installs them into the
    # image, so they are content and change the tag.
    plain = ImageSpec(python_version="3.11")
    assert plain.tag != plain.with_runtime_packages(["numpy"]).tag


# --- values flytekit takes that mean something here ----------------------------------------------


def test_a_name_with_a_registry_and_a_tag() -> None:
    # flytekit takes it (its own test: test_image_spec.py:349-352) and names the image
    # f"{name}:{tag}" (image_spec.py:262), "localhost:30000/flytekit:0.1.5:<hash>", no reference.
    # Ours: the registry and the tag in the name are the image's.
    spec = ImageSpec(name="localhost:30000/flytekit:0.1.5")
    assert spec.with_runtime_packages(["my-new-package"]).runtime_packages == ["my-new-package"]
    assert spec.image_name() == "localhost:30000/flytekit:0.1.5"
    assert ImageSpec(name="team/app:v2", registry="ghcr.io/acme").image_name() == "ghcr.io/acme/team/app:v2"


@pytest.mark.parametrize(
    ("fields", "both"),
    [
        ({"name": "app:0.1", "tag_format": "{spec_hash}-dev"}, r"carries a tag \(0\.1\) and tag_format"),
        ({"name": "localhost:5000/app", "registry": "ghcr.io/acme"}, r"carries a registry .* and registry"),
    ],
)
def test_a_name_that_says_what_another_field_says_cannot_be_named(fields: dict[str, Any], both: str) -> None:
    spec = ImageSpec(**fields)
    with pytest.raises(SpecError, match=both):
        spec.image_name()


def test_a_tag_format_without_the_hash_is_a_fixed_tag() -> None:
    # image_spec.py:256-257: tag_format.format(spec_hash=tag); "v1" gives "v1".
    assert ImageSpec(name="app", tag_format="v1").image_name() == "app:v1"
    spec = ImageSpec(name="my_image", python_version="3.11", tag_format="{spec_hash}-dev")
    assert spec.image_name() == f"my_image:{spec.tag}" and spec.tag.endswith("-dev")


def test_absolute_copy_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # flytekit takes them when the spec is made; its tag skips missing files
    # (flytekit/tools/fast_registration.py:251-253) and its build refuses absolute paths
    # (flytekit/image_spec/default_builder.py:440-441). Ours: inside the spec's folder an absolute
    # path is its relative spelling; elsewhere it lands at /root/<path>.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("1,2\n")
    relative = ImageSpec(python_version="3.11", copy=["data.csv"])
    absolute = ImageSpec(python_version="3.11", copy=[str(tmp_path / "data.csv")])
    assert absolute.copy == [str(tmp_path / "data.csv")]
    assert absolute.tag == relative.tag
    elsewhere = tmp_path.parent / f"{tmp_path.name}-other" / "file1.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text("x\n")
    spec = ImageSpec(python_version="3.11", copy=[str(elsewhere)])
    built = write_context(spec, tmp_path / "ctx")
    assert f"copy/{str(elsewhere).lstrip('/')}" in built.files


def test_a_missing_copy_path_is_named_but_not_built(tmp_path: Path) -> None:
    spec = ImageSpec(python_version="3.11", copy=["/src/file1.txt"])
    assert spec.image_name().startswith("imagespec:")
    with pytest.raises(SourceError, match=r"copy: /src/file1\.txt: does not exist"):
        write_context(spec, tmp_path / "ctx")


def test_relative_secret_mount_targets(tmp_path: Path) -> None:
    # flytekit writes "--mount=type=secret,id=secret_1,target=secret_dst_2" into a RUN that has
    # WORKDIR /root (default_builder.py:26, 257-262; its test: test_default_builder.py:59): the
    # target is /root/secret_dst_2.
    (tmp_path / "secret").write_text("token\n")
    spec = ImageSpec(
        python_version="3.11", packages=["six"], pip_secret_mounts=[(str(tmp_path / "secret"), "dst")]
    )
    assert spec.pip_secret_mounts == [(str(tmp_path / "secret"), "dst")]
    dockerfile = write_context(spec, tmp_path / "ctx").dockerfile_text
    assert "target=/root/dst" in dockerfile
    assert "token" not in dockerfile


def test_a_number_for_python_version() -> None:
    # yaml.safe_load("python_version: 3.11") gives 3.11 (a float), which flytekit keeps as is and
    # writes into its Dockerfile; "3.10" unquoted gives 3.1, Python 3.1, which cannot be built.
    assert ImageSpec(python_version=3.11).python_version == "3.11"  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ImageSpec(python_version=3.10)  # type: ignore[arg-type]
    assert spec.python_version == "3.10"
    assert spec == ImageSpec(python_version="3.10")
    assert "YAML reads an unquoted 3.10 as 3.1" in str(caught[0].message)


# --- from_env -----------------------------------------------------------------------------------------


def test_from_env_pins_installed_versions() -> None:
    # image_spec.py:437-449: packages pinned with importlib.metadata.version.
    spec = ImageSpec.from_env(pinned_packages=["pytest", "hypothesis"], packages=["scikit-learn"])
    assert spec.python_version == PY
    assert f"pytest=={version('pytest')}" in spec.packages
    assert f"hypothesis=={version('hypothesis')}" in spec.packages
    assert "scikit-learn" in spec.packages
    assert ImageSpec.from_env().python_version == PY


def test_from_env_errors_are_flytekits() -> None:
    # image_spec.py:425-432: ValueError "python_version can not be used with `from_env` ..."
    with pytest.raises(ValueError, match=r"^python_version can not be used with `from_env`"):
        ImageSpec.from_env(pinned_packages=["pytest"], python_version="3.9")
    # image_spec.py:446: importlib.metadata.version raises PackageNotFoundError.
    with pytest.raises(PackageNotFoundError) as info:
        ImageSpec.from_env(pinned_packages=["no-such-distribution-xyz"])
    assert isinstance(info.value, SpecError)
    assert "no-such-distribution-xyz" in str(info.value)


@pytest.mark.parametrize(
    ("value", "forced"), [("True", True), ("y", True), ("1", True), ("off", False), ("No", False)]
)
def test_flytekit_variables_read_as_flytekit_reads_them(
    monkeypatch: pytest.MonkeyPatch, value: str, forced: bool
) -> None:
    # image_spec.py:118-119 reads FLYTE_FORCE_PUSH_IMAGE_SPEC and FLYTE_IMG_FAST_FAIL with str2bool
    # (flytekit/clis/helpers.py:26-32): any value but false, 0, off or no is true.
    monkeypatch.setenv("FLYTE_FORCE_PUSH_IMAGE_SPEC", value)
    monkeypatch.setenv("FLYTE_IMG_FAST_FAIL", value)
    spec = ImageSpec()
    assert (spec._is_force_push, spec._fast_fail) == (forced, forced)
