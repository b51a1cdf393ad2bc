"""An image that holds the task's module (its spec's source_root selects it) runs its own copy under
`imagespec run --in-containers`: nothing is shipped, even when the file on the host differs.

An image's tag hashes the files its source_root selects, so editing the file in that folder makes
a new image, which holds the edit. The host file can only differ from the image's copy when the
module is run from another folder than the one the spec builds from, as in the second part here:
`release/` is the spec's source_root (a frozen copy of the code, ALL mode), `work/wf.py` is the
file run, edited after the build. flytekit's fast registration would unpack the working copy over
the image's (flytekit/tools/fast_registration.py:317, "This will overwrite the existing user flyte
workflow code"); we keep the image's (docs/tasks.md, docs/flytekit.md).
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, DockerEngine, run

WF = """\
import os
from pathlib import Path

import helpers

from imagespec import ImageSpec, task, workflow

MARK = "v1"
HERE = Path(__file__).resolve().parent
# The image carries what its identity depends on, so that is_container() answers inside it.
carried = {k: os.environ[k] for k in ("RC_BASE_IMAGE", "RC_MODE") if os.environ.get(k)}
spec = ImageSpec(
    name="rc-own", packages=["six==1.16.0"], source_root=os.environ.get("RC_SOURCE") or str(HERE),
    source_copy_mode=os.environ.get("RC_MODE"), env=carried, base_image=os.environ.get("RC_BASE_IMAGE"),
    registry=os.environ.get("RC_REGISTRY", "localhost:30000"), python_version="3.11",
)


@task(container_image=spec)
def where() -> dict:
    return {
        "mark": MARK, "helper": helpers.MARK, "files": [__file__, helpers.__file__],
        "code": os.environ.get("IMAGESPEC_CODE_DIR"), "is_container": spec.is_container(),
    }


@workflow
def wf() -> dict:
    return where()
"""


def imagespec(*args: str, root: Path, env: dict[str, str]) -> Any:
    return run([sys.executable, "-m", "imagespec", *args], cwd=root, env=env, timeout=900)


def test_an_image_holding_the_module_runs_its_own_copy_after_the_host_file_changed(
    tmp_path: Path,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
) -> None:
    if not MACHINE_CA.is_file():
        pytest.fail(f"no machine CA bundle at {MACHINE_CA}")
    work, release = tmp_path / "work", tmp_path / "release"
    work.mkdir()
    (work / "wf.py").write_text(WF)
    (work / "helpers.py").write_text('MARK = "h1"\n')
    shutil.copytree(work, release)
    env = docker_engine.env(
        RC_REGISTRY=loopback_registry.host,
        RC_BASE_IMAGE=python_base,
        IMAGESPEC_WHEEL=str(imagespec_wheel),
        IMAGESPEC_CA_BUNDLE=str(MACHINE_CA),
    )
    image_copy = {
        "mark": "v1",
        "helper": "h1",
        "files": ["/root/wf.py", "/root/helpers.py"],
        "code": None,
        "is_container": True,
    }

    # source_root is the module's folder, LOADED_MODULES (flytekit's default): the image holds
    # wf.py and helpers.py, the files the host loaded from there, and runs them.
    done = imagespec("run", "wf.py", "wf", "--in-containers", root=work, env=env)
    assert ast.literal_eval(done.stdout.strip()) == image_copy, done.stderr
    assert "shipping" not in done.stderr, done.stderr

    # A frozen copy of the code, ALL of it, is the source_root; the working copy moves on after the
    # build, the image does not.
    env.update(RC_SOURCE=str(release), RC_MODE="ALL")
    (built,) = json.loads(imagespec("build", "wf.py", "wf", "--json", root=work, env=env).stdout)
    assert built["outcome"] == "built", built
    (work / "wf.py").write_text(WF.replace('MARK = "v1"', 'MARK = "v2"'))
    (work / "helpers.py").write_text('MARK = "h2"\n')
    done = imagespec("run", "wf.py", "wf", "--in-containers", root=work, env=env)
    assert ast.literal_eval(done.stdout.strip()) == image_copy, done.stderr
    assert "shipping" not in done.stderr and "building" not in done.stderr, done.stderr
    assert [line.split()[1] for line in done.stderr.splitlines() if line.startswith("running ")] == [
        "wf.where"
    ]

    # The same module run against a spec whose image lacks it gets the working copy, shipped: the
    # marks tell the two copies apart. The shipped copy comes first, before the image's own
    # helpers.py, as flytekit's tarball is unpacked over the image's files.
    (release / "wf.py").unlink()
    elsewhere = imagespec("run", "wf.py", "wf", "--in-containers", root=work, env=env)
    assert ast.literal_eval(elsewhere.stdout.strip()) == {
        "mark": "v2",
        "helper": "h2",
        "files": ["/imagespec-code/wf.py", "/imagespec-code/helpers.py"],
        "code": "/imagespec-code",
        "is_container": True,
    }, elsewhere.stderr
    assert "shipping wf and its local imports (2 files of " in elsewhere.stderr
