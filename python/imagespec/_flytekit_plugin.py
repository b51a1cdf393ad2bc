"""Imported by flytekit while ``import flytekit`` loads its plugins (entry point group
``flytekit.plugins``): registers imagespec as the image builder ``"imagespec"`` and makes flytekit
take imagespec's ``ImageSpec`` wherever it takes its own. Neither may break that import: a
failure is a warning."""

from imagespec._flytekit import _register_from_entry_point
from imagespec._flytekit_hooks import install

_register_from_entry_point()
install()
