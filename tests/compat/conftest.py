"""Compatibility tests: flytekit's behaviour, cited (file and line at v1.16.24), then ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..flytekit_helpers import Flytekit, make_flytekit

# flytekit's own tests, vendored: they import flytekit, so they run in the flytekit venv only
# (test_flytekit_suite.py), never collected here.
collect_ignore = ["flytekit_suite"]


@pytest.fixture(scope="session")
def fk(tmp_path_factory: pytest.TempPathFactory) -> Flytekit:
    return make_flytekit(tmp_path_factory.mktemp("flytekit"))


@pytest.fixture(scope="session")
def suite_dir() -> Path:
    return Path(__file__).resolve().parent / "flytekit_suite"
