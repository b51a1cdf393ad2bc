//! The parts of a PEP 508 requirement string that imagespec compares: the project name (normalised
//! as PEP 503 does), its extras and its version specifiers. Markers and URLs are split off but not
//! interpreted: the installer does that.

use pep440_rs::VersionSpecifiers;
use std::collections::BTreeSet;
use std::str::FromStr;

/// A requirement as far as a lock comparison needs it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    /// Lowercase, runs of `-`, `_` and `.` made one `-` (PEP 503).
    pub name: String,
    pub extras: BTreeSet<String>,
    /// Each specifier in its canonical form (">= 2" and ">=2.0" differ: the lock keeps what was
    /// written, normalised by pep440 only), sorted.
    pub specifiers: BTreeSet<String>,
}

/// PEP 503's normal form of a project name.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The leading project name of a requirement (`None` when it does not start with one: ">=2",
/// "", "[x]"). Names are ASCII letters and digits with `-`, `_` and `.` inside (PEP 508).
pub fn name_of(requirement: &str) -> Option<&str> {
    let text = requirement.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(text.len());
    let name = &text[..end];
    let rest = text[end..].trim_start();
    let ok_start = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    let ok_end = name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let ok_rest = rest.is_empty() || rest.starts_with(['[', '(', '<', '>', '=', '!', '~', ';', '@']);
    (ok_start && ok_end && ok_rest).then_some(name)
}

/// Splits `requirement` into name, extras and specifiers; `None` when it has no name.
pub fn parse(requirement: &str) -> Option<Requirement> {
    let name = name_of(requirement)?;
    let mut rest = requirement.trim_start()[name.len()..].trim_start();
    let mut extras = BTreeSet::new();
    if let Some(after) = rest.strip_prefix('[') {
        let close = after.find(']')?;
        extras = after[..close]
            .split(',')
            .map(|e| normalize_name(e.trim()))
            .filter(|e| !e.is_empty())
            .collect();
        rest = after[close + 1..].trim_start();
    }
    let before_marker = rest.split(';').next().unwrap_or("").trim();
    let version = if before_marker.starts_with('@') {
        ""
    } else {
        before_marker.trim_start_matches('(').trim_end_matches(')').trim()
    };
    Some(Requirement {
        name: normalize_name(name),
        extras,
        specifiers: specifier_set(version),
    })
}

/// `">=1, <2"` as its specifiers' canonical texts; a text pep440 cannot read is kept as written,
/// so that it still compares equal to itself.
pub fn specifier_set(text: &str) -> BTreeSet<String> {
    let text = text.trim();
    if text.is_empty() {
        return BTreeSet::new();
    }
    match VersionSpecifiers::from_str(text) {
        Ok(specs) => specs.iter().map(|s| s.to_string()).collect(),
        Err(_) => [text.replace(' ', "")].into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_specifiers() {
        let r = parse("Attrs_X [b, A] (>=22 , <30) ; python_version < '3.12'").unwrap();
        assert_eq!(r.name, "attrs-x");
        assert_eq!(r.extras, ["a", "b"].map(String::from).into());
        assert_eq!(r.specifiers, parse("attrs-x[a,b]<30,>=22").unwrap().specifiers);
        assert_eq!(parse("six @ https://x/six.whl").unwrap().specifiers.len(), 0);
        for bad in ["", ">=2", "[x]", "-a", "a-", "a b", "==1.0"] {
            assert!(name_of(bad).is_none(), "{bad:?}");
        }
        assert_eq!(name_of("numpy"), Some("numpy"));
        assert_eq!(name_of("numpy==2"), Some("numpy"));
    }
}
