"""flytekit's tasks and workflows as `imagespec build` and `imagespec run` see them: which a module
defines, the tasks a workflow runs, and the image each runs in (a flytekit spec converted as the
bridge builds it). flytekit is imported only when the module being read imported it."""

from __future__ import annotations

import sys
from typing import Any

from imagespec import _core
from imagespec._flytekit import _fk_image_spec_module, _import, from_flytekit
from imagespec._spec import ImageSpec


def loaded() -> bool:
    """Whether flytekit is imported in this process. ``imagespec build FILE`` looks for flytekit
    tasks only then, so that a module without flytekit never pays for importing it."""
    return "flytekit" in sys.modules


def _fk_types() -> tuple[Any, Any, Any, Any, Any]:
    """(PythonTask, WorkflowBase, LaunchPlan, BranchNode, ImageSpec) of the imported flytekit."""
    return (
        _import("flytekit.core.base_task").PythonTask,
        _import("flytekit.core.workflow").WorkflowBase,
        _import("flytekit.core.launch_plan").LaunchPlan,
        _import("flytekit.core.condition").BranchNode,
        _fk_image_spec_module().ImageSpec,
    )


def is_flytekit_object(value: object) -> bool:
    """Whether ``value`` is an instance of a flytekit class (a task, workflow, launch plan, spec...)."""
    module = type(value).__module__ or ""
    return module == "flytekit" or module.startswith("flytekit.")


def is_task(value: object) -> bool:
    """A flytekit task (``@flytekit.task``, a map task, a ``ContainerTask``...)."""
    return loaded() and isinstance(value, _fk_types()[0])


def is_workflow(value: object) -> bool:
    """A flytekit workflow (``@flytekit.workflow`` or an imperative one)."""
    return loaded() and isinstance(value, _fk_types()[1])


def is_image_spec(value: object) -> bool:
    """A ``flytekit.ImageSpec``."""
    return loaded() and isinstance(value, _fk_types()[4])


def discover(module: Any) -> tuple[list[Any], list[Any]]:
    """The flytekit tasks and workflows a module defines (or imports) at module level, each once,
    in order; none when flytekit is not imported (the module did not import it)."""
    if not loaded():
        return [], []
    tasks: dict[int, Any] = {}
    workflows: dict[int, Any] = {}
    for value in vars(module).values():
        if is_task(value):
            tasks.setdefault(id(value), value)
        elif is_workflow(value):
            workflows.setdefault(id(value), value)
    return list(tasks.values()), list(workflows.values())


def tasks_of(entities: list[Any]) -> list[Any]:
    """The flytekit tasks of ``entities`` (tasks and workflows): a task itself; a workflow's nodes,
    through sub-workflows, launch plans (their workflow), map tasks (the mapped task) and
    conditional branches. Each once, in order."""
    python_task, workflow_base, launch_plan, branch_node, _ = _fk_types()
    found: dict[int, Any] = {}
    seen: set[int] = set()

    def visit(entity: Any) -> None:
        if entity is None or id(entity) in seen:
            return
        seen.add(id(entity))
        if isinstance(entity, python_task):
            mapped = getattr(entity, "python_function_task", None)
            if isinstance(mapped, python_task):  # a map task: the task it maps runs in its image
                visit(mapped)
            else:
                found.setdefault(id(entity), entity)
        elif isinstance(entity, workflow_base):
            for node in entity.nodes:
                visit(node.flyte_entity)
        elif isinstance(entity, launch_plan):
            visit(entity.workflow)
        elif isinstance(entity, branch_node):
            block = entity._ifelse_block
            nodes = [block.case.then_node, *[c.then_node for c in block.other or ()], block.else_node]
            for node in nodes:
                if node is not None:
                    visit(node.flyte_entity)

    for entity in entities:
        visit(entity)
    return list(found.values())


def _declared_image(task: Any) -> tuple[bool, Any]:
    """(whether the task runs in a container image at all, the image it declares)."""
    if hasattr(task, "container_image"):  # @task, @dynamic, ... (PythonAutoContainerTask)
        return True, task.container_image
    if hasattr(task, "_image"):  # ContainerTask
        return True, task._image
    return False, None


def _resources(spec: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in ("cpu", "mem", "gpu", "ephemeral_storage"):
        value = getattr(spec, field, None)
        if value is not None:
            out[field] = str(value)
    return out


class FlytekitTask:
    """A flytekit task as ``imagespec build`` sees it: its name and the image it runs in.

    ``container_image`` is what the task declares, converted: a ``flytekit.ImageSpec`` becomes
    ``ImageSpec.from_flytekit(spec, add_flytekit=True)`` (the image the flytekit bridge builds for
    it, with the same tag; an imagespec spec is converted with ``to_flytekit()`` first, as flytekit
    takes it), a string stays an image reference (nothing to build), and None means
    flytekit's default image (``default`` when ``--image SPEC.yaml`` replaces it). Anything else
    raises ``SpecError``. ``flytekit_spec`` is the flytekit spec it was converted from.

    >>> import flytekit  # doctest: +SKIP
    >>> @flytekit.task(container_image="python:3.11-slim")  # doctest: +SKIP
    ... def t() -> None: ...
    >>> FlytekitTask(t).image_name()  # doctest: +SKIP
    'python:3.11-slim'
    """

    def __init__(self, task: Any) -> None:
        self.task = task
        self.name: str = str(task.name)
        self.flytekit_spec: Any = None
        self.default: ImageSpec | str | None = None
        _, image = _declared_image(task)
        self.container_image: ImageSpec | str | None
        where = f"flytekit task {self.name}: container_image"
        if isinstance(image, ImageSpec):  # flytekit's hooks are not installed: convert as they would
            from imagespec._flytekit_hooks import convert

            image = convert(image, where)
        if image is None:
            self.container_image = None
        elif isinstance(image, str):
            if not image.strip():
                raise _core.SpecError(f"{where} is empty")
            self.container_image = image.strip()
        elif is_image_spec(image):
            try:
                self.container_image = from_flytekit(image, add_flytekit=True)
            except (_core.SpecError, TypeError, ValueError) as e:
                raise _core.SpecError(f"{where}: cannot convert its flytekit ImageSpec: {e}") from e
            self.flytekit_spec = image
        else:
            raise _core.SpecError(
                f"{where} is a {type(image).__name__} ({image!r}), which imagespec cannot convert: give an "
                "ImageSpec (imagespec's or flytekit's) or an image name"
            )

    def uses(self, declared: object) -> bool:
        """Whether the task was declared with ``declared``: the same ``flytekit.ImageSpec``, or an
        imagespec spec whose ``to_flytekit()`` it is."""
        if self.flytekit_spec is None:
            return False
        if isinstance(declared, ImageSpec):
            return bool(from_flytekit(self.flytekit_spec) == declared)
        return bool(self.flytekit_spec is declared or self.flytekit_spec == declared)

    def image(self) -> ImageSpec | str:
        """The image it runs in: its converted ``container_image`` (``--image NAME=...`` applied),
        else ``default``, else flytekit's default image (a reference)."""
        from imagespec._task import resolve_image

        if self.container_image is not None:
            return resolve_image(self.container_image)
        if self.default is not None:
            return self.default
        return str(_import("flytekit.configuration").DefaultImages.default_image())

    def image_name(self) -> str:
        """The full name of that image (after a build, the name the builder reported)."""
        image = self.image()
        return image.image_name() if isinstance(image, ImageSpec) else image

    def template(self) -> dict[str, Any]:
        """Like ``Task.template()``: name, image, command (flytekit's ``pyflyte-execute``),
        resources, retries, cache; ``"flytekit": True``."""
        command: list[str] | None = None
        if hasattr(self.task, "get_default_command"):
            configuration = _import("flytekit.configuration")
            settings = configuration.SerializationSettings(
                image_config=configuration.ImageConfig.auto_default_image()
            )
            command = [str(w) for w in self.task.get_default_command(settings)]
        elif getattr(self.task, "_cmd", None) is not None:
            command = [str(w) for w in self.task._cmd]
        resources = getattr(self.task, "resources", None)
        metadata = getattr(self.task, "metadata", None)
        return {
            "name": self.name,
            "image": self.image_name(),
            "command": command,
            "resources": {
                "requests": _resources(getattr(resources, "requests", None)),
                "limits": _resources(getattr(resources, "limits", None)),
            },
            "retries": int(getattr(metadata, "retries", 0) or 0),
            "cache": {
                "enabled": bool(getattr(metadata, "cache", False)),
                "version": str(getattr(metadata, "cache_version", "") or ""),
            },
            "flytekit": True,
        }

    def __repr__(self) -> str:
        return f"FlytekitTask({self.name}, container_image={self.container_image!r})"


def image_tasks(tasks: list[Any]) -> list[FlytekitTask]:
    """``FlytekitTask``s of the flytekit tasks that run in a container image."""
    return [FlytekitTask(t) for t in tasks if _declared_image(t)[0]]


def flytekit_ids(spec: ImageSpec, fk_spec: Any) -> dict[ImageSpec, str]:
    """``{spec: fk_spec.id}`` and the same for their base specs: what ``build(flytekit_ids=...)``
    takes for an image converted from ``fk_spec``."""
    out = {spec: str(fk_spec.id)}
    if isinstance(spec.base_image, ImageSpec) and is_image_spec(fk_spec.base_image):
        out.update(flytekit_ids(spec.base_image, fk_spec.base_image))
    return out
