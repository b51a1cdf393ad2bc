"""The imagespec an image gets is this project at this version (docs/runtime.md): the index's
release for an installation from the index, this installation's own wheel otherwise, a given wheel
when it fits, and a clear error before any engine runs when nothing fits."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import imagespec
from imagespec import BuildError, ImageSpec, SpecError, _core, _runtime
from imagespec._build import dockerfile, write_context

VERSION = imagespec.__version__
REQUIREMENT = f"imagespec-build=={VERSION}"


@pytest.fixture(autouse=True)
def own_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/conftest.py gives recipe tests the index's runtime; these look at the choice itself.
    monkeypatch.delenv("IMAGESPEC_WHEEL", raising=False)


def test_this_checkout_gives_images_its_own_wheel(tmp_path: Path) -> None:
    assert not _runtime.from_index()  # installed from the checkout (maturin develop)
    spec = ImageSpec(python_version="3.11", packages=["six"])
    built = write_context(spec, tmp_path / "ctx")
    wheels = [f for f in built.files if f.startswith("imagespec/wheel/")]
    assert len(wheels) == 1 and wheels[0].startswith(f"imagespec/wheel/imagespec_build-{VERSION}-cp39-abi3-")
    assert "imagespec==" not in built.dockerfile_text and REQUIREMENT not in built.dockerfile_text
    again = _runtime.own_wheel()
    assert again.name == Path(wheels[0]).name
    assert again.stat().st_mtime_ns == _runtime.own_wheel().stat().st_mtime_ns  # made once


def test_the_own_wheel_installs_and_is_this_project(tmp_path: Path) -> None:
    wheel = _runtime.own_wheel()
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(f"imagespec_build-{VERSION}.dist-info/METADATA").decode()
    assert "imagespec/__init__.py" in names and any(n.startswith("imagespec/_core.") for n in names)
    assert "Name: imagespec-build\n" in meta and f"Version: {VERSION}\n" in meta
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
    )
    code = (
        "import json, imagespec; from importlib import metadata; "
        "print(json.dumps([imagespec.__version__, metadata.version('imagespec-build'), "
        "imagespec.ImageSpec(python_version='3.11').id]))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [VERSION, VERSION, ImageSpec(python_version="3.11").id]


def test_an_installation_from_an_index_gives_the_index_release(tmp_path: Path) -> None:
    # What pip and uv write: direct_url.json for every source but an index (PEP 610).
    info = tmp_path / f"imagespec_build-{VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: imagespec-build\nVersion: {VERSION}\n")
    assert _runtime.from_index(info)
    (info / "direct_url.json").write_text('{"url": "file:///tmp/x.whl", "archive_info": {}}')
    assert not _runtime.from_index(info)
    other = tmp_path / "imagespec-0.1.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: imagespec\nVersion: 0.1.0\n")
    assert not _runtime.from_index(other)  # another project's name


def test_index_asks_for_this_project_by_its_own_name() -> None:
    text = dockerfile(ImageSpec(python_version="3.11"), imagespec_wheel="index")
    assert f'"{REQUIREMENT}"' in text
    assert '"imagespec==' not in text


def test_no_runtime_when_the_spec_says_so(tmp_path: Path) -> None:
    on = ImageSpec(python_version="3.11", packages=["six"])
    off = on.replace(builder_config={_core.RUNTIME_OPTION: False})
    text = write_context(off, tmp_path / "ctx").dockerfile_text
    assert "imagespec_build" not in text and "imagespec-build" not in text
    assert off.tag != on.tag
    with pytest.raises(SpecError, match=r"builder_config\.imagespec_runtime: must be true or false"):
        dockerfile(on.replace(builder_config={_core.RUNTIME_OPTION: "no"}))


def test_a_platform_no_wheel_fits_stops_before_any_engine(tmp_path: Path) -> None:
    spec = ImageSpec(python_version="3.11", platform="linux/arm64")
    with pytest.raises(BuildError) as info:
        write_context(spec, tmp_path / "ctx")
    message = str(info.value)
    for needle in ("linux/arm64", "aarch64", "imagespec_wheel", "IMAGESPEC_WHEEL", "imagespec_runtime"):
        assert needle in message, message
    assert not (tmp_path / "ctx").exists()


def test_a_wheel_per_platform_beside_the_given_one_serves_its_platform(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    x86 = wheels / f"imagespec_build-{VERSION}-cp39-abi3-manylinux_2_17_x86_64.whl"
    arm = wheels / f"imagespec_build-{VERSION}-cp39-abi3-manylinux_2_17_aarch64.whl"
    for w in (x86, arm):
        w.write_bytes(b"PK")
    spec = ImageSpec(python_version="3.11", platform="linux/arm64")
    text = dockerfile(spec, imagespec_wheel=x86)
    assert f"/tmp/imagespec/wheel/{arm.name}" in text and x86.name not in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("imagespec-0.1.0-py3-none-any.whl", r"is not a wheel of imagespec-build"),
        (
            "imagespec_build-0.0.9-cp39-abi3-manylinux_2_17_x86_64.whl",
            rf"is imagespec-build 0\.0\.9, but this imagespec is {VERSION}",
        ),
        (
            f"imagespec_build-{VERSION}-cp312-cp312-manylinux_2_17_x86_64.whl",
            r"python cp312.* does not fit the image \(linux/amd64, Python 3\.11\)",
        ),
        ("evil name.whl", r"is not a wheel of imagespec-build"),
    ],
)
def test_wheels_that_are_not_this_project_for_this_image_are_refused(
    tmp_path: Path, name: str, message: str
) -> None:
    wheel = tmp_path / name
    wheel.write_bytes(b"PK")
    with pytest.raises(BuildError, match=message):
        dockerfile(ImageSpec(python_version="3.11"), imagespec_wheel=wheel)


@pytest.mark.parametrize(
    "package",
    ["imagespec", "ImageSpec==0.4.1", "imagespec-build", "imagespec_build>=0.1"],  # refused: dist-guard: ok
)
def test_packages_cannot_bring_another_imagespec(tmp_path: Path, package: str) -> None:
    spec = ImageSpec(python_version="3.11", packages=["six", package])
    with pytest.raises(SpecError, match=r"packages\[1\]: .*the image gets imagespec-build"):
        write_context(spec, tmp_path / "ctx")
