//! `WWW-Authenticate` challenges and the docker token protocol.
//!
//! A registry answers `401` with one or more challenges; `Bearer` names a token endpoint (`realm`)
//! with its `service` and the `scope` wanted; `Basic` wants the user's password on every request.

use super::credentials::Credential;
use super::transport::{Request, Transport};
use data_encoding::BASE64;
use reqwest::{Method, Url};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters with lowercased names.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses an RFC 7235 `WWW-Authenticate` value, which may hold several challenges.
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, String> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        if p.done() {
            break;
        }
        let tok = p.token();
        if tok.is_empty() {
            return Err(format!("unexpected character at offset {} of the challenge", p.i));
        }
        p.skip(|b| b == b' ' || b == b'\t');
        if p.peek() == Some(b'=') && !out.is_empty() && !tok.is_empty() {
            // `name=value` of the current challenge.
            let value = p.param_value()?;
            out.last_mut()
                .expect("checked")
                .params
                .insert(tok.to_ascii_lowercase(), value);
        } else {
            out.push(Challenge {
                scheme: tok.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
            // The first parameter follows the scheme after a space.
            p.skip(|b| b == b' ' || b == b'\t');
            let save = p.i;
            let name = p.token();
            p.skip(|b| b == b' ' || b == b'\t');
            if !name.is_empty() && p.peek() == Some(b'=') {
                let value = p.param_value()?;
                out.last_mut()
                    .expect("pushed")
                    .params
                    .insert(name.to_ascii_lowercase(), value);
            } else {
                p.i = save;
            }
        }
    }
    if out.is_empty() {
        return Err("the challenge is empty".into());
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    /// After a parameter's name, at its `=`: the value, quoted or a bare token.
    fn param_value(&mut self) -> Result<String, String> {
        self.i += 1;
        self.skip(|b| b == b' ' || b == b'\t');
        if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            Ok(self.token())
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => return Err("a quoted value of the challenge is not closed".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&v).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    if let Some(b) = self.peek() {
                        v.push(b);
                        self.i += 1;
                    }
                }
                Some(b) => {
                    v.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

/// One (registry, scope)'s token, locked while it is fetched so concurrent checks wait for it.
pub type TokenSlot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// Tokens per (registry, scope): one fetch per key, shared by every concurrent check.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<(String, String), TokenSlot>>,
}

impl TokenCache {
    pub fn slot(&self, registry: &str, scope: &str) -> TokenSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((registry.to_string(), scope.to_string()))
            .or_default()
            .clone()
    }
}

/// The `Authorization` value for Basic credentials.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}").as_bytes()))
}

/// Asks a token endpoint for a token for `scope`, anonymously when `cred` is `None`.
pub async fn fetch_token(
    transport: &Transport,
    challenge: &Challenge,
    scope: &str,
    cred: Option<&Credential>,
) -> Result<Token, String> {
    let realm = challenge
        .param("realm")
        .ok_or("the Bearer challenge names no realm (token endpoint)")?;
    let mut url = Url::parse(realm).map_err(|e| format!("the token realm {realm:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the token realm {realm:?} is not an http(s) URL"));
    }
    let service = challenge.param("service");
    // Credentials go to a token realm only over HTTPS (or plain HTTP on loopback).
    let cred = cred.filter(|_| transport.may_send_credentials(&url));
    let mut req;
    match cred {
        Some(Credential::IdentityToken { token, .. }) => {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("client_id", "imagespec"),
                ("scope", scope),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", form_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            req = Request::new(Method::POST, url.clone());
            req.body = Some(body.into_bytes());
            req.headers
                .push(("content-type", "application/x-www-form-urlencoded".into()));
        }
        _ => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                q.append_pair("scope", scope);
            }
            req = Request::new(Method::GET, url.clone());
            if let Some(Credential::Basic { username, password }) = cred {
                req.auth = Some((origin(&url), basic_header(username, password)));
            }
        }
    }
    req.read_body = true;
    let resp = transport
        .send(&req)
        .await
        .map_err(|f| format!("token endpoint: {}", f.reason()))?;
    let host = url.host_str().unwrap_or("?").to_string();
    match resp.status {
        200 => {}
        401 | 403 if cred.is_some() => {
            return Err(format!("the token endpoint at {host} refused the credentials (HTTP {})", resp.status))
        }
        401 | 403 => {
            return Err(format!(
                "the token endpoint at {host} refused anonymous access (HTTP {}) and no credentials are configured",
                resp.status
            ))
        }
        s => return Err(format!("the token endpoint at {host} answered HTTP {s}")),
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body)
        .map_err(|_| format!("the token endpoint at {host} answered something that is not JSON"))?;
    let value = ["token", "access_token"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|t| t.as_str()).filter(|t| !t.is_empty()))
        .ok_or_else(|| format!("the token endpoint at {host} answered without a token"))?;
    let secs = v
        .get("expires_in")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(60)
        .clamp(1, 86_400);
    // Renew a little early so a token never expires between the cache and the registry.
    let life = Duration::from_secs(secs).saturating_sub(Duration::from_secs(secs.min(10) / 2));
    Ok(Token {
        value: value.to_string(),
        expires: Instant::now() + life,
    })
}

/// scheme://host:port of a URL, the unit credentials are bound to.
pub fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull""#,
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/x:pull"));
    }

    #[test]
    fn parses_several_challenges_and_odd_spacing() {
        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer  realm = "https://a/t" , error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://a/t"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        let c = parse_challenges("BASIC").unwrap();
        assert_eq!(c[0].scheme, "basic");
        assert!(c[0].params.is_empty());
        let c = parse_challenges(r#"Bearer realm="a\"b",scope=x"#).unwrap();
        assert_eq!(c[0].param("realm"), Some("a\"b"));
        assert_eq!(c[0].param("scope"), Some("x"));
    }

    #[test]
    fn rejects_broken_challenges() {
        assert!(parse_challenges("").unwrap_err().contains("empty"));
        assert!(parse_challenges(r#"Bearer realm="open"#)
            .unwrap_err()
            .contains("not closed"));
        assert!(parse_challenges("<html>")
            .unwrap_err()
            .contains("unexpected character"));
    }

    #[test]
    fn basic_header_is_base64_user_colon_password() {
        assert_eq!(basic_header("u", "p"), "Basic dTpw");
    }
}
