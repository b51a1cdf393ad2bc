#!/usr/bin/env bash
# shellcheck disable=SC2317 # stop and on_signal run from traps
# Runs a command (the Python tests) with the real engines up: scripts/engines.sh start, the test
# base image made or taken from its cache (so its first, slow build is not inside a test's
# timeout), the command, then scripts/engines.sh stop, whatever happens (failure, Ctrl-C, TERM).
#
#   scripts/with-engines.sh .venv/bin/python -m pytest
#
# Under CI (env CI set) an engine that cannot start fails at once; elsewhere the engine tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."

child=
arm64=
stop() {
    # An arm64 base still being made is not waited for: its next run starts over (nothing partial
    # is kept, base-image.sh renames a finished base into its cache).
    # (It may have finished already: kill then fails, which must not end this trap under set -e.)
    if [ -n "$arm64" ]; then kill "$arm64" 2>/dev/null || true; fi
    bash scripts/engines.sh stop || echo "with-engines: scripts/engines.sh stop failed" >&2
}
# On INT/TERM: pass the signal on to the command, let it finish its teardown, then stop the engines.
on_signal() {
    if [ -n "$child" ]; then kill "-$1" "$child" 2>/dev/null && wait "$child" || true; fi
    exit "$2"
}
trap stop EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# engines.sh's lease is this script's pid (its parent's): `stop` above releases what `start` took.
if ! bash scripts/engines.sh start; then
    [ -n "${CI:-}" ] && { echo "with-engines: the engines did not start (see above)" >&2; exit 1; }
    echo "with-engines: the engines did not start: the engine tests will skip" >&2
elif ! bash scripts/base-image.sh build >/dev/null; then
    [ -n "${CI:-}" ] && { echo "with-engines: the base image could not be made (see above)" >&2; exit 1; }
    echo "with-engines: no base image: the engine tests will skip" >&2
else
    # A cold arm64 base runs debootstrap's second stage under qemu (minutes): made while the other
    # tests run, which the tests needing it come after (tests/engines/conftest.py); they wait for
    # it on base-image.sh's lock.
    log=$(mktemp "${TMPDIR:-/tmp}/imagespec-arm64-base.XXXXXX")
    bash scripts/base-image.sh --arch arm64 build >"$log" 2>&1 &
    arm64=$!
fi
# In the background, so that a signal reaches the trap at once rather than after the command ends.
"$@" &
child=$!
status=0
wait "$child" || status=$?
child=
exit "$status"
