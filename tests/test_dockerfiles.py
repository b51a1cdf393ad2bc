"""Golden Dockerfiles (tests/golden/dockerfiles/README.md): the recipe behind every tag.

Each case's Dockerfile is generated from a copy of golden/trees and compared byte for byte with
`golden/dockerfiles/<case>.Dockerfile` (the imagespec version written as `{VERSION}`).

Regenerate (refused without the variable, and refused for a changed file unless RECIPE_VERSION
was bumped):

    IMAGESPEC_REGEN_GOLDEN=1 .venv/bin/python -m tests.test_dockerfiles --regen
"""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import imagespec
from imagespec import ImageSpec, _core
from imagespec._build import dockerfile

from .dockerfile_parser import flags_and_json, instructions, quoted_pairs
from .test_golden import chdir, prepare_tree, resolve

DOCKERFILES = Path(__file__).parent / "golden" / "dockerfiles"
RECIPE_FILE = DOCKERFILES / "RECIPE"
REGEN_VAR = "IMAGESPEC_REGEN_GOLDEN"
WHEEL = f"imagespec_build-{imagespec.__version__}-cp39-abi3-manylinux_2_17_x86_64.whl"
PEM = "-----BEGIN CERTIFICATE-----\nMIIBfakefakefake\n-----END CERTIFICATE-----\n"

# name -> (spec fields with golden/trees-relative paths, build options). `python_version` is
# explicit wherever the default would be the interpreter's; no loopback registry without a platform.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "minimal": ({"python_version": "3.11"}, {}),
    "seed-pandas": (
        {
            "name": "pandas",
            "python_version": "3.11",
            "packages": ["pandas", "numpy"],
            "env": {"Debug": "True"},
            "registry": "localhost:30000",
            "platform": "linux/amd64",
        },
        {},
    ),
    "apt-commands-entrypoint": (
        {
            "python_version": "3.12",
            "apt_packages": ["git", "curl"],
            "commands": ["echo one", "mkdir -p /data && echo two > /data/x"],
            "entrypoint": ["python", "-m", "app"],
            "env": {"A": 'x $HOME "q" \\ end', "PYTHONPATH": "/root:/opt/lib"},
        },
        {"engine": "buildah"},
    ),
    "requirements": (
        {"python_version": "3.11", "requirements": "reqs/requirements.txt", "packages": ["rich>=13"]},
        {},
    ),
    "uv-lock": ({"python_version": "3.11", "requirements": "uvproj/uv.lock"}, {}),
    "package-groups": (
        {
            "python_version": "3.11",
            "requirements": "uvproj/uv.lock",
            "packages": [
                "pandas",
                "torch==2.3.1",
                "nvidia-cudnn-cu12",
                "Transformers>=4.40",
                "datasets",
                "rich",
            ],
            "builder_options": {"package_groups": [["transformers", "datasets"]]},
        },
        {},
    ),
    "poetry-lock": ({"python_version": "3.11", "requirements": "poetryproj/poetry.lock"}, {}),
    # A uv workspace with a member, the project installed too, an override and a constraint.
    "uv-project": (
        {
            "python_version": "3.11",
            "project": "uvws",
            "project_install_mode": "install_project",
            "overrides": ["packaging==24.0"],
            "constraints": ["six<1.17"],
        },
        {},
    ),
    "poetry-project": ({"python_version": "3.11", "project": "poetryproj"}, {}),
    "source-and-copy": (
        {
            "python_version": "3.11",
            "source_root": "proj",
            "source_copy_mode": "ALL",
            "copy": ["data/config.json", "assets"],
        },
        {},
    ),
    "commands-need-source": (
        {
            "python_version": "3.11",
            "source_root": "proj",
            "source_copy_mode": "ALL",
            "commands": ["python /root/app/main.py"],
            "builder_config": {"commands_need_source": True},
        },
        {},
    ),
    "base-spec": (
        {
            "name": "child",
            "packages": ["scikit-learn"],
            "base_image": {
                "name": "base",
                "registry": "ghcr.io/acme",
                "python_version": "3.10",
                "source_root": "baseproj",
                "source_copy_mode": "ALL",
                "packages": ["numpy"],
            },
        },
        {},
    ),
    "conda-python-exec": (
        {
            "base_image": "registry.example.com/micromamba:1.5",
            "python_exec": "/opt/conda/bin/python",
            "conda_packages": ["numpy>=1.26"],
            "conda_channels": ["conda-forge"],
        },
        {},
    ),
    "secrets": (
        {
            "python_version": "3.11",
            "packages": ["private-pkg"],
            "pip_index": "https://user:s3cret@pypi.example.com/simple",
            "pip_extra_index_url": ["https://download.pytorch.org/whl/cpu"],
            "pip_extra_args": "--pre --no-compile",
            "pip_secret_mounts": [["netrc", "/root/.netrc"]],
            "apt_packages": ["git"],
            "commands": ["pip download rich"],
        },
        {"ca_bundle": PEM},
    ),
    "no-buildkit": (
        {
            "python_version": "3.11",
            "apt_packages": ["git"],
            "requirements": "reqs/requirements.txt",
            "pip_index": "https://pypi.example.com/simple",
        },
        {"buildkit": False, "engine": "docker-legacy"},
    ),
    "wheel": ({"python_version": "3.11", "runtime_packages": ["rich"]}, {"imagespec_wheel": WHEEL}),
    # Built for a flytekit spec (the bridge): flytekit's id in _F_IMG_ID, ours paired with it.
    "flytekit-id": (
        {"name": "bridged", "python_version": "3.11", "packages": ["six", "flytekit==1.16.31"]},
        {"flytekit_id": "flytekit-id-of-the-spec"},
    ),
}


def generate(name: str, tree: Path) -> str:
    fields, options = CASES[name]
    # The recipe of a released imagespec: the index's imagespec-build (docs/runtime.md).
    options = {"imagespec_wheel": "index", **options}
    if options["imagespec_wheel"] != "index":
        wheel = tree / options["imagespec_wheel"]
        wheel.write_bytes(b"not a real wheel")
        options["imagespec_wheel"] = wheel
    with chdir(tree):
        spec = ImageSpec(**resolve(fields, tree))
        if "flytekit_id" in options:
            options["flytekit_ids"] = {spec: options.pop("flytekit_id")}
        text = dockerfile(spec, **options)
    version = imagespec.__version__
    return text.replace(f"imagespec-build=={version}", "imagespec-build=={VERSION}").replace(
        f"imagespec_build-{version}-", "imagespec_build-{VERSION}-"
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_tree(tmp_path_factory.mktemp("golden") / "trees")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_dockerfile(name: str, tree: Path) -> None:
    path = DOCKERFILES / f"{name}.Dockerfile"
    assert path.exists(), f"no golden file for {name}: regenerate (see the README)"
    assert generate(name, tree) == path.read_text(), f"{name}: the recipe changed; see the README"


def test_every_golden_file_has_a_case() -> None:
    assert sorted(p.stem for p in DOCKERFILES.glob("*.Dockerfile")) == sorted(CASES)


def test_the_golden_files_are_for_this_recipe() -> None:
    assert int(RECIPE_FILE.read_text()) == _core.RECIPE_VERSION


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_dockerfiles_parse_as_expected(name: str) -> None:
    text = (DOCKERFILES / f"{name}.Dockerfile").read_text()
    assert "# syntax" not in text
    ins = instructions(text)
    assert ins[0][0] == "FROM" and [w for w, _ in ins].count("FROM") == 1
    for word, rest in ins:
        if word in ("RUN", "ENTRYPOINT"):
            flags_and_json(rest)
        elif word in ("ENV", "LABEL") and not rest.startswith("VIRTUAL_ENV="):
            quoted_pairs(rest)
    assert ins[-1][0] == "ENV" and "_F_IMG_ID" in dict(quoted_pairs(ins[-1][1]))
    assert "s3cret" not in text and "MIIBfake" not in text


def regen(write: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tree = prepare_tree(Path(tmp) / "trees")
        texts = {name: generate(name, tree) for name in CASES}
    recipe_bumped = not RECIPE_FILE.exists() or int(RECIPE_FILE.read_text()) != _core.RECIPE_VERSION
    changed = []
    for name, text in sorted(texts.items()):
        path = DOCKERFILES / f"{name}.Dockerfile"
        if not path.exists():
            print(f"added   {name}")
        elif path.read_text() != text:
            changed.append(name)
            print(f"CHANGED {name}")
            old = path.read_text().splitlines(True)
            sys.stdout.writelines(difflib.unified_diff(old, text.splitlines(True), "golden", "now"))
    for path in DOCKERFILES.glob("*.Dockerfile"):
        if path.stem not in texts:
            print(f"removed {path.stem}")
    if changed and not recipe_bumped:
        print(
            "the generated images changed: bump RECIPE_VERSION in src/lib.rs (and regenerate "
            "tests/golden/tags.json) before regenerating these",
            file=sys.stderr,
        )
        return 1
    if not write:
        print(f"(set {REGEN_VAR}=1 to write)", file=sys.stderr)
        return 1
    for path in DOCKERFILES.glob("*.Dockerfile"):
        path.unlink()
    for name, text in texts.items():
        (DOCKERFILES / f"{name}.Dockerfile").write_text(text)
    RECIPE_FILE.write_text(f"{_core.RECIPE_VERSION}\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen"]:
        print(__doc__)
        sys.exit(2)
    sys.exit(regen(os.environ.get(REGEN_VAR) == "1"))
