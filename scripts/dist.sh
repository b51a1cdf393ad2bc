#!/usr/bin/env bash
# `make dist`: the files a release publishes for Linux x86-64, into dist/ (or $IMAGESPEC_DIST_DIR):
#   imagespec_build-<version>-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#   imagespec_build-<version>.tar.gz
# The wheel is linked with zig against glibc 2.17 (manylinux2014), whatever glibc this machine has,
# and `auditwheel show` must agree that it is manylinux. Idempotent: when the files that go into
# each artefact and the tools are unchanged, nothing is rebuilt. Cargo builds into a target
# folder of its own under ~/.cache, so it neither waits for nor invalidates the development build
# in target/. Prints the two paths, wheel first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${IMAGESPEC_DIST_DIR:-$ROOT/dist}
TARGET=${IMAGESPEC_DIST_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/imagespec-dist/target}
# The lowest glibc Rust's standard library supports; zig links against exactly that.
COMPAT=manylinux2014
export PATH="$ROOT/.venv/bin:$PATH"

for tool in maturin auditwheel; do
    [ -x ".venv/bin/$tool" ] || { echo "dist: .venv/bin/$tool is missing: run make setup" >&2; exit 1; }
done
.venv/bin/python -m ziglang version >/dev/null 2>&1 \
    || { echo "dist: zig (the ziglang package) is missing from .venv: run make setup" >&2; exit 1; }

mkdir -p "$OUT"
# Two callers (make dist and the tests/dist session) must not build into one folder at once.
exec 9>"$OUT/.lock"
flock 9

# The content of every file `git ls-files` shows under the given paths (tracked, or new and not
# ignored: what maturin's sdist takes), plus the tools' versions.
fingerprint() {
    git ls-files -co --exclude-standard -z -- "$@" | sort -z | while IFS= read -r -d '' f; do
        [ -f "$f" ] && sha256sum "$f"
    done
    maturin --version
    python -m ziglang version
    echo "$COMPAT"
}

wheel_stamp="$OUT/.wheel-inputs"
sdist_stamp="$OUT/.sdist-inputs"
wheel_inputs=$(fingerprint Cargo.toml Cargo.lock pyproject.toml README.md src python | sha256sum | cut -d' ' -f1)
sdist_inputs=$(fingerprint . | sha256sum | cut -d' ' -f1)
wheels=("$OUT"/imagespec_build-*.whl)
sdists=("$OUT"/imagespec_build-*.tar.gz)

if [ -f "${wheels[0]}" ] && [ ${#wheels[@]} -eq 1 ] && [ "$(cat "$wheel_stamp" 2>/dev/null)" = "$wheel_inputs" ]; then
    echo "dist: ${wheels[0]#"$ROOT"/} is up to date" >&2
else
    rm -f "$OUT"/imagespec_build-*.whl "$wheel_stamp"
    echo "dist: building the wheel (maturin --zig, $COMPAT; cargo target $TARGET)" >&2
    start=$SECONDS
    if ! log=$(CARGO_TARGET_DIR="$TARGET" maturin build --release --strip --zig --compatibility "$COMPAT" \
        --auditwheel check --out "$OUT" 2>&1); then
        echo "$log" >&2
        echo "dist: maturin build failed" >&2
        exit 1
    fi
    wheels=("$OUT"/imagespec_build-*.whl)
    [ ${#wheels[@]} -eq 1 ] && [ -f "${wheels[0]}" ] || { echo "dist: expected one wheel in $OUT" >&2; exit 1; }
    # auditwheel reads the symbols the extension really needs: its tag must be manylinux and one of
    # the tags in the file name (a name claiming more than the binary allows is an error too).
    shown=$(auditwheel show "${wheels[0]}" 2>&1 | tr -s '[:space:]' ' ')
    tag=$(sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p' <<<"$shown")
    case "$tag" in
    manylinux_*) ;;
    *) echo "dist: auditwheel says ${wheels[0]##*/} is not manylinux: $shown" >&2; rm -f "${wheels[0]}"; exit 1 ;;
    esac
    case "${wheels[0]##*/}" in
    *"$tag"*) ;;
    *) echo "dist: ${wheels[0]##*/} is named for other platforms than auditwheel's $tag" >&2; rm -f "${wheels[0]}"; exit 1 ;;
    esac
    echo "$wheel_inputs" >"$wheel_stamp"
    echo "dist: built ${wheels[0]##*/} ($tag) in $((SECONDS - start)) s" >&2
fi

if [ -f "${sdists[0]}" ] && [ ${#sdists[@]} -eq 1 ] && [ "$(cat "$sdist_stamp" 2>/dev/null)" = "$sdist_inputs" ]; then
    echo "dist: ${sdists[0]#"$ROOT"/} is up to date" >&2
else
    rm -f "$OUT"/imagespec_build-*.tar.gz "$sdist_stamp"
    if ! log=$(maturin sdist --out "$OUT" 2>&1); then
        echo "$log" >&2
        echo "dist: maturin sdist failed" >&2
        exit 1
    fi
    sdists=("$OUT"/imagespec_build-*.tar.gz)
    [ ${#sdists[@]} -eq 1 ] && [ -f "${sdists[0]}" ] || { echo "dist: expected one sdist in $OUT" >&2; exit 1; }
    echo "$sdist_inputs" >"$sdist_stamp"
    echo "dist: built ${sdists[0]##*/}" >&2
fi
echo "${wheels[0]}"
echo "${sdists[0]}"
