"""The BuildKit engine's contract with ``buildctl`` (builder="buildkit", or ``buildkit@ADDR`` in an
engine pool). buildkitd is not packaged for this Debian, so a recording stand-in takes buildctl's
place on PATH: it writes down its arguments, the context and the secrets it was given, and answers
as buildctl does (a metadata file with the pushed image's digest)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagespec import ImageSpec, build
from imagespec._build import dockerfile

from .conftest import program_on_path

STANDIN = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if "debug" in args:
    sys.exit(0 if not os.environ.get("STANDIN_DOWN") else 1)
i = args.index("build")
value = lambda flag: [args[k + 1] for k in range(i, len(args) - 1) if args[k] == flag]
ctx = dict(v.split("=", 1) for v in value("--local"))["context"]
files = sorted(os.path.relpath(os.path.join(d, f), ctx) for d, _, fs in os.walk(ctx) for f in fs)
secrets = {}
for s in value("--secret"):
    parts = dict(p.split("=", 1) for p in s.split(","))
    secrets[parts["id"]] = open(parts["src"]).read()
record = {"argv": args, "files": files, "secrets": secrets}
record["dockerfile"] = open(os.path.join(ctx, "Dockerfile")).read()
json.dump(record, open(os.environ["STANDIN_RECORD"], "w"))
print("#1 [internal] load build definition from Dockerfile")
if os.environ.get("STANDIN_FAIL"):
    print("error: failed to solve: process did not complete successfully", file=sys.stderr)
    sys.exit(1)
if not os.environ.get("STANDIN_NO_DIGEST"):
    json.dump({"containerimage.digest": "sha256:" + "ab" * 32}, open(value("--metadata-file")[0], "w"))
"""

PEM = "-----BEGIN CERTIFICATE-----\nMIIBstandin\n-----END CERTIFICATE-----\n"


@pytest.fixture
def buildctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    program_on_path(tmp_path / "bin", "buildctl", STANDIN, monkeypatch)
    record = tmp_path / "record.json"
    monkeypatch.setenv("STANDIN_RECORD", str(record))
    tls = tmp_path / "tls"
    tls.mkdir()
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (tls / f).write_text(PEM)
    monkeypatch.setenv("BUILDKIT_HOST", "tcp://buildkitd.example:1234")
    monkeypatch.setenv("BUILDKIT_TLS_DIR", str(tls))
    return record


def _spec() -> ImageSpec:
    return ImageSpec(
        name="bk", registry="localhost:9", python_version="3.11", packages=["six"], platform="linux/arm64"
    )


def test_the_argument_contract(buildctl: Path, tmp_path: Path) -> None:
    spec = _spec()
    ca = tmp_path / "proxy-ca.pem"
    ca.write_text(PEM)
    report = build(spec, builder="buildkit", force_push=True, ca_bundle=str(ca), imagespec_wheel="index")
    r = report[spec]
    assert r.outcome == "built", report.summary()
    assert r.name == f"{r.image}@sha256:{'ab' * 32}"  # the digest of the metadata file
    rec = json.loads(buildctl.read_text())
    argv = rec["argv"]
    tls = os.environ["BUILDKIT_TLS_DIR"]
    assert argv[: argv.index("build")] == [
        "--addr", "tcp://buildkitd.example:1234", "--tlsservername", "buildkitd.example",
        "--tlscacert", f"{tls}/ca.pem", "--tlscert", f"{tls}/cert.pem", "--tlskey", f"{tls}/key.pem",
    ]  # fmt: skip
    build_args = argv[argv.index("build") :]
    pairs = list(zip(build_args, build_args[1:]))
    assert ("--frontend", "dockerfile.v0") in pairs and ("--opt", "filename=Dockerfile") in pairs
    assert ("--opt", "platform=linux/arm64") in pairs
    assert ("--output", f"type=image,name={r.image},push=true") in pairs
    locals_ = [v for k, v in pairs if k == "--local"]
    assert sorted(v.split("=")[0] for v in locals_) == ["context", "dockerfile"]
    assert len({v.split("=", 1)[1] for v in locals_}) == 1  # one folder holds both
    # The Dockerfile every BuildKit engine gets, and the CA reaching the build as a secret only.
    assert rec["dockerfile"] == dockerfile(spec, engine="buildkit", ca_bundle=PEM, imagespec_wheel="index")
    assert "Dockerfile" in rec["files"]
    assert list(rec["secrets"].values()) == [PEM]
    assert all(PEM.strip() not in a for a in argv)


def test_failures_say_what_buildctl_said_and_a_missing_digest_is_no_push(
    buildctl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec()
    monkeypatch.setenv("STANDIN_FAIL", "1")
    report = build(spec, builder="buildkit", force_push=True, check=False, imagespec_wheel="index")
    assert report[spec].outcome == "failed"
    assert "failed to solve" in (report[spec].reason or "")
    monkeypatch.delenv("STANDIN_FAIL")
    monkeypatch.setenv("STANDIN_NO_DIGEST", "1")
    report = build(spec, builder="buildkit", force_push=True, check=False, imagespec_wheel="index")
    assert "wrote no image digest" in (report[spec].reason or "")
    monkeypatch.setenv("STANDIN_DOWN", "1")
    report = build(spec, builder="buildkit", force_push=True, check=False, imagespec_wheel="index")
    assert "does not answer" in (report[spec].reason or "")


def test_a_tls_folder_without_its_files(
    buildctl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDKIT_TLS_DIR", str(tmp_path))
    spec = _spec()
    report = build(spec, builder="buildkit", force_push=True, check=False, imagespec_wheel="index")
    assert f"the TLS folder {tmp_path} has no ca.pem" in (report[spec].reason or "")
