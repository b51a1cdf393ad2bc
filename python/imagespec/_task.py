"""Tasks and workflows: ``@task``, ``@workflow``, ``Resources``, the default image and discovery.

A task is a Python function bound to the image it runs in. Called in Python it is the function
(a workflow calls its tasks as plain Python); ``template()`` says what a cluster (or
``imagespec run --in-containers``) runs instead: the image's real name and the command that calls
the task inside it.

>>> from imagespec import ImageSpec, Resources, task, workflow
>>> @task(container_image="python:3.11-slim", requests=Resources(cpu="1", mem="1Gi"))
... def double(x: int) -> int:
...     return 2 * x
>>> @workflow
... def wf(x: int = 3) -> int:
...     return double(x=double(x=x))
>>> wf()
12
>>> double.image_name()
'python:3.11-slim'
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, Union, cast, overload

from imagespec._core import SpecError
from imagespec._spec import ImageSpec

if TYPE_CHECKING:
    from types import ModuleType

F = TypeVar("F", bound=Callable[..., Any])
Image = Union[ImageSpec, str]

DEFAULT_IMAGE_VAR = "IMAGESPEC_DEFAULT_IMAGE"
INPUT_PLACEHOLDER = "{{.input}}"
OUTPUT_PLACEHOLDER = "{{.outputPrefix}}"
OUTPUT_FILE = "outputs.pkl"
# Set by `imagespec run --in-containers` when it ships the task's code: the folder, mounted
# read-only, that `imagespec.execute` puts first on sys.path (and PYTHONPATH).
CODE_DIR_VAR = "IMAGESPEC_CODE_DIR"

# Kubernetes quantities: a decimal number with an optional binary (Ki..Ei) or decimal suffix.
_QUANTITY = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|K|M|G|T|P|E)?$")
_CPU = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)m?$")
_COUNT = re.compile(r"^\d+$")
_FIELDS = ("cpu", "mem", "gpu", "ephemeral_storage")


def _quantity(field: str, value: object) -> str | None:
    """The value as the string a task template carries, or SpecError naming the field."""
    if value is None:
        return None
    shown = f"Resources.{field}: {value!r}"
    if isinstance(value, bool):
        raise SpecError(f"{shown} is a bool, not a quantity")
    if field == "gpu":
        if isinstance(value, int) and value >= 0:
            return str(value)
        if isinstance(value, str) and _COUNT.match(value.strip()):
            return value.strip()
        raise SpecError(f"{shown} is not a whole number of GPUs (e.g. 1 or '2')")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise SpecError(f"{shown} must be a finite number >= 0")
        return str(value)
    if not isinstance(value, str):
        raise SpecError(f"{shown} is a {type(value).__name__}, not a quantity")
    text = value.strip()
    if field == "cpu":
        if not _CPU.match(text):
            raise SpecError(f"{shown} is not a CPU quantity (e.g. '1', '0.5', '500m' or 2)")
    elif not _QUANTITY.match(text):
        raise SpecError(f"{shown} is not a quantity (e.g. '512Mi', '1Gi', '1G' or a number of bytes)")
    return text


class Resources:
    """CPU, memory, GPUs and ephemeral storage, as flytekit's ``Resources`` takes them.

    ``cpu``: ``"1"``, ``"500m"``, ``1``, ``0.5``; ``mem`` and ``ephemeral_storage``: ``"1Gi"``,
    ``"512Mi"``, ``"1G"`` or a number of bytes; ``gpu``: a whole number. Values are kept as the
    strings a task template carries. A malformed quantity raises ``SpecError`` naming the field.

    >>> Resources(cpu="500m", mem="1Gi")
    Resources(cpu='500m', mem='1Gi')
    >>> Resources(cpu=1) == Resources(cpu="1")
    True
    """

    __slots__ = _FIELDS

    cpu: str | None
    mem: str | None
    gpu: str | None
    ephemeral_storage: str | None

    def __init__(
        self,
        cpu: str | float | None = None,
        mem: str | int | None = None,
        gpu: str | int | None = None,
        ephemeral_storage: str | int | None = None,
    ) -> None:
        for field, value in zip(_FIELDS, (cpu, mem, gpu, ephemeral_storage)):
            object.__setattr__(self, field, _quantity(field, value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Resources is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Resources is immutable")

    def to_dict(self) -> dict[str, str]:
        """The set fields, as strings (flytekit's names)."""
        return {f: v for f in _FIELDS if (v := getattr(self, f)) is not None}

    def __repr__(self) -> str:
        return f"Resources({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in _FIELDS))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Resources, tuple(getattr(self, f) for f in _FIELDS))


# The default image

_default_image: Image | None = None


def set_default_image(image: Image | str | os.PathLike[str] | None) -> None:
    """Sets the image of tasks declared without ``container_image``: an ``ImageSpec``, an image
    reference, or a path to a spec YAML file (``.yaml``/``.yml``). ``None`` restores the default
    (``$IMAGESPEC_DEFAULT_IMAGE``, else ``ImageSpec()``)."""
    global _default_image
    _default_image = None if image is None else _as_image(image, "set_default_image")


def _as_image(value: object, where: str) -> Image:
    if isinstance(value, ImageSpec):
        return value
    if isinstance(value, os.PathLike) or (
        isinstance(value, str) and value.endswith((".yaml", ".yml")) and os.path.isfile(value)
    ):
        return ImageSpec.from_yaml(os.fspath(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise SpecError(f"{where}: {value!r} is not an ImageSpec, an image reference or a spec YAML file")


def default_image() -> Image:
    """The image of tasks without ``container_image``: what ``set_default_image`` set, else
    ``$IMAGESPEC_DEFAULT_IMAGE`` (a reference or a spec YAML file), else ``ImageSpec()`` (Python
    of this interpreter's version, ``python:X.Y-slim``, with imagespec installed; no registry)."""
    if _default_image is not None:
        return _default_image
    env = os.environ.get(DEFAULT_IMAGE_VAR, "").strip()
    if env:
        return _as_image(env, DEFAULT_IMAGE_VAR)
    return ImageSpec()


# Image overrides (`--image NAME=SPEC.yaml`): declared spec → the one to use instead.
_OVERRIDES: dict[ImageSpec, ImageSpec] = {}


def override_image(declared: ImageSpec, replacement: ImageSpec | None) -> None:
    """Tasks declared with ``declared`` use ``replacement`` instead (None: undo)."""
    if replacement is None:
        _OVERRIDES.pop(declared, None)
    else:
        _OVERRIDES[declared] = replacement


def resolve_image(declared: Image | None) -> Image:
    """The image a task declared with ``declared`` runs in (default image and overrides applied)."""
    if declared is None:
        return default_image()
    if isinstance(declared, ImageSpec):
        return _OVERRIDES.get(declared, declared)
    return declared


def image_name(image: Image) -> str:
    return image.image_name() if isinstance(image, ImageSpec) else image


# The runner: None calls tasks as plain Python; `imagespec run --in-containers` sets one.
TaskRunner = Callable[["Task", dict[str, Any]], Any]
_runner: TaskRunner | None = None


def set_runner(runner: TaskRunner | None) -> TaskRunner | None:
    """Installs how task calls run (None: as plain Python); returns the previous runner."""
    global _runner
    previous, _runner = _runner, runner
    return previous


class _Entity:
    fn: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"{type(self).__name__.lower()} decorates a function, not {fn!r}")
        object.__setattr__(self, "fn", fn)
        functools.update_wrapper(cast("Callable[..., Any]", self), fn)

    @property
    def name(self) -> str:
        """``module.function``, as flytekit names tasks and workflows."""
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults applied (TypeError as a call would raise)."""
        import inspect

        bound = inspect.signature(self.fn).bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)


class Task(_Entity):
    """A function bound to the image it runs in. Made by ``@task``."""

    container_image: Image | None
    requests: Resources | None
    limits: Resources | None
    retries: int
    cache: bool
    cache_version: str

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        container_image: Image | None = None,
        requests: Resources | None = None,
        limits: Resources | None = None,
        retries: int = 0,
        cache: bool = False,
        cache_version: str = "",
    ) -> None:
        where = f"task {getattr(fn, '__qualname__', fn)!s}"
        if container_image is not None and not isinstance(container_image, (ImageSpec, str)):
            raise SpecError(
                f"{where}: container_image must be an ImageSpec or an image name, not {container_image!r}"
            )
        if isinstance(container_image, str) and not container_image.strip():
            raise SpecError(f"{where}: container_image is empty")
        for field, value in (("requests", requests), ("limits", limits)):
            if value is not None and not isinstance(value, Resources):
                raise SpecError(f"{where}: {field} must be Resources(...), not {value!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise SpecError(f"{where}: retries must be a whole number >= 0, not {retries!r}")
        if not isinstance(cache, bool):
            raise SpecError(f"{where}: cache must be True or False, not {cache!r}")
        if not isinstance(cache_version, str):
            raise SpecError(f"{where}: cache_version must be a string, not {cache_version!r}")
        super().__init__(fn)
        self.container_image = container_image
        self.requests = requests
        self.limits = limits
        self.retries = retries
        self.cache = cache
        self.cache_version = cache_version

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _runner is None:
            return self.fn(*args, **kwargs)
        return _runner(self, self.bind(args, kwargs))

    def image(self) -> Image:
        """The image this task runs in: its ``container_image`` (or the default image), overrides applied."""
        return resolve_image(self.container_image)

    def image_name(self) -> str:
        """The full name of that image: for a spec, ``spec.image_name()`` (after a build, the name
        the builder reported); a reference as given."""
        return image_name(self.image())

    def module_name(self) -> str:
        """The module the container imports to find this task: the function's module, or for a
        script run as ``__main__``, the script's file name without ``.py``."""
        module = self.fn.__module__
        if module == "__main__":
            import sys

            main_file = getattr(sys.modules.get("__main__"), "__file__", None) or "__main__"
            module = os.path.splitext(os.path.basename(main_file))[0]
        return module

    def command(self) -> list[str]:
        """What runs this task inside its image (with the template's placeholders)."""
        return [
            "python",
            "-m",
            "imagespec.execute",
            "--module",
            self.module_name(),
            "--task",
            self.fn.__qualname__,
            "--inputs",
            INPUT_PLACEHOLDER,
            "--output-prefix",
            OUTPUT_PLACEHOLDER,
        ]

    def template(self) -> dict[str, Any]:
        """The task as flytekit's task template puts it: name, image, command, resources, retries, cache."""
        return {
            "name": self.name,
            "image": self.image_name(),
            "command": self.command(),
            "resources": {
                "requests": self.requests.to_dict() if self.requests else {},
                "limits": self.limits.to_dict() if self.limits else {},
            },
            "retries": self.retries,
            "cache": {"enabled": self.cache, "version": self.cache_version},
        }

    def __repr__(self) -> str:
        return f"Task({self.name}, container_image={self.container_image!r})"


class Workflow(_Entity):
    """A function that calls tasks (and other workflows). Made by ``@workflow``; calling it runs it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def tasks(self) -> list[Task]:
        """The tasks it calls: those its function (or a sub-workflow) refers to by name."""
        found: dict[int, Task] = {}
        _referenced(self.fn, found, set())
        return list(found.values())

    def __repr__(self) -> str:
        return f"Workflow({self.name})"


def _referenced(fn: Callable[..., Any], found: dict[int, Task], seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    scope: Mapping[str, Any] = getattr(fn, "__globals__", {})
    values: list[Any] = []
    stack = [code]
    while stack:
        c = stack.pop()
        values.extend(scope[n] for n in c.co_names if n in scope)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    for cell in getattr(fn, "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            values.append(cell.cell_contents)
    for value in values:
        if isinstance(value, Task):
            found.setdefault(id(value), value)
        elif isinstance(value, Workflow):
            _referenced(value.fn, found, seen)


@overload
def task(fn: F, /) -> Task: ...


@overload
def task(
    fn: None = None,
    /,
    *,
    container_image: Image | None = None,
    requests: Resources | None = None,
    limits: Resources | None = None,
    retries: int = 0,
    cache: bool = False,
    cache_version: str = "",
) -> Callable[[F], Task]: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    container_image: Image | None = None,
    requests: Resources | None = None,
    limits: Resources | None = None,
    retries: int = 0,
    cache: bool = False,
    cache_version: str = "",
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Makes a function a task, bare (``@task``) or with arguments (``@task(container_image=...)``)."""
    options: dict[str, Any] = {
        "container_image": container_image,
        "requests": requests,
        "limits": limits,
        "retries": retries,
        "cache": cache,
        "cache_version": cache_version,
    }
    if fn is not None:
        return Task(fn, **options)
    return lambda f: Task(f, **options)


@overload
def workflow(fn: F, /) -> Workflow: ...


@overload
def workflow(fn: None = None, /) -> Callable[[F], Workflow]: ...


def workflow(fn: Callable[..., Any] | None = None, /) -> Workflow | Callable[[Callable[..., Any]], Workflow]:
    """Makes a function a workflow, bare (``@workflow``) or as ``@workflow()``."""
    if fn is not None:
        return Workflow(fn)
    return Workflow


def discover(module: ModuleType) -> tuple[list[Task], list[Workflow]]:
    """The tasks and workflows a module defines (or imports) at module level, each once, in order."""
    tasks: dict[int, Task] = {}
    workflows: dict[int, Workflow] = {}
    for value in vars(module).values():
        if isinstance(value, Task):
            tasks.setdefault(id(value), value)
        elif isinstance(value, Workflow):
            workflows.setdefault(id(value), value)
    return list(tasks.values()), list(workflows.values())


def tasks_of(entities: Iterable[Task | Workflow]) -> list[Task]:
    """The tasks of ``entities``: a task itself, a workflow's tasks; each once, in order."""
    out: dict[int, Task] = {}
    for entity in entities:
        for t in [entity] if isinstance(entity, Task) else entity.tasks():
            out.setdefault(id(t), t)
    return list(out.values())


def images_needed(entities: Iterable[Task | Workflow]) -> list[Image]:
    """The images the tasks of ``entities`` run in (default image and overrides applied), each once."""
    out: list[Image] = []
    for t in tasks_of(entities):
        image = t.image()
        if image not in out:
            out.append(image)
    return out
