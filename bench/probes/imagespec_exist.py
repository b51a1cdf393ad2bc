#!/usr/bin/env python3
"""Probe: imagespec's batch existence check over a list of image references.

    imagespec_exist.py --refs FILE [--reps R] [--warmup W] [--cached]
prints ONE JSON line {"impl", "count", "times_s": [total per rep], "status": {status: n}}.
Each repetition is one `_core.check(refs)` call: a new connection pool every time (as a new CLI
process would have), every reference checked concurrently. Without --cached the positive-answer
cache is off, so every repetition asks the registry; with --cached it is on (a private cache
directory, filled by the warm-up), which is what a repeated `imagespec build` sees.
"""

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refs", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--cached", action="store_true")
    a = ap.parse_args()
    with open(a.refs) as f:
        refs = [line.strip() for line in f if line.strip()]
    os.environ["IMAGESPEC_CACHE_DIR"] = tempfile.mkdtemp(prefix="imagespec-bench-cache-")
    from imagespec import _core

    times, status = [], {}
    for i in range(a.warmup + a.reps):
        t0 = time.perf_counter()
        res = _core.check(refs, use_cache=a.cached)
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
            for r in res:
                s = str(r["status"])
                status[s] = status.get(s, 0) + 1
    impl = "imagespec (cache)" if a.cached else "imagespec"
    print(json.dumps({"impl": impl, "count": len(refs), "times_s": times, "status": status}))


if __name__ == "__main__":
    main()
