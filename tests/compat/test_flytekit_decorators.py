"""flytekit's own decorators and task classes take imagespec's ImageSpec, with the result they give
``spec.to_flytekit()`` (python/imagespec/_flytekit_hooks.py; docs/flytekit.md, "Our ImageSpec in
flytekit").

Each test states what flytekit does with its own ImageSpec (file and line at v1.16.24), then runs
the same code in real flytekit (scripts/flytekit-venv.sh) with imagespec's wheel on the path, so
flytekit loads our plugin through its entry point as in a real install (flytekit_serialise.py). The
Docker engine builds for real in tests/engines/test_flytekit_pyflyte.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..flytekit_helpers import Flytekit, missing
from .flytekit_serialise import SPEC, Registry, imagespec_cli, loopback_registry, module, run

pytestmark = pytest.mark.timeout(1800)  # the session fixture may make the venv and the wheel cold


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from loopback_registry(tmp_path_factory)


# kubernetes is flytekit's optional dependency for pod templates (flytekit/core/utils.py:141);
# the flytekit venv has none. This release imports without pydantic, which the venv lacks too.
KUBERNETES = ("kubernetes==31.0.0", "websocket-client==1.8.0", "durationpy==0.9")


def test_a_task_takes_our_spec_and_names_the_image_built_for_it(
    fk: Flytekit, tmp_path: Path, registry: Registry
) -> None:
    # flytekit/core/python_auto_container.py:445-450: a flytekit.ImageSpec is built and its name
    # (the builder's, flytekit/image_spec/image_spec.py:540-544) goes into the template; anything
    # else is taken as a name, and an object that is no string failed there with "expected string
    # or bytes-like object, got 'ImageSpec'" (python_auto_container.py:454, a regex) before.
    tasks = module(
        SPEC,
        """
    @flytekit.task(container_image=spec)
    def direct(x: int) -> int:
        return x + 1

    @flytekit.task(container_image=spec.to_flytekit())
    def converted(x: int) -> int:
        return x + 1
    """,
    )
    out = run(
        fk,
        tmp_path,
        {"tasks.py": tasks},
        """
        import tasks
        from imagespec._flytekit import with_flytekit
        held = type(tasks.direct.__dict__["_container_image"])
        out = {"held": held.__module__ + "." + held.__name__,
               "bridged": with_flytekit(tasks.spec).image_name()}
        out["direct"] = image(tasks.direct)
        out["converted"] = image(tasks.converted)
        fk_spec = tasks.direct.container_image
        out.update(calls=calls, type=type(fk_spec).__module__ + "." + type(fk_spec).__name__,
                   builder=fk_spec.builder, same_id=fk_spec.id == tasks.converted.container_image.id,
                   back=imagespec.ImageSpec.from_flytekit(fk_spec) == tasks.spec)
        print(json.dumps(out))
        """,
        {"REG": registry.host},
    )
    # Until flytekit reads it, the task holds the spec it was given.
    assert out["held"] == "imagespec._spec.ImageSpec"
    # The same image as through to_flytekit(), built once for both tasks: our spec with flytekit
    # added, which is also what `imagespec build` builds for the task (below).
    bridged = out["bridged"]
    assert out["calls"] == [bridged]
    assert out["direct"].startswith(f"{bridged}@sha256:")
    assert out["converted"] == out["direct"]
    assert out["type"] == "flytekit.image_spec.image_spec.ImageSpec"
    assert out["builder"] == "imagespec"
    assert out["same_id"] is True and out["back"] is True
    # Serialised without a source root (as a fast registration), like `imagespec build --fast`.
    env = {"REG": registry.host}
    rows = imagespec_cli(fk, tmp_path, env, "build", "--dry-run", "--fast", "tasks.py", "direct")
    assert [row["image"] for row in rows] == [bridged]


def test_inside_the_image_both_is_container_checks_are_true(
    fk: Flytekit, tmp_path: Path, registry: Registry
) -> None:
    # flytekit/image_spec/image_spec.py:270-280: in a task execution, is_container() compares
    # _F_IMG_ID with the spec's id (image_spec.py:182-202), which has nothing the builder adds
    # (flytekit's builder adds flytekit to the packages: default_builder.py:294-295). The bridge
    # sets _F_IMG_ID to flytekit's id and IMAGESPEC_IMG_ID to ours, of the spec it built (flytekit
    # added); ours of the spec as given is the container too.
    tasks = module(
        SPEC,
        """
    @flytekit.task(container_image=spec)
    def direct(x: int) -> int:
        return x + 1
    """,
    )
    out = run(
        fk,
        tmp_path,
        {"tasks.py": tasks},
        """
        import tasks
        from flytekit.core.context_manager import ExecutionState, FlyteContextManager
        from imagespec._flytekit import with_flytekit
        fk_spec = tasks.direct.container_image
        os.environ["_F_IMG_ID"] = fk_spec.id
        os.environ["IMAGESPEC_IMG_ID"] = f"{with_flytekit(tasks.spec).id}:{fk_spec.id}"
        ctx = FlyteContextManager.current_context()
        state = ctx.execution_state.with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
        with FlyteContextManager.with_context(ctx.with_execution_state(state)):
            other = tasks.spec.with_packages("attrs")
            print(json.dumps({
                "ours": tasks.spec.is_container(), "flytekit": fk_spec.is_container(),
                "other": other.is_container(), "other_flytekit": other.to_flytekit().is_container(),
                "opted_out": tasks.spec.with_builder_options(
                    {"imagespec_add_flytekit": False}).is_container(),
            }))
        """,
        {"REG": registry.host},
    )
    assert out == {
        "ours": True,
        "flytekit": True,
        "other": False,
        "other_flytekit": False,
        "opted_out": False,
    }


# The same tasks twice: given our spec ({img} = spec) and flytekit's (spec.to_flytekit()).
PLACES = """
ct_{sfx} = ContainerTask(name="ct_{sfx}", image={img}, command=["echo"], inputs=kwtypes(x=int))
sql_{sfx} = SQLite3Task(name="sql_{sfx}", query_template="select 1", task_config=SQLite3Config(uri="x"),
                        container_image={img})

@flytekit.task(container_image="localhost/primary:1", pod_template=PodTemplate(pod_spec=V1PodSpec(
    containers=[V1Container(name="primary"), V1Container(name="side", image={img})])))
def pod_{sfx}() -> None: ...

@flytekit.task(container_image={img})
def mapped_{sfx}(x: int) -> int:
    return x

@flytekit.workflow
def map_wf_{sfx}(xs: list[int]) -> list[int]:
    return flytekit.map_task(mapped_{sfx})(x=xs)

@flytekit.dynamic(container_image={img})
def dyn_{sfx}(x: int) -> int:
    return mapped_{sfx}(x=x)

@flytekit.task(container_image={runtime})
def runtime_{sfx}() -> None: ...
"""

PLACES_HEAD = """
from flytekit import ContainerTask, PodTemplate, kwtypes
from flytekit.extras.sqlite3.task import SQLite3Config, SQLite3Task
from kubernetes.client import V1Container, V1PodSpec
"""


@pytest.fixture(scope="module")
def kubernetes(fk: Flytekit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("kubernetes")
    proc = subprocess.run(
        [str(fk.python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *KUBERNETES],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        missing(f"pip could not install {' '.join(KUBERNETES)} for pod templates:\n{proc.stderr[-2000:]}")
    return target


def test_every_place_flytekit_takes_an_image_spec_takes_ours(
    fk: Flytekit, tmp_path: Path, registry: Registry, kubernetes: Path
) -> None:
    # flytekit's ImageSpec is taken by ContainerTask(image=...) (flytekit/core/container_task.py:47,
    # 311-316), by PythonCustomizedContainerTask's container_image (SQL tasks;
    # python_customized_container_task.py:162-167), as a pod template container's image
    # (flytekit/core/utils.py:174,193), by map tasks (their task's, array_node_map_task.py:214-216)
    # and dynamic tasks (flytekit/tools/translator.py:140-150), and its runtime_packages become
    # the task's _F_RUNTIME_PACKAGES (python_auto_container.py:252-255).
    runtime = 'spec.with_runtime_packages(["rich"])'
    text = module(
        SPEC,
        PLACES_HEAD,
        PLACES.format(sfx="ours", img="spec", runtime=runtime),
        PLACES.format(sfx="fk", img="spec.to_flytekit()", runtime=f"{runtime}.to_flytekit()"),
    )
    out = run(
        fk,
        tmp_path,
        {"places.py": text},
        """
        import places as p
        # The tag scheme's name (after a build, image_name() is the name the builder reported).
        bridged = imagespec.ImageSpec.from_flytekit(p.spec.to_flytekit(), add_flytekit=True)
        out = {"bridged": bridged.image_name()}
        for sfx in ("ours", "fk"):
            t = lambda name: getattr(p, f"{name}_{sfx}")
            pod = serialise(t("pod"))[t("pod")].template.k8s_pod.pod_spec["containers"]
            maps = serialise(t("map_wf"))
            runtime = serialise(t("runtime"))[t("runtime")].template.container
            out[sfx] = {
                "container_task": image(t("ct")), "sql_task": image(t("sql")),
                "pod": {c["name"]: c["image"] for c in pod},
                "map": sorted(v.template.container.image for k, v in maps.items()
                              if getattr(getattr(v, "template", None), "container", None)),
                "dynamic": image(t("dyn")),
                "runtime_env": dict(runtime.env or {}).get("_F_RUNTIME_PACKAGES"),
            }
        print(json.dumps(out))
        """,
        {"REG": registry.host},
        kubernetes,
    )
    ours, theirs = out["ours"], out["fk"]
    assert ours == theirs
    name = out["bridged"]
    for place in ("container_task", "sql_task", "dynamic"):
        assert ours[place].startswith(f"{name}@sha256:"), place
    assert ours["pod"]["primary"] == "localhost/primary:1"
    assert ours["pod"]["side"].startswith(f"{name}@sha256:")
    assert len(ours["map"]) == 1 and ours["map"][0].startswith(f"{name}@sha256:")
    assert ours["runtime_env"] == "rich"


def test_serialisation_gives_our_spec_the_source_as_it_gives_flytekits(
    fk: Flytekit, tmp_path: Path, registry: Registry
) -> None:
    # flytekit/core/python_auto_container.py:403-431 (called at :223-224): a non-fast serialisation
    # with a source root gives a spec without source_copy_mode that source root and
    # LOADED_MODULES, on the task's own spec object; a fast one leaves it alone.
    tasks = module(
        SPEC,
        """
    @flytekit.task(container_image=spec)
    def direct(x: int) -> int:
        return x + 1

    @flytekit.task(container_image=spec.to_flytekit())
    def converted(x: int) -> int:
        return x + 1
    """,
    )
    code = """
        import tasks
        fast = sys.argv[-1] == "fast"
        s = settings(source_root=os.getcwd(),
                     fast_serialization_settings=FastSerializationSettings(enabled=fast))
        out = {}
        for name in ("direct", "converted"):
            task = getattr(tasks, name)
            img = image(task, s)
            spec = task.container_image
            mode = spec.source_copy_mode
            out[name] = [img.split("@")[0], spec.source_root, mode and mode.name]
        print(json.dumps(out))
    """
    env = {"REG": registry.host}
    slow = run(fk, tmp_path, {"tasks.py": tasks}, code.replace("sys.argv[-1]", "'slow'"), env)
    fast = run(fk, tmp_path, {}, code.replace("sys.argv[-1]", "'fast'"), env)
    assert slow["direct"] == slow["converted"]
    assert slow["direct"][1:] == [str(tmp_path), "LOADED_MODULES"]
    assert fast["direct"] == fast["converted"]
    assert fast["direct"][1:] == [None, None]
    assert fast["direct"][0] != slow["direct"][0]  # the source is in the tag
