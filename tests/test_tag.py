"""Identity vs tag: what changes them, what must not, and where the inputs come from."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from imagespec import CopyFileDetection, ImageSpec, SourceError, write_context

from .conftest import run_python, write_tree

TREE = {
    "requirements.txt": "pandas==2.2.0\n",
    "app/__init__.py": "",
    "app/main.py": "print('hi')\n",
    "conf/settings.yaml": "a: 1\n",
    ".gitignore": "build/\n*.log\n",
    "build/out.bin": b"\x00" * 100,
    "run.log": "noise\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "proj", TREE)


def spec_in(root: Path, **extra: object) -> ImageSpec:
    return ImageSpec(
        name="app",
        registry="localhost:5000",
        packages=["numpy"],
        source_root=str(root),
        requirements=str(root / "requirements.txt"),
        **{"source_copy_mode": "ALL", **extra},  # type: ignore[arg-type]
    )


def test_tag_is_a_valid_oci_tag_with_160_bits(project: Path) -> None:
    tag = spec_in(project).tag
    assert len(tag) == 32 and tag.isalnum() and tag == tag.lower()


def test_id_ignores_files_tag_does_not(project: Path) -> None:
    spec = spec_in(project)
    id0, tag0 = spec.id, spec.tag
    (project / "app" / "main.py").write_text("print('changed')\n")
    assert spec.id == id0
    assert spec.tag != tag0


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "app" / "main.py").write_text("print('bye')\n"),
        lambda p: (p / "app" / "new.py").write_text(""),
        lambda p: (p / "app" / "main.py").unlink(),
        lambda p: (p / "app" / "main.py").rename(p / "app" / "moved.py"),
        lambda p: (p / "app" / "main.py").chmod(0o755),
        lambda p: (p / "requirements.txt").write_text("pandas==2.2.1\n"),
        lambda p: (p / "app" / "link").symlink_to("main.py"),
        lambda p: (p / ".gitignore").write_text("build/\n"),  # run.log now selected
    ],
)
def test_content_changes_change_the_tag(project: Path, change: object) -> None:
    before = spec_in(project).tag
    change(project)  # type: ignore[operator]
    assert spec_in(project).tag != before


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "build" / "out.bin").write_bytes(b"\x01" * 100),  # ignored folder
        lambda p: (p / "other.log").write_text("x"),  # ignored pattern
        lambda p: os.utime(p / "app" / "main.py", (1, 1)),  # mtime
        lambda p: (p / "app" / "__pycache__").mkdir(),  # standard ignore
        lambda p: (p / "empty_dir").mkdir(),
    ],
)
def test_non_content_changes_keep_the_tag(project: Path, change: object) -> None:
    before = spec_in(project).tag
    change(project)  # type: ignore[operator]
    assert spec_in(project).tag == before


@pytest.mark.parametrize(
    "fields",
    [
        {"registry": "ghcr.io/other"},
        {"name": "renamed"},
        {"registry_config": "/somewhere/config.json"},
        {"pip_secret_mounts": [("/home/me/.netrc", "/root/.netrc")]},
        {"builder": "buildah"},
        {"builder_options": {"insecure_registries": ["x"]}},
    ],
)
def test_fields_that_cannot_change_the_content_keep_tag_and_id(
    project: Path, fields: dict[str, object]
) -> None:
    base = spec_in(project)
    other = base.replace(**fields)
    assert (other.tag, other.id) == (base.tag, base.id)
    assert base.force_push().tag == base.tag


@pytest.mark.parametrize(
    "fields",
    [
        {"packages": ["numpy", "scipy"]},
        {"packages": ["scipy", "numpy"]},
        {"env": {"A": "1"}},
        {"apt_packages": ["git"]},
        {"commands": ["echo 1"]},
        {"python_version": "3.9"},
        {"platform": "linux/arm64"},
        {"base_image": "ubuntu:22.04"},
        {"pip_index": "https://mirror.example.com/simple"},
        {"pip_extra_args": "--pre"},
        {"entrypoint": ["python"]},
        {"entrypoint": []},
        {"python_exec": "/opt/py/bin/python"},
        {"runtime_packages": ["x"]},
        {"builder_config": {"uv": "0.4"}},
        {"cuda": "12.1"},
        {"conda_packages": ["x"]},
        {"conda_channels": ["c"]},
        {"source_copy_mode": CopyFileDetection.NO_COPY},
    ],
)
def test_content_fields_change_tag_and_id(project: Path, fields: dict[str, object]) -> None:
    base = spec_in(project)
    other = base.replace(**fields)
    assert other.tag != base.tag
    assert other.id != base.id


def test_framing_separates_lists(project: Path) -> None:
    a = ImageSpec(commands=["ab", "c"])
    b = ImageSpec(commands=["a", "bc"])
    assert a.id != b.id and a.tag != b.tag


def test_tag_format(project: Path) -> None:
    spec = spec_in(project)
    formatted = spec.replace(tag_format="v2-{spec_hash}-gpu")
    assert formatted.tag == f"v2-{spec.tag}-gpu"


def test_url_credentials_never_enter_the_hash() -> None:
    a = ImageSpec(
        pip_index="https://alice:pw1secret@pypi.example.com/simple", pip_extra_args="-i https://t@x.io/s"
    )
    b = ImageSpec(
        pip_index="https://bob:pw2secret@pypi.example.com/simple", pip_extra_args="-i https://u@x.io/s"
    )
    c = ImageSpec(pip_index="https://pypi.example.com/simple", pip_extra_args="-i https://x.io/s")
    assert a.tag == b.tag == c.tag
    assert a.id == c.id
    assert "pw1secret" not in str(a.tag_inputs()) + a.to_yaml().replace(a.pip_index or "", "")


def test_copy_entries_are_content(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    spec = ImageSpec(copy=["conf"])
    before = spec.tag
    assert "copy/conf/settings.yaml" in spec.tag_inputs()["files"]
    (project / "conf" / "settings.yaml").write_text("a: 2\n")
    assert spec.tag != before


def test_base_image_spec_chain(project: Path) -> None:
    base = spec_in(project, tag_format="base-{spec_hash}")
    child = ImageSpec(name="child", base_image=base, packages=["x"])
    inputs = child.tag_inputs()
    assert inputs["base_image"] == base.image_name()
    before = child.tag
    (project / "app" / "main.py").write_text("print('base changed')\n")
    assert child.tag != before  # the base's new tag changes the child's
    assert child.id == ImageSpec(name="child", base_image=base, packages=["x"]).id


def test_missing_inputs_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match=r"requirements: .*/nope\.txt: does not exist"):
        _ = ImageSpec(requirements="nope.txt").tag
    with pytest.raises(SourceError, match=r"source_root: .*/nodir: is not a folder"):
        _ = ImageSpec(source_root="nodir").tag
    (tmp_path / "uv.lock").write_text("version = 1\n")
    with pytest.raises(SourceError, match=r"uv\.lock needs the pyproject\.toml beside it"):
        _ = ImageSpec(requirements="uv.lock").tag


def test_a_missing_copy_entry_has_a_tag_but_no_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # flytekit's tag leaves a missing copy file out (flytekit/tools/fast_registration.py:251-253)
    # and its build fails: ours tags it as missing, and every build refuses it.
    monkeypatch.chdir(tmp_path)
    spec = ImageSpec(python_version="3.11", copy=["missing", "/nowhere/file.txt"])
    missing_tag = spec.tag
    assert {"copy/missing", "copy/nowhere/file.txt"} <= set(spec.tag_inputs()["files"])
    with pytest.raises(SourceError, match=r"copy: .*/missing: does not exist; the image cannot be built"):
        write_context(spec, tmp_path / "ctx")
    (tmp_path / "missing").write_text("here now\n")
    assert spec.tag != missing_tag


def test_lock_files_bring_their_pyproject(tmp_path: Path) -> None:
    write_tree(tmp_path, {"uv.lock": "version = 1\n", "pyproject.toml": "[project]\nname='x'\n"})
    spec = ImageSpec(requirements=str(tmp_path / "uv.lock"))
    assert set(spec.tag_inputs()["files"]) == {"requirements/uv.lock", "requirements/pyproject.toml"}
    before = spec.tag
    (tmp_path / "pyproject.toml").write_text("[project]\nname='y'\n")
    assert spec.tag != before


def test_selection_honours_ignore_files(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "p",
        {
            ".gitignore": "*.tmp\n!keep.tmp\ndata/\n",
            ".dockerignore": "secrets.txt\n**/*.bak\n",
            "keep.tmp": "k",
            "drop.tmp": "d",
            "data/x.csv": "1",
            "sub/.gitignore": "local.txt\n",
            "sub/local.txt": "l",
            "sub/secrets.txt": "kept: dockerignore patterns are anchored at the root",
            "secrets.txt": "s",
            "sub/a.bak": "b",
            "sub/ok.py": "",
            ".git/config": "x",
            ".venv/bin/python": "x",
            "pkg/__pycache__/m.pyc": "x",
        },
    )
    files = set(ImageSpec(source_root=str(root), source_copy_mode="ALL").tag_inputs()["files"])
    assert files == {
        "source/.dockerignore",
        "source/.gitignore",
        "source/keep.tmp",
        "source/sub/.gitignore",
        "source/sub/secrets.txt",
        "source/sub/ok.py",
    }


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    outside = write_tree(tmp_path / "outside", {"big.bin": "x" * 1000})
    root = write_tree(tmp_path / "p", {"a.py": ""})
    (root / "inside").symlink_to("a.py")
    (root / "out").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "nope")
    spec = ImageSpec(source_root=str(root), source_copy_mode="ALL")
    files = set(spec.tag_inputs()["files"])
    assert files == {"source/a.py", "source/inside", "source/out", "source/dangling"}
    before = spec.tag
    (outside / "big.bin").write_text("y" * 1000)  # not followed: no change
    assert spec.tag == before


def test_no_copy_and_no_root(project: Path) -> None:
    spec = spec_in(project, source_copy_mode=CopyFileDetection.NO_COPY)
    assert not [f for f in spec.tag_inputs()["files"] if f.startswith("source/")]


def test_loaded_modules_mode_hashes_only_imported_files(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "proj",
        {
            "wf.py": "import pkg.used\n",
            "pkg/__init__.py": "",
            "pkg/used.py": "X = 1\n",
            "pkg/unused.py": "Y = 2\n",
            "data.csv": "1,2\n",
        },
    )
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(root)!r})
        import wf
        from imagespec import ImageSpec, CopyFileDetection
        spec = ImageSpec(source_root={str(root)!r}, source_copy_mode=CopyFileDetection.LOADED_MODULES)
        print(json.dumps(sorted(spec.tag_inputs()["files"])))
        """
    )
    import json

    files = json.loads(run_python(code, cwd=tmp_path))
    assert files == ["source/pkg/__init__.py", "source/pkg/used.py", "source/wf.py"]


SCRIPT = """\
import os
from pathlib import Path
from imagespec import ImageSpec

HERE = Path(__file__).parent
spec = ImageSpec(
    name="wf",
    source_root=os.path.dirname(os.path.abspath(__file__)),
    requirements=HERE / "requirements.txt",
    packages=["pandas"],
)
print(spec.id, spec.is_container())
"""


def test_id_is_the_same_on_the_laptop_and_in_the_image(tmp_path: Path) -> None:
    """The spec evaluated in /home/... and in the image's /root (no requirements there) has one id."""
    laptop = write_tree(tmp_path / "home" / "me" / "proj", {"wf.py": SCRIPT, "requirements.txt": "pandas\n"})
    image_root = write_tree(tmp_path / "image" / "root", {"wf.py": SCRIPT})  # requirements not copied
    laptop_id, outside = run_python(
        "exec(open('wf.py').read().replace('__file__', repr('wf.py')))", laptop
    ).split()
    assert outside == "True"
    env = {"_F_IMG_ID": laptop_id}
    image_id, inside = run_python(
        "exec(open('wf.py').read().replace('__file__', repr('wf.py')))", image_root, env=env
    ).split()
    assert image_id == laptop_id
    assert inside == "True"
    other_id, other = run_python(
        "exec(open('wf.py').read().replace('__file__', repr('wf.py')).replace('pandas', 'polars'))",
        image_root,
        env=env,
    ).split()
    assert other_id != laptop_id and other == "False"


def test_tag_is_independent_of_checkout_location(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a" / "proj", TREE)
    b = write_tree(tmp_path / "somewhere" / "else" / "proj", TREE)
    assert spec_in(a).tag == spec_in(b).tag


def test_rewrite_within_the_same_mtime_is_seen(project: Path) -> None:
    """The digest cache never answers for a file rewritten with the same size and mtime."""
    target = project / "app" / "main.py"
    old = os.stat(target)
    os.utime(target, ns=(old.st_atime_ns - 10**10, old.st_mtime_ns - 10**10))  # make it "old" enough to cache
    spec = spec_in(project)
    first = spec.tag
    assert spec.tag == first  # cached now
    st = os.stat(target)
    target.write_text("print('HI')\n")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(target).st_size == st.st_size
    assert spec.tag != first


def test_loaded_modules_mode_does_not_import_lazy_modules(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "proj", {"wf.py": "", "lazy_mod.py": "raise RuntimeError('imported')\n"})
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        sys.path.insert(0, {str(root)!r})
        import wf
        spec = importlib.util.find_spec("lazy_mod")
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["lazy_mod"] = module
        loader.exec_module(module)
        from imagespec import ImageSpec
        spec = ImageSpec(source_root={str(root)!r}, source_copy_mode="LOADED_MODULES")
        print(sorted(spec.tag_inputs()["files"]))
        """
    )
    assert run_python(code, cwd=tmp_path) == "['source/lazy_mod.py', 'source/wf.py']"


def test_loaded_modules_from_a_script_on_stdin(tmp_path: Path) -> None:
    # `python - < script` gives __main__ the file name "<stdin>", which names no file.
    import subprocess
    import sys

    code = "from imagespec import ImageSpec\nprint(ImageSpec(source_root='.', python_version='3.11').tag)\n"
    out = subprocess.run(
        [sys.executable, "-"], input=code, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip()) == 32
