#!/usr/bin/env python3
"""Probe: one imagespec build of a small spec with a chosen engine, timed.

    imagespec_build.py --registry HOST:PORT --base REF --builder docker|buildah
                       [--name NAME] [--no-cache] [--force-push] [--wheel FILE] [--ca-bundle FILE]

The spec: ImageSpec(name=NAME, base_image=REF, python_version="3.11", packages=["six==1.16.0"],
registry=HOST:PORT). Times one `imagespec.build(spec, builder=..., no_cache=..., force_push=...,
imagespec_wheel=..., ca_bundle=...)` call (import and spec construction are outside the timer)
and prints ONE JSON line {"builder", "image", "name", "outcome", "reason", "seconds",
"plan_seconds"}. Exits 3 with {"unavailable": reason} when the engine cannot build here, 1 when
the build failed.
"""

import argparse
import json
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--builder", required=True)
    ap.add_argument("--name", default="bench-build-cold")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--force-push", action="store_true")
    ap.add_argument("--wheel")
    ap.add_argument("--ca-bundle")
    a = ap.parse_args()

    import imagespec
    from imagespec import _core

    if not hasattr(_core, "engine_build"):
        why = "imagespec._core has no engine_build (engines are not in this build)"
        print(json.dumps({"unavailable": why}))
        sys.exit(3)
    why = imagespec.EngineBuilder(a.builder).available()
    if why is not None:
        print(json.dumps({"unavailable": f"{a.builder}: {why}"}))
        sys.exit(3)

    spec = imagespec.ImageSpec(
        name=a.name,
        base_image=a.base,
        python_version="3.11",
        packages=["six==1.16.0"],
        registry=a.registry,
    )
    t0 = time.perf_counter()
    report = imagespec.build(
        spec,
        builder=a.builder,
        no_cache=a.no_cache,
        force_push=a.force_push,
        imagespec_wheel=a.wheel,
        ca_bundle=a.ca_bundle,
        check=False,
    )
    dt = time.perf_counter() - t0
    r = report[spec]
    print(
        json.dumps(
            {
                "builder": a.builder,
                "image": r.image,
                "name": r.name,
                "outcome": r.outcome,
                "reason": r.reason,
                "seconds": dt,
                "plan_seconds": r.seconds,
            }
        )
    )
    sys.exit(0 if r.ok else 1)


if __name__ == "__main__":
    main()
