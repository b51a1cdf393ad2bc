"""Every bad input gets a SpecError that names the field and says what is allowed: at once for what
flytekit refuses too, at the first use that needs an image for what flytekit takes."""

from __future__ import annotations

from typing import Any

import pytest

from imagespec import ImageSpec, ImageSpecError, SpecError

# What flytekit refuses too when a spec is made (a wrong type, a registry its pattern refuses, an
# unknown keyword): refused at once, a ValueError (TypeError for a keyword), in flytekit's words.
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"registry": "https://ghcr.io"}, r"^Invalid container registry name: 'https://ghcr\.io'"),
    ({"registry": "ghcr.io//org"}, r"^Invalid container registry name: 'ghcr\.io//org'"),
    ({"registry": "my registry"}, r"^Invalid container registry name: 'my registry'"),
    ({"registry": "ghcr.io/flyteorg:latest"}, r"^Invalid container registry name"),
    # types
    (
        {"packages": "pandas"},
        r"^packages must be a list of strings or None, got str 'pandas'; wrap a single value in a list",
    ),
    ({"packages": ["a", 1]}, r"^packages must be a list of strings or None, but item 1 is int 1"),
    ({"apt_packages": [None]}, r"^apt_packages must be a list of strings or None, but item 0 is NoneType"),
    ({"commands": {"a": 1}}, r"^commands must be a list of strings or None, got dict"),
    ({"copy": "data.csv"}, r"^copy must be a list of strings or None, got str"),
    ({"name": 3}, r"^name must be a string or None, got int 3"),
    ({"env": ["A=1"]}, r"^env must be a dictionary of strings to strings or None, got list"),
    ({"env": {"A": 1}}, r"^env must be a dictionary of strings to strings or None, but the value of \"A\""),
    (
        {"pip_secret_mounts": [("a",)]},
        r"^pip_secret_mounts must be a list of tuples of two strings or None, but item 0 is tuple",
    ),
    ({"pip_secret_mounts": "a"}, r"^pip_secret_mounts must be a list of tuples of two strings or None"),
    ({"builder_options": "fast"}, r"^builder_options must be a dictionary or None, got str 'fast'"),
    ({"builder_options": {"a": object()}}, r"builder_options\[\"a\"\]: values must be strings, numbers"),
    ({"builder_options": {1: "a"}}, r"builder_options: keys must be strings, got int"),
    ({"builder_options": {"n": float("nan")}}, r"builder_options: contains NaN"),
    ({"builder_config": []}, r"^builder_config must be a dictionary or None, got list"),
    (
        {"base_image": 3},
        r"^base_image must be an image reference string, an ImageSpec, a dict of its fields or None, got int",
    ),
    ({"source_copy_mode": "SOME"}, r"source_copy_mode: \"SOME\" is not one of ALL, LOADED_MODULES, NO_COPY"),
]

# What flytekit takes when a spec is made but no image can be made from: the spec is made (and has
# an id, so a module declaring it imports everywhere); naming, tagging or building it fails.
UNUSABLE: list[tuple[dict[str, Any], str]] = [
    ({"name": "my image"}, r"name: \"my image\": \"my image\" is not a valid repository name part"),
    ({"name": "a..b"}, r"name: \"a\.\.b\": \"a\.\.b\" is not a valid repository name part"),
    ({"name": "a//b"}, r"name: \"a//b\" has an empty path part"),
    ({"name": "img@sha256:abc"}, r"name: \"img@sha256:abc\" contains a digest"),
    ({"name": ""}, r"name: is empty"),
    ({"name": "-lead"}, r"name: .* is not a valid repository name part"),
    ({"name": "img:-bad"}, r"name: .*\"-bad\" is not a valid tag"),
    ({"name": "a:1", "tag_format": "{spec_hash}-x"}, r"name: \"a:1\" carries a tag \(1\) and tag_format"),
    (
        {"name": "localhost:5000/a", "registry": "ghcr.io/o"},
        r"name: .* carries a registry .* and registry is",
    ),
    ({"registry": "localhost:99999"}, r"registry: \"localhost:99999\": port \"99999\" is not a number"),
    ({"registry": "bad_host.io:5000"}, r"registry: .*\"bad_host\.io\" is not a valid host name"),
    ({"registry": "..."}, r"registry: .* is not a valid host name"),
    ({"env": {"1A": "x"}}, r"env: \"1A\" is not a valid variable name"),
    ({"env": {"A-B": "x"}}, r"env: \"A-B\" is not a valid variable name"),
    ({"env": {"": "x"}}, r"env: \"\" is not a valid variable name"),
    ({"base_image": "has space:1"}, r"base_image: \"has space:1\" is not an image reference"),
    ({"packages": ["pan\0das"]}, r"packages\[0\]: contains a NUL byte"),
    ({"env": {"A": "x\0"}}, r"env\[\"A\"\]: contains a NUL byte"),
    ({"commands": ["echo \0"]}, r"commands\[0\]: contains a NUL byte"),
    ({"builder_options": {"k": ["\0"]}}, r"builder_options: contains a NUL byte"),
    ({"name": "a\0b"}, r"name: contains a NUL byte"),
    ({"python_version": "3"}, r"python_version: \"3\" is not a version like '3\.11' or '3\.11\.4'"),
    ({"python_version": "3.x"}, r"python_version: \"3\.x\" is not a version"),
    ({"python_version": "3.11.4.1"}, r"python_version: .* is not a version"),
    ({"cuda": "twelve"}, r"cuda: \"twelve\" is not a version"),
    ({"copy": ["../secrets"]}, r"copy: \"\.\./secrets\" climbs with '\.\.'"),
    ({"copy": ["a/../../b"]}, r"copy: .* climbs with '\.\.'"),
    ({"copy": ["."]}, r"copy: \"\.\" names no file or folder"),
    (
        {"tag_format": "{spec_hash}-{other}"},
        r"tag_format: .* the only placeholder allowed is '\{spec_hash\}'",
    ),
    ({"tag_format": "-{spec_hash}"}, r"tag_format: .* does not give a valid tag"),
    ({"tag_format": "{spec_hash}/x"}, r"tag_format: .* does not give a valid tag"),
    ({"tag_format": "{spec_hash}" + "x" * 97}, r"tag_format: .* at most 128 characters"),
    ({"platform": "linux"}, r"platform: \"linux\" is not os/arch\[/variant\]"),
    ({"platform": "linux/amd64,"}, r"platform: \"\" is not os/arch"),
    (
        {"pip_index": "pypi.org/simple"},
        r"pip_index: \"pypi\.org/simple\" is not an http\(s\):// or file:// URL",
    ),
    ({"pip_extra_index_url": ["ftp://x"]}, r"pip_extra_index_url\[0\]: \"ftp://x\" is not an http"),
    ({"pip_extra_args": "--a\n--b"}, r"pip_extra_args: .* contains a line break"),
    ({"packages": ["pandas\nRUN rm -rf /"]}, r"packages\[0\]: .* contains a line break"),
    ({"packages": ["  "]}, r"packages\[0\]: is empty"),
    ({"apt_packages": ["Git"]}, r"apt_packages\[0\]: \"Git\" is not a Debian package name"),
    ({"apt_packages": ["git;rm"]}, r"apt_packages\[0\]: \"git;rm\" is not a Debian package name"),
    ({"python_exec": "python3"}, r"python_exec: \"python3\" must be an absolute path"),
    ({"builder": "my builder"}, r"builder: \"my builder\" must be one word"),
    ({"pip_secret_mounts": [("a", "")]}, r"pip_secret_mounts\[0\]: is empty"),
]


@pytest.mark.parametrize(("fields", "message"), REFUSED, ids=[repr(f)[:40] for f, _ in REFUSED])
def test_what_flytekit_refuses_is_refused_at_once(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        ImageSpec(**fields)
    assert isinstance(info.value, ImageSpecError)
    assert isinstance(info.value, ValueError)
    assert info.value.field is not None
    assert info.value.field.split("[")[0].split(".")[0] in fields


@pytest.mark.parametrize(("fields", "message"), UNUSABLE, ids=[repr(f)[:40] for f, _ in UNUSABLE])
def test_what_no_image_can_be_made_from_fails_at_use(fields: dict[str, Any], message: str) -> None:
    spec = ImageSpec(**{"python_version": "3.11", **fields})
    assert spec.id  # an id: `is_container()` works, so a module declaring the spec imports
    for use in (spec.image_name, lambda: spec.tag, spec.tag_inputs):
        with pytest.raises(SpecError, match=message) as info:
            use()
        assert info.value.field is not None
        assert info.value.field.split("[")[0].split(".")[0] in fields
        assert "no image can be built from it" in str(info.value)


def test_a_base_spec_that_cannot_be_used_names_the_path() -> None:
    spec = ImageSpec(python_version="3.11", base_image={"python_version": "3.11", "packages": ["a\nb"]})
    with pytest.raises(SpecError, match=r"base_image\.packages\[0\]: .* contains a line break"):
        spec.image_name()


def test_unknown_keywords_are_type_errors_with_a_suggestion() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'pakages'\. Did you mean 'packages'\?"):
        ImageSpec(pakages=["a"])  # type: ignore[call-arg]
    with pytest.raises(SpecError, match=r"unexpected keyword argument 'zzzzzzzzzz'\. Valid fields: name, "):
        ImageSpec(zzzzzzzzzz=1)  # type: ignore[call-arg]


def test_errors_inside_a_base_spec_name_the_path() -> None:
    with pytest.raises(SpecError, match=r"^base_image\.packages must be a list of strings or None"):
        ImageSpec(base_image={"packages": [1]})


def test_positional_arguments_follow_flytekits_field_order() -> None:
    spec = ImageSpec("plot-xgboost", "3.11", None, None, {"A": "1"}, "localhost:5000", ["xgboost"])
    assert (spec.name, spec.python_version, spec.env, spec.registry, spec.packages) == (
        "plot-xgboost",
        "3.11",
        {"A": "1"},
        "localhost:5000",
        ["xgboost"],
    )
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        ImageSpec("a", name="b")  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes from 0 to 29 positional arguments but 30 were given"):
        ImageSpec(*([None] * 30))  # type: ignore[misc]


def test_credentials_never_appear_in_errors() -> None:
    spec = ImageSpec(pip_extra_index_url=["https://user:hunter2@host/simple", "nope://user:hunter2@h"])
    with pytest.raises(SpecError) as info:
        spec.image_name()
    assert "hunter2" not in str(info.value)
    assert "***@h" in str(info.value)
    with pytest.raises(SpecError) as info:
        ImageSpec(pip_extra_index_url="https://user:hunter2@host/simple")  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)


def test_apt_package_forms_the_build_accepts_are_accepted_at_construction() -> None:
    forms = ["git/bookworm-backports", "libssl3=3.0.11-1~deb12u2", "gcc:amd64", "g++"]
    assert ImageSpec(apt_packages=forms).apt_packages == forms
