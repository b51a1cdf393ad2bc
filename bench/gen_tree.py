#!/usr/bin/env python3
"""Generate a deterministic synthetic source tree for ImageSpec tag benchmarks.

Layout (all sizes deterministic for a given --seed):

  DIR/
    .gitignore            -> "build/" (+ *.pyc, __pycache__/)
    requirements.txt      -> ~30 pinned requirements (ImageSpec(requirements=...))
    conf/                 -> 10 small files (ImageSpec(copy=[DIR/conf]))
    app/__init__.py
    app/workflows.py      -> imports the first --import-modules modules of pkg/
                             (drives CopyFileDetection.LOADED_MODULES)
    pkg/sub_XXX/mod_YYYY.py  python modules (valid, importable)
    data/dXXX/file_YYYY.{json,csv,txt}  text data
    build/...             -> gitignored "build output" (random binary)

--files / --bytes are the TOTAL over the tree (build/ included);
--build-files-frac / --build-bytes-frac say how much of it lives in build/.
With --git the tree becomes a git repository whose non-ignored files are committed
(flytekit's GitIgnore shells out to `git ls-files`, which only works inside a repo).

Only the Python standard library is used; prints a one-line JSON summary.
Copied from the shared baseline probes (same trees byte for byte); only lint/typing changes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

PRESETS = {
    # name: (files, bytes)
    "small": (200, 2 * 1000 * 1000),
    "medium": (5000, 100 * 1000 * 1000),
    "large": (50000, 1000 * 1000 * 1000),
}
FILES_PER_DIR = 50
CONF_FILES = 10


def sizes_for(rng: random.Random, n: int, total: int, min_size: int = 64) -> list[int]:
    """n log-normally distributed sizes summing exactly to total (each >= min_size)."""
    if n <= 0:
        return []
    raw = [rng.lognormvariate(0.0, 1.0) for _ in range(n)]
    s = sum(raw)
    budget = max(total - n * min_size, 0)
    out = [min_size + int(budget * r / s) for r in raw]
    out[-1] += total - sum(out)  # exact total
    if out[-1] < min_size:
        out[-1] = min_size
    return out


def text_blob(rng: random.Random, size: int, header: str) -> bytes:
    """Compressible-but-unique ASCII text (hex lines), exactly `size` bytes."""
    head = header.encode()
    need = max(size - len(head), 0)
    # hex of random bytes: 2x expansion, 64 chars + newline per line
    raw = rng.randbytes((need // 2) + 64).hex()
    lines = [raw[i : i + 64] for i in range(0, len(raw), 64)]
    body = ("\n".join(lines)).encode()[:need]
    return head + body


def py_module(rng: random.Random, size: int, idx: int) -> bytes:
    head = f'"""Synthetic module {idx}."""\nVALUE_{idx} = {idx}\n\ndef f_{idx}(x):\n    return x + {idx}\n\n'
    # pad with comment lines so the module stays valid Python
    pad_len = max(size - len(head), 0)
    raw = rng.randbytes(pad_len // 2 + 64).hex()
    lines: list[str] = []
    total = 0
    i = 0
    while total < pad_len:
        chunk = "# " + raw[i : i + 62] + "\n"
        i = (i + 62) % max(len(raw) - 62, 1)
        lines.append(chunk)
        total += len(chunk)
    body = "".join(lines)[:pad_len]
    if body and not body.endswith("\n"):
        body = body[:-1] + "\n"
    return (head + body).encode()


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="small|medium|large (sets --files/--bytes)")
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--bytes", type=int, default=2_000_000)
    ap.add_argument("--build-files-frac", type=float, default=0.3, help="fraction of files in build/ (0.3)")
    ap.add_argument("--build-bytes-frac", type=float, default=0.5, help="fraction of bytes in build/ (0.5)")
    ap.add_argument("--py-frac", type=float, default=0.5, help="non-build files that are .py (0.5)")
    ap.add_argument("--import-modules", type=int, default=20, help="imports in app/workflows.py (20)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--git", action="store_true", help="git init + commit the non-ignored files")
    ap.add_argument("--force", action="store_true", help="remove DIR first if it exists")
    ap.add_argument("out", help="output directory")
    a = ap.parse_args()
    if a.preset:
        a.files, a.bytes = PRESETS[a.preset]

    if os.path.exists(a.out):
        if not a.force:
            sys.exit(f"{a.out} exists (use --force)")
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    rng = random.Random(a.seed)
    t0 = time.perf_counter()

    n_build = round(a.files * a.build_files_frac)
    fixed = 1 + 1 + 2 + CONF_FILES  # .gitignore, requirements.txt, app/*, conf/*
    n_src = max(a.files - n_build - fixed, 4)
    n_py = max(int(n_src * a.py_frac), 1)
    n_inits = 1 + -(-n_py // FILES_PER_DIR)  # pkg/__init__.py + one per sub package
    n_data = max(n_src - n_py - n_inits, 1)
    b_build = int(a.bytes * a.build_bytes_frac)
    b_src = a.bytes - b_build

    # fixed files
    write(os.path.join(a.out, ".gitignore"), b"build/\n*.pyc\n__pycache__/\n")
    reqs = "".join(f"package-{i:02d}=={1 + i % 5}.{i % 7}.{i % 3}\n" for i in range(30))
    write(os.path.join(a.out, "requirements.txt"), reqs.encode())
    for i in range(CONF_FILES):
        write(os.path.join(a.out, "conf", f"conf_{i:02d}.yaml"), text_blob(rng, 512, f"# conf {i}\n"))

    # python modules: pkg/sub_XXX/mod_YYYY.py
    py_sizes = sizes_for(rng, n_py, int(b_src * 0.5))
    mod_names = []
    subdirs = set()
    for i, sz in enumerate(py_sizes):
        sub = f"sub_{i // FILES_PER_DIR:03d}"
        subdirs.add(sub)
        write(os.path.join(a.out, "pkg", sub, f"mod_{i:05d}.py"), py_module(rng, sz, i))
        mod_names.append(f"pkg.{sub}.mod_{i:05d}")
    write(os.path.join(a.out, "pkg", "__init__.py"), b"")
    for sub in sorted(subdirs):
        write(os.path.join(a.out, "pkg", sub, "__init__.py"), b"")

    # app package: workflows.py imports K modules
    k = min(a.import_modules, len(mod_names))
    imports = "".join(f"import {m}  # noqa: F401\n" for m in mod_names[:k])
    write(os.path.join(a.out, "app", "__init__.py"), b"")
    write(os.path.join(a.out, "app", "workflows.py"), (f'"""imports {k} modules"""\n' + imports).encode())

    # text data
    data_sizes = sizes_for(rng, n_data, b_src - sum(py_sizes))
    exts = ["json", "csv", "txt"]
    for i, sz in enumerate(data_sizes):
        d = os.path.join(a.out, "data", f"d{i // FILES_PER_DIR:03d}")
        write(os.path.join(d, f"file_{i:05d}.{exts[i % 3]}"), text_blob(rng, sz, f"# data {i}\n"))

    # build/ (ignored): random binary
    build_sizes = sizes_for(rng, n_build, b_build)
    for i, sz in enumerate(build_sizes):
        d = os.path.join(a.out, "build", "lib", f"b{i // FILES_PER_DIR:03d}")
        write(os.path.join(d, f"obj_{i:05d}.so"), rng.randbytes(sz))

    gen_s = time.perf_counter() - t0
    git_s = 0.0
    if a.git:
        t1 = time.perf_counter()
        env = dict(
            os.environ,
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@example.invalid",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@example.invalid",
            GIT_AUTHOR_DATE="2000-01-01T00:00:00Z",
            GIT_COMMITTER_DATE="2000-01-01T00:00:00Z",
        )

        def run(*c: str) -> None:
            subprocess.run(c, cwd=a.out, env=env, check=True, stdout=subprocess.DEVNULL)

        run("git", "init", "-q", "-b", "main")
        run("git", "add", "-A")
        run("git", "commit", "-q", "-m", "synthetic tree")
        git_s = time.perf_counter() - t1

    n_total = 0
    for _root, dirs, fs in os.walk(a.out):
        dirs[:] = [d for d in dirs if d != ".git"]
        n_total += len(fs)
    print(
        json.dumps(
            {
                "dir": a.out,
                "files_total": n_total,
                "bytes_target": a.bytes,
                "build_files": n_build,
                "build_bytes": sum(build_sizes),
                "py_modules": n_py,
                "data_files": n_data,
                "imported_modules": k,
                "seed": a.seed,
                "git": a.git,
                "gen_s": round(gen_s, 2),
                "git_s": round(git_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
