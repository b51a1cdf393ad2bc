"""`imagespec run --in-containers` with another local user racing it: no other uid reads a call's
inputs, the shipped code or the outputs, or gets the host to load a pickle of its own.

The attack, as uid 65534 (see other_user.py): watch the shared temporary folder the run uses
(TMPDIR, a folder of /tmp with /tmp's mode), read every file it can reach, and rename its own
pickle over any ``outputs.pkl`` it finds before the host loads it. Its pickle, once loaded,
writes a file as the host user and returns "ATTACKER". The run must return the tasks' own
results, and the attacker must have read nothing of the inputs or the code.

Also: a ``container_image`` that starts with ``-`` never reaches ``docker`` as an option.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ..registry.registry_servers import Registry
from .engine_helpers import DOCKER_CLI, MACHINE_CA, DockerEngine, run
from .other_user import SYSTEM_PYTHON, require_other_user, shared_folder, start_as_other_user

WF = '''\
"""Three calls of one task; the host passes a secret in, the task returns no secret."""
import os

from imagespec import ImageSpec, task, workflow

# The code is private too: CODE_MARK
# Inside the image these are unset: the spec is only declared there, never built.
base = os.environ.get("RC_BASE_IMAGE")
spec = ImageSpec(
    name="rc-private", env={"RC_BASE_IMAGE": base} if base else {},
    registry=os.environ.get("RC_REGISTRY", "localhost:30000"), base_image=base, python_version="3.11",
)


@task(container_image=spec)
def echo(secret: str, n: int) -> str:
    return f"echo {n} {len(secret)} {os.getuid()}"


@workflow
def wf() -> str:
    return ",".join(echo(secret=os.environ["RC_SECRET"], n=n) for n in range(3))


@task(container_image="--volume=/:/host")
def escape() -> str:
    return open("/host/etc/hostname").read()


@workflow
def bad() -> str:
    return escape()
'''

# The other user: reads what it can under the shared folder and swaps every outputs.pkl it can for
# its own pickle, until the test makes the file "stop"; prints what it got as JSON.
ATTACKER = r"""
import base64, json, os, pickle, sys, time
shared = sys.argv[1]
pwned = os.path.join(shared, "pwned")

class Payload:
    def __reduce__(self):
        return (eval, (f"(open({pwned!r}, 'w').write('host code ran'), 'ATTACKER')[1]",))

payload = pickle.dumps(Payload())
read, swapped, seen_dirs, names = {}, [], set(), {}
deadline = time.monotonic() + 1200
while not os.path.exists(os.path.join(shared, "stop")) and time.monotonic() < deadline:
    for dirpath, dirnames, filenames in os.walk(shared):
        seen_dirs.add(dirpath)
        for n in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
                names[os.path.join(dirpath, n)] = f"{oct(st.st_mode)} uid {st.st_uid}"
            except OSError:
                pass
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name == "outputs.pkl":
                try:
                    if os.lstat(path).st_uid != os.getuid():
                        mine = os.path.join(dirpath, ".mine")
                        with open(mine, "wb") as f:
                            f.write(payload)
                        os.rename(mine, path)
                        swapped.append(path)
                except OSError:
                    pass
            if read.get(path) or name in ("stop", ".mine", "pwned"):
                continue
            try:
                with open(path, "rb") as f:
                    read[path] = base64.b64encode(f.read(1 << 20)).decode()
            except OSError:
                pass
    time.sleep(0.001)
print(json.dumps({"read": read, "swapped": swapped, "dirs": sorted(seen_dirs), "names": names}))
"""


def test_another_user_racing_the_run_gets_nothing_in_and_nothing_out(
    tmp_path: Path,
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
) -> None:
    require_other_user()
    if not MACHINE_CA.is_file():
        pytest.fail(f"no machine CA bundle at {MACHINE_CA}")
    secret, code_mark = f"input-secret-{uuid.uuid4().hex}", f"code-secret-{uuid.uuid4().hex}"
    root = tmp_path / "proj"
    root.mkdir()
    (root / "wf.py").write_text(WF.replace("CODE_MARK", code_mark))
    with shared_folder() as shared:
        env = docker_engine.env(
            RC_REGISTRY=loopback_registry.host,
            RC_BASE_IMAGE=python_base,
            RC_SECRET=secret,
            IMAGESPEC_WHEEL=str(imagespec_wheel),
            IMAGESPEC_CA_BUNDLE=str(MACHINE_CA),
            TMPDIR=str(shared),
        )
        imagespec = [sys.executable, "-m", "imagespec"]
        built = json.loads(run([*imagespec, "build", "wf.py", "wf", "--json"], cwd=root, env=env).stdout)
        docker_engine.created.update(r["name"] for r in built)

        attacker = start_as_other_user([SYSTEM_PYTHON, "-c", ATTACKER, str(shared)])
        try:
            time.sleep(0.5)  # watching before the run starts
            done = run([*imagespec, "run", "wf.py", "wf", "--in-containers"], cwd=root, env=env, timeout=900)
        finally:
            (shared / "stop").touch()
            out, err = attacker.communicate(timeout=60)
        assert attacker.returncode == 0, err
        got = json.loads(out)
        pwned = (shared / "pwned").exists()

        assert not pwned, "the host loaded the other user's pickle: its code ran as the host user"
        assert got["swapped"] == [], got["swapped"]
        assert done.stdout.strip() == ",".join(f"echo {n} {len(secret)} 1000" for n in range(3)), done.stderr
        leaked = {
            path: [m for m in (secret, code_mark) if m.encode() in base64.b64decode(data)]
            for path, data in got["read"].items()
        }
        assert {p: m for p, m in leaked.items() if m} == {}, f"the other user read {leaked}"
        # It saw the shipped code's folder and could not enter it (0700), and read no file at all
        # (the only other name is the 0600 file Python's tempfile makes to probe the folder).
        assert any(Path(n).name.startswith("imagespec-code-") for n in got["names"]), got["names"]
        assert got["dirs"] == [str(shared)], got["names"]
        assert sorted(got["read"]) == [], got["names"]
        assert sorted(p.name for p in shared.iterdir()) == ["stop"]
        # Every call's container went with its call.
        images = docker_engine("ps", "-a", "--format", "{{.Image}}").split()
        assert [i for i in images if f"{loopback_registry.host}/rc-private" in i] == [], images


def test_a_container_image_that_is_an_option_never_reaches_docker(
    tmp_path: Path, docker_engine: DockerEngine, loopback_registry: Registry, python_base: str
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "wf.py").write_text(WF.replace("CODE_MARK", "-"))
    env = docker_engine.env(RC_REGISTRY=loopback_registry.host, RC_BASE_IMAGE=python_base, RC_SECRET="-")
    before = docker_engine("ps", "-aq").split()
    proc = subprocess.run(
        [sys.executable, "-m", "imagespec", "run", "wf.py", "bad", "--in-containers"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert "its container_image '--volume=/:/host' is not an image reference" in proc.stderr, proc.stderr
    assert "fix the task's container_image" in proc.stderr
    assert "running " not in proc.stderr and "shipping " not in proc.stderr  # refused before docker
    assert docker_engine("ps", "-aq").split() == before

    # And `--` keeps such a value an image name for this docker client (the second guard).
    refused = run(
        [DOCKER_CLI, "create", "--", "--volume=/:/host", "true"], env=docker_engine.env(), check=False
    )
    assert refused.returncode != 0 and "invalid reference format" in refused.stderr, refused.stderr
