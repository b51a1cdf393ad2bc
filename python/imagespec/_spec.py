"""The `ImageSpec` value: a thin, typed Python surface over the Rust core's `Spec`."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence

from imagespec import _core
from imagespec._environ import (
    fast_fail,
    force_push_from_env,
    loaded_module_files,
    not_installed_error,
)
from imagespec._environ import (
    python_version as _python_version,
)
from imagespec._values import FrozenDict, FrozenList

# Not `from typing import TYPE_CHECKING`: importing typing (and re, contextlib, collections with
# it) is a third of `import imagespec`; type checkers treat this name as True all the same.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # By these names in the class: its `_core` attribute hides the module there.
    from imagespec._core import Spec as CoreSpec
    from imagespec._core import TagInputs

_PATH_FIELDS = ("source_root", "requirements", "registry_config", "project")
_LIST_FIELDS = (
    "packages",
    "conda_packages",
    "conda_channels",
    "apt_packages",
    "pip_extra_index_url",
    "entrypoint",
    "commands",
    "copy",
    "runtime_packages",
    "overrides",
    "constraints",
)
_MAP_FIELDS = ("env", "builder_options", "builder_config")
_DEFAULT_NAME = _core.DEFAULT_NAME
_DEFAULT_PLATFORM = "linux/amd64"  # repr leaves it out: the default but on arm64 hosts' loopback
IMAGE_ID_VAR = _core.IMAGE_ID_VAR
# In an image built for a flytekit spec (whose _F_IMG_ID is flytekit's id): "<our id>:<that id>".
OWN_ID_VAR = _core.OWN_ID_VAR


# Tag-scheme name -> the name a build reported for it (flytekit's _IMAGE_NAME_TO_REAL_NAME).
_REAL_NAMES: dict[str, str] = {}


class CopyFileDetection(enum.Enum):
    """Which files of `source_root` go into the image (the values are flytekit's)."""

    LOADED_MODULES = 1
    """The files of the Python modules imported from under `source_root` when the tag is computed."""
    ALL = 2
    """Every file under `source_root` that no ignore rule excludes."""
    NO_COPY = 3
    """No source file."""


def _to_core_value(field: str, value: Any) -> Any:
    """Python-only conveniences (paths, enums, nested specs) as the plain values the core takes."""
    if value is None:
        return None
    if field in _PATH_FIELDS and isinstance(value, os.PathLike):
        return os.fspath(value)
    if field == "source_copy_mode" and isinstance(getattr(value, "name", None), str):
        return value.name  # ours, or flytekit's CopyFileDetection
    if field == "base_image":
        if isinstance(value, ImageSpec):
            return value._core
        if isinstance(value, Mapping):
            return {k: _to_core_value(k, v) for k, v in value.items()}
    return value


def _positional(args: tuple[Any, ...], fields: dict[str, Any]) -> dict[str, Any]:
    """Positional arguments in flytekit's field order (its dataclass's), as a dataclass takes them."""
    # flytekit's fields only: imagespec's own come after them and are keyword-only.
    order = _core.FIELDS[: _core.FIELDS.index("builder_config") + 1]
    if len(args) > len(order):
        raise TypeError(
            f"ImageSpec() takes from 0 to {len(order)} positional arguments but {len(args)} were given"
        )
    out = dict(zip(order, args))
    for key in fields:
        if key in out:
            raise TypeError(f"ImageSpec() got multiple values for argument {key!r}")
    out.update(fields)
    return out


class ImageSpec:
    """How to build a container image, declared in Python: an immutable value.

    Every field has flytekit's meaning and can be given by keyword or, in the order of flytekit's
    dataclass, by position; unset fields are ``None``. Lists and dicts read back as lists and
    dicts (read-only ones: a spec does not change).

    >>> spec = ImageSpec(name="pandas", packages=["pandas", "numpy"], env={"Debug": "True"},
    ...                  registry="localhost:30000", python_version="3.11")
    >>> spec.with_packages("scikit-learn").packages
    ['pandas', 'numpy', 'scikit-learn']
    >>> spec.image_name().startswith("localhost:30000/pandas:")
    True
    """

    __slots__ = (
        "_base",
        "_core",
        "apt_packages",
        "builder",
        "builder_config",
        "builder_options",
        "commands",
        "conda_channels",
        "conda_packages",
        "constraints",
        "copy",
        "cuda",
        "cudnn",
        "entrypoint",
        "env",
        "name",
        "overrides",
        "packages",
        "pip_extra_args",
        "pip_extra_index_url",
        "pip_index",
        "pip_secret_mounts",
        "platform",
        "project",
        "project_install_mode",
        "python_exec",
        "python_version",
        "registry",
        "registry_config",
        "requirements",
        "runtime_packages",
        "source_copy_mode",
        "source_root",
        "tag_format",
    )

    _core: CoreSpec
    _base: ImageSpec | None
    # Lists and dicts as in flytekit, read-only (see _values.py).
    name: str
    python_version: str | None
    builder: str | None
    source_root: str | None
    source_copy_mode: CopyFileDetection | None
    env: dict[str, str] | None
    registry: str | None
    packages: list[str] | None
    conda_packages: list[str] | None
    conda_channels: list[str] | None
    requirements: str | None
    apt_packages: list[str] | None
    cuda: str | None
    cudnn: str | None
    platform: str
    pip_index: str | None
    pip_extra_index_url: list[str] | None
    pip_secret_mounts: list[tuple[str, str]] | None
    pip_extra_args: str | None
    registry_config: str | None
    entrypoint: list[str] | None
    commands: list[str] | None
    tag_format: str | None
    copy: list[str] | None
    python_exec: str | None
    runtime_packages: list[str] | None
    builder_options: dict[str, Any] | None
    builder_config: dict[str, Any] | None
    project: str | None
    project_install_mode: str | None
    overrides: list[str] | None
    constraints: list[str] | None

    if TYPE_CHECKING:

        def __init__(
            self,
            name: str = "imagespec",
            python_version: str | float | None = None,
            builder: str | None = None,
            source_root: str | os.PathLike[str] | None = None,
            env: Mapping[str, str] | None = None,
            registry: str | None = None,
            packages: Sequence[str] | None = None,
            conda_packages: Sequence[str] | None = None,
            conda_channels: Sequence[str] | None = None,
            requirements: str | os.PathLike[str] | None = None,
            apt_packages: Sequence[str] | None = None,
            cuda: str | None = None,
            cudnn: str | None = None,
            base_image: str | ImageSpec | None = None,
            platform: str | None = None,
            pip_index: str | None = None,
            pip_extra_index_url: Sequence[str] | None = None,
            pip_secret_mounts: Sequence[tuple[str, str]] | None = None,
            pip_extra_args: str | None = None,
            registry_config: str | os.PathLike[str] | None = None,
            entrypoint: Sequence[str] | None = None,
            commands: Sequence[str] | None = None,
            tag_format: str | None = None,
            source_copy_mode: CopyFileDetection | str | None = None,
            copy: Sequence[str] | None = None,
            python_exec: str | None = None,
            runtime_packages: Sequence[str] | None = None,
            builder_options: Mapping[str, Any] | None = None,
            builder_config: Mapping[str, Any] | None = None,
            *,
            project: str | os.PathLike[str] | None = None,
            project_install_mode: str | None = None,
            overrides: Sequence[str] | None = None,
            constraints: Sequence[str] | None = None,
        ) -> None: ...

    else:

        def __init__(self, *args, **fields):
            if args:
                fields = _positional(args, fields)
            self._init(fields, None, None)

    def _init(self, fields: dict[str, Any], force_push: bool | None, base_dir: str | None) -> None:
        if force_push is None:
            force_push = force_push_from_env()
        core_fields = {k: _to_core_value(k, v) for k, v in fields.items()}
        core = _core.Spec(
            core_fields, python_version=_python_version(), base_dir=base_dir, force_push=force_push
        )
        base = fields.get("base_image")
        self._init_from_core(core, base if isinstance(base, ImageSpec) else None)

    @classmethod
    def _build(cls, fields: dict[str, Any], *, force_push: bool, base_dir: str) -> ImageSpec:
        spec = cls.__new__(cls)
        spec._init(fields, force_push, base_dir)
        return spec

    def _init_from_core(self, core: CoreSpec, base: ImageSpec | None) -> None:
        if base is None and core.base_spec is not None:
            base = ImageSpec._from_core(core.base_spec)
        values = core.to_dict()
        values.pop("base_image", None)
        for field in _core.FIELDS:
            if field == "base_image":
                continue
            value = values.get(field)
            if value is not None:
                if field in _LIST_FIELDS:
                    value = FrozenList(value, field)
                elif field in _MAP_FIELDS:
                    value = FrozenDict(value, field)
                elif field == "pip_secret_mounts":
                    value = FrozenList([(s, t) for s, t in value], field)
                elif field == "source_copy_mode":
                    value = CopyFileDetection[value]
            object.__setattr__(self, field, value)
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_base", base)

    @classmethod
    def _from_core(cls, core: CoreSpec) -> ImageSpec:
        spec = cls.__new__(cls)
        spec._init_from_core(core, None)
        return spec

    # base_image is derived: a name string lives in the core, a spec in `_base`.
    @property
    def base_image(self) -> str | ImageSpec | None:
        if self._base is not None:
            return self._base
        value = self._core.to_dict().get("base_image")
        return value if isinstance(value, str) else None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ImageSpec is immutable; use spec.replace({name}=...) to get a changed copy")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ImageSpec is immutable")

    # Identity, tag and name

    @property
    def id(self) -> str:
        """The spec's identity: from its fields alone, the same on every machine and inside the image."""
        return self._core.id

    def _loaded(self) -> list[str] | None:
        return loaded_module_files() if self._core.uses_loaded_modules else None

    @property
    def tag(self) -> str:
        """The content-derived tag: the fields plus every file that goes into the image."""
        return self._core.tag(self._loaded())

    def image_name(self) -> str:
        """``registry/name:tag`` (``name:tag`` without a registry); after a build, the name its
        builder reported (pinned by digest when known)."""
        name = self._core.image_name(self._loaded())
        return _REAL_NAMES.get(name, name)

    def tag_inputs(self) -> TagInputs:
        """The tree of sub-digests (one per field, one per file) the tag is derived from."""
        return self._core.tag_inputs(self._loaded())

    def is_container(self) -> bool:
        """True inside the image built from this spec, or anywhere outside a container.

        The image says which spec it was built from in ``_F_IMG_ID``. An image built for a flytekit
        spec (through the flytekit bridge) holds flytekit's id there, so that flytekit's own
        ``is_container()`` answers True too, and ours in ``IMAGESPEC_IMG_ID`` as
        ``<our id>:<flytekit's id>``, which counts only while ``_F_IMG_ID`` is that flytekit id
        (an image built on top of it sets its own).

        >>> import os
        >>> os.environ["_F_IMG_ID"] = "another-image"
        >>> ImageSpec(packages=["pandas"]).is_container()
        False
        >>> spec = ImageSpec(packages=["pandas"])
        >>> os.environ["IMAGESPEC_IMG_ID"] = f"{spec.id}:another-image"
        >>> spec.is_container()
        True
        >>> del os.environ["_F_IMG_ID"], os.environ["IMAGESPEC_IMG_ID"]
        """
        image_id = os.environ.get(IMAGE_ID_VAR)
        if image_id is None or image_id == self.id:
            return True
        own, _, paired = os.environ.get(OWN_ID_VAR, "").partition(":")
        if not own or paired != image_id:
            return False
        if own == self.id:
            return True
        # The bridge added flytekit to the packages it built (flytekit runs the task), as flytekit's
        # own builder does, whose is_container() leaves the addition out too.
        from imagespec._flytekit import bridged_id

        return own == bridged_id(self)

    @property
    def is_force_push(self) -> bool:
        return self._core.force_push

    @property
    def _is_force_push(self) -> bool:
        """flytekit's name for `is_force_push` (its builders read it)."""
        return self._core.force_push

    @property
    def _fast_fail(self) -> bool:
        """flytekit's flag: ``FLYTE_IMG_FAST_FAIL`` true makes an unknown existence an error."""
        return fast_fail()

    def exist(self) -> bool | None:
        """True when the image exists, False when it does not, None when that cannot be told.

        With a registry, asks it (for the spec's platforms, with its ``registry_config``; a force
        push skips the cache of positive answers); without one, asks the local engine.
        ``imagespec.check`` says why.
        """
        from imagespec._registry import check

        return check([self])[0].exists

    # Derived copies

    def replace(self, **changes: Any) -> ImageSpec:
        """A copy with some fields changed (and checked again)."""
        fields: dict[str, Any] = self._core.to_dict()
        if self._base is not None:
            fields["base_image"] = self._base
        fields.update(changes)
        return ImageSpec._build(fields, force_push=self.is_force_push, base_dir=self._core.copy_root)

    def force_push(self) -> ImageSpec:
        """A copy that is built and pushed even when its image exists."""
        return ImageSpec._from_core_with_base(self._core.with_force_push(True), self._base)

    @classmethod
    def _from_core_with_base(cls, core: CoreSpec, base: ImageSpec | None) -> ImageSpec:
        spec = cls.__new__(cls)
        spec._init_from_core(core, base)
        return spec

    def _extend(self, field: str, items: str | Sequence[str]) -> ImageSpec:
        current = getattr(self, field) or ()
        added = [items] if isinstance(items, str) else list(items)
        return self.replace(**{field: [*current, *added]})

    def with_packages(self, packages: str | Sequence[str]) -> ImageSpec:
        """A copy with more Python packages."""
        return self._extend("packages", packages)

    def with_apt_packages(self, apt_packages: str | Sequence[str]) -> ImageSpec:
        """A copy with more apt packages."""
        return self._extend("apt_packages", apt_packages)

    def with_commands(self, commands: str | Sequence[str]) -> ImageSpec:
        """A copy with more build commands, run after the existing ones."""
        return self._extend("commands", commands)

    def with_copy(self, src: str | Sequence[str]) -> ImageSpec:
        """A copy with more files or folders copied to /root."""
        return self._extend("copy", src)

    def with_runtime_packages(self, runtime_packages: str | Sequence[str]) -> ImageSpec:
        """A copy with more packages installed when the container starts."""
        return self._extend("runtime_packages", runtime_packages)

    def with_builder_options(self, builder_options: Mapping[str, Any]) -> ImageSpec:
        """A copy with builder options added (new keys win)."""
        return self.replace(builder_options={**(self.builder_options or {}), **builder_options})

    # Other front doors

    @classmethod
    def from_env(cls, *, pinned_packages: Sequence[str] | None = None, **kwargs: Any) -> ImageSpec:
        """A spec for this interpreter's Python version, with `pinned_packages` at their installed versions.

        >>> ImageSpec.from_env(pinned_packages=["pip"]).packages[0].startswith("pip==")
        True
        """
        if kwargs.get("python_version") is not None:
            raise _core.SpecError(
                "python_version can not be used with `from_env` because it will be inferred from the "
                "environment; leave it out (it is this interpreter's version)"
            )
        from importlib import metadata

        packages = list(kwargs.pop("packages", None) or [])
        for name in pinned_packages or ():
            try:
                packages.append(f"{name}=={metadata.version(name)}")
            except metadata.PackageNotFoundError:
                raise not_installed_error()(name) from None
        return cls(packages=packages, python_version=_python_version(), **kwargs)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> ImageSpec:
        """Reads a YAML file with the constructor's keys; relative paths are relative to the file."""
        spec = cls._from_core(_core.load_yaml(path, python_version=_python_version()))
        return spec.force_push() if force_push_from_env() else spec

    @classmethod
    def from_script(cls, path: str | os.PathLike[str], **kwargs: Any) -> ImageSpec:
        """A spec for a script with inline metadata (PEP 723, ``# /// script``): its ``dependencies``
        are the packages (any ``packages`` given come after them) and its ``requires-python``
        decides ``python_version`` (this interpreter's when it satisfies it, else the oldest that
        does); a ``python_version`` given must satisfy it. Other fields are given as to the
        constructor. The script itself is not copied into the image (``source_root`` does that).
        """
        given = kwargs.pop("python_version", None)
        if given is not None:
            given = cls(python_version=given).python_version  # read as the constructor reads it
        packages, python_version = _core.read_script(path, python_version=given, current=_python_version())
        extra = kwargs.pop("packages", None) or []
        return cls(packages=[*packages, *extra], python_version=python_version, **kwargs)

    @classmethod
    def from_project(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        install_project: bool = False,
        **kwargs: Any,
    ) -> ImageSpec:
        """A spec for a uv project or workspace (``pyproject.toml`` + ``uv.lock``) or a poetry
        project (``pyproject.toml`` + ``poetry.lock``): the locked dependencies, installed as
        locked, with workspace members and path dependencies; the project itself too with
        ``install_project=True``. Its ``requires-python`` decides ``python_version`` as for
        `from_script`. The same as ``ImageSpec(project=path, project_install_mode=...)``.
        """
        mode = "install_project" if install_project else "dependencies_only"
        return cls(project=path, project_install_mode=mode, **kwargs)

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> ImageSpec:
        """The inverse of `to_dict`."""
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """The set fields, with the constructor's keys (base specs as nested dicts)."""
        return self._core.to_dict()

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The spec as YAML; written to `path` too when one is given. URL credentials are written as
        ``***`` (a YAML file is kept and shared; a spec read back from it builds once they are given
        again), as in ``repr``; ``to_dict()`` keeps them."""
        text = self._core.to_yaml()
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def to_flytekit(self) -> Any:
        """The spec as a ``flytekit.ImageSpec`` built by imagespec (``builder="imagespec"``); needs
        flytekit. See docs/flytekit.md."""
        from imagespec._flytekit import to_flytekit

        return to_flytekit(self)

    @classmethod
    def from_flytekit(cls, spec: Any, *, add_flytekit: bool = False) -> ImageSpec:
        """A ``flytekit.ImageSpec`` as an ``ImageSpec``; ``add_flytekit`` adds the running flytekit
        to ``packages`` when no package is flytekit (as the flytekit builder does). See
        docs/flytekit.md."""
        from imagespec._flytekit import from_flytekit

        return from_flytekit(spec, add_flytekit=add_flytekit)

    # Value semantics

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageSpec):
            return NotImplemented
        return self._core.canonical == other._core.canonical

    def __hash__(self) -> int:
        return hash(self._core.canonical)

    def __repr__(self) -> str:
        shown = self._core.to_dict(redact=True)
        if shown.get("name") == _DEFAULT_NAME:
            del shown["name"]
        if shown.get("platform") == _DEFAULT_PLATFORM:
            del shown["platform"]
        if self._base is None and shown.get("python_version") == _python_version():
            del shown["python_version"]
        parts = []
        for field in _core.FIELDS:
            if field == "base_image" and self._base is not None:
                parts.append(f"base_image={self._base!r}")
            elif field in shown:
                parts.append(f"{field}={shown[field]!r}")
        text = f"ImageSpec({', '.join(parts)})"
        return f"{text}.force_push()" if self.is_force_push else text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.to_dict(), self.is_force_push, self._core.copy_root))

    def __copy__(self) -> ImageSpec:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ImageSpec:
        return self


def _restore(fields: dict[str, Any], force_push: bool, base_dir: str) -> ImageSpec:
    return ImageSpec._build(fields, force_push=force_push, base_dir=base_dir)
