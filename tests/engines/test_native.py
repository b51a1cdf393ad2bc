"""The native builder against the real loopback registry: no Docker, no buildah in the build.

The images it pushes are checked with skopeo and run with the Docker engine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import MACHINE_CA, DockerEngine, run
from registry_servers import FaultProxy, Pusher, Registry, hard_close

from imagespec import BuildError, ImageSpec, build, inspect


def native(spec: ImageSpec, wheel: Path, **kw: Any) -> Any:
    return build(spec, builder="native", imagespec_wheel=wheel, ca_bundle=str(MACHINE_CA), **kw)


def skopeo_inspect(ref: str, *extra: str) -> dict[str, Any]:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is needed"
    out = run([skopeo, "inspect", "--tls-verify=false", *extra, f"docker://{ref}"]).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def manifest_status(host: str, repo: str, tag: str) -> int:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD")
    req.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "pkg").mkdir(parents=True)
    (root / "app.py").write_text("VALUE = 1\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "data.txt").write_text("data\n")
    return root


@pytest.fixture
def proxy(loopback_registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(loopback_registry.host)
    yield p
    p.stop()


def spec_for(registry: str, base: str, src: Path, name: str, **kw: Any) -> ImageSpec:
    return ImageSpec(
        name=name,
        registry=registry,
        base_image=base,
        packages=["six==1.16.0"],
        env={"NATIVE_ENV": "yes"},
        source_root=str(src),
        **kw,
    )


def test_build_push_inspect_and_run(
    loopback_registry: Registry,
    python_base: str,
    docker_engine: DockerEngine,
    imagespec_wheel: Path,
    src: Path,
) -> None:
    spec = spec_for(loopback_registry.host, python_base, src, "native/six")
    t0 = time.monotonic()
    report = native(spec.force_push(), imagespec_wheel)
    print(f"native cold build: {time.monotonic() - t0:.2f} s")
    (r,) = report.results
    assert r.outcome == "built" and r.builder == "native", report.summary()
    assert r.name.startswith(r.image + "@sha256:"), r.name
    info = skopeo_inspect(r.image)
    assert info["Labels"]["dev.imagespec.id"] == spec.id
    assert info["Labels"]["dev.imagespec.engine"] == "native"
    assert f"_F_IMG_ID={spec.id}" in info["Env"]
    raw = skopeo_inspect(r.image, "--raw")
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    docker_engine.created.add(r.image)
    docker_engine("pull", r.image)
    script = (
        "import os, six, sys, getpass; from imagespec import ImageSpec; import app; "
        "print(six.__version__, os.environ['NATIVE_ENV'], app.VALUE, "
        "open('/root/pkg/data.txt').read().strip(), "
        "os.environ['_F_IMG_ID'], sys.prefix, os.getcwd(), os.getuid(), getpass.getuser()); "
        f"s = ImageSpec(name='native/six', registry={spec.registry!r}, base_image={python_base!r}, "
        "packages=['six==1.16.0'], env={'NATIVE_ENV': 'yes'}, source_root='/root'); "
        "print(s.is_container())"
    )
    out = docker_engine("run", "--rm", r.image, "python", "-c", script).split()
    assert out == [
        "1.16.0",
        "yes",
        "1",
        "data",
        spec.id,
        "/opt/venv",
        "/root",
        "1000",
        "imagespec",
        "True",
    ], out


def test_reproducible_across_runs_and_registries(
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    src: Path,
    tmp_path: Path,
) -> None:
    spec = spec_for(loopback_registry.host, python_base, src, "native/repro")
    first = native(spec.force_push(), imagespec_wheel, no_cache=True).results[0].name
    second = native(spec.force_push(), imagespec_wheel, no_cache=True).results[0].name
    assert first.split("@")[1] == second.split("@")[1], (first, second)

    # Another registry, the same spec otherwise (same base reference): where an image is pushed is
    # not what it contains, so the manifest digest is the same there.
    from registry_servers import start_registry

    other = start_registry(tmp_path / "other", tmp_path / "other" / "storage", hostname="localhost")
    try:
        there = spec_for(other.host, python_base, src, "native/repro")
        assert there.tag == spec.tag
        name = native(there.force_push(), imagespec_wheel, no_cache=True).results[0].name
        assert name.split("@")[0] == f"{other.host}/native/repro:{spec.tag}"
        assert name.split("@")[1] == first.split("@")[1], (first, name)
        assert skopeo_inspect(first.split("@")[0])["Layers"] == skopeo_inspect(name.split("@")[0])["Layers"]
        # inspect fills the registry in from the reference the image was read from.
        shown = inspect(name.split("@")[0]).spec
        assert shown is not None and shown["registry"] == other.host
    finally:
        other.stop()


def test_one_file_change_pushes_one_layer(
    proxy: FaultProxy, python_base: str, imagespec_wheel: Path, src: Path
) -> None:
    base = python_base.replace(python_base.split("/")[0], proxy.host)
    spec = spec_for(proxy.host, base, src, "native/edit")
    native(spec.force_push(), imagespec_wheel)
    (src / "app.py").write_text("VALUE = 2\n")
    changed = spec_for(proxy.host, base, src, "native/edit")
    proxy.reset(match="/never/")
    t0 = time.monotonic()
    report = native(changed, imagespec_wheel)
    took = time.monotonic() - t0
    print(f"native one-file rebuild and push: {took:.3f} s")
    assert report.results[0].outcome == "built"
    uploads = [s for s in proxy.seen if s[0] == "POST" and "/blobs/uploads/" in s[1] and "mount=" not in s[1]]
    # The source layer and the new config: nothing else.
    assert len(uploads) == 2, uploads


def test_bad_base_images(loopback_registry: Registry, python_base: str, imagespec_wheel: Path) -> None:
    host = loopback_registry.host
    with pytest.raises(BuildError, match="does not exist"):
        native(
            ImageSpec(name="native/nobase", registry=host, base_image=f"{host}/nope/python:1"),
            imagespec_wheel,
        )
    pusher = Pusher(host)
    pusher.image("native/tiny", "1")
    pusher.close()
    with pytest.raises(BuildError, match=r"has no Python.*builder=\"docker\""):
        native(
            ImageSpec(name="native/nopython", registry=host, base_image=f"{host}/native/tiny:1"),
            imagespec_wheel,
        )
    with pytest.raises(BuildError, match="not for platform linux/arm64"):
        native(
            ImageSpec(name="native/arm", registry=host, base_image=python_base, platform="linux/arm64"),
            imagespec_wheel,
        )


def test_refusals_name_the_builder(
    loopback_registry: Registry, python_base: str, imagespec_wheel: Path
) -> None:
    spec = ImageSpec(
        name="native/apt", registry=loopback_registry.host, base_image=python_base, apt_packages=["curl"]
    )
    with pytest.raises(BuildError, match=r"apt_packages; use builder=\"docker\" or builder=\"buildah\""):
        native(spec, imagespec_wheel)


def test_package_without_a_wheel(
    loopback_registry: Registry, python_base: str, imagespec_wheel: Path
) -> None:
    spec = ImageSpec(
        name="native/sdist",
        registry=loopback_registry.host,
        base_image=python_base,
        packages=["pycrypto==2.6.1"],
    )
    with pytest.raises(BuildError, match=r"\"pycrypto\" has no wheel.*builder=\"docker\""):
        native(spec, imagespec_wheel)


def test_failing_blob_upload_leaves_no_tag(
    proxy: FaultProxy, loopback_registry: Registry, python_base: str, imagespec_wheel: Path, src: Path
) -> None:
    base = python_base.replace(python_base.split("/")[0], proxy.host)
    (src / "app.py").write_text("VALUE = 'fault'\n")
    spec = spec_for(proxy.host, base, src, "native/fault")

    def refuse_uploads(p: FaultProxy, req: Any, n: int, wfile: Any, sock: Any) -> bool:
        if req.method != "POST" or "mount=" in req.path:
            return False
        if n % 2:
            hard_close(sock)
            return True
        wfile.write(b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n")
        wfile.flush()
        return True

    proxy.reset(refuse_uploads, match="/blobs/uploads/")
    with pytest.raises(BuildError, match="no tag was written"):
        native(spec.force_push(), imagespec_wheel)
    attempts = [s for s in proxy.seen if s[0] == "POST" and "mount=" not in s[1]]
    assert len(attempts) >= 3, attempts  # retried
    tag = spec.image_name().rsplit(":", 1)[1]
    assert manifest_status(loopback_registry.host, "native/fault", tag) == 404


def test_a_poetry_lock_installs_its_main_group_as_locked(
    loopback_registry: Registry,
    python_base: str,
    docker_engine: DockerEngine,
    imagespec_wheel: Path,
    tmp_path: Path,
) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is needed (make setup)"
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1.0"\nrequires-python = ">=3.11,<3.12"\n'
        'dependencies = ["six>=1.15"]\n\n'
        "[tool.poetry]\npackage-mode = false\n\n"
        '[tool.poetry.group.dev.dependencies]\niniconfig = "*"\n\n'
        # This machine's PyPI mirror has the simple index but not the JSON API poetry asks first.
        '[[tool.poetry.source]]\nname = "simple"\nurl = "https://pypi.org/simple/"\npriority = "primary"\n'
    )
    # poetry's own resolver reads the index through requests: give it the machine's CA bundle.
    env = {
        **os.environ,
        "REQUESTS_CA_BUNDLE": str(MACHINE_CA),
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_VIRTUALENVS_CREATE": "false",
    }
    lock_cmd = [uv, "tool", "run", "--quiet", "--from", "poetry>=2,<3", "poetry", "lock", "--directory"]
    run([*lock_cmd, str(project)], env=env)
    import tomllib

    lock = tomllib.loads((project / "poetry.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    assert "six" in locked and "iniconfig" in locked, locked

    spec = ImageSpec(
        name="native/poetry",
        registry=loopback_registry.host,
        base_image=python_base,
        requirements=str(project / "poetry.lock"),
    )
    (r,) = native(spec.force_push(), imagespec_wheel).results
    assert r.outcome == "built", r
    docker_engine.created.add(r.image)
    script = (
        "import importlib.metadata as m, importlib.util as u; "
        "print(m.version('six'), u.find_spec('iniconfig') is None)"
    )
    out = docker_engine("run", "--rm", "--pull", "always", "--entrypoint", "python3", r.image, "-c", script)
    assert out.split() == [locked["six"], "True"]  # the locked version; the dev group left out

    # A lock that no longer matches its pyproject.toml is an error that says what to do.
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace('"six>=1.15"', '"six>=1.15", "attrs"')
    )
    with pytest.raises(BuildError, match="poetry lock"):
        native(spec.replace(name="native/poetry-stale").force_push(), imagespec_wheel)
