//! The install groups of `packages`: each its own pip step, before the one install of everything,
//! so that a change of a light package leaves the layers of the heavy ones cached.
//!
//! An engine's layer cache is a chain: a changed step runs again with every step after it. So the
//! packages that change least and cost most come first: the known heavy distributions (one step
//! each, in the spec's order), then the groups the spec declares in
//! `builder_options={"package_groups": [["transformers", "datasets"], ...]}` (one step per group),
//! then the usual install of every package, requirement file and runtime in one resolution, which
//! finds the grouped ones installed. A group names distributions of `packages`; the entries it
//! takes are installed as written (version, extras and markers kept).

use crate::error::{Error, Result};
use crate::redact::has_userinfo;
use crate::spec::Spec;
use crate::value::Value;

/// Distributions whose wheels run to hundreds of megabytes or more (a prefix ends with `-`).
const HEAVY: &[&str] = &[
    "torch",
    "torchvision",
    "torchaudio",
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tf-nightly",
    "jax",
    "jaxlib",
    "jax-cuda12-plugin",
    "triton",
    "xformers",
    "flash-attn",
    "vllm",
    "onnxruntime-gpu",
    "mxnet",
    "paddlepaddle",
    "paddlepaddle-gpu",
    "nvidia-",
    "cupy-",
];

/// The builder option that declares groups.
pub(crate) const OPTION: &str = "package_groups";

/// A requirement's distribution name, normalized as PEP 503 says (lowercase, runs of `-`, `_`
/// and `.` as one `-`); `None` for a URL or path without a name.
pub(crate) fn requirement_name(req: &str) -> Option<String> {
    let req = req.trim();
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    let (name, rest) = req.split_at(end);
    // What may follow a name: extras, a version, markers, a URL after `@` (not `:` or `/`: a
    // bare URL or path has no name).
    let follows = rest.trim_start().chars().next();
    if name.is_empty()
        || !matches!(
            follows,
            None | Some('[' | '(' | '=' | '<' | '>' | '!' | '~' | ';' | '@')
        )
    {
        return None;
    }
    Some(normalize(name))
}

fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if matches!(c, '_' | '.') {
            '-'
        } else {
            c.to_ascii_lowercase()
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

fn is_heavy(name: &str) -> bool {
    HEAVY.iter().any(|h| {
        if h.ends_with('-') {
            name.starts_with(h)
        } else {
            name == *h
        }
    })
}

/// The declared groups as normalized names, checked: a list of non-empty lists of names.
fn declared(spec: &Spec) -> Result<Vec<Vec<String>>> {
    let field = format!("builder_options.{OPTION}");
    let Some(v) = spec.builder_options.get(OPTION) else {
        return Ok(Vec::new());
    };
    let shape = || {
        Error::spec(
            &field,
            "must be a list of lists of distribution names, e.g. [[\"torch\", \"torchvision\"], [\"transformers\"]]",
        )
    };
    let Value::List(groups) = v else {
        return Err(shape());
    };
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let Value::List(names) = g else {
                return Err(shape());
            };
            if names.is_empty() {
                return Err(Error::spec(
                    format!("{field}[{i}]"),
                    "is empty; remove it or name a package",
                ));
            }
            names
                .iter()
                .enumerate()
                .map(|(j, n)| match n {
                    Value::Str(s) if requirement_name(s).as_deref().map(str::len) == Some(s.trim().len()) => {
                        Ok(normalize(s.trim()))
                    }
                    _ => Err(Error::spec(
                        format!("{field}[{i}][{j}]"),
                        format!(
                            "{n:?} is not a distribution name (a group names packages, without versions)"
                        ),
                    )),
                })
                .collect()
        })
        .collect()
}

/// The pip steps before the install of everything: each a list of `packages` entries, in order.
/// Entries whose URL carries credentials stay out (they reach pip only as a build secret, in the
/// last step). A declared name that no entry of `packages` has is an error naming it.
pub(crate) fn install_groups(spec: &Spec) -> Result<Vec<Vec<String>>> {
    let declared = declared(spec)?;
    let named: Vec<(Option<String>, &String)> = spec
        .packages
        .iter()
        .filter(|p| !has_userinfo(p))
        .map(|p| (requirement_name(p), p))
        .collect();
    for (i, group) in declared.iter().enumerate() {
        for (j, name) in group.iter().enumerate() {
            if !named.iter().any(|(n, _)| n.as_deref() == Some(name)) {
                return Err(Error::spec(
                    format!("builder_options.{OPTION}[{i}][{j}]"),
                    format!("{name:?} is not in packages; a group names packages the spec installs"),
                ));
            }
        }
    }
    let in_declared = |n: &str| declared.iter().any(|g| g.iter().any(|d| d == n));
    let mut out: Vec<Vec<String>> = named
        .iter()
        .filter_map(|(n, p)| {
            n.as_deref()
                .filter(|n| is_heavy(n) && !in_declared(n))
                .map(|_| vec![(*p).clone()])
        })
        .collect();
    for group in &declared {
        out.push(
            named
                .iter()
                .filter(|(n, _)| n.as_ref().is_some_and(|n| group.contains(n)))
                .map(|(_, p)| (*p).clone())
                .collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(requirement_name("Torch==2.3").as_deref(), Some("torch"));
        assert_eq!(
            requirement_name("Flash_Attn[x]>=2").as_deref(),
            Some("flash-attn")
        );
        assert_eq!(
            requirement_name("zope.interface").as_deref(),
            Some("zope-interface")
        );
        assert_eq!(
            requirement_name("nvidia-cublas-cu12 ; os_name=='posix'").as_deref(),
            Some("nvidia-cublas-cu12")
        );
        assert_eq!(requirement_name("https://host/x.whl"), None);
        assert_eq!(
            requirement_name("pkg @ https://host/x.whl").as_deref(),
            Some("pkg")
        );
        assert_eq!(requirement_name("./local"), None);
        assert!(is_heavy("torch") && is_heavy("nvidia-cudnn-cu12") && is_heavy("cupy-cuda12x"));
        assert!(!is_heavy("torchmetrics") && !is_heavy("pandas") && !is_heavy("nvidia"));
    }
}
