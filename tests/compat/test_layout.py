"""flytekit's module layout on imagespec: the same import lines with ``flytekit`` -> ``imagespec``.

The modules are thin re-exports: every name is imagespec's own object, ``import imagespec`` loads
none of them, and their examples (doctests) run.
"""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import pytest

import imagespec

from ..conftest import run_python

# flytekit/image_spec/__init__.py:5-7, flytekit/image_spec/image_spec.py:25-29, 452, 504, 33,
# flytekit/image_spec/noop_builder.py:4, flytekit/constants/__init__.py:6.
LAYOUT = {
    "imagespec.image_spec": ["ImageSpec", "ImageBuildEngine", "ImageSpecBuilder", "NoOpBuilder"],
    "imagespec.image_spec.image_spec": [
        "_F_IMG_ID",
        "FLYTE_FORCE_PUSH_IMAGE_SPEC",
        "FLYTE_IMG_FAST_FAIL",
        "ImageSpecBuilder",
        "ImageBuildEngine",
        "ImageSpec",
    ],
    "imagespec.image_spec.noop_builder": ["NoOpBuilder"],
    "imagespec.constants": ["CopyFileDetection"],
}
MODULES = [
    "imagespec._builders",
    "imagespec._engine",
    "imagespec.image_spec",
    "imagespec.image_spec.image_spec",
    "imagespec.image_spec.noop_builder",
    "imagespec.constants",
]


@pytest.mark.parametrize("module", sorted(LAYOUT))
def test_flytekits_names_are_imagespecs_own(module: str) -> None:
    m = importlib.import_module(module)
    for name in LAYOUT[module]:
        value = getattr(m, name)
        if not name.isupper() and not name.startswith("_"):
            assert value is getattr(imagespec, name), f"{module}.{name}"


def test_environment_variable_names_are_flytekits() -> None:
    # flytekit/image_spec/image_spec.py:25-29.
    from imagespec.image_spec import image_spec

    assert image_spec._F_IMG_ID == "_F_IMG_ID"
    assert image_spec.FLYTE_FORCE_PUSH_IMAGE_SPEC == "FLYTE_FORCE_PUSH_IMAGE_SPEC"
    assert image_spec.FLYTE_IMG_FAST_FAIL == "FLYTE_IMG_FAST_FAIL"


def test_import_imagespec_loads_none_of_them(tmp_path: Path) -> None:
    code = (
        "import imagespec, sys, json; print(json.dumps(sorted(m for m in sys.modules if 'imagespec' in m)))"
    )
    loaded = set(json.loads(run_python(code, tmp_path)))
    assert not loaded & {*MODULES, "imagespec._registry"}
    out = run_python(
        "import imagespec; print(imagespec.NoOpBuilder.__name__, imagespec.NoOpBuilder.builder_type)",
        tmp_path,
    )
    assert out == "NoOpBuilder noop"


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
