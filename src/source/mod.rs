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
mod rules;
mod tree;
mod walk;

#[cfg(all(test, unix))]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use cache::{Commit, DigestCache, Entry, Map, Outcome, Stamp};
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
    Err(Error::source(
        field,
        full,
        format!(
            "is a symlink (or lies in a linked folder) that leads to {}, outside the spec's folder {}; a \
             copy entry only takes files from that folder: replace the link by the files, or give the \
             target's absolute path if you mean it (it then lands at /root/<that path>)",
            real.display(),
            base.display()
        ),
    ))
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

/// The absolute folder to walk for a root, or the error the user should see.
fn folder_root(root: &Path, field: &str) -> Result<PathBuf> {
    let abs = std::path::absolute(root).map_err(|e| Error::source(field, root, e.to_string()))?;
    // Without `.` components or a trailing '/': one spelling per folder (the cache scope).
    let abs: PathBuf = abs.components().collect();
    match std::fs::metadata(&abs) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Err(Error::source(field, root, "is not a folder")),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::source(field, root, "does not exist"));
        }
        Err(e) => return Err(Error::source(field, root, format!("cannot read: {e}"))),
    }
    // A root that is itself a symlink is followed (the walker would report the link itself).
    let is_link = std::fs::symlink_metadata(&abs)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if is_link {
        return std::fs::canonicalize(&abs).map_err(|e| Error::source(field, root, e.to_string()));
    }
    Ok(abs)
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

/// `path` relative to `base` when it lies lexically under it (only normal components).
fn lexically_under(path: &Path, base: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(base).ok()?;
    // Rebuilt from its components: drops `.` and repeated separators.
    rules::is_plain_relative(rel).then(|| rel.components().collect())
}

/// Is a path spelled with `//` or a `.` component (which [`Path::components`] skips)?
fn odd(p: &[u8]) -> bool {
    p.iter().enumerate().any(|(i, &b)| {
        b == b'/'
            && match p.get(i + 1) {
                Some(b'/') => true,
                Some(b'.') => matches!(p.get(i + 2), None | Some(b'/')),
                _ => false,
            }
    })
}

/// [`lexically_under`], answering "no" from the bytes alone for a path that is not [`odd`] and
/// does not start with `base/` (`base` absolute and normal, as roots are).
fn under(path: &Path, odd: bool, base: &Path) -> Option<PathBuf> {
    if !odd {
        let b = base.as_os_str().as_encoded_bytes();
        let rest = path.as_os_str().as_encoded_bytes().strip_prefix(b)?;
        if !(b.ends_with(b"/") || rest.starts_with(b"/")) {
            return None;
        }
    }
    lexically_under(path, base)
}

/// Places listed paths relative to the root, with few system calls.
///
/// A path lexically under the root, or under the root's canonical location (computed once), costs
/// none. For the others, the canonical location of their folder is compared with the root's, for
/// callers that resolved symlinks in `root` but not in the file paths: it is computed one path
/// component at a time, and remembered for the call, so each distinct folder costs one `lstat`
/// (plus a `canonicalize` for a symlink) and each further file in it a hash lookup.
struct Locator<'r> {
    root: &'r Path,
    canonical_root: Option<Option<PathBuf>>,
    /// Folder (bytes, as listed) -> its path relative to the canonical root, if it lies there.
    outside: HashMap<Vec<u8>, Option<PathBuf>>,
    /// Absolute folder -> canonical location.
    canonical: HashMap<PathBuf, Option<PathBuf>>,
}

impl<'r> Locator<'r> {
    fn new(root: &'r Path) -> Locator<'r> {
        Locator {
            root,
            canonical_root: None,
            outside: HashMap::new(),
            canonical: HashMap::new(),
        }
    }

    /// The path of `file` relative to the root when it lies under it (only normal components).
    fn relative(&mut self, file: &Path) -> Option<PathBuf> {
        let absolute;
        let abs = if file.is_absolute() {
            file
        } else {
            absolute = std::path::absolute(file).ok()?;
            &absolute
        };
        let bytes = abs.as_os_str().as_encoded_bytes();
        // The byte shortcuts below assume '/' separators.
        let unusual = !cfg!(unix) || odd(bytes) || bytes.ends_with(b"/");
        if let Some(rel) = under(abs, unusual, self.root) {
            return Some(rel);
        }
        let root = self.root;
        let canon_root = self
            .canonical_root
            .get_or_insert_with(|| std::fs::canonicalize(root).ok())
            .as_ref()?;
        if let Some(rel) = under(abs, unusual, canon_root) {
            return Some(rel);
        }
        // The file's folder, from the bytes when the spelling is plain (as `Path::parent`).
        let key = match (unusual, bytes.iter().rposition(|&b| b == b'/')) {
            (false, Some(0)) => b"/",
            (false, Some(i)) => &bytes[..i],
            _ => abs.parent()?.as_os_str().as_encoded_bytes(),
        };
        let folder = match self.outside.get(key) {
            Some(folder) => folder.clone(),
            None => {
                let (parent, canon_root) = (abs.parent()?, canon_root.clone());
                let folder = self.canonical_of(parent).and_then(|dir| {
                    let rel = dir.strip_prefix(&canon_root).ok()?;
                    (rel.as_os_str().is_empty() || rules::is_plain_relative(rel)).then(|| rel.to_path_buf())
                });
                self.outside.insert(key.to_vec(), folder.clone());
                folder
            }
        };
        Some(folder?.join(abs.file_name()?))
    }

    /// The canonical location of an absolute folder path (as `canonicalize`), remembered.
    fn canonical_of(&mut self, dir: &Path) -> Option<PathBuf> {
        if let Some(known) = self.canonical.get(dir) {
            return known.clone();
        }
        let canon = match dir.components().next_back() {
            Some(Component::Normal(name)) => self.canonical_of(dir.parent()?).and_then(|parent| {
                let here = parent.join(name);
                match std::fs::symlink_metadata(&here) {
                    Ok(md) if md.file_type().is_symlink() => std::fs::canonicalize(&here).ok(),
                    Ok(_) => Some(here),
                    Err(_) => None,
                }
            }),
            Some(Component::ParentDir) => self
                .canonical_of(dir.parent()?)
                .map(|p| p.parent().map_or_else(|| p.clone(), Path::to_path_buf)),
            _ => Some(dir.to_path_buf()),
        };
        self.canonical.insert(dir.to_path_buf(), canon.clone());
        canon
    }
}

/// `rel` as the path prefix of the files it names: no `./`, no `//`, no trailing `/`.
fn clean_rel(rel: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::CurDir => {}
            Component::RootDir => parts.push(String::new()),
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    if parts.len() == 1 && parts[0].is_empty() {
        return "/".to_string();
    }
    parts.join("/")
}

/// A relative path as a '/'-separated string.
fn posix(rel: &str) -> String {
    if std::path::MAIN_SEPARATOR == '/' {
        rel.to_string()
    } else {
        rel.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

fn non_utf8(field: &str, path: &Path) -> Error {
    Error::source(
        field,
        path,
        "file name is not valid UTF-8; rename it or exclude it with .dockerignore",
    )
}

/// Read buffer size: files up to this size are read with one `read`, bigger ones are streamed.
const CHUNK: usize = 1 << 20;

/// Per-thread hashing state: a reusable buffer, the cache snapshot, the entries to commit.
pub(crate) struct Worker<'a> {
    field: &'a str,
    cache: Option<(&'a DigestCache, &'a Map)>,
    buf: Vec<u8>,
    outcome: Outcome,
    /// For callers that look keys up in increasing order: where the next key's record probably
    /// is ([`Map::get_near`]). `None`: unordered lookups, or none yet.
    cursor: Option<usize>,
    ordered: bool,
}

impl<'a> Worker<'a> {
    fn new(field: &'a str, cache: Option<(&'a DigestCache, &'a Map)>) -> Worker<'a> {
        Worker {
            field,
            cache,
            buf: Vec::new(),
            outcome: Outcome::default(),
            cursor: None,
            ordered: false,
        }
    }

    /// A worker whose cache lookups come in increasing key order.
    fn ordered(field: &'a str, cache: Option<(&'a DigestCache, &'a Map)>) -> Worker<'a> {
        Worker {
            ordered: true,
            ..Worker::new(field, cache)
        }
    }

    /// The kind of an entry from its `lstat`: `None` for types that are skipped.
    fn entry(&mut self, abs: &Path, key: &str, md: &Metadata) -> Result<Option<FileKind>> {
        let ft = md.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(abs)
                .map_err(|e| Error::source(self.field, abs, format!("cannot read symlink: {e}")))?;
            let Some(target) = target.to_str() else {
                return Err(Error::source(
                    self.field,
                    abs,
                    "symlink target is not valid UTF-8",
                ));
            };
            return Ok(Some(FileKind::Symlink {
                target: target.to_string(),
            }));
        }
        if ft.is_file() {
            return self.regular(abs, key, md).map(Some);
        }
        Ok(None)
    }

    /// A regular file: executable bit and sha256, from the cache when its stamp matches.
    fn regular(&mut self, abs: &Path, key: &str, md: &Metadata) -> Result<FileKind> {
        let executable = is_executable(md);
        let stamp = Stamp::of(md);
        let sha256 = match self.cached(key, stamp) {
            Some(sha256) => sha256,
            None => self.hashed(abs, key, stamp)?,
        };
        Ok(FileKind::Regular { executable, sha256 })
    }

    /// The cached digest of a file with this stamp, if any.
    fn cached(&mut self, key: &str, stamp: Option<Stamp>) -> Option<[u8; 32]> {
        let ((_, map), stamp) = self.cache.zip(stamp)?;
        let entry = if self.ordered {
            let at = self.cursor.get_or_insert_with(|| map.seek(key));
            map.get_near(key, at)?
        } else {
            map.get(key)?
        };
        self.outcome.known += 1;
        if entry.stamp != stamp {
            return None;
        }
        self.outcome.hits += 1;
        Some(entry.sha256)
    }

    /// Read and hash a file whose `lstat` gave `stamp`; keep the digest for the cache when the
    /// racily-clean rule allows it.
    fn hashed(&mut self, abs: &Path, key: &str, stamp: Option<Stamp>) -> Result<[u8; 32]> {
        let read_start = cache::now_ns();
        let sha256 = self
            .hash_file(abs)
            .map_err(|e| Error::source(self.field, abs, format!("cannot read: {e}")))?;
        if let (Some((cache, _)), Some(stamp)) = (self.cache, stamp) {
            self.outcome.hashed += 1;
            if stamp.storable(read_start, cache.min_age_ns) {
                self.outcome
                    .fresh
                    .push((key.to_string(), Entry { stamp, sha256 }));
            }
        }
        Ok(sha256)
    }

    /// sha256 of a file's content: one `read` into the buffer for files up to [`CHUNK`], a
    /// stream of [`CHUNK`] reads for bigger ones.
    fn hash_file(&mut self, path: &Path) -> std::io::Result<[u8; 32]> {
        let mut file = File::open(path)?;
        if self.buf.len() < CHUNK {
            self.buf.resize(CHUNK, 0);
        }
        let mut hasher = Sha256::new();
        loop {
            match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&self.buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(hasher.finalize().into())
    }
}

#[cfg(unix)]
fn is_executable(md: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_md: &Metadata) -> bool {
    false
}

type Hashed = (Vec<SourceFile>, Outcome);

/// Hash listed files (absolute path, key = output path, `lstat`): symlinks and cached digests on
/// this thread, the files to read on all cores.
fn hash_jobs(
    jobs: &[(PathBuf, String, Metadata)],
    field: &str,
    cache: Option<(&DigestCache, &Map)>,
) -> Result<Hashed> {
    let mut worker = Worker::new(field, cache);
    let mut all: Hashed = (Vec::with_capacity(jobs.len()), Outcome::default());
    let mut to_read = Vec::new();
    for job in jobs {
        let (abs, key, md) = job;
        if md.is_file() {
            if let Some(sha256) = worker.cached(key, Stamp::of(md)) {
                all.0.push(SourceFile {
                    path: key.clone(),
                    kind: FileKind::Regular {
                        executable: is_executable(md),
                        sha256,
                    },
                });
            } else {
                to_read.push(job);
            }
        } else if let Some(kind) = worker.entry(abs, key, md)? {
            all.0.push(SourceFile {
                path: key.clone(),
                kind,
            });
        }
    }
    all.1 = worker.outcome;
    let jobs = to_read;
    let threads = if jobs.len() < 16 {
        1
    } else {
        walk::threads().min(jobs.len() / 8)
    };
    let next = AtomicUsize::new(0);
    let parts: Mutex<Vec<Result<Hashed>>> = Mutex::new(Vec::new());
    let run = || {
        let mut worker = Worker::new(field, cache);
        let mut out = Vec::new();
        let result = loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((abs, key, md)) = jobs.get(i) else {
                break Ok(());
            };
            let hashed = worker.hashed(abs, key, Stamp::of(md)).map(|sha256| {
                Some(FileKind::Regular {
                    executable: is_executable(md),
                    sha256,
                })
            });
            match hashed {
                Ok(Some(kind)) => out.push(SourceFile {
                    path: key.clone(),
                    kind,
                }),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        let part = result.map(|()| (out, worker.outcome));
        parts.lock().unwrap_or_else(|e| e.into_inner()).push(part);
    };
    if threads <= 1 {
        run();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(run);
            }
        });
    }
    for part in parts.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let (files, outcome) = part?;
        all.0.extend(files);
        all.1.absorb(outcome);
    }
    Ok(all)
}
