"""flytekit's own CLI with imagespec installed, for real: ``pyflyte run``, ``pyflyte build`` and
``pyflyte package`` (flytekit from PyPI, scripts/flytekit-venv.sh; this checkout's wheel on its
path) on a workflow whose tasks run in a ``flytekit.ImageSpec(builder="imagespec")`` and in our
``ImageSpec`` given directly. The Docker engine builds, the loopback registry holds the images.

Checked: a local run builds nothing; a build builds and pushes each image once, and a second build
nothing; the packaged task templates (protobuf, read with flytekit's models) name the pushed
images by the digest the registry serves; a packaged template runs in its image with flytekit's
``pyflyte-execute``; inside the images of a fast registration both ``is_container()`` checks of
the task's spec, flytekit's and ours, are True.

The images pip-install flytekit (a few minutes for the first; the others share its layers).
"""

from __future__ import annotations

import http.client
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ..flytekit_helpers import Flytekit, make_flytekit
from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, DockerEngine, missing

WF = """
import flytekit
import imagespec

ours = imagespec.ImageSpec(name="fk-cli-ours", base_image="{base}", registry="{reg}", builder="docker",
                           packages=["six==1.16.0"])
theirs = flytekit.ImageSpec(name="fk-cli-theirs", base_image="{base}", registry="{reg}", builder="imagespec",
                            builder_options={{"imagespec_builder": "docker"}}, packages=["six==1.16.0"])

@flytekit.task(container_image=ours)
def add_one(x: int) -> int:
    return x + 1

@flytekit.task(container_image=theirs)
def double(x: int) -> int:
    return 2 * x

@flytekit.workflow
def wf(x: int = 1) -> int:
    return double(x=add_one(x=x))
"""

# The task templates of a `pyflyte package` archive: each task's TaskSpec (flyteidl), by task name.
TEMPLATES = r"""
import json, sys, tarfile
from flyteidl.admin import task_pb2
from flytekit.models.task import TaskSpec
out = {}
with tarfile.open(sys.argv[1]) as tar:
    for member in tar.getmembers():
        if member.name.endswith("_1.pb"):  # flytekit/tools/serialize_helpers.py:93, a task
            pb = task_pb2.TaskSpec()
            pb.ParseFromString(tar.extractfile(member).read())
            template = TaskSpec.from_flyte_idl(pb).template
            out[template.id.name] = {"image": template.container.image, "args": list(template.container.args)}
print(json.dumps(out))
"""

# A literal map file for pyflyte-execute's --inputs; then the output map read back.
INPUTS = r"""
import sys
from flytekit.core.context_manager import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
ctx = FlyteContextManager.current_context()
lm = TypeEngine.dict_to_literal_map(ctx, {"x": 3}, {"x": int})
open(sys.argv[1], "wb").write(lm.to_flyte_idl().SerializeToString())
"""
OUTPUTS = r"""
import json, sys
from flyteidl.core import literals_pb2
lm = literals_pb2.LiteralMap()
lm.ParseFromString(open(sys.argv[1], "rb").read())
print(json.dumps({k: v.scalar.primitive.integer for k, v in lm.literals.items()}))
"""

IS_CONTAINER = """
import json
import imagespec
from flytekit.core.context_manager import ExecutionState, FlyteContextManager
import wf

ctx = FlyteContextManager.current_context()
state = ctx.execution_state.with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
with FlyteContextManager.with_context(ctx.with_execution_state(state)):
    print(json.dumps({
        "ours": wf.ours.is_container(),
        "ours_flytekit": wf.add_one.container_image.is_container(),
        "theirs": wf.theirs.is_container(),
        "theirs_ours": imagespec.ImageSpec.from_flytekit(wf.theirs).is_container(),
        "other": wf.ours.with_packages("attrs").is_container(),
    }))
"""

BUILDING = re.compile(r"Image (\S+) not found\. building\.\.\.")
FOUND = re.compile(r"Image (\S+) found\. Skip building\.")


@pytest.fixture(scope="session")
def fk(tmp_path_factory: pytest.TempPathFactory) -> Flytekit:
    return make_flytekit(tmp_path_factory.mktemp("flytekit"))


def pyflyte(fk: Flytekit, cwd: Path, env: dict[str, str], *args: str) -> str:
    """``pyflyte ARGS`` (flytekit's own CLI) in the flytekit venv; its stdout, after it succeeded."""
    argv = ["pyflyte", *args]
    code = f"import sys\nfrom flytekit.clis.sdk_in_container.pyflyte import main\nsys.argv = {argv!r}\nmain()"
    return fk.run(code, cwd, env, timeout=2300).stdout


def python(fk: Flytekit, cwd: Path, code: str, *args: str) -> Any:
    proc = fk.run(f"import sys\nsys.argv = {['-c', *args]!r}\n{code}", cwd)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None


def registry_digest(registry: Registry, name: str) -> str:
    """The digest the registry serves for ``name`` (``host/repo:tag``): its manifest HEAD's."""
    repo, tag = name.split("/", 1)[1].rsplit(":", 1)
    host, port = registry.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    accept = ",".join(
        [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    conn.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": accept})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200, (name, response.status)
    return str(response.getheader("Docker-Content-Digest"))


def catalog(registry: Registry) -> list[str]:
    host, port = registry.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/v2/_catalog")
    repos: list[str] = json.loads(conn.getresponse().read())["repositories"]
    conn.close()
    return repos


def package(
    fk: Flytekit, project: Path, env: dict[str, str], out: Path, copy: str
) -> tuple[str, dict[str, Any]]:
    """``pyflyte --pkgs wf package --copy COPY``: (its stdout, the archive's templates by task name)."""
    stdout = pyflyte(fk, project, env, "--pkgs", "wf", "package", "--copy", copy, "-o", str(out), "-f")
    return stdout, python(fk, project, TEMPLATES, str(out))


@pytest.mark.timeout(3600)
def test_pyflyte_run_build_and_package_with_imagespec(
    fk: Flytekit,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    tmp_path: Path,
) -> None:
    if not MACHINE_CA.is_file():
        missing(f"no machine CA bundle at {MACHINE_CA}")
    project = tmp_path / "project"
    project.mkdir(mode=0o755)
    (project / "wf.py").write_text(textwrap.dedent(WF.format(base=python_base, reg=loopback_registry.host)))
    env = {
        "DOCKER_HOST": docker_engine.host,
        "DOCKER_BUILDKIT": "1",
        "IMAGESPEC_WHEEL": str(fk.wheel),
        "IMAGESPEC_CA_BUNDLE": str(MACHINE_CA),
    }

    # pyflyte run (no --remote) executes locally: nothing is built, nothing pushed.
    before = catalog(loopback_registry)
    run = pyflyte(fk, project, env, "run", "wf.py", "wf", "--x", "3")
    assert run.strip().splitlines()[-1] == "8"
    assert "building" not in run
    assert catalog(loopback_registry) == before

    # pyflyte build: both images built and pushed once; again: found, nothing built.
    first = pyflyte(fk, project, env, "build", "wf.py", "wf")
    built = BUILDING.findall(first)
    docker_engine.created.update(built)
    assert sorted(n.split("/", 1)[1].split(":")[0] for n in built) == ["fk-cli-ours", "fk-cli-theirs"], first
    second = pyflyte(fk, project, env, "build", "wf.py", "wf")
    assert BUILDING.findall(second) == []
    assert sorted(FOUND.findall(second)) == sorted(built)

    # pyflyte package (not fast: the same images, with the project's code): nothing to build; the
    # templates name the pushed images by the registry's digest.
    stdout, templates = package(fk, project, env, tmp_path / "slow.tgz", "none")
    assert BUILDING.findall(stdout) == []
    by_repo = {n.split("/", 1)[1].split(":")[0]: n for n in built}
    for task, repo in (("wf.add_one", "fk-cli-ours"), ("wf.double", "fk-cli-theirs")):
        name = by_repo[repo]
        assert templates[task]["image"] == f"{name}@{registry_digest(loopback_registry, name)}"

    # The packaged template runs in its image: flytekit's pyflyte-execute with the template's args,
    # inputs and outputs in a mounted folder.
    io = tmp_path / "io"
    io.mkdir(mode=0o777)
    io.chmod(0o777)
    python(fk, project, INPUTS, str(io / "inputs.pb"))
    args = [
        a.replace("{{.input}}", "/io/inputs.pb")
        .replace("{{.outputPrefix}}", "/io/out")
        .replace("{{.rawOutputDataPrefix}}", "/io/raw")
        .replace("{{.checkpointOutputPrefix}}", "/io/checkpoint")
        .replace("{{.prevCheckpointPrefix}}", "")
        for a in templates["wf.add_one"]["args"]
    ]
    docker_engine("run", "--rm", "-v", f"{io}:/io", templates["wf.add_one"]["image"], *args, timeout=600)
    assert python(fk, project, OUTPUTS, str(io / "out" / "outputs.pb")) == {"o0": 4}

    # pyflyte package --copy auto (fast: images without the code): built once, then found.
    stdout, fast = package(fk, project, env, tmp_path / "fast.tgz", "auto")
    fast_built = BUILDING.findall(stdout)
    docker_engine.created.update(fast_built)
    assert len(fast_built) == 2 and not set(fast_built) & set(built)
    stdout, again = package(fk, project, env, tmp_path / "fast.tgz", "auto")
    assert BUILDING.findall(stdout) == [] and again == fast
    for task in ("wf.add_one", "wf.double"):
        name, digest = fast[task]["image"].split("@")
        assert name in fast_built and digest == registry_digest(loopback_registry, name)

    # Inside them, as in a task execution, the task's spec is the container by flytekit's
    # is_container() and by ours, our spec as given included; another spec is not.
    project.chmod(0o755)
    for task in ("wf.add_one", "wf.double"):
        inside = docker_engine(
            "run", "--rm", "-v", f"{project}:/w:ro", "-w", "/w", "-e", "PYTHONPATH=/w",
            fast[task]["image"], "python", "-c", IS_CONTAINER, timeout=300,
        )  # fmt: skip
        checks = json.loads(inside.strip().splitlines()[-1])
        mine = ("ours", "ours_flytekit") if task == "wf.add_one" else ("theirs", "theirs_ours")
        assert {k: checks[k] for k in mine} == dict.fromkeys(mine, True), (task, checks)
        assert checks["other"] is False
