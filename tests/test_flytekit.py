"""The flytekit bridge against real flytekit (its own venv, scripts/flytekit-venv.sh): flytekit finds
the builder through its entry point, conversions keep every field, ``should_build`` asks our
registry client (a real loopback registry), and a flytekit task serialises, by flytekit's own path,
with the name our plan reported. The real engine build is in tests/engines/test_flytekit_bridge.py.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import FAKE_BUILDER
from .flytekit_helpers import Flytekit, make_flytekit
from .registry.registry_servers import Pusher, Registry, free_port, start_registry

# The session fixture may make the flytekit venv (about 1.5 minutes) and build the wheel cold.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="session")
def fk(tmp_path_factory: pytest.TempPathFactory) -> Flytekit:
    return make_flytekit(tmp_path_factory.mktemp("flytekit"))


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is not installed (scripts/setup.sh installs it)")
    workdir = tmp_path_factory.mktemp("fk-registry")
    reg = start_registry(workdir, workdir / "storage", hostname="localhost")
    yield reg
    reg.stop()


def out_json(proc_stdout: str) -> dict[str, object]:
    """The last stdout line, as JSON (flytekit may print before it)."""
    result: dict[str, object] = json.loads(proc_stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------ without flytekit


@pytest.mark.skipif(importlib.util.find_spec("flytekit") is not None, reason="flytekit is installed here")
def test_without_flytekit_the_conversion_says_how_to_get_it() -> None:
    from imagespec import ImageSpec

    with pytest.raises(ImportError, match=r"pip install 'imagespec-build\[flytekit\]'"):
        ImageSpec().to_flytekit()


# ------------------------------------------------------------------------ (a) flytekit finds us


def test_flytekit_finds_the_builder_through_its_entry_point(fk: Flytekit, tmp_path: Path) -> None:
    proc = fk.run(
        textwrap.dedent(
            """
            import json, sys
            assert "imagespec" not in sys.modules
            import flytekit
            from importlib.metadata import entry_points
            from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpecBuilder
            loaded_by_flytekit = "imagespec._flytekit_plugin" in sys.modules
            spec = flytekit.ImageSpec(builder="imagespec", packages=["six"])
            builder = ImageBuildEngine._get_builder(spec.builder)
            from imagespec._flytekit_hooks import installed
            print(json.dumps({
                "loaded_by_flytekit": loaded_by_flytekit,
                "hooks": installed(),
                "entry_points": {e.name: e.value for e in entry_points(group="flytekit.plugins")},
                "builder": type(builder).__module__ + "." + type(builder).__name__,
                "is_flytekit_builder": isinstance(builder, ImageSpecBuilder),
                "priority": ImageBuildEngine.get_registry()["imagespec"][1],
                "default_builder": flytekit.ImageSpec().builder,
            }))
            """
        ),
        tmp_path,
    )
    out = out_json(proc.stdout)
    assert out["loaded_by_flytekit"] is True
    assert out["entry_points"] == {"imagespec": "imagespec._flytekit_plugin"}
    assert out["builder"] == "imagespec.flytekit.FlytekitBuilder"
    assert out["is_flytekit_builder"] is True
    # ... and flytekit takes our ImageSpec as a task's image (tests/compat/test_flytekit_decorators.py).
    assert out["hooks"] == {
        "PythonAutoContainerTask._container_image": True,
        "PythonCustomizedContainerTask._container_image": True,
        "ContainerTask._image": True,
        "Node._container_image": True,
        "get_registerable_container_image": True,
    }
    # Installing imagespec does not take over specs that name no builder.
    assert out["priority"] == 0
    assert out["default_builder"] == "default"


def test_explicit_registration_and_its_priority(fk: Flytekit, tmp_path: Path) -> None:
    proc = fk.run(
        textwrap.dedent(
            """
            import json, sys, warnings
            import imagespec.flytekit as bridge
            assert "flytekit" not in sys.modules  # the bridge module alone does not import flytekit
            import flytekit
            from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpecBuilder
            bridge.register(priority=10)
            out = {"default_builder": flytekit.ImageSpec().builder,
                   "subclass": issubclass(bridge.FlytekitBuilder, ImageSpecBuilder)}
            # A registration that fails warns instead of breaking `import flytekit`.
            from imagespec import _flytekit
            ImageBuildEngine._REGISTRY.pop("imagespec")
            def boom(priority=0):
                raise RuntimeError("no luck")
            _flytekit.register = boom
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _flytekit._register_from_entry_point()
            out["warning"] = str(caught[0].message)
            print(json.dumps(out))
            """
        ),
        tmp_path,
    )
    out = out_json(proc.stdout)
    assert out["default_builder"] == "imagespec"
    assert out["subclass"] is True
    assert out["warning"] == "imagespec: could not register as a flytekit image builder: no luck"


def test_import_imagespec_does_not_import_flytekit(fk: Flytekit, tmp_path: Path) -> None:
    proc = fk.run(
        "import sys, imagespec\n"
        "s = imagespec.ImageSpec(packages=['six'])\n"
        "s.image_name(); s.is_container()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flytekit'))",
        tmp_path,
    )
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- (b) conversions

ROUND_TRIP = r"""
import dataclasses, json, os
import flytekit
from flytekit.constants import CopyFileDetection as FkMode
from imagespec import CopyFileDetection, ImageSpec

base = ImageSpec(name="base", packages=["six"], registry="localhost:5000/team", python_version="3.11")
specs = {
    "default": ImageSpec(),
    "every field": ImageSpec(
        name="Full", python_version="3.10", builder="buildah", source_root="src",
        source_copy_mode=CopyFileDetection.LOADED_MODULES, env={"A": "1", "B": "two words"},
        registry="localhost:5000/team", packages=["pandas>=2", "numpy"], conda_packages=["zlib"],
        conda_channels=["conda-forge"], requirements="requirements.txt", apt_packages=["git"],
        cuda="12.1", cudnn="8", platform="linux/amd64,linux/arm64", pip_index="https://pypi.example/simple",
        pip_extra_index_url=["https://extra.example/simple"],
        pip_secret_mounts=[("pip.conf", "/etc/pip.conf")],
        pip_extra_args="--no-compile", registry_config="auth.json", entrypoint=[], commands=["echo hi"],
        tag_format="{spec_hash}-dev", copy=["conf.txt"], python_exec="/usr/bin/python3",
        runtime_packages=["rich"], builder_options={"k": "v", "n": [1, 2]},
        builder_config={"uv_image": "uv:1"},
    ),
    "base spec, force push": ImageSpec(name="child", base_image=base, packages=["attrs"]).force_push(),
    "base reference": ImageSpec(base_image="localhost:5000/python:3.11", registry="localhost:5000"),
    "source_root, default mode": ImageSpec(source_root="src", registry="localhost:5000"),
    "source_root, ALL": ImageSpec(source_root="src", source_copy_mode=CopyFileDetection.ALL),
    "no source, NO_COPY": ImageSpec(source_copy_mode=CopyFileDetection.NO_COPY),
}
out = {}
for label, s in specs.items():
    f = s.to_flytekit()
    back = ImageSpec.from_flytekit(f)
    again = back.to_flytekit()
    fk_set = {k: v for k, v in dataclasses.asdict(f).items() if v is not None}
    out[label] = {
        "fk_type": type(f).__module__ + "." + type(f).__name__,
        "fk_builder": f.builder,
        "fk_fields": sorted(fk_set),
        "ours_fields": sorted(s.to_dict()),
        "fk_force_push": f._is_force_push,
        "fk_mode": f.source_copy_mode.name if f.source_copy_mode else None,
        "fk_builder_options": f.builder_options,
        "fk_base_builder": f.base_image.builder if isinstance(f.base_image, flytekit.ImageSpec) else None,
        "equal": back == s,
        "same_id": back.id == s.id,
        "same_tag": back.tag == s.tag,
        "same_name": back.image_name() == s.image_name(),
        "same_dict": back.to_dict() == s.to_dict(),
        "same_force_push": back.is_force_push == s.is_force_push,
        "fk_same_id": again.id == f.id,
        "fk_same_tag": again.tag == f.tag,
        "fk_same_dict": dataclasses.asdict(again) == dataclasses.asdict(f),
    }
full = specs["every field"].to_flytekit()
out["full values"] = {
    "name": full.name, "env": full.env, "packages": full.packages,
    "secret": [list(m) for m in full.pip_secret_mounts],
    "entrypoint": full.entrypoint, "source_root": full.source_root, "requirements": full.requirements,
    "copy": full.copy, "platform": full.platform, "mode": full.source_copy_mode.name,
    "options": full.builder_options, "config": full.builder_config, "tag_format": full.tag_format,
    "mode_is_flytekits": isinstance(full.source_copy_mode, FkMode), "cwd": os.getcwd(),
}
print(json.dumps(out))
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("X = 1\n")
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "conf.txt").write_text("conf\n")
    (tmp_path / "auth.json").write_text("{}\n")
    return tmp_path


def test_round_trips_keep_every_field_the_id_and_the_tag(fk: Flytekit, tmp_path: Path) -> None:
    out = out_json(fk.run(ROUND_TRIP, _project(tmp_path)).stdout)
    for label in (
        "default",
        "every field",
        "base spec, force push",
        "base reference",
        "source_root, default mode",
        "source_root, ALL",
        "no source, NO_COPY",
    ):
        r = out[label]
        assert isinstance(r, dict)
        assert r["fk_type"] == "flytekit.image_spec.image_spec.ImageSpec", label
        assert r["fk_builder"] == "imagespec", label
        for key in ("equal", "same_id", "same_tag", "same_name", "same_dict", "same_force_push"):
            assert r[key] is True, (label, key)
        for key in ("fk_same_id", "fk_same_tag", "fk_same_dict"):
            assert r[key] is True, (label, key)
        # Every field we had set is set on flytekit's side (builder becomes builder="imagespec").
        ours = set(r["ours_fields"]) - {"builder"}
        assert ours <= set(r["fk_fields"]), (label, ours - set(r["fk_fields"]))
    full = out["every field"]
    assert isinstance(full, dict)
    assert full["fk_builder_options"] == {"k": "v", "n": [1, 2], "imagespec_builder": "buildah"}
    assert full["fk_mode"] == "LOADED_MODULES"
    chained = out["base spec, force push"]
    assert isinstance(chained, dict)
    assert chained["fk_force_push"] is True
    assert chained["fk_base_builder"] == "imagespec"
    # A source_root without a mode means LOADED_MODULES in both (flytekit/image_spec/image_spec.py:143-144).
    src = out["source_root, default mode"]
    assert isinstance(src, dict) and src["fk_mode"] == "LOADED_MODULES"
    assert out["default"]["fk_mode"] is None  # type: ignore[index]
    values = out["full values"]
    assert isinstance(values, dict)
    cwd = values["cwd"]
    assert values == {
        "name": "full",
        "env": {"A": "1", "B": "two words"},
        "packages": ["pandas>=2", "numpy"],
        "secret": [["pip.conf", "/etc/pip.conf"]],
        "entrypoint": [],
        "source_root": f"{cwd}/src",
        "requirements": f"{cwd}/requirements.txt",
        "copy": ["conf.txt"],
        "platform": "linux/amd64,linux/arm64",
        "mode": "LOADED_MODULES",
        "options": {"k": "v", "n": [1, 2], "imagespec_builder": "buildah"},
        "config": {"uv_image": "uv:1"},
        "tag_format": "{spec_hash}-dev",
        "mode_is_flytekits": True,
        "cwd": cwd,
    }


FROM_FLYTEKIT = r"""
import dataclasses, json, os, sys, warnings
import flytekit
from imagespec import ImageSpec, SpecError
from imagespec import _flytekit

out = {}
# A spec written for flytekit: flytekit's __post_init__ filled builder, platform and source_copy_mode.
def fk_diff(a, b):
    return {k: [v, getattr(b, k)] for k, v in dataclasses.asdict(a).items() if v != getattr(b, k)}

native = flytekit.ImageSpec(
    name="native", packages=["six"], source_root=os.path.abspath("src"), registry="localhost:5000",
    python_version="3.11")
ours = ImageSpec.from_flytekit(native)
back = ours.to_flytekit()
out["native"] = {
    "fk_defaults": [native.builder, native.platform, native.source_copy_mode.name],
    "builder": ours.builder, "mode": ours.source_copy_mode.name, "platform": ours.platform,
    "name": ours.name, "packages": list(ours.packages),
    "fk_same_id": back.id == native.id, "fk_same_tag": back.tag == native.tag,
    "fk_diff": sorted(fk_diff(back, native)),
}
# What imagespec resolves (the running Python, absolute paths) comes back resolved.
loose = flytekit.ImageSpec(name="loose", source_root="src")
out["resolved"] = fk_diff(ImageSpec.from_flytekit(loose).to_flytekit(), loose)
named = flytekit.ImageSpec(builder="imagespec", builder_options={"imagespec_builder": "buildah", "other": 1})
n = ImageSpec.from_flytekit(named)
out["named"] = {"builder": n.builder, "options": dict(n.builder_options)}
pinned = _flytekit.flytekit_requirement()
out["pin"] = pinned
out["version"] = flytekit.__version__
out["added"] = list(ImageSpec.from_flytekit(native, add_flytekit=True).packages)
out["kept"] = list(ImageSpec.from_flytekit(
    flytekit.ImageSpec(packages=["flytekit>=1.10", "flytekitplugins-pandera"]), add_flytekit=True).packages)
out["plugin_is_not_flytekit"] = list(ImageSpec.from_flytekit(
    flytekit.ImageSpec(packages=["flytekitplugins-pandera"]), add_flytekit=True).packages)
out["opted_out"] = ImageSpec.from_flytekit(flytekit.ImageSpec(
    builder_options={"imagespec_add_flytekit": False}), add_flytekit=True).packages
out["force"] = ImageSpec.from_flytekit(flytekit.ImageSpec().force_push()).is_force_push
errors = {}
try:
    ImageSpec.from_flytekit({"name": "x"})
except TypeError as e:
    errors["not a spec"] = str(e)
real_fields = _flytekit._fk_fields
_flytekit._fk_fields = lambda cls: real_fields(cls) - {"runtime_packages"}
try:
    ImageSpec(runtime_packages=["rich"]).to_flytekit()
except SpecError as e:
    errors["older flytekit"] = str(e)
ImageSpec(packages=["rich"]).to_flytekit()  # an unset field flytekit lacks is no problem
_flytekit._fk_fields = real_fields
try:
    ImageSpec(registry="Bad Registry!").to_flytekit()
except SpecError as e:
    errors["flytekit refuses"] = str(e)
except Exception as e:
    errors["flytekit refuses"] = type(e).__name__ + ": " + str(e)
try:
    ImageSpec.from_yaml("other/spec.yaml").to_flytekit()
except SpecError as e:
    errors["copy elsewhere"] = str(e)
out["errors"] = errors
print(json.dumps(out))
"""


def test_from_flytekit_handles_flytekits_defaults_and_adds_flytekit_when_asked(
    fk: Flytekit, tmp_path: Path
) -> None:
    project = _project(tmp_path)
    (project / "other").mkdir()
    (project / "other" / "conf.txt").write_text("elsewhere\n")
    (project / "other" / "spec.yaml").write_text("copy:\n  - conf.txt\n")
    out = out_json(fk.run(FROM_FLYTEKIT, project).stdout)
    native = out["native"]
    assert isinstance(native, dict)
    assert native["fk_defaults"] == ["default", "linux/amd64", "LOADED_MODULES"]
    # flytekit's own builder is "whichever builder imagespec picks"; its copy default is kept.
    assert native["builder"] is None
    assert native["mode"] == "LOADED_MODULES"
    assert native["platform"] == "linux/amd64"
    assert native["name"] == "native"
    assert native["packages"] == ["six"]
    # Back in flytekit, only the builder differs, and flytekit's id and tag leave it out.
    assert native["fk_diff"] == ["builder"]
    assert native["fk_same_id"] is True and native["fk_same_tag"] is True
    resolved = out["resolved"]
    assert isinstance(resolved, dict)
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert resolved == {
        "builder": ["imagespec", "default"],
        "python_version": [py, None],
        "source_root": [str(project.resolve() / "src"), "src"],
    }
    assert out["named"] == {"builder": "buildah", "options": {"other": 1}}
    version = out["version"]
    assert out["pin"] == f"flytekit=={version}"
    assert out["added"] == ["six", f"flytekit=={version}"]
    assert out["kept"] == ["flytekit>=1.10", "flytekitplugins-pandera"]
    assert out["plugin_is_not_flytekit"] == ["flytekitplugins-pandera", f"flytekit=={version}"]
    assert out["opted_out"] is None
    assert out["force"] is True
    errors = out["errors"]
    assert isinstance(errors, dict)
    assert errors["not a spec"] == "from_flytekit takes a flytekit.ImageSpec, not dict"
    assert "runtime_packages: set, but the installed flytekit" in errors["older flytekit"]
    assert "flytekit refuses" in errors
    assert "flytekit reads them relative to the working directory" in errors["copy elsewhere"]


# ------------------------------------------------- (c) should_build asks our registry client

SHOULD_BUILD = r"""
import json, os, sys, warnings
import flytekit
from flytekit.image_spec.image_spec import ImageBuildEngine
from imagespec import ImageSpec, BuildError

reg = os.environ["REG"]
present = flytekit.ImageSpec(name="present", builder="imagespec", packages=["six"], registry=reg)
absent = flytekit.ImageSpec(name="absent", builder="imagespec", packages=["six"], registry=reg)
builder = ImageBuildEngine._get_builder("imagespec")
if sys.argv[1] == "names":
    print(json.dumps({"present": ImageSpec.from_flytekit(present, add_flytekit=True).image_name()}))
    sys.exit()
out = {"flytekit_name": present.image_name()}
out["present"] = builder.should_build(present)
out["absent"] = builder.should_build(absent)
out["force"] = builder.should_build(present.force_push())
# flytekit's whole path: should_build says no, so build_image is not called, and the name flytekit
# puts in task templates is the image that exists, pinned by digest.
ImageBuildEngine.build(present)
out["after_build"] = present.image_name()
print(json.dumps(out))
"""

UNKNOWN = r"""
import json, os, warnings
import flytekit
from flytekit.image_spec.image_spec import ImageBuildEngine
from imagespec import BuildError

spec = flytekit.ImageSpec(name="nowhere", builder="imagespec", registry=os.environ["REG"])
builder = ImageBuildEngine._get_builder("imagespec")
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = {"answer": builder.should_build(spec), "warning": str(caught[0].message) if caught else None,
               "name": spec.image_name()}
except BuildError as e:
    out = {"error": str(e)}
print(json.dumps(out))
"""


def test_should_build_asks_our_registry_client(fk: Flytekit, tmp_path: Path, registry: Registry) -> None:
    env = {"REG": registry.host}
    names = out_json(fk.run(SHOULD_BUILD.replace("sys.argv[1]", "'names'"), tmp_path, env).stdout)
    name = str(names["present"])
    repo, tag = name.split("/", 1)[1].rsplit(":", 1)
    pusher = Pusher(registry.host)
    digest = pusher.image(repo, tag)["digest"]
    pusher.close()

    proc = fk.run(SHOULD_BUILD.replace("sys.argv[1]", "'check'"), tmp_path, env)
    out = out_json(proc.stdout)
    assert out["present"] is False
    assert out["absent"] is True
    assert out["force"] is True
    assert out["after_build"] == f"{name}@{digest}"
    # flytekit's own name would have been a tag of its own scheme, which nobody pushed.
    assert out["flytekit_name"] != name
    assert f"Image {name} found. Skip building." in proc.stdout


def test_should_build_fails_closed_on_an_unknown_answer(fk: Flytekit, tmp_path: Path) -> None:
    closed = f"localhost:{free_port()}"  # nothing listens there
    out = out_json(fk.run(UNKNOWN, tmp_path, {"REG": closed}).stdout)
    error = str(out["error"])
    assert error.startswith(f"cannot tell whether {closed}/nowhere:")
    assert "nothing is built blind" in error and "IMAGESPEC_ASSUME_PRESENT=1" in error
    # flytekit's default (FLYTE_IMG_FAST_FAIL unset: assume present) is not ours.
    assumed = out_json(fk.run(UNKNOWN, tmp_path, {"REG": closed, "IMAGESPEC_ASSUME_PRESENT": "1"}).stdout)
    assert assumed["answer"] is False
    assert "assuming it does, as asked" in str(assumed["warning"])
    assumed = out_json(fk.run(UNKNOWN, tmp_path, {"REG": closed, "FLYTE_IMG_FAST_FAIL": "false"}).stdout)
    assert assumed["answer"] is False
    strict = out_json(
        fk.run(
            UNKNOWN, tmp_path, {"REG": closed, "IMAGESPEC_ASSUME_PRESENT": "1", "FLYTE_IMG_FAST_FAIL": "1"}
        ).stdout
    )
    assert "error" in strict


# ------------------------------- a flytekit task serialised by flytekit, built by our plan

TASKS = """
import os
import flytekit
import imagespec

spec = imagespec.ImageSpec(name="bridged", packages=["six"], registry=os.environ["REG"], builder="pusher")

@flytekit.task(container_image=spec.to_flytekit())
def double(x: int) -> int:
    return 2 * x
"""

SERIALISE = r"""
import json, os
from collections import OrderedDict
import imagespec
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
from registry_servers import Pusher

calls = []

class PushBuilder:
    # A Python builder of imagespec's plan: "builds" by pushing a small image under the name.
    def build_image(self, spec):
        name = spec.image_name()
        calls.append(name)
        repo, tag = name.split("/", 1)[1].rsplit(":", 1)
        digest = Pusher(os.environ["REG"]).image(repo, tag)["digest"]
        return f"{name}@{digest}"

# Only the pusher: this test needs no engine (tests/engines/test_flytekit_bridge.py builds for real).
for engine in list(imagespec.ImageBuildEngine.get_registry()):
    imagespec.ImageBuildEngine.remove(engine)
imagespec.ImageBuildEngine.register("pusher", PushBuilder())
import fk_tasks

converted = imagespec.ImageSpec.from_flytekit(fk_tasks.double.container_image, add_flytekit=True)
before = converted.image_name()
settings = SerializationSettings(
    image_config=ImageConfig.auto_default_image(), project="p", domain="d", version="v1")
entity = get_serializable(OrderedDict(), settings, fk_tasks.double)
print(json.dumps({"image": entity.template.container.image, "calls": calls, "before": before,
                  "after": converted.image_name(), "packages": list(converted.packages),
                  "args": entity.template.container.args}))
"""


def test_a_flytekit_task_serialises_with_the_name_our_plan_reported(
    fk: Flytekit, tmp_path: Path, registry: Registry
) -> None:
    (tmp_path / "fk_tasks.py").write_text(TASKS)
    env = {"REG": registry.host}
    first = out_json(fk.run(SERIALISE, tmp_path, env).stdout)
    calls = first["calls"]
    assert isinstance(calls, list) and len(calls) == 1
    name = calls[0]
    assert name == first["before"]  # the tag scheme's name, which the builder was asked to build
    # The template names what the builder reported; so does imagespec's own image_name() after it.
    assert str(first["image"]).startswith(f"{name}@sha256:")
    assert first["after"] == first["image"]
    assert first["packages"] == ["six", f"flytekit=={_flytekit_version(fk, tmp_path)}"]
    assert "fk_tasks" in " ".join(map(str, first["args"]))  # type: ignore[call-overload]
    # A second serialisation, in a new process, finds the image and builds nothing: same name.
    second = out_json(fk.run(SERIALISE, tmp_path, env).stdout)
    assert second["calls"] == []
    assert second["image"] == first["image"]


def _flytekit_version(fk: Flytekit, cwd: Path) -> str:
    return fk.run("import flytekit; print(flytekit.__version__)", cwd).stdout.strip().splitlines()[-1]


# --------------------------------- `imagespec build` discovers flytekit's tasks as well as ours

MIXED = (
    FAKE_BUILDER
    + """
import flytekit
from imagespec import ImageSpec, task, workflow

ours_img = ImageSpec(name="ours", registry="localhost:5000", python_version="3.11")
bridged = ImageSpec(name="bridged", registry="localhost:5000", python_version="3.11", packages=["six"])
fk_img = flytekit.ImageSpec(name="fk-native", registry="localhost:5000", python_version="3.11",
                            packages=["attrs"])

@task(container_image=ours_img)
def ours() -> int:
    return 1

@flytekit.task(container_image=bridged.to_flytekit())
def via_bridge(x: int) -> int:
    return x

@flytekit.task(container_image=fk_img, retries=2, requests=flytekit.Resources(cpu="1", mem="1Gi"))
def native(x: int) -> int:
    return x

@flytekit.task(container_image="python:3.11-slim")
def plain(x: int) -> int:
    return x

@flytekit.task
def bare(x: int) -> int:
    return x

@flytekit.workflow
def fk_wf(x: int = 1) -> int:
    return native(x=via_bridge(x=x))

@flytekit.workflow
def plain_wf(x: int = 1) -> int:
    return plain(x=x)

@flytekit.workflow
def bare_wf(x: int = 1) -> int:
    return bare(x=x)

@flytekit.workflow
def outer(x: int = 1) -> list[int]:
    y = fk_wf(x=x)
    return flytekit.map_task(plain)(x=[y, y])

lp = flytekit.LaunchPlan.get_or_create(fk_wf, name="fk_lp")
"""
)

# What the images must be: the specs converted as the bridge converts them, and flytekit's ids.
EXPECTED = r"""
import json
import flytekit
from flytekit.configuration import DefaultImages
from imagespec import ImageSpec
import mixed

def conv(fk_spec):
    return ImageSpec.from_flytekit(fk_spec, add_flytekit=True)

bridged = conv(mixed.via_bridge.container_image)
native = conv(mixed.fk_img)
print(json.dumps({
    "ours": mixed.ours_img.image_name(), "ours_id": mixed.ours_img.id,
    "bridged_var": mixed.bridged.image_name(),
    "bridged": bridged.image_name(), "bridged_id": bridged.id,
    "bridged_fk_id": mixed.via_bridge.container_image.id,
    "native": native.image_name(), "native_id": native.id, "native_tag": native.tag,
    "native_fk_id": mixed.fk_img.id,
    "moved_native": native.replace(registry="localhost:6000").image_name(),
    "flytekit_default": DefaultImages.default_image(),
    "over": ImageSpec(name="over", python_version="3.11").image_name(),
}))
"""


def imagespec_cli(fk: Flytekit, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``imagespec ARGS`` in the flytekit venv (imagespec's wheel on its path)."""
    code = f"import sys\nfrom imagespec.cli import main\nsys.exit(main({list(args)!r}))"
    return fk.run(code, cwd, check=False)


def by_image(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert out.returncode == 0, out.stderr
    return {str(r["image"]): r for r in json.loads(out.stdout)}


@pytest.fixture(scope="module")
def mixed(fk: Flytekit, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("mixed")
    (root / "mixed.py").write_text(MIXED)
    (root / "o.yaml").write_text("name: over\npython_version: '3.11'\n")
    expected = out_json(fk.run(EXPECTED, root).stdout)
    return root, {k: str(v) for k, v in expected.items()}


def test_build_builds_flytekit_tasks_images_with_ours_in_one_plan(
    fk: Flytekit, mixed: tuple[Path, dict[str, str]]
) -> None:
    root, e = mixed
    # --fast: the declared specs as the bridge converts them (without it, pyflyte build's project
    # root is added first: tests/compat/test_cli_pyflyte_build.py).
    out = imagespec_cli(fk, root, "build", "--fast", "mixed.py", "--builder", "fake", "--json")
    rows = by_image(out)
    # The module's specs (ours and flytekit's), and the images of every task, each once; a task
    # with a plain reference has nothing to build and is listed as such.
    assert sorted(rows) == sorted(
        [e["ours"], e["bridged_var"], e["native"], e["bridged"], "python:3.11-slim", e["flytekit_default"]]
    )
    tasks = {t["name"]: (image, t) for image, r in rows.items() for t in r["tasks"]}
    assert {name: image for name, (image, _) in tasks.items()} == {
        "mixed.ours": e["ours"],
        "mixed.via_bridge": e["bridged"],
        "mixed.native": e["native"],
        "mixed.plain": "python:3.11-slim",
        "mixed.bare": e["flytekit_default"],
    }
    for image in (e["ours"], e["bridged_var"], e["native"], e["bridged"]):
        assert rows[image]["outcome"] == "built"
        assert rows[image]["name"] == image + "-built"
    for ref in ("python:3.11-slim", e["flytekit_default"]):
        assert rows[ref]["outcome"] == "reference" and rows[ref]["reason"] == "a reference, not built"
        assert f"image    {ref}: a reference, not built" in out.stderr
    # flytekit tasks are listed like ours: the built name, flytekit's command, resources, retries.
    _, native = tasks["mixed.native"]
    assert native["flytekit"] is True
    assert native["image"] == e["native"] + "-built"
    assert native["command"][0] == "pyflyte-execute"
    assert native["command"][-4:] == ["task-module", "mixed", "task-name", "native"]
    assert native["resources"] == {"requests": {"cpu": "1", "mem": "1Gi"}, "limits": {}}
    assert native["retries"] == 2
    _, ours = tasks["mixed.ours"]
    assert "flytekit" not in ours and ours["command"][:3] == ["python", "-m", "imagespec.execute"]


def test_build_a_flytekit_workflow_builds_only_its_tasks_images(
    fk: Flytekit, mixed: tuple[Path, dict[str, str]]
) -> None:
    root, e = mixed
    rows = by_image(
        imagespec_cli(fk, root, "build", "--fast", "mixed.py", "fk_wf", "--builder", "fake", "--json")
    )
    assert sorted(rows) == sorted([e["bridged"], e["native"]])
    assert [t["name"] for t in rows[e["bridged"]]["tasks"]] == ["mixed.via_bridge"]
    assert [t["name"] for t in rows[e["native"]]["tasks"]] == ["mixed.native"]
    # Through a sub-workflow and a map task.
    rows = by_image(
        imagespec_cli(fk, root, "build", "--fast", "mixed.py", "outer", "--builder", "fake", "--json")
    )
    assert sorted(rows) == sorted([e["bridged"], e["native"], "python:3.11-slim"])
    # A flytekit task alone.
    rows = by_image(
        imagespec_cli(fk, root, "build", "--fast", "mixed.py", "native", "--builder", "fake", "--json")
    )
    assert list(rows) == [e["native"]]


def test_a_flytekit_task_with_a_plain_image_has_nothing_to_build(
    fk: Flytekit, mixed: tuple[Path, dict[str, str]]
) -> None:
    root, _ = mixed
    out = imagespec_cli(fk, root, "build", "mixed.py", "plain_wf", "--builder", "fake", "--json")
    assert json.loads(out.stdout) == [
        {
            "image": "python:3.11-slim",
            "name": "python:3.11-slim",
            "id": None,
            "outcome": "reference",
            "builder": None,
            "reason": "a reference, not built",
            "seconds": 0.0,
            "tasks": [json.loads(out.stdout)[0]["tasks"][0]],
        }
    ]
    assert [t["name"] for t in json.loads(out.stdout)[0]["tasks"]] == ["mixed.plain"]
    assert "image    python:3.11-slim: a reference, not built" in out.stderr


def test_image_overrides_apply_to_flytekit_tasks(fk: Flytekit, mixed: tuple[Path, dict[str, str]]) -> None:
    root, e = mixed

    def images(*args: str) -> list[str]:
        out = imagespec_cli(fk, root, "build", "--fast", "--dry-run", "--json", "mixed.py", *args)
        assert out.returncode == 0, out.stderr
        return sorted(str(r["image"]) for r in json.loads(out.stdout))

    # NAME: our spec whose to_flytekit() the task uses, or a flytekit ImageSpec variable.
    assert images("fk_wf", "--image", "bridged=o.yaml") == sorted([e["over"], e["native"]])
    assert images("fk_wf", "--image", "fk_img=o.yaml") == sorted([e["bridged"], e["over"]])
    # SPEC.yaml: the default image, which a flytekit task without container_image runs in.
    assert images("bare_wf", "--image", "o.yaml") == [e["over"]]
    out = imagespec_cli(fk, root, "build", "--dry-run", "--json", "mixed.py", "bare_wf")
    assert json.loads(out.stdout) == []
    assert f"image    {e['flytekit_default']}: a reference, not built" in out.stderr
    out = imagespec_cli(fk, root, "build", "--dry-run", "mixed.py", "plain_wf", "--image", "fk_img=o.yaml")
    assert out.returncode == 2 and "--image fk_img=o.yaml: no task uses the image 'fk_img'" in out.stderr


def test_flytekit_tasks_images_carry_flytekits_id_and_ours(
    fk: Flytekit, mixed: tuple[Path, dict[str, str]]
) -> None:
    root, e = mixed
    for extra, image in (((), e["native"]), (("--registry", "localhost:6000"), e["moved_native"])):
        out = imagespec_cli(fk, root, "build", "--fast", "--dry-run", "--json", "mixed.py", "native", *extra)
        (row,) = json.loads(out.stdout)
        assert row["image"] == image
        text = row["dockerfile_text"]
        assert f'IMAGESPEC_IMG_ID="{e["native_id"]}:{e["native_fk_id"]}"' in text
        assert text.rstrip().endswith(f'_F_IMG_ID="{e["native_fk_id"]}"')
        # flytekit's id is no part of the tag: the image is the converted spec's.
        assert row["tag"] == e["native_tag"] and row["id"] == e["native_id"]
    out = imagespec_cli(fk, root, "build", "--dry-run", "--json", "mixed.py", "ours")
    (row,) = json.loads(out.stdout)
    assert "IMAGESPEC_IMG_ID" not in row["dockerfile_text"]
    assert row["dockerfile_text"].rstrip().endswith(f'_F_IMG_ID="{e["ours_id"]}"')


BAD_IMAGES = """
import flytekit
from imagespec import ImageSpec

@flytekit.task(container_image=42)
def number() -> None: ...

@flytekit.task(container_image=ImageSpec.from_yaml("other/spec.yaml"))
def ours() -> None: ...

@flytekit.workflow
def wf_number() -> None:
    number()

@flytekit.workflow
def wf_ours() -> None:
    ours()
"""
# A spec flytekit cannot take: its copy paths are relative to other/, flytekit's to the working folder.
BAD_FILES = {"bad.py": BAD_IMAGES, "other/spec.yaml": "copy:\n  - conf.txt\n"}


@pytest.mark.parametrize(
    ("files", "args", "code", "message"),
    [
        ({}, ["mixed.py", "lp"], 2,
         "mixed.py: 'lp' is a flytekit LaunchPlan, not a task or workflow; name its workflow (mixed.fk_wf)"),
        ({}, ["mixed.py", "fk_img"], 2, "mixed.py: 'fk_img' is a flytekit ImageSpec, not a task or workflow"),
        (BAD_FILES, ["bad.py", "wf_number"], 1,
         "flytekit task bad.number: container_image is a int (42), which imagespec cannot convert: "
         "give an ImageSpec (imagespec's or flytekit's) or an image name"),
        (BAD_FILES, ["bad.py", "wf_ours"], 1,
         "flytekit task bad.ours: container_image: imagespec cannot give this ImageSpec to flytekit: copy: "
         "its paths are relative to {root}/other, but flytekit reads them relative to the working directory "
         "({root})"),
    ],
)  # fmt: skip
def test_bad_flytekit_inputs_have_clear_messages(
    fk: Flytekit,
    mixed: tuple[Path, dict[str, str]],
    files: dict[str, str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    root, _ = mixed
    for name, text in files.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(text)
    out = imagespec_cli(fk, root, "build", "--dry-run", *args)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert f"imagespec: error: {message.format(root=root)}" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_refuses_a_flytekit_entity(fk: Flytekit, mixed: tuple[Path, dict[str, str]]) -> None:
    root, _ = mixed
    out = imagespec_cli(fk, root, "run", "mixed.py", "fk_wf")
    assert out.returncode == 2
    assert "'fk_wf' is a flytekit PythonFunctionWorkflow; imagespec run runs imagespec tasks" in out.stderr


def test_build_looks_for_flytekit_tasks_only_when_the_module_imported_flytekit(
    fk: Flytekit, tmp_path: Path
) -> None:
    (tmp_path / "plain.py").write_text(
        "from imagespec import ImageSpec, task\n"
        "img = ImageSpec(name='p', python_version='3.11')\n"
        "@task(container_image=img)\ndef t() -> int:\n    return 1\n"
    )
    code = (
        "import json, sys\nfrom imagespec.cli import main\n"
        "main(['build', '--dry-run', '--json', 'plain.py', 't'])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'flytekit' "
        "or m == 'imagespec._flytekit')))"
    )
    # Not even the bridge module is imported: a module without flytekit pays nothing for it.
    assert json.loads(fk.run(code, tmp_path).stdout.strip().splitlines()[-1]) == []
