"""The `imagespec` command, run as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imagespec
from imagespec import ImageSpec

from .conftest import write_tree

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
    assert "defines no ImageSpec at module level" in out.stderr


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
