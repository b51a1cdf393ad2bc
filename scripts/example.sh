#!/usr/bin/env bash
# The main job, end to end on this machine: build the example images (examples/images.py) and push
# them to a loopback registry, run one, build again (nothing to do), show what an image was
# built from, then run the seed's workflow (examples/wf.py) with each task in its own image.
# Everything it starts (dockerd when not already up, the registry) is stopped at the end.
#
# No public registry is reachable here, so the examples are built FROM the Debian base made by
# scripts/base-image.sh (pushed to the same registry), with this machine's CA bundle passed as a
# build secret, and with imagespec installed in the images from a wheel built now (imagespec is not
# on the package index). Elsewhere, `imagespec build examples/images.py` is all it takes.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${IMAGESPEC_EXAMPLE_PORT:-30000}
VENV=.venv/bin
WORK=$(mktemp -d /tmp/imagespec-example.XXXXXX)
registry_pid=

# Keeps the script's own exit status: the registry killed here must not turn a success into 143.
stop() {
    local status=$?
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    bash scripts/engines.sh stop || true
    rm -rf "$WORK"
    exit "$status"
}
trap stop EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "example: port $PORT is in use; set IMAGESPEC_EXAMPLE_PORT to a free port" >&2
    exit 1
fi

bash scripts/engines.sh start
cat >"$WORK/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/storage}, delete: {enabled: true}}
http: {addr: "127.0.0.1:$PORT", secret: imagespec-example}
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null || { cat "$WORK/registry.log" >&2; exit 1; }

export EXAMPLE_REGISTRY=localhost:$PORT
export EXAMPLE_BASE_IMAGE=$EXAMPLE_REGISTRY/imagespec-example/python:3.11-bookworm
bash scripts/base-image.sh push "$EXAMPLE_BASE_IMAGE"
"$VENV/maturin" build --release --quiet -o "$WORK/wheel" >/dev/null
IMAGESPEC_WHEEL=$(ls "$WORK"/wheel/imagespec_build-*.whl)
export IMAGESPEC_WHEEL IMAGESPEC_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

echo "==> imagespec build examples/images.py"
"$VENV/imagespec" build examples/images.py
echo "==> again: every image exists, nothing is built"
"$VENV/imagespec" build examples/images.py
pandas_image=$("$VENV/imagespec" tag examples/images.py | sed -n 1p)  # sed reads all: no broken pipe
echo "==> docker run $pandas_image"
docker run --rm "$pandas_image" python -c \
    'import os, pandas, imagespec; print("pandas", pandas.__version__, "| Debug =", os.environ["Debug"], "| _F_IMG_ID =", os.environ["_F_IMG_ID"])'
echo "==> imagespec inspect $pandas_image"
"$VENV/imagespec" inspect "$pandas_image"
echo "==> imagespec run examples/wf.py wf --in-containers (the seed's workflow, each task in its own image)"
"$VENV/imagespec" run examples/wf.py wf --in-containers
