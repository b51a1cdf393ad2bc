#!/usr/bin/env bash
# The Python base image of the engine tests, made on this machine (no public registry is reachable):
# a Debian bookworm root filesystem from debootstrap with python3, pip, venv and the stock
# ca-certificates, and WITHOUT this machine's extra CA bundle (tests pass that as a build secret).
#
#   scripts/base-image.sh build       make the image if it is not cached; print the cache folder
#   scripts/base-image.sh push REF    build if needed, then push to REF (plain HTTP for a loopback
#                                     registry), e.g. localhost:5000/imagespec-test/python:3.11-bookworm
#   scripts/base-image.sh load REF [docker|buildah]...
#                                     build if needed, then load into the local engine(s)' storage
#                                     (default: docker); not needed when builds pull REF from a registry
#   scripts/base-image.sh key         print the cache key
#
# The image is cached as an OCI image layout (one gzipped layer: a tar of the root filesystem with
# sorted names and numeric owners) in ${IMAGESPEC_TEST_CACHE:-~/.cache/imagespec-test}/base/<key>,
# where <key> hashes this script and the debootstrap arguments: the first run takes about a minute
# (debootstrap), later runs only push or load (seconds). Delete the folder to rebuild.
# Needs root (debootstrap), python3, gzip, and skopeo to push or load.
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
INCLUDE=python3,python3-pip,python3-venv,ca-certificates
ENV_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "base-image: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# The mirror apt uses on this machine (deb822 sources or the one-line format), so that debootstrap
# reaches Debian the same way apt does; IMAGESPEC_DEBIAN_MIRROR overrides.
mirror() {
    if [ -n "${IMAGESPEC_DEBIAN_MIRROR:-}" ]; then
        echo "$IMAGESPEC_DEBIAN_MIRROR"
        return
    fi
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk 'BEGIN{RS=""} /Suites:[^\n]*(^|[ \t])'"$SUITE"'([ \t]|$)/ && /Types:[^\n]*deb([ \t]|$)/ {
             if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit } }')
    if [ -z "$m" ]; then
        m=$(grep -hsE "^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+[[:space:]]+$SUITE([[:space:]]|$)" \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list | head -1 |
            sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/')
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

ARCH=$(dpkg --print-architecture)
MIRROR=$(mirror)
DEBOOTSTRAP_ARGS=(--variant="$VARIANT" --include="$INCLUDE" --arch="$ARCH" "$SUITE")
CACHE_ROOT=${IMAGESPEC_TEST_CACHE:-$HOME/.cache/imagespec-test}/base
SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
KEY=$({
    cat "$SCRIPT"
    printf '%s\n' "${DEBOOTSTRAP_ARGS[@]}" "$MIRROR"
} | sha256sum | cut -c1-16)
DIR=$CACHE_ROOT/$KEY # holds oci/ (the image layout) and info.json
TAG=python-3-$SUITE  # the tag inside the OCI layout

build() {
    [ -f "$DIR/oci/index.json" ] && {
        touch "$DIR/last-used"
        return 0
    }
    mkdir -p "$CACHE_ROOT"
    exec 8>"$CACHE_ROOT/$KEY.lock"
    flock -w 900 8 || die "another base-image.sh has held $CACHE_ROOT/$KEY.lock for 15 minutes"
    [ -f "$DIR/oci/index.json" ] && return 0 # built by the one we waited for

    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (or a cached image at $DIR)"
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap (or scripts/engines.sh start)"
    command -v python3 >/dev/null || die "python3 is missing"

    local work rootfs t0
    work=$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")
    chmod 755 "$work"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    rootfs=$work/rootfs
    t0=$SECONDS
    log "debootstrap ${DEBOOTSTRAP_ARGS[*]} from $MIRROR (about a minute; log: $work/debootstrap.log)"
    if ! debootstrap "${DEBOOTSTRAP_ARGS[@]}" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
        tail -30 "$work/debootstrap.log" >&2
        cp "$work/debootstrap.log" "$CACHE_ROOT/debootstrap-failed.log" 2>/dev/null || true
        die "debootstrap failed (log above; kept at $CACHE_ROOT/debootstrap-failed.log)"
    fi
    log "debootstrap done in $((SECONDS - t0)) s"

    # What an image does not carry: package lists and caches, logs, the build host's name and
    # resolver (the engine provides them at run time), device nodes and mount points' contents.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/log/* \
        "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/root/.cache
    find "$rootfs" -name __pycache__ -prune -exec rm -rf {} +
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"
    echo "deb $MIRROR $SUITE main" >"$rootfs/etc/apt/sources.list"
    # The machine's extra CAs must not be in the image: Debian's stock bundle only.
    if [ -n "$(ls -A "$rootfs/usr/local/share/ca-certificates" 2>/dev/null)" ]; then
        die "the root filesystem has local CA certificates: it must carry only Debian's bundle"
    fi

    log "packing the root filesystem"
    # Sorted names, numeric owners, no atime/ctime: one gzipped layer. The Python step compresses
    # (gzip format, no name, mtime 0) and hashes the tar (the layer's diff_id) and the blob in one pass.
    tar --sort=name --numeric-owner --xattrs --xattrs-include='security.capability' \
        --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' \
        -C "$rootfs" -cf - . |
        python3 -c '
import hashlib, sys, zlib
raw, gz = hashlib.sha256(), hashlib.sha256()
z = zlib.compressobj(6, zlib.DEFLATED, 31)
with open(sys.argv[1], "wb") as out:
    def emit(b):
        gz.update(b)
        out.write(b)
    for chunk in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
        raw.update(chunk)
        emit(z.compress(chunk))
    emit(z.flush())
with open(sys.argv[2], "w") as f:
    f.write(f"sha256:{raw.hexdigest()} sha256:{gz.hexdigest()}")
' "$work/layer.tar.gz" "$work/digests" || die "packing the root filesystem failed"
    rm -rf "$rootfs"

    python3 - "$work" "$ARCH" "$ENV_PATH" "$TAG" "debootstrap ${DEBOOTSTRAP_ARGS[*]} $MIRROR" <<'PY'
import hashlib, json, os, shutil, sys

work, arch, env_path, tag, created_by = sys.argv[1:6]
oci = os.path.join(work, "oci")
blobs = os.path.join(oci, "blobs", "sha256")
os.makedirs(blobs)

def put(data: bytes) -> str:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d

layer_path = os.path.join(work, "layer.tar.gz")
with open(os.path.join(work, "digests")) as f:
    diff_id, layer_digest = f.read().split()
os.remove(os.path.join(work, "digests"))
layer_size = os.path.getsize(layer_path)
shutil.move(layer_path, os.path.join(blobs, layer_digest.split(":")[1]))

created = "2025-01-01T00:00:00Z"
config = {
    "architecture": arch,
    "os": "linux",
    "created": created,
    "config": {
        "Env": [f"PATH={env_path}", "LANG=C.UTF-8"],
        "Cmd": ["python3"],
        "Labels": {"org.opencontainers.image.description": "imagespec test base: Debian with python3, pip, venv"},
    },
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": created, "created_by": created_by}],
}
cfg = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
manifest = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}
        ],
    },
    sort_keys=True,
    separators=(",", ":"),
).encode()
index = {
    "schemaVersion": 2,
    "manifests": [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(manifest),
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    ],
}
with open(os.path.join(oci, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(oci, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(work, "info.json"), "w") as f:
    json.dump({"manifest": "sha256:" + hashlib.sha256(manifest).hexdigest(), "layer_bytes": layer_size,
               "created_by": created_by}, f, indent=1)
PY
    rm -f "$work/debootstrap.log"
    touch "$work/last-used"
    rm -rf "$DIR"
    mv "$work" "$DIR" # atomic: a reader sees a complete layout or none
    trap - EXIT
    log "cached at $DIR ($(du -sh "$DIR" | cut -f1), $((SECONDS - t0)) s in all)"
    # Images of older versions of this script, unused for a week, go.
    find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -not -name "$KEY" -not -name '.build-*' \
        \( -exec test -e {}/last-used \; -a -not -newermt '-7 days' \) -print0 2>/dev/null |
        while IFS= read -r -d '' old; do
            [ -e "$old/last-used" ] && [ -z "$(find "$old/last-used" -mtime -7)" ] && rm -rf "$old"
        done
    return 0
}

need_skopeo() { command -v skopeo >/dev/null || die "skopeo is missing: apt-get install -y skopeo (or scripts/engines.sh start)"; }

loopback() { # $1 = REF; true when its registry host is loopback (plain HTTP is allowed there)
    local host=${1%%/*}
    host=${host%:*}
    [[ $host == localhost || $host == 127.* || $host == "[::1]" ]]
}

push() {
    local ref=${1:?usage: base-image.sh push REF}
    need_skopeo
    build
    local tls=()
    loopback "$ref" && tls=(--dest-tls-verify=false)
    log "pushing to $ref"
    skopeo copy --quiet "${tls[@]}" "oci:$DIR/oci:$TAG" "docker://$ref" >&2 || die "skopeo copy to docker://$ref failed"
}

load() {
    local ref=${1:?usage: base-image.sh load REF [docker|buildah]...}
    shift
    local engines=("$@")
    [ ${#engines[@]} -eq 0 ] && engines=(docker)
    need_skopeo
    build
    local e
    for e in "${engines[@]}"; do
        case $e in
        docker) skopeo copy --quiet "oci:$DIR/oci:$TAG" "docker-daemon:$ref" >&2 || die "loading into docker failed (is dockerd running? scripts/engines.sh start)" ;;
        buildah) skopeo copy --quiet "oci:$DIR/oci:$TAG" "containers-storage:[vfs@/var/lib/containers/storage+/run/containers/storage]$ref" >&2 || die "loading into buildah's vfs storage failed" ;;
        *) die "unknown engine $e (docker or buildah)" ;;
        esac
        log "loaded into $e as $ref"
    done
}

case "${1:-}" in
build)
    build
    echo "$DIR"
    ;;
push)
    shift
    push "$@"
    ;;
load)
    shift
    load "$@"
    ;;
key) echo "$KEY" ;;
*)
    echo "usage: $0 build | push REF | load REF [docker|buildah]... | key" >&2
    exit 2
    ;;
esac
