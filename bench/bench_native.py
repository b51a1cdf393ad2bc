"""Native builds vs the engines, on one machine, against a loopback registry.

For each image (a small-package image, and the seed's pandas image with ``--pandas``):
  * cold build + push: native with ``no_cache`` (no layer cache; uv's download cache stays warm, as
    pip's does for the engines), then docker and buildah with ``no_cache``;
  * a one-file source change, rebuilt and pushed with each builder's warm cache.

docker and buildah run through ``imagespec.build(spec.force_push(), builder=...)``; where this
build of imagespec has no such engine the line says "not available".

    python bench/bench_native.py [--pandas] [--repeat N]

Needs: docker-registry, skopeo and root for scripts/base-image.sh (the Python base image), maturin
in .venv (a wheel of imagespec for the images); dockerd is started by scripts/engines.sh when it
does not answer (and stopped at the end).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_env import engines_and_registry, imagespec_wheel
from imagespec import BuildError, ImageSpec, build

CA = "/etc/ssl/certs/ca-certificates.crt"


def timed(spec: ImageSpec, builder: str, wheel: Path, no_cache: bool) -> float | str:
    t0 = time.perf_counter()
    try:
        build(spec, builder=builder, imagespec_wheel=wheel, ca_bundle=CA, no_cache=no_cache)
    except BuildError as e:
        text = str(e)
        if "not registered" in text or "not available" in text:
            return "not available"
        return "failed: " + text.splitlines()[-1][:200]
    return time.perf_counter() - t0


def show(label: str, values: list[float | str]) -> float | None:
    """Prints the median (or why there is none) and returns it."""
    nums = [v for v in values if isinstance(v, float)]
    if nums:
        print(f"  {label:48} {statistics.median(nums):8.3f} s  (runs: {', '.join(f'{v:.3f}' for v in nums)})")
        return statistics.median(nums)
    print(f"  {label:48} {values[0]}")
    return None


def ratios(medians: dict[tuple[str, str], float | None]) -> None:
    """How many times faster native is than each engine, for each kind of build."""
    for kind in ("cold", "edit"):
        ours = medians.get(("native", kind))
        for engine in ("docker", "buildah"):
            theirs = medians.get((engine, kind))
            if ours and theirs:
                what = "cold build + push" if kind == "cold" else "one-file rebuild + push"
                print(f"  {engine}/native, {what}: {theirs / ours:.1f}x")


def source_tree(d: Path, files: int = 50) -> Path:
    (d / "pkg").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (d / "pkg" / f"mod{i}.py").write_text(f"VALUE_{i} = {i}\n" + "# padding\n" * 50)
    (d / "main.py").write_text("print('hello')\n")
    return d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pandas", action="store_true", help="also the seed's pandas image")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--wheel", type=Path, help="an imagespec wheel to use (default: maturin build)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-native-"))
    os.environ["IMAGESPEC_CACHE_DIR"] = str(work / "cache")
    # The engines compared with: dockerd started (and stopped after) when it does not answer.
    with engines_and_registry(work, "bench-native") as (reg, base):
        wheel = imagespec_wheel(work, args.wheel)
        images = {"small (six, attrs; 51 source files)": ["six==1.16.0", "attrs==23.2.0"]}
        if args.pandas:
            images["pandas (pandas, numpy; 51 source files)"] = ["pandas", "numpy"]
        for label, packages in images.items():
            print(label)
            medians: dict[tuple[str, str], float | None] = {}
            for builder in ("native", "docker", "buildah"):
                src = source_tree(work / f"src-{builder}-{len(packages)}-{packages[0]}")
                spec = ImageSpec(
                    name=f"bench/{builder}",
                    registry=reg.host,
                    base_image=base,
                    packages=packages,
                    env={"Debug": "True"},
                    source_root=str(src),
                    source_copy_mode="ALL",
                )
                cold = [timed(spec.force_push(), builder, wheel, True) for _ in range(args.repeat)]
                medians[(builder, "cold")] = show(f"{builder} cold build + push", cold)
                if not any(isinstance(v, float) for v in cold):
                    continue
                edits: list[float | str] = []
                for i in range(args.repeat):
                    (src / "pkg" / "mod0.py").write_text(f"VALUE_0 = {i + 1000}\n")
                    edits.append(timed(spec.force_push(), builder, wheel, False))
                medians[(builder, "edit")] = show(f"{builder} one-file change, rebuild + push (warm)", edits)
            ratios(medians)


if __name__ == "__main__":
    main()
