#!/usr/bin/env python3
"""Probe: time flytekit ImageSpec(...).tag on a synthetic tree (see gen_tree.py).

Protocol (shared with other implementations' probes, e.g. probes/imagespec_tag.py):
    PROBE --tree DIR --mode {loaded,all,nosrc} --reps N [--warmup W] [--cold] [--profile OUT]
prints ONE JSON line: {"impl", "mode", "cold", "times_s": [...], "tag": "..."}.

The spec is
    ImageSpec(name="bench-tag", packages=["pandas", "numpy"], env={"Debug": "True"},
              registry="localhost:5000", source_root=DIR, copy=[DIR/conf],
              requirements=DIR/requirements.txt, source_copy_mode=MODE)
mode loaded -> source_copy_mode left unset (flytekit defaults it to LOADED_MODULES because
               source_root is set); DIR/app/workflows.py (and the modules it imports) is
               imported first so that sys.modules holds user files of the tree.
mode all    -> source_copy_mode=CopyFileDetection.ALL (walk + hash every non-ignored file)
mode nosrc  -> no source_root (copy + requirements only)
Only `.tag` is timed: flytekit and its lazily imported helpers are imported beforehand,
and a new ImageSpec object is built for every repetition (tag is a cached_property).
--cold drops the page cache (sync; echo 3 > /proc/sys/vm/drop_caches; needs root)
before every timed repetition.

Copied from the shared baseline probes; only lint/typing changes. Runs in the flytekit venv
(~/.cache/imagespec-bench/venv-flytekit, made by ../bench_tag.py), not in imagespec's interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", required=True)
    ap.add_argument("--mode", choices=["loaded", "all", "nosrc"], default="loaded")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--profile", help="write cProfile stats of one extra repetition to this file (+ .txt)")
    a = ap.parse_args()
    tree = os.path.abspath(a.tree)

    import flytekit

    # lazily imported inside ImageSpec.tag: import them now so they are not timed
    import flytekit.tools.fast_registration
    import flytekit.tools.ignore
    import flytekit.tools.script_mode
    from flytekit.constants import CopyFileDetection
    from flytekit.image_spec import ImageSpec

    if a.mode == "loaded":
        sys.path.insert(0, tree)
        import app.workflows  # noqa: F401  (imports pkg modules of the tree)

    def make() -> ImageSpec:
        kw: dict[str, Any] = dict(
            name="bench-tag",
            packages=["pandas", "numpy"],
            env={"Debug": "True"},
            registry="localhost:5000",
            copy=[os.path.join(tree, "conf")],
            requirements=os.path.join(tree, "requirements.txt"),
        )
        if a.mode != "nosrc":
            kw["source_root"] = tree
        if a.mode == "all":
            kw["source_copy_mode"] = CopyFileDetection.ALL
        return ImageSpec(**kw)

    if not a.cold:
        for _ in range(a.warmup):
            _ = make().tag
    times: list[float] = []
    tag = None
    for _ in range(a.reps):
        if a.cold:
            drop_caches()
        t0 = time.perf_counter()
        tag = make().tag
        times.append(time.perf_counter() - t0)

    if a.profile:
        import cProfile
        import io
        import pstats

        if a.cold:
            drop_caches()
        pr = cProfile.Profile()
        pr.enable()
        _ = make().tag
        pr.disable()
        pr.dump_stats(a.profile)
        s = io.StringIO()
        st = pstats.Stats(pr, stream=s)
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(30)
        with open(a.profile + ".txt", "w") as f:
            f.write(s.getvalue())

    print(
        json.dumps(
            {
                "impl": "flytekit " + flytekit.__version__,
                "mode": a.mode,
                "cold": a.cold,
                "times_s": times,
                "tag": tag,
            }
        )
    )


if __name__ == "__main__":
    main()
