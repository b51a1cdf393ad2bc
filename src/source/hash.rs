//! Reading and hashing the selected files: one [`Worker`] per thread, with a reusable buffer,
//! the digest cache's entries of the scope (a hit costs no read), and what the call learnt for the
//! cache; [`hash_jobs`] spreads the files to read over all cores.

use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::cache::{self, DigestCache, Entry, Map, Outcome, Stamp};
use super::{walk, FileKind, SourceFile};
use crate::error::{Error, Result};

/// Read buffer size: files up to this size are read with one `read`, bigger ones are streamed.
pub(super) const CHUNK: usize = 1 << 20;

/// Per-thread hashing state: a reusable buffer, the cache snapshot, the entries to commit.
pub(crate) struct Worker<'a> {
    pub(super) field: &'a str,
    cache: Option<(&'a DigestCache, &'a Map)>,
    buf: Vec<u8>,
    pub(super) outcome: Outcome,
    /// For callers that look keys up in increasing order: where the next key's record probably
    /// is ([`Map::get_near`]). `None`: unordered lookups, or none yet.
    cursor: Option<usize>,
    ordered: bool,
}

impl<'a> Worker<'a> {
    pub(super) fn new(field: &'a str, cache: Option<(&'a DigestCache, &'a Map)>) -> Worker<'a> {
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
    pub(super) fn ordered(field: &'a str, cache: Option<(&'a DigestCache, &'a Map)>) -> Worker<'a> {
        Worker {
            ordered: true,
            ..Worker::new(field, cache)
        }
    }

    /// The kind of an entry from its `lstat`: `None` for types that are skipped.
    pub(super) fn entry(&mut self, abs: &Path, key: &str, md: &Metadata) -> Result<Option<FileKind>> {
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
    pub(super) fn regular(&mut self, abs: &Path, key: &str, md: &Metadata) -> Result<FileKind> {
        let executable = is_executable(md);
        let stamp = Stamp::of(md);
        let sha256 = match self.cached(key, stamp) {
            Some(sha256) => sha256,
            None => self.hashed(abs, key, stamp)?,
        };
        Ok(FileKind::Regular { executable, sha256 })
    }

    /// The cached digest of a file with this stamp, if any.
    pub(super) fn cached(&mut self, key: &str, stamp: Option<Stamp>) -> Option<[u8; 32]> {
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
    pub(super) fn hashed(&mut self, abs: &Path, key: &str, stamp: Option<Stamp>) -> Result<[u8; 32]> {
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
pub(super) fn hash_jobs(
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
