//! `builder_options` read by one rule for every engine and for the plan's existence check: a
//! string option, a list option (a comma-separated string counts as a list), and the insecure
//! registries an engine and the registry client may reach over plain HTTP.

use super::Spec;
use crate::error::{Error, Result};
use crate::value::Value;

/// A string option of `builder_options`; an option of another type is a mistake worth a message.
pub(crate) fn option_str<'a>(spec: &'a Spec, key: &str) -> Result<Option<&'a str>> {
    match spec.builder_options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) if s.is_empty() => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Error::spec(format!("builder_options.{key}"), "must be a string")),
    }
}

/// `builder_options["insecure_registries"]`: registries reached over plain HTTP besides loopback
/// ones (a malformed value counts as none here; the engines report it).
pub(crate) fn insecure_registries(spec: &Spec) -> Vec<String> {
    option_list(spec, "insecure_registries").unwrap_or_default()
}

/// A list-of-strings option (a comma-separated string is accepted too).
pub(crate) fn option_list(spec: &Spec, key: &str) -> Result<Vec<String>> {
    match spec.builder_options.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Str(s)) => Ok(split_list(s)),
        Some(Value::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.trim().to_owned()),
                _ => Err(Error::spec(
                    format!("builder_options.{key}"),
                    "must be a list of strings",
                )),
            })
            .collect(),
        Some(_) => Err(Error::spec(
            format!("builder_options.{key}"),
            "must be a list of strings",
        )),
    }
}

/// The trimmed, non-empty items of a comma-separated list.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}
