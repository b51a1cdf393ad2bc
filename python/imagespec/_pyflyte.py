"""`pyflyte build`'s options for `imagespec build`, and what its serialisation does to image specs.

`pyflyte build [OPTIONS] FILE ENTITY` (flytekit/clis/sdk_in_container/build.py) takes flytekit's
`BuildParams`: `RunLevelParams` (flytekit/clis/sdk_in_container/run.py), made for `pyflyte run`,
plus `--fast`. It serialises ENTITY, which builds the ImageSpecs its tasks run in, and reads only
`--project`, `--domain` and `--fast` to do so (build.py:39-45); `--image` is parsed (a YAML file
given there is built as a side effect), the other options configure a remote execution that
`pyflyte build` never starts. So `imagespec build` accepts them all, with the same arity and the
same value checks (a bad value is a usage error, as click's is), and uses `--fast` and `--image`.

`--fast` decides whether serialisation gives a flytekit ImageSpec the project's source
(flytekit/core/python_auto_container.py:403, `update_image_spec_copy_handling`): without it, a spec
that sets no `source_copy_mode` gets the project root as `source_root` (unless it has one) and
`LOADED_MODULES`. `serialise` does that to copies of the flytekit tasks' specs, with flytekit's
own function, so the image is the one `pyflyte build` would have our builder build.
"""

from __future__ import annotations

import argparse
import functools
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagespec._spec import ImageSpec

if TYPE_CHECKING:
    from imagespec._flytekit_tasks import FlytekitTask

# click's BoolParamType (click 8): what `--interruptible` takes.
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}
# flytekit.Resources' fields: the keys `--resource-requests` and `--resource-limits` take.
_RESOURCE_KEYS = ("cpu", "mem", "gpu", "ephemeral_storage")

NO_EFFECT = "no effect here"


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid integer") from None


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    known = ", ".join(sorted(_TRUE | _FALSE))
    raise argparse.ArgumentTypeError(f"{text!r} is not a valid boolean (recognized values: {known})")


def _key_value(text: str) -> str:
    # flytekit/interaction/click_types.py:66 (key_value_callback)
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key-value pair of the form key=value, got {text!r}")
    return text


def _resources(text: str) -> str:
    # flytekit/interaction/click_types.py:89 (resource_callback)
    seen: set[str] = set()
    for item in text.split(",") if text else ():
        parts = item.split("=")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(
                f"expected comma separated key-value pairs of the form 'key1=value1,key2=value2,...', "
                f"got {item!r}"
            )
        key = parts[0].strip()
        if key not in _RESOURCE_KEYS:
            raise argparse.ArgumentTypeError(
                f"expected key to be one of {list(_RESOURCE_KEYS)}, but got {key!r}"
            )
        if key in seen:
            raise argparse.ArgumentTypeError(f"expected unique keys, but got {key!r} multiple times")
        seen.add(key)
    return text


def _copy_choice(text: str) -> str:
    if text.lower() not in ("all", "auto"):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of 'all', 'auto'")
    return text.lower()


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """pyflyte build's options other than `--image` (which `imagespec build` has already)."""
    group = parser.add_argument_group(
        "pyflyte build options",
        "Accepted so that a pyflyte build command line works unchanged. --fast decides whether the images "
        "of flytekit tasks get the project's source; the others configure a remote execution, which a "
        f"build never starts: {NO_EFFECT} (values are checked as pyflyte checks them).",
    )
    group.add_argument(
        "--fast",
        action="store_true",
        help="flytekit tasks' images without the project's source (pyflyte build --fast); without it, a "
        "flytekit ImageSpec with no source_copy_mode gets the project root (the first folder up from FILE "
        "without __init__.py) and LOADED_MODULES, as pyflyte build does. imagespec specs are built as "
        "declared",
    )
    group.add_argument(
        "--copy",
        dest="pyflyte_copy",
        type=_copy_choice,
        metavar="{all,auto}",
        help=f"{NO_EFFECT}: pyflyte build ignores it too; a spec's source_copy_mode decides",
    )
    group.add_argument(
        "--copy-all",
        dest="pyflyte_copy_all",
        action="store_true",
        help=f"{NO_EFFECT} (deprecated --copy all)",
    )
    text_options: list[tuple[list[str], str]] = [
        (["-p", "--project"], "the project of a registration"),
        (["-d", "--domain"], "the domain of a registration"),
        (["--destination-dir"], "where fast registration unpacks the code"),
        (["--service-account"], "an execution's service account"),
        (["--name"], "an execution's name"),
        (["--raw-output-data-prefix", "--raw-data-prefix"], "an execution's raw data location"),
        (["--cluster-pool"], "an execution's cluster pool"),
        (["--execution-cluster-label", "--ecl"], "an execution's cluster label"),
    ]
    for flags, what in text_options:
        group.add_argument(*flags, dest=_dest(flags), metavar="TEXT", help=f"{NO_EFFECT}: {what}")
    for flags, what in [
        (["--poll-interval"], "seconds between checks of an execution"),
        (["--max-parallelism"], "an execution's parallel nodes"),
        (["--limit"], "entities fetched from a remote"),
    ]:
        group.add_argument(
            *flags, dest=_dest(flags), type=_integer, metavar="INTEGER", help=f"{NO_EFFECT}: {what}"
        )
    for flags, what in [
        (["--wait", "--wait-execution"], "wait for an execution"),
        (["--dump-snippet"], "print a FlyteRemote snippet"),
        (["--overwrite-cache"], "an execution ignores cached outputs"),
        (["--disable-notifications"], "an execution sends no notifications"),
        (["-r", "--remote"], "run on a Flyte deployment"),
    ]:
        group.add_argument(*flags, dest=_dest(flags), action="store_true", help=f"{NO_EFFECT}: {what}")
    group.add_argument(
        "--interruptible",
        dest="pyflyte_interruptible",
        type=_boolean,
        metavar="BOOLEAN",
        help=f"{NO_EFFECT}: an execution's interruptible flag (true/false)",
    )
    repeated: list[tuple[list[str], Any, str, str]] = [
        (["--envvars", "--env"], _key_value, "KEY=VALUE", "an execution's environment"),
        (["--tags", "--tag"], str, "TEXT", "an execution's tags"),
        (["--labels", "--label"], str, "KEY=VALUE", "an execution's labels"),
        (["--annotations", "--annotation"], _key_value, "KEY=VALUE", "an execution's annotations"),
    ]
    for flags, kind, metavar, what in repeated:
        group.add_argument(
            *flags,
            dest=_dest(flags),
            action="append",
            type=kind,
            metavar=metavar,
            help=f"{NO_EFFECT}: {what} (repeatable)",
        )
    for flags in (["--resource-requests"], ["--resource-limits"]):
        group.add_argument(
            *flags,
            dest=_dest(flags),
            type=_resources,
            metavar="cpu=1,mem=2Gi,...",
            help=f"{NO_EFFECT}: an execution's default task resources",
        )


def _dest(flags: Sequence[str]) -> str:
    long = next(f for f in flags if f.startswith("--"))
    return "pyflyte_" + long[2:].replace("-", "_")


def image_reference_error(value: str) -> str | None:
    """Why `value` is no image reference flytekit's `--image` takes (it needs a tag or a digest;
    flytekit/configuration/__init__.py:215), or None."""
    if "@" in value:
        return None
    name, sep, tag = value.rpartition(":")
    if sep and name and tag and "/" not in tag:
        return None
    return "an image reference needs a tag or a digest (name:tag, name@sha256:...)"


# Serialisation: what `pyflyte build` does to a flytekit task's ImageSpec before building it


def project_root(file: Path) -> Path:
    """The first folder up from ``file`` without an ``__init__.py``: flytekit's project root
    (flytekit/tools/script_mode.py:316, `_find_project_root`)."""
    path = file.resolve().parent
    while (path / "__init__.py").exists():
        path = path.parent
    return path


def _unfrozen_copy(fk_spec: Any) -> Any:
    """A copy of a flytekit ImageSpec whose cached ``id`` and ``tag`` are computed again: flytekit
    caches them (functools.cached_property), and serialisation changes the fields they hash."""
    import copy

    out = copy.copy(fk_spec)
    for klass in type(fk_spec).__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, functools.cached_property):
                vars(out).pop(name, None)
    return out


def _copy_handling(fk_spec: Any, source_root: str | None) -> None:
    """flytekit's `update_image_spec_copy_handling` with pyflyte build's settings (build.py:39-45)."""
    configuration = importlib.import_module("flytekit.configuration")
    settings = configuration.SerializationSettings(
        image_config=configuration.ImageConfig.auto_default_image(), source_root=source_root
    )
    container = importlib.import_module("flytekit.core.python_auto_container")
    update = getattr(container, "update_image_spec_copy_handling", None)
    if update is not None:
        update(fk_spec, settings)
    else:
        # flytekit before 1.14 (python_auto_container.py:188 at v1.13.0): without fast
        # serialisation settings, which pyflyte build never sets, source_root is replaced.
        fk_spec.source_root = settings.source_root


def serialise(
    tasks: Sequence[FlytekitTask], file: Path, fast: bool
) -> dict[ImageSpec, tuple[ImageSpec, Any]]:
    """Gives each flytekit task that runs in its own flytekit ImageSpec (not one an `--image
    NAME=` replaced) the spec `pyflyte build [--fast] FILE` would build, converted as the bridge
    converts it. The user's specs are left as declared (copies are changed). Returns
    {old converted spec: (new converted spec, the changed flytekit spec)} for the specs that changed."""
    from imagespec._core import SpecError
    from imagespec._flytekit import from_flytekit
    from imagespec._task import resolve_image

    root = None if fast else str(project_root(file))
    moved: dict[ImageSpec, tuple[ImageSpec, Any]] = {}
    for t in tasks:
        old = t.container_image
        if t.flytekit_spec is None or not isinstance(old, ImageSpec) or resolve_image(old) != old:
            continue
        fk_spec = _unfrozen_copy(t.flytekit_spec)
        _copy_handling(fk_spec, root)
        try:
            new = from_flytekit(fk_spec, add_flytekit=True)
        except (SpecError, TypeError, ValueError) as e:
            raise SpecError(
                f"flytekit task {t.name}: container_image, as pyflyte build serialises it: {e}"
            ) from e
        if new != old:
            t.container_image, t.flytekit_spec = new, fk_spec
            moved[old] = (new, fk_spec)
    return moved


__all__ = ["add_build_options", "image_reference_error", "project_root", "serialise"]
