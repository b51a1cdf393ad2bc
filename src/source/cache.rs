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
//! version header and a sha256 trailer, read once per process, rewritten atomically (temporary
//! file + rename) only when the entries changed. A missing, corrupt, foreign or older file is
//! treated as empty, and every cache I/O failure is ignored: the cache only ever saves time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Minimum age of mtime and ctime, relative to the start of the read, for an entry to be stored.
pub(crate) const MIN_AGE: Duration = Duration::from_secs(2);

/// Persistent file format.
const MAGIC: &[u8; 8] = b"ISDIGEST";
const VERSION: u32 = 1;
/// Bytes of an entry after its path: dev, ino, size, mtime, ctime (8 each) and the sha256.
const ENTRY_FIXED: usize = 5 * 8 + 32;

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

/// Entries of one scope, keyed by path relative to the scope.
pub(crate) type Map = HashMap<Box<str>, Entry>;

/// Counters, for tests and the benchmark.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub hits: AtomicU64,
    pub hashed: AtomicU64,
    pub stored: AtomicU64,
    pub writes: AtomicU64,
}

/// How a call's entries replace the scope's entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The call saw every file of the scope: keep exactly its entries (drops deleted files).
    Replace,
    /// The call saw some files: add its entries to the others.
    Merge,
}

pub(crate) struct DigestCache {
    /// Folder of the persistent files (`.../digests`); `None` for in-process only.
    dir: Option<PathBuf>,
    pub(crate) min_age_ns: i64,
    scopes: Mutex<HashMap<Vec<u8>, Arc<Map>>>,
    pub(crate) stats: Stats,
}

impl DigestCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> DigestCache {
        DigestCache {
            dir,
            min_age_ns: MIN_AGE.as_nanos() as i64,
            scopes: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        }
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

    /// Record a call's outcome: `used` are the entries of the files it hit or stored
    /// (`fresh` of them were stored now). Writes the persistent file when something changed.
    pub(crate) fn commit(
        &self,
        scope: &[u8],
        old: &Arc<Map>,
        used: Vec<(Box<str>, Entry)>,
        fresh: usize,
        mode: Commit,
    ) {
        let hits = used.len() - fresh;
        let changed = fresh > 0 || (mode == Commit::Replace && hits != old.len());
        if !changed {
            return;
        }
        let map: Map = match mode {
            Commit::Replace => used.into_iter().collect(),
            Commit::Merge => {
                let mut map = Map::clone(old);
                map.extend(used);
                map
            }
        };
        let map = Arc::new(map);
        self.scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_vec(), map.clone());
        if let Some(file) = self.file_for(scope) {
            if save(&file, scope, &map).is_ok() {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forget the in-process entries (the next call reads the persistent file again).
    #[cfg(test)]
    pub(crate) fn forget_in_process(&self) {
        self.scopes.lock().unwrap().clear();
    }
}

/// Serialize the entries of a scope.
pub(crate) fn encode(scope: &[u8], map: &Map) -> Vec<u8> {
    let paths: usize = map.keys().map(|k| k.len() + 4).sum();
    let mut out = Vec::with_capacity(32 + scope.len() + paths + map.len() * ENTRY_FIXED + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(scope.len() as u32).to_le_bytes());
    out.extend_from_slice(scope);
    out.extend_from_slice(&(map.len() as u64).to_le_bytes());
    for (path, e) in map {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&e.stamp.dev.to_le_bytes());
        out.extend_from_slice(&e.stamp.ino.to_le_bytes());
        out.extend_from_slice(&e.stamp.size.to_le_bytes());
        out.extend_from_slice(&e.stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stamp.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.sha256);
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Parse a persistent file; `None` if it is not a valid file of this version for this scope.
pub(crate) fn decode(bytes: &[u8], scope: &[u8]) -> Option<Map> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut r = Reader { buf: body };
    if r.take(8)? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let scope_len = r.u32()? as usize;
    if r.take(scope_len)? != scope {
        return None;
    }
    let count = usize::try_from(r.u64()?).ok()?;
    // Each entry takes at least ENTRY_FIXED + 4 bytes: bound the allocation by the file size.
    if count > r.buf.len() / (ENTRY_FIXED + 4) {
        return None;
    }
    let mut map = Map::with_capacity(count);
    for _ in 0..count {
        let len = r.u32()? as usize;
        let path = std::str::from_utf8(r.take(len)?).ok()?;
        let fixed = r.take(ENTRY_FIXED)?;
        let word = |i: usize| u64::from_le_bytes(fixed[i * 8..i * 8 + 8].try_into().unwrap());
        let stamp = Stamp {
            dev: word(0),
            ino: word(1),
            size: word(2),
            mtime_ns: word(3) as i64,
            ctime_ns: word(4) as i64,
        };
        let sha256: [u8; 32] = fixed[40..72].try_into().unwrap();
        map.insert(path.into(), Entry { stamp, sha256 });
    }
    if !r.buf.is_empty() {
        return None;
    }
    Some(map)
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn load(file: &Path, scope: &[u8]) -> Option<Map> {
    let bytes = std::fs::read(file).ok()?;
    decode(&bytes, scope)
}

fn save(file: &Path, scope: &[u8], map: &Map) -> std::io::Result<()> {
    let dir = file.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    let name = file.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        now_ns()
    ));
    let result = std::fs::write(&tmp, encode(scope, map)).and_then(|()| std::fs::rename(&tmp, file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The cache folder: `$IMAGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/imagespec`, else
/// `~/.cache/imagespec`.
pub(crate) fn cache_root() -> Option<PathBuf> {
    let nonempty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = nonempty("IMAGESPEC_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(dir) = nonempty("XDG_CACHE_HOME") {
        return Some(dir.join("imagespec"));
    }
    nonempty("HOME").map(|home| home.join(".cache").join("imagespec"))
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
    let dir = cache_root().map(|root| root.join("digests"));
    let mut caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
    Some(
        caches
            .entry(dir.clone())
            .or_insert_with(|| Arc::new(DigestCache::new(dir)))
            .clone(),
    )
}
