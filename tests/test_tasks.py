"""Tasks and workflows: the decorators, Resources, the default image, discovery, templates, the
in-container entry point, and `imagespec run` / `imagespec build FILE [ENTITY]` with their errors.

The container runs here go through a stand-in for the docker CLI (IMAGESPEC_DOCKER) that runs the
template's command on this machine; tests/engines/test_run_in_containers.py runs them in real images.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import pickle
import subprocess
import sys
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagespec
from imagespec import ImageSpec, Resources, SpecError, Task, Workflow, task, workflow
from imagespec import _task as task_module
from imagespec._spec import _REAL_NAMES

from .conftest import FAKE_BUILDER, run_python, write_tree

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(autouse=True)
def no_default_image(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("IMAGESPEC_DEFAULT_IMAGE", raising=False)
    monkeypatch.delenv("IMAGESPEC_DOCKER", raising=False)
    yield
    imagespec.set_default_image(None)
    task_module._OVERRIDES.clear()
    task_module.set_runner(None)


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagespec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


# Decorators


def test_task_bare_and_with_arguments_keep_the_function() -> None:
    @task
    def add(x: int, y: int = 1) -> int:
        """Adds."""
        return x + y

    spec = ImageSpec(name="a", python_version="3.11")

    @task(
        container_image=spec,
        requests=Resources(cpu="1", mem="1Gi"),
        retries=2,
        cache=True,
        cache_version="v1",
    )
    def scale(x: float) -> float:
        return 2 * x

    assert isinstance(add, Task) and isinstance(scale, Task)
    assert add(2) == 3 and add(x=2, y=5) == 7 and scale(x=1.5) == 3.0
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.__qualname__.endswith("add")
    assert add.__module__ == __name__ and add.name == f"{__name__}.{add.__qualname__}"
    assert inspect.signature(add) == inspect.signature(add.fn)
    assert list(inspect.signature(add).parameters) == ["x", "y"]
    assert typing.get_type_hints(add) == {"x": int, "y": int, "return": int}
    assert add.container_image is None and scale.container_image is spec
    assert (scale.retries, scale.cache, scale.cache_version) == (2, True, "v1")
    assert scale.requests == Resources(cpu="1", mem="1Gi") and scale.limits is None


def test_workflow_runs_its_tasks_as_plain_python() -> None:
    calls: list[str] = []

    @task
    def first(x: int) -> tuple[int, int]:
        calls.append("first")
        return x, x + 1

    @task(container_image="example.com/img:1")
    def second(a: int, b: int) -> dict[str, int]:
        calls.append("second")
        return {"sum": a + b}

    @workflow
    def wf(x: int = 1) -> dict[str, int]:
        """The workflow."""
        a, b = first(x=x)
        return second(a=a, b=b)

    @workflow()
    def outer() -> dict[str, int]:
        return wf(x=10)

    assert isinstance(wf, Workflow) and isinstance(outer, Workflow)
    assert wf() == {"sum": 3} and outer() == {"sum": 21}
    assert calls == ["first", "second"] * 2
    assert wf.__doc__ == "The workflow." and inspect.signature(wf) == inspect.signature(wf.fn)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"container_image": 3}, "container_image must be an ImageSpec or an image name"),
        ({"container_image": " "}, "container_image is empty"),
        ({"requests": {"cpu": "1"}}, "requests must be Resources"),
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": True}, "retries must be a whole number"),
        ({"cache": "yes"}, "cache must be True or False"),
        ({"cache_version": 1}, "cache_version must be a string"),
    ],
)
def test_bad_task_options_are_refused(kwargs: dict[str, typing.Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        task(**kwargs)(lambda: None)


# Resources


def test_resources_take_flytekits_forms() -> None:
    r = Resources(cpu="500m", mem="512Mi", gpu=1, ephemeral_storage="1G")
    assert r.to_dict() == {"cpu": "500m", "mem": "512Mi", "gpu": "1", "ephemeral_storage": "1G"}
    assert (
        Resources(cpu=1).cpu == "1" and Resources(cpu=0.5).cpu == "0.5" and Resources(mem=1024).mem == "1024"
    )
    assert Resources("2", "1Gi") == Resources(cpu="2", mem="1Gi")
    assert hash(Resources(cpu=1)) == hash(Resources(cpu="1")) and Resources(cpu=1) != Resources(cpu=2)
    assert repr(r) == "Resources(cpu='500m', mem='512Mi', gpu='1', ephemeral_storage='1G')"
    assert pickle.loads(pickle.dumps(r)) == r
    with pytest.raises(AttributeError, match="immutable"):
        r.cpu = "2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu": "one"}, "cpu"),
        ({"cpu": "1Gi"}, "cpu"),
        ({"cpu": -1}, "cpu"),
        ({"cpu": True}, "cpu"),
        ({"mem": "1GB"}, "mem"),
        ({"mem": "lots"}, "mem"),
        ({"mem": float("nan")}, "mem"),
        ({"gpu": 0.5}, "gpu"),
        ({"gpu": "two"}, "gpu"),
        ({"ephemeral_storage": "10 Gi"}, "ephemeral_storage"),
        ({"ephemeral_storage": [1]}, "ephemeral_storage"),
    ],
)
def test_malformed_quantities_name_the_field(kwargs: dict[str, typing.Any], field: str) -> None:
    with pytest.raises(SpecError, match=rf"^Resources\.{field}: "):
        Resources(**kwargs)


# The default image


def test_default_image_is_a_plain_spec_then_the_env_then_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @task
    def t() -> None:
        pass

    assert t.image() == ImageSpec() and t.image_name() == ImageSpec().image_name()
    monkeypatch.setenv("IMAGESPEC_DEFAULT_IMAGE", "example.com/from-env:1")
    assert t.image_name() == "example.com/from-env:1"
    (tmp_path / "d.yaml").write_text("name: fromyaml\nregistry: localhost:5000\npython_version: '3.11'\n")
    monkeypatch.setenv("IMAGESPEC_DEFAULT_IMAGE", str(tmp_path / "d.yaml"))
    assert t.image() == ImageSpec(name="fromyaml", registry="localhost:5000", python_version="3.11")
    spec = ImageSpec(name="mine", python_version="3.11")
    imagespec.set_default_image(spec)
    assert t.image() is spec and imagespec.default_image() is spec
    imagespec.set_default_image("example.com/set:2")
    assert t.template()["image"] == "example.com/set:2"
    imagespec.set_default_image(None)
    assert t.image_name() == str(tmp_path / "d.yaml") or t.image().name == "fromyaml"
    with pytest.raises(SpecError, match="set_default_image"):
        imagespec.set_default_image(3)  # type: ignore[arg-type]


# Discovery


def test_discover_and_images_needed_follow_workflows(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "disc_mod.py": textwrap.dedent(
                """
                from imagespec import ImageSpec, task, workflow
                a_img = ImageSpec(name="a", python_version="3.11")
                b_img = ImageSpec(name="b", python_version="3.11")
                unused = ImageSpec(name="unused", python_version="3.11")

                @task(container_image=a_img)
                def ta(): return 1
                @task(container_image=b_img)
                def tb(x): return x
                @task(container_image="example.com/ref:1")
                def tr(): return 2
                @task
                def td(): return 3
                @task(container_image=a_img)
                def not_called(): return 4

                @workflow
                def sub():
                    return [tb(x=i) for i in range(2)]
                def make():
                    local = tr
                    @workflow
                    def closing():
                        return local()
                    return closing
                closing = make()
                @workflow
                def wf():
                    ta()
                    return sub()
                @workflow
                def everything():
                    td(); closing(); return wf()
                """
            )
        },
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import disc_mod  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    tasks, workflows = imagespec.discover(disc_mod)
    assert [t.__name__ for t in tasks] == ["ta", "tb", "tr", "td", "not_called"]
    assert [w.__name__ for w in workflows] == ["sub", "closing", "wf", "everything"]
    assert imagespec.images_needed([disc_mod.sub]) == [disc_mod.b_img]
    assert imagespec.images_needed([disc_mod.wf]) == [disc_mod.a_img, disc_mod.b_img]
    needed = imagespec.images_needed([disc_mod.everything])
    assert set(map(repr, needed)) == set(
        map(repr, [disc_mod.a_img, disc_mod.b_img, "example.com/ref:1", ImageSpec()])
    )
    assert imagespec.images_needed([disc_mod.ta, disc_mod.not_called]) == [disc_mod.a_img]


# Templates


def test_template_names_the_built_image_and_the_command() -> None:
    spec = ImageSpec(name="tmpl", registry="localhost:5000", python_version="3.11")

    @task(
        container_image=spec, requests=Resources(cpu="1", mem="1Gi"), limits=Resources(mem="2Gi"), retries=1
    )
    def t(x: int) -> int:
        return x

    tag_name = spec.image_name()
    assert t.template() == {
        "name": f"{__name__}.{t.__qualname__}",
        "image": tag_name,
        "command": [
            "python",
            "-m",
            "imagespec.execute",
            "--module",
            __name__,
            "--task",
            t.__qualname__,
            "--inputs",
            "{{.input}}",
            "--output-prefix",
            "{{.outputPrefix}}",
        ],
        "resources": {"requests": {"cpu": "1", "mem": "1Gi"}, "limits": {"mem": "2Gi"}},
        "retries": 1,
        "cache": {"enabled": False, "version": ""},
    }
    real = f"{tag_name}@sha256:{'a' * 64}"
    _REAL_NAMES[tag_name] = real  # what a build records
    try:
        assert t.image_name() == real and t.template()["image"] == real
    finally:
        del _REAL_NAMES[tag_name]


# The in-container entry point


def test_execute_calls_the_task_with_pickled_inputs(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "exec_mod.py": (
                "from imagespec import task\n"
                "@task\ndef add(x: int, y: int) -> dict: return {'sum': x + y}\n"
                "@task\ndef boom() -> None: raise RuntimeError('kaboom')\n"
                "not_a_task = 1\n"
            )
        },
    )
    (tmp_path / "in.pkl").write_bytes(pickle.dumps({"x": 2, "y": 3}))
    (tmp_path / "none.pkl").write_bytes(pickle.dumps({}))

    def execute(module: str, name: str, inputs: str) -> subprocess.CompletedProcess[str]:
        command = ["--module", module, "--task", name, "--inputs", str(tmp_path / inputs)]
        return subprocess.run(
            [sys.executable, "-m", "imagespec.execute", *command, "--output-prefix", str(tmp_path / "out")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    done = execute("exec_mod", "add", "in.pkl")
    assert done.returncode == 0, done.stderr
    assert pickle.loads((tmp_path / "out" / "outputs.pkl").read_bytes()) == {"sum": 5}
    for module, name, inputs, message in [
        ("exec_mod", "not_a_task", "in.pkl", "has no task 'not_a_task'"),
        ("exec_mod", "boom", "none.pkl", "task 'boom' raised"),
        ("no_such_mod", "add", "in.pkl", "importing module 'no_such_mod' failed"),
        ("exec_mod", "add", "missing.pkl", "reading the inputs"),
    ]:
        out = execute(module, name, inputs)
        assert out.returncode == 1 and message in out.stderr, out.stderr


# `imagespec run`

RUN_MODULE = textwrap.dedent(
    """
    import json, typing
    from imagespec import ImageSpec, task, workflow

    @task
    def describe(n: int, ratio: float, name: str, flag: bool, items: typing.List[int],
                 opts: dict, maybe: typing.Optional[int] = None) -> str:
        return json.dumps([n, ratio, name, flag, items, opts, maybe])

    @task
    def double(x: int) -> int:
        return 2 * x

    @workflow
    def wf(x: int = 2) -> int:
        return double(x=double(x=x))

    @task
    def fails() -> None:
        raise ValueError("bad value")
    """
)


def test_run_parses_inputs_by_type_hints(tmp_path: Path) -> None:
    write_tree(tmp_path, {"runmod.py": RUN_MODULE})
    out = cli(
        "run", "runmod.py", "describe", "--n", "3", "--ratio=0.5", "--name", "x y", "--flag", "true",
        "--items", "[1, 2]", "--opts", '{"a": 1}', cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [3, 0.5, "x y", True, [1, 2], {"a": 1}, None]
    out = cli("run", "runmod.py", "wf", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "8\n"), out.stderr
    out = cli("run", "runmod.py", "wf", "--x", "5", cwd=tmp_path)
    assert out.stdout == "20\n", out.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["wf", "--x", "two"], 2, "input --x: 'two' is not a int"),
        (["wf", "--y", "1"], 2, "unknown input --y (inputs of wf: --x (int))"),
        (["wf", "--x"], 2, "input --x has no value"),
        (["wf", "stray"], 2, "unexpected 'stray'"),
        (["double"], 2, "missing input --x"),
        (
            [
                "describe",
                "--n",
                "1",
                "--ratio",
                "1",
                "--name",
                "a",
                "--flag",
                "maybe",
                "--items",
                "[]",
                "--opts",
                "{}",
            ],
            2,
            "input --flag: 'maybe' is not a bool",
        ),
        (
            ["nothing"],
            2,
            "no task or workflow named 'nothing' (its tasks and workflows: describe, double, wf, fails)",
        ),
        (["fails"], 1, "runmod.fails raised ValueError: bad value"),
    ],
)
def test_run_errors_are_clear(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    write_tree(tmp_path, {"runmod.py": RUN_MODULE})
    out = cli("run", "runmod.py", *args, cwd=tmp_path)
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    if code == 2:
        assert "Traceback" not in out.stderr


def test_run_the_example_locally() -> None:
    for module in ("pandas", "sklearn"):
        if importlib.util.find_spec(module) is None:
            if os.environ.get("CI"):  # CI installs them (make setup): never skip there
                pytest.fail(f"{module} is not installed in this Python")
            pytest.skip(f"{module} is not installed in this Python (make setup installs it)")
    out = cli("run", str(EXAMPLES / "wf.py"), "wf")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "LogisticRegression(max_iter=3000)"


# Bad inputs of `run` and `build FILE [ENTITY]`

IMAGES_MODULE = textwrap.dedent(
    """
    from imagespec import ImageSpec, task, workflow
    a_img = ImageSpec(name="a", registry="localhost:5000", python_version="3.11")
    b_img = ImageSpec(name="b", registry="localhost:5000", python_version="3.11")
    spare = ImageSpec(name="spare", registry="localhost:5000", python_version="3.11")

    @task(container_image=a_img)
    def ta() -> int: return 1
    @task(container_image=b_img)
    def tb() -> int: return 2
    @task
    def td() -> int: return 3

    @workflow
    def only_a() -> int: return ta()
    @workflow
    def wf() -> int: return ta() + tb() + td()
    """
)


def dry_images(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, out.stderr
    return [row["name"] for row in json.loads(out.stdout)]


def test_build_entity_builds_only_its_images(tmp_path: Path) -> None:
    write_tree(tmp_path, {"imgs.py": IMAGES_MODULE, "o.yaml": "name: over\npython_version: '3.11'\n"})
    assert dry_images(cli("build", "--dry-run", "--json", "imgs.py", "only_a", cwd=tmp_path)) == ["a_img"]
    names = dry_images(cli("build", "--dry-run", "--json", "imgs.py", "wf", cwd=tmp_path))
    assert names == ["a_img", "b_img", "default"]
    names = dry_images(cli("build", "--dry-run", "--json", "imgs.py", cwd=tmp_path))
    assert names == ["a_img", "b_img", "spare", "default"]
    rows = json.loads(
        cli("build", "--dry-run", "--json", "imgs.py", "wf", "--image", "o.yaml", cwd=tmp_path).stdout
    )
    assert rows[-1]["image"] == ImageSpec(name="over", python_version="3.11").image_name()
    rows = json.loads(
        cli("build", "--dry-run", "--json", "imgs.py", "wf", "--image", "b_img=o.yaml", cwd=tmp_path).stdout
    )
    assert [r["name"] for r in rows] == ["a_img", "b_img", "default"]
    assert rows[1]["image"] == ImageSpec(name="over", python_version="3.11").image_name()


@pytest.mark.parametrize("command", ["build", "run"])
@pytest.mark.parametrize(
    ("files", "args", "code", "message"),
    [
        ({"imgs.py": "import no_such_module_here\n"}, ["imgs.py", "wf"], 1,
         "imgs.py: importing it failed: ModuleNotFoundError: No module named 'no_such_module_here'"),
        ({"imgs.py": IMAGES_MODULE}, ["imgs.py", "nope"], 2,
         "imgs.py: no task or workflow named 'nope' (its tasks and workflows: ta, tb, td, only_a, wf)"),
        ({"imgs.py": IMAGES_MODULE, "bad.yaml": "packages: [1, 2\n"}, ["imgs.py", "wf", "--image", "bad.yaml"], 1,  # noqa: E501
         "bad.yaml"),
        ({"imgs.py": IMAGES_MODULE, "bad.yaml": "pakages: [x]\n"}, ["imgs.py", "wf", "--image", "bad.yaml"], 1,  # noqa: E501
         "pakages"),
        ({"imgs.py": IMAGES_MODULE, "o.yaml": "name: o\n"}, ["imgs.py", "wf", "--image", "spare=o.yaml"], 2,
         "--image spare=o.yaml: no task uses the image 'spare'"),
        ({"imgs.py": IMAGES_MODULE, "o.yaml": "name: o\n"}, ["imgs.py", "only_a", "--image", "b_img=o.yaml"], 2,  # noqa: E501
         "--image b_img=o.yaml: no task uses the image 'b_img'"),
        ({"imgs.py": IMAGES_MODULE, "o.yaml": "name: o\n"}, ["imgs.py", "wf", "--image", "nothing=o.yaml"], 2,
         "the module has no ImageSpec named 'nothing' (its images: a_img, b_img, spare)"),
        ({"imgs.py": IMAGES_MODULE, "o.yaml": "name: o\n"}, ["imgs.py", "only_a", "--image", "o.yaml"], 2,
         "--image o.yaml: no task uses the default image"),
        ({"imgs.py": IMAGES_MODULE, "o.yaml": "name: o\n"}, ["imgs.py", "wf", "--image", "1x=o.yaml"], 2,
         "give SPEC.yaml or NAME=SPEC.yaml"),
        ({"imgs.py": IMAGES_MODULE}, ["imgs.py", "wf", "--image", "missing.yaml"], 1, "missing.yaml"),
    ],
)  # fmt: skip
def test_bad_inputs_have_clear_messages(
    tmp_path: Path, command: str, files: dict[str, str], args: list[str], code: int, message: str
) -> None:
    write_tree(tmp_path, files)
    extra = ["--dry-run"] if command == "build" else []
    out = cli(command, *extra, *args, cwd=tmp_path)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_entity_and_image_need_a_python_file() -> None:
    out = cli("build", "--dry-run", str(EXAMPLES / "image.yaml"), "wf")
    assert out.returncode == 2 and "ENTITY and --image need a Python file" in out.stderr
    out = cli("tag", str(EXAMPLES / "image.yaml"), "--bogus")
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr


# Building for real with a Python builder, and running in "containers" through a docker stand-in


# Runs the calls `imagespec run --in-containers` makes here, each container a folder: `create
# [-v HOST:INNER[:ro]]... [-e K=V]... -- IMAGE CMD...` records it, `cp - ID:/` unpacks the tar from
# stdin into its folder, `start -a ID` runs CMD (and the -e values) with each INNER mapped to its
# HOST folder and /imagespec-io to the container's, `cp ID:PATH -` writes a tar of that file to
# stdout, `rm -f ID` removes it.
FAKE_DOCKER = textwrap.dedent(
    """\
    #!{python}
    import json, os, shutil, subprocess, sys, tarfile, uuid
    args = sys.argv[1:]
    boxes = os.environ["FAKE_DOCKER_LOG"] + ".containers"
    os.makedirs(boxes, exist_ok=True)
    box = lambda cid: os.path.join(boxes, cid)
    if args[0] == "create":
        mounts, env, i = [], {{}}, 1
        while args[i] in ("-v", "-e"):
            if args[i] == "-v":
                mounts.append(args[i + 1].split(":")[:2])
            else:
                env.update([args[i + 1].split("=", 1)])
            i += 2
        assert args[i] == "--", args
        image, command = args[i + 1], args[i + 2:]
        with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
            log.write(json.dumps({{"image": image, "command": command}}) + "\\n")
        assert command[:3] == ["python", "-m", "imagespec.execute"], command
        cid = uuid.uuid4().hex
        os.makedirs(box(cid))
        with open(box(cid) + ".json", "w") as f:
            json.dump({{"mounts": mounts, "env": env, "command": command}}, f)
        print(cid)
    elif args[:2] == ["cp", "-"]:
        cid, dest = args[2].split(":", 1)
        with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
            tar.extractall(box(cid) + dest)
    elif args[:2] == ["start", "-a"]:
        with open(box(args[2]) + ".json") as f:
            c = json.load(f)
        mounts = c["mounts"] + [[box(args[2]) + "/imagespec-io", "/imagespec-io"]]
        def here(text):
            for host, inner in mounts:
                text = text.replace(inner, host)
            return text
        command = [sys.executable] + [here(part) for part in c["command"][1:]]
        env = {{**os.environ, **{{k: here(v) for k, v in c["env"].items()}}}}
        sys.exit(subprocess.run(command, cwd=os.environ["FAKE_DOCKER_ROOT"], env=env).returncode)
    elif args[0] == "cp":
        cid, path = args[1].split(":", 1)
        if not os.path.exists(box(cid) + path):
            sys.exit(f"Error: Could not find the file {{path}} in container {{cid}}")
        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
            tar.add(box(cid) + path, arcname=os.path.basename(path))
    elif args[:2] == ["rm", "-f"]:
        shutil.rmtree(box(args[2]))
        os.remove(box(args[2]) + ".json")
    else:
        sys.exit(f"fake docker: unexpected {{args}}")
    """
)


@pytest.fixture
def fake_docker(tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(FAKE_DOCKER.format(python=sys.executable))
    script.chmod(0o755)
    return {
        "IMAGESPEC_DOCKER": str(script),
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "FAKE_DOCKER_ROOT": str(tmp_path / "proj"),
    }


def test_build_json_lists_each_tasks_template_with_the_built_name(tmp_path: Path) -> None:
    proj = write_tree(tmp_path / "proj", {"imgs.py": FAKE_BUILDER + IMAGES_MODULE})
    out = cli("build", "imgs.py", "wf", "--builder", "fake", "--json", cwd=proj)
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    a = rows[ImageSpec(name="a", registry="localhost:5000", python_version="3.11").image_name() + "-built"]
    assert a["outcome"] == "built" and [t["name"] for t in a["tasks"]] == ["imgs.ta"]
    assert a["tasks"][0]["image"] == a["name"] and a["tasks"][0]["command"][:3] == [
        "python",
        "-m",
        "imagespec.execute",
    ]
    assert sorted(t["name"] for row in rows.values() for t in row["tasks"]) == [
        "imgs.ta",
        "imgs.tb",
        "imgs.td",
    ]


def test_run_in_containers_runs_each_task_call_by_its_template(
    tmp_path: Path, fake_docker: dict[str, str]
) -> None:
    proj = write_tree(
        tmp_path / "proj",
        {
            "pipeline.py": FAKE_BUILDER
            + textwrap.dedent(
                """
                import os
                from imagespec import ImageSpec, task, workflow
                a_img = ImageSpec(name="a", registry="localhost:5000", python_version="3.11", builder="fake")
                b_img = ImageSpec(name="b", registry="localhost:5000", python_version="3.11", builder="fake")

                @task(container_image=a_img)
                def split(text: str) -> list:
                    return [text.upper(), os.getuid()]
                @task(container_image=b_img)
                def join(parts: list, sep: str) -> str:
                    return sep.join(map(str, parts))
                @workflow
                def wf(text: str = "hi", sep: str = "-") -> str:
                    return join(parts=split(text=text), sep=sep)
                """
            )
        },
    )
    out = cli("run", "pipeline.py", "wf", "--sep", "+", "--in-containers", cwd=proj, env=fake_docker)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"HI+{os.getuid()}\n"
    runs = [json.loads(line) for line in Path(fake_docker["FAKE_DOCKER_LOG"]).read_text().splitlines()]
    a_built = ImageSpec(name="a", registry="localhost:5000", python_version="3.11").image_name() + "-built"
    assert runs[0]["image"] == a_built and runs[1]["image"].startswith("localhost:5000/b:")
    assert runs[0]["command"][3:7] == ["--module", "pipeline", "--task", "split"]
    assert runs[0]["command"][7:] == [
        "--inputs",
        "/imagespec-io/001-split/inputs.pkl",
        "--output-prefix",
        "/imagespec-io/001-split",
    ]
    assert "running  pipeline.split in " + a_built in out.stderr


def test_a_failing_container_task_fails_the_run(tmp_path: Path, fake_docker: dict[str, str]) -> None:
    proj = write_tree(
        tmp_path / "proj",
        {
            "broken.py": FAKE_BUILDER
            + "from imagespec import task\n"
            + "@task(container_image='example.com/x:1')\ndef t() -> None:\n    raise RuntimeError('inside')\n"
        },
    )
    out = cli("run", "broken.py", "t", "--in-containers", cwd=proj, env=fake_docker)
    assert out.returncode == 1
    assert "imagespec: error: task broken.t failed in example.com/x:1 (exit 1" in out.stderr
    missing = cli(
        "run",
        "broken.py",
        "t",
        "--in-containers",
        cwd=proj,
        env={**fake_docker, "IMAGESPEC_DOCKER": "/nonexistent/docker"},
    )
    assert missing.returncode == 1 and "/nonexistent/docker is not installed" in missing.stderr


def test_a_container_image_that_docker_would_read_as_an_option_is_refused(
    tmp_path: Path, fake_docker: dict[str, str]
) -> None:
    module = "from imagespec import task\n@task(container_image='--privileged')\ndef t() -> None: ...\n"
    proj = write_tree(tmp_path / "proj", {"opt.py": module})
    out = cli("run", "opt.py", "t", "--in-containers", cwd=proj, env=fake_docker)
    assert out.returncode == 1
    assert "task opt.t: its container_image '--privileged' is not an image reference" in out.stderr
    assert not Path(fake_docker["FAKE_DOCKER_LOG"]).exists()  # docker never ran


def test_import_of_the_task_names_stays_light(tmp_path: Path) -> None:
    loaded = set(
        json.loads(
            run_python(
                "import sys, json; from imagespec import ImageSpec, Resources, task, workflow; "
                "print(json.dumps(list(sys.modules)))",
                tmp_path,
            )
        )
    )
    assert not loaded & {"imagespec._registry", "imagespec._engine", "dataclasses", "inspect", "argparse"}
