"""Runs inside a fresh venv where only a built wheel or sdist of imagespec-build was installed:
reports, as one JSON object on stdout, what a user of that install sees, and what is wrong with it
(``problems``); with ``--check`` it exits 1 when anything is. Used by tests/dist/test_wheels.py
and by the release workflow's smoke test of each wheel (scripts/smoke.sh), on every OS: plain
Python 3.9 and the standard library, nothing else is installed there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

DISTRIBUTION = "imagespec-build"
# On the package index this name is an unrelated project: it must never come along.
FOREIGN = "imagespec"


def report() -> dict[str, Any]:
    import imagespec

    dist = metadata.distribution(DISTRIBUTION)
    script = shutil.which("imagespec", path=str(Path(sys.executable).parent))
    help_run = subprocess.run([script or "imagespec", "--help"], capture_output=True, text=True, check=False)
    pip_list = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    try:
        metadata.distribution(FOREIGN)
        foreign = True
    except metadata.PackageNotFoundError:
        foreign = False
    return {
        "python": "{}.{}".format(*sys.version_info[:2]),
        "prefix": sys.prefix,
        "module_file": imagespec.__file__,
        "version": imagespec.__version__,
        "dist_version": metadata.version(DISTRIBUTION),
        "image_name": imagespec.ImageSpec(packages=["pandas"], python_version="3.11").image_name(),
        "script": script,
        "help_returncode": help_run.returncode,
        "help": help_run.stdout,
        "entry_points": sorted(
            [ep.group, ep.name, ep.value]
            for ep in dist.entry_points
            if ep.group in ("flytekit.plugins", "console_scripts")
        ),
        "plugin_module_found": find_spec("imagespec._flytekit_plugin") is not None,
        "provides_extra": sorted(dist.metadata.get_all("Provides-Extra") or []),
        "requires_dist": sorted(dist.requires or []),
        "installed": sorted(p["name"].lower() for p in json.loads(pip_list.stdout)),
        "foreign_distribution": foreign,
    }


def problems(r: dict[str, Any]) -> list[str]:
    found = []
    if not Path(r["module_file"]).resolve().is_relative_to(Path(r["prefix"]).resolve()):
        found.append(f"imagespec was imported from {r['module_file']}, not from this venv ({r['prefix']})")
    if r["version"] != r["dist_version"]:
        found.append(f"imagespec.__version__ {r['version']} != {DISTRIBUTION} {r['dist_version']}")
    if not r["image_name"].startswith("imagespec:") or len(r["image_name"]) < len("imagespec:") + 16:
        found.append(f"unexpected image name {r['image_name']!r}")
    if r["help_returncode"] != 0 or not r["help"].startswith("usage: imagespec "):
        found.append(f"`imagespec --help` ({r['script']}) exited {r['help_returncode']}: {r['help'][:200]!r}")
    for ep in (
        ["flytekit.plugins", "imagespec", "imagespec._flytekit_plugin"],
        ["console_scripts", "imagespec", "imagespec.cli:main"],
    ):
        if ep not in r["entry_points"]:
            found.append(f"entry point {ep} is not declared: {r['entry_points']}")
    if not r["plugin_module_found"]:
        found.append("imagespec._flytekit_plugin (the flytekit.plugins entry point) is not importable")
    for extra, requirement in (("flytekit", "flytekit"), ("native", "uv")):
        if extra not in r["provides_extra"]:
            found.append(f"METADATA has no Provides-Extra: {extra}")
        if not any(q.startswith(requirement) and f"extra == '{extra}'" in q for q in r["requires_dist"]):
            found.append(f"the {extra} extra does not require {requirement}: {r['requires_dist']}")
    if r["foreign_distribution"] or FOREIGN in r["installed"]:
        found.append(f"a distribution named {FOREIGN!r} is installed: {r['installed']}")
    # Nothing but the install itself next to what venv seeds (pip; setuptools too before 3.12).
    if set(r["installed"]) - {"pip", "setuptools"} != {DISTRIBUTION}:
        found.append(f"installed distributions are {r['installed']}")
    return found


def main() -> None:
    r = report()
    r["problems"] = problems(r)
    print(json.dumps(r))
    if "--check" in sys.argv[1:] and r["problems"]:
        print("smoke test failed:\n  " + "\n  ".join(r["problems"]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
