//! Source selection and content hashing.
//!
//! Selects the files of a source tree that go into the image and hashes their content, in
//! parallel and through a persistent digest cache ([`cache`]). A snapshot of the last walk of each
//! root ([`tree`]) lets a re-check of an unchanged tree skip the walk: it costs one `lstat` per
//! folder and per selected file. It returns per-file facts ([`SourceFile`]); the identity module
//! frames and hashes them into the tag.
//!
//! The rules are documented in `docs/source-selection.md`:
//!
//! * `.gitignore` files at every level inside the root (even outside a git repository), never
//!   the global gitignore, `.git/info/exclude`, `.ignore` files or ignore files above the root;
//! * the root `.dockerignore`, with docker's semantics ([`rules::DockerIgnore`]);
//! * the standard ignores ([`rules::standard_ignored`]), which no negation can re-include;
//! * symlinks are never followed: each is one entry holding its target text;
//! * regular files carry their executable bit and the sha256 of their content; other file types
//!   and empty folders contribute nothing.

mod cache;
mod hash;
mod locate;
mod rules;
mod tree;
mod walk;

#[cfg(all(test, unix))]
mod tests;

use std::collections::HashSet;
use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use cache::{Commit, DigestCache};
use hash::{hash_jobs, Worker};
use locate::{clean_rel, folder_root, non_utf8, posix, Locator};
use tree::Tree;

/// One file of the selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// POSIX path relative to the root, '/'-separated, no leading './'.
    pub path: String,
    pub kind: FileKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular {
        executable: bool,
        sha256: [u8; 32],
    },
    /// A symlink, never followed: `target` is the link's text as `readlink` returns it.
    Symlink {
        target: String,
    },
    /// A `copy` entry that does not exist: it still has a tag (flytekit's leaves such files out
    /// of its digest), but no image can be built with it; every builder refuses it.
    Missing,
}

/// ALL mode: every file under `root` that no ignore rule excludes, sorted by `path` (bytes).
/// `field` names the spec field for error messages (e.g. "source_root").
pub fn hash_all(root: &Path, field: &str) -> Result<Vec<SourceFile>> {
    hash_all_with(root, field, cache::global().as_deref())
}

/// LOADED_MODULES mode: only these absolute file paths, those under `root` that no ignore rule
/// excludes (others are dropped silently). Does not walk the tree: the ignore rules are decided
/// from the ignore files of each file's ancestor folders. Sorted by path.
pub fn hash_listed(root: &Path, files: &[PathBuf], field: &str) -> Result<Vec<SourceFile>> {
    hash_listed_with(root, files, field, cache::global().as_deref())
}

/// One entry named relative to `base` (a copy entry like "conf" or "data/x.csv", or a
/// requirements file). A file gives one [`SourceFile`] with `path = rel`; a folder is walked with
/// the rules of [`hash_all`] (its own `.dockerignore` and `.gitignore` files, the standard
/// ignores), paths prefixed with `rel` ("conf/a.yaml"). The entry itself is followed if it is a
/// symlink (as `COPY` does with its sources; for `copy` entries, [`check_inside`] first);
/// symlinks inside a folder are not.
pub fn hash_path(base: &Path, rel: &str, field: &str) -> Result<Vec<SourceFile>> {
    hash_path_with(base, rel, field, cache::global().as_deref())
}

/// Refuses a `copy` entry `rel` of the spec's folder `base` that a symlink (the entry itself or
/// any folder on its path) takes outside `base`: following it would put files of this machine
/// that the project does not hold (`~/.ssh`, `/etc/shadow`) into the image, from a spec or a YAML
/// file that only names a path inside the project. A link that stays inside is followed, as
/// [`hash_path`] follows the entry. A missing entry passes (the caller reports it).
pub fn check_inside(base: &Path, rel: &str, field: &str) -> Result<()> {
    let full = base.join(rel);
    let Ok(real) = std::fs::canonicalize(&full) else {
        return Ok(());
    };
    let real_base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    if real.starts_with(&real_base) {
        return Ok(());
    }
    let message = if field == "copy" {
        format!(
            "is a symlink (or lies in a linked folder) that leads to {}, outside the spec's folder {}; a \
             copy entry only takes files from that folder: replace the link by the files, or give the \
             target's absolute path if you mean it (it then lands at /root/<that path>)",
            real.display(),
            base.display()
        )
    } else {
        format!(
            "is a symlink (or lies in a linked folder) that leads to {}, outside {}, the folder its files \
             are taken from; replace the link by the files",
            real.display(),
            base.display()
        )
    };
    Err(Error::source(field, full, message))
}

/// Trees with fewer selected files than this (at the last call) are walked on the calling thread:
/// starting the walker's threads costs more than walking them.
const SEQUENTIAL_WALK_MAX: usize = 256;

pub(crate) fn hash_all_with(
    root: &Path,
    field: &str,
    cache: Option<&DigestCache>,
) -> Result<Vec<SourceFile>> {
    let root = folder_root(root, field)?;
    let Some(c) = cache else {
        let mode = walk::Mode {
            record: false,
            sequential: false,
        };
        let mut files = walk::walk(&root, field, None, mode)?.files;
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        return Ok(files);
    };
    let scope = scope_of_folder(&root);
    let old = c.snapshot(&scope);
    // An unchanged tree: one stat per folder and per file, no folder read, no pattern matched.
    let last = c.tree(&scope);
    if let Some(tree) = &last {
        if let Some((files, outcome)) = tree.replay(&root, field, (c, &old)) {
            c.stats.replays.fetch_add(1, Ordering::Relaxed);
            c.commit(&scope, &old, regular_paths(&files), outcome, Commit::Replace);
            return Ok(files);
        }
    }
    c.stats.walks.fetch_add(1, Ordering::Relaxed);
    // Before the walk reads anything: the snapshot's racily-clean reference (see `tree`).
    let taken = cache::now_ns();
    // The size of the tree at the last call, if known (a first walk is parallel).
    let known = last.map_or(old.len(), |t| t.len());
    let mode = walk::Mode {
        record: true,
        sequential: known > 0 && known < SEQUENTIAL_WALK_MAX,
    };
    let walked = walk::walk(&root, field, Some((c, &old)), mode)?;
    let mut files = walked.files;
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    c.commit(
        &scope,
        &old,
        regular_paths(&files),
        walked.outcome,
        Commit::Replace,
    );
    let tree = walked
        .record
        .and_then(|record| Tree::build(record, &files, taken, c.tree_min_age_ns));
    c.set_tree(&scope, tree);
    Ok(files)
}

pub(crate) fn hash_listed_with(
    root: &Path,
    files: &[PathBuf],
    field: &str,
    cache: Option<&DigestCache>,
) -> Result<Vec<SourceFile>> {
    let root = folder_root(root, field)?;
    let mut rules = rules::ListedRules::new(&root, field)?;
    let mut locator = Locator::new(&root);
    let mut jobs: Vec<(PathBuf, String, Metadata)> = Vec::new();
    let mut seen = HashSet::new();
    for file in files {
        let Some(rel) = locator.relative(file) else {
            continue;
        };
        if !seen.insert(rel.clone()) {
            continue;
        }
        let abs = root.join(&rel);
        // The entry's own type (from `lstat`) decides directory-only patterns.
        let md = match std::fs::symlink_metadata(&abs) {
            Ok(md) => md,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if rules.selected(&rel, false) {
                    return Err(Error::source(field, abs, "does not exist"));
                }
                continue;
            }
            Err(e) => return Err(Error::source(field, abs, format!("cannot read: {e}"))),
        };
        if !rules.selected(&rel, md.is_dir()) || !(md.is_file() || md.file_type().is_symlink()) {
            continue;
        }
        let Some(rel_str) = rel.to_str().map(posix) else {
            return Err(non_utf8(field, &abs));
        };
        jobs.push((abs, rel_str, md));
    }

    let scope = scope_of_folder(&root);
    let snapshot = cache.map(|c| c.snapshot(&scope));
    let cache_ref = cache.zip(snapshot.as_deref());
    let (mut out, outcome) = hash_jobs(&jobs, field, cache_ref)?;
    if let (Some(c), Some(old)) = (cache, &snapshot) {
        c.commit(&scope, old, std::iter::empty(), outcome, Commit::Merge);
    }
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

pub(crate) fn hash_path_with(
    base: &Path,
    rel: &str,
    field: &str,
    cache: Option<&DigestCache>,
) -> Result<Vec<SourceFile>> {
    let full = base.join(rel);
    let md = match std::fs::metadata(&full) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::source(field, full, "does not exist"));
        }
        Err(e) => return Err(Error::source(field, full, format!("cannot read: {e}"))),
    };
    let prefix = clean_rel(rel);
    if md.is_dir() {
        let mut files = hash_all_with(&full, field, cache)?;
        if !prefix.is_empty() {
            for f in &mut files {
                f.path = format!("{prefix}/{}", f.path);
            }
        }
        return Ok(files);
    }
    if !md.is_file() {
        return Err(Error::source(field, full, "is neither a file nor a folder"));
    }
    // The single files named from one base folder share one scope (one persistent file), keyed
    // by their cleaned relative path.
    let base: PathBuf = std::path::absolute(base)
        .map(|b| b.components().collect())
        .unwrap_or_else(|_| base.to_path_buf());
    let mut scope = b"files\0".to_vec();
    scope.extend_from_slice(base.as_os_str().as_encoded_bytes());
    let snapshot = cache.map(|c| c.snapshot(&scope));
    let mut worker = Worker::new(field, cache.zip(snapshot.as_deref()));
    let kind = worker.regular(&full, &prefix, &md)?;
    if let (Some(c), Some(old)) = (cache, &snapshot) {
        c.commit(&scope, old, std::iter::empty(), worker.outcome, Commit::Merge);
    }
    Ok(vec![SourceFile { path: prefix, kind }])
}

/// The keys of the regular files of a result (for [`Commit::Replace`]).
fn regular_paths(files: &[SourceFile]) -> impl Iterator<Item = &str> {
    files
        .iter()
        .filter(|f| matches!(f.kind, FileKind::Regular { .. }))
        .map(|f| f.path.as_str())
}

fn scope_of_folder(root: &Path) -> Vec<u8> {
    root.as_os_str().as_encoded_bytes().to_vec()
}
