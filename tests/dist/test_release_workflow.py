"""The release workflow (.github/workflows/release.yml) says what a release is: read as YAML here,
since no hosted runner can run it from these machines. `make lint` checks it against the workflow
schema (check-jsonschema); this checks what it promises: the platforms, a smoke test per wheel, and
an upload only from a version tag, by trusted publishing, of exactly the files the builds made.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
BUILDS = ("linux", "macos", "windows", "sdist")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    try:
        from ruamel.yaml import YAML  # comes with check-jsonschema (scripts/setup.sh)
    except ImportError:
        reason = "ruamel.yaml is not installed (make setup installs check-jsonschema, which brings it)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    # YAML 1.2, as GitHub reads it: `on` is a key, not the boolean true.
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(WORKFLOW.read_text())
    return data


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def matrix_entries(job: dict[str, Any]) -> list[dict[str, Any]]:
    matrix = job.get("strategy", {}).get("matrix")
    if not matrix:
        return [{}]
    if "include" in matrix:
        return list(matrix["include"])
    keys = list(matrix)
    entries: list[dict[str, Any]] = [{}]
    for key in keys:
        entries = [{**e, key: v} for e in entries for v in matrix[key]]
    return entries


def test_runs_on_version_tags_and_by_hand(workflow: dict[str, Any]) -> None:
    assert workflow["on"]["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read"}


def test_builds_every_platform(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    linux = {(e["arch"], e["libc"]) for e in matrix_entries(jobs["linux"])}
    assert linux == {(a, c) for a in ("x86_64", "aarch64") for c in ("manylinux", "musllinux")}
    assert {e["arch"] for e in matrix_entries(jobs["macos"])} == {"x86_64", "aarch64"}
    assert jobs["windows"]["runs-on"].startswith("windows")
    maturin = [s for s in steps(jobs["sdist"]) if str(s.get("uses", "")).startswith("PyO3/maturin-action")]
    assert [s["with"]["command"] for s in maturin] == ["sdist"]
    # Each wheel job builds abi3 wheels with maturin-action, stripped, into dist/.
    for name in ("linux", "macos", "windows"):
        uses = [s for s in steps(jobs[name]) if str(s.get("uses", "")).startswith("PyO3/maturin-action")]
        assert len(uses) == 1, name
    assert "--strip" in workflow["env"]["MATURIN_ARGS"] and "--out dist" in workflow["env"]["MATURIN_ARGS"]


def test_every_build_is_smoke_tested_and_kept(workflow: dict[str, Any]) -> None:
    for name in BUILDS:
        job = workflow["jobs"][name]
        runs = " ".join(str(s.get("run", "")) for s in steps(job))
        assert "scripts/smoke.sh dist" in runs, f"{name} has no smoke test"
        uploads = [s for s in steps(job) if str(s.get("uses", "")).startswith("actions/upload-artifact")]
        assert len(uploads) == 1 and uploads[0]["with"]["name"].startswith("dist-"), name
        assert uploads[0]["with"]["if-no-files-found"] == "error", name
    # What the steps run exists in this checkout.
    assert (ROOT / "scripts" / "smoke.sh").is_file() and (ROOT / "tests" / "dist" / "smoke.py").is_file()


def test_publishes_only_tags_by_trusted_publishing(workflow: dict[str, Any]) -> None:
    publish = workflow["jobs"]["publish"]
    assert set(publish["needs"]) == set(BUILDS)
    assert "refs/tags/v" in publish["if"] and "github.event_name == 'push'" in publish["if"]
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    uses = [str(s.get("uses", "")) for s in steps(publish)]
    assert uses[-1] == "pypa/gh-action-pypi-publish@release/v1"
    # No API token: trusted publishing needs none, and a secret here would be one to leak.
    assert "secrets." not in WORKFLOW.read_text()


def test_publish_expects_exactly_the_files_built(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    built = sum(len(matrix_entries(jobs[name])) for name in BUILDS)
    check = next(s["run"] for s in steps(jobs["publish"]) if "run" in s)
    expected = re.search(r'wc -l\)" -eq (\d+)', check)
    assert expected is not None and int(expected[1]) == built == 8
