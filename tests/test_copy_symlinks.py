"""A `copy` entry that is a symlink, or lies in a linked folder, leading outside the spec's folder is
refused (docs/security.md, item 6; docs/source-selection.md): otherwise a project, or a YAML spec,
that only names `copy: [data]` would pull any file of the building machine (`~/.ssh/id_ed25519`,
`/etc/shadow`) into an image that is then pushed. A link that stays inside the folder is followed,
and links inside a copied folder are copied as links, as before.

flytekit follows every link here: `shutil.copy` of the entry and `shutil.copytree` (which copies
what links point at) of a folder (flytekit/image_spec/default_builder.py:446-450 at v1.16.24); the
difference is listed in docs/flytekit.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagespec import ImageSpec, SourceError, write_context

SECRET = "host-only: root:$6$secrethash:19000:0:99999:7:::\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder, and beside it (outside it) a host folder with a file no image may get."""
    host = tmp_path / "host"
    (host / "ssh").mkdir(parents=True)
    (host / "shadow").write_text(SECRET)
    (host / "ssh" / "id_ed25519").write_text(SECRET)
    proj = tmp_path / "proj"
    (proj / "releases" / "v2").mkdir(parents=True)
    (proj / "releases" / "v2" / "app.cfg").write_text("v2\n")
    monkeypatch.chdir(proj)
    return proj


def leaked(tmp_path: Path, spec: ImageSpec) -> bool:
    """Whether the build context of `spec` holds the host file's content (a link in it is only a
    name: the engine copies it as a link)."""
    built = write_context(spec, tmp_path / f"ctx-{len(list(tmp_path.iterdir()))}")
    files = [built.context / f for f in built.files if f != "Dockerfile"]
    return any(SECRET.encode() in f.read_bytes() for f in files if not f.is_symlink())


@pytest.mark.parametrize(
    ("link", "target", "entry"),
    [
        ("shadow", "host/shadow", "shadow"),  # the entry is a link to a file
        ("dotssh", "host/ssh", "dotssh"),  # the entry is a link to a folder
        ("keys", "host/ssh", "keys/id_ed25519"),  # a folder on the entry's path is a link
        ("conf", "../host/shadow", "conf"),  # a relative link climbing out
    ],
)
def test_a_link_out_of_the_folder_is_refused(
    project: Path, tmp_path: Path, link: str, target: str, entry: str
) -> None:
    to = target if target.startswith("..") else str(tmp_path / target)
    (project / link).symlink_to(to)
    spec = ImageSpec(python_version="3.11", copy=[entry])
    with pytest.raises(SourceError, match="outside the spec's folder") as e:
        spec.tag  # noqa: B018
    message = str(e.value)
    assert message.startswith("copy: ") and str(project / entry) in message
    assert "absolute path" in message  # what to do when the file is really wanted
    with pytest.raises(SourceError, match="outside the spec's folder"):
        leaked(tmp_path, spec)


def test_a_link_to_a_system_file_is_refused(project: Path) -> None:
    (project / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(SourceError, match=r"leads to /etc/passwd, outside the spec's folder"):
        ImageSpec(python_version="3.11", copy=["passwd"]).tag  # noqa: B018


def test_the_same_file_named_by_its_absolute_path_is_taken(project: Path, tmp_path: Path) -> None:
    """Naming a host file outright is a decision of the spec's author, not a surprise of a link."""
    spec = ImageSpec(python_version="3.11", copy=[str(tmp_path / "host" / "shadow")])
    assert leaked(tmp_path, spec)


def test_links_inside_the_folder_are_followed(project: Path, tmp_path: Path) -> None:
    (project / "current").symlink_to("releases/v2")
    (project / "cfg").symlink_to(project / "releases" / "v2" / "app.cfg")
    spec = ImageSpec(python_version="3.11", copy=["current", "cfg"])
    built = write_context(spec, tmp_path / "ctx")
    assert (built.context / "copy" / "current" / "app.cfg").read_text() == "v2\n"
    assert (built.context / "copy" / "cfg").read_text() == "v2\n"


def test_links_inside_a_copied_folder_stay_links(project: Path, tmp_path: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "shadow").symlink_to(tmp_path / "host" / "shadow")
    built = write_context(ImageSpec(python_version="3.11", copy=["data"]), tmp_path / "ctx")
    inside = built.context / "copy" / "data" / "shadow"
    assert inside.is_symlink() and os.readlink(inside) == str(tmp_path / "host" / "shadow")
    assert not leaked(tmp_path, ImageSpec(python_version="3.11", copy=["data"]))
