//! The checks of single field values, each naming the field in its message: text without NUL
//! bytes or line breaks, paths, versions, the copy mode, `env`, apt packages, URLs, platforms,
//! `copy` entries, `python_exec`, and the maps (`builder_options`, `builder_config`).

use super::CopyMode;
use crate::error::{Error, Result};
use crate::redact::redact_userinfo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) fn err<T>(field: &str, message: impl Into<String>) -> Result<T> {
    Err(Error::spec(field, message))
}

/// Any string: no NUL byte (it would truncate the value in every C-string consumer).
pub(super) fn check_text(field: &str, s: &str) -> Result<String> {
    if s.contains('\0') {
        return err(field, "contains a NUL byte; remove it");
    }
    Ok(s.to_owned())
}

/// A one-line string: no NUL, no line break, not empty.
pub(super) fn check_line(field: &str, s: &str) -> Result<String> {
    check_text(field, s)?;
    if s.contains(['\n', '\r']) {
        return err(
            field,
            format!(
                "{:?} contains a line break; give one value per line",
                redact_userinfo(s)
            ),
        );
    }
    if s.trim().is_empty() {
        return err(field, "is empty; remove the entry or give a value");
    }
    Ok(s.to_owned())
}

/// A single token such as a builder name: printable, no whitespace.
pub(super) fn check_word(field: &str, s: &str) -> Result<String> {
    check_line(field, s)?;
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(field, format!("{s:?} must be one word without spaces"));
    }
    Ok(s.to_owned())
}

pub(super) fn check_items(
    field: &str,
    items: Option<Vec<String>>,
    check: fn(&str, &str) -> Result<String>,
) -> Result<Vec<String>> {
    items
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| check(&format!("{field}[{i}]"), s))
        .collect()
}

pub(super) fn check_path(field: &str, p: &str, base: &Path) -> Result<PathBuf> {
    check_line(field, p)?;
    // Lexical only: the path need not exist where the spec is evaluated (inside the image it may not).
    std::path::absolute(base.join(p)).or_else(|e| err(field, format!("{p:?} is not a usable path: {e}")))
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub(super) fn check_python_version(v: &str) -> Result<String> {
    let v = v.trim();
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric {
        return err(
            "python_version",
            format!("{v:?} is not a version like '3.11' or '3.11.4'"),
        );
    }
    Ok(v.to_owned())
}

pub(super) fn check_dotted_version(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty()
        || !v
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return err(field, format!("{v:?} is not a version like '12.1' or '8'"));
    }
    Ok(v.to_owned())
}

pub(super) fn check_copy_mode(m: &str) -> Result<CopyMode> {
    match m.trim().to_ascii_uppercase().as_str() {
        "ALL" => Ok(CopyMode::All),
        "LOADED_MODULES" => Ok(CopyMode::LoadedModules),
        "NO_COPY" => Ok(CopyMode::NoCopy),
        _ => err(
            "source_copy_mode",
            format!("{m:?} is not one of ALL, LOADED_MODULES, NO_COPY"),
        ),
    }
}

pub(super) fn check_env(env: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    for (k, v) in &env {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return err(
                "env",
                format!("{k:?} is not a valid variable name; use letters, digits and '_', not starting with a digit"),
            );
        }
        check_text(&format!("env[{k:?}]"), v)?;
    }
    Ok(env)
}

/// A Debian package for apt-get: `name[:arch][=version|/release]` (Debian policy 5.6.1, 5.6.12).
pub fn check_apt_package(field: &str, s: &str) -> Result<String> {
    check_line(field, s)?;
    let bad = || {
        Err(Error::spec(
            field,
            format!(
                "{s:?} is not a Debian package name like 'curl', 'libssl3=3.0.11-1', 'gcc:amd64' or \
                 'git/bookworm-backports' (names: lowercase letters, digits, '+', '-', '.')"
            ),
        ))
    };
    let (rest, version) = match s.split_once('=') {
        Some((r, v)) => (r, Some(v)),
        None => (s, None),
    };
    let (rest, release) = match rest.split_once('/') {
        Some((r, rel)) if version.is_none() => (r, Some(rel)),
        Some(_) => return bad(),
        None => (rest, None),
    };
    let (name, arch) = match rest.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let name_ok =
        name.len() >= 2 && name.starts_with(lower) && name.chars().all(|c| lower(c) || "+-.".contains(c));
    let arch_ok = arch.is_none_or(|a| !a.is_empty() && a.chars().all(|c| lower(c) || c == '-'));
    let version_ok = version.is_none_or(|v| {
        v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
    });
    let release_ok = release.is_none_or(|r| {
        r.starts_with(|c: char| c.is_ascii_alphanumeric())
            && r.chars().all(|c| c.is_ascii_alphanumeric() || ".+~-".contains(c))
    });
    if name_ok && arch_ok && version_ok && release_ok {
        Ok(s.to_owned())
    } else {
        bad()
    }
}

pub(super) fn check_url(field: &str, u: &str) -> Result<String> {
    check_line(field, u)?;
    let ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| u.len() > s.len() && u.starts_with(s));
    if !ok || u.chars().any(char::is_whitespace) {
        return err(
            field,
            format!("{:?} is not an http(s):// or file:// URL", redact_userinfo(u)),
        );
    }
    Ok(u.to_owned())
}

pub(super) fn check_secret_mount(i: usize, (source, target): (String, String)) -> Result<(String, String)> {
    let field = format!("pip_secret_mounts[{i}]");
    check_line(&field, &source)?;
    check_line(&field, &target)?;
    Ok((source, target))
}

pub(super) fn check_platform(p: &str) -> Result<String> {
    let mut out = Vec::new();
    for item in p.split(',').map(str::trim) {
        let parts: Vec<&str> = item.split('/').collect();
        let ok = (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|s| !s.is_empty() && s.chars().all(|c| is_lower_alnum(c) || c == '_'));
        if !ok {
            return err(
                "platform",
                format!("{item:?} is not os/arch[/variant] like 'linux/amd64'"),
            );
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out.join(","))
}

pub fn default_platform(registry: Option<&str>, host_arch: &str) -> &'static str {
    // A loopback registry serves this machine, so an arm64 host wants arm64 images (as flytekit does).
    match registry {
        Some(r) if super::is_loopback_registry(r) && host_arch == "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// A `copy` entry, lexically normalised: relative to the spec's folder, or absolute (see
/// `Spec::copy_sources` for where each lands).
pub(super) fn check_copy_entry(c: &str) -> Result<String> {
    let field = "copy";
    check_line(field, c)?;
    let parts: Vec<&str> = c.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return err(
            field,
            format!("{c:?} climbs with '..'; give the path without '..' (relative to the spec's folder, or absolute)"),
        );
    }
    if parts.is_empty() {
        return err(field, format!("{c:?} names no file or folder"));
    }
    let joined = parts.join("/");
    Ok(if c.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

pub(super) fn check_python_exec(p: &str) -> Result<String> {
    check_line("python_exec", p)?;
    if !p.starts_with('/') {
        return err(
            "python_exec",
            format!("{p:?} must be an absolute path inside the image, e.g. /usr/bin/python3"),
        );
    }
    Ok(p.to_owned())
}

pub(super) fn check_map_text(field: &str, map: &super::Map) -> Result<()> {
    let mut bad = false;
    for (k, v) in map {
        let mut f = |s: &str| bad |= s.contains('\0');
        f(k);
        v.visit_strings(&mut f);
    }
    if bad {
        return err(field, "contains a NUL byte; remove it");
    }
    Ok(())
}

/// NaN has many encodings and no YAML spelling that keeps them apart, so it could not hash
/// stably: refused when the spec is made, since even its id needs it.
pub(super) fn check_finite(field: &str, map: &super::Map) -> Result<()> {
    if map.values().any(has_non_finite) {
        return err(
            field,
            "contains NaN or an infinite number; use a finite number or a string",
        );
    }
    Ok(())
}

fn has_non_finite(v: &crate::value::Value) -> bool {
    use crate::value::Value;
    match v {
        Value::Float(f) => !f.is_finite(),
        Value::List(items) => items.iter().any(has_non_finite),
        Value::Map(m) => m.values().any(has_non_finite),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_names_follow_debian_rules() {
        for ok in [
            "curl",
            "libssl3=3.0.11-1~deb12u2",
            "gcc:amd64",
            "git/bookworm-backports",
            "g++",
            "libc6:arm64=2.36-9",
        ] {
            check_apt_package("apt_packages[0]", ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "Curl",
            "c",
            "-y",
            "curl;id",
            "curl=$(id)",
            "curl=`id`",
            "curl=1 2",
            "a/b=1",
            "curl=",
            "x:",
        ] {
            assert!(
                check_apt_package("apt_packages[0]", bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }
}
