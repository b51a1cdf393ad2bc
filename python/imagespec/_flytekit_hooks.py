"""flytekit takes imagespec's ``ImageSpec`` wherever it takes its own: ``@flytekit.task(container_image=
spec)`` with no ``to_flytekit()``. See docs/flytekit.md, "Our ImageSpec in flytekit".

flytekit has no hook for other image types: it tests ``isinstance(image, flytekit.ImageSpec)`` at
every use (copy handling, runtime packages, dynamic tasks' image lists, the build) and passes
anything else on as an image name. Patching each use would be a dozen functions; instead, the one
attribute each task class keeps its image in gets a data descriptor that hands flytekit
``spec.to_flytekit()`` the first time flytekit reads it, so every reader, flytekit's or a
plugin's, sees a flytekit spec, converted at serialisation (a local run never converts). Pod
template containers keep theirs in a Kubernetes object, resolved by one function, which is
wrapped. Where flytekit takes an image name only (``with_overrides``), our spec is refused when
given, with what to do. Each patch is made once (idempotent), keeps what it replaces, and one
that cannot be made is a warning: ``import flytekit`` never breaks.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any, Callable

from imagespec import _core
from imagespec._spec import ImageSpec

# (module, class, attribute it keeps the image in, the parameter users pass it as). Subclasses
# share these: @task, @dynamic, @eager, map tasks (their task's), PythonInstanceTask, SQL tasks.
TASK_IMAGES = (
    ("flytekit.core.python_auto_container", "PythonAutoContainerTask", "_container_image", "container_image"),
    (
        "flytekit.core.python_customized_container_task",
        "PythonCustomizedContainerTask",
        "_container_image",
        "container_image",
    ),
    ("flytekit.core.container_task", "ContainerTask", "_image", "image"),
)
# flytekit.core.node.Node.with_overrides(container_image=...) is typed str; a flytekit.ImageSpec
# there fails only when the node is turned into protobuf, with "bad argument type".
NAME_ONLY = (("flytekit.core.node", "Node", "_container_image", "with_overrides(container_image=...)"),)
# Every image, pod template containers' included, becomes a name here (flytekit.core.utils
# imports it from this module at each call).
RESOLVER = ("flytekit.core.python_auto_container", "get_registerable_container_image")


def _owner_name(obj: object) -> str:
    try:
        return str(obj.name)  # type: ignore[attr-defined]
    except Exception:  # a task still in its __init__ has no name yet
        return type(obj).__name__


def convert(spec: ImageSpec, where: str) -> Any:
    """``spec.to_flytekit()``, or ``SpecError`` saying where the spec was given and why it cannot be."""
    from imagespec._flytekit import to_flytekit

    try:
        return to_flytekit(spec)
    except _core.SpecError as e:
        raise _core.SpecError(f"{where}: imagespec cannot give this ImageSpec to flytekit: {e}") from e


class _Stored:
    """An attribute kept in the instance's ``__dict__`` under flytekit's own name."""

    def __init__(self, attribute: str, parameter: str) -> None:
        self.attribute = attribute
        self.parameter = parameter

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.attribute]
        except KeyError:
            raise AttributeError(self.attribute) from None

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__[self.attribute] = value


class TaskImage(_Stored):
    """The attribute a flytekit task class keeps its image in.

    It holds what the task was given; read, an imagespec ``ImageSpec`` is converted (once: the
    flytekit spec is kept, so flytekit's own changes to it, such as the ``source_root`` a non-fast
    registration adds, stay, as they do for a ``flytekit.ImageSpec`` given directly).
    """

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        value = super().__get__(obj, owner)
        if obj is not None and isinstance(value, ImageSpec):
            value = convert(value, f"flytekit task {_owner_name(obj)}: {self.parameter}")
            obj.__dict__[self.attribute] = value
        return value


class NameOnly(_Stored):
    """An attribute where flytekit takes an image name only: our spec is refused when set."""

    def __set__(self, obj: object, value: Any) -> None:
        if isinstance(value, ImageSpec):
            raise TypeError(
                f"{self.parameter}: flytekit takes an image name (a string) here, not an ImageSpec "
                f"(neither imagespec's nor its own), and builds nothing for it; got {value!r}. Give the "
                "spec to the task (@task(container_image=spec)), or pass the name of an image that "
                "exists, e.g. spec.image_name() after imagespec.build([spec])"
            )
        super().__set__(obj, value)


def _resolver(original: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(original)
    def get_registerable_container_image(img: Any, cfg: Any) -> str:
        if isinstance(img, ImageSpec):
            img = convert(img, "pod template container image")
        return original(img, cfg)

    get_registerable_container_image.imagespec_hook = True  # type: ignore[attr-defined]
    return get_registerable_container_image


def _put(module: str, cls_name: str, descriptor: TaskImage | NameOnly) -> None:
    cls = getattr(importlib.import_module(module), cls_name)
    current = cls.__dict__.get(descriptor.attribute)
    if isinstance(current, type(descriptor)):
        return  # installed before
    if current is not None:
        kind = type(current).__name__
        raise RuntimeError(f"{cls_name}.{descriptor.attribute} is a {kind}, not a plain attribute")
    setattr(cls, descriptor.attribute, descriptor)


def _wrap_resolver() -> None:
    module = importlib.import_module(RESOLVER[0])
    original = getattr(module, RESOLVER[1])
    if not getattr(original, "imagespec_hook", False):
        setattr(module, RESOLVER[1], _resolver(original))


def install() -> bool:
    """Makes flytekit take our ``ImageSpec`` (idempotent). True when every patch is in place;
    each one that cannot be made is a warning instead."""
    patches: list[tuple[str, Callable[[], None]]] = [
        (f"{c}({p}=...)", functools.partial(_put, m, c, TaskImage(a, p))) for m, c, a, p in TASK_IMAGES
    ]
    patches += [(p, functools.partial(_put, m, c, NameOnly(a, p))) for m, c, a, p in NAME_ONLY]
    patches.append(("pod template containers", _wrap_resolver))
    ok = True
    for where, patch in patches:
        try:
            patch()
        except Exception as e:
            warnings.warn(
                f"imagespec: flytekit will not take imagespec's ImageSpec at {where} ({e}); "
                "pass spec.to_flytekit() there",
                stacklevel=2,
            )
            ok = False
    return ok


def installed() -> dict[str, bool]:
    """Which patches are in place (for diagnostics and tests)."""
    out: dict[str, bool] = {}
    for module, cls_name, attribute, _ in (*TASK_IMAGES, *NAME_ONLY):
        cls = getattr(importlib.import_module(module), cls_name, None)
        out[f"{cls_name}.{attribute}"] = isinstance(
            getattr(cls, "__dict__", {}).get(attribute), (TaskImage, NameOnly)
        )
    fn = getattr(importlib.import_module(RESOLVER[0]), RESOLVER[1], None)
    out[RESOLVER[1]] = bool(getattr(fn, "imagespec_hook", False))
    return out
