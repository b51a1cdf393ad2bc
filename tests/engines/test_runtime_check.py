"""After every build and before its push, the image's imagespec must be this project at this version
(docs/runtime.md). Attacks: another distribution that claims the `imagespec` module gets into the
image (as an install of the index's `imagespec`, another project, would); the build must fail
naming both, and the registry must not get the tag. Every builder that can run here is tried."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

import imagespec
from imagespec import BuildEvent, ImageSpec, build

from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, Buildah, DockerEngine

pytestmark = pytest.mark.timeout(900)

FOREIGN = "0.4.1"
# What an install of another `imagespec` leaves in the venv: a distribution that owns the module.
CLAIM = (
    "for site in /opt/venv/lib/python3*/site-packages; do "
    "d=$site/imagespec-" + FOREIGN + ".dist-info; mkdir -p $d; "
    "printf 'Metadata-Version: 2.1\\nName: imagespec\\nVersion: " + FOREIGN + "\\n' > $d/METADATA; "
    "printf 'imagespec/__init__.py,,\\n' > $d/RECORD; done"
)


def manifest_status(host: str, repo: str, tag: str) -> int:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD")
    req.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def foreign_wheel(folder: Path) -> Path:
    """A wheel of a distribution named `imagespec` (another project's name), made here: it provides
    the `imagespec` module, as the index's would."""
    path = folder / f"imagespec-{FOREIGN}-py3-none-any.whl"
    info = f"imagespec-{FOREIGN}.dist-info"
    files = {
        "imagespec/__init__.py": f"__version__ = '{FOREIGN}'\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: imagespec\nVersion: {FOREIGN}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def run_build(spec: ImageSpec, builder: str, wheel: Path) -> tuple[Any, list[BuildEvent]]:
    events: list[BuildEvent] = []
    report = build(
        spec.force_push(),
        builder=builder,
        imagespec_wheel=wheel,
        ca_bundle=str(MACHINE_CA),
        check=False,
        on_event=events.append,
    )
    return report.results[0], events


@pytest.mark.parametrize("builder", ["docker", "buildah", "podman"])
def test_an_image_whose_imagespec_is_not_ours_is_not_pushed(
    builder: str,
    docker_engine: DockerEngine,
    buildah: Buildah,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if builder != "docker":
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(buildah.storage_conf))
    spec = ImageSpec(
        name=f"runtime-check/{builder}",
        registry=loopback_registry.host,
        base_image=python_base,
        commands=[CLAIM],
    )
    result, events = run_build(spec, builder, imagespec_wheel)
    assert result.outcome == "failed", result
    assert f"imagespec {FOREIGN} and imagespec-build {imagespec.__version__}" in str(result.reason), (
        result.reason
    )
    assert "nothing was pushed" in str(result.reason)
    assert any(e.kind == "step" and e.message == "check: the image's imagespec" for e in events)
    assert not any(e.kind == "pushing" for e in events)
    assert manifest_status(loopback_registry.host, spec.name, spec.tag) == 404

    # The same spec without the claim passes the check and is pushed.
    fine = spec.replace(commands=["true"])
    result, events = run_build(fine, builder, imagespec_wheel)
    assert result.outcome == "built", result
    assert any(e.kind == "step" and e.message == "check: the image's imagespec" for e in events)
    assert manifest_status(loopback_registry.host, fine.name, fine.tag) == 200


def test_native_refuses_packages_that_bring_another_imagespec(
    loopback_registry: Registry, python_base: str, imagespec_wheel: Path, tmp_path: Path
) -> None:
    wheel = foreign_wheel(tmp_path)
    (tmp_path / "requirements.txt").write_text(f"{wheel}\n")
    spec = ImageSpec(
        name="runtime-check/native",
        registry=loopback_registry.host,
        base_image=python_base,
        requirements=str(tmp_path / "requirements.txt"),
    )
    result, events = run_build(spec, "native", imagespec_wheel)
    assert result.outcome == "failed", result
    assert f"install imagespec {FOREIGN} as the `imagespec` module" in str(result.reason), result.reason
    assert not any(e.kind == "pushing" for e in events)
    assert manifest_status(loopback_registry.host, spec.name, spec.tag) == 404
