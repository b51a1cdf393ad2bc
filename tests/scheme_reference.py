"""An independent reference implementation of docs/tag-scheme.md (id scheme 1, tag scheme 1).

Written from the document alone, in plain Python (hashlib, base64), without reading the Rust core,
to show that the document is precise enough to reimplement. `tests/test_golden.py` checks the
golden ids and tags against both imagespec and this module.

Scope: no ignore rules and no LOADED_MODULES selection. The caller gives the exact file set (the
golden fixture trees contain no file an ignore rule would exclude), or lets `collect_files` walk
the folders with every file selected.

Where the document leaves something open, the choice made here is the one the implementation
makes; each such place is marked "DOC GAP" below.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import posixpath
import re
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomllib

ID_SCHEME = 1
TAG_SCHEME = 1
RECIPE_VERSION = 4

# "Identity fields" table, in the document's order.
IDENTITY_FIELDS = (
    "python_version",
    "source_copy_mode",
    "env",
    "packages",
    "conda_packages",
    "conda_channels",
    "apt_packages",
    "runtime_packages",
    "commands",
    "requirements",
    "cuda",
    "cudnn",
    "base_image",
    "platform",
    "pip_index",
    "pip_extra_args",
    "pip_extra_index_url",
    "entrypoint",
    "copy",
    "python_exec",
    "builder_config",
)
_LIST_FIELDS = (
    "packages",
    "conda_packages",
    "conda_channels",
    "apt_packages",
    "runtime_packages",
    "commands",
    "pip_extra_index_url",
    "copy",
)
_MAP_FIELDS = ("env", "builder_config")
# Added after scheme 1: in the map only when set.
LATER_FIELDS = ("project", "project_install_mode", "overrides", "constraints")
_SCALAR_FIELDS = ("cuda", "cudnn", "python_exec")
_LOCK_FILES = ("uv.lock", "poetry.lock")
_DEFAULT_PLATFORM = "linux/amd64"

# ---------------------------------------------------------------------------------------------
# Canonical encoding


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=False)


def encode(value: Any) -> bytes:
    """The typed, framed bytes of `value` ("Canonical encoding")."""
    if value is None:
        return b"\x00"
    if isinstance(value, bool):  # before int: bool is an int subclass in Python
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x02" + value.to_bytes(8, "big", signed=True)
    if isinstance(value, float):
        return b"\x03" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return b"\x04" + _u64(len(data)) + data
    if isinstance(value, (bytes, bytearray)):
        return b"\x05" + _u64(len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return b"\x06" + _u64(len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"map keys must be strings, got {type(key).__name__}")
        entries = sorted(value.items(), key=lambda kv: kv[0].encode("utf-8"))
        return b"\x07" + _u64(len(entries)) + b"".join(encode(k) + encode(v) for k, v in entries)
    raise TypeError(f"cannot encode {type(value).__name__}")


def H(value: Any) -> bytes:
    """SHA-256 of the canonical encoding."""
    return hashlib.sha256(encode(value)).digest()


def B32(digest: bytes) -> str:
    """First 160 bits of `digest`, lowercase RFC 4648 base32 without padding (32 characters)."""
    return base64.b32encode(digest[:20]).decode("ascii").lower().rstrip("=")


# ---------------------------------------------------------------------------------------------
# Identity


# DOC GAP: the document says "every URL's `user:password@` removed" without defining a URL or
# the user-only form. The implementation removes the whole userinfo (`user@`, `:password@` too)
# after every `://`, whatever precedes it: everything up to the last `@` before the authority ends
# (at `/`, `?`, `#`, whitespace, another `://`, or the end of the string).
_URL_USERINFO = re.compile(r"://(?:(?!://)[^/?#\s])*@")


def strip_credentials(text: str) -> str:
    return _URL_USERINFO.sub("://", text)


def normalise_platform(platform: str | None, registry: str | None = None, host_arch: str = "") -> str:
    """Duplicates removed, order kept; the default depends on the registry and host (see the doc)."""
    if platform is None:
        if host_arch.lower() in ("arm64", "aarch64") and is_loopback_registry(registry):
            return "linux/arm64"
        return _DEFAULT_PLATFORM
    seen: list[str] = []
    # DOC GAP: the document does not say that blanks around the commas are removed; they are.
    for part in platform.split(","):
        part = part.strip()
        if part and part not in seen:
            seen.append(part)
    return ",".join(seen)


def is_loopback_registry(registry: str | None) -> bool:
    if not registry:
        return False
    host = registry.split("/", 1)[0]
    if host.startswith("["):
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_copy_path(path: str, base_dir: str | os.PathLike[str] = ".") -> str:
    """Where a `copy` entry lands under /root: `./a/` becomes `a` (relative POSIX, no `.` segments,
    no trailing slash); an absolute path inside `base_dir` its path below it; any other absolute
    path itself without the leading `/`."""
    norm = posixpath.normpath(path.replace(os.sep, "/"))
    if norm.startswith("/"):
        base = posixpath.normpath(os.path.abspath(base_dir))
        inside = posixpath.relpath(norm, base)
        norm = norm[1:] if inside == "." or inside.startswith("..") else inside
    return "" if norm == "." else norm


def effective_copy_mode(fields: Mapping[str, Any]) -> str:
    if fields.get("source_root") is None:
        return "NO_COPY"
    mode = fields.get("source_copy_mode")
    if mode is None:
        return "LOADED_MODULES"  # as in flytekit (image_spec.py:143-144 at v1.16.24)
    return str(getattr(mode, "name", mode)).upper()  # the core accepts any case


def identity_values(fields: Mapping[str, Any], *, base_dir: str = ".", host_arch: str = "") -> dict[str, Any]:
    """The canonical value of every identity field of a spec given as `to_dict()`-style fields.

    `python_version` must be set in `fields` unless a `base_image` is given: its default is the
    evaluating interpreter's version, which this module does not guess.
    """
    values: dict[str, Any] = {}
    base = fields.get("base_image")
    python_version = fields.get("python_version")
    if python_version is None and base is None:
        raise ValueError("python_version must be given when there is no base_image")
    values["python_version"] = None if python_version is None else str(python_version)
    values["source_copy_mode"] = effective_copy_mode(fields)
    for f in _MAP_FIELDS:
        values[f] = dict(fields.get(f) or {})
    for f in _LIST_FIELDS:
        values[f] = list(fields.get(f) or [])
    for f in ("pip_extra_index_url", "packages", "runtime_packages"):
        values[f] = [strip_credentials(u) for u in values[f]]
    values["copy"] = [normalise_copy_path(p, base_dir) for p in values["copy"]]
    requirements = fields.get("requirements")
    values["requirements"] = None if requirements is None else Path(str(requirements)).name
    for f in _SCALAR_FIELDS:
        values[f] = fields.get(f)
    if base is None or isinstance(base, str):
        values["base_image"] = base
    else:
        values["base_image"] = {"spec_id": spec_id(base, base_dir=base_dir, host_arch=host_arch)}
    values["platform"] = normalise_platform(fields.get("platform"), fields.get("registry"), host_arch)
    for f in ("pip_index", "pip_extra_args"):
        value = fields.get(f)
        values[f] = None if value is None else strip_credentials(value)
    entrypoint = fields.get("entrypoint")
    values["entrypoint"] = None if entrypoint is None else list(entrypoint)
    assert set(values) == set(IDENTITY_FIELDS)
    if fields.get("project") is not None:
        kind, root, anchor, _ = project_layout(fields, base_dir)
        rel = posixpath.relpath(root.as_posix(), anchor.as_posix())
        values["project"] = {"kind": kind, "root": rel}
    if fields.get("project_install_mode") == "install_project":
        values["project_install_mode"] = "install_project"
    for f in ("overrides", "constraints"):
        if fields.get(f):
            values[f] = [strip_credentials(x) for x in fields[f]]
    return values


def project_layout(
    fields: Mapping[str, Any], base_dir: str | os.PathLike[str]
) -> tuple[str, Path, Path, list[Path]]:
    """A project's kind, folder, the folder its files are keyed against, and its local packages."""
    given = Path(base_dir) / str(fields["project"])
    root = Path(posixpath.normpath(given.as_posix()))
    if not root.is_dir():
        root = root.parent
    kind = "uv" if (root / "uv.lock").is_file() else "poetry"
    lock = tomllib.loads((root / f"{kind}.lock").read_text(encoding="utf-8"))
    locals_: list[Path] = []
    for package in lock.get("package", []):
        source = package.get("source", {})
        if kind == "uv":
            rels = [source[k] for k in ("editable", "directory", "virtual", "path") if k in source][:1]
        else:
            rels = [source["url"]] if source.get("type") in ("directory", "file") else []
        for rel in rels:
            path = Path(posixpath.normpath((root / rel).as_posix()))
            if path != root:
                locals_.append(path)
    outside = [p for p in locals_ if not p.is_relative_to(root)]
    anchor = Path(str(fields["source_root"])) if outside else root
    return kind, root, anchor, locals_


def field_digests(fields: Mapping[str, Any], **kw: Any) -> dict[str, bytes]:
    """F(f) = H([f, v]) for every identity field."""
    return {f: H([f, v]) for f, v in identity_values(fields, **kw).items()}


def id_root(fields: Mapping[str, Any], **kw: Any) -> bytes:
    return H(["imagespec-id", ID_SCHEME, {f: d for f, d in field_digests(fields, **kw).items()}])


def spec_id(fields: Mapping[str, Any], **kw: Any) -> str:
    return B32(id_root(fields, **kw))


# ---------------------------------------------------------------------------------------------
# Files


def file_digest(path: str, content: bytes, executable: bool) -> bytes:
    # DOC GAP: "`path`" in the digest is the key's `<path>`, i.e. *without* the `source/`,
    # `copy/` or `requirements/` prefix (`H(["file", "a.py", ...])` for key `source/a.py`).
    return H(["file", path, executable, hashlib.sha256(content).digest()])


def symlink_digest(path: str, target: str) -> bytes:
    return H(["symlink", path, target])


def _entry_digest(fs_path: Path, rel: str, *, follow: bool = False) -> bytes:
    st = os.stat(fs_path) if follow else os.lstat(fs_path)
    if stat.S_ISLNK(st.st_mode):
        return symlink_digest(rel, os.readlink(fs_path))
    executable = bool(st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    return file_digest(rel, fs_path.read_bytes(), executable)


def _walk(root: Path) -> dict[str, Path]:
    """Every file and symlink under `root` (symlinks not followed), by relative POSIX path."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*filenames, *dirnames]:
            full = Path(dirpath) / name
            if name in dirnames and not full.is_symlink():
                continue
            found[full.relative_to(root).as_posix()] = full
    return found


def collect_files(fields: Mapping[str, Any], base_dir: str | os.PathLike[str]) -> dict[str, bytes]:
    """Key → digest of every file of the spec, with NO ignore rules (every file is selected).

    Relative `source_root` and `requirements` are taken relative to `base_dir`, like `copy`.
    """
    base = Path(base_dir)
    files: dict[str, bytes] = {}
    requirements = fields.get("requirements")
    if requirements is not None:
        req = base / str(requirements)
        files[f"requirements/{req.name}"] = _entry_digest(req, req.name, follow=True)
        if req.name in _LOCK_FILES:
            pyproject = req.parent / "pyproject.toml"
            files["requirements/pyproject.toml"] = _entry_digest(pyproject, "pyproject.toml", follow=True)
    if fields.get("project") is not None:
        kind, root, anchor, locals_ = project_layout(fields, base)
        entries = [root / "pyproject.toml", root / f"{kind}.lock", *locals_]
        if fields.get("project_install_mode") == "install_project":
            entries.append(root)
        for entry in entries:
            rel_entry = posixpath.relpath(entry.as_posix(), anchor.as_posix())
            if entry.is_dir():
                for rel, sub in _walk(entry).items():
                    path = rel if rel_entry == "." else f"{rel_entry}/{rel}"
                    files[f"project/{path}"] = _entry_digest(sub, path)
            else:
                files[f"project/{rel_entry}"] = _entry_digest(entry, rel_entry, follow=True)
    mode = effective_copy_mode(fields)
    if mode == "LOADED_MODULES":
        raise NotImplementedError("LOADED_MODULES selection is not part of this reference")
    if mode == "ALL":
        for rel, full in _walk(base / str(fields["source_root"])).items():
            files[f"source/{rel}"] = _entry_digest(full, rel)
    for entry in fields.get("copy") or ():
        rel_entry = normalise_copy_path(entry, base)
        full = base / entry if not entry.startswith("/") else Path(entry)
        if not os.path.lexists(full):
            files[f"copy/{rel_entry}"] = H(["missing", rel_entry])
            continue
        # DOC GAP: "for a symlink (never followed)" holds for the symlinks *inside* a copied
        # folder or `source_root`; a `copy` entry (and `requirements`) that is itself a symlink is
        # followed: a link to a file is hashed as that file, a link to a folder as that folder.
        if full.is_dir():
            for rel, sub in _walk(full).items():
                path = f"{rel_entry}/{rel}"
                files[f"copy/{path}"] = _entry_digest(sub, path)
        else:
            files[f"copy/{rel_entry}"] = _entry_digest(full, rel_entry, follow=True)
    return files


# ---------------------------------------------------------------------------------------------
# The tag


def tag_root(id_root_digest: bytes, files: Mapping[str, bytes], base_image_name: str | None) -> bytes:
    return H(
        [
            "imagespec-tag",
            TAG_SCHEME,
            RECIPE_VERSION,
            id_root_digest,
            {key: digest for key, digest in files.items()},
            base_image_name,
        ]
    )


def format_tag(spec_hash: str, tag_format: str | None, name: str | None = None) -> str:
    last = (name or "").rsplit("/", 1)[-1]
    if ":" in last:  # a tag written in `name` is the tag
        return last.split(":", 1)[1]
    return spec_hash if tag_format is None else tag_format.replace("{spec_hash}", spec_hash)


def image_name(fields: Mapping[str, Any], tag: str) -> str:
    name = fields.get("name") or "imagespec"
    registry = fields.get("registry")
    return f"{registry}/{name}:{tag}" if registry else f"{name}:{tag}"


def spec_tag(
    fields: Mapping[str, Any],
    base_dir: str | os.PathLike[str],
    *,
    files: Mapping[str, bytes] | None = None,
    host_arch: str = "",
) -> str:
    """The tag of a spec; `files` defaults to `collect_files(fields, base_dir)`.

    A nested base spec's image name is computed recursively, its files collected the same way.
    """
    root_id = id_root(fields, base_dir=str(base_dir), host_arch=host_arch)
    if files is None:
        files = collect_files(fields, base_dir)
    base = fields.get("base_image")
    base_name = None
    if isinstance(base, Mapping):
        base_name = image_name(base, spec_tag(base, base_dir, host_arch=host_arch))
    return format_tag(B32(tag_root(root_id, files, base_name)), fields.get("tag_format"), fields.get("name"))


def tag_inputs(
    fields: Mapping[str, Any], base_dir: str | os.PathLike[str], *, host_arch: str = ""
) -> dict[str, Any]:
    """The same tree `ImageSpec.tag_inputs()` documents, for tracing a mismatch to one digest."""
    digests = field_digests(fields, base_dir=str(base_dir), host_arch=host_arch)
    files = collect_files(fields, base_dir)
    return {
        "fields": {f: d.hex() for f, d in digests.items()},
        "files": {k: d.hex() for k, d in files.items()},
        "id": spec_id(fields, base_dir=str(base_dir), host_arch=host_arch),
        "tag": spec_tag(fields, base_dir, files=files, host_arch=host_arch),
    }


__all__ = [
    "B32",
    "H",
    "collect_files",
    "encode",
    "field_digests",
    "file_digest",
    "id_root",
    "identity_values",
    "image_name",
    "spec_id",
    "spec_tag",
    "strip_credentials",
    "symlink_digest",
    "tag_inputs",
    "tag_root",
]
