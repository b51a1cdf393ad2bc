"""One light package added next to a heavy one: the rebuild with package groups vs without.

For docker and buildah (with layers), an image with scikit-learn (with numpy and scipy, about
100 MB installed) is built and pushed; then ``rich`` is added and the image is built again. With
``builder_options={"package_groups": [["scikit-learn"]]}`` the scikit-learn step is cached and its
layer not uploaded again; without groups the one pip step installs everything again. Each case
starts from an engine without images or build cache, so the first build is the same for both.

    python bench/bench_groups.py [--builders docker,buildah]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_env import buildah_storage, engines_and_registry, imagespec_wheel, requests_of, uploaded_blobs
from bench_rebuild import wipe
from imagespec import ImageSpec, build

CA = "/etc/ssl/certs/ca-certificates.crt"
HEAVY = "scikit-learn==1.5.2"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--builders", default="docker,buildah")
    ap.add_argument("--wheel", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    storage_conf = buildah_storage(work)
    rows: dict[str, float] = {}
    with engines_and_registry(work, "bench-groups", access_log=True) as (reg, base):
        wheel = imagespec_wheel(work, args.wheel)
        for builder in [b for b in args.builders.split(",") if b]:
            for grouped in (False, True):
                options: dict[str, object] = {"layers": True} if builder == "buildah" else {}
                if grouped:
                    options["package_groups"] = [["scikit-learn"]]
                label = f"{builder}, {'groups' if grouped else 'one pip step'}"
                wipe(work, builder, storage_conf)

                def spec(
                    packages: list[str], label: str = label, options: dict[str, object] = options
                ) -> ImageSpec:
                    return ImageSpec(
                        name="bench-groups/" + label.replace(", ", "-").replace(" ", "-"),
                        registry=reg.host,
                        base_image=base,
                        python_version="3.11",
                        packages=packages,
                        builder_options=options,
                    )

                t0 = time.perf_counter()
                build(spec([HEAVY]), builder=builder, imagespec_wheel=wheel, ca_bundle=CA)
                first = time.perf_counter() - t0
                since = len(requests_of(reg))
                t0 = time.perf_counter()
                build(spec([HEAVY, "rich==13.7.1"]), builder=builder, imagespec_wheel=wheel, ca_bundle=CA)
                rows[f"{label}: first build"] = first
                rows[f"{label}: + rich"] = time.perf_counter() - t0
                puts = uploaded_blobs(reg, since)
                rows[f"{label}: + rich, blobs uploaded"] = float(len(puts))
    width = max(len(k) for k in rows)
    print(f"{HEAVY} image, then rich added (engine without images or cache before each first build)")
    for k, v in rows.items():
        unit = "" if k.endswith("uploaded") else " s"
        print(f"  {k:{width}}  {v:8.1f}{unit}")
    for builder in [b for b in args.builders.split(",") if b]:
        a, b = rows.get(f"{builder}, one pip step: + rich"), rows.get(f"{builder}, groups: + rich")
        if a and b:
            print(f"  {builder}: adding a package, one pip step / groups: {a / b:.1f}x")


if __name__ == "__main__":
    main()
