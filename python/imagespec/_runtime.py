"""The imagespec an image gets: this installation, exactly (the rule is the core's, src/runtime.rs).

An installation from a package index tells the build to install ``imagespec-build==<version>``
from the index (which has that version); any other (a checkout, a local wheel, a development
build) gives the build a wheel of itself, made once per content and cached: the files of the
``imagespec`` package as installed, its metadata, and a platform tag read from the extension
(manylinux at the newest glibc symbol version it needs). ``imagespec_wheel`` (or
``IMAGESPEC_WHEEL``) names another wheel, or a folder's wheel per platform beside it; ``index``
asks for the index's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import imagespec
from imagespec import _core
from imagespec._core import BuildError

# Not `from typing import TYPE_CHECKING`: see _spec.py. The module is read on every build, also
# one that finds every image present, so what only a new wheel needs is imported when it is made.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib import metadata

WHEEL_VAR = "IMAGESPEC_WHEEL"
INDEX = "index"
"""The value of ``imagespec_wheel`` / ``IMAGESPEC_WHEEL`` that installs the index's release."""

_GLIBC = rb"GLIBC_2\.(\d+)"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest time: the wheel's bytes depend on its files only


def _distribution() -> metadata.Distribution | None:
    """The distribution that installed the running ``imagespec`` (ours; an old checkout's under the
    name ``imagespec``), if any."""
    from importlib import metadata

    for name in (_core.DISTRIBUTION, "imagespec"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version == imagespec.__version__:
            return dist
    return None


def from_index(dist_info: Path | None = None) -> bool:
    """Whether this installation came from a package index under our name: then the index has
    this version. A wheel install keeps its ``.dist-info`` beside the package; pip and uv write
    ``direct_url.json`` (PEP 610) there for every source but an index, and an editable install
    has none beside it."""
    if dist_info is None:
        site = Path(imagespec.__file__).resolve().parent.parent
        dist_info = site / f"{_core.DISTRIBUTION.replace('-', '_')}-{imagespec.__version__}.dist-info"
    try:
        meta = (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in meta.splitlines()[:20] if ":" in line)
    name = fields.get("Name", "").strip().lower().replace("_", "-")
    version = fields.get("Version", "").strip()
    return (
        name == _core.DISTRIBUTION
        and not (dist_info / "direct_url.json").exists()
        and "dev" not in version
        and "+" not in version
    )


def wheel_for_build(given: str | os.PathLike[str] | None) -> str | None:
    """The wheel the build gives the image (None: the index's ``imagespec-build==<version>``)."""
    if given is None:
        given = os.environ.get(WHEEL_VAR) or None
    if given is not None:
        text = os.fspath(given)
        return None if text == INDEX else text
    if from_index():
        return None
    return str(own_wheel())


def _package_files(package: Path) -> list[Path]:
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        files.append(path)
    return files


def _platform_tag(extension: Path) -> str:
    """``manylinux_2_<N>_<arch>``: N is the newest glibc symbol version the extension needs."""
    if not sys.platform.startswith("linux"):
        raise BuildError(
            f"this imagespec is not from the package index and runs on {sys.platform}, where no Linux wheel "
            f"of it can be made for an image; give one with imagespec_wheel (or {WHEEL_VAR}), e.g. built "
            "by `maturin build --release --target x86_64-unknown-linux-gnu --zig`"
        )
    import platform
    import re

    needed = [int(m) for m in re.findall(_GLIBC, extension.read_bytes())]
    return f"manylinux_2_{max([17, *needed])}_{platform.machine()}"


def own_wheel() -> Path:
    """This installation as a wheel (``imagespec_build-<version>-cp39-abi3-<platform>.whl``), made
    once per content and kept under the cache folder."""
    package = Path(imagespec.__file__).resolve().parent
    files = _package_files(package)
    extensions = [f for f in files if f.name.startswith("_core.") and f.suffix == ".so"]
    if len(extensions) != 1:
        raise BuildError(
            f"this imagespec ({package}) has {len(extensions)} compiled cores, not one; reinstall it, "
            f"or give a wheel with imagespec_wheel (or {WHEEL_VAR})"
        )
    abi = "abi3" if ".abi3." in extensions[0].name else None
    if abi is None:
        raise BuildError(f"{extensions[0]} is not an abi3 extension; give a wheel with imagespec_wheel")
    import hashlib
    import tempfile

    version = imagespec.__version__
    stem = f"{_core.DISTRIBUTION.replace('-', '_')}-{version}"
    key = hashlib.sha256(stem.encode())
    for f in files:
        st = f.stat()
        key.update(f"{f.relative_to(package)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    root = _core.cache_root()
    cache = Path(root) if root else Path(tempfile.gettempdir()) / f"imagespec-{os.getuid()}"
    folder = cache / "runtime-wheels" / key.hexdigest()[:32]
    made = sorted(folder.glob(f"{stem}-*.whl"))
    if made:
        return made[0]
    tag = f"cp39-abi3-{_platform_tag(extensions[0])}"
    out = folder / f"{stem}-{tag}.whl"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{os.getpid()}.partial"
    _write_wheel(partial, package, files, stem, tag)
    os.replace(partial, out)
    return out


def _metadata_text(version: str) -> str:
    dist = _distribution()
    text = dist.read_text("METADATA") if dist is not None else None
    if not text:
        return f"Metadata-Version: 2.1\nName: {_core.DISTRIBUTION}\nVersion: {version}\n"
    import re

    # An install under another name (an old checkout) still makes a wheel of this project's name.
    return re.sub(r"(?m)^Name: .*$", f"Name: {_core.DISTRIBUTION}", text, count=1)


def _write_wheel(path: Path, package: Path, files: list[Path], stem: str, tag: str) -> None:
    import base64
    import hashlib
    import zipfile

    dist_info = f"{stem}.dist-info"
    version = imagespec.__version__
    entries: list[tuple[str, bytes]] = [
        (f"imagespec/{f.relative_to(package).as_posix()}", f.read_bytes()) for f in files
    ]
    entries.append((f"{dist_info}/METADATA", _metadata_text(version).encode()))
    wheel = f"Wheel-Version: 1.0\nGenerator: imagespec {version}\nRoot-Is-Purelib: false\nTag: {tag}\n"
    entries.append((f"{dist_info}/WHEEL", wheel.encode()))
    dist = _distribution()
    points = dist.read_text("entry_points.txt") if dist is not None else None
    if points:
        entries.append((f"{dist_info}/entry_points.txt", points.encode()))
    record = []
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, _EPOCH)
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
