"""A plan of 8 independent images on one remote engine against two, and what the TLS hop costs
against the same daemon's local socket.

The remote engines are dockerd in network namespaces of their own, reached over TLS through veth
pairs (tests/engines/hosts.py): on this one machine they share its 2 cores, so the two-engine
figure is what spreading buys when the builds wait on more than the CPU, not what two machines
give. Each case builds images no engine has built (its own commands); a warm-up first gives every
engine the base image and the imagespec layer, as engines that have built before have them.

    .venv/bin/python bench/bench_pool.py [--images 8] [--wheel FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engines.hosts import remote_docker

from bench_env import engines_and_registry, imagespec_wheel
from imagespec import ImageSpec, build


def specs(registry: str, base: str, case: str, n: int) -> list[ImageSpec]:
    # Each build does some work of its own (a second of CPU, a file written), as a real step does.
    work = "python3 -c 'import hashlib; [hashlib.sha256(bytes(1 << 20)).digest() for _ in range(300)]'"
    return [
        ImageSpec(
            name=f"bench-pool-{i}",
            registry=registry,
            base_image=base,
            commands=[work, f"echo {case}-{i} > /root/n"],
        )
        for i in range(n)
    ]


def timed(items: list[ImageSpec], engines: list[str], wheel: Path) -> float:
    started = time.perf_counter()
    report = build(items, engines=engines, imagespec_wheel=wheel)
    seconds = time.perf_counter() - started
    assert all(report[s].outcome == "built" for s in items), report.summary()
    return seconds


def version_latency(env_entry: tuple[str, dict[str, str]], runs: int = 20) -> float:
    """Median seconds of `docker version` against a daemon."""
    _, env = env_entry
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["/usr/bin/docker", "version"], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--wheel", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel = imagespec_wheel(work, args.wheel)
        with engines_and_registry(work, "bench-pool") as (reg, base):
            port = int(reg.host.rsplit(":", 1)[1])
            with remote_docker(11, work / "h1", port) as h1, remote_docker(12, work / "h2", port) as h2:
                both = [h1.entry, h2.entry]
                timed(specs(reg.host, base, "warm", 2), both, wheel)  # base and imagespec layer on each
                one = timed(specs(reg.host, base, "one", args.images), [h1.entry], wheel)
                one2 = timed(specs(reg.host, base, "slots", args.images), [h1.entry + "&parallel=2"], wheel)
                two = timed(specs(reg.host, base, "two", args.images), both, wheel)
                sock = timed(specs(reg.host, base, "sock", 1), [f"docker@{h1.socket}"], wheel)
                tls = timed(specs(reg.host, base, "tls", 1), [h1.entry], wheel)
                socket_env = {"DOCKER_HOST": h1.socket, "PATH": "/usr/bin:/bin"}
                lat_sock = version_latency((h1.socket, socket_env))
                lat_tls = version_latency((h1.url, {**h1.env(), "PATH": "/usr/bin:/bin"}))
    print(f"{args.images} independent images (seconds, wall):")
    print(f"  one engine, 1 build at a time     {one:7.1f}")
    print(f"  one engine, 2 builds at a time    {one2:7.1f}   ratio {one / one2:.2f}x")
    print(f"  two engines, 1 build each at once {two:7.1f}   ratio {one / two:.2f}x")
    print("one image, the same daemon:")
    print(f"  unix socket  {sock:6.2f} s   docker version {lat_sock * 1000:6.1f} ms")
    print(f"  TLS over tcp {tls:6.2f} s   docker version {lat_tls * 1000:6.1f} ms   ratio {tls / sock:.2f}x")


if __name__ == "__main__":
    main()
