"""One small package added next to a large wheel: the rebuild's time and whether the large layer
is uploaded again, per builder, side by side.

A local index (tests/registry/package_index.py, on the docker bridge's address so that build
containers reach it too) serves a synthetic wheel ``heavy-blob`` (``--mb`` MB of random bytes: it
does not compress) and two tiny ones. Per case: a cold runner (empty imagespec cache, engine
without images or build cache), an image with heavy-blob and tiny-a built and pushed, then tiny-b
added and built again. The registry's log gives the blobs each rebuild uploaded. The cases:

- native: the native builder (the large distribution is a layer of its own; its tar is not
  compressed again and its blob is not uploaded again);
- docker, one pip step: what flytekit's ImageSpec makes (one install of everything);
- docker, groups: ``builder_options={"package_groups": [["heavy-blob"]]}``.

    python bench/bench_heavy.py [--builders native,docker] [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_env import (
    add_wheel,
    engines_and_registry,
    imagespec_wheel,
    requests_of,
    serve_index,
    uploaded_blobs,
)
from bench_rebuild import wipe
from imagespec import ImageSpec, build

CA = "/etc/ssl/certs/ca-certificates.crt"
MANIFESTS = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def wheelhouse(root: Path, mb: int) -> None:
    add_wheel(
        root, "heavy-blob", {"heavy_blob/__init__.py": b"", "heavy_blob/data.bin": os.urandom(mb << 20)}
    )
    add_wheel(root, "tiny-a", {"tiny_a/__init__.py": b"A = 1\n"})
    add_wheel(root, "tiny-b", {"tiny_b/__init__.py": b"B = 1\n"})


def bridge_address() -> str:
    """docker0's address: the host seen from build containers (and reachable from the host)."""
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True
    ).stdout
    return shown.split()[3].split("/")[0] if shown else "127.0.0.1"


def layers(image: str) -> list[tuple[str, int]]:
    """The (digest, size) of each layer of ``image`` (``host/repo:tag[@digest]``)."""
    host, rest = image.split("/", 1)
    repo, ref = (
        (rest.split("@")[0].rsplit(":", 1)[0], rest.split("@")[1]) if "@" in rest else rest.rsplit(":", 1)
    )
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}")
    req.add_header("Accept", MANIFESTS)
    with urllib.request.urlopen(req, timeout=30) as r:
        return [(layer["digest"], layer["size"]) for layer in json.load(r)["layers"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--builders", default="native,docker")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--wheel", type=Path, help="imagespec's wheel (default: built from this checkout)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-heavy-"))
    wheelhouse(work / "index", args.mb)
    rows: dict[str, float] = {}
    cases = []
    for b in [b for b in args.builders.split(",") if b]:
        cases += [(b, False)] if b == "native" else [(b, False), (b, True)]
    with engines_and_registry(work, "bench-heavy", access_log=True) as (reg, base):
        host = bridge_address()
        own = imagespec_wheel(work, args.wheel)
        with serve_index(work / "index", host) as index:
            for builder, grouped in cases:
                label = (
                    builder
                    if builder == "native"
                    else f"{builder}, {'groups' if grouped else 'one pip step'}"
                )
                options: dict[str, object] = {"package_groups": [["heavy-blob"]]} if grouped else {}
                wipe(work, builder, work / "storage.conf")

                def spec(
                    packages: list[str], label: str = label, options: dict[str, object] = options
                ) -> ImageSpec:
                    return ImageSpec(
                        name="bench-heavy/" + label.replace(", ", "-").replace(" ", "-"),
                        registry=reg.host,
                        base_image=base,
                        python_version="3.11",
                        packages=packages,
                        pip_index=index,
                        pip_extra_args=f"--trusted-host {host}",
                        builder_options=options,
                    )

                t0 = time.perf_counter()
                first = spec(["heavy-blob==1.0", "tiny-a==1.0"])
                name = build(first, builder=builder, imagespec_wheel=own, ca_bundle=CA)[first].name
                rows[f"{label}: first build"] = time.perf_counter() - t0
                heavy = max(layers(name), key=lambda layer: layer[1])[0]
                since = len(requests_of(reg))
                t0 = time.perf_counter()
                second = spec(["heavy-blob==1.0", "tiny-a==1.0", "tiny-b==1.0"])
                name = build(second, builder=builder, imagespec_wheel=own, ca_bundle=CA)[second].name
                rows[f"{label}: + tiny-b"] = time.perf_counter() - t0
                puts = uploaded_blobs(reg, since)
                sent = sum(size for digest, size in layers(name) if any(digest in p for p in puts))
                rows[f"{label}: + tiny-b, blobs uploaded"] = float(len(puts))
                rows[f"{label}: + tiny-b, layer MB uploaded"] = sent / (1 << 20)
                rows[f"{label}: + tiny-b, heavy layer uploaded again"] = float(any(heavy in p for p in puts))
    width = max(len(k) for k in rows)
    print(f"heavy-blob ({args.mb} MB, incompressible) + tiny-a, then tiny-b added (a cold runner each case)")
    for k, v in rows.items():
        unit = "" if "uploaded" in k else " s"
        if "MB" in k:
            print(f"  {k:{width}}  {v:8.1f}")
            continue
        print(f"  {k:{width}}  {v:8.1f}{unit}")
    ours = rows.get("native: + tiny-b")
    for label in ("docker, one pip step", "docker, groups"):
        theirs = rows.get(f"{label}: + tiny-b")
        if ours and theirs:
            print(f"  adding a package, {label} / native: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
