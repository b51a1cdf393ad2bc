#!/usr/bin/env python3
"""Probe: time imagespec ImageSpec(...).tag on a synthetic tree (see ../gen_tree.py).

Mirrors probes/flytekit_tag.py (same spec, same modes, same JSON line), with one measurement per
process, because the first call must run against an empty digest cache:
    PROBE --tree DIR --mode {loaded,all,nosrc} [--cold]
prints ONE JSON line: {"impl", "mode", "cold", "times_s": [first, second], "cpu_s": [first, second],
"tag", "tag_second"}; cpu_s is the process's user + system CPU time (all threads) during each call.
The caller points IMAGESPEC_CACHE_DIR at a fresh, empty directory for every run.

The spec is the flytekit probe's:
    ImageSpec(name="bench-tag", packages=["pandas", "numpy"], env={"Debug": "True"},
              registry="localhost:5000", source_root=DIR, copy=["conf"],
              requirements=DIR/requirements.txt, source_copy_mode=MODE)
`copy` entries are relative to the working directory in imagespec, so the probe chdirs into DIR
(flytekit's probe passes the absolute DIR/conf: the same files).
mode loaded -> CopyFileDetection.LOADED_MODULES, set explicitly (flytekit's probe leaves it unset
               and flytekit defaults it to LOADED_MODULES because source_root is set);
               DIR/app/workflows.py (and the pkg modules it imports) is imported first, exactly
               as the flytekit probe does, so that sys.modules holds the same user files.
mode all    -> CopyFileDetection.ALL (walk + hash every non-ignored file)
mode nosrc  -> no source_root (copy + requirements only)
Timed, as in the flytekit probe, is `make().tag` (build the ImageSpec object, read its tag; imagespec
is imported beforehand): first call, then a second call on a new object with the same fields (the
tree is unchanged, so it may use the digest cache).
--cold drops the page cache (sync; echo 3 > /proc/sys/vm/drop_caches; needs root) before the
first call only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cpu_time() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--mode", choices=["loaded", "all", "nosrc"], default="loaded")
    ap.add_argument("--cold", action="store_true")
    a = ap.parse_args()
    tree = os.path.abspath(a.tree)

    import imagespec
    from imagespec import CopyFileDetection, ImageSpec

    if a.mode == "loaded":
        sys.path.insert(0, tree)
        import app.workflows  # noqa: F401  (imports pkg modules of the tree)
    os.chdir(tree)  # copy=["conf"] is relative to the working directory

    def make() -> ImageSpec:
        kw: dict[str, Any] = dict(
            name="bench-tag",
            packages=["pandas", "numpy"],
            env={"Debug": "True"},
            registry="localhost:5000",
            copy=["conf"],
            requirements=os.path.join(tree, "requirements.txt"),
        )
        if a.mode != "nosrc":
            kw["source_root"] = tree
        if a.mode == "all":
            kw["source_copy_mode"] = CopyFileDetection.ALL
        elif a.mode == "loaded":
            kw["source_copy_mode"] = CopyFileDetection.LOADED_MODULES
        return ImageSpec(**kw)

    if a.cold:
        drop_caches()
    times: list[float] = []
    cpu: list[float] = []
    tags: list[str] = []
    for _ in range(2):
        c0, t0 = cpu_time(), time.perf_counter()
        tags.append(make().tag)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_time() - c0)

    version = getattr(imagespec, "__version__", "?")
    out = {"impl": f"imagespec {version}", "mode": a.mode, "cold": a.cold, "times_s": times, "cpu_s": cpu}
    print(json.dumps({**out, "tag": tags[0], "tag_second": tags[1]}))


if __name__ == "__main__":
    main()
