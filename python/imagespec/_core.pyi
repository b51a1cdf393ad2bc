"""The Rust core of imagespec."""

from os import PathLike
from typing import Union

__version__: str

class ImageSpecError(Exception): ...
class SpecError(ImageSpecError): ...
class SourceError(ImageSpecError): ...
class RegistryError(ImageSpecError): ...

def check(
    refs: list[str],
    *,
    platforms: Union[list[str], None] = None,
    registry_config: Union[str, PathLike[str], None] = None,
    insecure: Union[list[str], None] = None,
    use_cache: bool = True,
    timeout: float = 10.0,
    concurrency: int = 16,
    cache_ttl: float = 86400.0,
    cache_dir: Union[str, PathLike[str], None] = None,
    retries: int = 3,
) -> list[dict[str, object]]:
    """Checks which of `refs` exist in their registries; one dict per reference, in order."""

def check_local(names: list[str], *, timeout: float = 10.0) -> list[dict[str, object]]:
    """Checks which of `names` the local engine (Docker socket, else podman) has."""
