"""Running task calls in their own images with the local Docker engine (``imagespec run --in-containers``).

While a ``ContainerRunner`` is active, calling a task runs exactly its template's command in its
image: ``docker run --rm -v IO:/imagespec-io IMAGE <command>``, with ``{{.input}}`` a pickle of
the call's keyword arguments and ``{{.outputPrefix}}`` the folder the task writes
``outputs.pkl`` to, both in IO, a temporary folder shared by every call (and removed at the end).
The workflow's body runs on the host, so each output is unpickled here: its type must be
importable on the host too.

When the image does not hold the task's module (a spec without ``source_root``), the module and
its local imports are shipped as flytekit's fast registration ships them (see ``_ship``): a
private read-only copy, mounted read-only at ``/imagespec-code`` and named by
``IMAGESPEC_CODE_DIR``; the image is not changed.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from imagespec._core import ImageSpecError
from imagespec._ship import CODE_MOUNT, CodeBundle, image_holds, import_root, is_installed, local_files
from imagespec._task import (
    CODE_DIR_VAR,
    INPUT_PLACEHOLDER,
    OUTPUT_FILE,
    OUTPUT_PLACEHOLDER,
    Task,
    TaskRunner,
    set_runner,
)

IO_MOUNT = "/imagespec-io"
DEFAULT_DOCKER = "/usr/bin/docker"


class TaskRunError(ImageSpecError):
    """A task call failed in its container."""


def docker_cli() -> str:
    """``$IMAGESPEC_DOCKER``, else ``/usr/bin/docker``."""
    return os.environ.get("IMAGESPEC_DOCKER") or DEFAULT_DOCKER


class ContainerRunner:
    """A context manager: task calls made inside it run in containers."""

    def __init__(self, on_line: Callable[[str], object] | None = None, docker: str | None = None) -> None:
        self.docker = docker or docker_cli()
        self.on_line = on_line
        self.calls = 0
        self.io: Path | None = None
        self._previous: TaskRunner | None = None
        # One copy per import root and set of files: a module imported during the run ships anew.
        self._bundles: dict[tuple[str, tuple[str, ...]], CodeBundle] = {}

    def __enter__(self) -> ContainerRunner:
        self.io = Path(tempfile.mkdtemp(prefix="imagespec-run-"))
        os.chmod(self.io, 0o777)  # the containers run as uid 1000
        self._previous = set_runner(self.run)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        set_runner(self._previous)
        if self.io is not None:
            shutil.rmtree(self.io, ignore_errors=True)
        for bundle in self._bundles.values():
            bundle.close()
        self._bundles.clear()

    def _say(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(line)

    def argv(self, template: dict[str, Any], call: str, code: Path | None = None) -> list[str]:
        """The ``docker run`` command of one call: the template's command, placeholders filled;
        with ``code``, that folder mounted read-only where ``imagespec.execute`` looks for it."""
        inner = f"{IO_MOUNT}/{call}"
        command = [
            part.replace(INPUT_PLACEHOLDER, f"{inner}/inputs.pkl").replace(OUTPUT_PLACEHOLDER, inner)
            for part in template["command"]
        ]
        options = ["-v", f"{self.io}:{IO_MOUNT}"]
        if code is not None:
            options += ["-v", f"{code}:{CODE_MOUNT}:ro", "-e", f"{CODE_DIR_VAR}={CODE_MOUNT}"]
        return [self.docker, "run", "--rm", *options, template["image"], *command]

    def code_for(self, task: Task) -> Path | None:
        """The folder of shipped code for a call of ``task``; None when its image holds its module
        (or the module is installed code, which the image must install)."""
        module = sys.modules.get(task.fn.__module__)
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or is_installed(file):
            return None
        name = task.module_name()
        root, rel = import_root(name, file)
        image = task.image()
        if image_holds(image, rel):
            return None
        files = tuple(local_files(root, sys.modules.values()))
        bundle = self._bundles.get((root, files))
        if bundle is None:
            bundle = CodeBundle(root, files)
            if ":" in str(bundle.path):  # docker -v splits at colons
                bundle.close()
                raise TaskRunError(f"the temporary folder {bundle.path} has a ':'; set TMPDIR to one without")
            self._bundles[(root, files)] = bundle
            shown = image if isinstance(image, str) else image.image_name()
            count = f"{len(files)} file{'' if len(files) == 1 else 's'}"
            self._say(
                f"shipping {name} and its local imports ({count} of {root}) read-only to {CODE_MOUNT}: "
                f"{shown} does not hold {rel}"
            )
        return bundle.path

    def run(self, task: Task, kwargs: dict[str, Any]) -> Any:
        assert self.io is not None, "ContainerRunner.run outside its with block"
        self.calls += 1
        call = f"{self.calls:03d}-{task.fn.__name__}"
        folder = self.io / call
        folder.mkdir()
        os.chmod(folder, 0o777)
        with open(folder / "inputs.pkl", "wb") as f:
            pickle.dump(kwargs, f)
        template = task.template()
        code = self.code_for(task)
        self._say(f"running  {task.name} in {template['image']}")
        started = time.monotonic()
        try:
            stdout: Any = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            stdout = None
        try:
            proc = subprocess.run(self.argv(template, call, code), stdout=stdout, check=False)
        except OSError as e:
            raise TaskRunError(f"task {task.name}: cannot run {self.docker}: {e}") from None
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise TaskRunError(
                f"task {task.name} failed in {template['image']} "
                f"(exit {proc.returncode} after {seconds:.1f} s)"
            )
        out = folder / OUTPUT_FILE
        if not out.is_file():
            raise TaskRunError(f"task {task.name} wrote no {OUTPUT_FILE} in {template['image']}")
        try:
            with open(out, "rb") as f:
                result = pickle.load(f)
        except Exception as e:
            raise TaskRunError(
                f"task {task.name}: its output cannot be loaded on the host (its types must be importable "
                f"here too): {type(e).__name__}: {e}"
            ) from None
        self._say(f"done     {task.name} in {seconds:.1f} s")
        return result
