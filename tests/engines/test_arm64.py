"""arm64 images on this x86-64 machine, built, pushed and run through qemu.

The base is the Debian Python base for arm64 (scripts/base-image.sh --arch arm64: debootstrap's
second stage run under qemu-user-static), pushed to the loopback registry. Each builder (native,
docker with BuildKit, buildah) makes a ``platform="linux/arm64"`` image of it with a pure-Python
package (six) and a package with an aarch64 binary wheel (markupsafe's _speedups), pushes it, and
Docker runs it with ``--platform linux/arm64``: the kernel hands the image's aarch64 binaries to
qemu (binfmt_misc, F flag, set up by scripts/engines.sh). docker and buildah run the install steps
under qemu too; the native builder runs nothing of the image.

No aarch64 imagespec runtime can be built here (no aarch64 Rust target), so these images are made
with ``builder_config={"imagespec_runtime": False}``; with the runtime on and only this machine's
x86-64 wheel, each builder must refuse before any engine runs and push nothing.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from imagespec import BuildError, BuildEvent, ImageSpec, build

from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, DockerEngine, run

# The base's first build (minutes under qemu) falls in the first test's setup.
pytestmark = pytest.mark.timeout(2400)

PACKAGES = ["six==1.16.0", "markupsafe==2.1.5"]
#: Run in the image: the CPU Python sees, six's version, and the ELF e_machine (bytes 18-19) of the
#: markupsafe extension that Python just loaded.
INSIDE = (
    "import platform, six, markupsafe._speedups as s; "
    "elf = open(s.__file__, 'rb').read(20); "
    "print(platform.machine(), six.__version__, int.from_bytes(elf[18:20], 'little'))"
)
EM_AARCH64 = 0xB7
NO_RUNTIME = {"imagespec_runtime": False}


@pytest.fixture(params=["native", "docker", "buildah"])
def builder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "docker":
        monkeypatch.setenv("DOCKER_HOST", request.getfixturevalue("docker_engine").host)
    if request.param == "buildah":
        # imagespec's buildah then uses this session's private vfs storage.
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(request.getfixturevalue("buildah").storage_conf))
    return str(request.param)


def arm64_spec(registry: str, base: str, name: str, **kw: object) -> ImageSpec:
    return ImageSpec(
        name=name, registry=registry, base_image=base, packages=PACKAGES, platform="linux/arm64", **kw
    )


def skopeo_inspect(ref: str) -> dict[str, object]:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is needed"
    return dict(json.loads(run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"]).stdout))


def repositories(host: str) -> list[str]:
    """The registry's catalog: every repository that holds at least one blob or manifest."""
    with urllib.request.urlopen(f"http://{host}/v2/_catalog?n=1000", timeout=10) as r:
        return list(json.load(r)["repositories"])


def test_an_arm64_image_is_built_pushed_and_run_through_qemu(
    builder: str, loopback_registry: Registry, arm64_base: str, docker_engine: DockerEngine
) -> None:
    spec = arm64_spec(loopback_registry.host, arm64_base, f"arm64/{builder}", builder_config=NO_RUNTIME)
    assert spec.tag != arm64_spec(loopback_registry.host, arm64_base, f"arm64/{builder}").tag, (
        "an image without the runtime is another image"
    )
    t0 = time.monotonic()
    # no_cache: BuildKit's cache outlives the session, and the install steps must run under qemu.
    (r,) = build(spec.force_push(), builder=builder, ca_bundle=str(MACHINE_CA), no_cache=True).results
    print(f"{builder} linux/arm64 build and push: {time.monotonic() - t0:.1f} s")
    assert (r.outcome, r.builder) == ("built", builder), r.reason
    assert r.name.startswith(r.image + "@sha256:"), r.name
    info = skopeo_inspect(r.image)
    assert (info["Architecture"], info["Os"]) == ("arm64", "linux")
    assert info["Labels"]["dev.imagespec.id"] == spec.id  # type: ignore[index]

    docker_engine.created.add(r.image)
    docker_engine("pull", "--platform", "linux/arm64", r.image)
    assert docker_engine("image", "inspect", "-f", "{{.Architecture}}", r.image).strip() == "arm64"
    t0 = time.monotonic()
    out = docker_engine("run", "--rm", "--platform", "linux/arm64", r.image, "python3", "-c", INSIDE).split()
    print(f"docker run of the {builder} arm64 image through qemu: {time.monotonic() - t0:.1f} s")
    assert out == ["aarch64", "1.16.0", str(EM_AARCH64)], out
    # Runtime off: no imagespec in the image at all.
    probe = "import importlib.util; print(importlib.util.find_spec('imagespec'))"
    out = docker_engine("run", "--rm", "--platform", "linux/arm64", r.image, "python3", "-c", probe).split()
    assert out == ["None"], out


@pytest.mark.parametrize("wheel", ["default", "given"])
def test_the_runtime_without_an_aarch64_wheel_fails_before_any_engine_runs(
    builder: str,
    wheel: str,
    loopback_registry: Registry,
    arm64_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "default": no wheel named, so a checkout gives the image a wheel of itself (this machine's
    # CPU); "given": that wheel named explicitly. Either way no aarch64 wheel is anywhere.
    monkeypatch.delenv("IMAGESPEC_WHEEL", raising=False)
    assert "x86_64" in imagespec_wheel.name, imagespec_wheel.name
    given = {"imagespec_wheel": imagespec_wheel} if wheel == "given" else {}
    host = loopback_registry.host
    repo = f"arm64/runtime-{builder}-{wheel}"
    spec = arm64_spec(host, arm64_base, repo)
    events: list[BuildEvent] = []
    t0 = time.monotonic()
    report = build(
        spec.force_push(),
        builder=builder,
        ca_bundle=str(MACHINE_CA),
        on_event=events.append,
        check=False,
        **given,  # type: ignore[arg-type]
    )
    took = time.monotonic() - t0
    (r,) = report.results
    assert r.outcome == "failed", report.summary()
    assert "linux/arm64" in r.reason, r.reason
    assert "imagespec_wheel" in r.reason and "IMAGESPEC_WHEEL" in r.reason, r.reason
    # No engine ran: no build step, nothing pushed, not even a blob (the repository does not exist,
    # while the base's does).
    assert not [e for e in events if e.kind in ("step", "pushing")], events
    listed = repositories(host)
    assert repo not in listed and arm64_base.split("/", 1)[1].split(":")[0] in listed, listed
    print(f"{builder}, wheel {wheel}: refused in {took:.2f} s: {r.reason}")

    with pytest.raises(BuildError, match=r"linux/arm64"):
        build(spec.force_push(), builder=builder, ca_bundle=str(MACHINE_CA), **given)  # type: ignore[arg-type]
