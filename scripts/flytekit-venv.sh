#!/usr/bin/env bash
# Idempotent: a virtualenv with real flytekit for the flytekit-bridge tests (tests/test_flytekit.py,
# tests/engines/test_flytekit_bridge.py, tests/compat/test_flytekit_suite.py); prints its python on
# stdout, everything else on stderr.
# Keyed by the flytekit pin and the Python version, cached under ~/.cache/imagespec-test (the first
# run pip-installs flytekit, 1-2 minutes; later runs return at once). imagespec itself is not
# installed here: the tests put their own wheel on PYTHONPATH, so the venv holds flytekit and the
# test tools flytekit's own ImageSpec tests need (pytest, mock: flytekit's dev-requirements pins).
#   FLYTEKIT_PIN    version pin (default 1.16.*)
#   PYTHON          interpreter to make the venv with (default python3)
set -euo pipefail

PIN=${FLYTEKIT_PIN:-1.16.*}
PY=${PYTHON:-python3}
CACHE=${IMAGESPEC_TEST_CACHE:-$HOME/.cache/imagespec-test}

pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key="${PIN//[^A-Za-z0-9.]/x}-py$pyver"
dir="$CACHE/venv-flytekit-$key"
ready="$dir/.imagespec-ready"
TOOLS=(pytest==8.2.1 mock==5.1.0)
# Changes when what is installed changes, so that cached venvs are completed.
stamp="flytekit==$PIN ${TOOLS[*]}"

if [ -f "$ready" ] && [ "$(cat "$ready")" = "$stamp" ] && [ -x "$dir/bin/python" ]; then
    echo "$dir/bin/python"
    exit 0
fi

mkdir -p "$CACHE"
# One creator at a time (two test sessions, two worktrees); the others wait, then reuse.
exec 9>"$dir.lock"
flock 9
old=$(cat "$ready" 2>/dev/null || true)
if [ "$old" != "$stamp" ] && [ "${old%% *}" = "flytekit==$PIN" ] && [ -x "$dir/bin/python" ]; then
    # flytekit is there (an older stamp): add the tools in place rather than remake the venv, which
    # another test session may be using right now.
    echo "flytekit-venv: adding ${TOOLS[*]} to $dir" >&2
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "${TOOLS[@]}" >&2
    echo "$stamp" > "$ready"
fi
if ! { [ -f "$ready" ] && [ "$(cat "$ready")" = "$stamp" ]; }; then
    echo "flytekit-venv: creating $dir (pip install flytekit==$PIN ${TOOLS[*]})" >&2
    rm -rf "$dir"
    "$PY" -m venv "$dir" >&2
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "flytekit==$PIN" "${TOOLS[@]}" >&2
    "$dir/bin/python" -c 'import flytekit; print("flytekit-venv: flytekit", flytekit.__version__)' >&2
    echo "$stamp" > "$ready"
fi
echo "$dir/bin/python"
