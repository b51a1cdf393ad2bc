"""The in-container entry point of a task: ``python -m imagespec.execute --module M --task T
--inputs FILE --output-prefix FOLDER``.

Imports module ``M`` (``/root``, where the spec's ``source_root`` files land, is on ``PYTHONPATH``
in imagespec images; with ``IMAGESPEC_CODE_DIR`` set, that folder of shipped code comes first on
``sys.path`` and ``PYTHONPATH``), finds task ``T`` in it, reads the call's keyword arguments from
``FILE`` (a pickle of a dict), calls the task's function and writes its return value, pickled, to
``FOLDER/outputs.pkl``. Exit codes: 0 done; 1 the module, the task or the inputs could not be
loaded, or the task raised (its traceback on stderr); 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from imagespec._task import CODE_DIR_VAR, OUTPUT_FILE, Task


def _fail(message: str) -> int:
    print(f"imagespec.execute: error: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagespec.execute", description=__doc__)
    parser.add_argument("--module", required=True, help="the module that defines the task")
    parser.add_argument("--task", required=True, help="the task's name in that module")
    parser.add_argument("--inputs", required=True, help="a pickle file of the call's keyword arguments")
    parser.add_argument("--output-prefix", required=True, help=f"the folder {OUTPUT_FILE} is written to")
    args = parser.parse_args(argv)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    code = os.environ.get(CODE_DIR_VAR)
    if code:
        if not os.path.isdir(code):
            return _fail(f"{CODE_DIR_VAR}={code} is not a folder (the shipped code is not mounted there)")
        # First, before the image's /root: shipped code is the code that was run with, as flytekit's
        # fast registration unpacks its tarball over the working folder. PYTHONPATH too, for
        # processes the task starts (flytekit/bin/entrypoint.py:792).
        sys.path.insert(0, code)
        previous = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = code + (os.pathsep + previous if previous else "")
    try:
        module = importlib.import_module(args.module)
    except BaseException as e:
        traceback.print_exc()
        return _fail(f"importing module {args.module!r} failed: {type(e).__name__}: {e}")
    target: Any = module
    for part in args.task.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, Task):
        return _fail(f"module {args.module!r} has no task {args.task!r}")
    try:
        with open(args.inputs, "rb") as f:
            kwargs = pickle.load(f)
    except BaseException as e:
        return _fail(f"reading the inputs {args.inputs}: {type(e).__name__}: {e}")
    if not isinstance(kwargs, dict):
        return _fail(f"{args.inputs} holds a {type(kwargs).__name__}, not a dict of arguments")
    try:
        result = target.fn(**kwargs)
    except BaseException:
        traceback.print_exc()
        return _fail(f"task {args.task!r} raised")
    os.makedirs(args.output_prefix, exist_ok=True)
    out = os.path.join(args.output_prefix, OUTPUT_FILE)
    partial = f"{out}.partial"
    with open(partial, "wb") as f:
        pickle.dump(result, f)
    os.replace(partial, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
