"""Running task calls in their own images with the local Docker engine (``imagespec run --in-containers``).

While a ``ContainerRunner`` is active, calling a task runs exactly its template's command in its
image, ``{{.input}}`` a pickle of the call's keyword arguments and ``{{.outputPrefix}}`` the folder
the task writes ``outputs.pkl`` to, both under ``/imagespec-io/NNN-<function>`` in the container's
own file system, never in a folder of the host. Each call is ``docker create -- IMAGE <command>``,
``docker cp`` of a tar holding the inputs into it, ``docker start -a``, ``docker cp`` of the output
out of it (a tar read from the pipe), then ``docker rm -f``. So no other local user can read a
call's inputs or outputs, or put a pickle of its own where the host loads one: the data passes
through the engine's API only (root's and the docker group's), never through a shared folder.
The workflow's body runs on the host, so each output is unpickled here: its type must be
importable on the host too, and the host trusts what the image's code returns: loading a pickle
runs code, so an image whose code is hostile runs code as the host user. Run images you trust.

When the image does not hold the task's module (a spec without ``source_root``), the module and
its local imports are shipped as flytekit's fast registration ships them (see ``_ship``): a
private read-only copy (in a 0700 folder), mounted read-only at ``/imagespec-code`` and named by
``IMAGESPEC_CODE_DIR``; the image is not changed.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from imagespec import _core
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
INPUT_FILE = "inputs.pkl"
#: How long the engine may take to copy a call's data in or out, or remove its container.
ENGINE_TIMEOUT = 300


class TaskRunError(ImageSpecError):
    """A task call failed in its container."""


def docker_cli() -> str:
    """The docker client the engine adapter uses (``$IMAGESPEC_DOCKER``, else one on PATH)."""
    return str(_core.docker_client())


def inputs_archive(call: str, kwargs: dict[str, Any]) -> bytes:
    """A tar of ``imagespec-io/CALL/inputs.pkl`` for ``docker cp - CONTAINER:/``. The call folder is
    0777 as the image's user (uid 1000 in imagespec images, any in others) writes its output
    there; it exists only in the container's own file system. Entries belong to root there (docker
    cp sets the owner), so the inputs are read-only to the task."""
    data = pickle.dumps(kwargs)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in ((IO_MOUNT.lstrip("/"), 0o755), (f"{IO_MOUNT.lstrip('/')}/{call}", 0o777)):
            folder = tarfile.TarInfo(name)
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, mode, int(time.time())
            tar.addfile(folder)
        entry = tarfile.TarInfo(f"{IO_MOUNT.lstrip('/')}/{call}/{INPUT_FILE}")
        entry.size, entry.mode, entry.mtime = len(data), 0o444, int(time.time())
        tar.addfile(entry, io.BytesIO(data))
    return buf.getvalue()


def checked_image(task: Task, template: dict[str, Any]) -> str:
    """The template's image, refused when docker would read it as an option (``--privileged``,
    ``--volume=/:/host``): it goes after ``--`` too, but such a value is no image, so say so."""
    image = template["image"]
    if not isinstance(image, str) or not image.strip() or image.startswith("-"):
        raise TaskRunError(
            f"task {task.name}: its container_image {image!r} is not an image reference "
            "(a name such as registry/repository:tag); fix the task's container_image"
        )
    return image


class ContainerRunner:
    """A context manager: task calls made inside it run in containers."""

    def __init__(self, on_line: Callable[[str], object] | None = None, docker: str | None = None) -> None:
        self.docker = docker or docker_cli()
        self.on_line = on_line
        self.calls = 0
        self._active = False
        self._previous: TaskRunner | None = None
        # One copy per import root and set of files: a module imported during the run ships anew.
        self._bundles: dict[tuple[str, tuple[str, ...]], CodeBundle] = {}

    def __enter__(self) -> ContainerRunner:
        self._active = True
        self._previous = set_runner(self.run)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        set_runner(self._previous)
        self._active = False
        for bundle in self._bundles.values():
            bundle.close()
        self._bundles.clear()

    def _say(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(line)

    def create_argv(
        self, task: Task, template: dict[str, Any], call: str, code: Path | None = None
    ) -> list[str]:
        """The ``docker create`` command of one call: the template's command, placeholders filled;
        with ``code``, that folder mounted read-only where ``imagespec.execute`` looks for it."""
        image = checked_image(task, template)
        inner = f"{IO_MOUNT}/{call}"
        command = [
            part.replace(INPUT_PLACEHOLDER, f"{inner}/{INPUT_FILE}").replace(OUTPUT_PLACEHOLDER, inner)
            for part in template["command"]
        ]
        options: list[str] = []
        if code is not None:
            options += ["-v", f"{code}:{CODE_MOUNT}:ro", "-e", f"{CODE_DIR_VAR}={CODE_MOUNT}"]
        return [self.docker, "create", *options, "--", image, *command]

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

    def _engine(
        self,
        task: Task,
        what: str,
        argv: list[str],
        data: bytes | None = None,
        timeout: float | None = ENGINE_TIMEOUT,
    ) -> str:
        """Runs a docker command; its stdout, or TaskRunError with its last error line."""
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TaskRunError(f"task {task.name}: cannot run {self.docker} to {what}: {e}") from None
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
            raise TaskRunError(f"task {task.name}: {what} failed (exit {proc.returncode}): {lines[-1]}")
        return str(proc.stdout.decode(errors="replace").strip())

    def run(self, task: Task, kwargs: dict[str, Any]) -> Any:
        assert self._active, "ContainerRunner.run outside its with block"
        self.calls += 1
        call = f"{self.calls:03d}-{task.fn.__name__}"
        template = task.template()
        checked_image(task, template)  # before any code is shipped for it
        argv = self.create_argv(task, template, call, self.code_for(task))
        self._say(f"running  {task.name} in {template['image']}")
        started = time.monotonic()
        # No time limit: creating may pull the image first.
        printed = self._engine(task, f"create a container of {template['image']}", argv, timeout=None)
        container = (printed.splitlines() or [""])[-1].strip()
        if not container.isalnum():
            raise TaskRunError(
                f"task {task.name}: docker create printed {printed[-200:]!r}, not a container id"
            )
        try:
            copy_in = [self.docker, "cp", "-", f"{container}:/"]
            self._engine(task, "copy the inputs into its container", copy_in, inputs_archive(call, kwargs))
            code = self._start(task, container)
            seconds = time.monotonic() - started
            if code != 0:
                raise TaskRunError(
                    f"task {task.name} failed in {template['image']} (exit {code} after {seconds:.1f} s)"
                )
            result = self._output(task, template["image"], container, f"{IO_MOUNT}/{call}/{OUTPUT_FILE}")
        finally:
            self._remove(container)
        self._say(f"done     {task.name} in {seconds:.1f} s")
        return result

    def _remove(self, container: str) -> None:
        # Best effort, and never in the way of the error that brought us here.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [self.docker, "rm", "-f", container], capture_output=True, timeout=ENGINE_TIMEOUT, check=False
            )

    def _start(self, task: Task, container: str) -> int:
        """Starts the container attached (its output to our stderr); its exit code."""
        try:
            stdout: Any = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            stdout = None
        try:
            return subprocess.run(
                [self.docker, "start", "-a", container], stdout=stdout, check=False
            ).returncode
        except OSError as e:
            raise TaskRunError(f"task {task.name}: cannot run {self.docker}: {e}") from None

    def _output(self, task: Task, image: str, container: str, path: str) -> Any:
        """The task's return value: ``path`` copied out of the stopped container as a tar (through
        a pipe, onto no disk) and unpickled."""
        argv = [self.docker, "cp", f"{container}:{path}", "-"]
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise TaskRunError(f"task {task.name}: cannot run {self.docker}: {e}") from None
        assert proc.stdout is not None and proc.stderr is not None
        found = False
        result: Any = None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.name != OUTPUT_FILE or not member.isfile() or found:
                        continue
                    found = True
                    f = tar.extractfile(member)
                    assert f is not None
                    try:
                        result = pickle.load(f)
                    except Exception as e:
                        raise TaskRunError(
                            f"task {task.name}: its output cannot be loaded on the host (its types must be "
                            f"importable here too): {type(e).__name__}: {e}"
                        ) from None
        except tarfile.TarError:
            found = False
        finally:
            proc.stdout.read()
            error = proc.stderr.read().decode(errors="replace").strip()
            proc.wait()
        if not found:
            why = f" ({error.splitlines()[-1]})" if error and "not find" not in error.lower() else ""
            raise TaskRunError(f"task {task.name} wrote no {OUTPUT_FILE} in {image}{why}")
        return result
