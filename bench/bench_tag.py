#!/usr/bin/env python3
"""Tag benchmark: imagespec vs flytekit 1.16 vs the floor, on gen_tree.py's synthetic trees.

    python bench/bench_tag.py [--presets small,medium[,large]] [--reps 5] [--json] [--no-cold]

imagespec runs from this interpreter (install it first: `pip install .` or `maturin develop`),
one subprocess per measurement (probes/imagespec_tag.py) with a fresh IMAGESPEC_CACHE_DIR;
flytekit runs probes/flytekit_tag.py in its own venv under ~/.cache/imagespec-bench, created
here when missing. Trees are cached in ~/.cache/imagespec-bench/trees/<preset>. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "imagespec-bench"
TREES = CACHE / "trees"
VENV = CACHE / "venv-flytekit"
FLYTEKIT_REQ = "flytekit==1.16.*"
MODES = {"ALL": "all", "LOADED_MODULES": "loaded"}  # source_copy_mode -> probe --mode
PRESETS = ("small", "medium", "large")
TIMEOUT_S = 1800
# probes import the tree's app.workflows: keep them from writing __pycache__/ into the tree
ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_probe(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a probe; return its last stdout line as JSON, or {"error": ...}."""
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {TIMEOUT_S} s"}
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"error": f"exit {p.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def ensure_tree(preset: str) -> Path:
    """The preset's tree, generated (deterministically) only when missing."""
    tree = TREES / preset
    if tree.is_dir():
        return tree
    tmp = TREES / f"{preset}.partial"
    log(f"generating {preset} tree in {tree} ...")
    TREES.mkdir(parents=True, exist_ok=True)
    gen = [sys.executable, str(HERE / "gen_tree.py"), "--preset", preset, "--git", "--force", str(tmp)]
    subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
    tmp.rename(tree)
    time.sleep(3)  # imagespec's digest cache ignores files modified in the last 2 s
    return tree


def ensure_flytekit() -> Path:
    """Python of the flytekit venv, created (and flytekit installed) only when missing."""
    py = VENV / "bin" / "python"
    check = "import flytekit, sys; sys.exit(not flytekit.__version__.startswith('1.16.'))"
    if py.exists() and subprocess.run([str(py), "-c", check], capture_output=True).returncode == 0:
        return py
    log(f"creating {VENV} with {FLYTEKIT_REQ} ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", FLYTEKIT_REQ]
    subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
    return py


def imagespec_status() -> str | None:
    """None if imagespec is importable here, else why not."""
    cmd = [sys.executable, "-c", "import imagespec; imagespec.ImageSpec"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode == 0:
        return None
    return (p.stderr.strip().splitlines() or ["import failed"])[-1]


def can_drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def sha256_rate() -> float:
    """Single-core SHA-256 bytes/s: `openssl speed -evp sha256 -seconds 1`, 16384-byte column."""
    cmd = ["openssl", "speed", "-evp", "sha256", "-seconds", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    sizes = [int(s) for s in re.findall(r"(\d+) bytes", next(ln for ln in out if ln.startswith("type")))]
    row = next(ln for ln in out if ln.lower().startswith("sha256"))
    values = [float(v) for v in re.findall(r"([\d.]+)k", row)]
    return values[sizes.index(16384)] * 1000.0  # 'k' = 1000s of bytes per second


def git_walk(tree: Path, reps: int) -> tuple[float, list[str]]:
    """Median time of the gitignore-aware walk, and the files it selects."""
    cmd = ["git", "ls-files", "-co", "--exclude-standard", "-z"]
    times, out = [], b""
    for i in range(reps + 1):  # the first run warms up and is not counted
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=tree, capture_output=True, check=True).stdout
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), [f for f in out.decode().split("\0") if f]


def loaded_files(tree: Path) -> list[str]:
    """Tree files in sys.modules after importing app.workflows (what LOADED_MODULES selects)."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import app.workflows; "
        "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tree)], capture_output=True, check=True, env=ENV)
    files = [f for f in json.loads(out.stdout) if f and f.startswith(str(tree) + os.sep)]
    return sorted(os.path.relpath(f, tree) for f in files)


def size_of(tree: Path, files: list[str]) -> int:
    return sum(os.lstat(tree / f).st_size for f in files)


def median_or_none(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def imagespec_runs(tree: Path, mode: str, reps: int, cold: bool) -> dict[str, Any]:
    """`reps` probe processes, each with a fresh, empty IMAGESPEC_CACHE_DIR. Warm runs also start
    a second process on the same cache dir: its first call is the unchanged tree's next run."""
    probe = [sys.executable, str(HERE / "probes" / "imagespec_tag.py"), "--tree", str(tree), "--mode", mode]
    res: dict[str, Any] = {"impl": None, "first_s": [], "second_s": [], "next_process_s": [], "errors": []}
    res["first_cpu_s"] = []  # CPU time of the first call (all threads): less sensitive to a busy machine
    tags: set[str] = set()
    for i in range(reps + (0 if cold else 1)):  # warm: one extra, uncounted run loads the page cache
        cache_dir = tempfile.mkdtemp(prefix="imagespec-bench-cache-")
        env = dict(ENV, IMAGESPEC_CACHE_DIR=cache_dir)
        try:
            runs = [run_probe([*probe, "--cold"], env)] if cold else [run_probe(probe, env) for _ in "12"]
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        res["errors"] += [r["error"] for r in runs if "error" in r]
        if any("error" in r for r in runs):
            continue
        res["impl"] = runs[0]["impl"]
        tags.update(t for r in runs for t in (r["tag"], r["tag_second"]))
        if cold or i:
            res["first_s"].append(runs[0]["times_s"][0])
            res["second_s"].append(runs[0]["times_s"][1])
            res["first_cpu_s"].append(runs[0]["cpu_s"][0])
            res["next_process_s"] += [r["times_s"][0] for r in runs[1:]]
    res["tags"] = sorted(tags)
    return res


def flytekit_run(py: Path, tree: Path, mode: str, reps: int, cold: bool) -> dict[str, Any]:
    probe = [str(py), str(HERE / "probes" / "flytekit_tag.py"), "--tree", str(tree), "--mode", mode]
    return run_probe([*probe, "--reps", str(reps), *(["--cold"] if cold else [])], ENV)


def measure(preset: str, a: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    tree = ensure_tree(preset)
    walk_s, walk_files = git_walk(tree, a.reps)
    rows = []
    for mode_name, mode in MODES.items():
        log(f"{preset} {mode_name} ...")
        files = walk_files if mode == "all" else sorted({*loaded_files(tree), "requirements.txt"})
        if mode == "loaded":  # copy=["conf"] adds conf/ (ALL mode's walk already lists it)
            files = sorted({*files, *(f for f in walk_files if f.startswith("conf/"))})
        sel_bytes = size_of(tree, files)
        hash_s = sel_bytes / (2 * ctx["sha256_Bps"])
        # ALL needs the walk; LOADED_MODULES only hashes the loaded files (see README.md)
        floor_s = hash_s + (walk_s if mode == "all" else 0.0)
        row: dict[str, Any] = {"preset": preset, "mode": mode_name, "tree": str(tree)}
        row.update(files=len(files), bytes=sel_bytes, walk_s=walk_s, hash_s=hash_s, floor_s=floor_s)
        if ctx["imagespec_error"] is None:
            row["imagespec_warm"] = imagespec_runs(tree, mode, a.reps, cold=False)
            if ctx["cold"]:
                row["imagespec_cold"] = imagespec_runs(tree, mode, a.reps, cold=True)
        if ctx["flytekit_py"] is not None:
            row["flytekit_warm"] = flytekit_run(ctx["flytekit_py"], tree, mode, a.reps, cold=False)
            if ctx["cold"]:
                row["flytekit_cold"] = flytekit_run(ctx["flytekit_py"], tree, mode, a.reps, cold=True)
        rows.append(row)
    return rows


def summarize(row: dict[str, Any]) -> dict[str, float | None]:
    """Medians (s) and ratios of one row; None where not measured."""
    iw, ic = row.get("imagespec_warm", {}), row.get("imagespec_cold", {})
    fw, fc = row.get("flytekit_warm", {}), row.get("flytekit_cold", {})
    s: dict[str, float | None] = {
        "is_first": median_or_none(iw.get("first_s", [])),
        "is_second": median_or_none(iw.get("second_s", [])),
        "is_next_process": median_or_none(iw.get("next_process_s", [])),
        "is_cold": median_or_none(ic.get("first_s", [])),
        "fk_warm": median_or_none(fw.get("times_s", [])),
        "fk_cold": median_or_none(fc.get("times_s", [])),
        "floor": row["floor_s"],
    }
    first, second, fk = s["is_first"], s["is_second"], s["fk_warm"]
    s["is_over_floor"] = first / row["floor_s"] if first else None
    s["fk_over_is"] = fk / first if fk and first else None
    s["second_over_first"] = second / first if second is not None and first else None
    return s


def problems(row: dict[str, Any]) -> list[str]:
    out = []
    for key in ("imagespec_warm", "imagespec_cold", "flytekit_warm", "flytekit_cold"):
        r = row.get(key, {})
        errs = r.get("errors", []) + ([r["error"]] if "error" in r else [])
        out += [f"{row['preset']} {row['mode']} {key}: {e}" for e in sorted(set(errs))]
    is_tags = set(row.get("imagespec_warm", {}).get("tags", [])) | set(
        row.get("imagespec_cold", {}).get("tags", [])
    )
    if len(is_tags) > 1:
        out.append(f"{row['preset']} {row['mode']}: imagespec gave {len(is_tags)} tags: {sorted(is_tags)}")
    return out


def print_table(rows: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 1000:.1f}"

    def x(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    print(f"imagespec: {ctx['imagespec']}   flytekit: {ctx['flytekit']}   reps: {ctx['reps']} (medians)")
    print(
        f"SHA-256 single core: {ctx['sha256_Bps'] / 1e6:.0f} MB/s   cold runs: {ctx['cold_note']}   "
        f"load avg at start: {ctx['loadavg_1m_at_start']:.2f} ({os.cpu_count()} CPUs)"
    )
    cols = ["tree", "mode", "files", "MB", "is 1st", "is 2nd", "is next", "is cold", "fk warm", "fk cold"]
    cols += ["floor", "is/floor", "fk/is", "2nd/1st"]
    widths = [6, 14, 6, 6, 7, 7, 7, 7, 7, 7, 6, 8, 6, 7]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)) + "   (times in ms)")
    for row in rows:
        s = summarize(row)
        cells = [row["preset"], row["mode"], str(row["files"]), f"{row['bytes'] / 1e6:.1f}"]
        keys = ("is_first", "is_second", "is_next_process", "is_cold", "fk_warm", "fk_cold", "floor")
        cells += [ms(s[k]) for k in keys]
        cells += [x(s["is_over_floor"]), x(s["fk_over_is"]), x(s["second_over_first"])]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    issues = [p for row in rows for p in problems(row)]
    for p in issues:
        print(f"! {p}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="small,medium", help="comma list of small,medium,large")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per measurement (medians)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold (page cache dropped) runs")
    ap.add_argument("--no-flytekit", action="store_true", help="skip flytekit (no venv needed)")
    a = ap.parse_args()
    presets = [p.strip() for p in a.presets.split(",") if p.strip()]
    if any(p not in PRESETS for p in presets) or a.reps < 1:
        ap.error(f"presets must be among {', '.join(PRESETS)}; reps >= 1")

    imagespec_error = imagespec_status()
    flytekit_py = None if a.no_flytekit else ensure_flytekit()
    cold = not a.no_cold and can_drop_caches()
    ctx: dict[str, Any] = {
        "reps": a.reps,
        "cold": cold,
        "cold_note": "skipped" if a.no_cold else "page cache dropped" if cold else "n/a (cannot drop caches)",
        "sha256_Bps": sha256_rate(),
        "loadavg_1m_at_start": os.getloadavg()[0],
        "imagespec_error": imagespec_error,
        "imagespec": "from " + sys.executable if imagespec_error is None else f"n/a ({imagespec_error})",
        "flytekit_py": flytekit_py,
        "flytekit": "n/a" if flytekit_py is None else FLYTEKIT_REQ,
    }
    rows = [row for preset in presets for row in measure(preset, a, ctx)]
    for row in rows:  # report the versions the probes actually ran
        for key, name in (("imagespec_warm", "imagespec"), ("flytekit_warm", "flytekit")):
            impl = row.get(key, {}).get("impl")
            if impl:
                ctx[name] = impl
    if a.json:
        meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.items()}
        summaries = [{**row, "summary": summarize(row), "problems": problems(row)} for row in rows]
        print(json.dumps({"meta": meta, "rows": summaries}, indent=1))
    else:
        print_table(rows, ctx)


if __name__ == "__main__":
    main()
