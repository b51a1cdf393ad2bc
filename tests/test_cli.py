"""The `imagespec` command, run as users run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import imagespec
from imagespec import ImageSpec

from .conftest import FAKE_BUILDER, write_tree

EXAMPLES = Path(__file__).parent.parent / "examples"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagespec", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_tag_of_a_yaml_file_prints_the_image_name() -> None:
    out = cli("tag", str(EXAMPLES / "image.yaml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ImageSpec.from_yaml(EXAMPLES / "image.yaml").image_name()


def test_tag_of_a_python_file_prints_each_module_level_spec(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "wf.py": (
                "from imagespec import ImageSpec\n"
                "a = ImageSpec(name='a', packages=['x'], python_version='3.11')\n"
                "b = ImageSpec(name='b', python_version='3.11')\n"
                "also_a = a\n"
            )
        },
    )
    out = cli("tag", "wf.py", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    a = ImageSpec(name="a", packages=["x"], python_version="3.11")
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0] == {"name": "a", "image": a.image_name(), "tag": a.tag, "id": a.id}


def test_errors_exit_1_with_the_message(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("pakages: [a]\n")
    out = cli("tag", str(tmp_path / "bad.yaml"))
    assert out.returncode == 1
    assert "bad.yaml:1:1: unknown field 'pakages'. Did you mean 'packages'?" in out.stderr
    assert "Traceback" not in out.stderr

    out = cli("tag", str(tmp_path / "missing.yaml"))
    assert out.returncode == 1
    assert "missing.yaml: no such file" in out.stderr

    (tmp_path / "broken.py").write_text("import no_such_module_xyz\n")
    out = cli("tag", str(tmp_path / "broken.py"))
    assert out.returncode == 1
    assert "broken.py: importing it failed: ModuleNotFoundError" in out.stderr

    (tmp_path / "empty.py").write_text("X = 1\n")
    out = cli("tag", str(tmp_path / "empty.py"))
    assert out.returncode == 1
    assert "defines no ImageSpec at module level and has no `# /// script` block" in out.stderr

    # A file that defines no image but carries a PEP 723 block is that script's image.
    (tmp_path / "job.py").write_text('# /// script\n# dependencies = ["six==1.16.0"]\n# ///\nimport six\n')
    out = cli("tag", str(tmp_path / "job.py"))
    assert out.returncode == 0, out.stderr
    want = ImageSpec.from_script(tmp_path / "job.py").image_name()
    assert out.stdout.split() == [want]


def test_usage_errors_exit_2() -> None:
    assert cli().returncode == 2
    assert cli("nonsense").returncode == 2


def test_version_and_help() -> None:
    out = cli("--version")
    assert out.stdout.strip() == f"imagespec {imagespec.__version__}"
    help_text = cli("--help").stdout
    assert "tag" in help_text and "print the full image name" in help_text


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "imagespec"
    out = subprocess.run([str(script), "tag", str(EXAMPLES / "image.yaml")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("localhost:30000/imagespec:")


# `imagespec build` takes pyflyte build's options (docs/cli.md, "pyflyte build's options")

PYFLYTE_MODULE = (
    FAKE_BUILDER
    + """
from imagespec import ImageSpec, task, workflow

a_img = ImageSpec(name="a", registry="localhost:5000", python_version="3.11", packages=["six"])

@task(container_image=a_img)
def ta() -> int:
    return 1

@task
def td() -> int:
    return 2

@workflow
def wf() -> int:
    return ta() + td()

@workflow
def only_a() -> int:
    return ta()
"""
)

# Every pyflyte build option but --image, with a valid value: none changes what a module of ours builds.
NO_EFFECT_OPTIONS = [
    "--fast", "--copy", "all", "--copy", "AUTO", "--copy-all", "-p", "proj", "--project", "proj",
    "-d", "dev", "--domain", "dev", "--destination-dir", "/app", "--service-account", "sa",
    "--wait", "--wait-execution", "--poll-interval", "5", "--dump-snippet", "--overwrite-cache",
    "--interruptible", "false", "--envvars", "A=1", "--env", "B=2=3", "--resource-requests", "cpu=1,mem=2Gi",
    "--resource-limits", "gpu=1", "--tags", "t1", "--tag", "t2", "--name", "run-1", "--labels", "team",
    "--label", "k=v", "--annotations", "a=b", "--annotation", "c=", "--raw-output-data-prefix", "s3://x",
    "--raw-data-prefix", "s3://y", "--max-parallelism", "0", "--disable-notifications", "-r", "--remote",
    "--limit", "10", "--cluster-pool", "pool", "--execution-cluster-label", "ecl", "--ecl", "ecl2",
]  # fmt: skip


def build_rows(cwd: Path, *args: str) -> list[dict[str, object]]:
    out = cli("build", *args, cwd=cwd)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def without_seconds(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_build_takes_pyflyte_builds_options_and_builds_the_same_images(tmp_path: Path) -> None:
    write_tree(tmp_path, {"wf.py": PYFLYTE_MODULE})
    for mode in (["--dry-run"], ["--builder", "fake"]):
        plain = build_rows(tmp_path, *mode, "--json", "wf.py", "wf")
        with_options = build_rows(tmp_path, *mode, "--json", *NO_EFFECT_OPTIONS, "wf.py", "wf")
        # What is built, not how long it took (a build's seconds differ from run to run).
        assert without_seconds(with_options) == without_seconds(plain)
        assert len(plain) == 2  # a_img and the default image, both specs of ours
    # pyflyte's order (options, then FILE ENTITY) and ours (options anywhere) both work.
    after = build_rows(tmp_path, "--dry-run", "--json", "wf.py", "only_a", *NO_EFFECT_OPTIONS)
    assert [r["name"] for r in after] == ["a_img"]


def test_image_reference_is_the_default_image_as_pyflyte_takes_it(tmp_path: Path) -> None:
    write_tree(tmp_path, {"wf.py": PYFLYTE_MODULE})
    a = ImageSpec(name="a", registry="localhost:5000", python_version="3.11", packages=["six"])
    ref = "ghcr.io/org/img:1.0"
    for option in (["-i", ref], ["--image", ref], ["--image", f"default={ref}"]):
        rows = build_rows(tmp_path, "--builder", "fake", "--json", *option, "wf.py", "wf")
        # The task without container_image runs in the reference: nothing is built for it.
        assert [(r["image"], r["outcome"]) for r in rows] == [(a.image_name(), "built"), (ref, "reference")]
        assert [t["name"] for t in rows[1]["tasks"]] == ["wf.td"]  # type: ignore[union-attr]
        assert rows[1]["tasks"][0]["image"] == ref  # type: ignore[index]
    # A named image (NAME=REF) fills flytekit's {{.image.NAME...}} templates at registration: it changes
    # nothing here, even for a NAME that is a module spec; neither does a default no task uses.
    plain = build_rows(tmp_path, "--dry-run", "--json", "wf.py", "wf")
    assert build_rows(tmp_path, "--dry-run", "--json", "-i", f"a_img={ref}", "wf.py", "wf") == plain
    assert build_rows(tmp_path, "--dry-run", "--json", "-i", f"my-img={ref}", "wf.py", "wf") == plain
    only_a = build_rows(tmp_path, "--dry-run", "--json", "wf.py", "only_a")
    assert build_rows(tmp_path, "--dry-run", "--json", "-i", ref, "wf.py", "only_a") == only_a


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "abc"], "argument --limit: 'abc' is not a valid integer"),
        (["--poll-interval", "1.5"], "argument --poll-interval: '1.5' is not a valid integer"),
        (["--max-parallelism", "x"], "argument --max-parallelism: 'x' is not a valid integer"),
        (["--interruptible", "maybe"], "argument --interruptible: 'maybe' is not a valid boolean"),
        (["--envvars", "A"], "argument --envvars/--env: expected key-value pair of the form key=value"),
        (["--annotation", "a"], "expected key-value pair of the form key=value, got 'a'"),
        (["--resource-requests", "cpu"], "expected comma separated key-value pairs"),
        (["--resource-limits", "disk=1"], "'mem', 'gpu', 'ephemeral_storage'], but got 'disk'"),
        (["--resource-limits", "cpu=1,cpu=2"], "expected unique keys, but got 'cpu' multiple times"),
        (["--copy", "none"], "argument --copy: 'none' is not one of 'all', 'auto'"),
        (["-i", "python"], "--image python: an image reference needs a tag or a digest"),
        (["-i", "localhost:5000/python"], "an image reference needs a tag or a digest"),
        (["-i", "a:1", "-i", "default=b:2"], "only one default image can be given (a:1, default=b:2)"),
        # --interruptible takes a value, as click's does: here FILE, which is no boolean.
        (["--interruptible"], "argument --interruptible: 'wf.py' is not a valid boolean"),
    ],
)  # fmt: skip
def test_bad_pyflyte_option_values_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    write_tree(tmp_path, {"wf.py": PYFLYTE_MODULE})
    out = cli("build", "--dry-run", *args, "wf.py", "wf", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "folder",
            "folder: a folder, not a file; give a spec YAML file, a Python file or a project's "
            "pyproject.toml",
        ),
        (
            "missing.py",
            "missing.py: no such file; give a spec YAML file, a Python file or a project's pyproject.toml",
        ),
        (
            "notes.txt",
            "notes.txt: not a Python file (.py), a spec YAML file (.yaml, .yml) or a pyproject.toml",
        ),
        ("wf", "wf: not a Python file (.py), a spec YAML file (.yaml, .yml) or a pyproject.toml"),
    ],
)
def test_a_path_that_is_no_python_or_spec_file_exits_1(tmp_path: Path, path: str, message: str) -> None:
    write_tree(tmp_path, {"folder/x.py": "", "notes.txt": "name: x\n", "wf": "name: x\n"})
    for args in ([path], [path, "wf"], ["--dry-run", path, "wf"], ["--fast", path, "wf"]):
        out = cli("build", *args, cwd=tmp_path)
        assert out.returncode == 1, (args, out.stderr)
        assert f"imagespec: error: {message}" in out.stderr
        assert "Traceback" not in out.stderr
    out = cli("tag", path, cwd=tmp_path)
    assert out.returncode == 1 and message in out.stderr
    # A spec YAML file is the other FILE build takes.
    (tmp_path / "spec.yml").write_text("name: x\npython_version: '3.11'\n")
    assert cli("build", "--dry-run", "spec.yml", cwd=tmp_path).returncode == 0


def test_docs_describe_every_build_option() -> None:
    help_text = cli("build", "--help").stdout
    options = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", help_text.split("\n\n", 1)[1]))
    assert {"--fast", "--copy", "-i", "--image", "--envvars", "--ecl", "--dry-run"} <= options
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    undocumented = [o for o in options if f"`{o}" not in docs and f"{o}`" not in docs]
    assert sorted(set(undocumented) - {"-h", "--help"}) == []


# docs/cli.md's usage lines against the command's own help

DOCS_CLI = Path(__file__).parent.parent / "docs" / "cli.md"
OPTION = re.compile(r"(?<![\w-])--?[a-z][\w-]*")
# In a usage line but no option: `imagespec run FILE.py ENTITY --name value` gives the task's inputs.
NOT_OPTIONS = {"run": {"--name"}}


def documented_usage() -> dict[str, str]:
    """The usage lines of docs/cli.md by command (``imagespec CMD ...`` and the lines continuing it)."""
    usage: dict[str, str] = {}
    for block in re.findall(r"```\n(.*?)```", DOCS_CLI.read_text(), re.S):
        command = None
        for line in block.splitlines():
            if line.startswith("imagespec "):
                command = line.split()[1]
                usage[command] = f"{usage.get(command, '')} {line}"
            elif command is not None and line.startswith(" "):
                usage[command] += f" {line}"
    return usage


def help_options(help_text: str, section: str) -> list[list[str]]:
    """The options one section of argparse's help lists, the names on one line together."""
    options: list[list[str]] = []
    inside = False
    for line in help_text.splitlines():
        if line and not line.startswith(" "):
            inside = line == section
        elif inside and line.startswith("  -"):
            names = re.split(r"\s{2,}", line.strip())[0]
            options.append([name.split()[0] for name in names.split(", ")])
    return options


def test_docs_give_the_usage_of_every_command() -> None:
    help_text = cli("--help").stdout
    commands = set(re.findall(r"(?m)^ {4}([a-z][\w-]*)\s", help_text))
    assert {"tag", "build", "run"} <= commands
    assert set(documented_usage()) == commands | {"--version"}
    assert help_options(help_text, "options:") == [["-h", "--help"], ["--version"]]


@pytest.mark.parametrize("command", sorted(set(documented_usage()) - {"--version"}))
def test_docs_usage_of_a_command_matches_its_help(command: str) -> None:
    help_text = cli(command, "--help").stdout
    documented = set(OPTION.findall(documented_usage()[command]))
    own = [names for names in help_options(help_text, "options:") if names != ["-h", "--help"]]
    assert own
    assert [names for names in own if not documented & set(names)] == []
    # pyflyte build's options are documented in their own section, and may be in the usage too.
    accepted = {name for names in own + help_options(help_text, "pyflyte build options:") for name in names}
    assert sorted(documented - accepted - NOT_OPTIONS.get(command, set())) == []
