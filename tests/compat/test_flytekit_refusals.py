"""Where flytekit cannot take imagespec's ImageSpec, it says so clearly; where it takes it, nothing
is converted or built before serialisation; the patches that make it take it are made once, and
one that cannot be made is a warning (python/imagespec/_flytekit_hooks.py).

Each test states flytekit's behaviour (file and line at v1.16.24), then checks ours in real
flytekit with imagespec's wheel on the path (flytekit_serialise.py).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..flytekit_helpers import Flytekit
from .flytekit_serialise import SPEC, Registry, free_port, loopback_registry, module, run

pytestmark = pytest.mark.timeout(1800)  # the session fixture may make the venv and the wheel cold


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from loopback_registry(tmp_path_factory)


def test_with_overrides_takes_a_name_only_and_refuses_our_spec_at_once(
    fk: Flytekit, tmp_path: Path, registry: Registry
) -> None:
    # flytekit/core/node.py:234 types with_overrides' container_image as Optional[str] and stores it
    # as given (:288-290); a flytekit.ImageSpec there is never built, and turning the node into
    # protobuf fails (flytekit/models/core/workflow.py:663, a string field) with a TypeError.
    wfs = module(
        SPEC,
        """
    @flytekit.task(container_image="localhost/plain:1")
    def plain() -> int:
        return 1

    @flytekit.workflow
    def by_name() -> int:
        return plain().with_overrides(container_image="localhost/other:2")

    @flytekit.workflow
    def by_theirs() -> int:
        return plain().with_overrides(container_image=spec.to_flytekit())

    @flytekit.workflow
    def by_ours() -> int:
        return plain().with_overrides(container_image=spec)
    """,
    )
    out = run(
        fk,
        tmp_path,
        {"wfs.py": wfs},
        """
        import wfs
        out = {}
        for name in ("by_name", "by_theirs", "by_ours"):
            try:
                spec = serialise(getattr(wfs, name))[getattr(wfs, name)]
                spec.to_flyte_idl()
                out[name] = spec.template.nodes[0].task_node.overrides.container_image
            except Exception as e:
                out[name] = [type(e).__name__, str(e)]
        out["calls"] = calls
        print(json.dumps(out))
        """,
        {"REG": registry.host},
    )
    assert out["by_name"] == "localhost/other:2"
    assert out["by_theirs"][0] == "TypeError"  # flytekit's, from protobuf
    kind, message = out["by_ours"]
    assert kind == "TypeError"
    assert message.startswith(
        "with_overrides(container_image=...): flytekit takes an image name (a string) here, not an ImageSpec"
    )
    assert "@task(container_image=spec)" in message and "spec.image_name()" in message
    assert out["calls"] == []


def test_a_spec_flytekit_cannot_take_fails_at_serialisation_naming_task_and_field(
    fk: Flytekit, tmp_path: Path, registry: Registry
) -> None:
    # flytekit reads copy paths relative to the working directory (flytekit/image_spec/image_spec.py:
    # 243-246, compute_digest(self.copy)); ours, from a YAML file elsewhere, are relative to that
    # file, so to_flytekit() refuses it. Declaring and running the task locally converts nothing;
    # serialising it does, and says which task and field.
    tasks = module(
        """
        import flytekit
        import imagespec

        spec = imagespec.ImageSpec.from_yaml("other/spec.yaml")

        @flytekit.task(container_image=spec)
        def t(x: int) -> int:
            return x + 1
        """
    )
    files = {"tasks.py": tasks, "other/spec.yaml": "copy:\n  - conf.txt\n", "other/conf.txt": "c\n"}
    out = run(
        fk,
        tmp_path,
        files,
        """
        import tasks
        out = {"local": tasks.t(x=1)}
        try:
            image(tasks.t)
        except imagespec.SpecError as e:
            out["error"] = str(e)
        print(json.dumps(out))
        """,
        {"REG": registry.host},
    )
    assert out["local"] == 2
    assert out["error"].startswith(
        "flytekit task tasks.t: container_image: imagespec cannot give this ImageSpec to flytekit: copy: "
        f"its paths are relative to {tmp_path / 'other'}, but flytekit reads them relative to the working "
        f"directory ({tmp_path})"
    )


def test_a_local_pyflyte_run_builds_and_converts_nothing(fk: Flytekit, tmp_path: Path) -> None:
    # flytekit/image_spec/image_spec.py:529-531: nothing is built in an execution, and `pyflyte run`
    # without --remote executes locally without serialising (flytekit/clis/sdk_in_container/run.py).
    # The spec's registry has nothing listening: a build or a registry check would fail.
    (tmp_path / "wf.py").write_text(
        textwrap.dedent(
            f"""
            import flytekit
            import imagespec

            spec = imagespec.ImageSpec(name="local", packages=["six"], registry="localhost:{free_port()}")

            @flytekit.task(container_image=spec)
            def t(x: int) -> int:
                print("held:", type(t.__dict__["_container_image"]).__module__)
                return x + 1

            @flytekit.workflow
            def wf(x: int = 1) -> int:
                return t(x=x)
            """
        )
    )
    code = "import sys\nfrom flytekit.clis.sdk_in_container.pyflyte import main\nmain()"
    env = {"PYTHONPATH": os.pathsep.join(map(str, [fk.site, tmp_path]))}
    proc = fk.run(
        code.replace("main()", "sys.argv = ['pyflyte', 'run', 'wf.py', 'wf', '--x', '41']\nmain()"),
        tmp_path,
        env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "42"
    assert "held: imagespec._spec" in proc.stdout
    assert "building" not in proc.stdout


def test_the_hooks_are_made_once_and_one_that_cannot_be_made_warns(fk: Flytekit, tmp_path: Path) -> None:
    out = run(
        fk,
        tmp_path,
        {},
        """
        import warnings
        from flytekit.core import container_task, python_auto_container
        from imagespec import _flytekit_hooks as hooks
        out = {"at_import": hooks.installed()}
        before = python_auto_container.get_registerable_container_image
        assert hooks.install() is True
        after = python_auto_container.get_registerable_container_image
        original = after.__wrapped__
        out["resolver_once"] = after is before and original.__module__ == python_auto_container.__name__
        # A flytekit whose ContainerTask keeps its image behind a property: that hook is not made.
        del container_task.ContainerTask._image
        container_task.ContainerTask._image = property(lambda self: None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["ok"] = hooks.install()
        out["warnings"] = [str(w.message) for w in caught]
        out["after"] = hooks.installed()
        print(json.dumps(out))
        """,
        {},
    )
    assert set(out["at_import"].values()) == {True}, out["at_import"]
    assert out["resolver_once"] is True
    assert out["ok"] is False
    assert out["warnings"] == [
        "imagespec: flytekit will not take imagespec's ImageSpec at ContainerTask(image=...) "
        "(ContainerTask._image is a property, not a plain attribute); pass spec.to_flytekit() there"
    ]
    assert out["after"]["ContainerTask._image"] is False
    assert out["after"]["PythonAutoContainerTask._container_image"] is True
