//! The project a user already has, as the spec's `project` field names it: a uv project or
//! workspace (`pyproject.toml` + `uv.lock`) or a poetry project (`pyproject.toml` +
//! `poetry.lock`). Read here: which lock, the `requires-python`, whether the root project can be
//! installed, the local packages the lock installs from this machine (workspace members, path
//! dependencies), and whether the lock still matches the `pyproject.toml` files it was made from.
//!
//! An image is made from the lock, exactly (docs/projects.md): a lock out of date with its
//! project is refused here, before any engine runs, rather than installed as it stands.

use super::requirement::{self, Requirement};
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Larger project files are refused before reading (a uv.lock of a very large workspace is a few
/// MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectKind {
    Uv,
    Poetry,
}

impl ProjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectKind::Uv => "uv",
            ProjectKind::Poetry => "poetry",
        }
    }

    pub fn lock_name(self) -> &'static str {
        match self {
            ProjectKind::Uv => "uv.lock",
            ProjectKind::Poetry => "poetry.lock",
        }
    }
}

/// `project_install_mode`: the locked dependencies alone, or the root project installed as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    DependenciesOnly,
    InstallProject,
}

impl InstallMode {
    pub const NAMES: [&'static str; 2] = ["dependencies_only", "install_project"];

    pub fn parse(text: &str) -> Result<InstallMode> {
        match text {
            "dependencies_only" => Ok(InstallMode::DependenciesOnly),
            "install_project" => Ok(InstallMode::InstallProject),
            other => Err(Error::spec(
                "project_install_mode",
                format!("{other:?} is not a mode; give one of: {}", Self::NAMES.join(", ")),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstallMode::DependenciesOnly => "dependencies_only",
            InstallMode::InstallProject => "install_project",
        }
    }
}

/// A project, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub kind: ProjectKind,
    /// The folder holding `pyproject.toml` and the lock (the workspace root for uv).
    pub root: PathBuf,
    /// The root's `requires-python` (for poetry, `tool.poetry.dependencies.python` read as PEP 440).
    pub requires_python: Option<String>,
    /// Whether the root is a package that can be installed (not a virtual workspace root, not
    /// poetry's `package-mode = false`).
    pub packaged: bool,
    /// The local packages the lock names other than the root (workspace members, path
    /// dependencies): folders or files, absolute, without `..`, sorted.
    pub locals: Vec<PathBuf>,
}

/// The folder of a project given as its folder, its `pyproject.toml` or its lock.
pub fn root_of(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let root = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file() && matches!(name, "pyproject.toml" | "uv.lock" | "poetry.lock") {
        path.parent().unwrap_or(Path::new("/")).to_path_buf()
    } else if path.exists() {
        return Err(Error::source(
            "project",
            path,
            "is neither a project folder nor its pyproject.toml; name the folder holding pyproject.toml",
        ));
    } else {
        return Err(Error::source(
            "project",
            path,
            "does not exist; name the folder holding pyproject.toml (relative paths are resolved against \
             the folder the spec was evaluated in)",
        ));
    };
    if !root.join("pyproject.toml").is_file() {
        return Err(Error::source(
            "project",
            root.join("pyproject.toml"),
            "does not exist: a project is a folder with a pyproject.toml and its uv.lock or poetry.lock",
        ));
    }
    Ok(root)
}

/// Only the root's `requires-python` (for choosing `python_version` when a spec is made): the
/// pyproject.toml alone is read.
pub fn requires_python(path: &Path) -> Result<Option<String>> {
    let root = root_of(path)?;
    let pyproject = read_toml(&root.join("pyproject.toml"))?;
    Ok(requires_python_of(&pyproject))
}

/// Reads the project at `path` and checks that its lock is up to date.
pub fn read(path: &Path) -> Result<Project> {
    let root = root_of(path)?;
    let pyproject = read_toml(&root.join("pyproject.toml"))?;
    let kind = if root.join("uv.lock").is_file() {
        ProjectKind::Uv
    } else if root.join("poetry.lock").is_file() {
        ProjectKind::Poetry
    } else {
        return Err(Error::spec(
            "project",
            format!(
                "{} has no uv.lock or poetry.lock beside its pyproject.toml; run `uv lock` (or `poetry lock`) \
                 there and keep the lock with the project: the image is made from it",
                root.display()
            ),
        ));
    };
    let lock_path = root.join(kind.lock_name());
    let lock = read_toml(&lock_path)?;
    let (packaged, locals) = match kind {
        ProjectKind::Uv => uv_lock(&root, &lock_path, &lock, &pyproject)?,
        ProjectKind::Poetry => poetry_lock(&root, &lock_path, &lock, &pyproject)?,
    };
    Ok(Project {
        kind,
        requires_python: requires_python_of(&pyproject),
        root,
        packaged,
        locals,
    })
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let unreadable = |e: std::io::Error| Error::source("project", path, format!("cannot be read: {e}"));
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_FILE_BYTES {
        return Err(Error::source(
            "project",
            path,
            format!("is {size} bytes, more than the {MAX_FILE_BYTES} a project file may have"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    text.parse::<toml::Table>().map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| line_column(&text, s.start));
        Error::File {
            path: path.display().to_string(),
            line: line + 1,
            column: column + 1,
            message: format!("not TOML: {}", e.message()),
        }
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    (line, column)
}

fn table<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Table> {
    path.iter().try_fold(t, |t, k| t.get(*k)?.as_table())
}

fn text<'a>(t: &'a toml::Table, key: &str) -> Option<&'a str> {
    t.get(key)?.as_str()
}

fn requires_python_of(pyproject: &toml::Table) -> Option<String> {
    if let Some(r) = table(pyproject, &["project"]).and_then(|p| text(p, "requires-python")) {
        return Some(r.to_owned());
    }
    table(pyproject, &["tool", "poetry", "dependencies"])
        .and_then(|d| text(d, "python"))
        .and_then(poetry_constraint)
}

/// A poetry version constraint as PEP 440, where it is one: `^3.11` is `>=3.11,<4`, `~3.11` is
/// `>=3.11,<3.12`, and PEP 440 texts pass; unions (`||`) are not read (None: no choice made).
fn poetry_constraint(c: &str) -> Option<String> {
    let c = c.trim();
    if c.contains("||") || c.contains('|') {
        return None;
    }
    let bump = |v: &str, at: usize| -> Option<String> {
        let parts: Vec<u64> = v.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        let mut upper: Vec<u64> = parts[..at.min(parts.len())].to_vec();
        *upper.last_mut()? += 1;
        let upper: Vec<String> = upper.iter().map(u64::to_string).collect();
        Some(format!(">={v},<{}", upper.join(".")))
    };
    if let Some(v) = c.strip_prefix('^') {
        let v = v.trim();
        let parts: Vec<&str> = v.split('.').collect();
        // The left-most non-zero part is kept: ^0.2 is >=0.2,<0.3.
        let at = parts
            .iter()
            .position(|p| *p != "0")
            .map_or(parts.len(), |i| i + 1);
        return bump(v, at);
    }
    if let Some(v) = c.strip_prefix('~').filter(|v| !v.starts_with('=')) {
        let v = v.trim();
        let at = if v.split('.').count() == 1 { 1 } else { 2 };
        return bump(v, at);
    }
    let pep440 = if c.chars().next().is_some_and(|ch| ch.is_ascii_digit()) {
        format!("=={c}")
    } else {
        c.to_owned()
    };
    pep440
        .parse::<pep440_rs::VersionSpecifiers>()
        .ok()
        .map(|_| pep440)
}

/// `root/rel` without `.` and `..` (the folder a lock's relative path names).
fn join_lexical(root: &Path, rel: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in root.join(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The uv lock's local packages and whether the root is installable; its members' requirements
/// checked against their pyproject.toml files.
fn uv_lock(
    root: &Path,
    lock_path: &Path,
    lock: &toml::Table,
    pyproject: &toml::Table,
) -> Result<(bool, Vec<PathBuf>)> {
    let packages = lock.get("package").and_then(|p| p.as_array());
    let mut locals = BTreeSet::new();
    let mut packaged = false;
    for p in packages.into_iter().flatten().filter_map(|p| p.as_table()) {
        let Some(source) = p.get("source").and_then(|s| s.as_table()) else {
            continue;
        };
        let local = ["editable", "directory", "virtual", "path"]
            .iter()
            .find_map(|k| text(source, k).map(|v| (*k, v)));
        let Some((how, rel)) = local else { continue };
        let dir = join_lexical(root, rel);
        if dir == root {
            packaged = how != "virtual";
        } else {
            locals.insert(dir.clone());
        }
        if how != "path" {
            check_uv_member(&dir, lock_path, p)?;
        }
    }
    if packaged && table(pyproject, &["project"]).is_none() {
        packaged = false;
    }
    Ok((packaged, locals.into_iter().collect()))
}

/// A project of the workspace (or a path dependency) whose requirements in the lock are not those
/// of its pyproject.toml: the lock is out of date. Only what the image installs is compared
/// (names, extras and versions of `dependencies` and `optional-dependencies`; markers are the
/// installer's to read).
fn check_uv_member(dir: &Path, lock_path: &Path, package: &toml::Table) -> Result<()> {
    let pyproject_path = dir.join("pyproject.toml");
    let Ok(pyproject) = read_toml(&pyproject_path) else {
        return Err(Error::source(
            "project",
            &pyproject_path,
            format!(
                "is named by {} but cannot be read; restore the project there, or run `uv lock` if it moved",
                lock_path.display()
            ),
        ));
    };
    let Some(project) = table(&pyproject, &["project"]) else {
        return Ok(());
    };
    let mut declared: BTreeSet<Requirement> = BTreeSet::new();
    let strings = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut texts = strings(project.get("dependencies"));
    if let Some(optional) = project.get("optional-dependencies").and_then(|o| o.as_table()) {
        for (_, deps) in optional {
            texts.extend(strings(Some(deps)));
        }
    }
    declared.extend(texts.iter().filter_map(|t| requirement::parse(t)));
    let metadata = package.get("metadata").and_then(|m| m.as_table());
    let locked: BTreeSet<Requirement> = metadata
        .and_then(|m| m.get("requires-dist"))
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_table())
        .filter_map(|r| {
            Some(Requirement {
                name: requirement::normalize_name(text(r, "name")?),
                extras: strings(r.get("extras"))
                    .iter()
                    .map(|e| requirement::normalize_name(e))
                    .collect(),
                specifiers: requirement::specifier_set(text(r, "specifier").unwrap_or("")),
            })
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
        format!(
            "{}{extras}{}",
            r.name,
            r.specifiers.iter().cloned().collect::<Vec<_>>().join(",")
        )
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

fn out_of_date(lock: &Path, pyproject: &Path, what: &str, fix: &str) -> Error {
    Error::spec(
        "project",
        format!(
            "{} is out of date with {} ({what}); run `{fix}` in {} and build again",
            lock.display(),
            pyproject.display(),
            lock.parent().unwrap_or(Path::new("/")).display()
        ),
    )
}

/// The poetry lock's local packages and whether the root is installable; the lock's
/// `content-hash` checked as poetry checks it.
fn poetry_lock(
    root: &Path,
    lock_path: &Path,
    lock: &toml::Table,
    pyproject: &toml::Table,
) -> Result<(bool, Vec<PathBuf>)> {
    let recorded = table(lock, &["metadata"]).and_then(|m| text(m, "content-hash"));
    if let Some(recorded) = recorded {
        let fresh = [true, false]
            .iter()
            .filter_map(|groups| super::poetry_hash::content_hash(pyproject, *groups))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poetry_python_constraints() {
        assert_eq!(poetry_constraint("^3.11").as_deref(), Some(">=3.11,<4"));
        assert_eq!(poetry_constraint("^0.2").as_deref(), Some(">=0.2,<0.3"));
        assert_eq!(poetry_constraint("~3.10").as_deref(), Some(">=3.10,<3.11"));
        assert_eq!(poetry_constraint(">=3.9,<3.13").as_deref(), Some(">=3.9,<3.13"));
        assert_eq!(poetry_constraint("3.11.*").as_deref(), Some("==3.11.*"));
        assert_eq!(poetry_constraint("^3.9 || ^4"), None);
    }

    #[test]
    fn lexical_join() {
        let root = Path::new("/w/app");
        assert_eq!(join_lexical(root, "."), PathBuf::from("/w/app"));
        assert_eq!(join_lexical(root, "../lib"), PathBuf::from("/w/lib"));
        assert_eq!(
            join_lexical(root, "packages/a"),
            PathBuf::from("/w/app/packages/a")
        );
    }
}
