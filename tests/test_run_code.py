"""Shipping a task's code for `imagespec run --in-containers` (imagespec._ship), without an engine:
the import root of a module, the private read-only copy, when an image holds a module, and which
calls get the copy. tests/engines/test_run_code_*.py run it in real containers;
tests/compat/test_run_code_selection.py compares the file choice with flytekit's.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from imagespec import ImageSpec
from imagespec._ship import CodeBundle, ShipError, image_holds, import_root, is_installed, local_files

from .conftest import run_python, write_tree


@pytest.mark.parametrize(
    ("name", "file", "expected"),
    [
        ("wf", "/src/wf.py", ("/src", "wf.py")),
        ("pkg.wf", "/src/pkg/wf.py", ("/src", "pkg/wf.py")),
        ("pkg", "/src/pkg/__init__.py", ("/src", "pkg/__init__.py")),
        ("a.b.c", "/src/a/b/c/__init__.py", ("/src", "a/b/c/__init__.py")),
        (
            "fast",
            "/src/fast.cpython-311-x86_64-linux-gnu.so",
            ("/src", "fast.cpython-311-x86_64-linux-gnu.so"),
        ),
        ("my-wf", "/src/my-wf.py", ("/src", "my-wf.py")),  # `imagespec run my-wf.py` imports it so
    ],
)
def test_import_root_is_the_folder_the_module_is_imported_from(
    name: str, file: str, expected: tuple[str, str]
) -> None:
    assert import_root(name, file) == expected


@pytest.mark.parametrize(
    ("name", "file"),
    [("other", "/src/wf.py"), ("pkg.wf", "/src/lib/wf.py"), ("a.b.wf", "/b/wf.py")],
)
def test_a_module_not_at_its_names_path_cannot_be_shipped(name: str, file: str) -> None:
    with pytest.raises(ShipError, match=rf"module '{name}' is loaded from {file}, which is not at the path"):
        import_root(name, file)


def test_the_copy_is_private_read_only_and_goes_away(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "proj", {"wf.py": "x = 1\n", "pkg/__init__.py": "", "pkg/sub.py": "y = 2\n"})
    (root / "tool.py").write_text("#!/bin/sh\n")
    (root / "tool.py").chmod(0o755)
    files = [str(root / f) for f in ("wf.py", "pkg/sub.py", "pkg/__init__.py", "tool.py")]
    bundle = CodeBundle(str(root), files)
    try:
        private = bundle.path.parent
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # no other local user reaches it
        assert bundle.files == ["pkg/__init__.py", "pkg/sub.py", "tool.py", "wf.py"]
        modes = {
            str(p.relative_to(bundle.path)): oct(stat.S_IMODE(p.stat().st_mode))
            for p in bundle.path.rglob("*")
        }
        assert modes == {
            "pkg": "0o555",
            "pkg/__init__.py": "0o444",
            "pkg/sub.py": "0o444",
            "tool.py": "0o444",
            "wf.py": "0o444",
        }
        assert oct(stat.S_IMODE(bundle.path.stat().st_mode)) == "0o555"
        assert (bundle.path / "pkg" / "sub.py").read_text() == "y = 2\n"
        # A copy: an edit of the tree after shipping does not reach it.
        (root / "wf.py").write_text("x = 2\n")
        assert (bundle.path / "wf.py").read_text() == "x = 1\n"
    finally:
        bundle.close()
    assert not private.exists()
    bundle.close()  # twice is harmless


def test_a_file_outside_the_root_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"proj/wf.py": "", "other.py": ""})
    with pytest.raises(ShipError, match=r"\.\./other\.py: not under the shipped root"):
        CodeBundle(str(tmp_path / "proj"), [str(tmp_path / "other.py")])


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "proj", {"wf.py": ""})
    with pytest.raises(ShipError, match=r"cannot ship .*/proj/gone\.py: No such file"):
        CodeBundle(str(root), [str(root / "wf.py"), str(root / "gone.py")])
    assert not list(Path(tmp_path).glob("imagespec-code-*"))


def test_installed_code_is_never_shipped() -> None:
    import pytest as installed

    import imagespec

    assert is_installed(imagespec.__file__) and is_installed(installed.__file__) and is_installed(os.__file__)
    root = str(Path(imagespec.__file__).parents[2])  # a checkout that holds the imagespec package
    assert not [f for f in local_files(root, [imagespec]) if "imagespec" in f]


def test_an_image_holds_a_module_its_selection_puts_at_the_modules_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(
        tmp_path / "proj", {"wf.py": "", "pkg/__init__.py": "", "pkg/wf.py": "", "sub/wf.py": ""}
    )
    every = ImageSpec(source_root=str(root), source_copy_mode="ALL", python_version="3.11")
    assert image_holds(every, "wf.py") and image_holds(every, "pkg/wf.py")
    assert not image_holds(every, "other.py")
    # Imported from sub/ as `wf`, the module would need /root/wf.py: sub/wf.py does not count.
    only_sub = ImageSpec(source_root=str(root / "sub"), source_copy_mode="ALL", python_version="3.11")
    assert image_holds(only_sub, "wf.py") and not image_holds(only_sub, "sub/wf.py")
    assert not image_holds(ImageSpec(source_root=str(root), source_copy_mode="NO_COPY"), "wf.py")
    assert not image_holds(ImageSpec(python_version="3.11"), "wf.py")
    # `copy` lands in /root too; a base spec's files are in the image built on it.
    monkeypatch.chdir(root)
    copied = ImageSpec(copy=["wf.py"], python_version="3.11")
    assert image_holds(copied, "wf.py")
    assert image_holds(ImageSpec(base_image=copied, packages=["six"]), "wf.py")
    # A reference cannot be looked into.
    assert not image_holds("localhost:5000/has-everything:1", "wf.py")


# In a fresh interpreter (the module must be imported, as `imagespec run` imports it): which calls
# get shipped code, and the docker command that mounts it.
RUNNER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, ".")
    import wf
    from imagespec._containers import ContainerRunner

    with ContainerRunner(docker="docker") as runner:
        shipped, again, own = (runner.code_for(t) for t in (wf.bare, wf.bare_too, wf.holding))
        argv = runner.create_argv(wf.bare, wf.bare.template(), "001-bare", shipped)
        plain = runner.create_argv(wf.holding, wf.holding.template(), "002-holding", own)
        files = sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*"))
    out = {"same": shipped == again, "own": own, "files": files, "argv": argv, "plain": plain}
    out.update(shipped=str(shipped), left=shipped.parent.exists())
    print(json.dumps(out))
    """
)

WF = textwrap.dedent(
    """
    import helpers
    from imagespec import ImageSpec, task
    bare_image = ImageSpec(name="bare", python_version="3.11")
    holding_image = ImageSpec(name="holding", python_version="3.11", source_root=".")

    @task(container_image=bare_image)
    def bare() -> None: ...
    @task(container_image="localhost:5000/elsewhere:1")
    def bare_too() -> None: ...
    @task(container_image=holding_image)
    def holding() -> None: ...
    """
)


def test_calls_of_images_without_the_module_share_one_read_only_copy(tmp_path: Path) -> None:
    write_tree(tmp_path, {"wf.py": WF, "helpers.py": "", "unused.py": ""})
    out = json.loads(run_python(RUNNER, tmp_path))
    assert out["same"] and out["own"] is None  # the holding image (LOADED_MODULES of .) runs its own
    assert out["files"] == ["helpers.py", "wf.py"]
    assert not out["left"]  # removed with the runner
    shipped = out["shipped"]
    command = ["python", "-m", "imagespec.execute", "--module", "wf", "--task"]
    # The inputs and outputs go through the engine (docker cp), not a host folder: no IO mount.
    assert out["argv"][:8] == [
        "docker",
        "create",
        "-v",
        f"{shipped}:/imagespec-code:ro",
        "-e",
        "IMAGESPEC_CODE_DIR=/imagespec-code",
        "--",
        out["argv"][7],
    ]
    assert out["argv"][7].startswith("bare:")
    assert out["argv"][8:14] == command
    assert out["plain"][:3] == ["docker", "create", "--"]
    assert out["plain"][4:10] == command and "/imagespec-code" not in " ".join(out["plain"])
