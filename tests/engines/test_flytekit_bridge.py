"""The flytekit bridge for real: a flytekit task whose ``container_image`` is ``spec.to_flytekit()``,
serialised by flytekit's own path in real flytekit (scripts/flytekit-venv.sh), makes our plan build
the image with the Docker engine and push it to the loopback registry; the task template names
the image our engine reported, and the image runs flytekit (the bridge adds it). Inside it, both
flytekit's ``is_container()`` of the task's spec and ours of the converted spec are True.

The image pip-installs flytekit (a few minutes, once per session).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..flytekit_helpers import Flytekit, make_flytekit
from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, DockerEngine, missing

TASKS = """
import os
import flytekit
import imagespec

spec = imagespec.ImageSpec(
    name="fk-bridge", base_image=os.environ["BASE"], registry=os.environ["REG"], builder="docker",
    packages=["six==1.16.0"],
)

@flytekit.task(container_image=spec.to_flytekit())
def double(x: int) -> int:
    return 2 * x
"""

SERIALISE = r"""
import json
from collections import OrderedDict
import imagespec
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
import fk_bridge_tasks

converted = imagespec.ImageSpec.from_flytekit(fk_bridge_tasks.double.container_image, add_flytekit=True)
tag_name = converted.image_name()
settings = SerializationSettings(
    image_config=ImageConfig.auto_default_image(), project="p", domain="d", version="v1")
entity = get_serializable(OrderedDict(), settings, fk_bridge_tasks.double)
print(json.dumps({"image": entity.template.container.image, "tag_name": tag_name, "id": converted.id,
                  "fk_id": fk_bridge_tasks.double.container_image.id,
                  "reported": converted.image_name(), "flytekit": __import__("flytekit").__version__}))
"""


IS_CONTAINER = """
import json, os
import flytekit, imagespec
from flytekit.core.context_manager import ExecutionState, FlyteContextManager
import fk_bridge_tasks

fk_spec = fk_bridge_tasks.double.container_image
other_fk = flytekit.ImageSpec(name="other", packages=["six==1.16.0"], registry=os.environ["REG"])
# Our ids are the image's content (docs/tag-scheme.md): a spec differing by its name only would
# be this image, so the other one differs by a package.
other = imagespec.ImageSpec(name="other", base_image=os.environ["BASE"], packages=["six==1.16.0", "attrs"])
ctx = FlyteContextManager.current_context()
state = ctx.execution_state.with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
with FlyteContextManager.with_context(ctx.with_execution_state(state)):
    mode = FlyteContextManager.current_context().execution_state.mode
    print(json.dumps({
        "flytekit_mode": mode.name,
        "flytekit": fk_spec.is_container(),
        "ours": imagespec.ImageSpec.from_flytekit(fk_spec, add_flytekit=True).is_container(),
        "ours_as_given": fk_bridge_tasks.spec.is_container(),  # without the flytekit the bridge adds
        "other_flytekit": other_fk.is_container(),
        "other_ours": other.is_container(),
    }))
"""


@pytest.fixture(scope="session")
def fk(tmp_path_factory: pytest.TempPathFactory) -> Flytekit:
    return make_flytekit(tmp_path_factory.mktemp("flytekit"))


@pytest.mark.timeout(2400)
def test_a_flytekit_task_serialises_with_an_image_our_engine_built_and_pushed(
    fk: Flytekit,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    tmp_path: Path,
) -> None:
    if not MACHINE_CA.is_file():
        missing(f"no machine CA bundle at {MACHINE_CA}")
    (tmp_path / "fk_bridge_tasks.py").write_text(TASKS)
    env = {
        "BASE": python_base,
        "REG": loopback_registry.host,
        "DOCKER_HOST": docker_engine.host,
        "DOCKER_BUILDKIT": "1",
        "IMAGESPEC_WHEEL": str(fk.wheel),
        "IMAGESPEC_CA_BUNDLE": str(MACHINE_CA),
        # The Flyte path takes an engine pool as imagespec build does: here one engine, by its socket.
        "IMAGESPEC_ENGINES": f"docker@{docker_engine.host}",
    }
    proc = fk.run(SERIALISE, tmp_path, env, timeout=2300)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    tag_name = out["tag_name"]
    docker_engine.created.add(tag_name)
    # flytekit's template names what our engine reported: the pushed image, pinned by digest.
    assert out["image"] == out["reported"]
    assert out["image"].startswith(f"{tag_name}@sha256:"), out
    assert f"Image {tag_name} not found. building..." in proc.stdout
    assert f"imagespec: building {tag_name} (docker@{docker_engine.host})" in proc.stdout

    inside = docker_engine(
        "run",
        "--rm",
        out["image"],
        "python",
        "-c",
        "import json, os, flytekit, imagespec, six;"
        "print(json.dumps([flytekit.__version__, os.environ['_F_IMG_ID'], os.environ['IMAGESPEC_IMG_ID'],"
        " six.__version__]))",
        timeout=300,
    )
    # flytekit's id in _F_IMG_ID (what flytekit's is_container() reads), ours paired with it.
    assert json.loads(inside.strip().splitlines()[-1]) == [
        out["flytekit"],
        out["fk_id"],
        f"{out['id']}:{out['fk_id']}",
        "1.16.0",
    ]
    # Inside, as in a task execution on a cluster, the task module's flytekit spec is the container
    # by flytekit's own is_container(), and so is ours (converted as the builder did, or as the
    # user wrote it: the flytekit the bridge added is left out, as flytekit's own builder leaves
    # it out of flytekit's id); other specs, flytekit's or ours, are not. The module is mounted for
    # the image's user (not root).
    tmp_path.chmod(0o755)
    inside = docker_engine(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/w:ro",
        "-w",
        "/w",
        "-e",
        "PYTHONPATH=/w",
        "-e",
        f"BASE={python_base}",
        "-e",
        f"REG={loopback_registry.host}",
        out["image"],
        "python",
        "-c",
        IS_CONTAINER,
        timeout=300,
    )
    assert json.loads(inside.strip().splitlines()[-1]) == {
        "flytekit_mode": "TASK_EXECUTION",
        "flytekit": True,
        "ours": True,
        "ours_as_given": True,
        "other_flytekit": False,
        "other_ours": False,
    }

    # Serialised again in a new process: the registry has it, nothing is built, same name.
    again = fk.run(SERIALISE, tmp_path, env, timeout=600)
    out2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert out2["image"] == out["image"]
    assert f"Image {tag_name} found. Skip building." in again.stdout
