"""The ImageSpec value: fields, builder methods, value semantics."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest

import imagespec
from imagespec import CopyFileDetection, ImageSpec, SpecError

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"

EVERY_FIELD = dict(
    name="team/my-image",
    python_version="3.10",
    builder="docker",
    source_root=".",
    source_copy_mode=CopyFileDetection.ALL,
    env={"Debug": "True", "_X1": ""},
    registry="localhost:30000/ns",
    packages=["pandas==2.2.0", "numpy"],
    conda_packages=["pytorch"],
    conda_channels=["conda-forge"],
    requirements="requirements.txt",
    apt_packages=["git", "libgl1"],
    cuda="12.1",
    cudnn="8",
    base_image="python:3.10-slim",
    platform="linux/amd64,linux/arm64",
    pip_index="https://pypi.example.com/simple",
    pip_extra_index_url=["https://extra.example.com/simple"],
    pip_secret_mounts=[("/home/me/.netrc", "/root/.netrc")],
    pip_extra_args="--no-cache-dir",
    registry_config="auth.json",
    entrypoint=["python", "-m", "app"],
    commands=["echo hi"],
    tag_format="{spec_hash}-gpu",
    copy=["conf", "data/x.csv"],
    python_exec="/usr/bin/python3",
    runtime_packages=["polars"],
    builder_options={"insecure_registries": ["r.local"], "n": 1, "f": 0.5, "b": True},
    builder_config={"uv_image": "uv:0.4"},
    project="proj",
    project_install_mode="install_project",
    overrides=["six==1.16.0"],
    constraints=["numpy<3"],
)


def test_every_field_is_accepted_and_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = ImageSpec(**EVERY_FIELD)
    assert spec.name == "team/my-image"
    assert spec.python_version == "3.10"
    assert spec.builder == "docker"
    assert spec.source_root == str(tmp_path)
    assert spec.source_copy_mode is CopyFileDetection.ALL
    assert dict(spec.env or {}) == {"Debug": "True", "_X1": ""}
    assert spec.registry == "localhost:30000/ns"
    assert spec.packages == ["pandas==2.2.0", "numpy"]
    assert spec.conda_packages == ["pytorch"]
    assert spec.conda_channels == ["conda-forge"]
    assert spec.requirements == str(tmp_path / "requirements.txt")
    assert spec.apt_packages == ["git", "libgl1"]
    assert (spec.cuda, spec.cudnn) == ("12.1", "8")
    assert spec.base_image == "python:3.10-slim"
    assert spec.platform == "linux/amd64,linux/arm64"
    assert spec.pip_index == "https://pypi.example.com/simple"
    assert spec.pip_extra_index_url == ["https://extra.example.com/simple"]
    assert spec.pip_secret_mounts == [("/home/me/.netrc", "/root/.netrc")]
    assert spec.pip_extra_args == "--no-cache-dir"
    assert spec.registry_config == str(tmp_path / "auth.json")
    assert spec.entrypoint == ["python", "-m", "app"]
    assert spec.commands == ["echo hi"]
    assert spec.tag_format == "{spec_hash}-gpu"
    assert spec.copy == ["conf", "data/x.csv"]
    assert spec.python_exec == "/usr/bin/python3"
    assert spec.runtime_packages == ["polars"]
    assert dict(spec.builder_options or {}) == {
        "insecure_registries": ["r.local"],
        "n": 1,
        "f": 0.5,
        "b": True,
    }
    assert dict(spec.builder_config or {}) == {"uv_image": "uv:0.4"}
    assert spec.project == str(tmp_path / "proj")
    assert spec.project_install_mode == "install_project"
    assert (spec.overrides, spec.constraints) == (["six==1.16.0"], ["numpy<3"])
    assert set(spec.to_dict()) == set(imagespec._core.FIELDS)


def test_defaults() -> None:
    spec = ImageSpec()
    assert spec.name == "imagespec"
    assert spec.python_version == PY  # the evaluating interpreter's, for the default python base
    assert spec.platform == "linux/amd64"
    assert spec.packages is None and spec.env is None and spec.registry is None and spec.base_image is None
    assert spec.source_copy_mode is None
    assert not spec.is_force_push
    # With a base image of its own, python_version stays unset: the base's Python is used.
    assert ImageSpec(base_image="ubuntu:22.04").python_version is None


def test_name_and_registry_are_lowered() -> None:
    spec = ImageSpec(name="My-Image", registry="GHCR.io/Org")
    assert spec.name == "my-image"
    assert spec.registry == "ghcr.io/org"
    assert spec.image_name().startswith("ghcr.io/org/my-image:")


def test_image_name_without_registry() -> None:
    spec = ImageSpec(name="plain")
    assert spec.image_name() == f"plain:{spec.tag}"


@pytest.mark.parametrize(
    ("method", "field", "start", "arg", "expected"),
    [
        ("with_packages", "packages", ["a"], "b", ["a", "b"]),
        ("with_packages", "packages", None, ["b", "c"], ["b", "c"]),
        ("with_apt_packages", "apt_packages", ["git"], ["curl"], ["git", "curl"]),
        ("with_commands", "commands", ["echo 1"], "echo 2", ["echo 1", "echo 2"]),
        ("with_copy", "copy", None, "conf", ["conf"]),
        ("with_runtime_packages", "runtime_packages", ["x"], ["y"], ["x", "y"]),
    ],
)
def test_builder_methods_return_new_specs(
    method: str, field: str, start: list[str] | None, arg: str | list[str], expected: list[str]
) -> None:
    spec = ImageSpec(**{field: start})
    changed = getattr(spec, method)(arg)
    assert getattr(changed, field) == expected
    assert type(getattr(changed, field)) is not tuple
    assert getattr(spec, field) == (start or None)
    assert changed != spec


def test_with_builder_options_merges() -> None:
    spec = ImageSpec(builder_options={"a": 1, "b": 2}).with_builder_options({"b": 3, "c": 4})
    assert dict(spec.builder_options or {}) == {"a": 1, "b": 3, "c": 4}


def test_replace_checks_again() -> None:
    spec = ImageSpec(packages=["a"])
    assert spec.replace(name="other").name == "other"
    with pytest.raises(SpecError, match="packages must be a list"):
        spec.replace(packages="three")
    with pytest.raises(SpecError, match="python_version"):
        spec.replace(python_version="three").image_name()


def test_immutable() -> None:
    spec = ImageSpec(packages=["a"])
    with pytest.raises(AttributeError, match="immutable"):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"ImageSpec.packages is read-only .*spec.with_packages"):
        spec.packages.append("b")  # type: ignore[union-attr]
    with pytest.raises(TypeError, match=r"ImageSpec.env is read-only .*spec.replace\(env=...\)"):
        ImageSpec(env={"A": "1"}).env["A"] = "2"  # type: ignore[index]
    assert spec.packages == ["a"]


def test_force_push_method_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ImageSpec(packages=["a"])
    forced = spec.force_push()
    assert forced.is_force_push and not spec.is_force_push
    assert forced.tag == spec.tag and forced.id == spec.id
    assert forced != spec
    assert forced.with_packages("b").is_force_push
    for var in ("FLYTE_FORCE_PUSH_IMAGE_SPEC", "IMAGESPEC_FORCE_PUSH_IMAGE_SPEC"):
        monkeypatch.setenv(var, "True")
        assert ImageSpec(packages=["a"]).is_force_push
        monkeypatch.setenv(var, "false")
        assert not ImageSpec(packages=["a"]).is_force_push
        monkeypatch.delenv(var)


def test_equality_and_hash_follow_normalised_fields() -> None:
    a = ImageSpec(env={"A": "1", "B": "2"}, packages=["x"])
    b = ImageSpec(env={"B": "2", "A": "1"}, packages=("x",))
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != ImageSpec(env={"A": "1", "B": "2"}, packages=["y"])
    assert a != ImageSpec(env={"A": "1", "B": "2"}, packages=["x"], registry="r.io")
    assert a != "not a spec"


def test_repr_shows_only_what_differs_and_round_trips() -> None:
    spec = ImageSpec(packages=["pandas"], env={"Debug": "True"}, registry="localhost:30000")
    text = repr(spec)
    assert text == "ImageSpec(env={'Debug': 'True'}, registry='localhost:30000', packages=['pandas'])"
    assert eval(text, {"ImageSpec": ImageSpec}) == spec
    assert repr(spec.force_push()).endswith(".force_push()")


def test_repr_hides_url_credentials() -> None:
    spec = ImageSpec(
        pip_index="https://user:s3cret@pypi.example.com/simple",
        pip_extra_index_url=["https://tok@extra.example.com/simple"],
        pip_extra_args="--index-url https://u:hunter2@x.example.com/simple",
    )
    text = repr(spec)
    assert "s3cret" not in text and "tok@" not in text and "hunter2" not in text
    assert "https://***@pypi.example.com/simple" in text
    assert spec.pip_index == "https://user:s3cret@pypi.example.com/simple"  # the build still needs it


def test_pickle_and_copy_round_trip(tmp_path: Path) -> None:
    base = ImageSpec(name="base", packages=["numpy"])
    spec = ImageSpec(base_image=base, packages=["pandas"], copy=["conf"]).force_push()
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec
    assert copy.copy(spec) is spec


def test_base_image_spec_is_kept() -> None:
    base = ImageSpec(name="base", packages=["numpy"])
    spec = ImageSpec(base_image=base, packages=["pandas"])
    assert spec.base_image is base
    assert spec.python_version is None
    assert spec.to_dict()["base_image"] == base.to_dict()
    assert ImageSpec.from_dict(spec.to_dict()) == spec


def test_from_dict_to_dict_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = ImageSpec(**EVERY_FIELD)
    assert ImageSpec.from_dict(spec.to_dict()) == spec


def test_from_env_pins_installed_packages() -> None:
    spec = ImageSpec.from_env(pinned_packages=["pytest"], packages=["pandas"], registry="r.io")
    import pytest as pt

    assert spec.packages == ["pandas", f"pytest=={pt.__version__}"]
    assert spec.python_version == PY
    with pytest.raises(SpecError, match="pinned_packages: 'no-such-dist-xyz' is not installed"):
        ImageSpec.from_env(pinned_packages=["no-such-dist-xyz"])
    with pytest.raises(SpecError, match=r"^python_version can not be used with `from_env`"):
        ImageSpec.from_env(python_version="3.9")


def test_copy_file_detection_accepts_names_and_flytekit_style_enums() -> None:
    class Other:
        name = "LOADED_MODULES"

    assert ImageSpec(source_copy_mode="all").source_copy_mode is CopyFileDetection.ALL
    assert ImageSpec(source_copy_mode=Other()).source_copy_mode is CopyFileDetection.LOADED_MODULES  # type: ignore[arg-type]


def test_is_container(monkeypatch: pytest.MonkeyPatch) -> None:
    a = ImageSpec(packages=["pandas"])
    b = ImageSpec(packages=["scikit-learn"])
    assert a.is_container() and b.is_container()  # outside any image
    monkeypatch.setenv("_F_IMG_ID", a.id)
    assert a.is_container()
    assert not b.is_container()


def test_platform_default_for_loopback_on_this_host() -> None:
    import platform

    expected = "linux/arm64" if platform.machine() == "aarch64" else "linux/amd64"
    assert ImageSpec(registry="localhost:5000").platform == expected
    assert ImageSpec(registry="ghcr.io/org").platform == "linux/amd64"


def test_version_is_single_sourced() -> None:
    import tomllib  # type: ignore[import-not-found,unused-ignore]

    cargo = tomllib.loads((Path(__file__).parent.parent / "Cargo.toml").read_text())
    assert imagespec.__version__ == cargo["package"]["version"]
