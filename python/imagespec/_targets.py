"""What an `imagespec` command's FILE [ENTITY] names: spec files, Python modules and their specs,
tasks and workflows (ours and flytekit's), the images those need, and the `--image`,
`--registry`, `--platform` and `--no-push` options applied to them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union

from imagespec import _core, _pyflyte
from imagespec._spec import ImageSpec

if TYPE_CHECKING:
    from imagespec._flytekit_tasks import FlytekitTask
    from imagespec._task import Task

    AnyTask = Union[Task, FlytekitTask]


class UsageError(Exception):
    """Bad usage: exit 2 with the message."""


def import_file(path: Path) -> ModuleType:
    """Imports a Python file as `python FILE` would (its folder first on `sys.path`)."""
    import importlib.util

    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    if module_spec is None or module_spec.loader is None:
        raise _core.SpecError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[path.stem] = module
    try:
        module_spec.loader.exec_module(module)
    except _core.ImageSpecError:
        raise
    except BaseException as e:
        raise _core.SpecError(f"{path}: importing it failed: {type(e).__name__}: {e}") from e
    return module


def specs_of_module(module: ModuleType) -> list[tuple[str, ImageSpec]]:
    found: dict[ImageSpec, str] = {}
    for name, value in vars(module).items():
        if isinstance(value, ImageSpec) and value not in found:
            found[value] = name
    return [(name, spec) for spec, name in found.items()]


SPEC_SUFFIXES = (".yaml", ".yml")
# A project's files: the image of its locked dependencies (ImageSpec.from_project).
PROJECT_FILES = ("pyproject.toml", "uv.lock", "poetry.lock")


def _check_target(target: str) -> Path:
    """A CLI argument that must be a Python file, a spec YAML file or a project's pyproject.toml;
    else SpecError saying what it is."""
    path = Path(target)
    wanted = "give a spec YAML file, a Python file or a project's pyproject.toml"
    if path.is_dir():
        raise _core.SpecError(f"{target}: a folder, not a file; {wanted}")
    if not path.is_file():
        raise _core.SpecError(f"{target}: no such file; {wanted}")
    if path.suffix != ".py" and path.suffix.lower() not in SPEC_SUFFIXES and path.name not in PROJECT_FILES:
        raise _core.SpecError(
            f"{target}: not a Python file (.py), a spec YAML file (.yaml, .yml) or a pyproject.toml; {wanted}"
        )
    return path


def _script_spec(path: Path) -> list[tuple[str, ImageSpec]]:
    """A Python file that defines no image, as a PEP 723 script: its block's spec, or none."""
    try:
        return [(path.stem, ImageSpec.from_script(path))]
    except _core.SpecError as e:
        if "no `# /// script` metadata block" in str(e):
            return []
        raise


def _import_or_script(path: Path) -> ModuleType | list[tuple[str, ImageSpec]]:
    """The module of a Python file; or, when importing it fails for a missing module and it has a
    PEP 723 block, that block's spec: a script's dependencies are what its image installs, so
    they need not be installed here."""
    try:
        return import_file(path)
    except _core.SpecError as e:
        if isinstance(e.__cause__, ImportError):
            script = _script_spec(path)
            if script:
                return script
        raise


def load_specs(target: str) -> list[tuple[str, ImageSpec]]:
    """Specs named by a CLI argument: a YAML spec file, a Python file (its module-level specs, or
    when it defines none, its PEP 723 block's) or a project's pyproject.toml."""
    path = _check_target(target)
    if path.name in PROJECT_FILES:
        return [(path.parent.name or "project", ImageSpec.from_project(path))]
    if path.suffix == ".py":
        module = _import_or_script(path)
        if isinstance(module, list):
            return module
        specs = specs_of_module(module) or _script_spec(path)
        if not specs:
            raise _core.SpecError(
                f"{target}: defines no ImageSpec at module level and has no `# /// script` block"
            )
        return specs
    return [(path.stem, ImageSpec.from_yaml(path))]


# Tasks and workflows: `build FILE [ENTITY]`, `run FILE ENTITY`, `--image`


def _flytekit_bridge() -> ModuleType | None:
    """``imagespec._flytekit_tasks`` when flytekit is imported (the user's module imported it), else
    None: a module without flytekit costs nothing more."""
    if "flytekit" not in sys.modules:
        return None
    from imagespec import _flytekit_tasks

    return _flytekit_tasks


def entity_named(module: ModuleType, name: str, path: Path, flytekit: bool = False) -> Any:
    """The task or workflow ``name`` of the module: ours, or with ``flytekit`` also flytekit's
    (when the module imported flytekit)."""
    from imagespec._task import discover

    tasks, workflows = discover(module)
    _flytekit = _flytekit_bridge()
    fk_tasks, fk_workflows = _flytekit.discover(module) if flytekit and _flytekit else ([], [])
    entities = [*tasks, *workflows, *fk_tasks, *fk_workflows]
    value = getattr(module, name, None)
    if value is not None and any(value is e for e in entities):
        return value
    if _flytekit is not None and value is not None and _flytekit.is_flytekit_object(value):
        kind = type(value).__name__
        if not flytekit:
            raise UsageError(
                f"{path}: {name!r} is a flytekit {kind}; imagespec run runs imagespec tasks and "
                "workflows (run flytekit's with pyflyte run)"
            )
        hint = ""
        workflow: Any = getattr(value, "workflow", None)
        if workflow is not None and _flytekit.is_workflow(workflow):
            hint = f"; name its workflow ({workflow.name})"
        raise UsageError(f"{path}: {name!r} is a flytekit {kind}, not a task or workflow{hint}")
    names = [n for n, v in vars(module).items() if any(v is e for e in entities)]
    known = ", ".join(names) if names else "none"
    raise UsageError(f"{path}: no task or workflow named {name!r} (its tasks and workflows: {known})")


def apply_image_options(
    module: ModuleType, options: Sequence[str], tasks: Sequence[AnyTask], specs: list[tuple[str, ImageSpec]]
) -> None:
    """`--image SPEC.yaml` (the default image) and `--image NAME=SPEC.yaml` (the spec bound to the
    module-level variable NAME); `specs` (the module's) are updated. flytekit tasks count too: a
    flytekit ImageSpec variable, or the `to_flytekit()` of ours. A value that is no file is an
    image reference, as pyflyte's `--image` takes: `REF` (or `default=REF`) is the default image,
    `NAME=REF` a named image of flytekit's ImageConfig, which nothing here builds or uses."""
    from imagespec._task import Task, override_image, set_default_image

    ours = [t for t in tasks if isinstance(t, Task)]
    theirs = [t for t in tasks if not isinstance(t, Task)]
    defaults: list[str] = []
    for option in options:
        name, sep, file = option.partition("=")
        if not sep:
            name, file = "", option
        elif not name:
            raise UsageError(f"--image {option}: give SPEC.yaml, NAME=SPEC.yaml or an image reference")
        reference = not file.lower().endswith(SPEC_SUFFIXES) and not Path(file).is_file()
        if name in ("", "default") if reference else not name:
            defaults.append(option)
            if len(defaults) > 1:  # flytekit/configuration/__init__.py:290
                raise UsageError(f"--image: only one default image can be given ({', '.join(defaults)})")
        if reference:
            problem = _pyflyte.image_reference_error(file)
            if problem:
                raise UsageError(f"--image {option}: {problem}; or give a spec YAML file")
            if name in ("", "default"):
                set_default_image(file)
                for fk_task in theirs:
                    fk_task.default = file
            continue
        if name and not name.isidentifier():
            raise UsageError(f"--image {option}: give SPEC.yaml or NAME=SPEC.yaml (NAME a module variable)")
        spec = ImageSpec.from_yaml(file)
        if not name:
            if not any(t.container_image is None for t in tasks):
                raise UsageError(f"--image {option}: no task uses the default image")
            set_default_image(spec)
            for fk_task in theirs:
                fk_task.default = spec
            continue
        declared = getattr(module, name, None)
        _flytekit = _flytekit_bridge()
        if not isinstance(declared, ImageSpec) and not (_flytekit and _flytekit.is_image_spec(declared)):
            known = ", ".join(label for label, _ in specs) or "none"
            raise UsageError(
                f"--image {option}: the module has no ImageSpec named {name!r} (its images: {known})"
            )
        mine = [t for t in ours if isinstance(declared, ImageSpec) and t.container_image == declared]
        converted = [t for t in theirs if t.uses(declared)]
        if not mine and not converted:
            raise UsageError(f"--image {option}: no task uses the image {name!r}")
        replaced = {t.container_image for t in converted if isinstance(t.container_image, ImageSpec)}
        if isinstance(declared, ImageSpec):
            override_image(declared, spec)
            replaced.add(declared)
        for old in replaced:
            override_image(old, spec)
        specs[:] = [(label, spec if s in replaced else s) for label, s in specs]


class Targets:
    """What `build FILE [ENTITY]` builds: the specs (labelled), the plain references its tasks run
    in (nothing to build), the tasks (ours and flytekit's) and, for the images of flytekit specs,
    flytekit's ids (see `imagespec.build`)."""

    def __init__(
        self,
        specs: list[tuple[str, ImageSpec]],
        refs: list[str],
        tasks: list[AnyTask],
        flytekit_ids: dict[ImageSpec, str],
    ) -> None:
        self.specs = specs
        self.refs = refs
        self.tasks = tasks
        self.flytekit_ids = flytekit_ids


def _flytekit_module_specs(module: ModuleType, _flytekit: ModuleType) -> list[tuple[str, ImageSpec, Any]]:
    """The module-level flytekit ImageSpecs, converted as the bridge builds them: (label, ours, theirs)."""
    from imagespec._flytekit import from_flytekit

    out: list[tuple[str, ImageSpec, Any]] = []
    for name, value in vars(module).items():
        if _flytekit.is_image_spec(value) and not any(v is value for _, _, v in out):
            try:
                converted = from_flytekit(value, add_flytekit=True)
            except (_core.SpecError, TypeError, ValueError) as e:
                raise _core.SpecError(f"{name}: cannot convert this flytekit ImageSpec: {e}") from e
            out.append((name, converted, value))
    return out


def _images_of_file(path: Path, entity: str | None, image_options: Sequence[str], fast: bool) -> Targets:
    """The images FILE [ENTITY] needs: its tasks' (ours and, when the module imported flytekit,
    flytekit's, as `pyflyte build [--fast]` serialises them), and without ENTITY the module-level
    specs too."""
    from imagespec._task import Task, default_image, discover, tasks_of

    module = _import_or_script(path)
    if isinstance(module, list):
        if entity is not None:
            raise UsageError(f"{path}: a script (its imports are not installed here) has no task {entity!r}")
        return Targets(module, [], [], {})
    _flytekit = _flytekit_bridge()  # after the import: the module may have imported flytekit
    module_specs = specs_of_module(module)
    fk_ids: dict[ImageSpec, str] = {}
    if _flytekit is not None:
        for label, converted, fk_spec in _flytekit_module_specs(module, _flytekit):
            module_specs.append((label, converted))
            fk_ids.update(_flytekit.flytekit_ids(converted, fk_spec))
    fk_entities: list[Any]
    if entity is not None:
        target = entity_named(module, entity, path, flytekit=True)
        is_fk = _flytekit is not None and _flytekit.is_flytekit_object(target)
        tasks: list[AnyTask] = [] if is_fk else list(tasks_of([target]))
        fk_entities = [target] if is_fk else []
    else:
        found_tasks, workflows = discover(module)
        tasks = list(tasks_of([*found_tasks, *workflows]))
        fk_tasks, fk_workflows = _flytekit.discover(module) if _flytekit else ([], [])
        fk_entities = [*fk_tasks, *fk_workflows]
    if fk_entities and _flytekit is not None:
        for fk_task in _flytekit.image_tasks(_flytekit.tasks_of(fk_entities)):
            tasks.append(fk_task)
            if fk_task.flytekit_spec is not None and isinstance(fk_task.container_image, ImageSpec):
                fk_ids.update(_flytekit.flytekit_ids(fk_task.container_image, fk_task.flytekit_spec))
    apply_image_options(module, image_options, tasks, module_specs)
    if _flytekit is not None:
        moved = _pyflyte.serialise([t for t in tasks if not isinstance(t, Task)], path, fast)
        for new, fk_spec in moved.values():
            fk_ids.update(_flytekit.flytekit_ids(new, fk_spec))
        module_specs = [(label, moved[s][0] if s in moved else s) for label, s in module_specs]
    specs: list[tuple[str, ImageSpec]] = [] if entity is not None else list(module_specs)
    refs: list[str] = []
    labels = {s: label for label, s in module_specs}
    default = default_image()
    for t in tasks:
        image = t.image()
        if isinstance(image, str):
            if image not in refs:
                refs.append(image)
        elif all(image != s for _, s in specs):
            label = labels.get(image) or ("default" if image == default else "image")
            specs.append((label, image))
    if not specs and not refs and entity is None:
        specs = _script_spec(path)
    if not specs and not refs:
        what = f"{entity!r} runs no task" if entity else "defines no ImageSpec, task or workflow"
        raise _core.SpecError(f"{path}: {what}" + ("" if entity else " and has no `# /// script` block"))
    return Targets(specs, refs, tasks, fk_ids)


def build_targets(args: argparse.Namespace) -> Targets:
    path = _check_target(args.target)
    if path.suffix == ".py" and path.name not in PROJECT_FILES:
        targets = _images_of_file(path, args.entity, args.image or (), args.fast)
        for ref in targets.refs:
            print(f"image    {ref}: a reference, not built", file=sys.stderr)
        return retargeted(args, targets)
    if args.entity is not None or args.image:
        raise UsageError(f"{args.target}: ENTITY and --image need a Python file")
    return retargeted(args, Targets(load_specs(args.target), [], [], {}))


def _retarget(spec: ImageSpec, registry: str | None, clear_registry: bool, platform: str | None) -> ImageSpec:
    """``spec`` (and its base specs) pushed elsewhere or built for another platform."""
    changes: dict[str, Any] = {}
    if isinstance(spec.base_image, ImageSpec):
        changes["base_image"] = _retarget(spec.base_image, registry, clear_registry, platform)
    if clear_registry:
        changes["registry"] = None
    elif registry is not None:
        changes["registry"] = registry
    if platform is not None:
        changes["platform"] = platform
    changed = spec.replace(**changes) if changes else spec
    return changed.force_push() if spec.is_force_push and not changed.is_force_push else changed


def _moved_ids(old: ImageSpec, new: ImageSpec, ids: dict[ImageSpec, str], out: dict[ImageSpec, str]) -> None:
    """flytekit's id follows an image moved to another registry (same content, same id of ours);
    a different platform makes another image, which is not the declared spec's."""
    if old in ids and old.id == new.id:
        out[new] = ids[old]
    if isinstance(old.base_image, ImageSpec) and isinstance(new.base_image, ImageSpec):
        _moved_ids(old.base_image, new.base_image, ids, out)


def retargeted(args: argparse.Namespace, targets: Targets) -> Targets:
    """`--registry`, `--platform` and `--no-push` applied to the specs, and to the tasks that run
    in them (so their templates name the images that are built)."""
    registry, platform, clear = args.registry, args.platform, not args.push
    if registry is None and platform is None and not clear:
        return targets
    from imagespec._task import Task, default_image, override_image, set_default_image

    specs = targets.specs
    out = [(label, _retarget(spec, registry, clear, platform)) for label, spec in specs]
    moved = {old: new for (_, old), (_, new) in zip(specs, out)}
    ids: dict[ImageSpec, str] = {}
    for old, new in moved.items():
        _moved_ids(old, new, targets.flytekit_ids, ids)
    default = default_image()
    for t in targets.tasks:
        declared = t.container_image
        current = t.image()
        if not isinstance(current, ImageSpec) or current not in moved:
            continue
        if declared is None and isinstance(t, Task) and current == default:
            set_default_image(moved[current])
        elif declared is None and not isinstance(t, Task):
            t.default = moved[current]
        elif isinstance(declared, ImageSpec):
            override_image(declared, moved[current])
    return Targets(out, targets.refs, targets.tasks, ids)
