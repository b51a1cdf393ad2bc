"""`imagespec run FILE wf --in-containers` with specs that have NO source_root (the seed's example as
flytekit users write it): the images hold no code, so the run ships the task's module and its local
imports into each container, read-only, as flytekit's fast registration ships them
(flytekit/tools/fast_registration.py, flytekit/bin/entrypoint.py:765 fast_execute_task_cmd).

The workflow has the seed's shape (two images, a guarded import that only the second image can
make, three tasks) with small packages; the host needs sortedcontainers too (the guarded import
runs on the host, where is_container() is True), which .venv has through hypothesis.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, DockerEngine, missing, run

WF = '''\
"""The seed's example with small packages and no source_root."""
import errno
import os
import stat
import tempfile
import typing
from pathlib import Path

import helpers
from pkg import sub

from imagespec import ImageSpec, Resources, task, workflow

registry = os.environ.get("RC_REGISTRY", "localhost:30000")
base_image = os.environ.get("RC_BASE_IMAGE")
# The base is part of a spec's identity: the images carry it so that is_container() answers there.
base_env = {"RC_BASE_IMAGE": base_image} if base_image else {}

frame_image = ImageSpec(
    name="rc-frame", packages=["six==1.16.0"], env={"Debug": "True", **base_env},
    registry=registry, base_image=base_image, python_version="3.11",
)
model_image = ImageSpec(
    name="rc-model", packages=["sortedcontainers==2.4.0"], env=base_env,
    registry=registry, base_image=base_image, python_version="3.11",
)

if model_image.is_container():
    from sortedcontainers import SortedList


@task(container_image=frame_image)
def get_frame() -> typing.Tuple[typing.List[int], typing.List[str]]:
    import six  # only the frame image has it

    feature = helpers.feature()
    return feature, [six.text_type(x * sub.FACTOR) for x in feature]


@task(container_image=model_image, requests=Resources(cpu="1", mem="1Gi"))
def get_model(max_iter: int) -> dict:
    return {"kind": SortedList.__name__, "max_iter": max_iter}


@task(container_image=model_image)
def train_model(model: dict, feature: list, target: list) -> str:
    ordered = SortedList(zip(feature, target))
    return f"{model['kind']}(max_iter={model['max_iter']}) " + ",".join(t for _, t in ordered)


@workflow
def wf() -> str:
    feature, target = get_frame()
    model = get_model(max_iter=3000)
    return train_model(model=model, feature=feature, target=target)


def _try(action) -> str:
    try:
        action()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "done"


def where() -> dict:
    code = os.environ.get("IMAGESPEC_CODE_DIR") or "/nonexistent"
    listing = {}
    for dirpath, dirnames, filenames in os.walk(code):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            listing[os.path.relpath(path, code)] = oct(stat.S_IMODE(os.lstat(path).st_mode))
    return {
        "files": [helpers.__file__, sub.__file__, __file__],
        "is_container": [frame_image.is_container(), model_image.is_container()],
        "code": code,
        "pythonpath": os.environ.get("PYTHONPATH"),
        "uid": os.getuid(),
        "mount": [line.split()[5] for line in open("/proc/self/mountinfo") if line.split()[4] == code],
        "listing": listing,
        "attempts": {
            "append": _try(lambda: open(os.path.join(code, "wf.py"), "a").close()),
            "create": _try(lambda: open(os.path.join(code, "new.py"), "w").close()),
            "create_in_package": _try(lambda: open(os.path.join(code, "pkg", "new.py"), "w").close()),
            "remove": _try(lambda: os.remove(os.path.join(code, "helpers.py"))),
            "chmod": _try(lambda: os.chmod(os.path.join(code, "wf.py"), 0o666)),
        },
    }


@task(container_image=frame_image)
def probe_frame() -> dict:
    return where()


@task(container_image=model_image)
def probe_model() -> dict:
    return where()


@workflow
def probe() -> dict:
    inside = [probe_frame(), probe_model()]
    # The workflow body runs on the host: the private folders of the shipped code, while they exist.
    private = sorted(Path(tempfile.gettempdir()).glob("imagespec-code-*"))
    host = [tuple(oct(stat.S_IMODE(q.stat().st_mode)) for q in (p, p / "code")) for p in private]
    return {"inside": inside, "host": host}
'''

PROJECT = {
    "wf.py": WF,
    "helpers.py": "def feature():\n    return [3, 1, 2]\n",
    "pkg/__init__.py": "",
    "pkg/sub.py": "FACTOR = 10\n",
    "pkg/unused.py": "raise RuntimeError('never imported')\n",
    "notes.txt": "not a module: not shipped\n",
}
SHIPPED = ["helpers.py", "pkg", "pkg/__init__.py", "pkg/sub.py", "wf.py"]


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def image_ids(docker_engine: DockerEngine, names: list[str]) -> dict[str, str]:
    """The local image id of each name (the config digest: any change to the image changes it)."""
    return {n: docker_engine("image", "inspect", "--format", "{{.Id}}", n).strip() for n in names}


@pytest.fixture
def project(
    tmp_path: Path,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
) -> tuple[Path, dict[str, str]]:
    if importlib.util.find_spec("sortedcontainers") is None:
        missing("sortedcontainers is not installed in this Python (make setup installs it)")
    if not MACHINE_CA.is_file():
        pytest.fail(f"no machine CA bundle at {MACHINE_CA}")
    root = tmp_path / "proj"
    write(root, PROJECT)
    tmp = tmp_path / "tmp"  # the run's own TMPDIR: what it leaves there is checked
    tmp.mkdir()
    env = docker_engine.env(
        RC_REGISTRY=loopback_registry.host,
        RC_BASE_IMAGE=python_base,
        IMAGESPEC_WHEEL=str(imagespec_wheel),
        IMAGESPEC_CA_BUNDLE=str(MACHINE_CA),
        TMPDIR=str(tmp),
    )
    return root, env


def imagespec(*args: str, root: Path, env: dict[str, str], timeout: float = 900) -> Any:
    return run([sys.executable, "-m", "imagespec", *args], cwd=root, env=env, timeout=timeout)


def test_the_seed_shape_without_source_root_runs_with_its_code_shipped(
    project: tuple[Path, dict[str, str]], docker_engine: DockerEngine
) -> None:
    root, env = project
    built = json.loads(imagespec("build", "wf.py", "wf", "--json", root=root, env=env).stdout)
    assert [r["outcome"] for r in built] == ["built", "built"], built
    names = [r["name"] for r in built]
    docker_engine.created.update(names)
    before = image_ids(docker_engine, names)
    sources = {rel: (root / rel).read_bytes() for rel in PROJECT}

    done = imagespec("run", "wf.py", "wf", "--in-containers", root=root, env=env)
    assert done.stdout.strip() == "SortedList(max_iter=3000) 10,20,30", done.stderr
    shipping = [line for line in done.stderr.splitlines() if line.startswith("shipping ")]
    assert len(shipping) == 1, done.stderr  # one copy serves every call of the run
    assert shipping[0].startswith(f"shipping wf and its local imports (4 files of {root}) read-only")
    ran = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("running ")]
    assert ran == ["wf.get_frame", "wf.get_model", "wf.train_model"]

    # The images are what was built: same names (pinned by the registry's digest), same local ids.
    again = json.loads(imagespec("build", "wf.py", "wf", "--json", root=root, env=env).stdout)
    assert [(r["outcome"], r["name"]) for r in again] == [("exists", n) for n in names]
    assert image_ids(docker_engine, names) == before
    # Nothing of the run is left on the host, and the project is untouched.
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    assert {rel: (root / rel).read_bytes() for rel in PROJECT} == sources


def test_the_shipped_code_is_the_local_imports_only_and_cannot_be_changed(
    project: tuple[Path, dict[str, str]], docker_engine: DockerEngine
) -> None:
    root, env = project
    done = imagespec("run", "wf.py", "probe", "--in-containers", root=root, env=env)
    result = ast.literal_eval(done.stdout.strip())
    frame, model = result["inside"]
    for inside in (frame, model):
        # The module and its local imports come from the shipped folder, first on both paths.
        assert inside["files"] == [
            "/imagespec-code/helpers.py",
            "/imagespec-code/pkg/sub.py",
            "/imagespec-code/wf.py",
        ]
        assert inside["code"] == "/imagespec-code" and inside["pythonpath"].split(":")[0] == "/imagespec-code"
        assert inside["uid"] == 1000
        # Only the loaded modules under the project (flytekit's LOADED_MODULES pick): not
        # pkg/unused.py, not notes.txt; folders 0555, files 0444.
        assert sorted(inside["listing"]) == SHIPPED
        assert {rel: mode for rel, mode in inside["listing"].items()} == {
            rel: "0o555" if rel == "pkg" else "0o444" for rel in SHIPPED
        }
        # The container cannot change it: the mount is read-only, and the files are not its own
        # and 0444 (the kernel checks that first when a file is opened for writing: EACCES).
        assert inside["mount"][0].split(",")[0] == "ro" and len(inside["mount"]) == 1, inside["mount"]
        assert inside["attempts"] == {
            "append": "EACCES",
            "create": "EROFS",
            "create_in_package": "EROFS",
            "remove": "EROFS",
            "chmod": "EROFS",
        }, inside["attempts"]
    # is_container() as on a cluster: each image knows itself only, with the shipped module.
    assert frame["is_container"] == [True, False] and model["is_container"] == [False, True]
    # On the host, the copy sat in a private folder (0700) while the tasks ran, then went away.
    assert result["host"] == [("0o700", "0o555")]
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    assert all((root / rel).read_text() == text for rel, text in PROJECT.items())
