"""`imagespec build` against the real `pyflyte build` (flytekit 1.16 from PyPI, in the venv that
scripts/flytekit-venv.sh makes): the same options, the same images, the same exit code for a FILE
that is no Python file. Citations are flytekit v1.16.24 (the mirror's HEAD). ``fk`` (flytekit
with a wheel of this checkout) is tests/compat/conftest.py's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from imagespec import cli as imagespec_cli

from ..conftest import write_tree
from ..flytekit_helpers import CLEARED, Flytekit, missing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fk_python() -> Path:
    """The flytekit venv's python (flytekit only: pyflyte is beside it)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "flytekit-venv.sh")], capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        missing(f"scripts/flytekit-venv.sh could not make the flytekit venv:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in CLEARED}
    # Wide, plain help: rich-click wraps and colours to the terminal.
    full.update({"COLUMNS": "300", "TERM": "dumb", "NO_COLOR": "1", "FLYTE_SDK_RICH_TRACEBACKS": "0"})
    full.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=600, check=False)


# ------------------------------------------------------------------------ every option is accepted

# The click parameters of `pyflyte build` (flytekit/clis/sdk_in_container/build.py:16, BuildParams:
# RunLevelParams of run.py:89 and --fast), as click itself describes them.
PARAMS = """
import json
import click
from flytekit.clis.sdk_in_container.build import build
print(json.dumps([
    {"opts": [*p.opts, *p.secondary_opts], "flag": bool(p.is_flag), "type": p.type.name,
     "choices": list(getattr(p.type, "choices", None) or [])}
    for p in build.get_params(click.Context(build))
]))
"""

# A valid value for the TEXT options whose callback checks the form (run.py:130-275); any other
# TEXT option gets "x", so a new one is tried too.
TEXT_VALUES = {
    "--image": "ghcr.io/org/img:1.0",
    "--envvars": "A=1",
    "--annotations": "k=v",
    "--labels": "k=v",
    "--resource-requests": "cpu=1,mem=2Gi",
    "--resource-limits": "cpu=2",
}

NO_FLYTEKIT_MODULE = """
import flytekit

@flytekit.task(container_image="python:3.11-slim")
def t() -> int:
    return 1

@flytekit.workflow
def wf() -> int:
    return t()
"""

OURS_MODULE = """
from imagespec import ImageSpec, task, workflow

img = ImageSpec(name="a", registry="localhost:5000", python_version="3.11", packages=["six"])

@task(container_image=img)
def t() -> int:
    return 1

@workflow
def wf() -> int:
    return t()
"""


def help_options(help_text: str) -> set[str]:
    """The option names of a rich-click help: each row of the options box starts with the long
    names (comma-separated), then the short one in its own column."""
    names: set[str] = set()
    for line in help_text.splitlines():
        row = line.strip("│ ").strip()
        if not row.startswith("--"):
            continue
        cells = re.split(r"\s{2,}", row)
        names.update(cells[0].split(","))
        if len(cells) > 1 and re.fullmatch(r"-[a-zA-Z]", cells[1]):
            names.add(cells[1])
    return names


def sample_args(param: dict[str, Any]) -> list[list[str]]:
    """The option given with a valid value, for each of its names (and each choice)."""
    opts: list[str] = param["opts"]
    long = next(o for o in opts if o.startswith("--"))
    if param["flag"]:
        values: list[list[str]] = [[]]
    elif param["type"] == "integer":
        values = [["3"]]
    elif param["type"] == "boolean":
        values = [["true"], ["False"]]
    elif param["type"] == "choice":
        values = [[c] for c in param["choices"]]
    elif param["type"] in ("text", "unprocessed"):
        values = [[TEXT_VALUES.get(long, "x")]]
    else:
        raise AssertionError(f"pyflyte build has an option of a new type: {param}; give it a sample value")
    return [[name, *value] for name in opts for value in values]


def test_imagespec_build_accepts_every_pyflyte_build_option(fk_python: Path, tmp_path: Path) -> None:
    pyflyte = str(fk_python.parent / "pyflyte")
    out = run([pyflyte, "build", "--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    shown = help_options(out.stdout)
    params = json.loads(run([str(fk_python), "-c", PARAMS], tmp_path).stdout)
    # The help is parsed right: it shows what click has (a new option cannot hide from the parse).
    assert shown == {o for p in params for o in p["opts"]}
    assert {"--fast", "--copy", "-i", "--image", "--envvars", "--env", "-r", "--ecl"} <= shown
    params = [p for p in params if "--help" not in p["opts"]]

    # Each name, with a valid value, is an option of imagespec build taking as many words (FILE and
    # ENTITY stay FILE and ENTITY) and the value passes our checks.
    parser = imagespec_cli._parser()
    every: list[str] = []
    for param in params:
        for args in sample_args(param):
            ns = parser.parse_args(["build", *args, "wf.py", "wf"])
            assert (ns.target, ns.entity) == ("wf.py", "wf"), args
        every += sample_args(param)[0]

    # The samples are valid for pyflyte build too: all at once, it builds (nothing, a reference).
    write_tree(tmp_path / "fk", {"wf.py": NO_FLYTEKIT_MODULE})
    out = run([pyflyte, "build", *every, "wf.py", "wf"], tmp_path / "fk")
    assert out.returncode == 0, out.stdout + out.stderr

    # imagespec build with all of them builds what it builds without them.
    write_tree(tmp_path / "ours", {"wf.py": OURS_MODULE})
    imagespec = [sys.executable, "-m", "imagespec", "build", "--dry-run", "--json"]
    plain = run([*imagespec, "wf.py", "wf"], tmp_path / "ours")
    assert plain.returncode == 0, plain.stderr
    given = run([*imagespec, *every, "wf.py", "wf"], tmp_path / "ours")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout) == json.loads(plain.stdout) != []


# ------------------------------------------------------- --fast, and without it, as pyflyte build

# Wraps pyflyte: a builder (the only one, by priority) that records what it is asked to build,
# and which files flytekit would copy (flytekit/image_spec/image_spec.py:223-241 hashes the same).
RECORDER = """
import json, os, sys
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpecBuilder
from flytekit.tools.ignore import DockerIgnore, GitIgnore, IgnoreGroup, StandardIgnore
from flytekit.tools.script_mode import ls_files

class Recorder(ImageSpecBuilder):
    def should_build(self, spec):
        return True

    def build_image(self, spec):
        files = []
        mode = spec.source_copy_mode.name if spec.source_copy_mode else None
        if spec.source_root and mode not in (None, "NO_COPY"):
            ignore = IgnoreGroup(spec.source_root, [GitIgnore, DockerIgnore, StandardIgnore])
            paths, _ = ls_files(str(spec.source_root), spec.source_copy_mode, False, ignore)
            files = sorted({os.path.relpath(p, spec.source_root) for p in paths})
        row = {"name": spec.name, "source_root": spec.source_root, "mode": mode, "files": files,
               "id": spec.id}
        with open(os.environ["RECORD"], "a") as f:
            f.write(json.dumps(row) + "\\n")
        return spec.image_name()

ImageBuildEngine.register("recorder", Recorder(), priority=1000)
from flytekit.clis.sdk_in_container.pyflyte import main
sys.argv = ["pyflyte", *sys.argv[1:]]
main()
"""

# Specs in each state update_image_spec_copy_handling distinguishes
# (flytekit/core/python_auto_container.py:413-431): no mode and no root, a root, NO_COPY, and ALL
# without a root (which flytekit refuses under --fast: image_spec.py:224, so it has its own workflow).
PROJECT = {
    "helper.py": "X = 1\n",
    "sub/s.py": "Y = 2\n",
    "notes.txt": "not a module\n",
    "wf.py": textwrap.dedent(
        """
        from pathlib import Path
        import flytekit
        from flytekit.constants import CopyFileDetection
        import helper

        HERE = Path(__file__).resolve().parent
        kw = dict(registry="localhost:5000", python_version="3.11")
        plain = flytekit.ImageSpec(name="plain", packages=["six"], **kw)
        rooted = flytekit.ImageSpec(name="rooted", source_root=str(HERE / "sub"), **kw)
        nocopy = flytekit.ImageSpec(name="nocopy", source_copy_mode=CopyFileDetection.NO_COPY, **kw)
        every = flytekit.ImageSpec(name="every", source_copy_mode=CopyFileDetection.ALL, **kw)

        @flytekit.task(container_image=plain)
        def t_plain() -> int:
            return helper.X

        @flytekit.task(container_image=rooted)
        def t_rooted() -> int:
            return 2

        @flytekit.task(container_image=nocopy)
        def t_nocopy() -> int:
            return 3

        @flytekit.task(container_image=every)
        def t_every() -> int:
            return 4

        @flytekit.workflow
        def wf() -> int:
            t_plain()
            t_nocopy()
            return t_rooted()

        @flytekit.workflow
        def wf_all() -> int:
            return t_every()
        """
    ),
}

# The image our flytekit builder would build for the spec pyflyte build serialised: the module's
# spec with the recorded source_root and mode, converted as the bridge converts it.
EXPECTED = """
import copy, json, os
from flytekit.constants import CopyFileDetection
from imagespec import ImageSpec
import wf

out = {}
for row in json.loads(os.environ["ROWS"]):
    spec = copy.copy(getattr(wf, row["name"]))
    spec.source_root = row["source_root"]
    spec.source_copy_mode = CopyFileDetection[row["mode"]] if row["mode"] else None
    out[row["name"]] = ImageSpec.from_flytekit(spec, add_flytekit=True).image_name()
print(json.dumps(out))
"""


def pyflyte_builds(fk: Flytekit, project: Path, *args: str) -> dict[str, dict[str, Any]]:
    record = project.parent / "record.jsonl"
    record.unlink(missing_ok=True)
    recorder = project.parent / "tools" / "recorder.py"  # outside the project: not a loaded module of it
    recorder.parent.mkdir(exist_ok=True)
    recorder.write_text(RECORDER)
    out = run([str(fk.python), str(recorder), "build", *args], project, {"RECORD": str(record)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    return {row["name"]: row for row in rows}


def imagespec_builds(fk: Flytekit, project: Path, *args: str) -> dict[str, dict[str, Any]]:
    argv = ["build", "--dry-run", "--json", *args]
    code = f"import sys\nfrom imagespec.cli import main\nsys.exit(main({argv!r}))"
    out = fk.run(code, project, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {str(r["image"]).split("/")[-1].split(":")[0]: r for r in json.loads(out.stdout)}
    for row in rows.values():
        row["source_files"] = sorted(f.removeprefix("source/") for f in row["files"] if f != "Dockerfile")
        row["fk_id"] = re.findall(r'_F_IMG_ID="([^"]*)"', row["dockerfile_text"])[-1]
    return rows


def check_same_images(fk: Flytekit, project: Path, theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    assert sorted(ours) == sorted(theirs)
    rows = json.dumps(list(theirs.values()))
    expected = json.loads(fk.run(EXPECTED, project, {"ROWS": rows}).stdout)
    for name, row in theirs.items():
        # The files flytekit would copy are the image's; the image is the one our builder would
        # build for the serialised spec, and it carries flytekit's id of that spec.
        assert ours[name]["source_files"] == row["files"], name
        assert ours[name]["image"] == expected[name], name
        assert ours[name]["fk_id"] == row["id"], name


def test_build_gives_flytekit_specs_the_project_unless_fast_as_pyflyte_build(
    fk: Flytekit, tmp_path: Path
) -> None:
    project = write_tree(tmp_path / "project", PROJECT)
    # flytekit/clis/sdk_in_container/build.py:44-45: source_root is the project root unless --fast.
    theirs = pyflyte_builds(fk, project, "wf.py", "wf")
    assert theirs["plain"]["files"] == ["helper.py", "wf.py"]  # LOADED_MODULES of the project root
    assert theirs["plain"]["source_root"] == str(project)
    ours = imagespec_builds(fk, project, "wf.py", "wf")
    check_same_images(fk, project, theirs, ours)

    fast_theirs = pyflyte_builds(fk, project, "--fast", "wf.py", "wf")
    assert fast_theirs["plain"]["files"] == [] and fast_theirs["plain"]["source_root"] is None
    fast_ours = imagespec_builds(fk, project, "--fast", "wf.py", "wf")
    check_same_images(fk, project, fast_theirs, fast_ours)
    assert fast_ours["plain"]["image"] != ours["plain"]["image"]
    assert fast_ours["rooted"]["image"] == ours["rooted"]["image"]  # it had its own source_root

    # Without ENTITY (which pyflyte build requires), every task's image is serialised the same way;
    # the user's spec objects are left as declared (the module-level spec converted is the task's).
    everything = imagespec_builds(fk, project, "wf.py")
    assert everything["plain"]["image"] == ours["plain"]["image"]


def test_copy_mode_all_without_a_root_copies_the_whole_project_as_pyflyte_build(
    fk: Flytekit, tmp_path: Path
) -> None:
    project = write_tree(tmp_path / "project", PROJECT)
    theirs = pyflyte_builds(fk, project, "wf.py", "wf_all")
    assert theirs["every"]["mode"] == "ALL"
    assert theirs["every"]["files"] == ["helper.py", "notes.txt", "sub/s.py", "wf.py"]
    check_same_images(fk, project, theirs, imagespec_builds(fk, project, "wf.py", "wf_all"))


# ------------------------------------------------------------ a FILE that is no Python file: exit 1


@pytest.mark.parametrize("path", ["notes.txt", "folder", "missing.py"])
def test_a_path_that_is_no_python_file_exits_1_as_pyflyte_build(
    fk_python: Path, tmp_path: Path, path: str
) -> None:
    write_tree(tmp_path, {"notes.txt": "name: x\n", "folder/x.py": ""})
    # pyflyte: a missing file exits 1 (run.py:1169-1171); importing a folder or a .txt fails, and
    # pyflyte's group turns any exception into exit 1 (clis/sdk_in_container/utils.py:195-197).
    theirs = run([str(fk_python.parent / "pyflyte"), "build", path, "wf"], tmp_path)
    assert theirs.returncode == 1, theirs.stdout + theirs.stderr
    ours = run([sys.executable, "-m", "imagespec", "build", path, "wf"], tmp_path)
    assert ours.returncode == 1, ours.stderr
    assert ours.stderr.startswith(f"imagespec: error: {path}: ")
    assert "Traceback" not in ours.stderr
