#!/usr/bin/env bash
# Smoke test of built distributions, as the release workflow runs it on each wheel (Linux, macOS,
# Windows' Git Bash, Alpine): for each PYTHON given, a fresh venv gets imagespec-build from DIR only
# (no package index, so nothing else, least of all the unrelated `imagespec` on the index, can come
# along), then tests/dist/smoke.py --check runs in it from an empty folder.
#   bash scripts/smoke.sh DIR PYTHON...      e.g. bash scripts/smoke.sh dist python3.9 python3.13
# With SMOKE_SDIST=1 the sdist in DIR is installed instead (pip builds it: needs Rust and the index
# for maturin).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash scripts/smoke.sh DIR PYTHON..." >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(cd "$1" && pwd)
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${SMOKE_SDIST:-0}" = 1 ]; then
    sdists=("$dir"/imagespec_build-*.tar.gz)
    [ -f "${sdists[0]}" ] || { echo "smoke: no imagespec_build sdist in $dir" >&2; exit 1; }
fi

n=0
for py in "$@"; do
    n=$((n + 1))
    venv="$work/venv-$n"
    "$py" -m venv "$venv"
    bin="$venv/bin"
    [ -d "$bin" ] || bin="$venv/Scripts"
    if [ "${SMOKE_SDIST:-0}" = 1 ]; then
        "$bin/python" -m pip install --disable-pip-version-check "${sdists[0]}"
    else
        "$bin/python" -m pip install --disable-pip-version-check --no-index --find-links "$dir" imagespec-build
    fi
    mkdir -p "$work/cwd"
    (cd "$work/cwd" && "$bin/python" "$here/tests/dist/smoke.py" --check >"$work/report.json")
    echo "smoke: $py: $("$bin/python" -c 'import sys; print(sys.version.split()[0])'): imagespec-build works"
done
