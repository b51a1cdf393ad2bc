#!/usr/bin/env python3
"""Build benchmark: `imagespec build` vs `pyflyte build --fast` when every image exists, and
(with --cold) imagespec's engine builds of a small spec.

Warm path. A loopback CNCF registry (`docker-registry`) is started here, and a latency proxy in
front of it (probes/latency_proxy.py, 20 ms each way = 40 ms RTT). For each of the two set-ups a
workflow module with the seed's two images (pandas_image: pandas, numpy, env Debug=True;
sklearn_image: scikit-learn) is written twice into a temporary folder, once importing flytekit and
once importing imagespec; every image name each tool computes is pushed beforehand (a tiny
image, probes/push_tiny.py), so nothing needs building. Before timing, both tools must report
every image as existing. Then, each command a subprocess, median of --runs after --warmup:
  - flytekit 1.16: `pyflyte build --fast wf_flytekit.py wf` in ~/.cache/imagespec-bench/venv-flytekit
    (its existence check asks the Docker daemon, started here when its socket does not answer);
  - imagespec: `imagespec build wf_imagespec.py` when the CLI works here, else the Python API in a
    subprocess: `python -c "import imagespec, wf_imagespec as m; imagespec.build([...])"`, else
    (while the plan has no engines) the same with the engines unregistered (see API_RUN); with
    the positive-answer cache warm (a repeated build) and empty (a fresh cache every run).
Commands are timed with hyperfine when it is installed (installed with apt-get when missing and
running as root, unless --no-install), else with a loop here.

Cold builds (--cold): ImageSpec(base_image=<the test base pushed to the loopback registry>,
packages=["six==1.16.0"]) built by imagespec with builder docker and buildah, no_cache=True,
then rebuilt with the engine's cache (force_push). Prints "engines not available: <reason>" when
this imagespec has no engines.

    python bench/bench_build.py [--runs 10] [--warmup 2] [--cold] [--no-flytekit] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_exists import (
    FLYTEKIT_REQ,
    PROBES,
    ensure_dockerd,
    ensure_flytekit,
    log,
    start_latency_proxy,
    start_registry,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BASE_REPOSITORY = "imagespec-test/python:3.11-bookworm"

TARGETS = {"loopback": "< 150 ms", "40 ms RTT": "< 300 ms"}

# The seed's workflow, without pandas (neither venv has it; importing it would time pandas, not the
# tools): the same images, tasks and resources; data frames become lists. flytekit's is_container()
# is true outside a task execution, so pyflyte tries the sklearn import: it fails fast here (no
# sklearn in the venv, or blocked by the module itself), and the tasks' bodies never run during a
# build.
WORKFLOW_BODY = """

pandas_image = ImageSpec(packages=["pandas", "numpy"], env={{"Debug": "True"}}, registry="{registry}")
sklearn_image = ImageSpec(packages=["scikit-learn"], registry="{registry}")

# scikit-learn may be installed beside one tool and not the other (imagespec's .venv has it for
# the example's tests): keep its import, about 1.5 s, out of both timings.
sys.modules.setdefault("sklearn", None)

if sklearn_image.is_container():
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # not installed where the benchmark runs
        LogisticRegression = None
"""

WORKFLOW_TASKS = """

@task(container_image=pandas_image)
def get_pandas_dataframe() -> typing.Tuple[typing.List[float], typing.List[int]]:
    return [1.0, 2.0], [0, 1]


@task(container_image=sklearn_image, requests=Resources(cpu="1", mem="1Gi"))
def get_model(max_iter: int, multi_class: str) -> typing.Any:
    return LogisticRegression(max_iter=max_iter, multi_class=multi_class)


@task(container_image=sklearn_image, requests=Resources(cpu="1", mem="1Gi"))
def train_model(model: typing.Any, feature: typing.List[float], target: typing.List[int]) -> typing.Any:
    return model


@workflow
def wf():
    feature, target = get_pandas_dataframe()
    model = get_model(max_iter=3000, multi_class="auto")
    train_model(model=model, feature=feature, target=target)
"""

# What imagespec runs, as a subprocess with the module's folder as working directory. "auto" takes
# the first that works: the CLI (once `imagespec build FILE.py` builds), the Python API, and, while
# the built-in engines are not wired into the plan (run_plan refuses them: "... is not a built-in
# engine"), the Python API with the engines unregistered and one builder that fails if it is ever
# called: the same plan and the same batch check, and any build attempt is an error.
API_RUN = "import imagespec, wf_imagespec as m; imagespec.build([m.pandas_image, m.sklearn_image])"
NO_ENGINES = """
import imagespec
from imagespec import ImageBuildEngine as E
for n in [n for n, (b, _) in list(E.get_registry().items()) if isinstance(b, imagespec.EngineBuilder)]:
    E.remove(n)
class Refuse:
    def build_image(self, spec):
        raise RuntimeError("bench: a build was attempted")
E.register("bench-refuse", Refuse())
"""
API_CHECK = """
import json, imagespec, wf_imagespec as m
specs = [v for v in vars(m).values() if isinstance(v, imagespec.ImageSpec)]
r = imagespec.build(specs, check=False)
print(json.dumps([{"image": x.image, "outcome": x.outcome, "reason": x.reason} for x in r]))
"""
VIA = {
    "cli": "`imagespec build wf_imagespec.py`",
    "api": "`python -c 'import imagespec, wf_imagespec as m; "
    "imagespec.build([m.pandas_image, m.sklearn_image])'`",
    "api-no-engines": "the Python API as in `api`, after unregistering the built-in engines and registering "
    "a builder that fails if called (the engines are not in this imagespec's plan yet)",
}
FLYTEKIT_NAMES = """
import json, wf_flytekit as m
from flytekit import ImageSpec
print(json.dumps({k: v.image_name() for k, v in vars(m).items() if isinstance(v, ImageSpec)}))
"""


def imagespec_command(via: str, module: Path) -> list[str]:
    if via == "cli":
        return [str(BIN / "imagespec"), "build", module.name]
    if via == "api":
        return [sys.executable, "-c", API_RUN]
    return [sys.executable, "-c", NO_ENGINES + API_RUN]


class Fatal(SystemExit):
    pass


def need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise Fatal(f"{tool} is not installed: {hint}")
    return path


# ------------------------------------------------------------------------------------------- timing


def ensure_hyperfine(allow_install: bool) -> str | None:
    path = shutil.which("hyperfine")
    if path or not allow_install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return path
    log("installing hyperfine (apt-get install -y hyperfine) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "hyperfine"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            log("hyperfine could not be installed; timing with a loop instead")
    return shutil.which("hyperfine")


def time_command(
    cmd: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    runs: int,
    warmup: int,
    hyperfine: str | None,
    fresh_dir: Path | None = None,
) -> list[float]:
    """Wall seconds of `runs` runs of cmd (each must exit 0), after `warmup` uncounted ones.
    fresh_dir: removed before every run (hyperfine --prepare), e.g. an empty cache per run."""
    if hyperfine:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = Path(f.name)
        args = [hyperfine, "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs)]
        args += ["--export-json", str(out)]
        if fresh_dir is not None:
            args += ["--prepare", shlex.join(["rm", "-rf", str(fresh_dir)])]
        p = subprocess.run([*args, shlex.join(cmd)], cwd=cwd, env=env, capture_output=True, text=True)
        try:
            if p.returncode != 0:
                raise Fatal(f"hyperfine {shlex.join(cmd)} failed:\n{p.stdout[-1500:]}{p.stderr[-1500:]}")
            return [float(t) for t in json.loads(out.read_text())["results"][0]["times"]]
        finally:
            out.unlink(missing_ok=True)
    times = []
    for i in range(warmup + runs):
        if fresh_dir is not None:
            shutil.rmtree(fresh_dir, ignore_errors=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise Fatal(f"{shlex.join(cmd)} exited {p.returncode}:\n{p.stderr.decode()[-1500:]}")
        if i >= warmup:
            times.append(dt)
    return times


def stats(times: list[float] | None) -> dict[str, Any] | None:
    if not times:
        return None
    return {
        "median_ms": statistics.median(times) * 1000,
        "min_ms": min(times) * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
        "times_s": times,
    }


# ---------------------------------------------------------------------------------------- warm path


def has_decorators() -> bool:
    import imagespec

    return all(hasattr(imagespec, n) for n in ("task", "workflow", "Resources"))


def write_modules(folder: Path, registry: str, decorators: bool) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fk = folder / "wf_flytekit.py"
    fk.write_text(
        "import sys\nimport typing\n\nfrom flytekit import ImageSpec, Resources, task, workflow\n"
        + WORKFLOW_BODY.format(registry=registry)
        + WORKFLOW_TASKS
    )
    ours = folder / "wf_imagespec.py"
    if decorators:
        head = "import sys\nimport typing\n\nfrom imagespec import ImageSpec, Resources, task, workflow\n"
        ours.write_text(head + WORKFLOW_BODY.format(registry=registry) + WORKFLOW_TASKS)
    else:
        head = "import sys\n\nfrom imagespec import ImageSpec\n"
        ours.write_text(head + WORKFLOW_BODY.format(registry=registry))
    return fk, ours


def run_json(cmd: list[str], cwd: Path, env: dict[str, str]) -> Any:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise Fatal(f"{shlex.join(cmd)[:200]} exited {p.returncode}:\n{p.stderr[-2000:]}")
    out = p.stdout.strip()
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return json.loads(out.splitlines()[-1])  # one JSON line after other output


def imagespec_names(module: Path, env: dict[str, str]) -> dict[str, str]:
    rows = run_json([str(BIN / "imagespec"), "tag", module.name, "--json"], module.parent, env)
    return {r["name"]: r["image"] for r in rows}


def push_tiny(refs: list[str], via: str) -> None:
    p = subprocess.run(
        [sys.executable, str(PROBES / "push_tiny.py"), "--via", via.replace("localhost", "127.0.0.1"), "-"],
        input="\n".join(refs),
        text=True,
        capture_output=True,
    )
    if p.returncode != 0:
        raise Fatal(f"push_tiny.py failed:\n{p.stderr[-1500:]}")


def check_flytekit(fk_py: str, module: Path, names: dict[str, str], env: dict[str, str]) -> None:
    """pyflyte build must find every image (FLYTE_IMG_FAST_FAIL: an unknown answer fails)."""
    cmd = [str(Path(fk_py).parent / "pyflyte"), "build", "--fast", module.name, "wf"]
    p = subprocess.run(
        cmd, cwd=module.parent, env={**env, "FLYTE_IMG_FAST_FAIL": "true"}, capture_output=True, text=True
    )
    out = " ".join((p.stdout + p.stderr).split())  # rich wraps long lines
    problems = []
    if p.returncode != 0:
        problems.append(f"exit {p.returncode}")
    for image in names.values():
        if f"Image {image} found. Skip building." not in out:
            problems.append(f"no 'Image {image} found. Skip building.'")
    if "building..." in out or "Run command:" in out:
        problems.append("it started a build")
    if problems:
        raise Fatal(f"pyflyte build check failed ({'; '.join(problems)}):\n{(p.stdout + p.stderr)[-3000:]}")


def check_imagespec(module: Path, names: dict[str, str], env: dict[str, str], via: str) -> None:
    """imagespec must report every image as existing, and build nothing (the CLI: `--json`)."""
    if via == "cli":
        results = run_json([*imagespec_command("cli", module), "--json"], module.parent, env)
    else:
        prelude = NO_ENGINES if via == "api-no-engines" else ""
        results = run_json([sys.executable, "-c", prelude + API_CHECK], module.parent, env)
    got = {r["image"]: r for r in results}
    problems = [
        f"{image}: {got[image]['outcome']} ({got[image]['reason']})"
        if image in got
        else f"{image}: not in the plan"
        for image in names.values()
        if image not in got or got[image]["outcome"] != "exists"
    ]
    problems += [f"unexpected image {i}" for i in got if i not in names.values()]
    if problems:
        raise Fatal("imagespec build check failed:\n  " + "\n  ".join(problems))


def choose_via(module: Path, env: dict[str, str]) -> str:
    """The first way of running imagespec's build that works here (see API_RUN); every image of
    the module exists when this runs, so nothing is built."""
    p = subprocess.run(
        imagespec_command("cli", module), cwd=module.parent, env=env, capture_output=True, text=True
    )
    if p.returncode == 0:
        return "cli"
    why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    log(f"`imagespec build FILE.py` does not work here yet ({why})")
    p = subprocess.run(
        [sys.executable, "-c", API_CHECK], cwd=module.parent, env=env, capture_output=True, text=True
    )
    if "is not a built-in engine" not in p.stderr:
        log("timing the Python API")
        return "api"
    log(
        f"the Python API fails ({p.stderr.strip().splitlines()[-1]}): timing it with the engines unregistered"
    )
    return "api-no-engines"


def warm_path(a: argparse.Namespace, ctx: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    base_env = dict(os.environ)
    base_env.pop("FLYTE_FORCE_PUSH_IMAGE_SPEC", None)
    base_env.pop("IMAGESPEC_FORCE_PUSH_IMAGE_SPEC", None)
    decorators = has_decorators()
    ctx["imagespec_module"] = (
        "ImageSpecs, tasks and workflow" if decorators else "module-level ImageSpecs only (no task/workflow)"
    )
    rows = []
    for label, registry in ctx["setups"]:
        folder = work / ("loopback" if label == "loopback" else "rtt40")
        fk_mod, our_mod = write_modules(folder, registry, decorators)
        warm_cache = work / f"cache-warm-{folder.name}"
        empty_cache = work / f"cache-empty-{folder.name}"
        env = {**base_env, "IMAGESPEC_CACHE_DIR": str(warm_cache)}
        ours = imagespec_names(our_mod, env)
        push_tiny(list(ours.values()), via=ctx["registry"])
        fk_names: dict[str, str] = {}
        if ctx["flytekit_py"]:
            fk_names = run_json([ctx["flytekit_py"], "-c", FLYTEKIT_NAMES], folder, base_env)
            push_tiny(list(fk_names.values()), via=ctx["registry"])
        if ctx["via"] is None:
            ctx["via"] = choose_via(our_mod, env)
        log(f"[{label}] checking that every image is found and nothing is built")
        check_imagespec(our_mod, ours, env, ctx["via"])
        if ctx["flytekit_py"]:
            check_flytekit(ctx["flytekit_py"], fk_mod, fk_names, base_env)
        timing = {"runs": a.runs, "warmup": a.warmup, "hyperfine": ctx["hyperfine"]}
        cmd = imagespec_command(ctx["via"], our_mod)
        log(f"[{label}] imagespec, cache warm: {shlex.join(cmd)[:120]}")
        warm = time_command(cmd, cwd=folder, env=env, **timing)
        log(f"[{label}] imagespec, empty cache every run")
        empty_env = {**env, "IMAGESPEC_CACHE_DIR": str(empty_cache)}
        empty = time_command(cmd, cwd=folder, env=empty_env, fresh_dir=empty_cache, **timing)
        fk = None
        fk_cmd = None
        if ctx["flytekit_py"]:
            fk_cmd = [str(Path(ctx["flytekit_py"]).parent / "pyflyte"), "build", "--fast", fk_mod.name, "wf"]
            log(f"[{label}] flytekit: {shlex.join(fk_cmd)}")
            fk = time_command(fk_cmd, cwd=folder, env=base_env, **timing)
        rows.append(
            {
                "setup": label,
                "registry": registry,
                "images": {"imagespec": ours, "flytekit": fk_names},
                "imagespec_command": cmd,
                "flytekit_command": fk_cmd,
                "imagespec_cache_warm": stats(warm),
                "imagespec_cache_empty": stats(empty),
                "flytekit": stats(fk),
            }
        )
    return rows


def startup_row(a: argparse.Namespace, ctx: dict[str, Any], work: Path) -> dict[str, Any]:
    """For reading the rows above: what starting the interpreter and importing costs."""
    env = dict(os.environ)
    timing = {"runs": a.runs, "warmup": a.warmup, "hyperfine": ctx["hyperfine"]}
    log("reference: python -c 'import imagespec' / 'import flytekit'")
    ours = time_command([sys.executable, "-c", "import imagespec"], cwd=work, env=env, **timing)
    fk = None
    if ctx["flytekit_py"]:
        fk = time_command([ctx["flytekit_py"], "-c", "import flytekit"], cwd=work, env=env, **timing)
    log("reference: imagespec --help / pyflyte --help")
    cli = str(Path(sys.executable).parent / "imagespec")
    ours_help = time_command([cli, "--help"], cwd=work, env=env, **timing)
    fk_help = None
    if ctx["flytekit_py"]:
        pyflyte = str(Path(ctx["flytekit_py"]).parent / "pyflyte")
        fk_help = time_command([pyflyte, "--help"], cwd=work, env=env, **timing)
    return {
        "imagespec": stats(ours),
        "flytekit": stats(fk),
        "imagespec_help": stats(ours_help),
        "flytekit_help": stats(fk_help),
    }


# --------------------------------------------------------------------------------------- cold builds


def engines_missing() -> str | None:
    from imagespec import _core

    if not hasattr(_core, "engine_build"):
        return "imagespec._core has no engine_build (this build of imagespec has no engines yet)"
    return None


def build_wheel(out: Path) -> Path:
    maturin = BIN / "maturin" if (BIN / "maturin").exists() else need("maturin", "pip install maturin")
    log("building the imagespec wheel (maturin build --release) ...")
    p = subprocess.run(
        [str(maturin), "build", "--release", "-o", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    wheels = sorted(out.glob("imagespec_build-*.whl"))
    if p.returncode != 0 or not wheels:
        raise Fatal(f"maturin build failed:\n{p.stderr[-2000:]}")
    return wheels[-1]


def cold_builds(a: argparse.Namespace, ctx: dict[str, Any], work: Path, cleanup: list[Any]) -> dict[str, Any]:
    why = engines_missing()
    if why:
        return {"unavailable": why}
    lease = {**os.environ, "IMAGESPEC_ENGINES_LEASE": f"bench-build-{os.getpid()}"}
    log("starting the engines (scripts/engines.sh start) ...")
    p = subprocess.run(
        ["bash", str(ROOT / "scripts/engines.sh"), "start"], env=lease, capture_output=True, text=True
    )
    cleanup.append(lambda: subprocess.run(["bash", str(ROOT / "scripts/engines.sh"), "stop"], env=lease))
    if p.returncode != 0:
        return {"unavailable": f"scripts/engines.sh start failed: {p.stderr.strip()[-500:]}"}
    base = f"{ctx['registry']}/{BASE_REPOSITORY}"
    log(f"pushing the test base image to {base} (scripts/base-image.sh push) ...")
    p = subprocess.run(
        ["bash", str(ROOT / "scripts/base-image.sh"), "push", base], capture_output=True, text=True
    )
    if p.returncode != 0:
        return {"unavailable": f"scripts/base-image.sh push failed: {p.stderr.strip()[-500:]}"}
    wheel = Path(a.wheel) if a.wheel else build_wheel(work / "wheel")
    out: dict[str, Any] = {"base": base, "wheel": wheel.name, "rows": []}
    for builder in ("docker", "buildah"):
        env = {**os.environ, "IMAGESPEC_CACHE_DIR": str(work / "cache-cold")}
        if builder == "buildah":
            store = work / "buildah-storage"
            store.mkdir()
            conf = store / "storage.conf"
            conf.write_text(
                f'[storage]\ndriver = "vfs"\ngraphroot = "{store / "root"}"\nrunroot = "{store / "run"}"\n'
            )
            env["CONTAINERS_STORAGE_CONF"] = str(conf)
        name = f"bench-build-cold-{builder}"
        common = [sys.executable, str(PROBES / "imagespec_build.py"), "--registry", ctx["registry"]]
        common += ["--base", base, "--builder", builder, "--name", name, "--wheel", str(wheel)]
        common += ["--ca-bundle", CA_BUNDLE, "--force-push"]
        for kind, extra in (("cold (no_cache)", ["--no-cache"]), ("warm rebuild (cache, force_push)", [])):
            log(f"[cold] {builder}: {kind} ...")
            t0 = time.perf_counter()
            p = subprocess.run([*common, *extra], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            try:
                r = json.loads(p.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                r = {"outcome": "failed", "reason": f"probe exited {p.returncode}: {p.stderr.strip()[-800:]}"}
            r.update({"builder": builder, "kind": kind, "wall_seconds": wall})
            out["rows"].append(r)
            if "unavailable" in r:
                break
            if builder == "docker" and r.get("name"):
                cleanup.append(
                    lambda n=r["name"]: subprocess.run(
                        ["docker", "image", "rm", "-f", n], capture_output=True
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------- output


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"


def med(s: dict[str, Any] | None) -> float | None:
    return None if s is None else float(s["median_ms"])


def warm_header(ctx: dict[str, Any]) -> list[str]:
    return [
        f"timer: {'hyperfine' if ctx['hyperfine'] else 'loop'}; median ms of {ctx['runs']} runs after "
        f"{ctx['warmup']} warm-up (min in --json); imagespec {ctx['imagespec']}, {ctx['flytekit']}; "
        f"load average at start {ctx['load']}",
        f"imagespec timed: {VIA[ctx['via'] or 'api']}; its module: {ctx.get('imagespec_module', '?')}",
        "flytekit timed: `pyflyte build --fast wf_flytekit.py wf`",
        "",
        "| work | imagespec ms | flytekit ms | ratio (flytekit/imagespec) | target |",
        "| --- | --- | --- | --- | --- |",
    ]


def table(rows: list[dict[str, Any]], startup: dict[str, Any] | None, cold: Any, ctx: dict[str, Any]) -> str:
    lines: list[str] = []
    if rows:
        lines += warm_header(ctx)

    def ratio(i: float | None, f: float | None) -> str:
        return "n/a" if i is None or f is None or i == 0 else f"{f / i:.1f}x"

    for r in rows:
        f = med(r["flytekit"])
        for key, cache in (("imagespec_cache_warm", "cache warm"), ("imagespec_cache_empty", "empty cache")):
            i = med(r[key])
            lines.append(
                f"| build, every image exists, {r['setup']}, imagespec {cache} | {fmt(i)} | {fmt(f)} | "
                f"{ratio(i, f)} | {TARGETS[r['setup']]} |"
            )
    if startup:
        i, f = med(startup["imagespec"]), med(startup["flytekit"])
        lines.append(
            f"| (reference) python -c 'import imagespec' / 'import flytekit' | {fmt(i)} | {fmt(f)} | "
            f"{ratio(i, f)} | < 50 ms |"
        )
        i, f = med(startup["imagespec_help"]), med(startup["flytekit_help"])
        lines.append(
            f"| `imagespec --help` / `pyflyte --help` | {fmt(i)} | {fmt(f)} | {ratio(i, f)} | < 100 ms |"
        )
    if cold is not None:
        if lines:
            lines.append("")
        if "unavailable" in cold:
            lines.append(f"cold builds: engines not available: {cold['unavailable']}")
        else:
            lines.append(f"cold builds (base {cold['base']}, packages six==1.16.0, wheel {cold['wheel']}):")
            lines.append("")
            lines.append("| work | imagespec s | outcome | flytekit |")
            lines.append("| --- | --- | --- | --- |")
            for r in cold["rows"]:
                if "unavailable" in r:
                    lines.append(
                        f"| {r['builder']} | n/a | engines not available: {r['unavailable']} | n/a |"
                    )
                    continue
                secs = r.get("seconds")
                out = r.get("outcome", "?") + (f": {r['reason']}" if r.get("outcome") == "failed" else "")
                lines.append(
                    f"| {r['builder']}, {r['kind']} | {'n/a' if secs is None else f'{secs:.2f}'} | {out} | "
                    "n/a (its builder runs `docker build --push`: needs buildx) |"
                )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-flytekit", action="store_true", help="imagespec only (no venv, no dockerd)")
    ap.add_argument("--timer", choices=["auto", "hyperfine", "loop"], default="auto")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install hyperfine")
    ap.add_argument("--imagespec-via", choices=["auto", *VIA], default="auto")
    ap.add_argument("--no-rtt", action="store_true", help="skip the 40 ms RTT set-up")
    ap.add_argument("--cold", action="store_true", help="also time engine builds of a small spec")
    ap.add_argument("--cold-only", action="store_true", help="only the cold builds")
    ap.add_argument("--wheel", help="imagespec wheel for --cold (default: maturin build --release)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.runs < 1 or a.warmup < 0:
        ap.error("--runs must be at least 1 and --warmup at least 0")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    need("docker-registry", "apt-get install -y docker-registry")
    if not (BIN / "imagespec").exists():
        raise Fatal(
            f"{BIN / 'imagespec'} is missing: run this with the interpreter imagespec is installed in"
        )
    import imagespec

    hyperfine = None
    if a.timer == "hyperfine":
        hyperfine = ensure_hyperfine(not a.no_install)
        if hyperfine is None:
            raise Fatal("hyperfine is not installed: apt-get install -y hyperfine (or --timer loop)")
    elif a.timer == "auto":
        hyperfine = ensure_hyperfine(not a.no_install)

    work = Path(tempfile.mkdtemp(prefix="imagespec-bench-build-"))
    cleanup: list[Any] = []
    procs: list[subprocess.Popen[bytes]] = []
    dockerd = None
    try:
        fk_py = None
        if not a.no_flytekit and not a.cold_only:
            fk_py = str(ensure_flytekit())
            dockerd = ensure_dockerd()
        reg_proc, registry = start_registry(work)
        procs.append(reg_proc)
        setups = [("loopback", registry)]
        if not a.no_rtt:
            lat_proc, slow = start_latency_proxy(registry)
            procs.append(lat_proc)
            setups.append(("40 ms RTT", slow))
        ctx: dict[str, Any] = {
            "runs": a.runs,
            "warmup": a.warmup,
            "hyperfine": hyperfine,
            "flytekit_py": fk_py,
            "registry": registry,
            "setups": setups,
            "via": None if a.imagespec_via == "auto" else a.imagespec_via,
            "imagespec": imagespec.__version__,
            "flytekit": "flytekit n/a" if fk_py is None else FLYTEKIT_REQ,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
        rows: list[dict[str, Any]] = []
        startup = None
        if not a.cold_only:
            rows = warm_path(a, ctx, work)
            startup = startup_row(a, ctx, work)
        cold = cold_builds(a, ctx, work, cleanup) if (a.cold or a.cold_only) else None
        if a.json:
            keep = ("runs", "warmup", "hyperfine", "via", "imagespec", "flytekit", "load", "imagespec_module")
            doc = {"context": {k: ctx.get(k) for k in keep}, "rows": rows, "startup": startup, "cold": cold}
            print(json.dumps(doc, indent=2))
        else:
            print(table(rows, startup, cold, ctx))
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as e:  # cleanup goes on
                log(f"cleanup: {e}")
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if dockerd is not None:
            dockerd.terminate()
            dockerd.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
