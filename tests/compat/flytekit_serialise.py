"""Serialising flytekit tasks in real flytekit (the flytekit venv, imagespec's wheel on its path), as
``pyflyte register``/``package`` do (flytekit/tools/translator.py), with one builder in imagespec's
plan: it pushes a small image to a real loopback registry under the name it is asked to build.
Shared by the compat tests of flytekit taking our ImageSpec (test_flytekit_decorators.py,
test_flytekit_refusals.py).
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..flytekit_helpers import REGISTRY_HELPERS, Flytekit, missing
from ..registry.registry_servers import Registry, free_port, start_registry

__all__ = ["Registry", "free_port"]

PRELUDE = r"""
import json, os, sys
from collections import OrderedDict
import flytekit, imagespec
from flytekit.configuration import FastSerializationSettings, ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
from registry_servers import Pusher

calls = []

class PushBuilder:
    def build_image(self, spec):
        name = spec.image_name()
        calls.append(name)
        repo, tag = name.split("/", 1)[1].rsplit(":", 1)
        return f"{name}@{Pusher(os.environ['REG']).image(repo, tag)['digest']}"

for engine in list(imagespec.ImageBuildEngine.get_registry()):
    imagespec.ImageBuildEngine.remove(engine)
imagespec.ImageBuildEngine.register("pusher", PushBuilder())

def settings(**kw):
    return SerializationSettings(
        image_config=ImageConfig.auto_default_image(), project="p", domain="d", version="v1", **kw)

def serialise(entity, s=None):
    entities = OrderedDict()
    get_serializable(entities, s or settings(), entity)
    return entities

def image(entity, s=None):
    return serialise(entity, s)[entity].template.container.image
"""

# The head of the test modules: our spec, in a registry the test runs.
SPEC = """
import os
import flytekit
import imagespec

spec = imagespec.ImageSpec(name="direct", packages=["six"], registry=os.environ["REG"])
"""


def module(*parts: str) -> str:
    """Python source from parts indented as they read best in a test."""
    return "\n".join(textwrap.dedent(p) for p in parts)


def loopback_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry on localhost for a test module's fixture (stopped after it)."""
    if shutil.which("docker-registry") is None:
        missing("docker-registry is not installed (scripts/setup.sh installs it)")
    workdir = tmp_path_factory.mktemp("fk-hooks-registry")
    reg = start_registry(workdir, workdir / "storage", hostname="localhost")
    yield reg
    reg.stop()


def run(fk: Flytekit, cwd: Path, files: dict[str, str], code: str, env: dict[str, str], *path: Path) -> Any:
    """Writes ``files`` into ``cwd`` and runs PRELUDE + ``code`` there (``path`` added to its
    PYTHONPATH); returns its last stdout line, as JSON."""
    for name, text in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text)
    env = dict(env)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(map(str, [fk.site, REGISTRY_HELPERS, cwd, *path]))
    proc = fk.run(PRELUDE + textwrap.dedent(code), cwd, env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def imagespec_cli(fk: Flytekit, cwd: Path, env: dict[str, str], *args: str) -> Any:
    """``imagespec ARGS --json`` in the flytekit venv; its JSON."""
    code = f"import sys\nfrom imagespec.cli import main\nsys.exit(main({[*args, '--json']!r}))"
    return json.loads(fk.run(code, cwd, env).stdout)
