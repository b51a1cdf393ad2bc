"""A pool of engines (``build(engines=...)``, ``IMAGESPEC_ENGINES``): two remote Docker hosts, each
a dockerd in a network namespace of its own reached over TLS (tests/engines/hosts.py). Images are
spread over both and land the same way every run; a host that dies mid-plan hands its images to
the other; a wrong CA or an unreachable host is one clear line, and nothing is pushed half."""

from __future__ import annotations

import os
import threading
import urllib.error
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from imagespec import BuildEvent, ImageSpec, build

from ..registry.registry_servers import Registry, tags
from .engine_helpers import DockerEngine, Missing, missing
from .hosts import RemoteDocker, make_certs, remote_docker, ssh_access

pytestmark = pytest.mark.timeout(600)


def _port(registry: Registry) -> int:
    return int(registry.host.rsplit(":", 1)[1])


@pytest.fixture
def two_hosts(loopback_registry: Registry, tmp_path: Path) -> Iterator[tuple[RemoteDocker, RemoteDocker]]:
    try:
        with (
            remote_docker(1, tmp_path / "h1", _port(loopback_registry)) as a,
            remote_docker(2, tmp_path / "h2", _port(loopback_registry)) as b,
        ):
            yield a, b
    except Missing as e:
        missing(str(e))
    # Nothing the hosts made stays mounted (a killed dockerd leaves its data-root's mounts).
    with open("/proc/mounts") as f:
        assert not [line for line in f if str(tmp_path) in line]


def _specs(registry: Registry, base: str, what: str, commands: list[str] | None = None) -> list[ImageSpec]:
    # No package index in a namespace: images that install only imagespec's own wheel.
    return [
        ImageSpec(
            name=f"pool-{what}-{i}",
            registry=registry.host,
            base_image=base,
            commands=[*(commands or []), f"echo {what}-{i} > /root/which"],
        )
        for i in range(4)
    ]


def test_four_images_spread_over_two_remote_engines_the_same_way_every_run(
    two_hosts: tuple[RemoteDocker, RemoteDocker],
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
) -> None:
    a, b = two_hosts
    specs = _specs(loopback_registry, python_base, "spread")
    events: list[BuildEvent] = []
    report = build(specs, engines=[a.entry, b.entry], imagespec_wheel=imagespec_wheel, on_event=events.append)
    assert all(report[s].outcome == "built" for s in specs), report.summary()
    by = {s: report[s].builder for s in specs}
    assert Counter(by.values()) == {a.entry: 2, b.entry: 2}
    # Each host holds the images it built, and only those.
    for host in (a, b):
        local = host("images", "--format", "{{.Repository}}")
        assert {s.name for s in specs if by[s] == host.entry} == {
            n.rsplit("/", 1)[-1] for n in local.split() if "pool-" in n
        }
    for i, s in enumerate(specs):
        name = report[s].name
        docker_engine.created.add(name)
        assert docker_engine("run", "--rm", name, "cat", "/root/which").strip() == f"spread-{i}"
    # Progress says which engine builds what.
    building = {e.image: e.message for e in events if e.kind == "building"}
    assert building == {report[s].image: by[s] for s in specs}
    # The same plan lands the same way again.
    again = build(specs, force_push=True, engines=[b.entry, a.entry], imagespec_wheel=imagespec_wheel)
    assert {s: again[s].builder for s in specs} == by


def test_a_host_that_dies_mid_plan_hands_its_images_to_the_other(
    two_hosts: tuple[RemoteDocker, RemoteDocker],
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
) -> None:
    a, b = two_hosts
    specs = _specs(loopback_registry, python_base, "failover", commands=["sleep 6"])
    killed = threading.Event()

    def on_event(e: BuildEvent) -> None:
        if e.kind == "building" and e.message == b.entry and not killed.is_set():
            killed.set()
            threading.Timer(3, b.kill).start()  # in the middle of its first build

    events: list[BuildEvent] = []
    report = build(
        specs,
        engines=[a.entry, b.entry],
        imagespec_wheel=imagespec_wheel,
        on_event=lambda e: (events.append(e), on_event(e)),
    )
    assert killed.is_set()
    assert all(report[s].outcome == "built" for s in specs), report.summary()
    assert {report[s].builder for s in specs} == {a.entry}
    warnings = [e.message or "" for e in events if e.kind == "warning"]
    assert any(b.entry in w and "stopped answering" in w for w in warnings), warnings
    assert not [e for e in events if e.kind == "failed"]  # the lost attempt is a warning, not a failure
    for i, s in enumerate(specs):
        docker_engine.created.add(report[s].name)
        assert docker_engine("run", "--rm", report[s].name, "cat", "/root/which").strip() == f"failover-{i}"


def test_a_wrong_ca_and_an_unreachable_host_are_one_line_each_and_push_nothing(
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
) -> None:
    try:
        with remote_docker(3, tmp_path / "h3", _port(loopback_registry)) as c:
            wrong = make_certs(tmp_path / "other-ca", "10.214.3.2", name="another CA")
            spec = _specs(loopback_registry, python_base, "refused")[0]
            events: list[BuildEvent] = []
            entries = [f"docker@{c.url}?tls={wrong}", "docker@tcp://127.0.0.1:9"]
            report = build(
                spec, engines=entries, imagespec_wheel=imagespec_wheel, check=False, on_event=events.append
            )
            warnings = [e.message or "" for e in events if e.kind == "warning"]
            assert len(warnings) == 2, warnings
            tls, gone = sorted(warnings, key=lambda w: "127.0.0.1:9" in w)
            assert "TLS:" in tls and str(wrong / "ca.pem") in tls and "\n" not in tls
            assert "cannot be reached" in gone and "\n" not in gone
            assert report[spec].outcome == "failed"
            assert "no engine of the pool that may build it answers" in (report[spec].reason or "")
            try:
                pushed = tags(loopback_registry, spec.name)
            except urllib.error.HTTPError as e:
                assert e.code == 404
                pushed = []
            assert pushed == []
    except Missing as e:
        missing(str(e))


def test_a_host_over_ssh_and_a_refused_key(
    two_hosts: tuple[RemoteDocker, RemoteDocker],
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    docker_engine: DockerEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = two_hosts
    with ExitStack() as stack:
        try:
            access = stack.enter_context(ssh_access(a, tmp_path / "ssh"))
        except Missing as e:
            missing(str(e))
        spec = _specs(loopback_registry, python_base, "ssh")[0]
        entry = f"docker@{access.url}"
        path = os.environ["PATH"]
        monkeypatch.setenv("PATH", f"{access.refused_bin}:{path}")
        events: list[BuildEvent] = []
        refused = build(
            spec, engines=[entry], imagespec_wheel=imagespec_wheel, check=False, on_event=events.append
        )
        assert refused[spec].outcome == "failed"
        (warning,) = [e.message or "" for e in events if e.kind == "warning"]
        assert "SSH refused the connection" in warning and "Permission denied (publickey" in warning, warning
        monkeypatch.setenv("PATH", f"{access.bin}:{path}")
        report = build(spec, engines=[entry], imagespec_wheel=imagespec_wheel)
        assert report[spec].outcome == "built" and report[spec].builder == entry
        assert "pool-ssh-0" in a("images", "--format", "{{.Repository}}")  # built by that host's daemon
        docker_engine.created.add(report[spec].name)
        assert docker_engine("run", "--rm", report[spec].name, "cat", "/root/which").strip() == "ssh-0"
