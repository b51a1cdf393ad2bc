"""`imagespec build --registry/--platform/--no-push`: every image, bases included, goes elsewhere
or to another platform, and the tasks' templates name the images that are built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODULE = """
from imagespec import ImageBuildEngine, ImageSpec, task, workflow

class Named:
    def build_image(self, spec):
        return spec.image_name()

ImageBuildEngine.register("named", Named(), priority=9)
base = ImageSpec(name="base", registry="localhost:1", python_version="3.11", packages=["six"])
app = ImageSpec(name="app", registry="localhost:1", base_image=base, python_version="3.11")

@task(container_image=app)
def t1() -> int:
    return 1

@workflow
def wf() -> int:
    return t1()
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagespec", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def rows(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    assert out.returncode == 0, out.stderr
    return {str(r.get("name") if "dockerfile_text" in r else r["image"]): r for r in json.loads(out.stdout)}


def test_registry_and_platform_move_every_image_and_change_the_tags(tmp_path: Path) -> None:
    (tmp_path / "wf.py").write_text(MODULE)
    before = rows(cli(tmp_path, "build", "--dry-run", "--json", "wf.py"))
    after = rows(
        cli(
            tmp_path,
            "build",
            "--dry-run",
            "--json",
            "--registry",
            "localhost:5999",
            "--platform",
            "linux/arm64",
            "wf.py",
        )
    )
    assert set(before) == set(after) == {"base", "app"}
    for name in ("base", "app"):
        old, new = str(before[name]["image"]), str(after[name]["image"])
        assert old.startswith(f"localhost:1/{name}:") and new.startswith(f"localhost:5999/{name}:")
        assert old.rsplit(":", 1)[1] != new.rsplit(":", 1)[1]  # the platform is part of the tag
    # The dependant is built FROM the moved base.
    assert f"FROM {after['base']['image']}" in str(after["app"]["dockerfile_text"])


def test_no_push_builds_local_names(tmp_path: Path) -> None:
    (tmp_path / "wf.py").write_text(MODULE)
    after = rows(cli(tmp_path, "build", "--dry-run", "--json", "--no-push", "wf.py"))
    assert str(after["app"]["image"]).startswith("app:")
    assert str(after["base"]["image"]).startswith("base:")


def test_task_templates_name_the_moved_images(tmp_path: Path) -> None:
    (tmp_path / "wf.py").write_text(MODULE)
    out = cli(tmp_path, "build", "--json", "--force-push", "--registry", "localhost:5999", "wf.py")
    built = json.loads(out.stdout) if out.returncode == 0 else None
    assert built is not None, out.stderr
    assert [r["outcome"] for r in built] == ["built", "built"]
    app = next(r for r in built if "/app:" in r["image"])
    assert app["image"].startswith("localhost:5999/app:")
    assert [t["image"] for t in app["tasks"]] == [app["name"]]
