"""Golden ids and tags (tests/golden/README.md): stable across releases and machines.

Every entry of `golden/tags.json` is checked three ways: imagespec gives the recorded id and tag,
the independent reference implementation of docs/tag-scheme.md (`scheme_reference.py`) gives
them too, and a copy of the fixture trees at another absolute location gives them again.

Regenerate (only together with a new scheme version in docs/tag-scheme.md, or to add entries):

    IMAGESPEC_REGEN_GOLDEN=1 .venv/bin/python -m tests.test_golden --regen
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from imagespec import ImageSpec, _core

from . import scheme_reference as ref
from .conftest import ENV_VARS

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_FILE = GOLDEN_DIR / "tags.json"
TREES = GOLDEN_DIR / "trees"
REGEN_VAR = "IMAGESPEC_REGEN_GOLDEN"
HOST_ARCH = platform.machine()

# What git cannot be trusted to carry (modes, symlinks) is applied to every copy of the trees at
# runtime: every file is made 0644 and every folder 0755, then these files get these modes (the
# second has only the group's execute bit: any execute bit makes a file executable), and the
# symlinks are created (relative targets, one of them dangling).
EXECUTABLE = {"proj/bin/run.sh": 0o755, "scripts/tool.sh": 0o654}
SYMLINKS = {"proj/app/current.py": "main.py", "proj/dangling": "../nowhere"}
PATH_FIELDS = ("source_root", "requirements", "registry_config", "project")

BUILDER_CONFIG = {
    "uv_image": "ghcr.io/astral-sh/uv:0.4.20",
    "int": 42,
    "negative": -7,
    "big": 9223372036854775807,
    "float": 0.1,
    "whole_float": 2.0,
    "negative_zero": -0.0,
    "tiny": 5e-324,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", 3.5, False, None, [], {}],
    "nested": {"b": {"c": [{"d": 1}]}, "a": "first"},
    # map keys are sorted by their UTF-8 bytes: "Z" < "a" < "é" < U+FFFF < U+1F600
    "keys": {"\U0001f600": 5, "\uffff": 4, "é": 3, "a": 2, "Z": 1},
}

# name, what it pins, constructor fields (paths relative to golden/trees). `python_version` is
# explicit wherever the default would be the interpreter's. Entries without `platform` use no
# loopback registry (the default platform is linux/arm64 for those on arm64 hosts).
CASES: list[dict[str, Any]] = [
    {"name": "minimal", "about": "only python_version", "spec": {"python_version": "3.11"}},
    {
        "name": "not-hashed",
        "about": "fields that say where or how, not what: same id and tag as `minimal`",
        "spec": {
            "name": "other-name",
            "python_version": "3.11",
            "registry": "ghcr.io/acme",
            "builder": "buildah",
            "builder_options": {"insecure": True, "cache": {"to": "type=inline", "n": 3}},
            "registry_config": "reqs/requirements.txt",
            "pip_secret_mounts": [["/home/me/.netrc", "/root/.netrc"]],
            "entrypoint": None,
            "source_copy_mode": "NO_COPY",
        },
    },
    {"name": "python-3.9", "about": "another Python", "spec": {"python_version": "3.9"}},
    {
        "name": "packages",
        "about": "packages in the order given",
        "spec": {"python_version": "3.11", "packages": ["pandas==2.2.0", "numpy"]},
    },
    {
        "name": "packages-reordered",
        "about": "install order is content",
        "spec": {"python_version": "3.11", "packages": ["numpy", "pandas==2.2.0"]},
    },
    {
        "name": "conda",
        "about": "conda packages and channels",
        "spec": {
            "python_version": "3.10",
            "conda_packages": ["pytorch", "cudatoolkit=11.8"],
            "conda_channels": ["pytorch", "conda-forge"],
        },
    },
    {
        "name": "apt-and-commands",
        "about": "apt packages and build commands",
        "spec": {
            "python_version": "3.11",
            "apt_packages": ["git", "curl"],
            "commands": ["echo one", "mkdir -p /data && echo two > /data/x"],
        },
    },
    {
        "name": "commands-ab-c",
        "about": "framing: differs from commands-a-bc",
        "spec": {"python_version": "3.11", "commands": ["ab", "c"]},
    },
    {
        "name": "commands-a-bc",
        "about": "framing: differs from commands-ab-c",
        "spec": {"python_version": "3.11", "commands": ["a", "bc"]},
    },
    {
        "name": "runtime-packages",
        "about": "packages installed when the container starts",
        "spec": {"python_version": "3.11", "runtime_packages": ["rich", "typer>=0.9"]},
    },
    {
        "name": "env",
        "about": "env map: keys sorted, empty and non-ASCII values",
        "spec": {
            "python_version": "3.11",
            "env": {
                "ZED": "last",
                "A": "1",
                "EMPTY": "",
                "UNICODE": "caf\u00e9 \u2615 \U0001f40d",
                "Debug": "True",
            },
        },
    },
    {
        "name": "cuda",
        "about": "cuda and cudnn",
        "spec": {"python_version": "3.11", "cuda": "12.1", "cudnn": "8"},
    },
    {
        "name": "base-string",
        "about": "base image reference with python_version",
        "spec": {"python_version": "3.10", "base_image": "ubuntu:22.04"},
    },
    {
        "name": "base-string-no-python",
        "about": "base image reference, python_version unset: hashed as null (the base's Python)",
        "spec": {"base_image": "ghcr.io/acme/py@sha256:" + "ab" * 32, "packages": ["rich"]},
    },
    {
        "name": "base-spec",
        "about": "base image as a nested spec with files: child id has its spec_id, tag its image name",
        "spec": {
            "name": "child",
            "packages": ["scikit-learn"],
            "base_image": {
                "name": "base",
                "registry": "ghcr.io/acme",
                "python_version": "3.10",
                "source_root": "baseproj",
                "source_copy_mode": "ALL",
                "tag_format": "base-{spec_hash}",
                "packages": ["numpy"],
            },
        },
    },
    {
        "name": "base-spec-two-levels",
        "about": "a nested spec whose base is a nested spec",
        "spec": {
            "name": "grandchild",
            "python_version": "3.10",
            "base_image": {
                "name": "child",
                "registry": "registry.example.com:5000/team",
                "packages": ["scipy"],
                "base_image": {
                    "name": "root",
                    "registry": "registry.example.com:5000/team",
                    "python_version": "3.10",
                    "requirements": "reqs/requirements.txt",
                },
            },
        },
    },
    {
        "name": "platform-list",
        "about": "two platforms",
        "spec": {"python_version": "3.11", "platform": "linux/amd64,linux/arm64"},
    },
    {
        "name": "platform-list-normalised",
        "about": "blanks and duplicates removed, order kept",
        "spec": {"python_version": "3.11", "platform": "linux/arm64, linux/amd64,linux/arm64"},
    },
    {
        "name": "loopback-registry-explicit-platform",
        "about": "a loopback registry is fine when the platform is explicit",
        "spec": {"python_version": "3.11", "registry": "localhost:30000", "platform": "linux/arm64"},
    },
    {
        "name": "pip-credentials",
        "about": "credentials in URLs are removed before hashing: same as pip-no-credentials",
        "spec": {
            "python_version": "3.11",
            "pip_index": "https://alice:s3cret@pypi.example.com/simple",
            "pip_extra_index_url": [
                "https://token@extra.example.com/simple",
                "https://mirror.example.com/simple",
            ],
            "pip_extra_args": "--pre --extra-index-url https://bob:hunter2@more.example.com/simple",
        },
    },
    {
        "name": "pip-no-credentials",
        "about": "pip-credentials without the credentials",
        "spec": {
            "python_version": "3.11",
            "pip_index": "https://pypi.example.com/simple",
            "pip_extra_index_url": ["https://extra.example.com/simple", "https://mirror.example.com/simple"],
            "pip_extra_args": "--pre --extra-index-url https://more.example.com/simple",
        },
    },
    {
        "name": "entrypoint-empty",
        "about": "[] clears the base's",
        "spec": {"python_version": "3.11", "entrypoint": []},
    },
    {
        "name": "entrypoint-list",
        "about": "an entrypoint",
        "spec": {"python_version": "3.11", "entrypoint": ["python", "-m", "app"]},
    },
    {
        "name": "python-exec",
        "about": "python_exec",
        "spec": {"python_version": "3.11", "python_exec": "/opt/venv/bin/python"},
    },
    {
        "name": "builder-config",
        "about": "ints, floats, bools, null, lists, nested maps, non-ASCII keys",
        "spec": {"python_version": "3.11", "builder_config": BUILDER_CONFIG},
    },
    {
        "name": "builder-options-and-config",
        "about": "builder_options are not hashed: same as builder-config",
        "spec": {
            "python_version": "3.11",
            "builder": "docker",
            "builder_options": {"nested": {"list": [1, 2.5, True, None]}, "flag": False},
            "builder_config": BUILDER_CONFIG,
        },
    },
    {
        "name": "requirements-txt",
        "about": "requirements.txt: name in the id, content in the tag",
        "spec": {"python_version": "3.11", "requirements": "reqs/requirements.txt"},
    },
    {
        "name": "requirements-uv-lock",
        "about": "uv.lock brings requirements/pyproject.toml",
        "spec": {"python_version": "3.12", "requirements": "uvproj/uv.lock"},
    },
    {
        "name": "requirements-poetry-lock",
        "about": "poetry.lock brings requirements/pyproject.toml",
        "spec": {"python_version": "3.12", "requirements": "poetryproj/poetry.lock"},
    },
    {
        "name": "project-uv-workspace",
        "about": "a uv workspace: pyproject.toml, uv.lock and the member's folder under project/",
        "spec": {"python_version": "3.11", "project": "uvws"},
    },
    {
        "name": "project-install-overrides",
        "about": "the project folder too; overrides and constraints hashed with credentials removed",
        "spec": {
            "python_version": "3.11",
            "project": "uvws/pyproject.toml",
            "project_install_mode": "install_project",
            "overrides": ["packaging @ https://user:pw@files.example.com/packaging-24.0-py3-none-any.whl"],
            "constraints": ["six<1.17"],
        },
    },
    {
        "name": "project-poetry",
        "about": "a poetry project",
        "spec": {"python_version": "3.12", "project": "poetryproj"},
    },
    {
        "name": "source-all-explicit",
        "about": "source_copy_mode ALL: an executable file and two symlinks (one dangling)",
        "spec": {"python_version": "3.11", "source_root": "proj", "source_copy_mode": "ALL"},
    },
    {
        "name": "source-no-copy",
        "about": "NO_COPY: no source file; same as minimal (source_root's path is not hashed)",
        "spec": {"python_version": "3.11", "source_root": "proj", "source_copy_mode": "NO_COPY"},
    },
    {
        "name": "source-sorting",
        "about": "file keys sorted by UTF-8 bytes (a-b.txt < a.b < a/b.txt), CRLF bytes kept",
        "spec": {"python_version": "3.11", "source_root": "sorting", "source_copy_mode": "ALL"},
    },
    {
        "name": "copy-file",
        "about": "a copy entry that is a file",
        "spec": {"python_version": "3.11", "copy": ["data/config.json"]},
    },
    {
        "name": "copy-folder",
        "about": "a copy entry that is a folder, normalised from ./assets/",
        "spec": {"python_version": "3.11", "copy": ["./assets/"]},
    },
    {
        "name": "copy-mixed",
        "about": "an executable file, a symlink entry (followed) and a folder",
        "spec": {"python_version": "3.11", "copy": ["scripts/tool.sh", "proj/app/current.py", "assets"]},
    },
    {
        "name": "tag-format",
        "about": "tag_format around the hash",
        "spec": {"python_version": "3.11", "tag_format": "v2-{spec_hash}-gpu"},
    },
    {
        "name": "tag-format-twice",
        "about": "every {spec_hash} is replaced",
        "spec": {"python_version": "3.11", "tag_format": "{spec_hash}.{spec_hash}"},
    },
    {
        "name": "kitchen-sink",
        "about": "every field at once",
        "spec": {
            "name": "kitchen-sink",
            "python_version": "3.12",
            "builder": "docker",
            "source_root": "proj",
            "source_copy_mode": "ALL",
            "env": {"MODE": "prod", "LANG": "C.UTF-8"},
            "registry": "ghcr.io/acme/images",
            "packages": ["pandas", "pyarrow"],
            "conda_packages": ["gdal"],
            "conda_channels": ["conda-forge"],
            "requirements": "uvproj/uv.lock",
            "apt_packages": ["libgomp1"],
            "cuda": "12.4",
            "cudnn": "9",
            "base_image": "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
            "platform": "linux/amd64,linux/arm64",
            "pip_index": "https://u:p@pypi.example.com/simple",
            "pip_extra_index_url": ["https://download.pytorch.org/whl/cu124"],
            "pip_secret_mounts": [["/home/me/.netrc", "/root/.netrc"]],
            "pip_extra_args": "--no-cache-dir",
            "registry_config": "data/config.json",
            "entrypoint": ["/bin/bash", "-c"],
            "commands": ["python -c 'import pandas'"],
            "tag_format": "{spec_hash}-cu124",
            "copy": ["data/config.json", "assets"],
            "python_exec": "/usr/bin/python3",
            "runtime_packages": ["rich"],
            "builder_options": {"push": True},
            "builder_config": {"uv_image": "ghcr.io/astral-sh/uv:0.4.20", "jobs": 4, "ratio": 0.75},
        },
    },
]

# Entries that must agree (fields the doc says are not hashed, defaults the doc says are resolved).
SAME = [
    ("minimal", "not-hashed"),
    ("pip-credentials", "pip-no-credentials"),
    ("builder-config", "builder-options-and-config"),
    ("minimal", "source-no-copy"),
]
DIFFERENT = [
    ("commands-ab-c", "commands-a-bc"),
    ("packages", "packages-reordered"),
    ("entrypoint-empty", "minimal"),
    ("source-no-copy", "source-all-explicit"),
    ("platform-list", "platform-list-normalised"),
]


# ---------------------------------------------------------------------------------------------
# Helpers


def prepare_tree(dest: Path) -> Path:
    """A copy of golden/trees at `dest`, with the modes and symlinks git cannot be trusted with."""
    shutil.copytree(TREES, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for path in dest.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    for rel, mode in EXECUTABLE.items():
        (dest / rel).chmod(mode)
    for rel, target in SYMLINKS.items():
        (dest / rel).symlink_to(target)
    return dest


def resolve(fields: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The constructor fields with tree-relative paths made absolute under `root`."""
    out = dict(fields)
    for key in PATH_FIELDS:
        if out.get(key) is not None:
            out[key] = str(root / out[key])
    if isinstance(out.get("base_image"), Mapping):
        out["base_image"] = resolve(out["base_image"], root)
    return out


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def evaluate(fields: Mapping[str, Any], root: Path, *, absolute: bool = True) -> dict[str, Any]:
    """imagespec's id, tag and file keys for `fields`, evaluated with cwd = `root`."""
    with chdir(root):
        spec = ImageSpec(**(resolve(fields, root) if absolute else dict(fields)))
        inputs = spec.tag_inputs()
        return {
            "spec": spec,
            "id": spec.id,
            "tag": spec.tag,
            "files": sorted(inputs["files"]),
            "inputs": inputs,
        }


def reference(fields: Mapping[str, Any], root: Path) -> dict[str, Any]:
    return ref.tag_inputs(fields, root, host_arch=HOST_ARCH)


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))


def golden_entries() -> list[dict[str, Any]]:
    return load_golden()["entries"] if GOLDEN_FILE.exists() else []


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def tree_here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_tree(tmp_path_factory.mktemp("golden") / "trees")


@pytest.fixture(scope="module")
def tree_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_tree(tmp_path_factory.mktemp("other") / "a" / "much" / "deeper" / "checkout" / "trees")


def test_golden_file_matches_the_cases_and_the_scheme() -> None:
    golden = load_golden()
    assert golden["scheme"] == {
        "id": ref.ID_SCHEME,
        "tag": ref.TAG_SCHEME,
        "recipe_version": ref.RECIPE_VERSION,
    }
    assert _core.RECIPE_VERSION == ref.RECIPE_VERSION
    # Entries are produced by --regen from CASES; a hand edit or a new case without regen fails here.
    assert [(e["name"], e["spec"]) for e in golden["entries"]] == [(c["name"], c["spec"]) for c in CASES]
    assert len(golden["entries"]) >= 30


def test_the_cases_cover_every_constructor_field() -> None:
    used: set[str] = set()
    for case in CASES:
        used |= set(case["spec"])
        if isinstance(case["spec"].get("base_image"), dict):
            used |= set(case["spec"]["base_image"])
    assert used == set(_core.FIELDS)


@pytest.mark.parametrize("entry", golden_entries(), ids=lambda e: e["name"])
def test_golden_entry(entry: dict[str, Any], tree_here: Path) -> None:
    got = evaluate(entry["spec"], tree_here)
    # The independent implementation, fed the normalised fields (`to_dict`) ...
    mine = reference(got["spec"].to_dict(), tree_here)
    assert mine["fields"] == got["inputs"]["fields"]  # pinpoints a field whose digest differs
    assert mine["files"] == got["inputs"]["files"]  # pinpoints a file whose digest differs
    # ... and fed the raw constructor fields, normalised as the doc says.
    raw = reference(resolve(entry["spec"], tree_here), tree_here)
    assert (got["id"], got["tag"], got["files"]) == (entry["id"], entry["tag"], entry["files"])
    assert (mine["id"], mine["tag"]) == (entry["id"], entry["tag"])
    assert (raw["id"], raw["tag"]) == (entry["id"], entry["tag"])


@pytest.mark.parametrize("entry", golden_entries(), ids=lambda e: e["name"])
def test_golden_entry_elsewhere_with_relative_paths(entry: dict[str, Any], tree_elsewhere: Path) -> None:
    """Another absolute location, paths given relative to the cwd: the same id and tag."""
    got = evaluate(entry["spec"], tree_elsewhere, absolute=False)
    assert (got["id"], got["tag"], got["files"]) == (entry["id"], entry["tag"], entry["files"])
    assert got["spec"].to_dict().get("source_root", str(tree_elsewhere)).startswith(str(tree_elsewhere))


def test_documented_equalities_and_differences() -> None:
    by_name = {e["name"]: e for e in golden_entries()}
    for a, b in SAME:
        assert (by_name[a]["id"], by_name[a]["tag"]) == (by_name[b]["id"], by_name[b]["tag"]), (a, b)
    for a, b in DIFFERENT:
        assert by_name[a]["id"] != by_name[b]["id"], (a, b)
        assert by_name[a]["tag"] != by_name[b]["tag"], (a, b)
    # Apart from those documented equal, every entry has its own tag.
    group = {name: name for name in by_name}
    for a, b in SAME:
        group[b] = group[a]
    assert len({e["tag"] for e in by_name.values()}) == len(set(group.values()))


def test_reference_matches_the_docs_encoding_example() -> None:
    assert ref.encode(["a", True]) == bytes.fromhex("06 0000000000000002 04 0000000000000001 61 01 01")
    assert ref.encode(["ab", "c"]) != ref.encode(["a", "bc"])
    assert len(ref.B32(ref.H(None))) == 32


CREDENTIAL_CASES = [
    "https://alice:s3cret@pypi.example.com/simple",
    "https://token@pypi.example.com/simple",
    "https://:s3cret@pypi.example.com/simple",
    "https://al@ice:s3cret@pypi.example.com/simple",
    "https://u:s3cret@host:8080/simple?x=a@b#c@d",
    "git+https://s3cret@github.com/o/r",
    "-i https://u:s3cret@a.example.com/s --extra-index-url http://v:s3cret@b.example.com/t",
    "--index-url=https://u:s3cret@a.example.com/s",
    "https://example.com/path@not-a-credential",
    "https://a.example.com,https://u:s3cret@b.example.com/simple",
    "https://a.example.com;https://s3cret@b.example.com",
]


@pytest.mark.parametrize("text", CREDENTIAL_CASES)
def test_url_credentials_are_removed_as_documented(text: str) -> None:
    spec = ImageSpec(python_version="3.11", pip_extra_args=text)
    expected = ref.H(["pip_extra_args", ref.strip_credentials(text)]).hex()
    assert "s3cret" not in repr(spec)
    assert spec.tag_inputs()["fields"]["pip_extra_args"] == expected


# ---------------------------------------------------------------------------------------------
# Regeneration: `python -m tests.test_golden --regen`


def compute_entries() -> list[dict[str, Any]]:
    for var in ENV_VARS:
        os.environ.pop(var, None)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IMAGESPEC_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = prepare_tree(Path(tmp) / "trees")
        for case in CASES:
            got = evaluate(case["spec"], root)
            mine = reference(got["spec"].to_dict(), root)
            if (mine["id"], mine["tag"]) != (got["id"], got["tag"]):
                raise SystemExit(f"{case['name']}: imagespec and the reference implementation disagree")
            entries.append({**case, "files": got["files"], "id": got["id"], "tag": got["tag"]})
    return entries


def main(argv: list[str]) -> int:
    if argv != ["--regen"]:
        print(__doc__)
        return 2
    doc = {
        "scheme": {"id": ref.ID_SCHEME, "tag": ref.TAG_SCHEME, "recipe_version": ref.RECIPE_VERSION},
        "entries": compute_entries(),
    }
    text = json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    old = GOLDEN_FILE.read_text(encoding="utf-8") if GOLDEN_FILE.exists() else None
    if old == text:
        print(f"{GOLDEN_FILE}: up to date")
        return 0
    before = {e["name"]: e for e in json.loads(old)["entries"]} if old else {}
    after = {e["name"]: e for e in doc["entries"]}
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            print(f"removed: {name}")
        elif name not in before:
            print(f"added:   {name}")
        elif (before[name]["id"], before[name]["tag"]) != (after[name]["id"], after[name]["tag"]):
            print(f"CHANGED: {name} (an existing tag changes: needs a new scheme version)")
        elif before[name] != after[name]:
            print(f"edited:  {name}")
    if os.environ.get(REGEN_VAR) != "1":
        print(f"refusing to overwrite {GOLDEN_FILE}; set {REGEN_VAR}=1 to write it")
        return 1
    GOLDEN_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {GOLDEN_FILE} ({len(doc['entries'])} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
