//! Image references, parsed and normalised the way docker does it.
//!
//! `pandas` is `docker.io/library/pandas:latest`; `index.docker.io/x/y` is `docker.io/x/y`; a first
//! component with a `.` or a `:` or equal to `localhost` is a registry host (with an optional
//! port); the rest is a path of lowercase components, then an optional `:tag` and `@digest`.
//!
//! The grammar's pieces ([`is_host`], [`is_port`], [`is_component`], [`is_tag`], [`split_name`])
//! are public so that the spec's checks, which word their own messages, use these rules and no
//! copy of them.

use std::fmt;

/// The registry that short names and `index.docker.io` mean.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

const MAX_NAME_LEN: usize = 255;
/// Longest tag the distribution spec allows.
pub const MAX_TAG_LEN: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry as docker names it (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub registry: String,
    /// The repository path (`library/pandas`, `team/sub/image`).
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `algorithm:hex`, when the reference pins a digest.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {message}")]
pub struct ReferenceError {
    pub input: String,
    pub message: String,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let err = |message: String| ReferenceError {
            input: redact(input),
            message,
        };
        if input.is_empty() {
            return Err(err("it is empty".into()));
        }
        if input.trim() != input || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it contains whitespace or control characters".into()));
        }
        if input.contains("://") {
            return Err(err(
                "a reference has no scheme: write host[:port]/path[:tag], not a URL".into(),
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(parse_digest(d).map_err(err)?)),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(err)?;
        }
        if name.is_empty() {
            return Err(err("the repository name is missing".into()));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err(format!(
                "the repository name is longer than {MAX_NAME_LEN} characters"
            )));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if is_registry(first) => (first.to_string(), path.to_string()),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        check_registry(&registry).map_err(err)?;
        let registry = normalise_registry(&registry);
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        for component in repository.split('/') {
            check_component(component).map_err(err)?;
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// `host[:port]` that serves the registry API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The host without port or brackets (`localhost`, `::1`, `10.0.0.1`).
    pub fn hostname(&self) -> &str {
        hostname_of(&self.registry)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The input as an error may show it: a `user:password@` mistakenly written before the host is hidden.
fn redact(input: &str) -> String {
    let head = input.split('/').next().unwrap_or(input);
    match head.rfind('@') {
        Some(i) => format!("***@{}", &input[i + 1..]),
        None => input.to_string(),
    }
}

/// `host` of `host:port`, `[v6]:port` or `host`.
pub fn hostname_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

/// The registry names docker treats as one (`index.docker.io`, `registry-1.docker.io`) made one.
pub fn normalise_registry(registry: &str) -> String {
    let lower = registry.to_ascii_lowercase();
    match lower.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => lower,
    }
}

/// Whether a host is loopback (`localhost`, `127.0.0.0/8`, `::1`), where plain HTTP is allowed.
/// Names are compared, never resolved: `x.localhost` and `127.x.example` are names a resolver
/// may send anywhere, so they are not loopback.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The parts of a `name` written as an image reference: `[registry/]path[:tag]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameParts<'a> {
    pub registry: Option<&'a str>,
    pub path: &'a str,
    pub tag: Option<&'a str>,
}

/// Splits like docker does: the tag follows the last ':' after the last '/'; the first part is a
/// registry when more parts follow and it has a '.' or a ':' or is `localhost`.
pub fn split_name(name: &str) -> NameParts<'_> {
    let name = name.split('@').next().unwrap_or_default();
    let after_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (rest, tag) = match name[after_slash..].find(':') {
        Some(i) => (&name[..after_slash + i], Some(&name[after_slash + i + 1..])),
        None => (name, None),
    };
    match rest.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => NameParts {
            registry: Some(first),
            path,
            tag,
        },
        _ => NameParts {
            registry: None,
            path: rest,
            tag,
        },
    }
}

fn is_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("the IPv6 registry address lacks its closing ']'")?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{h}' is not an IPv6 address"));
        }
        match after {
            "" => (h, None),
            p if p.starts_with(':') => (h, Some(&p[1..])),
            _ => return Err(format!("unexpected '{after}' after the IPv6 address")),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(p) = port {
        if !is_port(p) {
            return Err(format!("the registry port '{p}' is not a number from 1 to 65535"));
        }
    }
    if !registry.starts_with('[') && !is_host(host) {
        return Err(format!("'{host}' is not a valid registry host name"));
    }
    Ok(())
}

/// A registry host without its port: DNS labels of letters, digits and '-' (not first or last),
/// or an IPv6 address in brackets.
pub fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A registry port: digits only, a number from 1 to 65535.
pub fn is_port(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n != 0)
}

fn check_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("the repository path has an empty component ('//' or a trailing '/')".into());
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name must be lowercase ('{c}')"));
    }
    if !is_component(c) {
        return Err(format!(
            "'{c}' is not a valid path component (lowercase letters, digits, and . _ __ - between them)"
        ));
    }
    Ok(())
}

/// One repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (distribution spec).
pub fn is_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let s = &b[sep..i];
        let ok = s == b"." || s == b"_" || s == b"__" || s.iter().all(|&x| x == b'-');
        if !ok || i == b.len() {
            return false;
        }
    }
}

fn check_tag(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("the tag after ':' is empty".into());
    }
    if t.len() > MAX_TAG_LEN {
        return Err(format!("the tag is longer than {MAX_TAG_LEN} characters"));
    }
    if !is_tag(t) {
        return Err(format!(
            "'{t}' is not a valid tag (letters, digits, _ . -, not starting with . or -)"
        ));
    }
    Ok(())
}

/// A tag: a letter, digit or '_', then letters, digits, '_', '.' or '-', at most
/// [`MAX_TAG_LEN`] in all.
pub fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn parse_digest(d: &str) -> Result<String, String> {
    let (algo, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest '{d}' is not algorithm:hex"))?;
    let expected = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "digest algorithm '{algo}' is not supported (sha256, sha512)"
            ))
        }
    };
    if hex.len() != expected
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "digest '{d}' must have {expected} lowercase hex characters after '{algo}:'"
        ));
    }
    Ok(d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(p("pandas").to_string(), "docker.io/library/pandas:latest");
        assert_eq!(p("pandas:1.0").to_string(), "docker.io/library/pandas:1.0");
        assert_eq!(p("user/img").to_string(), "docker.io/user/img:latest");
        assert_eq!(
            p("index.docker.io/user/img:t").to_string(),
            "docker.io/user/img:t"
        );
        assert_eq!(
            p("docker.io/ubuntu").to_string(),
            "docker.io/library/ubuntu:latest"
        );
        assert_eq!(p("localhost/img").to_string(), "localhost/img:latest");
        assert_eq!(p("localhost:5000/a/b/c:v1").repository, "a/b/c");
        assert_eq!(p("localhost:5000/a/b/c:v1").registry, "localhost:5000");
        assert_eq!(p("ghcr.io/org/team/img:x").repository, "org/team/img");
        assert_eq!(p("[::1]:5000/img:t").registry, "[::1]:5000");
        assert_eq!(p("[::1]:5000/img:t").hostname(), "::1");
        assert_eq!(p("Example.COM:443/img").registry, "example.com:443");
        assert_eq!(p("pandas").api_host(), "registry-1.docker.io");
        assert_eq!(p("pandas").manifest_ref(), "latest");
    }

    #[test]
    fn digests_and_tags() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("localhost:5000/img@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), d);
        let r = p(&format!("localhost:5000/img:v1@{d}"));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("localhost:5000/img:v1@{d}"));
    }

    #[test]
    fn rejects_malformed_references_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("UPPER/img", "lowercase"),
            ("localhost:5000/Img", "lowercase"),
            ("img:", "tag after ':' is empty"),
            ("img:-bad", "not a valid tag"),
            ("img@sha256:abc", "64 lowercase hex"),
            ("img@md5:abc", "not supported"),
            ("img@nodigest", "algorithm:hex"),
            ("localhost:0/img", "port '0'"),
            ("localhost:99999/img", "port '99999'"),
            ("host:abc/img", "port 'abc'"),
            ("a//b", "empty component"),
            ("a/b/", "empty component"),
            ("a b", "whitespace"),
            ("https://localhost:5000/img", "no scheme"),
            ("img..x", "not a valid path component"),
            ("-img", "not a valid path component"),
            ("[::1/img", "closing ']'"),
            ("[zz]:5000/img", "not an IPv6 address"),
            ("bad_host.com/img", "not a valid registry host"),
            (":tag", "repository name is missing"),
        ];
        for (input, needle) in cases {
            let e = Reference::parse(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input:?}: {e}");
        }
        let e = Reference::parse("user:s3cret@localhost:5000/img")
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("s3cret") && e.contains("***@localhost:5000/img"),
            "{e}"
        );
        let long = format!("localhost:5000/{}", "a".repeat(300));
        assert!(Reference::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than 255"));
        let long_tag = format!("img:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag)
            .unwrap_err()
            .to_string()
            .contains("longer than 128"));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "example.com",
            "localhost.example.com",
            "::2",
            "a.localhost",
            "127.example.com",
            "127.0.0.1.example.com",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
