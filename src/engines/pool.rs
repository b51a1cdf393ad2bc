//! Engines named for a plan (`IMAGESPEC_ENGINES`, `imagespec build --engines`, `build(engines=)`):
//! each entry is an engine kind and, for docker, where its daemon is, as `DOCKER_HOST` names it.
//!
//! ```text
//! docker                                   the local engine (DOCKER_HOST, DOCKER_CONTEXT as set)
//! docker@unix:///run/other.sock            another local daemon
//! docker@tcp://h1:2376?tls=/etc/h1-certs   a daemon over TLS (ca.pem, cert.pem, key.pem in the folder)
//! docker@ssh://builder@h2                  a daemon over SSH (the ssh client's keys and known_hosts)
//! docker@context:h3                        a docker context (docker context create)
//! buildkit@tcp://bk:1234?tls=/etc/bk       a BuildKit daemon, driven by buildctl
//! buildkit@kube-pod://buildkitd-0          (any BUILDKIT_HOST address)
//! buildah, podman, native                  the local daemonless engines
//! ```
//!
//! Options after `?`, `&`-separated: `tls=DIR` (tcp only: verify the daemon with DIR/ca.pem and
//! present DIR/cert.pem and DIR/key.pem), `parallel=N` (builds at once on it, default 1),
//! `platform=OS/ARCH` (what it builds natively; else the daemon is asked). The entry as written,
//! credentials removed, is its label in progress and results.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// One engine of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolEngine {
    /// The entry as written (options included), which names it in events and results.
    pub label: String,
    /// `docker`, `buildah`, `podman` or `native`.
    pub kind: String,
    pub endpoint: Endpoint,
    /// Builds at once on this engine.
    pub parallel: usize,
    /// What it builds without emulation, when declared.
    pub platform: Option<String>,
}

/// Where a docker daemon is.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// As the environment says (`DOCKER_HOST`, `DOCKER_CONTEXT`, the default socket).
    #[default]
    Default,
    /// A `DOCKER_HOST` value, with TLS material for `tcp://`.
    Host { url: String, tls: Option<PathBuf> },
    /// A docker context by name.
    Context(String),
}

impl Endpoint {
    /// The environment every run of the docker client against this daemon gets.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Endpoint::Default => Vec::new(),
            Endpoint::Host { url, tls } => {
                let mut env = vec![
                    ("DOCKER_HOST".to_owned(), url.clone()),
                    // A context set in the environment would otherwise win over the host.
                    ("DOCKER_CONTEXT".to_owned(), "default".to_owned()),
                ];
                match tls {
                    Some(dir) => {
                        env.push(("DOCKER_TLS_VERIFY".into(), "1".into()));
                        env.push(("DOCKER_CERT_PATH".into(), dir.to_string_lossy().into_owned()));
                    }
                    None => env.push(("DOCKER_TLS_VERIFY".into(), String::new())),
                }
                env
            }
            Endpoint::Context(name) => vec![
                ("DOCKER_CONTEXT".to_owned(), name.clone()),
                ("DOCKER_HOST".to_owned(), String::new()),
            ],
        }
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Default => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned()),
            Endpoint::Host { url, .. } => url.clone(),
            Endpoint::Context(name) => format!("context {name}"),
        }
    }
}

const KINDS: [&str; 5] = ["docker", "buildkit", "buildah", "podman", "native"];

/// The pool named by `text`: entries separated by commas, blanks or line breaks.
pub fn parse_pool(text: &str) -> Result<Vec<PoolEngine>> {
    let mut out: Vec<PoolEngine> = Vec::new();
    for entry in text.split([',', ' ', '\n', '\t']).filter(|e| !e.is_empty()) {
        let engine = parse_entry(entry)?;
        if out.iter().any(|e| e.label == engine.label) {
            return Err(Error::spec("engines", format!("{entry:?} is named twice")));
        }
        out.push(engine);
    }
    Ok(out)
}

fn parse_entry(entry: &str) -> Result<PoolEngine> {
    let bad = |why: String| Error::spec("engines", format!("{entry:?}: {why}"));
    let (main, query) = entry.split_once('?').unwrap_or((entry, ""));
    let (kind, at) = main.split_once('@').map_or((main, None), |(k, a)| (k, Some(a)));
    if !KINDS.contains(&kind) {
        return Err(bad(format!(
            "{kind:?} is not an engine that can be pooled; give one of {}",
            KINDS.join(", ")
        )));
    }
    let mut tls = None;
    let mut parallel = 1;
    let mut platform = None;
    for option in query.split('&').filter(|o| !o.is_empty()) {
        let (k, v) = option
            .split_once('=')
            .ok_or_else(|| bad(format!("option {option:?} is not KEY=VALUE")))?;
        match k {
            "tls" => tls = Some(PathBuf::from(v)),
            "parallel" => {
                parallel = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| bad(format!("parallel={v:?} is not a number from 1 to 64")))?
            }
            "platform" => {
                if v.split('/').count() < 2 || v.contains(',') {
                    return Err(bad(format!("platform={v:?} is not one OS/ARCH")));
                }
                platform = Some(v.to_owned());
            }
            other => {
                return Err(bad(format!(
                    "unknown option {other:?}; the options are tls, parallel and platform"
                )))
            }
        }
    }
    let endpoint = match at {
        None => Endpoint::Default,
        Some(_) if kind != "docker" && kind != "buildkit" => {
            return Err(bad(format!(
                "{kind} builds on this machine; only docker and buildkit take @WHERE"
            )))
        }
        Some(url) if kind == "buildkit" => {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(
                scheme,
                Some("tcp" | "unix" | "kube-pod" | "docker-container" | "podman-container")
            ) {
                return Err(bad(format!(
                    "{url:?} is not a BUILDKIT_HOST address (tcp://, unix://, kube-pod://, docker-container://, podman-container://)"
                )));
            }
            if tls.is_some() && scheme != Some("tcp") {
                return Err(bad("tls= applies to tcp:// only".into()));
            }
            Endpoint::Host {
                url: url.to_owned(),
                tls: tls.take(),
            }
        }
        Some(context) if context.starts_with("context:") => {
            let name = &context["context:".len()..];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(bad(format!("{name:?} is not a docker context name")));
            }
            Endpoint::Context(name.to_owned())
        }
        Some(url) => {
            let scheme = url.split_once("://").map(|(s, _)| s);
            match scheme {
                Some("tcp" | "unix" | "ssh" | "npipe") => {}
                _ => {
                    return Err(bad(format!(
                        "{url:?} is not a DOCKER_HOST URL (tcp://, unix:// or ssh://) or context:NAME"
                    )))
                }
            }
            if tls.is_some() && scheme != Some("tcp") {
                return Err(bad(
                    "tls= applies to tcp:// only (ssh and unix sockets need none)".into(),
                ));
            }
            if crate::redact::has_userinfo(url) && scheme != Some("ssh") {
                return Err(bad("credentials do not go in a DOCKER_HOST URL".into()));
            }
            Endpoint::Host {
                url: url.to_owned(),
                tls: tls.take(),
            }
        }
    };
    if tls.is_some() {
        return Err(bad("tls= needs a tcp:// daemon".into()));
    }
    if let Endpoint::Host { tls: Some(dir), .. } = &endpoint {
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            if !dir.join(f).is_file() {
                return Err(bad(format!(
                    "tls={}: {f} is missing there (the folder holds ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH does)",
                    dir.display()
                )));
            }
        }
    }
    Ok(PoolEngine {
        label: entry.to_owned(),
        kind: kind.to_owned(),
        endpoint,
        parallel,
        platform,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let pool =
            parse_pool("docker, docker@unix:///run/b.sock?parallel=2,native docker@context:h3").unwrap();
        assert_eq!(pool.len(), 4);
        assert_eq!(pool[1].parallel, 2);
        assert_eq!(
            pool[1].endpoint,
            Endpoint::Host {
                url: "unix:///run/b.sock".into(),
                tls: None
            }
        );
        assert_eq!(pool[3].endpoint, Endpoint::Context("h3".into()));
        assert_eq!(pool[2].kind, "native");
        for (bad, says) in [
            ("kaniko", "not an engine"),
            ("native@tcp://h:1", "only docker and buildkit take @WHERE"),
            ("buildkit@ssh://h", "not a BUILDKIT_HOST address"),
            ("docker@http://h", "not a DOCKER_HOST URL"),
            ("docker@ssh://u@h?tls=/x", "tcp:// only"),
            ("docker?parallel=0", "from 1 to 64"),
            ("docker?speed=2", "unknown option"),
            ("docker@tcp://h:2376?tls=/nonexistent", "ca.pem is missing"),
            ("docker,docker", "named twice"),
            ("docker?platform=amd64", "not one OS/ARCH"),
        ] {
            let e = parse_pool(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
