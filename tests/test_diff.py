"""`imagespec diff` and `imagespec.diff`: every reason two tags differ is named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagespec import ImageInfo, ImageSpec, diff
from imagespec._build import dockerfile
from imagespec._diff import Side, compare


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagespec", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_a_field_change_is_named_with_both_values() -> None:
    old = ImageSpec(name="app", packages=["pandas"], python_version="3.11", env={"A": "1"})
    new = old.replace(env={"A": "2"}, apt_packages=["git"])
    d = diff(old, new)
    assert not d.same_tag
    changes = {(c.kind, c.key): (c.before, c.after) for c in d.changes}
    assert changes == {("field", "env"): ({"A": "1"}, {"A": "2"}), ("field", "apt_packages"): (None, ["git"])}
    text = d.explain()
    assert 'env: {"A": "1"} -> {"A": "2"}' in text and 'apt_packages: (unset) -> ["git"]' in text


def test_the_same_spec_has_no_changes() -> None:
    spec = ImageSpec(name="app", packages=["pandas"], python_version="3.11")
    d = diff(spec, ImageSpec(name="app", packages=["pandas"], python_version="3.11"))
    assert d.same_tag and d.changes == ()
    assert "same tag" in d.explain()


def test_a_name_or_registry_change_is_not_a_tag_change() -> None:
    spec = ImageSpec(name="app", python_version="3.11")
    d = diff(spec, spec.replace(name="other", registry="localhost:5000"))
    assert d.same_tag
    assert {(c.kind, c.key) for c in d.changes} == {("name", "name"), ("name", "registry")}
    assert "does not change the tag" in d.explain()


def test_file_changes_are_listed_one_by_one(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.py").write_text("a = 1\n")
    (src / "edit.py").write_text("b = 1\n")
    (src / "gone.py").write_text("c = 1\n")
    spec = ImageSpec(name="app", python_version="3.11", source_root=str(src), source_copy_mode="ALL")
    before = Side.of_spec(spec, "before")
    (src / "edit.py").write_text("b = 2\n")
    (src / "gone.py").unlink()
    (src / "new.py").write_text("d = 1\n")
    d = compare(before, Side.of_spec(spec, "after"))
    assert not d.same_tag
    described = [c.describe() for c in d.changes]
    assert described == [
        "file source/edit.py: content changed",
        "file source/gone.py: removed",
        "file source/new.py: added",
    ]


def test_a_base_image_change_is_named(tmp_path: Path) -> None:
    base = ImageSpec(name="base", registry="localhost:5000", python_version="3.11", packages=["six"])
    child = ImageSpec(name="child", registry="localhost:5000", base_image=base)
    other = child.replace(base_image=base.with_packages("attrs"))
    d = diff(child, other)
    kinds = {c.kind for c in d.changes}
    assert "base_image" in kinds
    (change,) = [c for c in d.changes if c.kind == "base_image"]
    assert change.before == base.image_name() and change.after == base.with_packages("attrs").image_name()


def test_credentials_never_reach_the_output() -> None:
    a = ImageSpec(name="app", python_version="3.11", pip_index="https://user:s3cret@pypi.example/simple")
    b = a.replace(pip_index="https://user:0ther@pypi.example/simple")
    text = diff(a, b).explain() + json.dumps(diff(a, b).to_dict())
    assert "s3cret" not in text and "0ther" not in text


def test_cli_diff_of_two_yaml_files_and_a_module_variable(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("python_version: '3.11'\npackages: [pandas]\n")
    (tmp_path / "b.yaml").write_text("python_version: '3.11'\npackages: [pandas, numpy]\n")
    out = cli("diff", "a.yaml", "b.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'packages: ["pandas"] -> ["pandas", "numpy"]' in out.stdout
    (tmp_path / "m.py").write_text(
        "from imagespec import ImageSpec\n"
        "x = ImageSpec(python_version='3.11', packages=['pandas'])\n"
        "y = ImageSpec(python_version='3.11', packages=['polars'])\n"
    )
    out = cli("diff", "--json", "a.yaml", "m.py:x", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["same_tag"] is True  # same content: at most the names differ
    assert {c["kind"] for c in result["changes"]} <= {"name"}
    out = cli("diff", "--json", "m.py:x", "m.py:y", cwd=tmp_path)
    changes = json.loads(out.stdout)["changes"]
    assert changes == [{"kind": "field", "key": "packages", "before": ["pandas"], "after": ["polars"]}]
    out = cli("diff", "m.py", "a.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "m.py:x" in out.stderr and "Traceback" not in out.stderr
    out = cli("diff", "m.py:z", "a.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "'z'" in out.stderr


@pytest.mark.parametrize("ref", ["localhost:1/app:tag"])
def test_cli_diff_with_an_unreachable_image_says_why(tmp_path: Path, ref: str) -> None:
    (tmp_path / "a.yaml").write_text("python_version: '3.11'\n")
    out = cli("diff", "a.yaml", ref, cwd=tmp_path)
    assert out.returncode == 1
    assert "cannot read localhost:1/app:tag" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("reference", "name", "registry"),
    [
        ("localhost:5000/team/app:abc", "app", "localhost:5000/team"),
        ("localhost:5000/app@sha256:" + "0" * 64, "app", "localhost:5000"),
        ("ghcr.io/acme/ml/app:abc", "ml/app", "ghcr.io/acme"),
        ("app:abc", "app", None),  # a local image: no registry to name
        ("localhost:5000/other:abc", "app", None),  # retagged under another name: unknown
    ],
)
def test_an_image_label_gets_its_registry_from_the_reference(
    reference: str, name: str, registry: str | None
) -> None:
    # The label leaves the registry out (the same image in two registries is one image).
    label = json.dumps({"name": name, "python_version": "3.11"})
    labels = {"dev.imagespec.spec": label}
    info = ImageInfo(reference=reference, digest=None, source="registry", labels=labels)
    assert info.spec is not None
    assert info.spec.get("registry") == registry
    assert info.spec["python_version"] == "3.11"


def test_the_label_leaves_the_registry_out() -> None:
    spec = ImageSpec(name="app", registry="localhost:5000", python_version="3.11")
    label = next(
        line.split("dev.imagespec.spec=", 1)[1]
        for line in dockerfile(spec).splitlines()
        if "dev.imagespec.spec=" in line
    )
    assert "localhost:5000" not in label
    assert "localhost:5000" in spec._core.shown(spec._loaded())  # diff's view of a spec keeps it
