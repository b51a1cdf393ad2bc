"""The test engines are root's: no other local user reaches dockerd's API through them, or steers
what scripts/engines.sh (run as root) does through its state folder.

dockerd listens on /var/run/docker.sock (root and the docker group) and, for the "remote engine
via DOCKER_HOST" tests, on a loopback TCP port, which any local user can connect to: the port takes
only TLS clients with the certificate made at its start, kept in the private state folder. The
state folder (pid file, lock, leases, certificates, log) is made 0700 by the script; one made by
another user, a symlink, or one in a folder where others can swap entries is refused.

Each test performs the attack as uid 65534 (see other_user.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from .engine_helpers import DOCKER_CLI, DOCKER_SOCKET, ENGINES_SH, DockerEngine, missing
from .other_user import (
    OTHER_UID,
    SYSTEM_PYTHON,
    as_other_user,
    other_user_env,
    require_other_user,
    shared_folder,
)

# What uid 65534 tries against the engine; prints a JSON object of attempt -> what came back.
# "ApiVersion" in an answer means the engine's API answered it (GET /version).
PROBE = r"""
import json, os, socket, ssl, sys
port, sock_path, cert_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
REQUEST = b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n"

def ask(conn):
    conn.sendall(REQUEST)
    data = b""
    while len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")

def attempt(fn):
    try:
        return fn()
    except Exception as e:
        return f"{type(e).__name__}: {e}"

def plain_tcp():
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        return ask(c)

def tls_without_certificate():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            return ask(c)

def unix_socket():
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(sock_path)
        return ask(c)

def client_key():
    with open(os.path.join(cert_path, "key.pem")) as f:
        return f.read()

print(json.dumps({
    "plain_tcp": attempt(plain_tcp),
    "tls_without_certificate": attempt(tls_without_certificate),
    "unix_socket": attempt(unix_socket),
    "client_key": attempt(client_key) if cert_path else "no certificate folder",
}))
"""


def engines_sh(command: str, state: Path, lease: str = "attack-test") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMAGESPEC_ENGINES_STATE": str(state), "IMAGESPEC_ENGINES_LEASE": lease}
    return subprocess.run(
        ["bash", str(ENGINES_SH), command], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_another_user_cannot_reach_the_engine(docker_engine: DockerEngine) -> None:
    require_other_user()
    if docker_engine.tcp_host is None:
        missing("the Docker engine here was not started by scripts/engines.sh: it has no TCP port")
    port = docker_engine.tcp_host.rsplit(":", 1)[1]
    probe = as_other_user(
        [SYSTEM_PYTHON, "-c", PROBE, port, DOCKER_SOCKET, docker_engine.cert_path or ""], timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    answers = json.loads(probe.stdout)
    reached = {name: answer[:300] for name, answer in answers.items() if "ApiVersion" in answer}
    assert reached == {}, f"uid {OTHER_UID} reached the engine's API: {reached}"
    assert answers["unix_socket"].startswith("PermissionError"), answers
    assert answers["client_key"].startswith("PermissionError"), answers

    # The docker client of the other user, with the port as DOCKER_HOST, is turned away too.
    cli = as_other_user(
        [DOCKER_CLI, "version", "--format", "{{.Server.Version}}"],
        env=other_user_env(DOCKER_HOST=docker_engine.tcp_host, DOCKER_CONFIG="/nonexistent"),
    )
    assert cli.returncode != 0 and not cli.stdout.strip(), (cli.stdout, cli.stderr)

    # The control: with the run's client certificate, the same port is the engine.
    version = docker_engine("version", "--format", "{{.Server.Version}}", host=docker_engine.tcp_host)
    assert version.strip() == docker_engine("version", "--format", "{{.Server.Version}}").strip()


def test_the_state_folder_is_private(_engines: dict[str, str]) -> None:
    state = _engines.get("ENGINES_STATE")
    assert state, _engines
    info = os.lstat(state)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert not state.startswith("/tmp/"), state


def test_a_state_folder_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    require_other_user()
    victim = tmp_path / "victim.txt"  # a file only root can write
    victim.write_text("precious\n")
    with shared_folder() as shared:
        # The other user makes the folder first, with a "lock" that points at root's file: the
        # script opens $STATE/lock for writing as root (truncating what it points to).
        plant = (
            "import os, sys; s = sys.argv[1]; os.mkdir(s, 0o777); os.chmod(s, 0o777); "
            "os.symlink(sys.argv[2], os.path.join(s, 'lock')); os.mkdir(os.path.join(s, 'leases'), 0o777)"
        )
        state = shared / "imagespec-engines"
        planted = as_other_user([SYSTEM_PYTHON, "-c", plant, str(state), str(victim)])
        assert planted.returncode == 0, planted.stderr
        for command in ("stop", "status", "start"):
            proc = engines_sh(command, state)
            assert proc.returncode != 0, (command, proc.stdout, proc.stderr)
            assert f"owned by uid {OTHER_UID}, not by you" in proc.stderr, (command, proc.stderr)
        assert victim.read_text() == "precious\n"
        assert sorted(p.name for p in state.iterdir()) == ["leases", "lock"]
        assert list((state / "leases").iterdir()) == []

        # A symlink to a folder of the other user's is refused, not followed.
        bait = shared / "bait"
        link = shared / "engines-link"
        bait_link = (
            "import os, sys; os.mkdir(sys.argv[1]); os.chmod(sys.argv[1], 0o777); os.symlink(*sys.argv[1:])"
        )
        made = as_other_user([SYSTEM_PYTHON, "-c", bait_link, str(bait), str(link)])
        assert made.returncode == 0, made.stderr
        proc = engines_sh("status", link)
        assert proc.returncode != 0 and "is a symlink" in proc.stderr, proc.stderr
        assert list(bait.iterdir()) == []

    # A folder where others may rename entries (world-writable, no sticky bit) is no place for it.
    open_parent = tmp_path / "open"
    open_parent.mkdir()
    os.chmod(open_parent, 0o777)
    proc = engines_sh("status", open_parent / "state")
    assert proc.returncode != 0 and "can be changed by other users" in proc.stderr, proc.stderr
    assert list(open_parent.iterdir()) == []


def test_an_own_state_folder_readable_by_others_is_made_private(tmp_path: Path) -> None:
    # An older engines.sh left its folder 0755: its log and pid files become the caller's alone.
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)
    proc = engines_sh("status", state)
    assert "ENGINES_STATE=" + str(state) in proc.stdout, proc.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
