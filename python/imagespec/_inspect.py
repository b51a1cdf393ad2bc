"""What an image was built from: the ``dev.imagespec.*`` labels of an image in a registry or in
the local Docker engine."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from imagespec import _core

LABEL_PREFIX = "dev.imagespec."


@dataclass(frozen=True)
class ImageInfo:
    """An image's config as far as imagespec is concerned."""

    reference: str
    digest: str | None
    """The manifest digest (registry), or the image id (local engine)."""
    source: str
    """``registry`` or ``local``."""
    labels: dict[str, str] = field(repr=False)
    created: str | None = None
    platform: str | None = None

    @property
    def built_by_imagespec(self) -> bool:
        return LABEL_PREFIX + "id" in self.labels

    @property
    def spec(self) -> dict[str, Any] | None:
        """The spec the image was built from (canonical JSON label), or None.

        The label leaves the registry out (where an image is pushed is not what it contains); it is
        filled in here from the reference the image was read from, when that names one.
        """
        text = self.labels.get(LABEL_PREFIX + "spec")
        if text is None:
            return None
        shown = dict(json.loads(text))
        if "registry" not in shown:
            registry = _registry_of(self.reference, str(shown.get("name", "")))
            if registry:
                shown["registry"] = registry
        return shown

    def label(self, key: str) -> str | None:
        return self.labels.get(LABEL_PREFIX + key)


def _registry_of(reference: str, name: str) -> str | None:
    """``localhost:5000/team`` for ``localhost:5000/team/app:tag`` and the spec name ``app``."""
    registry, path, _ = _core.split_name(reference)
    suffix = "/" + name.lower()
    repo = f"{registry}/{path}" if registry else path
    if name and registry and repo.lower().endswith(suffix):
        return repo[: -len(suffix)]
    return None


def _local(reference: str) -> ImageInfo:
    try:
        out = subprocess.run(
            [str(_core.docker_client()), "image", "inspect", "--", reference],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _core.RegistryError(f"inspect: docker did not answer within 30 s for {reference}") from None
    if out.returncode != 0:
        why = out.stderr.strip().splitlines()[-1:] or ["no answer"]
        raise _core.RegistryError(f"inspect: {reference} is not in the local Docker engine ({why[0]})")
    doc = json.loads(out.stdout)[0]
    config = doc.get("Config") or {}
    return ImageInfo(
        reference=reference,
        digest=doc.get("Id"),
        source="local",
        labels=dict(config.get("Labels") or {}),
        created=doc.get("Created"),
        platform=f"{doc.get('Os')}/{doc.get('Architecture')}",
    )


def inspect(
    reference: str,
    *,
    platform: str | None = None,
    registry_config: str | os.PathLike[str] | None = None,
    insecure: list[str] | None = None,
    local: bool | None = None,
    timeout: float = 10.0,
) -> ImageInfo:
    """Reads the config of ``reference``: from its registry when the name has a registry host,
    else from the local Docker engine (``local`` forces one or the other).

    >>> info = inspect("localhost:5000/app:abc")  # doctest: +SKIP
    >>> info.spec["packages"]  # doctest: +SKIP
    ['pandas']
    """
    if local is None:
        local = _core.split_name(reference)[0] is None
    if local:
        return _local(reference)
    digest, config_text = _core.inspect(
        reference,
        platform=platform,
        registry_config=os.fspath(registry_config) if registry_config else None,
        insecure=insecure,
        timeout=timeout,
    )
    config = json.loads(config_text)
    labels = (config.get("config") or {}).get("Labels") or {}
    arch = config.get("architecture")
    return ImageInfo(
        reference=reference,
        digest=digest,
        source="registry",
        labels=dict(labels),
        created=config.get("created"),
        platform=f"{config.get('os')}/{arch}" if arch else None,
    )
