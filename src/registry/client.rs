//! The registry client: every request to a registry goes through [`Client::call`], which finds
//! the address that answers (plain HTTP or HTTPS, see `Session`), authenticates as the
//! registry's challenge asks (Basic, or Bearer tokens per scope) with the user's credentials, and
//! tries once more with a fresh token when a `401` says the one it had is stale. What the client
//! asks is in exists.rs and inspect.rs.

use super::auth::{basic_header, fetch_token, origin, parse_challenges, Challenge, TokenCache};
use super::cache::Cache;
use super::credentials::{Credential, DockerConfig};
use super::platform::Platform;
use super::transport::{Failure, Request, Response, Transport};
use crate::oci::MANIFEST_ACCEPT;
use crate::reference::{is_loopback, Reference};
use reqwest::{Method, Url};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// What is known about one registry during one batch.
struct Session {
    /// Where the registry may be: loopback tries plain HTTP then HTTPS; a registry listed as
    /// insecure HTTPS then plain HTTP; any other HTTPS only.
    candidates: Vec<Url>,
    /// The candidate that answered, once one has.
    chosen: Mutex<Option<usize>>,
    /// The auth challenge last seen, so later requests authenticate up front.
    challenge: Mutex<Option<Challenge>>,
    creds: OnceCell<Result<Option<Credential>, String>>,
}

/// The registry client: what every request to a registry goes through (the address that
/// answers, auth challenges, tokens, credentials), with the platforms and the cache of the
/// existence checks it makes.
pub struct Client {
    pub transport: Transport,
    pub insecure: Vec<String>,
    pub platforms: Vec<Platform>,
    pub cache: Option<Cache>,
    pub explicit_config: Option<DockerConfig>,
    default_config: OnceCell<Result<Option<DockerConfig>, String>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    tokens: TokenCache,
}

/// One request of [`Client::call`].
pub(crate) struct Call<'a> {
    pub method: Method,
    /// A path on the registry, or an absolute URL on it (an upload's `Location`).
    pub path: &'a str,
    /// What the token must allow on the repository: `pull`, or `pull,push`.
    pub actions: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub read_body: bool,
    pub max_body: Option<usize>,
    /// A `200` answer's body goes to this file (see [`Request::download`]).
    pub download: Option<&'a std::path::Path>,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Call {
            method: Method::GET,
            path: "/v2/",
            actions: "pull",
            headers: Vec::new(),
            body: None,
            read_body: false,
            max_body: None,
            download: None,
        }
    }
}

pub(crate) enum Answer {
    Resp(Response),
    Unknown(String),
}

impl Client {
    pub fn new(
        transport: Transport,
        insecure: Vec<String>,
        platforms: Vec<Platform>,
        cache: Option<Cache>,
        explicit_config: Option<DockerConfig>,
    ) -> Self {
        Client {
            transport,
            insecure,
            platforms,
            cache,
            explicit_config,
            default_config: OnceCell::new(),
            sessions: Mutex::default(),
            tokens: TokenCache::default(),
        }
    }

    pub(super) async fn manifest(&self, r: &Reference, method: Method) -> Answer {
        let path = format!("/v2/{}/manifests/{}", r.repository, r.manifest_ref());
        let read = method == Method::GET;
        self.request(r, method, &path, read).await
    }

    /// One authenticated request; a 401 gets one more try with a fresh token for the scope the
    /// registry's challenge names, then it is the answer.
    pub(super) async fn request(&self, r: &Reference, method: Method, path: &str, read_body: bool) -> Answer {
        self.call(
            r,
            &Call {
                method,
                path,
                read_body,
                ..Call::default()
            },
        )
        .await
    }

    /// [`Client::request`] with a body, headers, a body limit and the actions wanted on the
    /// repository (`pull` unless said).
    pub(crate) async fn call(&self, r: &Reference, c: &Call<'_>) -> Answer {
        let session = self.session(r);
        let scope = format!("repository:{}:{}", r.repository, c.actions);
        let mut stale: Option<String> = None;
        for attempt in 0..2 {
            let challenge = session
                .challenge
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let auth = match self
                .authorization(r, &session, challenge.as_ref(), &scope, stale.as_deref())
                .await
            {
                Ok(a) => a,
                Err(e) => return Answer::Unknown(e),
            };
            let auth = auth.map(|(_, v)| v);
            stale = auth.clone();
            let (resp, own) = match self.send_to(&session, c, auth).await {
                Ok(answered) => answered,
                Err(reason) => return Answer::Unknown(reason),
            };
            if resp.status != 401 {
                return Answer::Resp(resp);
            }
            // A challenge names where credentials go (the token realm): only the registry may
            // say that, not a host it redirected to (blob storage, or anyone a redirect names).
            if let Some(elsewhere) = Self::foreign(&own, &resp) {
                return Answer::Unknown(format!(
                    "auth refused: {} redirected to {elsewhere}, which asked for authentication \
                     (HTTP 401); imagespec authenticates only with the registry's own address",
                    r.registry
                ));
            }
            let fresh = resp
                .header("www-authenticate")
                .and_then(|h| parse_challenges(h).ok())
                .and_then(pick);
            match fresh {
                Some(c) if attempt == 0 => {
                    *session.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(c)
                }
                _ => return Answer::Resp(resp),
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The origin that answered, when it is not `own`, the registry's (scheme, host, port).
    fn foreign(own: &Url, resp: &Response) -> Option<String> {
        (origin(own) != resp.origin).then(|| resp.origin.clone())
    }

    /// Sends to the registry's chosen address, or tries its candidates in order until one answers
    /// like a registry (no connection failure, no `400` from a TLS port spoken to in plain HTTP).
    async fn send_to(
        &self,
        session: &Session,
        c: &Call<'_>,
        auth: Option<String>,
    ) -> Result<(Response, Url), String> {
        let path = c.path;
        let chosen = *session.chosen.lock().unwrap_or_else(|e| e.into_inner());
        let order: Vec<usize> = match chosen {
            Some(i) => vec![i],
            None => (0..session.candidates.len()).collect(),
        };
        let mut tried: Vec<(usize, Result<Response, Failure>)> = Vec::new();
        for i in order {
            let base = &session.candidates[i];
            let url = base
                .join(path)
                .map_err(|e| format!("cannot build the URL for {path}: {e}"))?;
            let mut req = Request::new(c.method.clone(), url);
            req.headers.push(("accept", MANIFEST_ACCEPT.to_string()));
            req.headers.extend(c.headers.iter().cloned());
            req.body = c.body.clone();
            req.read_body = c.read_body;
            if let Some(max) = c.max_body {
                req.max_body = max;
            }
            req.download = c.download.map(std::path::Path::to_path_buf);
            req.auth = auth.clone().map(|v| (origin(base), v));
            let result = self.transport.send(&req).await;
            // Plain HTTP to a TLS port gets a 400; TLS to a plain-HTTP port fails the handshake.
            // Anything else is the registry's answer on the right port and scheme.
            let wrong_scheme = match (&result, base.scheme()) {
                (Ok(resp), "http") => resp.status == 400,
                (Err(Failure::Unreachable(_) | Failure::Protocol(_)), "https") => true,
                _ => false,
            };
            let settled =
                chosen.is_some() || !wrong_scheme || i + 1 == session.candidates.len() && tried.is_empty();
            if settled {
                if result.is_ok() {
                    *session.chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                }
                return result.map(|r| (r, base.clone())).map_err(|f| f.reason());
            }
            tried.push((i, result));
        }
        if tried.len() == 1 {
            let (i, only) = tried.remove(0);
            return only
                .map(|r| (r, session.candidates[i].clone()))
                .map_err(|f| f.reason());
        }
        // No candidate answered like a registry: say what each did.
        let prefix = tried
            .iter()
            .rev()
            .find_map(|(_, r)| r.as_ref().err().map(kind))
            .unwrap_or("unexpected answer");
        let parts: Vec<String> = tried
            .iter()
            .map(|(i, r)| {
                let scheme = session.candidates[*i].scheme().to_ascii_uppercase();
                match r {
                    Ok(resp) => format!("{scheme}: answered HTTP {}", resp.status),
                    Err(f) => format!("{scheme}: {}", f.detail()),
                }
            })
            .collect();
        Err(format!("{prefix} ({})", parts.join("; ")))
    }

    /// The `Authorization` value for one request, if any.
    async fn authorization(
        &self,
        r: &Reference,
        session: &Session,
        challenge: Option<&Challenge>,
        scope: &str,
        stale: Option<&str>,
    ) -> Result<Option<(String, String)>, String> {
        let Some(ch) = challenge else { return Ok(None) };
        let cred = session
            .creds
            .get_or_init(|| self.credentials(&r.registry))
            .await
            .clone();
        let cred = cred.map_err(|e| format!("auth refused: credentials for {}: {e}", r.registry))?;
        match ch.scheme.as_str() {
            "basic" => match cred {
                Some(Credential::Basic { username, password }) => {
                    Ok(Some((String::new(), basic_header(&username, &password))))
                }
                Some(Credential::IdentityToken { .. }) => Err(format!(
                    "auth refused: {} asks for Basic auth but its configured credential is an identity token",
                    r.registry
                )),
                None => Err(format!(
                    "auth refused: {} requires credentials and none are configured for it",
                    r.registry
                )),
            },
            "bearer" => {
                // The challenge's scope when it names one for this repository (a registry may want
                // more than pull), else pull on this repository.
                let scope = ch
                    .param("scope")
                    .filter(|s| s.starts_with(&format!("repository:{}:", r.repository)))
                    .filter(|s| !scope.ends_with("push") || s.contains("push"))
                    .unwrap_or(scope);
                let slot = self.tokens.slot(&r.registry, scope);
                let mut guard = slot.lock().await;
                if let Some(t) = guard.as_ref() {
                    let value = format!("Bearer {}", t.value);
                    if t.expires > std::time::Instant::now() && stale != Some(value.as_str()) {
                        return Ok(Some((String::new(), value)));
                    }
                }
                let t = fetch_token(&self.transport, ch, scope, cred.as_ref())
                    .await
                    .map_err(|e| format!("auth refused: {e}"))?;
                let value = format!("Bearer {}", t.value);
                *guard = Some(t);
                Ok(Some((String::new(), value)))
            }
            other => Err(format!(
                "auth refused: {} asks for unsupported auth scheme {other:?}",
                r.registry
            )),
        }
    }

    async fn credentials(&self, registry: &str) -> Result<Option<Credential>, String> {
        let timeout = self.transport.timeout();
        if let Some(c) = &self.explicit_config {
            if let Some(found) = c.lookup(registry, timeout).await? {
                return Ok(Some(found));
            }
        }
        let default = self
            .default_config
            .get_or_init(|| async {
                match DockerConfig::default_path() {
                    Some(p) => DockerConfig::load(&p),
                    None => Ok(None),
                }
            })
            .await;
        match default {
            Ok(Some(c)) => c.lookup(registry, timeout).await,
            Ok(None) => Ok(None),
            Err(e) => Err(e.clone()),
        }
    }

    fn session(&self, r: &Reference) -> Arc<Session> {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(r.registry.clone())
            .or_insert_with(|| {
                let host = r.api_host();
                let url = |scheme: &str| Url::parse(&format!("{scheme}://{host}/")).ok();
                let candidates: Vec<Url> = if is_loopback(r.hostname()) {
                    [url("http"), url("https")].into_iter().flatten().collect()
                } else if self.allows_http(r) {
                    [url("https"), url("http")].into_iter().flatten().collect()
                } else {
                    url("https").into_iter().collect()
                };
                Arc::new(Session {
                    candidates,
                    chosen: Mutex::new(None),
                    challenge: Mutex::new(None),
                    creds: OnceCell::new(),
                })
            })
            .clone()
    }

    fn allows_http(&self, r: &Reference) -> bool {
        is_loopback(r.hostname())
            || self.insecure.iter().any(|i| {
                let i = crate::reference::normalise_registry(i.trim());
                i == r.registry || i == r.hostname()
            })
    }
}

fn kind(f: &Failure) -> &'static str {
    match f {
        Failure::Timeout(_) => "timeout",
        Failure::Unreachable(_) => "registry unreachable",
        Failure::Reset(_) => "connection reset",
        Failure::Protocol(_) | Failure::Redirect(_) => "unexpected answer",
        Failure::Local(_) => "local failure",
    }
}

/// Bearer when offered, else Basic.
fn pick(all: Vec<Challenge>) -> Option<Challenge> {
    let mut basic = None;
    for c in all {
        match c.scheme.as_str() {
            "bearer" => return Some(c),
            "basic" => basic = basic.or(Some(c)),
            _ => {}
        }
    }
    basic
}
