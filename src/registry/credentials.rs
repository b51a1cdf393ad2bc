//! Registry credentials the way docker finds them: a docker `config.json` (the spec's
//! `registry_config` first, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) with
//! `auths` entries (`auth`, `username`/`password`, `identitytoken`), `credHelpers` per registry and
//! a default `credsStore`, both run as `docker-credential-<name> get`.
//!
//! No message built here ever contains a secret.

use crate::reference::{normalise_registry, DOCKER_HUB};
use data_encoding::{BASE64, BASE64_NOPAD};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth refresh token (`identitytoken`), exchanged at the token endpoint.
    IdentityToken {
        username: String,
        token: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken { username, .. } => write!(f, "IdentityToken({username}, ***)"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// A parsed docker `config.json`.
#[derive(Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(skip)]
    path: PathBuf,
}

impl DockerConfig {
    /// Reads a config file; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the registry config {}: {e}", path.display())),
        };
        Self::parse(&text, path).map(Some)
    }

    pub fn parse(text: &[u8], path: &Path) -> Result<Self, String> {
        let mut c: DockerConfig = serde_json::from_slice(text).map_err(|e| {
            // serde_json's message names the position and what it expected, never the text.
            format!(
                "the registry config {} is not a valid docker config.json: {e}",
                path.display()
            )
        })?;
        c.path = path.to_path_buf();
        Ok(c)
    }

    /// The docker config this user's docker would read.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker/config.json"))
    }

    /// Credentials for `registry` (normalised, e.g. `docker.io`, `localhost:5000`).
    pub async fn lookup(&self, registry: &str, timeout: Duration) -> Result<Option<Credential>, String> {
        if let Some((_, helper)) = self.cred_helpers.iter().find(|(k, _)| key_matches(k, registry)) {
            return run_helper(helper, registry, timeout, &self.path, "credHelpers").await;
        }
        if let Some(store) = self.creds_store.as_deref().filter(|s| !s.is_empty()) {
            if let Some(c) = run_helper(store, registry, timeout, &self.path, "credsStore").await? {
                return Ok(Some(c));
            }
        }
        match self.auths.iter().find(|(k, _)| key_matches(k, registry)) {
            Some((key, entry)) => self.decode_entry(key, entry),
            None => Ok(None),
        }
    }

    fn decode_entry(&self, key: &str, e: &AuthEntry) -> Result<Option<Credential>, String> {
        let at = || format!("{}: auths[{key:?}]", self.path.display());
        let (mut user, mut pass) = (e.username.clone(), e.password.clone());
        if let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) {
            let bytes = BASE64
                .decode(auth.trim().as_bytes())
                .or_else(|_| BASE64_NOPAD.decode(auth.trim().trim_end_matches('=').as_bytes()))
                .map_err(|_| format!("{}.auth is not valid base64", at()))?;
            let text =
                String::from_utf8(bytes).map_err(|_| format!("{}.auth does not decode to text", at()))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| format!("{}.auth does not decode to user:password", at()))?;
            user = Some(u.to_string());
            pass = Some(p.to_string());
        }
        if let Some(token) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken {
                username: user.unwrap_or_default(),
                token: token.into(),
            }));
        }
        match (user, pass) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Ok(Some(Credential::Basic { username, password }))
            }
            _ => Ok(None),
        }
    }
}

/// Whether a key of `auths`/`credHelpers` (`https://index.docker.io/v1/`, `host:port`,
/// `https://host:port/path`) names `registry`.
fn key_matches(key: &str, registry: &str) -> bool {
    let k = key.trim();
    let k = k.split_once("://").map_or(k, |(_, rest)| rest);
    let k = k.split('/').next().unwrap_or(k);
    normalise_registry(k) == registry
}

/// The server URL docker passes to a helper for a registry.
fn helper_server_url(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

async fn run_helper(
    name: &str,
    registry: &str,
    timeout: Duration,
    config: &Path,
    field: &str,
) -> Result<Option<Credential>, String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "{}: {field} names an invalid helper {name:?}",
            config.display()
        ));
    }
    let program = format!("docker-credential-{name}");
    let mut child = match tokio::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "credential helper {program} (from {field} in {}) is not on PATH",
                config.display()
            ))
        }
        Err(e) => return Err(format!("credential helper {program} could not start: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is reported by its exit status below.
        let _ = stdin.write_all(helper_server_url(registry).as_bytes()).await;
    }
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("credential helper {program} failed: {e}")),
        Err(_) => {
            return Err(format!(
                "credential helper {program} did not answer within {timeout:?}"
            ))
        }
    };
    if !out.status.success() {
        let said = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        });
        let first = said.lines().next().unwrap_or("").trim();
        if first.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let first: String = first.chars().take(200).collect();
        return Err(format!(
            "credential helper {program} failed ({}): {first}",
            out.status
        ));
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "credential helper {program} printed something that is not a JSON {{Username, Secret}} object"
        )
    })?;
    if parsed.username == "<token>" {
        return Ok(Some(Credential::IdentityToken {
            username: String::new(),
            token: parsed.secret,
        }));
    }
    Ok(Some(Credential::Basic {
        username: parsed.username,
        password: parsed.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<DockerConfig, String> {
        DockerConfig::parse(text.as_bytes(), Path::new("/x/config.json"))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn reads_auths_in_every_form() {
        let c = cfg(r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dTpw"},
            "localhost:5000": {"username": "a", "password": "b"},
            "https://reg.example.com/v2/": {"auth": "dTo=", "identitytoken": "tok"},
            "nopad.example.com": {"auth": "dTpwdw"}
        }}"#)
        .unwrap();
        let rt = rt();
        let t = Duration::from_secs(5);
        let basic = |u: &str, p: &str| {
            Some(Credential::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(rt.block_on(c.lookup("docker.io", t)).unwrap(), basic("u", "p"));
        assert_eq!(
            rt.block_on(c.lookup("localhost:5000", t)).unwrap(),
            basic("a", "b")
        );
        assert_eq!(
            rt.block_on(c.lookup("nopad.example.com", t)).unwrap(),
            basic("u", "pw")
        );
        assert_eq!(
            rt.block_on(c.lookup("reg.example.com", t)).unwrap(),
            Some(Credential::IdentityToken {
                username: "u".into(),
                token: "tok".into()
            })
        );
        assert_eq!(rt.block_on(c.lookup("other:5000", t)).unwrap(), None);
    }

    #[test]
    fn bad_auth_fields_say_which_entry_and_never_the_secret() {
        let rt = rt();
        let t = Duration::from_secs(5);
        let c = cfg(r#"{"auths": {"localhost:5000": {"auth": "!!not base64 s3cret!!"}}}"#).unwrap();
        let e = rt.block_on(c.lookup("localhost:5000", t)).unwrap_err();
        assert!(
            e.contains(r#"auths["localhost:5000"].auth is not valid base64"#),
            "{e}"
        );
        assert!(!e.contains("s3cret"));
        let c = cfg(r#"{"auths": {"localhost:5000": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let e = rt.block_on(c.lookup("localhost:5000", t)).unwrap_err();
        assert!(e.contains("does not decode to user:password"), "{e}");
    }

    #[test]
    fn malformed_config_names_the_file_and_position() {
        let e = cfg(r#"{"auths": {"x": "#).unwrap_err();
        assert!(
            e.contains("/x/config.json is not a valid docker config.json"),
            "{e}"
        );
        assert!(e.contains("line 1"), "{e}");
        let e = cfg(r#"{"auths": []}"#).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn missing_helper_is_reported() {
        let c = cfg(r#"{"credHelpers": {"localhost:5000": "imagespec-test-absent"}}"#).unwrap();
        let e = rt()
            .block_on(c.lookup("localhost:5000", Duration::from_secs(5)))
            .unwrap_err();
        assert!(e.contains(
            "docker-credential-imagespec-test-absent (from credHelpers in /x/config.json) is not on PATH"
        ));
        let c = cfg(r#"{"credsStore": "../evil"}"#).unwrap();
        let e = rt()
            .block_on(c.lookup("localhost:5000", Duration::from_secs(5)))
            .unwrap_err();
        assert!(e.contains("invalid helper"), "{e}");
    }

    #[test]
    fn keys_match_like_docker() {
        assert!(key_matches("https://index.docker.io/v1/", "docker.io"));
        assert!(key_matches("docker.io", "docker.io"));
        assert!(key_matches("http://localhost:5000", "localhost:5000"));
        assert!(!key_matches("localhost:5001", "localhost:5000"));
        assert!(!key_matches("localhost", "localhost:5000"));
    }
}
