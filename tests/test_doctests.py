"""The examples in the docstrings run and say what they show (every module of the package)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import imagespec

# Modules that act when imported: the command line, and the plugin flytekit loads (it needs flytekit).
ACTING = {"imagespec.__main__", "imagespec._flytekit_plugin"}
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(imagespec.__path__, "imagespec.") if m.name not in ACTING
)


def test_the_package_has_examples() -> None:
    found = sum(len(doctest.DocTestFinder().find(importlib.import_module(m))) for m in MODULES)
    assert found > 20, found


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("_F_IMG_ID", "IMAGESPEC_IMG_ID"):
        monkeypatch.delenv(var, raising=False)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{module}: {result.failed} of {result.attempted} examples failed"
