#!/usr/bin/env bash
# The real container engines the engine tests use: install what is missing, start dockerd when no
# engine answers on /var/run/docker.sock, and stop only what this script started.
#
#   scripts/engines.sh start    install (apt, only what is missing), enable qemu's aarch64 handler
#                               and start dockerd if needed
#   scripts/engines.sh stop     drop this caller's lease; stop dockerd when this script started it
#                               and no other live caller still holds a lease
#   scripts/engines.sh status   what is installed and what answers (exit 1 when docker does not)
#
# dockerd started here listens on the unix socket and on a loopback TCP port (for the "remote
# engine via DOCKER_HOST" tests) that takes only TLS clients with a certificate of a CA made at
# each dockerd start: any local user can connect to a loopback port, so without that the port would
# be root's API for everyone. The CA's key is deleted once the server and client certificates are
# signed; the client certificate and key sit in the private state folder. `status` prints
# DOCKER_TCP=tcp://127.0.0.1:PORT and DOCKER_CERT_PATH=FOLDER when the port answers (a client sets
# DOCKER_HOST, DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH).
#
# The state folder (pid file, log, port, certificates, leases, lock) is private: made 0700 by this
# script, or an existing one owned by the caller and writable by no one else; a folder owned by
# another user, a symlink, or one in a folder others can rename entries of, is refused (root
# acts on what is there: a planted pid file, lock symlink or log symlink would be followed).
#
# arm64 images are made and run here through qemu-user-static: `start` mounts binfmt_misc and
# enables the kernel's qemu-aarch64 handler with the F (fix-binary) flag, which opens qemu once at
# registration so that it runs aarch64 binaries inside containers and chroots too, where its path
# does not exist. That is a setting of the whole machine: `stop` leaves it. A failure there is an
# error under CI (env CI set) and a warning elsewhere (only the arm64 tests need it).
#
# Environment:
#   IMAGESPEC_ENGINES_STATE   state folder (see above); default $XDG_RUNTIME_DIR/imagespec-engines,
#                             else ~/.cache/imagespec-engines
#   IMAGESPEC_ENGINES_LEASE   lease name of this caller (default: the parent process id); `start`
#                             and `stop` with the same name pair up
#   IMAGESPEC_DOCKER_TCP_PORT loopback TCP port for dockerd (default: a free one)
#   IMAGESPEC_ENGINES_NO_INSTALL=1  never call apt-get; fail when something is missing
set -euo pipefail

STATE=${IMAGESPEC_ENGINES_STATE:-${XDG_RUNTIME_DIR:-${HOME:?HOME is not set}/.cache}/imagespec-engines}
SOCK=/var/run/docker.sock
DOCKER=/usr/bin/docker # the Debian 20.10 client: built-in BuildKit, no buildx needed
TLS=$STATE/tls
LEASE=${IMAGESPEC_ENGINES_LEASE:-$PPID}
# zstd: the native builder tests decode zstd layers with it.
# qemu-user-static, binfmt-support: arm64 binaries through qemu (update-binfmts registers them).
PACKAGES=(docker.io buildah podman skopeo debootstrap uidmap fuse-overlayfs zstd qemu-user-static binfmt-support openssh-server openssl)
BINFMT=/proc/sys/fs/binfmt_misc
EMULATED=(aarch64) # qemu CPU names, as in /usr/share/binfmts/qemu-NAME

log() { echo "engines: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

docker_answers() { # $1: DOCKER_HOST (default the unix socket); a tcp:// one with our client certificate
    [ -x "$DOCKER" ] || return 1
    local host=${1:-unix://$SOCK}
    if [[ $host == tcp://* ]]; then
        DOCKER_HOST=$host DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$TLS/client \
            timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1
    else
        DOCKER_HOST=$host timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1
    fi
}

owner_mode() { stat -c '%u %a' -- "$1"; } # of the entry itself (a symlink is not followed)

private_state() { # makes or accepts $STATE as the caller's private folder; dies otherwise
    local parent me owner mode
    me=$(id -u)
    parent=$(dirname -- "$STATE")
    mkdir -p -- "$parent" || die "cannot make $parent (the state folder's parent)"
    parent=$(realpath -- "$parent")
    read -r owner mode <<<"$(owner_mode "$parent")"
    # A folder others may write in, without the sticky bit, lets them rename the state folder away
    # and put their own in its place between the checks below and its use.
    if { [ "$owner" != "$me" ] && [ "$owner" != 0 ]; } || { ((8#$mode & 8#022)) && ! ((8#$mode & 8#1000)); }; then
        die "the state folder's parent $parent (owner uid $owner, mode $mode) can be changed by other users; set IMAGESPEC_ENGINES_STATE to a folder under one only you (or root) can write"
    fi
    mkdir -m 0700 -- "$STATE" 2>/dev/null && return 0
    [ -L "$STATE" ] && die "the state folder $STATE is a symlink (to $(readlink -- "$STATE")): refused, as another user may have planted it; remove it or set IMAGESPEC_ENGINES_STATE"
    [ -d "$STATE" ] || die "the state folder $STATE exists and is not a folder; remove it or set IMAGESPEC_ENGINES_STATE"
    read -r owner mode <<<"$(owner_mode "$STATE")"
    [ "$owner" = "$me" ] || die "the state folder $STATE is owned by uid $owner, not by you (uid $me): refused, as another user may have made it to plant files there; remove it or set IMAGESPEC_ENGINES_STATE"
    ((8#$mode & 8#022)) && die "the state folder $STATE (mode $mode) is writable by other users: refused, its files cannot be trusted; remove it or set IMAGESPEC_ENGINES_STATE"
    chmod 0700 -- "$STATE" # an older, readable one (its log and pid file) becomes private
}

make_tls() { # a fresh CA, server and client certificates for dockerd's TCP port, in $TLS
    local ca_key=$TLS/ca-key.pem old_umask
    # Keys 0600 even though the folder is private (not for the whole script: apt-get and dockerd
    # must create what they create with their usual modes).
    old_umask=$(umask)
    umask 077
    rm -rf -- "$TLS"
    mkdir -m 0700 -- "$TLS" "$TLS/client"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install -y openssl)"
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
            -subj "/CN=imagespec-engines CA" -keyout "$ca_key" -out "$TLS/ca.pem" &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=localhost" -keyout "$TLS/server-key.pem" -out "$TLS/server.csr" &&
            openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$ca_key" -CAcreateserial \
                -days 7 -out "$TLS/server.pem" \
                -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=imagespec-engines client" -keyout "$TLS/client/key.pem" -out "$TLS/client.csr" &&
            openssl x509 -req -in "$TLS/client.csr" -CA "$TLS/ca.pem" -CAkey "$ca_key" -CAcreateserial \
                -days 7 -out "$TLS/client/cert.pem" -extfile <(printf 'extendedKeyUsage=clientAuth\n')
    } >"$STATE/tls.log" 2>&1 || { tail -20 "$STATE/tls.log" >&2; die "making the TLS certificates failed"; }
    # Nothing is signed after this: without the CA key no one can make another client certificate.
    rm -f -- "$ca_key" "$TLS"/*.csr "$TLS"/*.srl
    cp -- "$TLS/ca.pem" "$TLS/client/ca.pem"
    umask "$old_umask"
}

ours_running() { # the dockerd this script started is alive
    [ -f "$STATE/dockerd.pid" ] || return 1
    local pid
    pid=$(cat "$STATE/dockerd.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa dockerd "/proc/$pid/cmdline" 2>/dev/null
}

live_leases() { # prints the leases whose holder (when it is a pid) is still alive
    local f name
    for f in "$STATE"/leases/*; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        if [[ $name =~ ^[0-9]+$ ]] && ! kill -0 "$name" 2>/dev/null; then
            rm -f "$f" # its holder died without `stop`
            continue
        fi
        echo "$name"
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_missing() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${IMAGESPEC_ENGINES_NO_INSTALL:-}" = 1 ] || [ "$(id -u)" -ne 0 ]; then
        die "missing packages: ${missing[*]} (as root: apt-get install -y ${missing[*]})"
    fi
    log "installing ${missing[*]}"
    # Another apt run (a parallel session) holds the lock for a while: wait for it.
    apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 ||
        { tail -20 "$STATE/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

emulation_ok() { # $1: qemu CPU name; the handler is registered, enabled and has the F flag
    grep -qsx enabled "$BINFMT/qemu-$1" && grep -qs '^flags:.*F' "$BINFMT/qemu-$1"
}

enable_emulation() {
    local cpu handler
    if [ ! -e "$BINFMT/register" ]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" 2>"$STATE/binfmt.log" ||
            { cat "$STATE/binfmt.log" >&2; return 1; }
    fi
    for cpu in "${EMULATED[@]}"; do
        emulation_ok "$cpu" && continue
        handler=$BINFMT/qemu-$cpu
        # Registered without F (by hand or another tool): the flags of an entry cannot change, so
        # it goes and binfmt-support registers Debian's, which has fix_binary.
        if [ -e "$handler" ]; then
            log "re-registering $handler ($(grep '^flags:' "$handler"), disabled or without F)"
            echo -1 >"$handler" || return 1
        fi
        update-binfmts --enable "qemu-$cpu" >>"$STATE/binfmt.log" 2>&1 ||
            { update-binfmts --import "qemu-$cpu" && update-binfmts --enable "qemu-$cpu"; } >>"$STATE/binfmt.log" 2>&1 ||
            { tail -5 "$STATE/binfmt.log" >&2; return 1; }
        emulation_ok "$cpu" || { log "$handler: $(tr '\n' ' ' <"$handler" 2>/dev/null)"; return 1; }
        log "qemu-$cpu enabled ($(grep '^flags:' "$handler"))"
    done
}

start_dockerd() {
    local port log_file pid
    port=${IMAGESPEC_DOCKER_TCP_PORT:-$(free_port)}
    log_file="$STATE/dockerd.log"
    command -v dockerd >/dev/null || die "dockerd not found (apt-get install docker.io)"
    # A stale socket from a dead daemon makes dockerd refuse to start.
    [ -S "$SOCK" ] && ! docker_answers && rm -f "$SOCK"
    make_tls
    log "starting dockerd (log: $log_file, tcp://127.0.0.1:$port with TLS client certificates)"
    # setsid: the daemon outlives the shell that started it (make's recipe shell) and gets no
    # terminal signals; stop kills it by pid. 9>&-: it must not hold the lock of this script.
    setsid dockerd \
        -H "unix://$SOCK" -H "tcp://127.0.0.1:$port" \
        --tlsverify --tlscacert "$TLS/ca.pem" --tlscert "$TLS/server.pem" --tlskey "$TLS/server-key.pem" \
        --pidfile "$STATE/dockerd.daemon.pid" \
        >"$log_file" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$STATE/dockerd.pid"
    echo "$port" >"$STATE/dockerd.tcp"
    local deadline=$((SECONDS + 60))
    until docker_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -30 "$log_file" >&2
            rm -f "$STATE/dockerd.pid" "$STATE/dockerd.tcp"
            die "dockerd exited during start-up (log above, full log: $log_file)"
        fi
        if [ $SECONDS -ge $deadline ]; then
            tail -30 "$log_file" >&2
            kill "$pid" 2>/dev/null || true
            rm -f "$STATE/dockerd.pid" "$STATE/dockerd.tcp"
            die "dockerd did not answer on $SOCK within 60 s (log above, full log: $log_file)"
        fi
        sleep 0.5
    done
    docker_answers "tcp://127.0.0.1:$port" || die "dockerd answers on $SOCK but not on tcp://127.0.0.1:$port"
    log "dockerd $(DOCKER_HOST=unix://$SOCK "$DOCKER" version --format '{{.Server.Version}}') ready (pid $pid)"
}

stop_dockerd() {
    local pid
    pid=$(cat "$STATE/dockerd.pid")
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do # dockerd stops its containers first: give it up to 30 s
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "dockerd did not stop within 30 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/dockerd.pid" "$STATE/dockerd.tcp"
    rm -rf -- "$TLS"
}

with_lock() { # serializes start/stop between concurrent callers
    exec 9>"$STATE/lock"
    flock -w 120 9 || die "another engines.sh holds $STATE/lock for 120 s"
}

cmd_start() {
    with_lock
    install_missing
    if ! enable_emulation; then
        [ -n "${CI:-}" ] && die "could not enable qemu's binfmt_misc handlers (${EMULATED[*]}); see above"
        log "WARNING: qemu's binfmt_misc handlers (${EMULATED[*]}) are not enabled: arm64 images cannot be made or run"
    fi
    mkdir -p "$STATE/leases"
    touch "$STATE/leases/$LEASE"
    if docker_answers; then
        if ours_running; then
            log "dockerd already running (started by this script, pid $(cat "$STATE/dockerd.pid"))"
        else
            log "an engine already answers on $SOCK (not started here: it will be left alone)"
        fi
    else
        ours_running && { log "our dockerd is alive but does not answer: restarting it"; stop_dockerd; }
        start_dockerd
    fi
    cmd_status >/dev/null
}

cmd_stop() {
    with_lock
    rm -f "$STATE/leases/$LEASE"
    if ! ours_running; then
        rm -f "$STATE/dockerd.pid" "$STATE/dockerd.tcp"
        log "nothing started here is running"
        return 0
    fi
    local others
    others=$(live_leases | tr '\n' ' ')
    if [ -n "$others" ]; then
        log "dockerd left running: still used by lease(s) $others"
        return 0
    fi
    stop_dockerd
}

cmd_status() {
    local p ok=0 port
    for p in "${PACKAGES[@]}"; do
        installed "$p" && echo "package $p: installed" || echo "package $p: MISSING"
    done
    for p in "${EMULATED[@]}"; do
        if emulation_ok "$p"; then
            echo "emulation $p: enabled ($(grep '^flags:' "$BINFMT/qemu-$p"), $(grep '^interpreter' "$BINFMT/qemu-$p"))"
        else
            echo "emulation $p: NOT enabled (with the F flag) in $BINFMT"
        fi
    done
    if docker_answers; then
        echo "docker: unix://$SOCK answers (engine $(DOCKER_HOST=unix://$SOCK "$DOCKER" version --format '{{.Server.Version}}'))"
    else
        echo "docker: unix://$SOCK does NOT answer"
        ok=1
    fi
    if ours_running; then
        echo "dockerd: started by this script, pid $(cat "$STATE/dockerd.pid"), log $STATE/dockerd.log"
        port=$(cat "$STATE/dockerd.tcp" 2>/dev/null || true)
        if [ -n "$port" ] && docker_answers "tcp://127.0.0.1:$port"; then
            echo "DOCKER_TCP=tcp://127.0.0.1:$port"
            echo "DOCKER_CERT_PATH=$TLS/client"
        else
            echo "dockerd: no answer on its loopback TCP port"
        fi
    else
        echo "dockerd: not started by this script"
    fi
    echo "leases: $(live_leases | tr '\n' ' ')"
    echo "ENGINES_STATE=$STATE"
    return $ok
}

private_state
case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
