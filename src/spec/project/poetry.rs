//! A `poetry.lock`: its local packages (`[package.source]` of type `directory` or `file`), and
//! whether it was made from this `pyproject.toml`.
//!
//! Poetry's `content-hash`: the sha256 of the dependency tables of a pyproject.toml written as
//! Python's `json.dumps(content, sort_keys=True)` writes them (poetry/packages/locker.py,
//! `Locker._get_content_hash`, poetry 2.x). A lock whose recorded hash differs from this one was
//! made from other dependencies: poetry itself then says "pyproject.toml changed significantly".

use super::{join_lexical, out_of_date, read_file, table, text, Read};
use crate::error::Result;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The poetry lock's local packages and whether the root is installable; the lock's
/// `content-hash` checked as poetry checks it.
pub(super) fn read_lock(
    root: &Path,
    lock_path: &Path,
    pyproject: &toml::Table,
    read: &mut Read,
) -> Result<(bool, Vec<PathBuf>)> {
    let lock: toml::Table = read_file(lock_path, read)?;
    let lock = &lock;
    let recorded = table(lock, &["metadata"]).and_then(|m| text(m, "content-hash"));
    if let Some(recorded) = recorded {
        let fresh = [true, false]
            .iter()
            .filter_map(|groups| content_hash(pyproject, *groups))
            .collect::<Vec<_>>();
        // No hash computed (a float in the relevant tables): poetry's own export decides.
        if !fresh.is_empty() && !fresh.iter().any(|h| h == recorded) {
            return Err(out_of_date(
                lock_path,
                &root.join("pyproject.toml"),
                "its dependencies changed since the lock was made",
                "poetry lock",
            ));
        }
    }
    let mut locals = BTreeSet::new();
    let packages = lock.get("package").and_then(|p| p.as_array());
    for p in packages.into_iter().flatten().filter_map(|p| p.as_table()) {
        let Some(source) = table(p, &["source"]) else {
            continue;
        };
        if matches!(text(source, "type"), Some("directory" | "file")) {
            if let Some(url) = text(source, "url") {
                locals.insert(join_lexical(root, url));
            }
        }
    }
    let poetry = table(pyproject, &["tool", "poetry"]);
    let package_mode = poetry
        .and_then(|p| p.get("package-mode"))
        .and_then(|m| m.as_bool())
        .unwrap_or(true);
    let named = table(pyproject, &["project"])
        .and_then(|p| text(p, "name"))
        .is_some()
        || poetry.and_then(|p| text(p, "name")).is_some();
    Ok((package_mode && named, locals.into_iter().collect()))
}

const LEGACY_KEYS: [&str; 4] = ["dependencies", "source", "extras", "dev-dependencies"];
const POETRY_KEYS: [&str; 5] = ["dependencies", "source", "extras", "dev-dependencies", "group"];
const PROJECT_KEYS: [&str; 3] = ["requires-python", "dependencies", "optional-dependencies"];

/// The hash poetry records; `with_groups` adds `[dependency-groups]` (poetry ≥ 2.2 does; older
/// locks were hashed without). None when the tables hold a value whose JSON text Python would
/// write differently from here (floats, dates).
fn content_hash(pyproject: &toml::Table, with_groups: bool) -> Option<String> {
    use serde_json::{Map, Value};
    let empty = toml::Table::new();
    let get = |t: &toml::Table, k: &str| t.get(k).and_then(|v| v.as_table()).cloned();
    let project = get(pyproject, "project").unwrap_or_default();
    let groups = if with_groups {
        get(pyproject, "dependency-groups").unwrap_or_default()
    } else {
        toml::Table::new()
    };
    let poetry = pyproject
        .get("tool")
        .and_then(|t| t.as_table())
        .and_then(|t| get(t, "poetry"))
        .unwrap_or_else(|| empty.clone());

    let mut relevant_project = Map::new();
    for k in PROJECT_KEYS {
        if let Some(v) = project.get(k) {
            relevant_project.insert(k.to_owned(), json(v)?);
        }
    }
    let mut relevant_poetry = Map::new();
    for k in POETRY_KEYS {
        match poetry.get(k) {
            Some(v) => {
                relevant_poetry.insert(k.to_owned(), json(v)?);
            }
            None if !LEGACY_KEYS.contains(&k) || !relevant_project.is_empty() || !groups.is_empty() => {}
            None => {
                relevant_poetry.insert(k.to_owned(), Value::Null);
            }
        }
    }
    let mut content = Map::new();
    if !relevant_project.is_empty() {
        content.insert("project".into(), Value::Object(relevant_project));
    }
    if !groups.is_empty() {
        content.insert("dependency-groups".into(), json(&toml::Value::Table(groups))?);
    }
    let content = if content.is_empty() {
        Value::Object(relevant_poetry)
    } else {
        let tool = Map::from_iter([("poetry".to_owned(), Value::Object(relevant_poetry))]);
        content.insert("tool".into(), Value::Object(tool));
        Value::Object(content)
    };
    let mut out = String::new();
    python_dumps(&content, &mut out);
    Some(data_encoding::HEXLOWER.encode(&Sha256::digest(out.as_bytes())))
}

fn json(v: &toml::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Array(a) => Value::Array(a.iter().map(json).collect::<Option<_>>()?),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Some((k.clone(), json(v)?)))
                .collect::<Option<_>>()?,
        ),
        toml::Value::Float(_) | toml::Value::Datetime(_) => return None,
    })
}

/// `json.dumps(v, sort_keys=True)`: ", " and ": " separators, keys sorted by code point, and
/// every character outside ASCII escaped (`ensure_ascii`).
fn python_dumps(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => python_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_dumps(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.chars().cmp(b.chars()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_string(k, out);
                out.push_str(": ");
                python_dumps(&m[k], out);
            }
            out.push('}');
        }
    }
}

fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_as_python_writes_them() {
        let mut out = String::new();
        python_string("a\"é\u{1F600}\t", &mut out);
        // json.dumps('a"é\U0001F600\t') in Python.
        assert_eq!(out, r#""a\"\u00e9\ud83d\ude00\t""#);
    }

    #[test]
    fn a_lock_made_by_poetry() {
        // pyproject.toml and the content-hash `poetry lock` (poetry 2.5.1) wrote for it.
        let pyproject: toml::Table = r#"
[project]
name = "papp"
version = "0.1.0"
requires-python = ">=3.9,<4"
dependencies = ["six==1.16.0", "attrs (>=22)", "lib1"]

[tool.poetry.dependencies]
lib1 = { path = "lib", develop = false }
"#
        .parse()
        .unwrap();
        assert_eq!(
            content_hash(&pyproject, true).as_deref(),
            Some("bae06e8be90694fd872db3dfa954362f4d0fc85b3e2b0c2f5831c40a7415022d")
        );
    }
}
