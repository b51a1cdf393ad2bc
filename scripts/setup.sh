#!/usr/bin/env bash
# Idempotent set-up of everything the build, the example and the tests need, on a fresh
# Debian machine as root or in an existing checkout: system packages, a virtualenv at .venv with
# the Python tools, and imagespec itself built into it (release mode).
set -euo pipefail
cd "$(dirname "$0")/.."

# docker-registry, apache2-utils (htpasswd -B), openssl: the real registries of the registry tests.
APT_PACKAGES=(git docker-registry apache2-utils openssl skopeo)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install ${missing[*]} (or install them yourself)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.tools-installed
# pandas and scikit-learn: examples/wf.py runs (and unpickles its tasks' outputs) on the host too.
# uv: the native builder (the `native` extra of imagespec-build).
# ziglang, auditwheel: `make dist` links a manylinux2014 wheel with zig and checks its tag.
# check-jsonschema: `make lint` checks .github/workflows against the workflow schema it ships.
tools="maturin>=1.9.4,<2 pytest>=8 pytest-timeout>=2 hypothesis>=6 ruff>=0.6 mypy>=1.10 pandas scikit-learn uv>=0.5"
tools="$tools ziglang auditwheel check-jsonschema"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$tools" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install -q $tools
    echo "$tools" > "$stamp"
fi

# A stale extension in the source tree would shadow the fresh build.
rm -f python/imagespec/_core*.so
# This checkout installed under its old distribution name (imagespec, which on the index is another
# project): its metadata would still claim the module. Only its own files go (not the shared
# `imagespec` script, which the new install owns).
for old in .venv/lib/python*/site-packages/imagespec-*.dist-info; do
    [ -d "$old" ] && grep -q "\"file://$PWD\"" "$old/direct_url.json" 2>/dev/null || continue
    rm -rf "$old" "$(dirname "$old")/imagespec.pth"
done
if ! log=$(VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release 2>&1); then
    echo "$log" >&2
    echo "setup: building imagespec failed" >&2
    exit 1
fi
.venv/bin/python -c "import imagespec; print('setup: imagespec', imagespec.__version__, 'ready in .venv')"
