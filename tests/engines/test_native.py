"""The native builder against the real loopback registry: no Docker, no buildah in the build.

The images it pushes are checked with skopeo and run with the Docker engine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagespec import BuildError, ImageSpec, build, inspect

from ..registry.registry_servers import FaultProxy, Pusher, Registry, refuse_uploads
from .engine_helpers import MACHINE_CA, DockerEngine, missing, run


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


INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# The ELF e_machine (bytes 18-19, little-endian) of each architecture.
E_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


def registry_get(host: str, repo: str, what: str, ref: str) -> bytes:
    """A manifest (what="manifests") or blob of the loopback registry, as bytes."""
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{what}/{ref}")
    req.add_header("Accept", f"{INDEX}, {MANIFEST}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()  # type: ignore[no-any-return]


def registry_put_manifest(host: str, repo: str, ref: str, body: bytes, media_type: str) -> None:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}", data=body, method="PUT")
    req.add_header("Content-Type", media_type)
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201, r.status


def layer_members(blob: bytes) -> dict[str, bytes]:
    """The regular files of a gzip layer."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                out[m.name] = f.read()
    return out


def raw_inspect(ref: str) -> bytes:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is needed"
    out = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"], capture_output=True, check=True
    )
    return out.stdout


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


def spec_for(registry: str | None, base: str, src: Path, name: str, **kw: Any) -> ImageSpec:
    return ImageSpec(
        name=name,
        registry=registry,
        base_image=base,
        packages=["six==1.16.0"],
        env={"NATIVE_ENV": "yes"},
        source_root=str(src),
        **{"source_copy_mode": "ALL", **kw},
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
        "packages=['six==1.16.0'], env={'NATIVE_ENV': 'yes'}, source_root='/root', "
        "source_copy_mode='ALL'); "
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
    from ..registry.registry_servers import start_registry

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
    # Runtime off: with it, the missing aarch64 imagespec wheel is refused first (test_arm64.py).
    no_runtime = {"imagespec_runtime": False}
    with pytest.raises(BuildError, match="not for platform linux/arm64"):
        native(
            ImageSpec(
                name="native/arm",
                registry=host,
                base_image=python_base,
                platform="linux/arm64",
                builder_config=no_runtime,
            ),
            imagespec_wheel,
        )


def test_blobs_pushed_before_are_not_asked_about_and_a_lost_one_is_pushed_again(
    proxy: FaultProxy, loopback_registry: Registry, python_base: str, imagespec_wheel: Path, src: Path
) -> None:
    base = python_base.replace(python_base.split("/")[0], proxy.host)
    spec = spec_for(proxy.host, base, src, "native/known")
    first = native(spec.force_push(), imagespec_wheel).results[0]
    manifest = skopeo_inspect(first.image.replace(proxy.host, loopback_registry.host), "--raw")
    layers = [d["digest"] for d in manifest["layers"]]

    # A source change: only the new source layer and config are asked about (HEAD) and sent.
    (src / "app.py").write_text("VALUE = 2\n")
    proxy.reset(match="/never/")
    second = native(spec_for(proxy.host, base, src, "native/known"), imagespec_wheel).results[0]
    assert second.outcome == "built", second
    heads = [s[1] for s in proxy.seen if s[0] == "HEAD" and "/blobs/" in s[1]]
    assert len(heads) == 2, heads
    assert not any(d in h for h in heads for d in layers[:-1]), heads

    # The registry loses a blob this machine pushed before (here: deleted); the manifest is then
    # refused, and the push runs again, asking about every blob and sending the lost one.
    lost = layers[-2]
    req = urllib.request.Request(
        f"http://{loopback_registry.host}/v2/native/known/blobs/{lost}", method="DELETE"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
    (src / "app.py").write_text("VALUE = 3\n")
    proxy.reset(match="/never/")
    third = native(spec_for(proxy.host, base, src, "native/known"), imagespec_wheel).results[0]
    assert third.outcome == "built", third
    assert any(lost in s[1] for s in proxy.seen if s[0] == "HEAD"), "the lost blob was not asked about"
    direct = third.image.replace(proxy.host, loopback_registry.host)
    copied = run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{direct}", f"dir:{src.parent / 'copy'}"]
    )
    assert copied.returncode == 0
    assert (src.parent / "copy" / lost.split(":")[1]).is_file()


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

    proxy.reset(refuse_uploads, match="/blobs/uploads/")
    with pytest.raises(BuildError, match="no tag was written"):
        native(spec.force_push(), imagespec_wheel)
    attempts = [s for s in proxy.seen if s[0] == "POST" and "mount=" not in s[1]]
    assert len(attempts) >= 3, attempts  # retried
    tag = spec.image_name().rsplit(":", 1)[1]
    assert manifest_status(loopback_registry.host, "native/fault", tag) == 404


# The arm64 half of the base is made under qemu the first time: minutes (docs/engines.md).
@pytest.mark.timeout(2400)
def test_several_platforms_make_one_index(
    loopback_registry: Registry, multiarch_base: str, docker_engine: DockerEngine, src: Path
) -> None:
    host = loopback_registry.host
    packages = ["six==1.16.0", "markupsafe==2.1.5"]
    platform = "linux/amd64,linux/arm64"

    # No aarch64 imagespec runtime can be built here (no aarch64 Rust target, see docs/engines.md),
    # and whether an image has the runtime is one choice for all its platforms: none, so that both
    # images are what they claim to be and both run.
    def multi() -> ImageSpec:  # the same fields, as each run of a program makes them
        return ImageSpec(
            name="native/multi",
            registry=host,
            base_image=multiarch_base,
            packages=packages,
            source_root=str(src),
            source_copy_mode="ALL",
            platform=platform,
            builder_config={"imagespec_runtime": False},
        )

    (r,) = build(multi().force_push(), builder="native", ca_bundle=str(MACHINE_CA)).results
    assert r.outcome == "built" and r.builder == "native", r.reason
    raw = raw_inspect(r.image)
    index = json.loads(raw)
    # The tag is the index, and the reported digest is the index's.
    assert index["mediaType"] == INDEX
    assert r.name == f"{r.image}@sha256:{hashlib.sha256(raw).hexdigest()}"
    assert raw == json.dumps(index, sort_keys=True, separators=(",", ":")).encode(), "sorted JSON"
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    source_layers = set()
    for entry in index["manifests"]:
        arch = entry["platform"]["architecture"]
        assert entry["mediaType"] == MANIFEST and entry["platform"]["os"] == "linux"
        manifest = json.loads(registry_get(host, "native/multi", "manifests", entry["digest"]))
        config = json.loads(registry_get(host, "native/multi", "blobs", manifest["config"]["digest"]))
        assert config["architecture"] == arch
        # The compiled extension of markupsafe is for the platform's CPU; no imagespec anywhere.
        found = {}
        for layer in manifest["layers"][1:]:  # after the base's one layer
            for name, data in layer_members(
                registry_get(host, "native/multi", "blobs", layer["digest"])
            ).items():
                if "/markupsafe/_speedups" in name and name.endswith(".so"):
                    found[name] = int.from_bytes(data[18:20], "little")
                if name == "root/app.py":
                    source_layers.add(layer["digest"])
                assert "site-packages/imagespec/" not in name, name
        assert found and set(found.values()) == {E_MACHINE[arch]}, (arch, found)
        suffix = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
        assert all(suffix in n for n in found), found
    assert len(source_layers) == 1, "the source layer is the same blob on both platforms"

    # Each platform's image runs here, amd64 natively and arm64 through qemu, each pulled by its
    # digest in the index so that docker runs exactly that manifest.
    repository = r.image.rsplit(":", 1)[0]
    script = (
        "import platform, six, markupsafe._speedups as s, app; "
        "print(platform.machine(), six.__version__, app.VALUE, s.__file__.rsplit('.', 2)[1])"
    )
    for entry in index["manifests"]:
        arch = entry["platform"]["architecture"]
        ref = f"{repository}@{entry['digest']}"
        docker_engine.created.add(ref)
        docker_engine("pull", "--platform", f"linux/{arch}", ref)
        out = docker_engine("run", "--rm", "--platform", f"linux/{arch}", ref, "python", "-c", script).split()
        machine = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
        assert out == [machine, "1.16.0", "1", f"cpython-311-{machine}-linux-gnu"], (arch, out)
    # The tag alone gives this machine's image.
    docker_engine.created.add(r.image)
    docker_engine("pull", r.image)
    assert docker_engine("image", "inspect", "-f", "{{.Architecture}}", r.image).strip() == "amd64"

    # A source change is then built in the registry for both platforms (no install, no engine):
    # each platform's image is its dependencies image and one new source layer, the same blob.
    (src / "app.py").write_text("VALUE = 2\n")
    (r2,) = build(multi(), builder="native", ca_bundle=str(MACHINE_CA)).results
    assert r2.outcome == "built" and r2.reason and r2.reason.startswith("source only"), (
        r2.outcome,
        r2.reason,
    )
    index2 = json.loads(raw_inspect(r2.image))
    assert [m["platform"]["architecture"] for m in index2["manifests"]] == ["amd64", "arm64"]
    new_sources = set()
    for before, after in zip(index["manifests"], index2["manifests"]):
        one = json.loads(registry_get(host, "native/multi", "manifests", before["digest"]))["layers"]
        two = json.loads(registry_get(host, "native/multi", "manifests", after["digest"]))["layers"]
        assert [x["digest"] for x in two[:-1]] == [x["digest"] for x in one[:-1]]
        assert two[-1]["digest"] not in source_layers
        new_sources.add(two[-1]["digest"])
    assert len(new_sources) == 1
    for entry in index2["manifests"]:
        arch = entry["platform"]["architecture"]
        ref = f"{repository}@{entry['digest']}"
        docker_engine.created.add(ref)
        docker_engine("pull", "--platform", f"linux/{arch}", ref)
        out = docker_engine("run", "--rm", "--platform", f"linux/{arch}", ref, "python", "-c", script).split()
        assert out[2] == "2", (arch, out)


@pytest.mark.timeout(2400)  # as above: it may be the first to ask for the base
def test_a_platform_the_base_lacks_fails_before_any_tag(
    loopback_registry: Registry, multiarch_base: str
) -> None:
    host = loopback_registry.host
    repo, tag = multiarch_base.split("/", 1)[1].rsplit(":", 1)
    index = json.loads(registry_get(host, repo, "manifests", tag))
    index["manifests"] = [m for m in index["manifests"] if m["platform"]["architecture"] == "amd64"]
    registry_put_manifest(host, repo, "amd64-only", json.dumps(index).encode(), INDEX)
    spec = ImageSpec(
        name="native/lacks",
        registry=host,
        base_image=f"{host}/{repo}:amd64-only",
        packages=["six==1.16.0"],
        platform="linux/amd64,linux/arm64",
        builder_config={"imagespec_runtime": False},  # no aarch64 runtime here: not what is tested
    )
    with pytest.raises(BuildError, match=r"has no image for platform linux/arm64 \(it has linux/amd64\)"):
        build(spec.force_push(), builder="native", ca_bundle=str(MACHINE_CA))
    assert manifest_status(host, "native/lacks", spec.image_name().rsplit(":", 1)[1]) == 404


def test_oci_layout_without_a_registry(
    python_base: str, docker_engine: DockerEngine, imagespec_wheel: Path, src: Path, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    spec = spec_for(None, python_base, src, "native-layout", builder_options={"oci_layout": str(layout)})
    (r,) = native(spec, imagespec_wheel).results
    assert r.outcome == "built", r
    tag = r.image.rsplit(":", 1)[1]
    info = json.loads(run(["skopeo", "inspect", f"oci:{layout}:{tag}"]).stdout)
    assert info["Labels"]["dev.imagespec.id"] == spec.id
    local = f"native-layout:{tag}"
    docker_engine.created.add(local)
    run(["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", f"docker-daemon:{local}"])
    out = docker_engine(
        "run", "--rm", local, "python", "-c", "import six, app; print(six.__version__, app.VALUE)"
    )
    assert out.split() == ["1.16.0", "1"], out


def test_docker_archive_loads_and_runs(
    python_base: str, docker_engine: DockerEngine, imagespec_wheel: Path, src: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "image.tar"
    options = {"oci_layout": str(tmp_path / "layout"), "docker_archive": str(archive)}
    spec = spec_for(None, python_base, src, "native-archive", builder_options=options)
    (r,) = native(spec, imagespec_wheel).results
    assert r.outcome == "built", r
    assert archive.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".image.tar")]
    with tarfile.open(archive) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert entry["RepoTags"] == [r.image]
    docker_engine.created.add(r.image)
    loaded = docker_engine("load", "-i", str(archive))
    assert r.image in loaded, loaded
    out = docker_engine(
        "run",
        "--rm",
        r.image,
        "python",
        "-c",
        "import six; print(six.__version__, open('/root/app.py').read())",
    )
    assert out.split() == ["1.16.0", "VALUE", "=", "1"], out


def test_zstd_layers_are_pushed_used_and_reproducible(
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    src: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = loopback_registry.host
    spec = spec_for(host, python_base, src, "native/zstd", builder_options={"compression": "zstd"})
    names = []
    for n in range(2):  # two builds, each with caches of its own
        monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(tmp_path / f"cache{n}"))
        names.append(native(spec.force_push(), imagespec_wheel, no_cache=True).results[0].name)
    assert names[0] == names[1], names
    image = names[0].split("@")[0]
    manifest = json.loads(raw_inspect(image))
    types = [layer["mediaType"] for layer in manifest["layers"]]
    assert types[0] == "application/vnd.oci.image.layer.v1.tar+gzip", "the base's layer as it is"
    assert set(types[1:]) == {"application/vnd.oci.image.layer.v1.tar+zstd"}, types

    # skopeo copies it (checking every blob's digest); each zstd layer decodes to its diff_id.
    out = tmp_path / "dir"
    run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{image}", f"dir:{out}"])
    config = json.loads((out / manifest["config"]["digest"].split(":")[1]).read_text())
    zstd = shutil.which("zstd")
    if zstd is None:
        missing("the zstd command is missing (apt-get install -y zstd, or scripts/engines.sh start)")
    for layer, diff_id in list(zip(manifest["layers"], config["rootfs"]["diff_ids"]))[1:]:
        tar = run_bytes([zstd, "-d", "-c", str(out / layer["digest"].split(":")[1])])
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id

    # podman (4.x reads zstd layers; Docker 20.10 cannot) pulls it, unpacking the zstd layers into
    # its storage, and the files are there. (podman run cannot start a container on this machine:
    # runc cannot set podman's default rlimits here.)
    podman = shutil.which("podman")
    if podman is None:
        missing("podman is missing (scripts/engines.sh start)")
    root = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))  # podman wants a short runroot
    store = [f"--root={root}/storage", f"--runroot={root}/run", "--storage-driver=vfs"]
    try:
        run([podman, *store, "pull", "--quiet", "--tls-verify=false", image], timeout=600)
        mounted = Path(run([podman, *store, "image", "mount", image]).stdout.strip())
        assert (mounted / "root" / "app.py").read_text() == "VALUE = 1\n"
        site = mounted / "opt" / "venv" / "lib" / "python3.11" / "site-packages"
        assert (site / "six-1.16.0.dist-info" / "METADATA").is_file()
        assert (site / "imagespec" / "__init__.py").is_file()
        run([podman, *store, "image", "unmount", image], check=False)
    finally:
        subprocess.run([podman, *store, "system", "reset", "--force"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def run_bytes(cmd: list[str]) -> bytes:
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def test_uv_lock_installs_the_locked_version(
    loopback_registry: Registry,
    python_base: str,
    docker_engine: DockerEngine,
    imagespec_wheel: Path,
    tmp_path: Path,
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    pyproject = (
        '[project]\nname = "locked"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["six{}"]\n'
    )
    (proj / "pyproject.toml").write_text(pyproject.format("==1.15.0"))
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is needed (make setup)"
    env = {**os.environ, "SSL_CERT_FILE": str(MACHINE_CA), "UV_NO_CONFIG": "1"}
    run([uv, "lock", "--project", str(proj)], env=env, timeout=300)
    # The lock, not pyproject.toml, decides: unpinned now, the lock still says 1.15.0.
    (proj / "pyproject.toml").write_text(pyproject.format(">=1.10"))
    spec = ImageSpec(
        name="native/uvlock",
        registry=loopback_registry.host,
        base_image=python_base,
        requirements=str(proj / "uv.lock"),
    )
    (r,) = native(spec.force_push(), imagespec_wheel).results
    docker_engine.created.add(r.image)
    docker_engine("pull", r.image)
    out = docker_engine("run", "--rm", r.image, "python", "-c", "import six; print(six.__version__)")
    assert out.strip() == "1.15.0", out


def test_full_disk_is_a_clear_error_and_leaves_nothing(
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    src: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0:
        missing("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        monkeypatch.setenv("IMAGESPEC_CACHE_DIR", str(small))
        (src / "app.py").write_text("VALUE = 'full'\n")
        spec = spec_for(loopback_registry.host, python_base, src, "native/full")
        with pytest.raises(BuildError) as e:
            native(spec.force_push(), imagespec_wheel, no_cache=True)
        assert f"no space left on device in {small}" in str(e.value), e.value
        assert "free space or set IMAGESPEC_CACHE_DIR" in str(e.value), e.value
        assert "panick" not in str(e.value).lower()
        tag = spec.image_name().rsplit(":", 1)[1]
        assert manifest_status(loopback_registry.host, "native/full", tag) == 404
        left = [str(p) for p in small.rglob("*") if p.name.startswith((".tmp", ".index"))]
        assert not left, left
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_bad_builder_options(
    loopback_registry: Registry, python_base: str, imagespec_wheel: Path, tmp_path: Path
) -> None:
    def spec(**opts: str) -> ImageSpec:
        return ImageSpec(
            name="native/badopts",
            registry=loopback_registry.host,
            base_image=python_base,
            builder_options=opts,
        )

    with pytest.raises(
        BuildError, match=r'compression="lz4" is not known: use "gzip" \(the default\) or "zstd"'
    ):
        native(spec(compression="lz4"), imagespec_wheel)
    where = tmp_path / "nope" / "x.tar"
    with pytest.raises(BuildError, match=f"the folder {tmp_path / 'nope'} does not exist"):
        native(spec(docker_archive=str(where)), imagespec_wheel)


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
