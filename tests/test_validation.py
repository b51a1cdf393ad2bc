"""Every bad input gets a SpecError that names the field and says what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from imagespec import ImageSpec, ImageSpecError, SpecError

BAD: list[tuple[dict[str, Any], str]] = [
    # unknown keyword: the closest field, then the valid ones
    (
        {"pakages": ["a"]},
        r"pakages: unknown field 'pakages'\. Did you mean 'packages'\? Valid fields: name, ",
    ),
    ({"zzzzzzzzzz": 1}, r"unknown field 'zzzzzzzzzz'\. Valid fields:"),
    # names and registries
    ({"name": "my image"}, r"name: \"my image\": \"my image\" is not a valid repository name part"),
    ({"name": "a..b"}, r"name: \"a\.\.b\": \"a\.\.b\" is not a valid repository name part"),
    ({"name": "a//b"}, r"name: \"a//b\" has an empty path part"),
    ({"name": "img:latest"}, r"name: \"img:latest\" contains \":\"; give the name without a tag"),
    ({"name": "img@sha256:abc"}, r"name: .* contains \"@\""),
    ({"name": ""}, r"name: is empty"),
    ({"name": "-lead"}, r"name: .* is not a valid repository name part"),
    ({"registry": "https://ghcr.io"}, r"registry: \"https://ghcr.io\" has a URL scheme"),
    ({"registry": "ghcr.io//org"}, r"registry: \"ghcr.io//org\" has an empty path part"),
    ({"registry": "my registry"}, r"registry: .* is not a valid namespace"),
    ({"registry": "localhost:99999"}, r"registry: \"localhost:99999\": port \"99999\" is not a number"),
    ({"registry": "bad_host.io:5000"}, r"registry: .*\"bad_host\.io\" is not a valid host name"),
    # types
    (
        {"packages": "pandas"},
        r"packages: must be a list of strings, got str \(wrap a single value in a list\)",
    ),
    ({"packages": ["a", 1]}, r"packages\[1\]: must be a string, got int"),
    ({"apt_packages": [None]}, r"apt_packages\[0\]: must be a string, got NoneType"),
    ({"commands": {"a": 1}}, r"commands: must be a list of strings, got dict"),
    ({"name": 3}, r"name: must be a string, got int"),
    ({"env": ["A=1"]}, r"env: must be a dict of strings to strings, got list"),
    ({"env": {"A": 1}}, r"env\[\"A\"\]: must be a string, got int"),
    ({"env": {"1A": "x"}}, r"env: \"1A\" is not a valid variable name"),
    ({"env": {"A-B": "x"}}, r"env: \"A-B\" is not a valid variable name"),
    ({"env": {"": "x"}}, r"env: \"\" is not a valid variable name"),
    ({"pip_secret_mounts": [("a",)]}, r"pip_secret_mounts\[0\]: must be a \(source, target\) pair"),
    ({"pip_secret_mounts": "a"}, r"pip_secret_mounts: must be a list of \(source, target\) pairs"),
    (
        {"pip_secret_mounts": [("a", "rel/path")]},
        r"pip_secret_mounts\[0\]: target \"rel/path\" must be an absolute",
    ),
    ({"builder_options": {"a": object()}}, r"builder_options\[\"a\"\]: values must be strings, numbers"),
    ({"builder_options": {1: "a"}}, r"builder_options: keys must be strings, got int"),
    ({"builder_config": []}, r"builder_config: must be a dict, got list"),
    (
        {"base_image": 3},
        r"base_image: must be an image reference string, an ImageSpec or a dict of its fields, got int",
    ),
    ({"base_image": "has space:1"}, r"base_image: \"has space:1\" is not an image reference"),
    # NUL bytes anywhere
    ({"packages": ["pan\0das"]}, r"packages\[0\]: contains a NUL byte"),
    ({"env": {"A": "x\0"}}, r"env\[\"A\"\]: contains a NUL byte"),
    ({"commands": ["echo \0"]}, r"commands\[0\]: contains a NUL byte"),
    ({"builder_options": {"k": ["\0"]}}, r"builder_options: contains a NUL byte"),
    ({"name": "a\0b"}, r"name: contains a NUL byte"),
    # versions
    ({"python_version": "3"}, r"python_version: \"3\" is not a version like '3\.11' or '3\.11\.4'"),
    ({"python_version": "3.x"}, r"python_version: \"3\.x\" is not a version"),
    ({"python_version": "3.11.4.1"}, r"python_version: .* is not a version"),
    ({"python_version": 3.11}, r"python_version: must be a string, got float"),
    ({"cuda": "twelve"}, r"cuda: \"twelve\" is not a version"),
    # copy entries
    ({"copy": ["/etc/passwd"]}, r"copy: \"/etc/passwd\" is absolute"),
    ({"copy": ["../secrets"]}, r"copy: \"\.\./secrets\" climbs out with '\.\.'"),
    ({"copy": ["a/../../b"]}, r"copy: .* climbs out with '\.\.'"),
    ({"copy": ["."]}, r"copy: \"\.\" names no file or folder"),
    # tag_format
    ({"tag_format": "v1"}, r"tag_format: \"v1\" must contain '\{spec_hash\}'"),
    (
        {"tag_format": "{spec_hash}-{other}"},
        r"tag_format: .* the only placeholder allowed is '\{spec_hash\}'",
    ),
    ({"tag_format": "-{spec_hash}"}, r"tag_format: .* does not give a valid tag"),
    ({"tag_format": "{spec_hash}/x"}, r"tag_format: .* does not give a valid tag"),
    ({"tag_format": "{spec_hash}" + "x" * 97}, r"tag_format: .* at most 128 characters"),
    # others
    ({"source_copy_mode": "SOME"}, r"source_copy_mode: \"SOME\" is not one of ALL, LOADED_MODULES, NO_COPY"),
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
]


@pytest.mark.parametrize(("fields", "message"), BAD, ids=[repr(f)[:40] for f, _ in BAD])
def test_bad_input_is_a_clear_spec_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        ImageSpec(**fields)
    assert isinstance(info.value, ImageSpecError)
    assert info.value.field is not None
    assert info.value.field.split("[")[0].split(".")[0] in {*fields, "pakages", "zzzzzzzzzz"}


def test_errors_inside_a_base_spec_name_the_path() -> None:
    with pytest.raises(SpecError, match=r"base_image\.packages\[0\]: must be a string"):
        ImageSpec(base_image={"packages": [1]})


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="keyword arguments only"):
        ImageSpec("name")  # type: ignore[misc]


def test_credentials_never_appear_in_errors() -> None:
    with pytest.raises(SpecError) as info:
        ImageSpec(pip_extra_index_url=["https://user:hunter2@host/simple", "nope://user:hunter2@h"])
    assert "hunter2" not in str(info.value)
    assert "***@h" in str(info.value)


def test_apt_package_forms_the_build_accepts_are_accepted_at_construction() -> None:
    forms = ["git/bookworm-backports", "libssl3=3.0.11-1~deb12u2", "gcc:amd64", "g++"]
    assert ImageSpec(apt_packages=forms).apt_packages == tuple(forms)
