"""The boundary between the Rust core and the package, held to `_core.pyi`: the dicts it returns
have the keys the stub's TypedDicts declare, keyword options are read or refused as Python
reads or refuses any keyword, every exception carries the attributes the stub declares, and a
blocking call answers Ctrl-C."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import imagespec
from imagespec import ImageSpec, _core
from imagespec._build import plan_context

STUB = Path(imagespec.__file__).with_name("_core.pyi")


def stub_classes() -> dict[str, ast.ClassDef]:
    tree = ast.parse(STUB.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def stub_keys(name: str) -> set[str]:
    """The annotated names of a class of the stub (a TypedDict's keys), its bases' included."""
    classes = stub_classes()
    node = classes[name]
    keys = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            keys |= stub_keys(base.id)
    return keys


def spec() -> ImageSpec:
    return ImageSpec(name="binding", python_version="3.11", base_image="ghcr.io/org/base:1")


# Results


def test_dict_results_have_the_keys_the_stub_declares(tmp_path: Path) -> None:
    s = spec()
    assert set(s.tag_inputs()) == stub_keys("TagInputs")
    assert set(plan_context(s)) == stub_keys("ContextPlan")
    built = _core.engine_build("noop", s._core, image=s.image_name(), push=False)
    assert set(built) == stub_keys("BuiltImage")
    # Nothing listens on port 1: the answer is "unknown", at once.
    (answer,) = _core.check(["127.0.0.1:1/binding:1"], timeout=5.0, retries=0, use_cache=False)
    assert set(answer) == stub_keys("CheckResult")
    assert answer["status"] == "unknown"


def test_write_context_gives_a_manifest(tmp_path: Path) -> None:
    out = _core.write_context(spec()._core, tmp_path / "ctx")
    assert isinstance(out, _core.ContextManifest)
    assert out.context == tmp_path / "ctx" / "context"
    assert "Dockerfile" in out.files
    assert all(isinstance(i, str) and isinstance(p, Path) for i, p in out.secrets)


# Keyword options


def entry_points(tmp_path: Path) -> Iterator[tuple[str, str, Callable[..., Any]]]:
    """(name, the stub's TypedDict of its options, a call taking only those options)."""
    core = spec()._core
    yield "check", "CheckArgs", lambda **kw: _core.check([], **kw)
    yield "write_context", "BuildArgs", lambda **kw: _core.write_context(core, tmp_path / "ctx", **kw)
    yield "plan_context", "BuildArgs", lambda **kw: _core.plan_context(core, **kw)
    yield "Spec.dockerfile", "BuildArgs", lambda **kw: core.dockerfile(**kw)
    yield (
        "engine_build",
        "BuildArgs",
        lambda **kw: _core.engine_build("noop", core, image="x:1", push=False, **kw),
    )
    yield "run_plan", "PlanArgs", lambda **kw: _core.run_plan([], [], from_core=ImageSpec._from_core, **kw)


def test_every_option_the_stub_declares_is_read_and_no_other(tmp_path: Path) -> None:
    for name, options, call in entry_points(tmp_path):
        with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'bogus'$"):
            call(bogus=1)
        for key in stub_keys(options):
            # A value no option takes: refused as a wrong value, so the keyword itself was read.
            with pytest.raises(TypeError) as info:
                call(**{key: object()})
            assert "unexpected keyword" not in str(info.value), (name, key)


def test_a_wrong_option_value_names_the_option() -> None:
    with pytest.raises(TypeError) as info:
        _core.check([], timeout="soon")
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == ["while processing 'timeout'"]


# Exceptions

EXCEPTIONS = [
    _core.ImageSpecError,
    _core.SpecError,
    _core.UnknownFieldError,
    _core.SourceError,
    _core.RegistryError,
    _core.BuildError,
]
ATTRIBUTES = ("field", "path", "line", "column")


def test_the_stub_declares_the_attributes_on_the_base_class() -> None:
    assert set(ATTRIBUTES) <= stub_keys("ImageSpecError")


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: c.__name__)
def test_every_exception_has_the_attributes_none_when_absent(cls: type[_core.ImageSpecError]) -> None:
    e = cls("raised by Python code")
    assert (e.field, e.path, e.line, e.column) == (None, None, None, None)


def test_the_core_sets_the_attributes_it_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "image.yaml").write_text("name: a\nname: b\n")
    with pytest.raises(_core.SpecError) as spec_error:
        ImageSpec.from_yaml(tmp_path / "image.yaml")
    e = spec_error.value
    assert (e.field, e.path, e.line) == (None, str(tmp_path / "image.yaml"), 1)
    assert isinstance(e.column, int)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(_core.SourceError) as source_error:
        _ = ImageSpec(requirements="nope.txt").tag
    e = source_error.value
    assert (e.field, e.path, e.line, e.column) == ("requirements", str(tmp_path / "nope.txt"), None, None)
    with pytest.raises(_core.SpecError) as field_error:
        ImageSpec(packages="numpy")  # type: ignore[arg-type]
    e = field_error.value
    assert (e.field, e.path, e.line, e.column) == ("packages", None, None, None)


# Ctrl-C

INTERRUPTED = 3

CALLER = """
import sys
from imagespec import _core
print("calling", flush=True)
try:
    {call}
except KeyboardInterrupt:
    sys.exit({code})
"""


def interrupt_after_start(call: str, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Runs `call` in a fresh interpreter, sends it SIGINT once it runs: (exit code, seconds the
    interpreter took to end after the signal)."""
    with subprocess.Popen(
        [sys.executable, "-c", CALLER.format(call=call, code=INTERRUPTED)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        # A test run started in the background ignores SIGINT, and Python keeps it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "calling\n"
        time.sleep(1.0)  # well into the call
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        try:
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
    return code, time.monotonic() - t0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


def test_a_registry_call_stops_on_ctrl_c(silent_server: int) -> None:
    call = f"_core.check(['127.0.0.1:{silent_server}/x:1'], timeout=60.0, retries=0, use_cache=False)"
    code, seconds = interrupt_after_start(call)
    assert code == INTERRUPTED
    assert seconds < 10


def test_a_program_the_core_runs_is_stopped_on_ctrl_c(tmp_path: Path) -> None:
    # The client query waits 10 s for a client; an interrupted call does not wait for it.
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexec sleep 30\n")
    docker.chmod(0o755)
    code, seconds = interrupt_after_start("_core.docker_client()", {"IMAGESPEC_DOCKER": str(docker)})
    assert code == INTERRUPTED
    assert seconds < 5
