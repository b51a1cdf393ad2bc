//! Does an image exist? One image or many, against any OCI distribution registry, with the
//! user's credentials, or in the local engine for images without a registry.
//!
//! The answer is `Exists`, `Missing` or `Unknown` with a reason: never a guess presented as a fact.
//!
//! The same `Client` reads and writes what the native builder pulls and pushes: manifests
//! (manifests.rs) and blobs (blobs.rs: reads, `HEAD`, cross-repository mounts, uploads).

mod auth;
mod blobs;
pub mod cache;
mod client;
pub mod credentials;
mod exists;
mod inspect;
mod local;
mod manifests;
pub mod platform;
mod tls;
mod transport;

pub use auth::{parse_challenges, Challenge};
pub(crate) use client::Client;
pub use inspect::Inspected;

use crate::reference::Reference;
use crate::{Error, Result};
use platform::Platform;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exists,
    Missing,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Exists => "exists",
            Status::Missing => "missing",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// The reference as given.
    pub reference: String,
    pub status: Status,
    /// Why, for `Missing` and `Unknown` (and how, for a local engine's `Exists`).
    pub reason: Option<String>,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// Whether the answer came from the positive-answer cache.
    pub cached: bool,
}

impl CheckResult {
    pub fn unknown(reference: &str, reason: String) -> Self {
        CheckResult {
            reference: reference.to_string(),
            status: Status::Unknown,
            reason: Some(reason),
            digest: None,
            media_type: None,
            cached: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// `os/arch[/variant]` that the image must provide.
    pub platforms: Vec<String>,
    /// A docker `config.json` consulted before the user's own.
    pub registry_config: Option<PathBuf>,
    /// Registries (`host` or `host:port`) allowed over plain HTTP besides loopback ones, added to
    /// `$IMAGESPEC_INSECURE_REGISTRIES`.
    pub insecure: Vec<String>,
    pub use_cache: bool,
    pub cache_ttl: Duration,
    /// Overrides the cache location (default: see `crate::support::dirs::configured_cache_root`).
    pub cache_dir: Option<PathBuf>,
    /// Connect and answer timeout of each request.
    pub timeout: Duration,
    pub concurrency: usize,
    pub retries: u32,
    pub max_retry_wait: Duration,
    pub backoff_base: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platforms: Vec::new(),
            registry_config: None,
            insecure: Vec::new(),
            use_cache: true,
            cache_ttl: Duration::from_secs(86_400),
            cache_dir: None,
            timeout: Duration::from_secs(10),
            concurrency: 16,
            retries: 3,
            max_retry_wait: Duration::from_secs(10),
            backoff_base: Duration::from_millis(200),
        }
    }
}

/// The registries listed in `$IMAGESPEC_INSECURE_REGISTRIES` (comma-separated).
pub fn insecure_from_env() -> Vec<String> {
    std::env::var("IMAGESPEC_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks every reference concurrently. Malformed references and unusable options are errors;
/// everything the registries answer (or fail to) is in the results, in input order.
pub async fn check(refs: &[String], opts: &Options) -> Result<Vec<CheckResult>> {
    let parsed = refs
        .iter()
        .map(|r| Reference::parse(r))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let platforms = opts
        .platforms
        .iter()
        .map(|p| Platform::parse(p).map_err(Error::Registry))
        .collect::<Result<Vec<_>>>()?;
    if opts.timeout.is_zero() {
        return Err(Error::Registry("timeout must be more than zero".into()));
    }
    let concurrency = opts.concurrency.max(1);
    let client = Arc::new(client(opts, platforms)?);
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (input, r)) in refs.iter().zip(parsed).enumerate() {
        let (client, sem, input) = (client.clone(), sem.clone(), input.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, client.check(&input, &r).await)
        });
    }
    let mut out: Vec<Option<CheckResult>> = vec![None; refs.len()];
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, r)) => out[i] = Some(r),
            Err(e) => return Err(Error::Registry(format!("a check task failed: {e}"))),
        }
    }
    Ok(out
        .into_iter()
        .map(|r| cleaned(r.expect("every task reported")))
        .collect())
}

/// Text from a registry (or anything else outside this process) as it may reach a terminal or a
/// log: control characters (escape sequences, carriage returns, newlines) and the Unicode
/// controls that reorder text are shown as `\u{..}` instead of acting.
pub fn clean_text(s: &str) -> String {
    if !s.chars().any(hostile) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn cleaned(mut r: CheckResult) -> CheckResult {
    r.reason = r.reason.as_deref().map(clean_text);
    r
}

/// A client for `opts`: transport, credentials, cache and insecure registries.
pub(crate) fn client(opts: &Options, platforms: Vec<Platform>) -> Result<Client> {
    let explicit = match &opts.registry_config {
        Some(p) => Some(
            credentials::DockerConfig::load(p)
                .map_err(Error::Registry)?
                .ok_or_else(|| Error::Registry(format!("registry_config {} does not exist", p.display())))?,
        ),
        None => None,
    };
    let concurrency = opts.concurrency.max(1);
    let transport = transport::Transport::new(transport::Options {
        timeout: opts.timeout,
        retries: opts.retries,
        max_retry_wait: opts.max_retry_wait,
        backoff_base: opts.backoff_base,
        pool_size: concurrency,
    })
    .map_err(Error::Registry)?;
    let cache = if opts.use_cache {
        opts.cache_dir
            .clone()
            .or_else(crate::support::dirs::configured_cache_root)
            .map(|d| cache::Cache::new(&d, opts.cache_ttl))
    } else {
        None
    };
    let mut insecure = insecure_from_env();
    insecure.extend(opts.insecure.iter().cloned());
    Ok(Client::new(transport, insecure, platforms, cache, explicit))
}

/// The config (labels, history, platform) of an image in its registry. `opts.platforms[0]`
/// picks the image inside an index (default: this machine's platform).
pub async fn inspect(reference: &str, opts: &Options) -> Result<Inspected> {
    let r = Reference::parse(reference)?;
    let platforms = opts
        .platforms
        .iter()
        .map(|p| Platform::parse(p).map_err(Error::Registry))
        .collect::<Result<Vec<_>>>()?;
    let c = client(opts, platforms)?;
    c.inspect(&r)
        .await
        .map_err(|why| Error::Registry(clean_text(&format!("cannot read {reference}: {why}"))))
}

/// Existence of images in the local engine (Docker socket, then podman); unknown when none answers.
pub async fn check_local(names: &[String], timeout: Duration) -> Result<Vec<CheckResult>> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(cleaned(local::check_local(n, timeout).await));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clean_text_shows_controls_instead_of_running_them() {
        assert_eq!(super::clean_text("plain: HTTP 500"), "plain: HTTP 500");
        assert_eq!(
            super::clean_text("arch \u{1b}[2J\u{1b}]0;pwned\u{7}\r\nx\u{9b}1m \u{202e}txt"),
            "arch \\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{d}\\u{a}x\\u{9b}1m \\u{202e}txt"
        );
    }
}
