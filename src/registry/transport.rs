//! HTTP for the registry client: one pooled keep-alive client (rustls, system roots plus
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`), timeouts, retries and a redirect rule that binds credentials
//! to the origin they belong to.
//!
//! Redirects are followed here rather than by reqwest so that the rule is explicit: the
//! `Authorization` header goes only to the scheme, host and port it was made for, and HTTPS is
//! never given up for plain HTTP on the way.

use super::tls::tls_config;
use crate::reference::is_loopback;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use std::time::Duration;

/// The largest body read (manifests are limited to 4 MiB by the distribution spec).
const MAX_BODY: usize = 4 << 20;
const MAX_REDIRECTS: usize = 5;

pub struct Options {
    pub timeout: Duration,
    /// Attempts after the first, for answers and faults that are safe to retry.
    pub retries: u32,
    /// The longest `Retry-After` honoured; a registry asking for more is reported, not waited for.
    pub max_retry_wait: Duration,
    pub backoff_base: Duration,
    pub pool_size: usize,
}

pub struct Transport {
    client: reqwest::Client,
    opts: Options,
}

pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    /// The origin the credentials belong to, and the `Authorization` value.
    pub auth: Option<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub read_body: bool,
    /// The largest body read (default: 4 MiB, the manifest limit).
    pub max_body: usize,
    /// Where a `200` answer's body goes instead of memory (a blob): written as it arrives, with
    /// the timeout applying to each read rather than to the whole body, and hashed on the way.
    pub download: Option<std::path::PathBuf>,
}

impl Request {
    pub fn new(method: Method, url: Url) -> Self {
        Request {
            method,
            url,
            headers: Vec::new(),
            auth: None,
            body: None,
            read_body: false,
            max_body: MAX_BODY,
            download: None,
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The origin (`scheme://host:port`) that answered: the request's, or where its redirects
    /// ended.
    pub origin: String,
    /// For a [`Request::download`] that was written: the `sha256:` of what arrived and its size.
    pub downloaded: Option<(String, u64)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body's media type: the `Content-Type` without its parameters, lowercase.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }
}

/// Why a request got no HTTP answer. The texts name hosts and paths, never credentials.
#[derive(Debug, Clone)]
pub enum Failure {
    Timeout(String),
    Unreachable(String),
    Reset(String),
    Protocol(String),
    Redirect(String),
    /// This machine failed (a download's file could not be written), not the registry.
    Local(String),
}

impl Failure {
    pub fn reason(&self) -> String {
        match self {
            Failure::Timeout(s) => format!("timeout: {s}"),
            Failure::Unreachable(s) => format!("registry unreachable: {s}"),
            Failure::Reset(s) => format!("connection reset: {s}"),
            Failure::Protocol(s) => format!("unexpected answer: {s}"),
            Failure::Redirect(s) => format!("unexpected answer: {s}"),
            Failure::Local(s) => s.clone(),
        }
    }

    /// The text without the kind.
    pub fn detail(&self) -> &str {
        match self {
            Failure::Timeout(s)
            | Failure::Unreachable(s)
            | Failure::Reset(s)
            | Failure::Protocol(s)
            | Failure::Redirect(s)
            | Failure::Local(s) => s,
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, Failure::Reset(_))
    }
}

impl Transport {
    pub fn new(opts: Options) -> Result<Self, String> {
        let b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.timeout)
            .timeout(opts.timeout)
            .pool_max_idle_per_host(opts.pool_size)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .http1_only()
            .no_proxy()
            .user_agent(concat!("imagespec/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(tls_config()?);
        let client = b
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Transport { client, opts })
    }

    pub fn timeout(&self) -> Duration {
        self.opts.timeout
    }

    /// Whether credentials may travel to `url`: HTTPS, or plain HTTP to a loopback host.
    pub fn may_send_credentials(&self, url: &Url) -> bool {
        url.scheme() == "https" || url.host_str().is_some_and(is_loopback)
    }

    /// Sends with retries: 429 (honouring `Retry-After`), 502/503/504 and connection resets are
    /// retried with jittered exponential backoff; everything else is returned as it came.
    pub async fn send(&self, req: &Request) -> Result<Response, Failure> {
        let mut attempt = 0;
        loop {
            let result = self.follow(req).await;
            let wait = match &result {
                Ok(r) if matches!(r.status, 429 | 502 | 503 | 504) && attempt < self.opts.retries => {
                    match r.header("retry-after").and_then(parse_retry_after) {
                        Some(w) if w > self.opts.max_retry_wait => return result,
                        Some(w) => w,
                        None => self.backoff(attempt),
                    }
                }
                Err(f) if f.retryable() && attempt < self.opts.retries => self.backoff(attempt),
                _ => return result,
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .opts
            .backoff_base
            .saturating_mul(1 << attempt.min(10))
            .min(Duration::from_secs(5));
        // "Equal jitter": half fixed, half random, so concurrent clients spread out.
        full / 2 + full.mul_f64(fastrand::f64() / 2.0)
    }

    async fn follow(&self, req: &Request) -> Result<Response, Failure> {
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = self.client.request(method.clone(), url.clone());
            for (k, v) in &req.headers {
                rb = rb.header(*k, v);
            }
            if let Some((origin, value)) = &req.auth {
                if *origin == super::auth::origin(&url) && self.may_send_credentials(&url) {
                    rb = rb.header("authorization", value);
                }
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let downloading = req.download.is_some() && method != Method::HEAD;
            let resp = if downloading {
                // The client's whole-request deadline would cut a large blob on a slow link: the
                // headers get the timeout here, and each read of the body its own.
                let rb = rb.timeout(DOWNLOAD_DEADLINE);
                match tokio::time::timeout(self.opts.timeout, rb.send()).await {
                    Ok(r) => r.map_err(|e| classify(&e, &url))?,
                    Err(_) => {
                        return Err(Failure::Timeout(format!(
                            "no answer from {} in time",
                            where_(&url)
                        )))
                    }
                }
            } else {
                rb.send().await.map_err(|e| classify(&e, &url))?
            };
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let loc = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        Failure::Redirect(format!("HTTP {status} without a Location from {}", where_(&url)))
                    })?;
                let next = url.join(loc).map_err(|_| {
                    Failure::Redirect(format!(
                        "HTTP {status} to an invalid Location from {}",
                        where_(&url)
                    ))
                })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(Failure::Redirect(format!("redirect to a {} URL", next.scheme())));
                }
                // Not even to a loopback host: any local user may listen on a loopback port, and
                // what comes from there would stand for what the HTTPS registry vouches for.
                if url.scheme() == "https" && next.scheme() == "http" {
                    return Err(Failure::Redirect(format!(
                        "{} redirected from HTTPS to plain HTTP at {}, which is refused",
                        where_(&url),
                        where_(&next)
                    )));
                }
                if status == 303 && method != Method::HEAD {
                    method = Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            let headers = resp.headers().clone();
            let mut out = Vec::new();
            let mut downloaded = None;
            match &req.download {
                Some(path) if downloading && status == 200 => {
                    downloaded = Some(self.download(resp, path, &url).await?);
                }
                // Anything but the blob itself (an error document) is small and read whole.
                Some(_) if downloading => {
                    out = read_whole(resp, req.max_body.min(MAX_BODY), &url).await?;
                }
                _ if req.read_body && method != Method::HEAD => {
                    out = read_whole(resp, req.max_body, &url).await?;
                }
                _ => {}
            }
            return Ok(Response {
                status,
                headers,
                body: out,
                origin: super::auth::origin(&url),
                downloaded,
            });
        }
        Err(Failure::Redirect(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            where_(&req.url)
        )))
    }

    /// Writes a body to `path` (created or truncated, 0600) as it arrives, each read given the
    /// timeout; returns the `sha256:` of what was written and its size.
    async fn download(
        &self,
        mut resp: reqwest::Response,
        path: &std::path::Path,
        url: &Url,
    ) -> Result<(String, u64), Failure> {
        use sha2::{Digest, Sha256};
        use tokio::io::AsyncWriteExt;
        let local = |what: &str, e: std::io::Error| {
            Failure::Local(if e.raw_os_error() == Some(28) {
                crate::support::fs::no_space(path)
            } else {
                format!("cannot {what} {}: {e}", path.display())
            })
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .await
            .map_err(|e| local("create", e))?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        loop {
            let chunk = match tokio::time::timeout(self.opts.timeout, resp.chunk()).await {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(classify(&e, url)),
                Err(_) => {
                    return Err(Failure::Timeout(format!(
                        "{} sent nothing for {} s after {size} bytes",
                        where_(url),
                        self.opts.timeout.as_secs_f64()
                    )))
                }
            };
            hash.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| local("write", e))?;
        }
        file.flush().await.map_err(|e| local("write", e))?;
        let digest = format!("sha256:{}", data_encoding::HEXLOWER.encode(&hash.finalize()));
        Ok((digest, size))
    }
}

/// How long a download may take in all: effectively unbounded, as long as every read is in time.
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(7 * 86_400);

/// A body read into memory, at most `max` bytes, within the request's deadline.
async fn read_whole(mut resp: reqwest::Response, max: usize, url: &Url) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > max {
                    return Err(Failure::Protocol(format!(
                        "{} sent more than {} MiB",
                        where_(url),
                        max >> 20
                    )));
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(classify(&e, url)),
        }
    }
}

/// `host:port/path` of a URL for messages (no query: token URLs carry scopes, nothing secret, but
/// signed storage URLs may).
fn where_(url: &Url) -> String {
    format!(
        "{}{}",
        url.host_str().unwrap_or("?"),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

fn classify(e: &reqwest::Error, url: &Url) -> Failure {
    let at = where_(url);
    if e.is_timeout() {
        return Failure::Timeout(format!("no answer from {at} in time"));
    }
    // Walk the causes for what a user can act on.
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut detail = String::new();
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_parse() && h.to_string().contains("too large") {
                return Failure::Protocol(format!("{at} sent headers that are too large"));
            }
            if h.is_parse() || h.is_parse_status() {
                return Failure::Protocol(format!("{at} sent a malformed HTTP answer ({h})"));
            }
            if h.is_incomplete_message() {
                return Failure::Reset(format!("{at} closed the connection mid-answer"));
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return Failure::Unreachable(format!("{at} refused the connection")),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return Failure::Reset(format!("{at}: {io}"))
                }
                TimedOut => return Failure::Timeout(format!("no answer from {at} in time")),
                _ => {}
            }
        }
        detail = s.to_string();
        src = s.source();
    }
    if e.is_connect() {
        return Failure::Unreachable(format!("cannot connect to {at}: {detail}"));
    }
    Failure::Protocol(format!("{at}: {detail}"))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    if let Ok(f) = v.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then(|| Duration::from_secs_f64(f.min(1e6)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&later).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
