"""`imagespec inspect` of a local image: the reference reaches docker after `--`, never as an option."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import imagespec
from imagespec import RegistryError

# A stand-in for the docker client: answers `version`, records every other command line.
RECORDER = """#!{python}
import json, os, sys
if sys.argv[1:2] == ["version"]:
    print("20.10.24")
    sys.exit(0)
with open(os.environ["FAKE_DOCKER_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("Error: No such image", file=sys.stderr)
sys.exit(1)
"""


def test_a_reference_that_looks_like_an_option_stays_a_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "docker"
    script.write_text(RECORDER.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("IMAGESPEC_DOCKER", str(script))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    with pytest.raises(RegistryError, match="not in the local Docker engine"):
        imagespec.inspect("--output=/tmp/owned", local=True)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    inspects = [c for c in calls if c[:2] == ["image", "inspect"]]  # the others: the client's probes
    assert inspects == [["image", "inspect", "--", "--output=/tmp/owned"]]
