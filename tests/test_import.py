"""`import imagespec` stays light: task code imports it in every container start."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_python


def test_import_loads_no_heavy_modules(tmp_path: Path) -> None:
    loaded = set(
        json.loads(run_python("import imagespec, sys, json; print(json.dumps(list(sys.modules)))", tmp_path))
    )
    assert not loaded & {"imagespec._registry", "dataclasses", "inspect", "argparse", "typing"}


def test_lazy_names_resolve(tmp_path: Path) -> None:
    out = run_python(
        "import imagespec; print(imagespec.check.__name__, imagespec.ImageStatus.__name__)", tmp_path
    )
    assert out == "check ImageStatus"
