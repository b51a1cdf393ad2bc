//! Selection rules: the standard ignores, `.dockerignore` (docker semantics) and, for
//! LOADED_MODULES mode, `.gitignore` evaluation without a walk.
//!
//! The walk (ALL mode) lets the `ignore` crate apply `.gitignore` files and applies
//! [`StandardIgnores`] and [`DockerIgnore`] in `filter_entry`. [`ListedRules`] reproduces exactly
//! the same decisions for single paths by reading only the ignore files of their ancestor folders.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// Folder names that are never part of the image, at any depth, whatever `.gitignore` says.
pub(crate) const STANDARD_IGNORED_DIRS: &[&str] = &[
    "__pycache__",
    ".venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".ipynb_checkpoints",
    ".hypothesis",
];

/// Is an entry with this name excluded by the standard ignores?
///
/// `.git` is excluded whatever its type: in a worktree or a submodule it is a *file* holding an
/// absolute path (`gitdir: /home/...`), which would make the selection depend on the checkout.
/// The other folder names only match folders (a symlink named `.venv` is kept, as a link).
pub(crate) fn standard_ignored(name: &OsStr, is_dir: bool) -> bool {
    let name = name.as_encoded_bytes();
    if name == b".git" || name == b".DS_Store" || name.ends_with(b".pyc") || name.ends_with(b".pyo") {
        return true;
    }
    is_dir && STANDARD_IGNORED_DIRS.iter().any(|d| d.as_bytes() == name)
}

/// One path component of a `!` pattern, for deciding whether an excluded folder may hold a
/// re-included file (and so must still be walked).
enum Comp {
    /// `**` (or any component containing it): may match any number of folders.
    Any,
    Glob(GlobMatcher),
}

/// The root `.dockerignore`, with docker's semantics: patterns are relative to the root, a pattern
/// matches a path or any of its parent folders, and the last matching pattern wins (`!` re-includes).
pub(crate) struct DockerIgnore {
    /// Each pattern `P` becomes the anchored gitignore lines `/P` and `/P/**` (same `!`), in order,
    /// so "the last line matching the path" is "the last pattern matching the path or a parent".
    matcher: Gitignore,
    /// Component matchers of the `!` patterns.
    exceptions: Vec<Vec<Comp>>,
}

/// Docker's pattern cleaning (Go's `filepath.Clean`): collapse `//`, drop `.`, resolve `..`
/// lexically, drop the trailing `/`.
fn clean(pattern: &str) -> String {
    let rooted = pattern.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in pattern.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(comp),
        }
    }
    let joined = out.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Parse `.dockerignore` text into `(exclude?, cleaned pattern)` like docker's `ReadAll`.
/// Patterns that can never match a path inside the root (`.`, `/`, `..`, `../x`) are dropped.
pub(crate) fn parse_dockerignore(text: &str) -> Vec<(bool, String)> {
    let mut patterns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let negate = pattern.starts_with('!');
        if negate {
            pattern = pattern[1..].trim();
        }
        if pattern.is_empty() {
            continue;
        }
        let mut cleaned = clean(pattern);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        if cleaned == "." || cleaned == "/" || cleaned == ".." || cleaned.starts_with("../") {
            continue;
        }
        patterns.push((negate, cleaned));
    }
    patterns
}

impl DockerIgnore {
    /// Read `root/.dockerignore`; `None` when there is none (or it has no pattern).
    pub(crate) fn load(root: &Path, field: &str) -> Result<Option<DockerIgnore>> {
        let path = root.join(".dockerignore");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::source(field, path, format!("cannot read: {e}"))),
        };
        let text = String::from_utf8_lossy(&bytes);
        DockerIgnore::parse(root, &text).map_err(|message| Error::source(field, path, message))
    }

    pub(crate) fn parse(root: &Path, text: &str) -> std::result::Result<Option<DockerIgnore>, String> {
        let patterns = parse_dockerignore(text);
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut builder = GitignoreBuilder::new(root);
        let mut exceptions = Vec::new();
        for (negate, pattern) in &patterns {
            let bang = if *negate { "!" } else { "" };
            let slash = if pattern.starts_with("**") { "" } else { "/" };
            for line in [
                format!("{bang}{slash}{pattern}"),
                format!("{bang}{slash}{pattern}/**"),
            ] {
                builder
                    .add_line(None, &line)
                    .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
            }
            if *negate {
                let mut comps = Vec::new();
                for comp in pattern.split('/') {
                    if comp.contains("**") {
                        comps.push(Comp::Any);
                    } else {
                        let glob = GlobBuilder::new(comp)
                            .literal_separator(true)
                            .backslash_escape(true)
                            .build()
                            .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
                        comps.push(Comp::Glob(glob.compile_matcher()));
                    }
                }
                exceptions.push(comps);
            }
        }
        let matcher = builder.build().map_err(|e| format!("invalid pattern: {e}"))?;
        Ok(Some(DockerIgnore { matcher, exceptions }))
    }

    /// Is this path (relative to the root) excluded by its own matching?
    pub(crate) fn excluded(&self, rel: &Path, is_dir: bool) -> bool {
        self.matcher.matched(rel, is_dir).is_ignore()
    }

    /// May the walk skip this folder? Only when it is excluded and no `!` pattern could match
    /// something inside it. This is an optimisation only: the files of a folder that is walked
    /// anyway are each decided by [`DockerIgnore::excluded`], which gives the same answer.
    pub(crate) fn prune_dir(&self, rel: &Path) -> bool {
        if !self.excluded(rel, true) {
            return false;
        }
        let dir: Vec<&OsStr> = rel.iter().collect();
        !self
            .exceptions
            .iter()
            .any(|comps| could_match_inside(comps, &dir))
    }
}

/// Could a pattern with these components match a path strictly inside `dir`?
fn could_match_inside(comps: &[Comp], dir: &[&OsStr]) -> bool {
    for (i, name) in dir.iter().enumerate() {
        match comps.get(i) {
            None => return false,
            Some(Comp::Any) => return true,
            Some(Comp::Glob(glob)) => {
                if !glob.is_match(name) {
                    return false;
                }
            }
        }
    }
    comps.len() > dir.len()
}

/// The `.gitignore` of one folder, built as the walker builds it (root = the folder).
fn folder_gitignore(dir: &Path) -> Option<Arc<Gitignore>> {
    let path = dir.join(".gitignore");
    if !path.exists() {
        return None;
    }
    let mut builder = GitignoreBuilder::new(dir);
    // Invalid lines are skipped (partial errors), as in the walk.
    let _ = builder.add(&path);
    match builder.build() {
        Ok(gi) if !gi.is_empty() => Some(Arc::new(gi)),
        _ => None,
    }
}

/// What the walk would have decided about one folder.
struct FolderState {
    /// The folder, or one of its parents, is skipped by the walk.
    excluded: bool,
    /// The `.gitignore` matchers in effect for the folder's entries, root first.
    chain: Arc<Vec<Arc<Gitignore>>>,
}

/// Selection rules for single paths (LOADED_MODULES mode): the same answers as the walk, reading
/// only the ignore files of the paths' ancestor folders (each folder once).
pub(crate) struct ListedRules {
    root: PathBuf,
    docker: Option<DockerIgnore>,
    folders: HashMap<PathBuf, FolderState>,
}

impl ListedRules {
    pub(crate) fn new(root: &Path, field: &str) -> Result<ListedRules> {
        let docker = DockerIgnore::load(root, field)?;
        let chain: Vec<Arc<Gitignore>> = folder_gitignore(root).into_iter().collect();
        let mut folders = HashMap::new();
        folders.insert(
            PathBuf::new(),
            FolderState {
                excluded: false,
                chain: Arc::new(chain),
            },
        );
        Ok(ListedRules {
            root: root.to_path_buf(),
            docker,
            folders,
        })
    }

    /// Would the walk select the path `rel` (relative to the root, only normal components)?
    /// `is_dir` is the entry's own type (symlinks are not folders).
    pub(crate) fn selected(&mut self, rel: &Path, is_dir: bool) -> bool {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return false;
        };
        self.folder(parent);
        let state = &self.folders[parent];
        if state.excluded {
            return false;
        }
        !self.entry_excluded(&state.chain, rel, name, is_dir)
    }

    /// Decide one entry whose parent folder is walked.
    fn entry_excluded(&self, chain: &[Arc<Gitignore>], rel: &Path, name: &OsStr, is_dir: bool) -> bool {
        if standard_ignored(name, is_dir) {
            return true;
        }
        if let Some(docker) = &self.docker {
            let out = if is_dir {
                docker.prune_dir(rel)
            } else {
                docker.excluded(rel, false)
            };
            if out {
                return true;
            }
        }
        // The nearest `.gitignore` with a matching line decides (as `ignore` does without git).
        let abs = self.root.join(rel);
        for gi in chain.iter().rev() {
            let m = gi.matched(&abs, is_dir);
            if !m.is_none() {
                return m.is_ignore();
            }
        }
        false
    }

    /// Compute (and remember) the state of a folder and its parents.
    fn folder(&mut self, rel: &Path) {
        if self.folders.contains_key(rel) {
            return;
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return;
        };
        self.folder(parent);
        let parent_state = &self.folders[parent];
        let state = if parent_state.excluded || self.entry_excluded(&parent_state.chain, rel, name, true) {
            FolderState {
                excluded: true,
                chain: parent_state.chain.clone(),
            }
        } else {
            let chain = match folder_gitignore(&self.root.join(rel)) {
                Some(gi) => {
                    let mut chain = Vec::clone(&parent_state.chain);
                    chain.push(gi);
                    Arc::new(chain)
                }
                None => parent_state.chain.clone(),
            };
            FolderState {
                excluded: false,
                chain,
            }
        };
        self.folders.insert(rel.to_path_buf(), state);
    }
}

/// Is `rel` non-empty and made of normal components only (no `..`, no root)?
pub(crate) fn is_plain_relative(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_))) && rel.components().next().is_some()
}
