"""Shipping a task's code into its container at run time (``imagespec run --in-containers``).

A spec without ``source_root`` (flytekit users' usual spec) builds an image without the task's
module: flytekit ships the code separately (fast registration, a tarball of the loaded local
modules unpacked by ``pyflyte-fast-execute`` at task start). We do the same for a local run: the
files of the task module's local imports, picked as flytekit picks them, copied into a private,
read-only folder that is mounted read-only into the container, and the in-container entry point
puts that folder first on ``sys.path`` (``IMAGESPEC_CODE_DIR``). The image and its id are unchanged.

An image *holds* a module when the file that ``import MODULE`` would load inside it is in the
image: the spec's own file selection (``source_root`` and ``copy``, exactly the files its tag
hashes, which land in ``/root``, the image's working directory and ``PYTHONPATH``) has a file at the
module's path relative to its import root (``wf.py`` for ``wf``, ``pkg/wf.py`` for ``pkg.wf``), in
the image or in a base spec's image. Because the tag hashes those files, the image under that name
holds exactly them: no engine or registry needs to be asked. An image given by reference is
opaque, so its tasks always get the shipped code.
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from imagespec._core import ImageSpecError
from imagespec._spec import ImageSpec

CODE_MOUNT = "/imagespec-code"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ShipError(ImageSpecError):
    """A task's code cannot be shipped into its container."""


def _module_file(module: ModuleType) -> str | None:
    # The instance dict, not attribute access: a lazily loaded module would import itself.
    try:
        path = object.__getattribute__(module, "__dict__").get("__file__")
    except AttributeError:
        return None
    return os.path.abspath(path) if isinstance(path, str) else None


def import_root(module_name: str, file: str) -> tuple[str, str]:
    """``(root, rel)``: the folder on ``sys.path`` that ``module_name`` is imported from, and the
    module file's path relative to it (``/src/pkg/wf.py`` as ``pkg.wf`` → ``("/src", "pkg/wf.py")``)."""
    path = Path(os.path.abspath(file))
    parts = module_name.split(".")
    # A package is its __init__ file; an extension module's name has its ABI tag after a dot.
    names = [*parts, path.name] if path.name.split(".")[0] == "__init__" else [*parts[:-1], path.name]
    folders = list(path.parents)
    depth = len(names) - 1
    if (
        path.name.split(".")[0] not in (parts[-1], "__init__")
        or depth >= len(folders)
        or [f.name for f in reversed(folders[:depth])] != names[:-1]
    ):
        raise ShipError(
            f"module {module_name!r} is loaded from {file}, which is not at the path its name gives "
            "under any folder, so it cannot be imported by that name in a container; import it by "
            "its package path (or run its file with `imagespec run FILE`)"
        )
    return str(folders[depth]), "/".join(names)


def _within(file: str, folder: str) -> bool:
    try:
        return os.path.commonpath([file, folder]) == folder
    except ValueError:  # different drives, or a relative path among absolute ones
        return False


def _installed_folders() -> list[str]:
    """Where installed code lives (flytekit's list, with imagespec's package for flytekit's)."""
    folders = [_PACKAGE_DIR, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    try:
        folders.append(site.getusersitepackages())
        folders.extend(site.getsitepackages())
    except AttributeError:  # a virtualenv's old site.py lacks them
        pass
    return [os.path.abspath(f) for f in folders if f]


def local_files(root: str, modules: Iterable[ModuleType]) -> list[str]:
    """The files to ship for a module imported from ``root``: every loaded module's file under
    ``root`` that is not installed code (flytekit's LOADED_MODULES rule,
    ``flytekit/tools/script_mode.py:202``), plus the ``__init__.py`` of each package folder between
    ``root`` and those files, so the packages import as on the host. Absolute paths, sorted."""
    root = os.path.abspath(root)
    installed = _installed_folders()
    found: set[str] = set()
    for module in list(modules):
        file = _module_file(module)
        if file is None or not _within(file, root):
            continue
        if any(_within(file, folder) for folder in installed):
            continue
        if os.path.isfile(file):
            found.add(file)
    for file in list(found):
        folder = os.path.dirname(file)
        while folder != root and _within(folder, root):
            init = os.path.join(folder, "__init__.py")
            if os.path.isfile(init):
                found.add(init)
            folder = os.path.dirname(folder)
    return sorted(found)


def is_installed(file: str) -> bool:
    """True for a file of installed code (site-packages, the Python installation, imagespec)."""
    return any(_within(os.path.abspath(file), folder) for folder in _installed_folders())


def image_holds(image: ImageSpec | str, rel: str) -> bool:
    """True when the image built from ``image`` has ``/root/<rel>`` from its own file selection (or
    its base spec's); False for an image given by reference, which cannot be looked into."""
    spec: object = image
    while isinstance(spec, ImageSpec):
        files = spec.tag_inputs().get("files") or {}
        if f"source/{rel}" in files or f"copy/{rel}" in files:
            return True
        spec = spec.base_image
    return False


class CodeBundle:
    """A private, read-only copy of ``files`` (all under ``root``), laid out as under ``root``.

    ``path`` is the folder to mount: inside a fresh ``mkdtemp`` folder (mode 0700, so no other
    local user reaches it), folders 0555 and files 0444, so neither the owner's processes by
    accident nor the container (uid 1000, through a read-only mount) can change the code it runs.
    A copy, not a mount of the working tree: what runs is what was shipped, even if the tree is
    edited during the run, and nothing else of the tree is exposed."""

    def __init__(self, root: str, files: Iterable[str]) -> None:
        self.root = os.path.abspath(root)
        self.files = sorted(os.path.relpath(os.path.abspath(f), self.root) for f in files)
        for rel in self.files:
            if rel.startswith("..") or os.path.isabs(rel):
                raise ShipError(f"{rel}: not under the shipped root {self.root}")
        self._private = Path(tempfile.mkdtemp(prefix="imagespec-code-"))
        self.path = self._private / "code"
        try:
            self._copy()
        except BaseException:
            self.close()
            raise

    def _copy(self) -> None:
        self.path.mkdir(mode=0o700)
        folders = {self.path}
        for rel in self.files:
            target = self.path / rel
            for parent in reversed(target.relative_to(self.path).parents[:-1]):
                folder = self.path / parent
                if folder not in folders:
                    folder.mkdir(mode=0o700)
                    folders.add(folder)
            try:
                with open(os.path.join(self.root, rel), "rb") as src:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            except OSError as e:
                raise ShipError(f"cannot ship {os.path.join(self.root, rel)}: {e.strerror or e}") from None
            os.chmod(target, 0o444)
        # Deepest first: a folder made read-only cannot take entries any more.
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            os.chmod(folder, 0o555)

    def close(self) -> None:
        """Removes the copy (folders are made writable again first, for a non-root owner)."""
        if not self._private.exists():
            return
        for dirpath, dirnames, _ in os.walk(self._private):
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(self._private, ignore_errors=True)
