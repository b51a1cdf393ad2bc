"""What the process around a spec says: the FLYTE_* and IMAGESPEC_* switches, the modules it has
imported, the distributions it has installed. One reading of each, so every part of imagespec
(and flytekit, for its variables) agrees on what a setting means."""

from __future__ import annotations

import os
import sys

from imagespec import _core

FORCE_PUSH_VAR = "FLYTE_FORCE_PUSH_IMAGE_SPEC"
OWN_FORCE_PUSH_VAR = "IMAGESPEC_FORCE_PUSH_IMAGE_SPEC"
FAST_FAIL_VAR = "FLYTE_IMG_FAST_FAIL"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def python_version() -> str:
    """This interpreter's `major.minor`: a spec's default python_version."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def flytekit_flag(name: str) -> bool | None:
    """A FLYTE_* boolean variable as flytekit reads it (its str2bool, flytekit/clis/helpers.py:26-32:
    any value but false, 0, off or no is true); None when unset. One reading for every such
    variable, so a setting means the same to both tools."""
    value = os.environ.get(name)
    return None if value is None else value.strip().lower() not in _FALSE


def own_flag(name: str) -> bool | None:
    """An IMAGESPEC_* boolean variable: True or False only for a clear yes or no, None otherwise
    (a typo must not turn a safety off)."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def force_push_from_env() -> bool:
    return bool(flytekit_flag(FORCE_PUSH_VAR)) or bool(own_flag(OWN_FORCE_PUSH_VAR))


def fast_fail() -> bool:
    """flytekit's flag: ``FLYTE_IMG_FAST_FAIL`` true makes an unknown existence an error."""
    return bool(flytekit_flag(FAST_FAIL_VAR))


def loaded_module_files() -> list[str]:
    """The absolute files of the modules imported so far (LOADED_MODULES copies those under
    source_root)."""
    files = []
    for module in list(sys.modules.values()):
        # Read the instance dict directly: attribute access on a lazily loaded module would import it.
        try:
            path = object.__getattribute__(module, "__dict__").get("__file__")
        except AttributeError:
            continue
        # "<stdin>", "<string>" and frozen modules name no file.
        if isinstance(path, str) and os.path.isabs(path):
            files.append(path)
    return files


_NOT_INSTALLED: list[type[Exception]] = []


def not_installed_error() -> type[Exception]:
    """Made on first use: importing importlib.metadata would slow `import imagespec` down."""
    if _NOT_INSTALLED:
        return _NOT_INSTALLED[0]
    from importlib.metadata import PackageNotFoundError

    class NotInstalledError(_core.SpecError, PackageNotFoundError):
        """A pinned package that is not installed: flytekit raises PackageNotFoundError here."""

        def __str__(self) -> str:
            return (
                f"pinned_packages: {self.args[0]!r} is not installed in this environment, so it has no "
                "version to pin; install it or remove it"
            )

    NotInstalledError.__module__ = "imagespec"
    NotInstalledError.__qualname__ = "NotInstalledError"
    _NOT_INSTALLED.append(NotInstalledError)
    return NotInstalledError
