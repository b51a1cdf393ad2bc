//! A `uv.lock`: its local packages (workspace members, path dependencies) and whether each
//! project's requirements in the lock are still those of its `pyproject.toml`.
//!
//! The lock is read into the few fields used here: wheels, sdists and hashes (most of a large
//! lock's bytes) are skipped by the parser rather than built into values.

use super::{join_lexical, out_of_date, read_file, Read};
use crate::error::{Error, Result};
use crate::spec::requirement::{self, Requirement};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(default)]
    source: Source,
    metadata: Option<Metadata>,
}

/// Where a package comes from; only the local kinds are read.
#[derive(Deserialize, Default)]
struct Source {
    editable: Option<String>,
    directory: Option<String>,
    #[serde(rename = "virtual")]
    virtual_: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "requires-dist", default)]
    requires_dist: Vec<Dist>,
}

#[derive(Deserialize)]
struct Dist {
    name: String,
    specifier: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
}

/// What a member's `pyproject.toml` asks for.
#[derive(Deserialize)]
struct PyProject {
    project: Option<ProjectTable>,
}

#[derive(Deserialize)]
struct ProjectTable {
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(rename = "optional-dependencies", default)]
    optional_dependencies: std::collections::BTreeMap<String, Vec<String>>,
}

/// The lock at `lock_path` (of the project at `root`): whether the root is an installable package
/// (`has_project`: the root pyproject.toml has a `[project]` table), and the local packages other
/// than the root. Every file read is recorded in `read`.
pub(super) fn read_lock(
    root: &Path,
    lock_path: &Path,
    has_project: bool,
    read: &mut Read,
) -> Result<(bool, Vec<PathBuf>)> {
    let lock: Lock = read_file(lock_path, read)?;
    let mut locals = BTreeSet::new();
    let mut packaged = false;
    for p in &lock.package {
        let s = &p.source;
        let local = [
            ("editable", &s.editable),
            ("directory", &s.directory),
            ("virtual", &s.virtual_),
            ("path", &s.path),
        ]
        .into_iter()
        .find_map(|(how, rel)| rel.as_deref().map(|r| (how, r)));
        let Some((how, rel)) = local else { continue };
        let dir = join_lexical(root, rel);
        if dir == root {
            packaged = how != "virtual" && has_project;
        } else {
            locals.insert(dir.clone());
        }
        if how != "path" {
            check_member(&dir, lock_path, p, read)?;
        }
    }
    Ok((packaged, locals.into_iter().collect()))
}

/// A project of the workspace (or a path dependency) whose requirements in the lock are not those
/// of its pyproject.toml: the lock is out of date. Only what the image installs is compared
/// (names, extras and versions of `dependencies` and `optional-dependencies`; markers are the
/// installer's to read).
fn check_member(dir: &Path, lock_path: &Path, package: &Package, read: &mut Read) -> Result<()> {
    let pyproject_path = dir.join("pyproject.toml");
    let pyproject: PyProject = read_file(&pyproject_path, read).map_err(|e| match e {
        Error::Source { .. } => Error::source(
            "project",
            &pyproject_path,
            format!(
                "is named by {} but cannot be read; restore the project there, or run `uv lock` if it moved",
                lock_path.display()
            ),
        ),
        other => other,
    })?;
    let Some(project) = pyproject.project else {
        return Ok(());
    };
    let declared: BTreeSet<Requirement> = project
        .dependencies
        .iter()
        .chain(project.optional_dependencies.values().flatten())
        .filter_map(|t| requirement::parse(t))
        .collect();
    let locked: BTreeSet<Requirement> = package
        .metadata
        .iter()
        .flat_map(|m| &m.requires_dist)
        .map(|d| Requirement {
            name: requirement::normalize_name(&d.name),
            extras: d.extras.iter().map(|e| requirement::normalize_name(e)).collect(),
            specifiers: requirement::specifier_set(d.specifier.as_deref().unwrap_or("")),
        })
        .collect();
    if declared == locked {
        return Ok(());
    }
    let show = |r: &Requirement| {
        let extras = if r.extras.is_empty() {
            String::new()
        } else {
            format!("[{}]", r.extras.iter().cloned().collect::<Vec<_>>().join(","))
        };
        let specs: Vec<&str> = r.specifiers.iter().map(String::as_str).collect();
        format!("{}{extras}{}", r.name, specs.join(","))
    };
    let only_declared: Vec<String> = declared.difference(&locked).map(show).collect();
    let only_locked: Vec<String> = locked.difference(&declared).map(show).collect();
    let mut what = Vec::new();
    if !only_declared.is_empty() {
        what.push(format!("it asks for {}", only_declared.join(", ")));
    }
    if !only_locked.is_empty() {
        what.push(format!("the lock has {}", only_locked.join(", ")));
    }
    Err(out_of_date(
        lock_path,
        &pyproject_path,
        &what.join("; "),
        "uv lock",
    ))
}
