"""Projects the user already has (``project=`` / ``ImageSpec.from_project``): a uv workspace with
a member, a poetry project with a path dependency, locked by the real tools. What enters the tag,
what requires-python decides, and every bad input refused with a SpecError before any engine runs
(the Dockerfile is not even written)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from imagespec import ImageSpec, SourceError, SpecError
from imagespec._build import dockerfile

from .project_files import UV, poetry_lock, poetry_project, run_tool, uv_workspace, write

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(scope="module")
def workspace_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return uv_workspace(tmp_path_factory.mktemp("ws-template") / "ws")


@pytest.fixture
def workspace(workspace_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(workspace_template, tmp_path / "ws"))


@pytest.fixture(scope="module")
def poetry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return poetry_project(tmp_path_factory.mktemp("po-template") / "po")


@pytest.fixture
def poetry(poetry_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(poetry_template, tmp_path / "po"))


def test_from_project_is_the_project_field(workspace: Path) -> None:
    a = ImageSpec.from_project(workspace, registry="localhost:5000")
    b = ImageSpec(project=str(workspace), registry="localhost:5000")
    c = ImageSpec(
        project=workspace / "pyproject.toml",
        project_install_mode="dependencies_only",
        registry="localhost:5000",
    )
    assert a.image_name() == b.image_name() == c.image_name()
    assert a.project == str(workspace)
    assert a.project_install_mode is None  # the default, not written
    d = ImageSpec.from_project(workspace, install_project=True, registry="localhost:5000")
    assert d.project_install_mode == "install_project"
    assert d.tag != a.tag


def test_a_member_file_changes_the_tag_and_the_apps_code_does_not(workspace: Path) -> None:
    deps = ImageSpec.from_project(workspace)
    whole = ImageSpec.from_project(workspace, install_project=True)
    before = (deps.tag, whole.tag)
    (workspace / "src/app/__init__.py").write_text("NAME = 'changed'\n")
    assert deps.tag == before[0]  # dependencies only: the project's own code is not in the image
    assert whole.tag != before[1]
    middle = whole.tag
    (workspace / "packages/helper/src/helper/__init__.py").write_text("def greet():\n    return 'hello'\n")
    assert deps.tag != before[0]  # the member is installed either way
    assert whole.tag != middle


def test_the_path_on_this_machine_is_not_in_the_tag(workspace: Path, tmp_path: Path) -> None:
    moved = Path(shutil.copytree(workspace, tmp_path / "elsewhere" / "ws"))
    assert ImageSpec.from_project(workspace).tag == ImageSpec.from_project(moved).tag


def test_requires_python_chooses_and_checks_python_version(tmp_path: Path) -> None:
    other = "3.12" if HERE != "3.12" else "3.13"
    root = uv_workspace(tmp_path / "ws", requires_python=f"=={other}.*", lock=False)
    assert ImageSpec.from_project(root).python_version == other
    assert ImageSpec.from_project(root, python_version=other).python_version == other
    spec = ImageSpec.from_project(root, python_version=HERE)
    with pytest.raises(
        SpecError, match=rf"python_version: {HERE} does not satisfy requires-python .*pyproject.toml"
    ):
        spec.image_name()


def test_a_stale_uv_lock_is_refused_naming_both_files(workspace: Path) -> None:
    helper = workspace / "packages/helper/pyproject.toml"
    helper.write_text(helper.read_text().replace('"packaging>=24"', '"packaging>=24", "attrs"'))
    spec = ImageSpec.from_project(workspace)
    with pytest.raises(SpecError) as e:
        spec.image_name()
    message = str(e.value)
    assert str(workspace / "uv.lock") in message and str(helper) in message
    assert "attrs" in message and "run `uv lock`" in message
    with pytest.raises(SpecError, match="out of date"):
        dockerfile(spec)
    run_tool([str(UV), "lock", "--quiet"], workspace)  # what the message says to do
    assert spec.image_name()


def test_a_changed_version_in_the_root_is_stale_too(workspace: Path) -> None:
    root = workspace / "pyproject.toml"
    root.write_text(root.read_text().replace("six==1.16.0", "six==1.17.0"))
    with pytest.raises(SpecError, match=r"it asks for six==1\.17\.0; the lock has six==1\.16\.0"):
        ImageSpec.from_project(workspace).image_name()


def test_a_project_without_a_lock(workspace: Path) -> None:
    (workspace / "uv.lock").unlink()
    with pytest.raises(SpecError, match=r"has no uv\.lock or poetry\.lock .*run `uv lock`"):
        ImageSpec.from_project(workspace).image_name()


def test_a_missing_project(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"project: .*does not exist"):
        ImageSpec(project=str(tmp_path / "nowhere")).image_name()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"pyproject\.toml: does not exist"):
        ImageSpec(project=str(tmp_path / "empty")).image_name()


def test_a_pyproject_that_is_not_toml(workspace: Path) -> None:
    (workspace / "pyproject.toml").write_text('[project]\nname = "app"\nversion = 0.1.0"\n')
    with pytest.raises(SpecError, match=r"pyproject\.toml:3:\d+: not a valid pyproject\.toml"):
        ImageSpec.from_project(workspace).image_name()


def test_a_lock_that_is_not_a_lock(workspace: Path) -> None:
    (workspace / "uv.lock").write_text("version = 1\npackage = 3\n")
    with pytest.raises(SpecError, match=r"uv\.lock:2:\d+: not a valid uv\.lock: invalid type"):
        ImageSpec.from_project(workspace).image_name()


def test_a_path_dependency_outside_the_project_needs_a_source_root_holding_it(tmp_path: Path) -> None:
    write(
        tmp_path / "repo/shared/pyproject.toml",
        '[project]\nname = "shared"\nversion = "1.0"\ndependencies = []\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
    )
    write(tmp_path / "repo/shared/src/shared/__init__.py", "")
    app = tmp_path / "repo/app"
    write(
        app / "pyproject.toml",
        '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.9"\ndependencies = ["shared"]\n'
        '[tool.uv.sources]\nshared = { path = "../shared" }\n',
    )
    run_tool([str(UV), "lock", "--quiet"], app)
    with pytest.raises(SpecError, match=r"repo/shared is a local package of the project .* set source_root"):
        ImageSpec.from_project(app).image_name()
    with pytest.raises(SpecError, match=r"repo/shared lies outside source_root .*/repo/app"):
        ImageSpec.from_project(app, source_root=str(app), source_copy_mode="NO_COPY").image_name()
    spec = ImageSpec.from_project(app, source_root=str(tmp_path / "repo"), source_copy_mode="NO_COPY")
    before = spec.tag
    text = dockerfile(spec)
    assert "cd /tmp/imagespec/project/app\\n" in text  # the project's place among the copied files
    (tmp_path / "repo/shared/src/shared/__init__.py").write_text("X = 1\n")
    assert spec.tag != before


def test_a_fresh_poetry_lock_is_taken_and_a_stale_one_refused(poetry: Path) -> None:
    spec = ImageSpec.from_project(poetry)
    assert spec.python_version == HERE if HERE != "3.9" and HERE != "3.10" else True
    before = spec.tag
    (poetry / "lib/src/lib1/__init__.py").write_text("VALUE = 2\n")  # the path dependency's files count
    assert spec.tag != before
    pyproject = poetry / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.16.0"', '"six==1.17.0"'))
    with pytest.raises(
        SpecError, match=r"poetry\.lock is out of date with .*pyproject\.toml.*run `poetry lock`"
    ):
        spec.image_name()
    poetry_lock(poetry)
    assert spec.image_name()


def test_install_project_needs_a_package(tmp_path: Path) -> None:
    root = tmp_path / "virtual"
    write(
        root / "pyproject.toml",
        '[project]\nname = "v"\nversion = "0"\nrequires-python = ">=3.9"\ndependencies = ["six"]\n',
    )
    run_tool([str(UV), "lock", "--quiet"], root)
    assert ImageSpec.from_project(root).tag  # dependencies only: fine without a build system
    with pytest.raises(
        SpecError, match="project_install_mode: install_project needs a project that is a package"
    ):
        ImageSpec.from_project(root, install_project=True).image_name()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("overrides", [">=2"], r"overrides\[0\]: \">=2\" names no package"),
        ("overrides", [""], r"overrides\[0\]: is empty"),
        ("constraints", ["==1.0"], r"constraints\[0\]: \"==1.0\" names no package"),
        ("constraints", ["six<2\nrm -rf /"], r"constraints\[0\]: .* contains a line break"),
        ("project_install_mode", "everything", r"project_install_mode: \"everything\" is not a mode"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, match: str, workspace: Path) -> None:
    spec = ImageSpec(project=str(workspace), **{field: value})
    with pytest.raises(SpecError, match=match):
        spec.image_name()


def test_a_mode_without_a_project() -> None:
    with pytest.raises(SpecError, match="project_install_mode: applies to a project"):
        ImageSpec(project_install_mode="install_project").image_name()


def test_constraints_bound_versions_and_overrides_carry_no_credentials() -> None:
    with pytest.raises(SpecError, match=r"constraints\[0\]: .* names a URL"):
        dockerfile(ImageSpec(packages=["six"], constraints=["six @ https://example.com/six.whl"]))
    with pytest.raises(SpecError, match=r"overrides\[0\]: carries credentials") as e:
        dockerfile(ImageSpec(packages=["six"], overrides=["six @ https://user:s3cret@example.com/six.whl"]))
    assert "s3cret" not in str(e.value)


def test_overrides_and_constraints_enter_the_tag_and_unset_ones_change_nothing() -> None:
    plain = ImageSpec(packages=["attrs"])
    assert ImageSpec(packages=["attrs"], overrides=[], constraints=[]).tag == plain.tag
    tags = {
        plain.tag,
        ImageSpec(packages=["attrs"], overrides=["six==1.15.0"]).tag,
        ImageSpec(packages=["attrs"], constraints=["six==1.15.0"]).tag,
        ImageSpec(packages=["attrs"], overrides=["six==1.16.0"]).tag,
    }
    assert len(tags) == 4


def test_yaml_keys(workspace: Path, tmp_path: Path) -> None:
    spec = ImageSpec.from_project(
        workspace, install_project=True, overrides=["packaging==24.0"], constraints=["six<2"]
    )
    path = tmp_path / "image.yaml"
    spec.to_yaml(path)
    text = path.read_text()
    for key in ("project:", "project_install_mode: install_project", "overrides:", "constraints:"):
        assert key in text
    again = ImageSpec.from_yaml(path)
    assert again.image_name() == spec.image_name()


def test_positional_arguments_stop_at_flytekits_fields() -> None:
    with pytest.raises(TypeError, match="takes from 0 to 29 positional arguments"):
        ImageSpec(*([None] * 30))


def test_the_cli_takes_a_projects_pyproject(workspace: Path) -> None:
    import subprocess

    cli = [sys.executable, "-m", "imagespec"]
    out = subprocess.run([*cli, "tag", str(workspace / "pyproject.toml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [ImageSpec.from_project(workspace).image_name()]
    (workspace / "uv.lock").unlink()
    out = subprocess.run([*cli, "tag", str(workspace / "pyproject.toml")], capture_output=True, text=True)
    assert out.returncode == 1 and "has no uv.lock or poetry.lock" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_member_linked_out_of_the_project_is_refused(workspace: Path, tmp_path: Path) -> None:
    # The attack: a workspace member that is a link to a folder of this machine (~/.ssh).
    secret = tmp_path / "home" / ".ssh"
    write(secret / "id_ed25519", "PRIVATE KEY\n")
    write(
        secret / "pyproject.toml",
        '[project]\nname = "helper"\nversion = "0.2.0"\ndependencies = ["packaging>=24"]\n',
    )
    member = workspace / "packages" / "helper"
    shutil.rmtree(member)
    member.symlink_to(secret, target_is_directory=True)
    spec = ImageSpec.from_project(workspace)
    with pytest.raises(
        SourceError, match=r"project: .*packages/helper: is a symlink .* leads to .*\.ssh, outside"
    ):
        spec.image_name()
    with pytest.raises(SourceError):
        dockerfile(spec)


def test_a_lock_with_credentials_needs_buildkit(workspace: Path) -> None:
    # Without BuildKit the project's files are copied into a layer, where a token would stay.
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + '\n[[tool.uv.index]]\nurl = "https://user:t0ken@pypi.example.com/simple"\n'
    )
    spec = ImageSpec.from_project(workspace)
    assert "FROM" in dockerfile(spec)  # BuildKit mounts the files for the install step only
    with pytest.raises(Exception, match="holds a URL with credentials") as e:
        dockerfile(spec, buildkit=False, engine="docker-legacy")
    assert "t0ken" not in str(e.value)
