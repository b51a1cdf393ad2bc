"""`imagespec run FILE ENTITY --in-containers` takes the build flags that decide where images live
(`--registry`, `--platform`, `--push/--no-push`, `--builder`, `--assume-present`), with `build`'s
meaning: the images are built there, and each task runs in the image its moved template names.

Images are "built" by a Python builder that pushes a small image under the name it is asked for
(to the loopback registry of the tests), and "run" by a docker stand-in that runs the task's
command here and logs the image it was given.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagespec import ImageSpec
from imagespec import cli as imagespec_cli

from .conftest import write_tree
from .flytekit_helpers import REGISTRY_HELPERS
from .registry.registry_servers import Registry, free_port, start_registry
from .test_tasks import FAKE_DOCKER, cli

PIPELINE = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, os.environ["REGISTRY_HELPERS"])
    from imagespec import ImageBuildEngine, ImageSpec, task, workflow

    class Push:
        # Pushes a small image under the asked name when it has a registry (else only names it).
        def build_image(self, spec):
            name = spec.image_name()
            with open(os.environ["BUILD_LOG"], "a") as log:
                log.write(name + "\\n")
            if not spec.registry:
                return name
            from registry_servers import Pusher
            repo, tag = name.split("/", 1)[1].rsplit(":", 1)
            return name + "@" + Pusher(spec.registry).image(repo, tag)["digest"]

    class Other:
        # Answers "build" without asking anyone, and "builds" by naming the image.
        def should_build(self, spec):
            return True
        def build_image(self, spec):
            with open(os.environ["BUILD_LOG"], "a") as log:
                log.write(spec.image_name() + "\\n")
            return spec.image_name() + "-other"

    # Only these builders: the test needs no engine.
    for name in list(ImageBuildEngine.get_registry()):
        ImageBuildEngine.remove(name)
    ImageBuildEngine.register("push", Push())
    ImageBuildEngine.register("other", Other(), priority=0)

    REG = os.environ["DECLARED_REGISTRY"]
    a_img = ImageSpec(name="a", registry=REG, python_version="3.11")
    b_img = ImageSpec(name="b", registry=REG, python_version="3.11")

    @task(container_image=a_img)
    def split(text: str) -> list:
        return list(text)
    @task(container_image=b_img)
    def join(parts: list) -> str:
        return "+".join(parts)
    @workflow
    def wf(text: str = "hi") -> str:
        return join(parts=split(text=text))
    """
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is not installed (scripts/setup.sh installs it)")
    workdir = tmp_path_factory.mktemp("run-registry")
    reg = start_registry(workdir, workdir / "storage")
    yield reg
    reg.stop()


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def run(self, *args: str) -> tuple[int, str, str]:
        out = cli("run", "pipeline.py", "wf", "--in-containers", *args, cwd=self.root / "proj", env=self.env)
        return out.returncode, out.stdout, out.stderr

    def ran(self) -> list[str]:
        """The images the docker stand-in was asked to run, in order (and forgets them)."""
        log = Path(self.env["FAKE_DOCKER_LOG"])
        images = [json.loads(line)["image"] for line in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return images

    def built(self) -> list[str]:
        """The names the builders were asked to build, sorted (builds run in parallel), and forgets them."""
        log = Path(self.env["BUILD_LOG"])
        names = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return sorted(names)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    write_tree(tmp_path / "proj", {"pipeline.py": PIPELINE})
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    return Project(
        tmp_path,
        {
            "IMAGESPEC_DOCKER": str(docker),
            "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
            "FAKE_DOCKER_ROOT": str(tmp_path / "proj"),
            "BUILD_LOG": str(tmp_path / "build.log"),
            "REGISTRY_HELPERS": str(REGISTRY_HELPERS),
            # Where the module declares its images: nothing listens there.
            "DECLARED_REGISTRY": f"localhost:{free_port()}",
        },
    )


def spec(name: str, **fields: str) -> ImageSpec:
    return ImageSpec(name=name, python_version="3.11", **fields)


def test_registry_builds_and_runs_the_images_in_that_registry(project: Project, registry: Registry) -> None:
    code, out, err = project.run("--registry", registry.host)
    assert code == 0, err
    assert out == "h+i\n"
    a, b = (spec(n, registry=registry.host).image_name() for n in ("a", "b"))
    # Existence was asked of the loopback registry: both missing, both built there and pushed.
    assert project.built() == [a, b]
    ran = project.ran()
    assert [r.split("@")[0] for r in ran] == [a, b] and all("@sha256:" in r for r in ran)
    # Again: the registry has them now; nothing is built, the same pushed images run.
    code, out, err = project.run("--registry", registry.host)
    assert code == 0, err
    assert project.built() == []
    assert project.ran() == ran


def test_platform_changes_the_images_that_are_built_and_run(project: Project, registry: Registry) -> None:
    code, _, err = project.run("--registry", registry.host, "--platform", "linux/arm64")
    assert code == 0, err
    arm = [spec(n, registry=registry.host, platform="linux/arm64").image_name() for n in ("a", "b")]
    assert project.built() == arm
    assert [r.split("@")[0] for r in project.ran()] == arm
    assert arm[0] != spec("a", registry=registry.host).image_name()  # the platform is in the tag


def test_no_push_builds_and_runs_local_names(project: Project) -> None:
    # No registry: the local engine would be asked; the builder's should_build answers instead.
    code, out, err = project.run("--no-push", "--builder", "other")
    assert code == 0, err
    assert out == "h+i\n"
    local = [spec(n).image_name() for n in ("a", "b")]
    assert project.built() == local
    assert project.ran() == [name + "-other" for name in local]


def test_push_is_the_default(project: Project, registry: Registry) -> None:
    code, _, err = project.run("--push", "--registry", registry.host)
    assert code == 0, err
    pushed = [spec(n, registry=registry.host).image_name() for n in ("a", "b")]
    assert [r.split("@")[0] for r in project.ran()] == pushed


def test_builder_overrides_the_specs_choice(project: Project, registry: Registry) -> None:
    code, _, err = project.run("--registry", registry.host, "--builder", "other")
    assert code == 0, err
    moved = [spec(n, registry=registry.host).image_name() for n in ("a", "b")]
    assert project.built() == moved
    assert project.ran() == [name + "-other" for name in moved]
    code, _, err = project.run("--registry", registry.host, "--builder", "nope")
    assert code == 1
    assert "builder 'nope' is not registered" in err


def test_assume_present_runs_what_cannot_be_checked(project: Project) -> None:
    # The declared registry does not answer: existence is unknown, and the run fails closed...
    code, _, err = project.run()
    assert code == 1
    assert "cannot tell whether it exists" in err
    assert project.ran() == []
    # ...unless asked to assume the images are there: then nothing is built, and the tasks run.
    code, out, err = project.run("--assume-present")
    assert code == 0, err
    assert out == "h+i\n"
    assert project.built() == []
    declared = project.env["DECLARED_REGISTRY"]
    assert project.ran() == [spec(n, registry=declared).image_name() for n in ("a", "b")]


def test_run_and_build_share_the_location_options() -> None:
    parser = imagespec_cli._parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[union-attr]
    options = ("--registry", "--platform", "--push", "--no-push", "--builder", "--assume-present")

    def described(command: str) -> dict[str, str | None]:
        sub = commands[command]  # type: ignore[index]
        return {o: a.help for a in sub._actions for o in a.option_strings if o in options}

    assert described("run") == described("build")
    assert sorted(described("run")) == sorted(options)
