"""Real images built by the plan with docker (BuildKit) and with buildah, from the debootstrap base
(which lacks this machine's CA: the CA option must work), pushed to a loopback registry, then run.

Per engine: an image with every kind of content (packages, requirements file, apt package, env with
hostile values, commands, copy with a hostile file name, source_root, a pip secret mount) and an
image built on it (base_image given as a spec). Each is run to check what it holds, and the pushed
images are searched, every file of every layer, config and history, for the secrets.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagespec import BuildEvent, ImageBuildEngine, ImageSpec, build, write_context

from ..registry.registry_servers import Registry
from .engine_helpers import (
    MACHINE_CA,
    Buildah,
    DockerEngine,
    find_in_archive,
    missing,
    registry_archive,
)

pytestmark = pytest.mark.timeout(900)

# Values a Dockerfile generator could get wrong: quotes, `$`, backslashes, `#`, shell syntax.
HOSTILE_ENV = {
    "E2E_PLAIN": "hello world",
    "E2E_QUOTES": 'it\'s "quoted"',
    "E2E_DOLLAR": "$HOME ${PATH} $(touch /tmp/pwned-env)",
    "E2E_BACKSLASH": "C:\\temp\\ \\\\ end\\",
    "E2E_SHELL": "; touch /tmp/pwned-env2 # && echo",
}
HOSTILE_FILE = 'we$ird "name" ;touch pwned`x`.txt'

INSIDE = r"""
import json, os, sys
out = {"uid": os.getuid(), "env": {k: v for k, v in os.environ.items() if k.startswith("E2E_")}}
out["img_id"] = os.environ.get("_F_IMG_ID")
out["root"] = sorted(os.listdir("/root"))
out["pwned"] = [p for p in ("/tmp/pwned-env", "/tmp/pwned-env2", "/root/data/pwned") if os.path.exists(p)]
out["cmd"] = open("/root/cmd.txt").read().strip() if os.path.exists("/root/cmd.txt") else None
out["data"] = sorted(os.listdir("/root/data")) if os.path.isdir("/root/data") else None
out["secret_log"] = os.path.exists("/var/tmp/pip-secret-config-was-used.log")
out["pip_conf"] = os.path.exists("/etc/pip.conf")
import six, attr, imagespec
out["six"] = six.__version__
out["attrs"] = attr.__version__
out["tree"] = os.path.exists("/usr/bin/tree")
out["imagespec"] = imagespec.__version__
spec = json.loads(sys.argv[1])
if spec is not None:
    from imagespec import ImageSpec
    out["is_container_own"] = ImageSpec.from_dict(spec).is_container()
    out["is_container_other"] = ImageSpec.from_dict({**spec, "env": {"OTHER": "1"}}).is_container()
print(json.dumps(out))
"""


@dataclass
class Secrets:
    """The CA bundle and a pip secret file, each with a marker no image may contain."""

    ca: Path
    pip_conf: Path
    needles: list[bytes]


@pytest.fixture(scope="session")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    if not MACHINE_CA.is_file():
        missing(f"no machine CA bundle at {MACHINE_CA}")
    d = tmp_path_factory.mktemp("secrets")
    ca_marker = f"# imagespec-e2e-ca-{uuid.uuid4().hex}".encode()
    (d / "ca.pem").write_bytes(ca_marker + b"\n" + MACHINE_CA.read_bytes())
    pip_marker = f"# imagespec-e2e-pip-{uuid.uuid4().hex}".encode()
    # An observable effect of the secret pip config: pip writes its log where it says.
    (d / "pip.conf").write_bytes(pip_marker + b"\n[global]\nlog = /var/tmp/pip-secret-config-was-used.log\n")
    return Secrets(d / "ca.pem", d / "pip.conf", [ca_marker, pip_marker])


@dataclass
class Engine:
    name: str
    docker: DockerEngine


@pytest.fixture(params=["docker", "buildah"])
def engine(
    request: pytest.FixtureRequest, docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    if request.param == "buildah":
        b: Buildah = request.getfixturevalue("buildah")
        monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(b.storage_conf))
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    yield Engine(request.param, docker_engine)


def full_spec(tmp: Path, registry: str, base: str, secrets: Secrets, name: str) -> ImageSpec:
    src = tmp / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("VALUE = 42\n")
    (src / "main.py").write_text("print('hi')\n")
    (src / ".gitignore").write_text("ignored.txt\n")
    (src / "ignored.txt").write_text("must not be copied\n")
    (tmp / "data").mkdir()
    (tmp / "data" / "cfg.txt").write_text("config\n")
    (tmp / "data" / HOSTILE_FILE).write_text("hostile\n")
    (tmp / "requirements.txt").write_text("attrs==23.2.0\n")
    return ImageSpec(
        name=name,
        registry=registry,
        base_image=base,
        python_version="3.11",
        packages=["six==1.16.0"],
        requirements=str(tmp / "requirements.txt"),
        apt_packages=["tree"],
        env={**HOSTILE_ENV, "E2E_RUN": uuid.uuid4().hex},
        commands=["echo built-by-commands > /root/cmd.txt"],
        copy=["data"],
        source_root=str(src),
        source_copy_mode="ALL",
        pip_secret_mounts=[(str(secrets.pip_conf), "/etc/pip.conf")],
    )


def run_inside(docker: DockerEngine, ref: str, spec: ImageSpec | None) -> dict[str, object]:
    as_dict = None if spec is None else spec.to_dict()
    out = docker("run", "--rm", ref, "python", "-c", INSIDE, json.dumps(as_dict))
    return dict(json.loads(out))


def assert_no_secrets(ref: str, secrets: Secrets, workdir: Path) -> None:
    archive = registry_archive(ref, workdir)
    found = find_in_archive(archive, secrets.needles)
    assert not found, f"a secret leaked into {ref}: {found[:5]}"
    assert b"imagespec-e2e-ca-" not in archive and b"imagespec-e2e-pip-" not in archive


def test_plan_builds_pushes_and_runs_real_images(
    engine: Engine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    secrets: Secrets,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # `copy` entries are relative to where the spec is made
    name = f"e2e-{engine.name}"
    full = full_spec(tmp_path, loopback_registry.host, python_base, secrets, f"{name}-full")
    child = ImageSpec(
        name=f"{name}-child",
        registry=loopback_registry.host,
        base_image=full,
        packages=["attrs==23.2.0"],
        env={"E2E_CHILD": "yes"},
    )
    events: list[BuildEvent] = []
    report = build(
        [child, full],
        builder=engine.name,
        no_cache=True,
        imagespec_wheel=imagespec_wheel,
        ca_bundle=secrets.ca,
        on_event=events.append,
        max_parallel=2,
    )
    assert [r.outcome for r in report] == ["built", "built"], report.summary()
    assert [r.image for r in report] == [full.image_name().split("@")[0], child.image_name().split("@")[0]]
    assert [r.builder for r in report] == [engine.name, engine.name], report.summary()
    for r in report:
        assert r.name.startswith(r.image + "@sha256:"), r.name  # pinned by the pushed digest
        assert r.seconds > 0
    # The base was done before its dependant started.
    kinds = [(e.kind, e.image) for e in events if e.kind in ("building", "done")]
    assert kinds.index(("done", report.results[0].image)) < kinds.index(("building", report.results[1].image))
    assert any(e.kind == "step" for e in events)
    assert any(e.kind == "pushing" for e in events)
    # The spec reports the name its builder returned.
    assert child.image_name() == report[child].name

    engine.docker.created.update(r.image for r in report)
    inside = run_inside(engine.docker, report[full].name, None)
    assert inside["uid"] == 1000
    assert inside["env"] == {**HOSTILE_ENV, "E2E_RUN": full.env["E2E_RUN"]}
    assert inside["pwned"] == []
    assert inside["img_id"] == full.id
    assert inside["cmd"] == "built-by-commands"
    assert inside["data"] == sorted(["cfg.txt", HOSTILE_FILE])
    assert {"main.py", "pkg", "data"} <= set(inside["root"])  # type: ignore[arg-type]
    assert "ignored.txt" not in inside["root"]  # type: ignore[operator]
    assert inside["secret_log"] is True and inside["pip_conf"] is False
    assert (inside["six"], inside["attrs"], inside["tree"]) == ("1.16.0", "23.2.0", True)

    inside = run_inside(engine.docker, report[child].name, child)
    assert inside["img_id"] == child.id
    assert inside["env"]["E2E_CHILD"] == "yes"  # type: ignore[index]
    assert inside["env"]["E2E_PLAIN"] == "hello world"  # type: ignore[index]  # from its base
    assert (inside["is_container_own"], inside["is_container_other"]) == (True, False)
    assert inside["imagespec"] == imagespec_wheel.name.split("-")[1]

    for r in report:
        assert_no_secrets(r.image, secrets, tmp_path)

    # The same plan again builds nothing; a force push rebuilds only what it marks.
    again = build([child, full], builder=engine.name, imagespec_wheel=imagespec_wheel, ca_bundle=secrets.ca)
    assert [r.outcome for r in again] == ["exists", "exists"]
    forced = build(
        [child.force_push(), full], builder=engine.name, imagespec_wheel=imagespec_wheel, ca_bundle=secrets.ca
    )
    assert [r.outcome for r in forced] == ["exists", "built"], forced.summary()


def test_a_python_builder_builds_a_real_image(
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    secrets: Secrets,
    tmp_path: Path,
) -> None:
    """The extension point: a builder written in Python that writes the context and runs docker."""

    class DockerByHand:
        def __init__(self) -> None:
            self.built: list[str] = []

        def build_image(self, spec: ImageSpec) -> str:
            ctx = write_context(
                spec,
                tmp_path / f"ctx-{len(self.built)}",
                imagespec_wheel=imagespec_wheel,
                ca_bundle=secrets.ca,
            )
            secret_args = [a for s in ctx.secrets for a in ("--secret", f"id={s.id},src={s.path}")]
            docker_engine.build(ctx.context, ctx.image, "-f", str(ctx.dockerfile), *secret_args)
            docker_engine("push", ctx.image)
            self.built.append(ctx.image)
            return ctx.image

    mine = DockerByHand()
    ImageBuildEngine.register("by-hand", mine, priority=9)
    try:
        spec = ImageSpec(
            name="e2e-by-hand",
            registry=loopback_registry.host,
            base_image=python_base,
            packages=["six==1.16.0"],
            env={"E2E_RUN": uuid.uuid4().hex},
        )
        name = spec.image_name()
        report = build(spec)  # no builder named: the highest priority, ours, is picked
        assert report[spec].builder == "by-hand" and report[spec].outcome == "built"
        assert mine.built == [name]
        out = docker_engine(
            "run",
            "--rm",
            spec.image_name(),
            "python",
            "-c",
            "import os, six; print(os.environ['_F_IMG_ID'], six.__version__)",
        )
        assert out.split() == [spec.id, "1.16.0"]
        assert build(spec)[spec].outcome == "exists"
        assert mine.built == [name]  # not built again
        assert spec.image_name().startswith(name + "@sha256:")  # pinned to what the registry has
    finally:
        ImageBuildEngine.remove("by-hand")


def test_a_failed_build_fails_its_dependants_only(
    docker_engine: DockerEngine,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    broken = ImageSpec(
        name="e2e-broken",
        registry=loopback_registry.host,
        base_image=python_base,
        commands=[f"echo failing-on-purpose-{uuid.uuid4().hex}; exit 3"],
        python_version="3.11",
    )
    child = ImageSpec(name="e2e-broken-child", registry=loopback_registry.host, base_image=broken)
    fine = ImageSpec(
        name="e2e-fine",
        registry=loopback_registry.host,
        base_image=python_base,
        env={"E2E_RUN": uuid.uuid4().hex},
        python_version="3.11",
    )
    events: list[BuildEvent] = []
    report = build(
        [child, fine],
        builder="docker",
        check=False,
        on_event=events.append,
        imagespec_wheel=imagespec_wheel,
        ca_bundle=MACHINE_CA,
    )
    outcomes = {r.image.rsplit(":", 1)[0].rsplit("/", 1)[1]: r for r in report}
    assert outcomes["e2e-broken"].outcome == "failed"
    assert "failing-on-purpose" in (outcomes["e2e-broken"].reason or "")  # the log's tail
    assert outcomes["e2e-broken-child"].outcome == "failed"
    assert broken.image_name() in (outcomes["e2e-broken-child"].reason or "")
    assert outcomes["e2e-fine"].outcome == "built"
    docker_engine.created.add(fine.image_name().split("@")[0])
    failed = [e for e in events if e.kind == "failed"]
    assert {e.image for e in failed} == {outcomes["e2e-broken"].image, outcomes["e2e-broken-child"].image}
    # Nothing was pushed under the broken image's tag.
    probe = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{outcomes['e2e-broken'].image}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0
