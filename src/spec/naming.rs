//! The fields that name an image: `name`, `registry`, `tag_format` and a `base_image` given as a
//! name. `registry` is held to flytekit's rule where flytekit holds it (when the spec is made, in
//! its words); every name is held to the reference grammar of [`crate::reference`], with messages
//! that name the field.

use super::checks::{check_line, err};
use crate::error::{Error, Result};
use crate::reference::{self, MAX_TAG_LEN};

/// `name` as flytekit lets it be written: `[registry/]path[:tag]`. A registry there stands for
/// `registry`, a tag for the computed one; with the field that says the same thing set too, the
/// image cannot be named.
pub(super) fn check_name(name: &str, registry: Option<&str>, tag_format: Option<&str>) -> Result<()> {
    check_line("name", name)?;
    if let Some(i) = name.find('@') {
        return err(
            "name",
            format!(
                "{name:?} contains a digest ({:?}); an image's digest is known only once it is built: give \
                 name[:tag]",
                &name[i..]
            ),
        );
    }
    let parts = reference::split_name(name);
    if let Some(host) = parts.registry {
        check_registry(host).map_err(|e| Error::spec("name", e.to_string()))?;
        if let Some(r) = registry {
            return err(
                "name",
                format!(
                    "{name:?} carries a registry ({host}) and registry is set too ({r:?}): keep one (the name \
                     would be {r}/{name}, which is no image reference)"
                ),
            );
        }
    }
    for part in parts.path.split('/') {
        if part.is_empty() {
            return err(
                "name",
                format!("{name:?} has an empty path part; remove the extra '/'"),
            );
        }
        if !reference::is_component(part) {
            return err(
                "name",
                format!(
                    "{name:?}: {part:?} is not a valid repository name part; use lowercase letters, digits \
                     and single '.', '_', '__' or '-' separators between them"
                ),
            );
        }
    }
    if let Some(tag) = parts.tag {
        if !reference::is_tag(tag) {
            return err(
                "name",
                format!(
                    "{name:?}: {tag:?} is not a valid tag: letters, digits, '_', '.', '-', not starting with '.' or \
                     '-', at most {MAX_TAG_LEN} characters"
                ),
            );
        }
        if let Some(fmt) = tag_format {
            return err(
                "name",
                format!(
                    "{name:?} carries a tag ({tag}) and tag_format is set too ({fmt:?}): both give the image its \
                     tag; keep one"
                ),
            );
        }
    }
    if name.len() > 255 {
        return err("name", "is longer than 255 characters");
    }
    Ok(())
}

/// flytekit's rule for `registry` (flytekit/image_spec/image_spec.py:564-570 at v1.16.24), applied when the spec
/// is made, after lowercasing: `^(localhost:\d{1,5}|([a-z\d._-]+)(:\d{1,5})?)(/[\w.-]+)*$`.
pub(super) fn check_registry_words(registry: &str) -> Result<()> {
    // Python's `$` also matches before one final newline.
    let r = registry.strip_suffix('\n').unwrap_or(registry);
    let (host, path) = match r.find('/') {
        Some(i) => (&r[..i], &r[i..]),
        None => (r, ""),
    };
    let port_ok = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let host_ok = match host.split_once(':') {
        Some((h, port)) => {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && port_ok(port)
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        }
    };
    let path_ok = path.is_empty()
        || path[1..].split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
        });
    if host_ok && path_ok {
        return Ok(());
    }
    Err(Error::invalid(
        "registry",
        format!(
            "Invalid container registry name: '{registry}'.\n Expected formats:\n- 'localhost:30000' (for local \
             registries)\n- 'ghcr.io/username' (for GitHub Container Registry)\n- 'docker.io/username' (for docker \
             hub)\n"
        ),
    ))
}

pub(super) fn check_registry(registry: &str) -> Result<String> {
    check_line("registry", registry)?;
    if registry.contains("://") {
        return err(
            "registry",
            format!("{registry:?} has a URL scheme; give host[:port][/namespace] (e.g. 'ghcr.io/org')"),
        );
    }
    let lowered = registry.trim_end_matches('/').to_lowercase();
    let mut parts = lowered.split('/');
    let first = parts.next().unwrap_or_default();
    // Like docker: the first part is a host when it has a '.', a ':' or is localhost.
    let is_domain = first.contains(['.', ':']) || first == "localhost";
    let rest: Vec<&str> = if is_domain {
        parts.collect()
    } else {
        lowered.split('/').collect()
    };
    if is_domain {
        let (host, port) = match first.rfind(':') {
            Some(i) if !first[i..].contains(']') => (&first[..i], Some(&first[i + 1..])),
            _ => (first, None),
        };
        if !reference::is_host(host) {
            return err(
                "registry",
                format!("{registry:?}: {host:?} is not a valid host name"),
            );
        }
        if let Some(port) = port {
            if !reference::is_port(port) {
                return err(
                    "registry",
                    format!("{registry:?}: port {port:?} is not a number from 1 to 65535"),
                );
            }
        }
    }
    for part in rest {
        if part.is_empty() {
            return err(
                "registry",
                format!("{registry:?} has an empty path part; remove the extra '/'"),
            );
        }
        if !reference::is_component(part) {
            return err(
                "registry",
                format!(
                    "{registry:?}: {part:?} is not a valid namespace; use lowercase letters, digits and \
                     single '.', '_', '__' or '-' separators"
                ),
            );
        }
    }
    Ok(lowered)
}

/// flytekit formats the tag with `tag_format.format(spec_hash=...)`: `{spec_hash}` is the only
/// placeholder; without it the tag is fixed (the image is not rebuilt when the spec changes).
pub(super) fn check_tag_format(t: &str) -> Result<String> {
    check_line("tag_format", t)?;
    let sample = t.replace("{spec_hash}", &"a".repeat(super::HASH_CHARS));
    if sample.contains(['{', '}']) {
        return err(
            "tag_format",
            format!("{t:?}: the only placeholder allowed is '{{spec_hash}}'"),
        );
    }
    if !reference::is_tag(&sample) {
        return err(
            "tag_format",
            format!(
                "{t:?} does not give a valid tag: letters, digits, '_', '.', '-', not starting with '.' or '-', \
                 at most {MAX_TAG_LEN} characters with the {}-character hash",
                super::HASH_CHARS
            ),
        );
    }
    Ok(t.to_owned())
}

pub(super) fn check_base_name(n: &str) -> Result<String> {
    check_line("base_image", n)?;
    if n.chars().any(|c| c.is_whitespace() || c.is_control()) || n.starts_with(['/', ':', '@']) {
        return err(
            "base_image",
            format!("{n:?} is not an image reference like 'python:3.11-slim'"),
        );
    }
    Ok(n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    /// The spec's checks and the reference parser hold a name to one grammar.
    #[test]
    fn names_are_held_to_the_reference_grammar() {
        for ok in [
            "img",
            "org/img",
            "localhost:5000/img:v1",
            "ghcr.io/org/a.b__c--d:1.0_x",
            "[::1]:5000/img",
        ] {
            check_name(ok, None, None).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            Reference::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "a..b",
            "-img",
            "img-",
            "a___b",
            "img:.tag",
            "localhost:0/img",
            "localhost:+5000/img",
            "bad_host.com/img",
            "[zz]:5000/img",
        ] {
            assert!(check_name(bad, None, None).is_err(), "{bad:?}");
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }
}
