"""A one-file source change on a cold runner: imagespec's source-only build vs the engines' rebuilds.

For each builder (docker, buildah, native) a full build of a small image is pushed first (it
records the dependencies image). Then, per repetition, one source file changes and the machine is
made cold: imagespec's cache folder is new and empty, the engine's images and build cache are
removed. Measured, side by side, in one run:

  * imagespec, that builder: ``build(spec)``, which finds the dependencies image and pushes a new
    source layer (the registry's access log says how many blobs were uploaded);
  * docker's own rebuild of the same change, cold (images and build cache removed, as on a fresh
    runner) and warm (its layer cache kept: the best case of today's engines), through
    ``build(spec.force_push(), builder="docker")``, which always runs the engine.

    python bench/bench_rebuild.py [--repeat N] [--builders docker,buildah,native]

Needs what bench_native.py needs: docker-registry, root for scripts/base-image.sh, maturin in .venv;
dockerd is started by scripts/engines.sh when it does not answer (and stopped at the end).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_env import (
    Registry,
    buildah_storage,
    engines_and_registry,
    imagespec_wheel,
    requests_of,
    uploaded_blobs,
)
from imagespec import ImageSpec, build

CA = "/etc/ssl/certs/ca-certificates.crt"


def wipe(work: Path, builder: str, storage_conf: Path) -> None:
    """A cold runner: a new, empty imagespec cache; no images or build cache in the engine."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    os.environ["IMAGESPEC_CACHE_DIR"] = str(cache)
    docker = shutil.which("docker", path="/usr/bin") or "docker"
    if builder == "docker":
        listed = subprocess.run([docker, "images", "-q"], capture_output=True, text=True).stdout.split()
        keep = set(
            subprocess.run(
                [docker, "images", "-q", "imagespec-test/python"], capture_output=True, text=True
            ).stdout.split()
        )
        drop = [i for i in listed if i not in keep]
        if drop:
            subprocess.run([docker, "image", "rm", "-f", *drop], capture_output=True)
        subprocess.run([docker, "builder", "prune", "-af"], capture_output=True)
    elif builder == "buildah":
        env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage_conf)}
        subprocess.run(
            ["buildah", "--storage-driver", "vfs", "rmi", "--all", "--force"], capture_output=True, env=env
        )


def uploads(reg: Registry, since: int) -> int:
    return len(uploaded_blobs(reg, since))


def timed(spec: ImageSpec, builder: str, wheel: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    report = build(spec, builder=builder, imagespec_wheel=wheel, ca_bundle=CA)
    return time.perf_counter() - t0, report[spec].reason or "full build"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--builders", default="docker,buildah,native")
    ap.add_argument("--wheel", type=Path, help="an imagespec wheel to use (default: maturin build)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    storage_conf = buildah_storage(work)
    os.environ["IMAGESPEC_CACHE_DIR"] = str(work / "cache")
    with engines_and_registry(work, "bench-rebuild", access_log=True) as (reg, base):
        wheel = imagespec_wheel(work, args.wheel)
        rows: dict[str, float] = {}
        for builder in [b for b in args.builders.split(",") if b]:
            src = work / f"src-{builder}"
            (src / "pkg").mkdir(parents=True)
            for i in range(50):
                (src / "pkg" / f"mod{i}.py").write_text(f"VALUE_{i} = {i}\n" + "# padding\n" * 50)
            spec = ImageSpec(
                name=f"bench-rebuild/{builder}",
                registry=reg.host,
                base_image=base,
                packages=["six==1.16.0", "attrs==23.2.0"],
                source_root=str(src),
                source_copy_mode="ALL",
                builder_options={"layers": True} if builder == "buildah" else {},
            )
            seconds, how = timed(spec, builder, wheel)
            print(f"{builder}: first build {seconds:.1f} s ({how})", file=sys.stderr)
            runs: list[float] = []
            blobs: list[int] = []
            for i in range(args.repeat):
                (src / "pkg" / "mod0.py").write_text(f"VALUE_0 = {i + 1000}\n")
                wipe(work, builder, storage_conf)
                since = len(requests_of(reg))
                seconds, how = timed(spec, builder, wheel)
                if not how.startswith("source only"):
                    raise SystemExit(f"{builder}: the rebuild was not source-only: {how}")
                runs.append(seconds)
                blobs.append(uploads(reg, since))
            rows[f"imagespec source-only, {builder} (cold runner)"] = statistics.median(runs)
            print(f"  blobs uploaded per rebuild ({builder}): {blobs}", file=sys.stderr)
        # The incumbent: the engine rebuilding the same one-file change.
        src = work / "src-docker-engine"
        (src / "pkg").mkdir(parents=True)
        (src / "pkg" / "mod0.py").write_text("VALUE_0 = 0\n")
        spec = ImageSpec(
            name="bench-rebuild/engine",
            registry=reg.host,
            base_image=base,
            packages=["six==1.16.0", "attrs==23.2.0"],
            source_root=str(src),
            source_copy_mode="ALL",
        )
        timed(spec, "docker", wheel)
        for label, cold in (
            ("docker rebuild, cold runner", True),
            ("docker rebuild, warm layer cache", False),
        ):
            runs = []
            for i in range(args.repeat):
                (src / "pkg" / "mod0.py").write_text(f"VALUE_0 = {i + 2000 + 100 * cold}\n")
                if cold:
                    wipe(work, "docker", storage_conf)
                runs.append(timed(spec.force_push(), "docker", wheel)[0])
            rows[label] = statistics.median(runs)
        print(f"one source file changed, rebuild + push, median of {args.repeat}")
        width = max(len(k) for k in rows)
        for label, value in rows.items():
            print(f"  {label:{width}}  {value:8.3f} s")
        for label, value in rows.items():
            if label.startswith("imagespec"):
                for engine in ("docker rebuild, cold runner", "docker rebuild, warm layer cache"):
                    print(f"  {engine} / {label}: {rows[engine] / value:.1f}x")


if __name__ == "__main__":
    main()
