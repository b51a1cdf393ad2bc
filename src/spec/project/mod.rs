//! The project a user already has, as the spec's `project` field names it: a uv project or
//! workspace (`pyproject.toml` + `uv.lock`) or a poetry project (`pyproject.toml` +
//! `poetry.lock`). Read here: which lock, the `requires-python`, whether the root project can be
//! installed, the local packages the lock installs from this machine (workspace members, path
//! dependencies), and whether the lock still matches the `pyproject.toml` files it was made from.
//!
//! An image is made from the lock, exactly (docs/projects.md): a lock out of date with its
//! project is refused here, before any engine runs, rather than installed as it stands.

mod poetry;
mod uv;

use super::files::{line_column, read_text};
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

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
    let pyproject: toml::Table = read_file(&root.join("pyproject.toml"), &mut Read::default())?;
    Ok(requires_python_of(&pyproject))
}

/// The files a reading of a project read, so that it can be reused while none has changed.
#[derive(Default)]
pub(super) struct Read(Vec<PathBuf>);

/// What tells a file's content apart without reading it: size, inode, modification time.
type Stamp = (u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.ino(), m.mtime(), m.mtime_nsec()))
}

/// Projects read in this process, by root, with the stamps of every file read: a tag, a build and
/// the spec's checks read one project several times, and a large workspace's lock is megabytes.
static READ: Mutex<Option<Memo>> = Mutex::new(None);
type Memo = HashMap<PathBuf, (Vec<(PathBuf, Stamp)>, Project)>;

/// Reads the project at `path` and checks that its lock is up to date (again only when one of the
/// files read last time has changed).
pub fn read(path: &Path) -> Result<Project> {
    let root = root_of(path)?;
    let cached = |guard: &Option<Memo>| {
        let (stamps, project) = guard.as_ref()?.get(&root)?;
        stamps
            .iter()
            .all(|(p, s)| stamp(p).as_ref() == Some(s))
            .then(|| project.clone())
    };
    if let Some(p) = cached(&READ.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(p);
    }
    let mut read = Read::default();
    let project = read_uncached(root.clone(), &mut read)?;
    let stamps: Option<Vec<(PathBuf, Stamp)>> =
        read.0.into_iter().map(|p| stamp(&p).map(|s| (p, s))).collect();
    if let Some(stamps) = stamps {
        let mut guard = READ.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .get_or_insert_with(HashMap::new)
            .insert(root, (stamps, project.clone()));
    }
    Ok(project)
}

fn read_uncached(root: PathBuf, read: &mut Read) -> Result<Project> {
    let pyproject: toml::Table = read_file(&root.join("pyproject.toml"), read)?;
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
    let (packaged, locals) = match kind {
        ProjectKind::Uv => {
            let has_project = table(&pyproject, &["project"]).is_some();
            uv::read_lock(&root, &lock_path, has_project, read)?
        }
        ProjectKind::Poetry => poetry::read_lock(&root, &lock_path, &pyproject, read)?,
    };
    Ok(Project {
        kind,
        requires_python: requires_python_of(&pyproject),
        root,
        packaged,
        locals,
    })
}

/// A TOML file of the project, read as `T` (and recorded in `read`).
fn read_file<T: DeserializeOwned>(path: &Path, read: &mut Read) -> Result<T> {
    let text = read_text("project", path, MAX_FILE_BYTES, "a project file")?;
    read.0.push(path.to_path_buf());
    toml::from_str::<T>(&text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| line_column(&text, s.start));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        Error::File {
            path: path.display().to_string(),
            line: line + 1,
            column: column + 1,
            message: format!("not a valid {name}: {}", e.message()),
        }
    })
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
