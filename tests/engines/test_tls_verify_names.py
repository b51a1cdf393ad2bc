"""buildah and podman skip TLS verification only for real loopback addresses (issue 14, item 8a):
a registry NAME that starts with ``127.`` is whatever a resolver makes of it, so a base image from
there is pulled with the certificate verified.

The attack: the spec's base image is ``127.evil.test:PORT/...`` (a name, which an attacker's DNS
can point anywhere; here a private /etc/hosts points it at an HTTPS registry whose certificate no
one trusts, standing in for a man in the middle). Before the fix buildah pulled it with
``--tls-verify=false`` and built on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from imagespec import ImageSpec

from ..registry.registry_servers import Registry, make_pki, start_registry, with_hosts
from .engine_helpers import BASE_REPOSITORY, MACHINE_CA, Buildah

BUILD = """
import json, sys
from imagespec import ImageSpec, build
spec = ImageSpec.from_dict(json.loads(sys.argv[1]))
[r] = build(spec, builder="buildah", imagespec_wheel=sys.argv[2], ca_bundle=sys.argv[3], check=False).results
print(json.dumps({"outcome": r.outcome, "reason": r.reason}))
"""


def test_a_base_from_a_name_that_starts_with_127_is_pulled_with_tls_verified(
    buildah: Buildah,
    loopback_registry: Registry,
    python_base: str,
    imagespec_wheel: Path,
    tmp_path: Path,
) -> None:
    assert loopback_registry.log is not None
    # The same storage as the loopback registry (which holds the Python base), served over HTTPS
    # with a certificate of a CA made here and trusted nowhere.
    pki = make_pki(tmp_path / "pki")
    mitm = start_registry(tmp_path / "mitm", loopback_registry.log.parent / "storage", tls=pki)
    try:
        port = mitm.host.rsplit(":", 1)[1]
        spec = ImageSpec(
            name="tls-verify-victim",
            registry=loopback_registry.host,
            base_image=f"127.evil.test:{port}/{BASE_REPOSITORY}",
            python_version="3.11",
        )
        out = with_hosts(
            "127.0.0.1 127.evil.test\n",
            [sys.executable, "-c", BUILD, json.dumps(spec.to_dict()), str(imagespec_wheel), str(MACHINE_CA)],
            tmp_path,
            capture_output=True,
            timeout=1200,
            env=buildah.env,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.splitlines()[-1])
        assert result["outcome"] == "failed", result
        assert "x509" in result["reason"] or "certificate" in result["reason"], result["reason"]
        assert f"127.evil.test:{port}" in result["reason"], result["reason"]
    finally:
        mitm.stop()
