"""Constructs each published ImageSpec declaration with one tool and prints the results as JSON.

    python evaluate.py flytekit|imagespec ENTRIES.json

ENTRIES.json is a list of entries of specs.json (key, text, bindings). Run in an empty working
folder, which the path bindings name (WORKDIR). The last line of output is one JSON object: the
tool's version and, per key, whether the spec was made (`ok`) or the exception (`error`: type,
its classes, message), then, for a spec, whether its id, is_container() and image_name() work.
Standalone: it runs in flytekit's venv, where this checkout is a wheel on PYTHONPATH and tests/
is not importable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import sys
import types
import warnings
from typing import Any


def described(e: BaseException) -> dict[str, Any]:
    kind = type(e)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "classes": [f"{c.__module__}.{c.__qualname__}" for c in kind.__mro__],
        "message": str(e)[:600],
    }


def namespace(spec_class: type, workdir: str) -> dict[str, Any]:
    """What the bindings of specs.json are evaluated in."""

    def module_like(**attributes: Any) -> types.SimpleNamespace:
        # `import flytekit as fl` / `import union`: the package's ImageSpec is the tool's
        return types.SimpleNamespace(ImageSpec=spec_class, **attributes)

    def os_like(environ: dict[str, str]) -> types.SimpleNamespace:
        # os with exactly these variables set, whatever the environment the test runs in
        return types.SimpleNamespace(
            **{k: getattr(os, k) for k in ("path", "sep", "pathsep", "getcwd")},
            environ=dict(environ),
            getenv=lambda key, default=None: environ.get(key, default),
        )

    return {
        "ImageSpec": spec_class,
        "WORKDIR": workdir,
        "os": os,
        "sys": sys,
        "pathlib": pathlib,
        "module_like": module_like,
        "os_like": os_like,
    }


def attempt(make: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "value": make()}
    except Exception as e:
        return {"ok": False, "error": described(e)}


def construct(entry: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    scope = dict(base)
    for name, binding in entry["bindings"].items():
        scope[name] = eval(binding["value"], dict(base))
    made = attempt(lambda: eval(entry["text"], scope))
    if not made["ok"]:
        return made
    spec = made.pop("value")
    made["class"] = type(spec).__name__
    for what, get in (
        ("id", lambda: spec.id),
        ("is_container", spec.is_container),
        ("image_name", spec.image_name),
    ):
        got = attempt(get)
        if got["ok"]:
            made[what] = {
                "ok": True,
                "value": got["value"] if isinstance(got["value"], (str, bool)) else None,
            }
        else:
            made[what] = got
    return made


def main() -> None:
    tool, entries_file = sys.argv[1], sys.argv[2]
    if tool == "flytekit":
        from flytekit import ImageSpec, __version__
    else:
        from imagespec import ImageSpec, __version__
    entries = json.loads(pathlib.Path(entries_file).read_text())
    base = namespace(ImageSpec, os.getcwd())
    results: dict[str, Any] = {}
    # The tools' own output (warnings, flytekit's click messages) stays off the result line.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for entry in entries:
            results[entry["key"]] = construct(entry, base)
    print(json.dumps({"version": __version__, "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
