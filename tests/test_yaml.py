"""YAML spec files: the constructor's keys, strict, with line and column in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagespec import ImageSpec, SpecError

SEED_YAML = """\
python_version: 3.11
registry: pingsutw
packages:
  - sklearn
env:
  Debug: "True"
"""


def load(tmp_path: Path, text: str) -> ImageSpec:
    path = tmp_path / "image.yaml"
    path.write_text(text)
    return ImageSpec.from_yaml(path)


def test_the_seed_yaml_loads(tmp_path: Path) -> None:
    spec = load(tmp_path, SEED_YAML)
    assert spec == ImageSpec(
        python_version="3.11", registry="pingsutw", packages=["sklearn"], env={"Debug": "True"}
    )
    assert spec.image_name().startswith("pingsutw/imagespec:")


def test_unquoted_versions_keep_their_text(tmp_path: Path) -> None:
    assert load(tmp_path, "python_version: 3.10\n").python_version == "3.10"
    assert load(tmp_path, "python_version: 3.10\ncuda: 12.0\n").cuda == "12.0"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "image.yaml"
    path.write_text("source_root: .\nrequirements: reqs/requirements.txt\ncopy: [conf]\n")
    spec = ImageSpec.from_yaml(path)
    assert spec.source_root == str(tmp_path / "sub")
    assert spec.requirements == str(tmp_path / "sub" / "reqs" / "requirements.txt")


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    base = ImageSpec(name="base", packages=["numpy"], python_version="3.11")
    spec = ImageSpec(
        base_image=base,
        packages=["pandas"],
        env={"B": "2", "A": "1"},
        pip_secret_mounts=[("/s", "/t")],
        builder_options={"x": [1, 2.5, True, None, {"y": "z"}]},
        entrypoint=[],
    )
    text = spec.to_yaml(tmp_path / "out.yaml")
    assert text.index("packages:") < text.index("env:") or "env:" in text
    again = ImageSpec.from_yaml(tmp_path / "out.yaml")
    assert again == spec
    assert again.base_image == base
    assert again.entrypoint == []


def test_nested_base_image_mapping(tmp_path: Path) -> None:
    spec = load(tmp_path, "base_image:\n  name: base\n  packages: [numpy]\npackages: [pandas]\n")
    assert isinstance(spec.base_image, ImageSpec)
    assert spec.base_image.packages == ["numpy"]


BAD_YAML = [
    ("pakages: [a]\n", 1, r"unknown field 'pakages'\. Did you mean 'packages'\?"),
    (
        "name: x\npackages: pandas\n",
        2,
        r"packages: invalid type: string \"pandas\", expected a list of strings",
    ),
    ("env:\n  A: 1\n  A: 2\n", 2, r"duplicate key `A`"),
    ("name: a\nname: b\n", 1, r"duplicate field `name`"),
    ("- a\n- b\n", 1, r"expected a mapping of ImageSpec fields"),
    ("packages: [a\n", 2, r"did not find expected"),
    ("", 1, r"has no fields"),
    ("# only a comment\n", 1, r"has no fields"),
    ("pip_secret_mounts: [[a]]\n", 1, r"pip_secret_mounts"),
    ("builder_options: {a: 1, a: 2}\n", 1, r"duplicate key `a`"),
    ("base_image: [1]\n", 1, r"base_image: .*an image reference string or a mapping of ImageSpec fields"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_YAML)
def test_bad_yaml(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load(tmp_path, text)
    if line is not None:
        assert info.value.line == line
        assert str(info.value).startswith(f"{tmp_path / 'image.yaml'}:{line}:")


def test_a_value_no_image_can_be_made_from_fails_at_use(tmp_path: Path) -> None:
    spec = load(tmp_path, "name: 'my image'\npython_version: '3.11'\n")
    with pytest.raises(SpecError, match=r"name: \"my image\""):
        spec.image_name()


def test_an_unquoted_version_is_read_as_written(tmp_path: Path) -> None:
    # yaml.safe_load reads `3.10` as the float 3.1; this loader keeps the text.
    assert load(tmp_path, "python_version: 3.10\n").python_version == "3.10"


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    layers = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        layers.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "builder_options:\n" + "\n".join("  " + line for line in layers) + "\n"
    with pytest.raises(SpecError, match=r"repetition limit|recursion limit"):
        load(tmp_path, text)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    from imagespec import SourceError

    with pytest.raises(SourceError, match=r"missing\.yaml"):
        ImageSpec.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SourceError, match="is not UTF-8 text"):
        ImageSpec.from_yaml(tmp_path / "bin.yaml")
