"""Credentials against real registries: Basic behind TLS with a test CA, and docker token auth."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from imagespec import check

from .registry_servers import PASSWORD, USER, Images, Pki, Registry, TokenServer, write_config


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def trust(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_cert))


def test_tls_basic_with_auth_field(tls_registry: Registry, trust: None, isolated: Path) -> None:
    write_config(
        isolated / "config.json", {"auths": {tls_registry.host: {"auth": b64(f"{USER}:{PASSWORD}")}}}
    )
    h = tls_registry.host
    got = check([f"{h}/app:present", f"{h}/app:absent"])
    assert [r.status for r in got] == ["exists", "missing"]


def test_tls_basic_with_username_password_in_registry_config(
    tls_registry: Registry, trust: None, tmp_path: Path
) -> None:
    cfg = write_config(
        tmp_path / "spec-config.json",
        {"auths": {f"https://{tls_registry.host}": {"username": USER, "password": PASSWORD}}},
    )
    assert check([f"{tls_registry.host}/app:present"], registry_config=cfg)[0].status == "exists"


def test_tls_basic_without_credentials_is_unknown(tls_registry: Registry, trust: None) -> None:
    [r] = check([f"{tls_registry.host}/app:present"])
    assert r.status == "unknown"
    assert (
        r.reason == f"auth refused: {tls_registry.host} requires credentials and none are configured for it"
    )


def test_tls_basic_wrong_password_is_refused_and_not_echoed(
    tls_registry: Registry, trust: None, isolated: Path
) -> None:
    write_config(
        isolated / "config.json", {"auths": {tls_registry.host: {"auth": b64(f"{USER}:hunter2-wrong")}}}
    )
    [r] = check([f"{tls_registry.host}/app:present"])
    assert r.status == "unknown"
    assert r.reason == f"auth refused: {tls_registry.host} (HTTP 401)"
    assert "hunter2" not in repr(r)


def test_tls_without_the_ca_says_why(tls_registry: Registry) -> None:
    [r] = check([f"{tls_registry.host}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and "HTTP: answered HTTP 400; HTTPS: " in r.reason, r.reason
    assert "certificate" in r.reason.lower(), r.reason


def test_ssl_cert_dir_is_honoured(
    tls_registry: Registry, pki: Pki, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "test-ca.pem").write_bytes(pki.ca_cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    write_config(
        isolated / "config.json", {"auths": {tls_registry.host: {"auth": b64(f"{USER}:{PASSWORD}")}}}
    )
    assert check([f"{tls_registry.host}/app:present"])[0].status == "exists"


def test_bad_ssl_cert_file_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagespec import RegistryError

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    with pytest.raises(RegistryError, match="holds no PEM certificate"):
        check(["localhost:5000/a:b"])


def test_token_anonymous_pull_of_public_repo(
    token_registry: Registry, token_server: TokenServer, images: Images
) -> None:
    token_server.requests.clear()
    h = token_registry.host
    got = check([f"{h}/public/app:present", f"{h}/public/app:absent"])
    assert [r.status for r in got] == ["exists", "missing"]
    # Anonymous, one token for the repository and scope shared by both checks.
    assert [(r["user"], r["scope"]) for r in token_server.requests] == [(None, "repository:public/app:pull")]


def test_token_private_repo_needs_credentials(
    token_registry: Registry, token_server: TokenServer, isolated: Path
) -> None:
    h = token_registry.host
    [anon] = check([f"{h}/app:present"])
    assert anon.status == "unknown"
    assert anon.reason == f"auth refused: {h} (HTTP 401)"
    write_config(isolated / "config.json", {"auths": {h: {"auth": b64(f"{USER}:{PASSWORD}")}}})
    token_server.requests.clear()
    got = check([f"{h}/app:present", f"{h}/app:absent", f"{h}/multi:v1"])
    assert [r.status for r in got] == ["exists", "missing", "exists"]
    scopes = sorted(r["scope"] for r in token_server.requests)
    assert scopes == ["repository:app:pull", "repository:multi:pull"]
    assert {r["user"] for r in token_server.requests} == {USER}


def test_token_endpoint_refuses_bad_credentials(token_registry: Registry, isolated: Path) -> None:
    h = token_registry.host
    write_config(isolated / "config.json", {"auths": {h: {"auth": b64(f"{USER}:nope-s3cret")}}})
    [r] = check([f"{h}/app:present"])
    assert r.status == "unknown"
    assert r.reason == "auth refused: the token endpoint at 127.0.0.1 refused the credentials (HTTP 401)"
    assert "s3cret" not in repr(r)


@pytest.mark.parametrize("store", ["credHelpers", "credsStore"])
def test_credential_helper(token_registry: Registry, cred_helper: Path, isolated: Path, store: str) -> None:
    h = token_registry.host
    cfg = (
        {"credHelpers": {h: "imagespec-test"}} if store == "credHelpers" else {"credsStore": "imagespec-test"}
    )
    write_config(isolated / "config.json", cfg)
    assert check([f"{h}/app:present"])[0].status == "exists"
    assert cred_helper.read_text().split() == [h]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (
            "fail",
            "credential helper docker-credential-imagespec-test failed (exit status: 3): "
            "the keychain is locked",
        ),
        (
            "garbage",
            "credential helper docker-credential-imagespec-test printed something that is not a JSON "
            "{Username, Secret} object",
        ),
        ("wrong", "the token endpoint at 127.0.0.1 refused the credentials (HTTP 401)"),
    ],
)
def test_credential_helper_faults(
    token_registry: Registry,
    cred_helper: Path,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    reason: str,
) -> None:
    h = token_registry.host
    write_config(isolated / "config.json", {"credHelpers": {h: "imagespec-test"}})
    monkeypatch.setenv("IMAGESPEC_TEST_HELPER_MODE", mode)
    [r] = check([f"{h}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and reason in r.reason, r.reason
    assert "wonderland" not in repr(r) and "not-the-password" not in repr(r)


def test_credential_helper_not_found_means_anonymous(
    token_registry: Registry, cred_helper: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = token_registry.host
    write_config(isolated / "config.json", {"credHelpers": {h: "imagespec-test"}})
    monkeypatch.setenv("IMAGESPEC_TEST_HELPER_MODE", "notfound")
    assert check([f"{h}/public/app:present"])[0].status == "exists"


def test_missing_credential_helper(token_registry: Registry, isolated: Path) -> None:
    h = token_registry.host
    write_config(isolated / "config.json", {"credHelpers": {h: "imagespec-absent"}})
    [r] = check([f"{h}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None
    assert (
        f"credential helper docker-credential-imagespec-absent (from credHelpers in {isolated}/config.json) "
        "is not on PATH" in r.reason
    )


def test_malformed_docker_config(token_registry: Registry, isolated: Path, tmp_path: Path) -> None:
    h = token_registry.host
    (isolated / "config.json").write_text('{"auths": {')
    [r] = check([f"{h}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and f"{isolated}/config.json is not a valid docker config.json" in r.reason
    from imagespec import RegistryError

    bad = tmp_path / "spec.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RegistryError, match=r"spec\.json is not a valid docker config\.json: invalid type"):
        check([f"{h}/app:present"], registry_config=bad)


def test_auth_field_not_base64(token_registry: Registry, isolated: Path) -> None:
    h = token_registry.host
    write_config(isolated / "config.json", {"auths": {h: {"auth": "%%%secret%%%"}}})
    [r] = check([f"{h}/app:present"])
    assert r.status == "unknown"
    assert r.reason is not None and f'auths["{h}"].auth is not valid base64' in r.reason
    assert "secret" not in r.reason.replace("credentials", "")
