//! The digest cache: re-hashing an unchanged tree costs one `lstat` per file.
//!
//! An entry maps a file (cache scope + path relative to it) to its stat stamp
//! `(device, inode, size, mtime ns, ctime ns)` and the sha256 of its content. A lookup is a hit only
//! when the file's current stamp is identical.
//!
//! # Why a hit can never be stale
//!
//! The danger is a file whose content changes while its stamp does not: a rewrite of the same size
//! within the same timestamp tick (timestamps are coarse: the kernel's clock tick, or 1–2 s on some
//! file systems) or a rewrite followed by `touch -d`/`utime` restoring the old mtime.
//!
//! * ctime is part of the stamp. The kernel sets it to the current time on every write or
//!   metadata change (including `utime`), and users cannot set it, so `touch -d` tricks change it.
//! * An entry is stored only when the file's mtime and ctime are both at least
//!   [`MIN_AGE`] older than the moment we started reading it (`SystemTime::now()` taken after the
//!   `lstat`, before `open`), like git's "racily clean" rule. Any write that happens after we start
//!   reading gets a ctime of (about) that moment or later, so it cannot share the stored ctime,
//!   which is at least 2 s older: the stamp changes and the next lookup misses. A write between
//!   our `lstat` and our read is harmless: either it changed the ctime (miss next time) or it
//!   landed in the same tick as the stored ctime, in which case the content we read and stored
//!   already includes it.
//! * Files changed "just now" are therefore hashed again on every call until they are 2 s old.
//!
//! This trusts the kernel's timestamps as git's index does (a wall clock stepping back by more
//! than 2 s, or a file system that does not maintain ctime, would defeat it).
//!
//! # Storage
//!
//! In-process: one map per scope, shared by every call in the process. Persistent: one file per
//! scope in `<cache dir>/digests/<hex sha256 of the scope id>`, a compact binary file with a
//! version header and a checksum, read once per process, rewritten atomically (temporary file +
//! rename) only when the entries changed. The file holds its own hash table, and the in-memory
//! map *is* the file image: loading costs a read and a checksum, with no work per entry. Its
//! records are in key order, for lookups in path order ([`Map::get_near`]). A missing, corrupt,
//! foreign or older file is treated as empty, and every cache I/O failure is ignored: the cache
//! only ever saves time.
//!
//! The cache also keeps each root's tree snapshot ([`Tree`], in memory and in
//! `<same name>.tree`), which has its own correctness argument (see the `tree` module).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

mod table;

pub(crate) use table::{checksum, u32_at, u64_at, Map};

use super::tree::Tree;
use crate::support::fs::write_whole;

/// Minimum age of mtime and ctime, relative to the start of the read, for an entry to be stored.
pub(crate) const MIN_AGE: Duration = Duration::from_secs(2);

/// A file's identity as far as the cache is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    /// The stamp of a file from its (l)stat; `None` where the platform lacks the fields.
    #[cfg(unix)]
    pub(crate) fn of(md: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| s.checked_mul(1_000_000_000)?.checked_add(n);
        Some(Stamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime_ns: ns(md.mtime(), md.mtime_nsec())?,
            ctime_ns: ns(md.ctime(), md.ctime_nsec())?,
        })
    }

    #[cfg(not(unix))]
    pub(crate) fn of(_md: &std::fs::Metadata) -> Option<Stamp> {
        None
    }

    /// May a digest read from a file with this stamp, starting at `read_start_ns`, be stored?
    pub(crate) fn storable(&self, read_start_ns: i64, min_age_ns: i64) -> bool {
        let limit = read_start_ns.saturating_sub(min_age_ns);
        self.mtime_ns <= limit && self.ctime_ns <= limit
    }
}

/// Nanoseconds since the epoch, now.
pub(crate) fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub stamp: Stamp,
    pub sha256: [u8; 32],
}

/// Counters, for tests and the benchmark.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub hits: AtomicU64,
    pub hashed: AtomicU64,
    pub stored: AtomicU64,
    /// Writes of digest files.
    pub writes: AtomicU64,
    /// `hash_all` calls answered by replaying a tree snapshot (no walk).
    pub replays: AtomicU64,
    /// `hash_all` calls that walked the tree.
    pub walks: AtomicU64,
    /// Writes of tree snapshot files.
    pub tree_writes: AtomicU64,
}

/// How a call's entries replace the scope's entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The call saw every file of the scope: keep only the entries of those files (drops the
    /// entries of deleted files).
    Replace,
    /// The call saw some files: add its entries to the others.
    Merge,
}

/// What one call learnt, for [`DigestCache::commit`].
#[derive(Default)]
pub(crate) struct Outcome {
    /// Files seen that had an entry (hit or not).
    pub known: usize,
    /// Entries stored by this call.
    pub fresh: Vec<(String, Entry)>,
    /// Files whose digest came from the cache.
    pub hits: u64,
    /// Files read and hashed.
    pub hashed: u64,
}

impl Outcome {
    pub(crate) fn absorb(&mut self, other: Outcome) {
        self.known += other.known;
        self.fresh.extend(other.fresh);
        self.hits += other.hits;
        self.hashed += other.hashed;
    }
}

/// What this process knows of a scope's tree snapshot.
#[derive(Clone)]
enum TreeState {
    /// Not looked for yet: the persistent file (if any) has not been read.
    Unknown,
    /// No usable snapshot (and no persistent file, as far as this process knows).
    Absent,
    Present(Arc<Tree>),
}

pub(crate) struct DigestCache {
    /// Folder of the persistent files (`.../digests`); `None` for in-process only.
    dir: Option<PathBuf>,
    pub(crate) min_age_ns: i64,
    /// The racily-clean margin of tree snapshots ([`MIN_AGE`]; tests lower it).
    pub(crate) tree_min_age_ns: i64,
    scopes: Mutex<HashMap<Vec<u8>, Arc<Map>>>,
    trees: Mutex<HashMap<Vec<u8>, TreeState>>,
    pub(crate) stats: Stats,
}

impl DigestCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> DigestCache {
        DigestCache {
            dir,
            min_age_ns: MIN_AGE.as_nanos() as i64,
            tree_min_age_ns: MIN_AGE.as_nanos() as i64,
            scopes: Mutex::new(HashMap::new()),
            trees: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        }
    }

    /// The persistent tree snapshot file of a scope (beside its digest file).
    pub(crate) fn tree_file_for(&self, scope: &[u8]) -> Option<PathBuf> {
        let mut file = self.file_for(scope)?.into_os_string();
        file.push(".tree");
        Some(PathBuf::from(file))
    }

    /// The tree snapshot of a scope, if there is a valid one (read from disk on first use in this
    /// process).
    pub(crate) fn tree(&self, scope: &[u8]) -> Option<Arc<Tree>> {
        let state = self
            .trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned();
        match state.unwrap_or(TreeState::Unknown) {
            TreeState::Present(tree) => return Some(tree),
            TreeState::Absent => return None,
            TreeState::Unknown => {}
        }
        let loaded = self
            .tree_file_for(scope)
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| Tree::decode(&bytes, scope))
            .map(Arc::new);
        let state = match &loaded {
            Some(tree) => TreeState::Present(tree.clone()),
            None => TreeState::Absent,
        };
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        match trees.entry(scope.to_vec()).or_insert(state) {
            TreeState::Present(tree) => Some(tree.clone()),
            _ => None,
        }
    }

    /// Record the snapshot of a full walk (`None`: the walk could not give a trusted one, so the
    /// old one, which no longer matches the tree, is dropped). Writes or removes the persistent
    /// file only when this changes what it holds.
    pub(crate) fn set_tree(&self, scope: &[u8], tree: Option<Tree>) {
        let old = self
            .trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned();
        let old = old.unwrap_or(TreeState::Unknown);
        let file = self.tree_file_for(scope);
        let state = match tree {
            Some(tree) => {
                if matches!(&old, TreeState::Present(t) if **t == tree) {
                    return;
                }
                if let Some(file) = &file {
                    if write_whole(file, &tree.encode(scope)).is_ok() {
                        self.stats.tree_writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                TreeState::Present(Arc::new(tree))
            }
            None => {
                if matches!(old, TreeState::Absent) {
                    return;
                }
                if let Some(file) = &file {
                    let _ = std::fs::remove_file(file);
                }
                TreeState::Absent
            }
        };
        self.trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_vec(), state);
    }

    /// The persistent file of a scope.
    pub(crate) fn file_for(&self, scope: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(data_encoding::HEXLOWER.encode(&Sha256::digest(scope))))
    }

    /// The entries of a scope (loaded from disk on first use in this process).
    pub(crate) fn snapshot(&self, scope: &[u8]) -> Arc<Map> {
        if let Some(map) = self.scopes.lock().unwrap_or_else(|e| e.into_inner()).get(scope) {
            return map.clone();
        }
        let loaded = self
            .file_for(scope)
            .and_then(|f| load(&f, scope))
            .unwrap_or_default();
        let loaded = Arc::new(loaded);
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        scopes.entry(scope.to_vec()).or_insert(loaded).clone()
    }

    /// Record a call's outcome. `present` are the keys of the regular files the call saw
    /// (used by [`Commit::Replace`]). Writes the persistent file when the entries changed.
    pub(crate) fn commit<'k>(
        &self,
        scope: &[u8],
        old: &Map,
        present: impl Iterator<Item = &'k str>,
        outcome: Outcome,
        mode: Commit,
    ) {
        self.stats.hits.fetch_add(outcome.hits, Ordering::Relaxed);
        self.stats.hashed.fetch_add(outcome.hashed, Ordering::Relaxed);
        self.stats
            .stored
            .fetch_add(outcome.fresh.len() as u64, Ordering::Relaxed);
        let changed = !outcome.fresh.is_empty() || (mode == Commit::Replace && outcome.known != old.len());
        if !changed {
            return;
        }
        let map = match mode {
            // Entries of files still present are kept even when they missed: a lookup checks the
            // stamp, so an outdated entry is only useless, never wrong.
            Commit::Replace => {
                let kept: Vec<(&str, Entry)> = present.filter_map(|k| Some((k, old.get(k)?))).collect();
                let fresh = outcome.fresh.iter().map(|(k, e)| (k.as_str(), *e));
                Map::build(scope, kept.into_iter().chain(fresh))
            }
            Commit::Merge => {
                let fresh = outcome.fresh.iter().map(|(k, e)| (k.as_str(), *e));
                Map::build(scope, old.iter().chain(fresh))
            }
        };
        let map = Arc::new(map);
        self.scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_vec(), map.clone());
        if let Some(file) = self.file_for(scope) {
            if write_whole(&file, map.bytes()).is_ok() {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forget the in-process entries (the next call reads the persistent file again).
    #[cfg(test)]
    pub(crate) fn forget_in_process(&self) {
        self.scopes.lock().unwrap().clear();
        self.trees.lock().unwrap().clear();
    }
}

fn load(file: &Path, scope: &[u8]) -> Option<Map> {
    Map::parse(std::fs::read(file).ok()?, scope)
}

/// Is the digest cache disabled (`IMAGESPEC_NO_DIGEST_CACHE` set to anything but "" or "0")?
pub(crate) fn disabled() -> bool {
    std::env::var_os("IMAGESPEC_NO_DIGEST_CACHE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// One cache per persistent folder, for the life of the process.
static CACHES: LazyLock<Mutex<HashMap<Option<PathBuf>, Arc<DigestCache>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The process-wide cache as the environment configures it, or `None` when disabled.
pub(crate) fn global() -> Option<Arc<DigestCache>> {
    if disabled() {
        return None;
    }
    let dir = crate::support::dirs::cache_root().map(|root| root.join("digests"));
    let mut caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
    Some(
        caches
            .entry(dir.clone())
            .or_insert_with(|| Arc::new(DigestCache::new(dir)))
            .clone(),
    )
}
