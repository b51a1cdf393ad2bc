"""Typed stubs of the Rust extension: the thin layer over imagespec's core."""

from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal, TypedDict, final, type_check_only

from typing_extensions import Unpack

__all__ = [  # noqa: RUF022 (the runtime order, which stubtest compares)
    "__version__",
    "RECIPE_VERSION",
    "FIELDS",
    "BUILTIN_ENGINES",
    "DISTRIBUTION",
    "DEFAULT_NAME",
    "IMAGE_ID_VAR",
    "OWN_ID_VAR",
    "RUNTIME_OPTION",
    "ImageSpecError",
    "SpecError",
    "UnknownFieldError",
    "suggest_field",
    "cache_root",
    "split_name",
    "docker_client",
    "SourceError",
    "RegistryError",
    "BuildError",
    "check",
    "check_local",
    "inspect",
    "Spec",
    "load_yaml",
    "read_script",
    "write_context",
    "plan_context",
    "run_plan",
    "engine_probe",
    "engine_build",
    "ContextManifest",
    "Event",
    "ImageResult",
]

__version__: Final[str]
RECIPE_VERSION: Final[int]
FIELDS: Final[list[str]]
BUILTIN_ENGINES: Final[list[tuple[str, int]]]
DISTRIBUTION: Final[str]
DEFAULT_NAME: Final[str]
IMAGE_ID_VAR: Final[str]
OWN_ID_VAR: Final[str]
RUNTIME_OPTION: Final[str]

@type_check_only
class BuildArgs(TypedDict, total=False):
    """What a build puts in the image besides the spec: the options every build entry point takes
    (which engine a Dockerfile is for, ``buildkit`` and ``engine``, is set by an engine itself)."""

    loaded_modules: list[str] | None
    imagespec_wheel: str | PathLike[str] | None
    ca_bundle: str | PathLike[str] | None
    flytekit_ids: Mapping[str, str] | None

@type_check_only
class PlanArgs(BuildArgs, total=False):
    """``run_plan``'s options: the build's, and the plan's (defaults: 2, False, False, None, 10.0, None,
    None)."""

    max_parallel: int
    assume_present: bool
    no_cache: bool
    lock_dir: str | PathLike[str] | None
    check_timeout: float
    builder: str | None
    engines: str | None

@type_check_only
class CheckArgs(TypedDict, total=False):
    """``check``'s options (defaults: None, None, None, True, 10.0, 16, 86400.0, None, 3)."""

    platforms: list[str] | None
    registry_config: str | PathLike[str] | None
    insecure: list[str] | None
    use_cache: bool
    timeout: float
    concurrency: int
    cache_ttl: float
    cache_dir: str | PathLike[str] | None
    retries: int

@type_check_only
class CheckResult(TypedDict):
    """One reference's answer to ``check`` or ``check_local``."""

    reference: str
    status: Literal["exists", "missing", "unknown"]
    reason: str | None
    digest: str | None
    media_type: str | None
    cached: bool

@type_check_only
class BuiltImage(TypedDict):
    """What ``engine_build`` built: the name to run it by (pinned by digest when known)."""

    name: str
    digest: str | None

@type_check_only
class ContextPlan(TypedDict):
    """What ``write_context`` would write; ``secrets`` are the secrets' ids."""

    dockerfile_text: str
    files: list[str]
    secrets: list[str]
    image: str
    tag: str
    id: str

@type_check_only
class TagInputs(TypedDict):
    """The tree of sub-digests (hex) a tag is derived from: one per field, one per file."""

    scheme: int
    recipe_version: int
    id: str
    id_root: str
    fields: dict[str, str]
    files: dict[str, str]
    base_image: str | None
    root: str
    tag: str

class ImageSpecError(Exception):
    """Base class of every imagespec error."""

    # Where the error is, None where it does not say (always, for one raised by Python code): a
    # spec field's error names the field; a spec file's, the file, line and column; a missing or
    # unreadable file's, the field and the file.
    field: str | None
    path: str | None
    line: int | None
    column: int | None

class SpecError(ImageSpecError, ValueError):
    """A spec field or spec file has a value that is not allowed (a ValueError, as in flytekit)."""

class UnknownFieldError(SpecError, TypeError):
    """A keyword that is no spec field (a TypeError, as for any function, and a SpecError)."""

def suggest_field(name: str) -> str:
    """ "Did you mean 'packages'? Valid fields: ..." for a keyword that is no field."""

def split_name(reference: str) -> tuple[str | None, str, str | None]:
    """(registry, path, tag) of ``[registry/]path[:tag]``, split as docker splits a reference."""

def docker_client() -> Path:
    """The docker client the engine adapter would use (for ``run`` and ``inspect`` too)."""

def cache_root() -> Path | None:
    """The cache folder: $IMAGESPEC_CACHE_DIR, else $XDG_CACHE_HOME/imagespec, else ~/.cache/imagespec."""

class SourceError(ImageSpecError):
    """A file or folder the spec names is missing or unreadable."""

class RegistryError(ImageSpecError):
    """A registry check could not be made: a malformed reference or an unusable option."""

class BuildError(ImageSpecError):
    """An image cannot be built as asked (an option the engine lacks, a value a Dockerfile cannot hold)."""

def check(refs: list[str], **options: Unpack[CheckArgs]) -> list[CheckResult]:
    """Checks which of `refs` exist in their registries; one dict per reference, in order."""

def check_local(names: list[str], *, timeout: float = 10.0) -> list[CheckResult]:
    """Checks which of `names` the local engine (Docker socket, else podman) has."""

@final
class Spec:
    """A validated, normalised spec."""

    def __new__(
        cls,
        fields: dict[str, Any],
        *,
        python_version: str,
        base_dir: str | PathLike[str] | None = None,
        force_push: bool = False,
    ) -> Spec: ...
    def to_dict(self, *, redact: bool = False) -> dict[str, Any]: ...
    def to_yaml(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def canonical(self) -> str: ...
    @property
    def force_push(self) -> bool: ...
    @property
    def check_options(self) -> tuple[list[str], str | None, list[str]]:
        """(platforms, registry_config, insecure registries): what a registry check of its image uses."""
    @property
    def repository(self) -> str: ...
    @property
    def copy_root(self) -> str: ...
    @property
    def effective_copy_mode(self) -> str: ...
    @property
    def uses_loaded_modules(self) -> bool: ...
    @property
    def base_spec(self) -> Spec | None: ...
    def with_force_push(self, force_push: bool) -> Spec: ...
    def tag(self, loaded_modules: list[str] | None = None) -> str: ...
    def image_name(self, loaded_modules: list[str] | None = None) -> str: ...
    def shown(self, loaded_modules: list[str] | None = None) -> str:
        """The spec as its image's `dev.imagespec.spec` label shows it (JSON): name, registry, the
        identity fields as hashed, and the base spec's image name."""

    def tag_inputs(self, loaded_modules: list[str] | None = None) -> TagInputs:
        """The tree of sub-digests the tag is derived from, as a dict of hex strings."""
    def dockerfile(
        self, *, buildkit: bool = True, engine: str = "docker", **options: Unpack[BuildArgs]
    ) -> str:
        """The Dockerfile of this spec (docs/image-layout.md); reads the spec's files for its tag."""

def load_yaml(path: str | PathLike[str], *, python_version: str) -> Spec: ...
def read_script(
    path: str | PathLike[str], *, python_version: str | None, current: str
) -> tuple[list[str], str]: ...
def write_context(
    spec: Spec,
    dir: str | PathLike[str],
    *,
    buildkit: bool = True,
    engine: str = "docker",
    **options: Unpack[BuildArgs],
) -> ContextManifest:
    """Writes the build context of `spec` into `dir` (created if missing; it must be empty)."""

def plan_context(
    spec: Spec, *, buildkit: bool = True, engine: str = "docker", **options: Unpack[BuildArgs]
) -> ContextPlan:
    """The Dockerfile, file list and secret ids `write_context` would give, without writing anything."""

def run_plan(
    specs: list[Spec],
    builders: list[tuple[str, int, Any]],
    *,
    from_core: Callable[[Spec], Any],
    on_event: Callable[[Event], object] | None = None,
    **options: Unpack[PlanArgs],
) -> list[ImageResult]:
    """Runs the plan for `specs`. `builders` are `(name, priority, builder)`: `builder` is the name of
    a built-in engine (a str) or a Python object with `build_image`. One `ImageResult` per image,
    bases first."""

def inspect(
    reference: str,
    *,
    platform: str | None = None,
    registry_config: str | PathLike[str] | None = None,
    insecure: list[str] | None = None,
    timeout: float = 10.0,
) -> tuple[str, str]:
    """The config of an image in its registry: `(manifest digest, config as JSON text)`."""

def engine_probe(name: str) -> str | None:
    """None when the engine `name` can build here, else why not (one line, with the fix)."""

def engine_build(
    name: str,
    spec: Spec,
    *,
    image: str,
    push: bool,
    no_cache: bool = False,
    **options: Unpack[BuildArgs],
) -> BuiltImage:
    """Builds `spec` as `image` with the engine `name` (pushing it with `push`); returns
    ``{"name": ..., "digest": ...}``."""

@final
class ContextManifest:
    """What ``write_context`` wrote."""

    @property
    def dir(self) -> Path: ...
    @property
    def context(self) -> Path: ...
    @property
    def dockerfile(self) -> Path: ...
    @property
    def dockerfile_text(self) -> str: ...
    @property
    def files(self) -> list[str]: ...
    @property
    def secrets(self) -> list[tuple[str, Path]]:
        """``(id, path)`` of each secret, in the order the Dockerfile mounts them."""
    @property
    def image(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def id(self) -> str: ...

@final
class Event:
    """One step of a plan, as ``run_plan`` gives it to ``on_event``."""

    @property
    def kind(
        self,
    ) -> Literal[
        "checking", "exists", "missing", "unknown", "building", "step", "pushing", "done", "failed", "warning"
    ]: ...
    @property
    def image(self) -> str | None: ...
    @property
    def message(self) -> str | None:
        """The step, the reason, the builder or the built name, by kind."""
    @property
    def seconds(self) -> float | None:
        """For ``done``: how long the build took."""
    @property
    def count(self) -> int | None:
        """For ``checking``: how many images are checked."""

@final
class ImageResult:
    """What happened to one image of a plan."""

    @property
    def image(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def outcome(self) -> Literal["exists", "skipped", "assumed", "built", "failed"]: ...
    @property
    def builder(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...
    @property
    def inputs(self) -> list[int]:
        """Indexes into the specs given to ``run_plan`` that are this image."""
