//! ALL mode: the parallel walk. Each walker thread hashes the files it meets, so directory
//! reading, `lstat`s and sha256 all run on every core. Small trees are walked on the calling
//! thread; on request the walk records what a tree snapshot needs ([`Record`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use super::cache::{DigestCache, Map, Outcome};
use super::rules::{standard_ignored, DockerIgnore};
use super::tree::Record;
use super::{non_utf8, posix, SourceFile, Worker};
use crate::error::{Error, Result};

/// Threads for walking and hashing: the available cores, read once per process (on Linux this
/// reads cgroup files).
pub(crate) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 16)
    })
}

pub(crate) struct Walked {
    /// Unsorted.
    pub files: Vec<SourceFile>,
    pub outcome: Outcome,
    /// What the tree snapshot needs, when asked for.
    pub record: Option<Record>,
}

#[derive(Default)]
struct Parts {
    files: Vec<Vec<SourceFile>>,
    outcome: Outcome,
    errors: Vec<Error>,
    record: Option<Record>,
}

/// How to walk.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    /// Record what a tree snapshot needs ([`Record`]).
    pub record: bool,
    /// Walk on the calling thread (for small trees: no threads to start).
    pub sequential: bool,
}

/// Walk `root` (absolute) with the selection rules and hash every selected file.
pub(crate) fn walk(
    root: &Path,
    field: &str,
    cache: Option<(&DigestCache, &Map)>,
    mode: Mode,
) -> Result<Walked> {
    let docker = DockerIgnore::load(root, field)?.map(Arc::new);
    let mut record = mode.record.then(Record::default);
    if let Some(record) = &mut record {
        // After the read: see the tree module for why the order does not matter.
        record.rule(".dockerignore".to_string(), &root.join(".dockerignore"));
    }
    let mut builder = WalkBuilder::new(root);
    builder
        .standard_filters(false)
        .git_ignore(true)
        .require_git(false)
        .git_global(false)
        .git_exclude(false)
        .ignore(false)
        .parents(false)
        .hidden(false)
        .follow_links(false)
        .threads(threads());
    let filter_root = root.to_path_buf();
    builder.filter_entry(move |dent| keep(&filter_root, docker.as_deref(), dent));

    let parts = Mutex::new(Parts {
        record,
        ..Parts::default()
    });
    let mut visitors = Visitors {
        root,
        field,
        cache,
        record: mode.record,
        parts: &parts,
    };
    if mode.sequential {
        let mut visitor = visitors.build();
        for entry in builder.build() {
            if visitor.visit(entry) == WalkState::Quit {
                break;
            }
        }
    } else {
        builder.build_parallel().visit(&mut visitors);
    }

    let parts = parts.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(err) = parts
        .errors
        .into_iter()
        .min_by_key(|e| error_path(e).map(Path::to_path_buf))
    {
        return Err(err);
    }
    let count = parts.files.iter().map(Vec::len).sum();
    let mut files = Vec::with_capacity(count);
    parts.files.into_iter().for_each(|f| files.extend(f));
    Ok(Walked {
        files,
        outcome: parts.outcome,
        record: parts.record,
    })
}

/// `filter_entry`: the standard ignores and `.dockerignore` (the walker applies `.gitignore`).
/// Returning false for a folder prunes it.
fn keep(root: &Path, docker: Option<&DockerIgnore>, dent: &DirEntry) -> bool {
    let is_dir = dent.file_type().is_some_and(|t| t.is_dir());
    if standard_ignored(dent.file_name(), is_dir) {
        return false;
    }
    if let Some(docker) = docker {
        let rel = dent.path().strip_prefix(root).unwrap_or(dent.path());
        let out = if is_dir {
            docker.prune_dir(rel)
        } else {
            docker.excluded(rel, false)
        };
        if out {
            return false;
        }
    }
    true
}

/// `path` (the walker joins names onto `root`) relative to `root`, as UTF-8.
/// Byte slicing: cheaper than `Path::strip_prefix`, which parses components.
fn relative_str<'p>(root: &Path, path: &'p Path) -> Option<&'p str> {
    let root_bytes = root.as_os_str().as_encoded_bytes();
    let rel = path.as_os_str().as_encoded_bytes().strip_prefix(root_bytes);
    let rel = if root_bytes.ends_with(b"/") {
        rel
    } else {
        rel.and_then(|r| r.strip_prefix(b"/"))
    };
    match rel {
        Some(rel) => std::str::from_utf8(rel).ok(),
        None => path.strip_prefix(root).unwrap_or(path).to_str(),
    }
}

fn error_path(e: &Error) -> Option<&Path> {
    match e {
        Error::Source { path, .. } => Some(path),
        _ => None,
    }
}

struct Visitors<'s> {
    root: &'s Path,
    field: &'s str,
    cache: Option<(&'s DigestCache, &'s Map)>,
    record: bool,
    parts: &'s Mutex<Parts>,
}

impl<'s> ParallelVisitorBuilder<'s> for Visitors<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            root: self.root,
            worker: Worker::new(self.field, self.cache),
            files: Vec::new(),
            error: None,
            record: self.record.then(Record::default),
            parts: self.parts,
        })
    }
}

struct Visitor<'s> {
    root: &'s Path,
    worker: Worker<'s>,
    files: Vec<SourceFile>,
    error: Option<Error>,
    record: Option<Record>,
    parts: &'s Mutex<Parts>,
}

/// Does this error of the walker (attached to a folder: reading its ignore file) come from I/O?
fn has_io_error(err: &ignore::Error) -> bool {
    match err {
        ignore::Error::Partial(errs) => errs.iter().any(has_io_error),
        ignore::Error::WithLineNumber { err, .. }
        | ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. } => has_io_error(err),
        ignore::Error::Io(_) => true,
        _ => false,
    }
}

impl Visitor<'_> {
    fn handle(&mut self, entry: std::result::Result<DirEntry, ignore::Error>) -> Result<()> {
        let field = self.worker.field;
        let dent = entry.map_err(|e| walk_error(field, self.root, e))?;
        let Some(ft) = dent.file_type() else { return Ok(()) };
        if ft.is_dir() {
            // A folder the walker reads (it does not visit pruned ones), with its .gitignore.
            if let Some(record) = &mut self.record {
                let rel = if dent.depth() == 0 {
                    Some("")
                } else {
                    relative_str(self.root, dent.path())
                };
                let ignore_error = dent.error().is_some_and(has_io_error);
                record.folder(rel.map(posix).as_deref(), dent.path(), ignore_error);
            }
            return Ok(());
        }
        // Folders contribute only their files; fifos, sockets and devices are skipped unopened.
        if dent.depth() == 0 || !(ft.is_file() || ft.is_symlink()) {
            return Ok(());
        }
        let path = dent.path();
        let Some(rel) = relative_str(self.root, path).map(posix) else {
            return Err(non_utf8(field, path));
        };
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            // Deleted since the directory was read: not part of the tree any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::source(field, path, format!("cannot read: {e}"))),
        };
        if let Some(kind) = self.worker.entry(path, &rel, &md)? {
            self.files.push(SourceFile { path: rel, kind });
        }
        Ok(())
    }
}

impl ParallelVisitor for Visitor<'_> {
    fn visit(&mut self, entry: std::result::Result<DirEntry, ignore::Error>) -> WalkState {
        match self.handle(entry) {
            Ok(()) => WalkState::Continue,
            Err(e) => {
                self.error = Some(e);
                WalkState::Quit
            }
        }
    }
}

impl Drop for Visitor<'_> {
    fn drop(&mut self) {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts.files.push(std::mem::take(&mut self.files));
        parts.outcome.absorb(std::mem::take(&mut self.worker.outcome));
        if let Some(e) = self.error.take() {
            parts.errors.push(e);
        }
        if let (Some(all), Some(mine)) = (&mut parts.record, self.record.take()) {
            all.absorb(mine);
        }
    }
}

/// An error of the walk itself (a folder that cannot be read), naming the path.
fn walk_error(field: &str, root: &Path, err: ignore::Error) -> Error {
    fn path_of(err: &ignore::Error) -> Option<PathBuf> {
        match err {
            ignore::Error::WithPath { path, .. } => Some(path.clone()),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => path_of(err),
            _ => None,
        }
    }
    let path = path_of(&err).unwrap_or_else(|| root.to_path_buf());
    let message = match err.io_error() {
        Some(io) => format!("cannot read: {io}"),
        None => err.to_string(),
    };
    Error::source(field, path, message)
}
