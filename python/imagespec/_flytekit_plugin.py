"""Imported by flytekit while ``import flytekit`` loads its plugins (entry point group
``flytekit.plugins``): registers imagespec as the image builder ``"imagespec"``."""

from imagespec._flytekit import _register_from_entry_point

_register_from_entry_point()
