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
#   scripts/base-image.sh push-index REF ARCH...
#                                     build each architecture if needed, then push one OCI image
#                                     index of them to REF (e.g. amd64 arm64)
#
# --arch ARCH before the command (default: this machine's, `dpkg --print-architecture`) makes the
# image for another Debian architecture, with the same packages: debootstrap's first stage
# (--foreign: downloads and unpacks, runs nothing), then its second stage (the maintainer scripts)
# in a chroot of that tree, where the kernel hands every ARCH binary to qemu-user-static. That needs
# the binfmt_misc handler of ARCH enabled with the F (fix-binary) flag, so that the interpreter need
# not be inside the chroot: `scripts/engines.sh start` sets it up. Emulated, the second stage takes
# several minutes (docs/engines.md has the figures); the image runs here through the same qemu
# (`docker run --platform linux/ARCH`).
#
# The image is cached as an OCI image layout (one gzipped layer: a tar of the root filesystem with
# sorted names and numeric owners) in ${IMAGESPEC_TEST_CACHE:-~/.cache/imagespec-test}/base/<key>,
# where <key> hashes this script and the debootstrap arguments: the first run takes about a minute
# (debootstrap; several for a foreign ARCH), later runs only push or load (seconds). Delete the
# folder to rebuild. Needs root (debootstrap, chroot), python3, gzip, and skopeo to push or load.
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

# The qemu binfmt_misc handler that runs ARCH's binaries (Debian's qemu-user-static names them
# qemu-<qemu CPU name>); fails, saying how to get it, unless it is enabled with the F flag.
need_emulation() {
    local cpu handler
    case $ARCH in
    arm64) cpu=aarch64 ;;
    armhf | armel) cpu=arm ;;
    ppc64el) cpu=ppc64le ;;
    *) cpu=$ARCH ;;
    esac
    handler=/proc/sys/fs/binfmt_misc/qemu-$cpu
    grep -qsx enabled "$handler" ||
        die "$ARCH binaries cannot run here: no enabled $handler (scripts/engines.sh start installs qemu-user-static and enables it)"
    grep -q '^flags:.*F' "$handler" ||
        die "$handler lacks the F (fix-binary) flag, so qemu cannot run inside a chroot (scripts/engines.sh start re-registers it)"
}

HOST_ARCH=$(dpkg --print-architecture)
ARCH=$HOST_ARCH
if [ "${1:-}" = --arch ]; then
    ARCH=${2:?usage: base-image.sh --arch ARCH COMMAND}
    shift 2
fi
MIRROR=$(mirror)
if [ "$ARCH" = "$HOST_ARCH" ]; then
    FOREIGN=
    DEBOOTSTRAP_ARGS=(--variant="$VARIANT" --include="$INCLUDE" --arch="$ARCH" "$SUITE")
else
    FOREIGN=1
    DEBOOTSTRAP_ARGS=(--foreign --variant="$VARIANT" --include="$INCLUDE" --arch="$ARCH" "$SUITE")
fi
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
    [ -z "$FOREIGN" ] || need_emulation

    local work rootfs t0 t1
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
    if [ -n "$FOREIGN" ]; then
        # In a mount namespace of its own: the proc and sys the second stage mounts in the tree go
        # with it, whatever happens, and never stay mounted under what is packed and removed next.
        t1=$SECONDS
        log "debootstrap --second-stage for $ARCH under qemu (several minutes)"
        if ! unshare --mount --propagation private chroot "$rootfs" /debootstrap/debootstrap --second-stage \
            >>"$work/debootstrap.log" 2>&1; then
            tail -30 "$work/debootstrap.log" >&2
            cp "$work/debootstrap.log" "$CACHE_ROOT/debootstrap-failed.log" 2>/dev/null || true
            die "debootstrap --second-stage failed (log above; kept at $CACHE_ROOT/debootstrap-failed.log)"
        fi
        log "second stage done in $((SECONDS - t1)) s"
    fi

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

    local description="imagespec test base: Debian with python3, pip, venv"
    local created_by="debootstrap ${DEBOOTSTRAP_ARGS[*]} $MIRROR"
    if [ -n "$FOREIGN" ]; then
        description="imagespec test base: Debian $ARCH with python3, pip, venv (made and run here through qemu)"
        created_by="$created_by && chroot debootstrap --second-stage (qemu-user-static)"
    fi
    python3 - "$work" "$ARCH" "$ENV_PATH" "$TAG" "$created_by" "$description" <<'PY'
import hashlib, json, os, shutil, sys

work, arch, env_path, tag, created_by, description = sys.argv[1:7]
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
        "Labels": {"org.opencontainers.image.description": description},
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

# One OCI image index of the images of each ARCH, pushed to REF with all its images: a throw-away
# layout whose blobs are hard links to the cached images' blobs, and an index (sorted JSON, the
# entries in the order given) under the tag.
push_index() {
    local ref=${1:?usage: base-image.sh push-index REF ARCH...}
    shift
    [ $# -gt 0 ] || die "usage: base-image.sh push-index REF ARCH..."
    need_skopeo
    local dirs=() a
    for a in "$@"; do
        dirs+=("$(bash "$SCRIPT" --arch "$a" build)") || die "building the $a image failed"
    done
    mkdir -p "$CACHE_ROOT"
    local work
    work=$(mktemp -d "$CACHE_ROOT/.index.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    mkdir -p "$work/blobs/sha256"
    for a in "${dirs[@]}"; do
        cp -l "$a"/oci/blobs/sha256/* "$work/blobs/sha256/" 2>/dev/null || cp -n "$a"/oci/blobs/sha256/* "$work/blobs/sha256/"
    done
    python3 - "$work" "$TAG" "$@" -- "${dirs[@]}" <<'PY' || die "writing the index failed"
import hashlib, json, os, sys

work, tag, *rest = sys.argv[1:]
sep = rest.index("--")
arches, dirs = rest[:sep], rest[sep + 1 :]
entries = []
for arch, d in zip(arches, dirs):
    with open(os.path.join(d, "oci", "index.json")) as f:
        (m,) = json.load(f)["manifests"]
    entries.append({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
                    "platform": {"architecture": arch, "os": "linux"}})
index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": entries}, sort_keys=True, separators=(",", ":")).encode()
digest = hashlib.sha256(index).hexdigest()
with open(os.path.join(work, "blobs", "sha256", digest), "wb") as f:
    f.write(index)
with open(os.path.join(work, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
               "digest": "sha256:" + digest, "size": len(index),
               "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
with open(os.path.join(work, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
PY
    local tls=()
    loopback "$ref" && tls=(--dest-tls-verify=false)
    log "pushing the index of $* to $ref"
    skopeo copy --quiet --all --preserve-digests "${tls[@]}" "oci:$work:$TAG" "docker://$ref" >&2 ||
        die "skopeo copy --all to docker://$ref failed"
    rm -rf "$work"
    trap - EXIT
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
push-index)
    shift
    push_index "$@"
    ;;
key) echo "$KEY" ;;
*)
    echo "usage: $0 [--arch ARCH] build | push REF | load REF [docker|buildah]... | key | push-index REF ARCH..." >&2
    exit 2
    ;;
esac
