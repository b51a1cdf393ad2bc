//! Which `docker` client builds, and with what: the candidates (`$IMAGESPEC_DOCKER`,
//! `builder_options.docker_cli`, or every `docker` on PATH), each asked once per process whether
//! it has buildx or, before version 23, BuildKit of its own (see the parent module).

use crate::error::{Error, Result};
use crate::spec::{option_str, Spec};
use crate::support::exec::{which_all, Run};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What a client builds with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Buildx,
    Builtin,
    Legacy,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Buildx => "buildx",
            Mode::Builtin => "built-in BuildKit",
            Mode::Legacy => "legacy builder",
        }
    }

    /// The `DOCKER_BUILDKIT` value the client must run with; buildx ignores it.
    pub(super) fn buildkit_env(self) -> Option<&'static str> {
        match self {
            Mode::Buildx => None,
            Mode::Builtin => Some("1"),
            Mode::Legacy => Some("0"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub path: PathBuf,
    pub mode: Mode,
}

/// Short queries (versions) must not hang a build on a dead daemon.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The clients to consider, in order: `$IMAGESPEC_DOCKER` alone when set, else
/// `builder_options.docker_cli` alone, else every `docker` on PATH.
pub fn candidates(spec: Option<&Spec>) -> Result<Vec<PathBuf>> {
    if let Some(p) = std::env::var_os("IMAGESPEC_DOCKER").filter(|p| !p.is_empty()) {
        return Ok(vec![PathBuf::from(p)]);
    }
    if let Some(spec) = spec {
        if let Some(p) = option_str(spec, "docker_cli")? {
            return Ok(vec![PathBuf::from(p)]);
        }
    }
    let found = which_all("docker");
    if found.is_empty() {
        return Err(Error::build(
            "docker: no `docker` client on PATH; install it with `apt-get install -y docker.io` \
             (Debian/Ubuntu), or set IMAGESPEC_DOCKER to a client",
        ));
    }
    Ok(found)
}

/// The client to build with among `candidates` (asked once per process for each list).
pub fn detect(candidates: &[PathBuf]) -> Result<Client> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<PathBuf>, Client>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(candidates) {
        return Ok(c.clone());
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in candidates {
        match client_mode(path) {
            Ok(mode) => {
                found.push(Client {
                    path: path.clone(),
                    mode,
                });
                // Nothing beats buildx: no need to ask the others.
                if mode == Mode::Buildx {
                    break;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some(client) = choose(&found) else {
        return Err(Error::build(errors.join("; ")));
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(candidates.to_vec(), client.clone());
    Ok(client)
}

/// The first client with buildx, else the first with built-in BuildKit, else the first.
pub fn choose(clients: &[Client]) -> Option<Client> {
    [Mode::Buildx, Mode::Builtin]
        .iter()
        .find_map(|m| clients.iter().find(|c| c.mode == *m))
        .or_else(|| clients.first())
        .cloned()
}

/// Asks one client what it builds with.
fn client_mode(path: &Path) -> Result<Mode> {
    let query = |args: &[&str]| {
        let mut run = Run::new("docker", "", path, args.iter().map(|a| (*a).to_owned()).collect());
        run.timeout = Some(QUERY_TIMEOUT);
        run.output()
    };
    let (status, _) = query(&["buildx", "version"])?;
    if status.success() {
        return Ok(Mode::Buildx);
    }
    // `--version` is the client's alone: it never waits for a daemon, unlike `docker version`.
    let (_, lines) = query(&["--version"])?;
    Ok(mode_of(false, parse_major(&lines.join("\n"))))
}

pub fn mode_of(buildx: bool, client_major: Option<u32>) -> Mode {
    match (buildx, client_major) {
        (true, _) => Mode::Buildx,
        // Clients before 23 carry BuildKit themselves; from 23 on BuildKit means buildx.
        (false, Some(m)) if m < 23 => Mode::Builtin,
        _ => Mode::Legacy,
    }
}

/// The major version of `Docker version 20.10.24+dfsg1, build 297e128` (or a bare `28.0.1`).
pub fn parse_major(text: &str) -> Option<u32> {
    let text = text.trim();
    let v = text
        .strip_prefix("Docker version ")
        .unwrap_or(text)
        .trim_start_matches('v');
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !v[digits.len()..].starts_with('.') {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_from_versions() {
        assert_eq!(
            parse_major("Docker version 20.10.24+dfsg1, build 297e128"),
            Some(20)
        );
        assert_eq!(parse_major("Docker version 28.0.1, build 068a01e"), Some(28));
        assert_eq!(parse_major("28.0.1"), Some(28));
        assert_eq!(parse_major("garbage"), None);
        assert_eq!(parse_major(""), None);
        assert_eq!(mode_of(true, Some(28)), Mode::Buildx);
        assert_eq!(mode_of(false, Some(20)), Mode::Builtin);
        assert_eq!(mode_of(false, Some(28)), Mode::Legacy);
        assert_eq!(mode_of(false, None), Mode::Legacy);
    }

    #[test]
    fn choice_prefers_buildx_then_builtin_then_first() {
        let c = |p: &str, mode| Client { path: p.into(), mode };
        let legacy = c("/usr/local/bin/docker", Mode::Legacy);
        let builtin = c("/usr/bin/docker", Mode::Builtin);
        let buildx = c("/opt/docker", Mode::Buildx);
        assert_eq!(choose(&[legacy.clone(), builtin.clone()]), Some(builtin.clone()));
        assert_eq!(choose(&[legacy.clone(), builtin, buildx.clone()]), Some(buildx));
        assert_eq!(choose(std::slice::from_ref(&legacy)), Some(legacy));
        assert_eq!(choose(&[]), None);
    }

    #[cfg(unix)]
    #[test]
    fn detection_asks_each_client() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = |name: &str, script: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let new = fake(
            "new",
            r#"case "$1" in buildx) echo "docker: 'buildx' is not a docker command." >&2; exit 1;;
               --version) echo "Docker version 28.0.1, build 068a01e";; esac"#,
        );
        let old = fake(
            "old",
            r#"case "$1" in buildx) exit 1;; --version) echo "Docker version 20.10.24+dfsg1, build 297e128";; esac"#,
        );
        let bx = fake(
            "bx",
            r#"case "$1" in buildx) echo "github.com/docker/buildx v0.20";; esac"#,
        );
        assert_eq!(detect(&[new.clone(), old.clone()]).unwrap().path, old);
        assert_eq!(detect(std::slice::from_ref(&new)).unwrap().mode, Mode::Legacy);
        assert_eq!(
            detect(&[new.clone(), old, bx.clone()]).unwrap().mode,
            Mode::Buildx
        );
        let e = detect(&[dir.path().join("missing")]).unwrap_err().to_string();
        assert!(e.contains("not installed"), "{e}");
    }
}
