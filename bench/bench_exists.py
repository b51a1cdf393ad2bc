#!/usr/bin/env python3
"""Existence benchmark: imagespec's batch check vs flytekit 1.16 vs skopeo vs the floor.

One run measures, on a loopback CNCF registry started here, 1, 20 and 200 tags (half present,
half missing; the single tag is present):
  - imagespec: one batch `_core.check` per repetition (probes/imagespec_exist.py), cache off;
  - imagespec (cache): the same with the positive-answer cache warm (what a rebuild sees);
  - flytekit 1.16: `ImageSpec.exist()` per image, as its build does (probes/flytekit_exist.py, in
    ~/.cache/imagespec-bench/venv-flytekit; it asks the Docker daemon, started here if needed);
  - skopeo: `skopeo inspect` per image;
  - floor: in-process keep-alive HEADs from 16 threads (probes/raw_head.py).
Then 20 tags through probes/latency_proxy.py adding 20 ms each way (40 ms round trip).
Every figure is a median of --reps repetitions (skopeo: --skopeo-reps), after one warm-up.

    python bench/bench_exists.py [--reps 5] [--skopeo-reps 3] [--no-flytekit] [--no-skopeo] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROBES = HERE / "probes"
CACHE = Path.home() / ".cache" / "imagespec-bench"
VENV = CACHE / "venv-flytekit"
FLYTEKIT_REQ = "flytekit==1.16.*"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def ensure_flytekit() -> Path:
    py = VENV / "bin" / "python"
    check = "import flytekit, docker, sys; sys.exit(not flytekit.__version__.startswith('1.16.'))"
    if py.exists() and subprocess.run([str(py), "-c", check], capture_output=True).returncode == 0:
        return py
    log(f"creating {VENV} with {FLYTEKIT_REQ} ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", FLYTEKIT_REQ, "docker"]
    subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
    return py


def ensure_dockerd() -> subprocess.Popen[bytes] | None:
    """Starts dockerd when its socket does not answer; returns the process we started, if any."""
    sock = Path("/var/run/docker.sock")
    if sock.exists() and subprocess.run(["docker", "version"], capture_output=True).returncode == 0:
        return None
    if shutil.which("dockerd") is None:
        raise SystemExit("dockerd is not installed: apt-get install -y docker.io (or pass --no-flytekit)")
    log("starting dockerd ...")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "dockerd.log").open("wb") as out:
        proc = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while subprocess.run(["docker", "version"], capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"dockerd did not start; see {CACHE / 'dockerd.log'}")
        time.sleep(0.2)
    return proc


def start_registry(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = workdir / "registry.yml"
    conf.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(f"http://127.0.0.1:{port}/v2/")
    return proc, f"localhost:{port}"


def start_latency_proxy(upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    up = upstream.replace("localhost", "127.0.0.1")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(PROBES / "latency_proxy.py"),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            up,
            "--delay-ms",
            "20",
        ]
    )
    wait_http(f"http://127.0.0.1:{port}/v2/")
    return proc, f"localhost:{port}"


def names(py: str, registry: str, count: int, variant: str) -> list[str]:
    """References whose tags are flytekit's, from its probe (so every tool checks the same names)."""
    out = subprocess.run(
        [
            py,
            str(PROBES / "flytekit_exist.py"),
            "names",
            "--registry",
            registry,
            "--count",
            str(count),
            "--variant",
            variant,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def synthetic(registry: str, count: int, variant: str) -> list[str]:
    return [f"{registry}/bench-exist:{variant}-{i:04d}" for i in range(count)]


def push(refs: list[str], via: str) -> None:
    subprocess.run(
        [sys.executable, str(PROBES / "push_tiny.py"), "--via", via.replace("localhost", "127.0.0.1"), "-"],
        input="\n".join(refs),
        text=True,
        check=True,
        capture_output=True,
    )


def json_probe(cmd: list[str]) -> dict[str, Any]:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed: {p.stderr[-1500:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def skopeo(refs: list[str], reps: int) -> dict[str, Any]:
    times, status = [], {}
    for i in range(reps + 1):
        t0 = time.perf_counter()
        codes = [
            subprocess.run(
                ["skopeo", "inspect", "--tls-verify=false", f"docker://{r}"], capture_output=True
            ).returncode
            for r in refs
        ]
        dt = time.perf_counter() - t0
        if i:
            times.append(dt)
            for c in codes:
                status["exists" if c == 0 else "missing/error"] = (
                    status.get("exists" if c == 0 else "missing/error", 0) + 1
                )
    return {"times_s": times, "status": status}


def measure(label: str, present: list[str], missing: list[str], ctx: dict[str, Any]) -> dict[str, Any]:
    refs = present + missing
    reps = ctx["reps"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(refs) + "\n")
        refs_file = f.name
    row: dict[str, Any] = {"setup": label, "count": len(refs)}
    log(f"[{label}] {len(refs)} tags: imagespec")
    row["imagespec"] = json_probe(
        [sys.executable, str(PROBES / "imagespec_exist.py"), "--refs", refs_file, "--reps", str(reps)]
    )
    row["imagespec_cached"] = json_probe(
        [
            sys.executable,
            str(PROBES / "imagespec_exist.py"),
            "--refs",
            refs_file,
            "--reps",
            str(reps),
            "--cached",
        ]
    )
    log(f"[{label}] {len(refs)} tags: floor (16-thread keep-alive HEAD)")
    row["floor"] = json_probe(
        [
            sys.executable,
            str(PROBES / "raw_head.py"),
            "--refs",
            refs_file,
            "--threads",
            "16",
            "--reps",
            str(reps),
        ]
    )
    if ctx["flytekit_py"]:
        log(f"[{label}] {len(refs)} tags: flytekit exist() per image")
        total: list[float] = [0.0] * reps
        results: dict[str, int] = {}
        for variant, group in (("present", present), ("missing", missing)):
            if not group:
                continue
            r = json_probe(
                [
                    ctx["flytekit_py"],
                    str(PROBES / "flytekit_exist.py"),
                    "time",
                    "--registry",
                    ctx["registry_of"][label],
                    "--count",
                    str(len(group)),
                    "--variant",
                    variant,
                    "--reps",
                    str(reps),
                ]
            )
            total = [a + b for a, b in zip(total, r["times_s"])]
            for k, v in r["results"].items():
                results[k] = results.get(k, 0) + v
        row["flytekit"] = {"times_s": total, "results": results}
    if ctx["skopeo"]:
        log(f"[{label}] {len(refs)} tags: skopeo inspect per image")
        row["skopeo"] = skopeo(refs, ctx["skopeo_reps"])
    os.unlink(refs_file)
    return row


def ms(row: dict[str, Any], key: str) -> float | None:
    r = row.get(key)
    return None if r is None else statistics.median(r["times_s"]) * 1000


def table(rows: list[dict[str, Any]], ctx: dict[str, Any]) -> str:
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.2f}" if v < 10 else f"{v:,.1f}"

    def ratio(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

    head = (
        "| set-up | tags | imagespec | floor | imagespec/floor | imagespec (cache) | flytekit | "
        "flytekit/imagespec | skopeo | skopeo/imagespec |"
    )
    lines = [
        f"median ms of {ctx['reps']} reps (skopeo: {ctx['skopeo_reps']}); imagespec {ctx['imagespec']}, "
        f"{ctx['flytekit']}, {ctx['skopeo_version']}",
        "",
        head,
        "|" + " --- |" * 10,
    ]
    for r in rows:
        i, f, fk, sk, c = (ms(r, k) for k in ("imagespec", "floor", "flytekit", "skopeo", "imagespec_cached"))
        lines.append(
            f"| {r['setup']} | {r['count']} | {fmt(i)} | {fmt(f)} | {ratio(i, f)} | {fmt(c)} | {fmt(fk)} | "
            f"{ratio(fk, i)} | {fmt(sk)} | {ratio(sk, i)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skopeo-reps", type=int, default=3)
    ap.add_argument("--no-flytekit", action="store_true")
    ap.add_argument("--no-skopeo", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import imagespec

    flytekit_py = None if a.no_flytekit else str(ensure_flytekit())
    dockerd = None if a.no_flytekit else ensure_dockerd()
    work = Path(tempfile.mkdtemp(prefix="imagespec-bench-exists-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        reg_proc, registry = start_registry(work)
        procs.append(reg_proc)
        lat_proc, slow = start_latency_proxy(registry)
        procs.append(lat_proc)
        ctx: dict[str, Any] = {
            "reps": a.reps,
            "skopeo_reps": a.skopeo_reps,
            "flytekit_py": flytekit_py,
            "skopeo": not a.no_skopeo and shutil.which("skopeo") is not None,
            "imagespec": imagespec.__version__,
            "flytekit": "n/a" if flytekit_py is None else FLYTEKIT_REQ,
            "skopeo_version": subprocess.run(
                ["skopeo", "--version"], capture_output=True, text=True
            ).stdout.strip()
            if shutil.which("skopeo")
            else "skopeo n/a",
            "registry_of": {},
        }
        plan = [
            ("loopback", registry, 1),
            ("loopback", registry, 20),
            ("loopback", registry, 200),
            ("40 ms RTT", slow, 20),
        ]
        rows = []
        for label, reg, count in plan:
            ctx["registry_of"][label] = reg
            n_present = max(1, count // 2)
            n_missing = count - n_present
            make = (lambda r, n, v: names(flytekit_py, r, n, v)) if flytekit_py else synthetic
            present, missing = (
                make(reg, n_present, "present"),
                make(reg, n_missing, "missing") if n_missing else [],
            )
            push(present, via=registry)
            rows.append(measure(label, present, missing, ctx))
        if a.json:
            print(
                json.dumps(
                    {"context": {k: v for k, v in ctx.items() if k != "registry_of"}, "rows": rows}, indent=2
                )
            )
        else:
            print(table(rows, ctx))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        if dockerd is not None:
            dockerd.terminate()
            dockerd.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
