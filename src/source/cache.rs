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
///
/// An open-addressing table over one string of all paths: no allocation per entry, so that a
/// persistent file of 50,000 entries loads in a few milliseconds.
#[derive(Clone, Default)]
pub(crate) struct Map {
    names: String,
    slots: Vec<Slot>,
    /// Indices into `slots`, `EMPTY` for a free cell; the length is zero or a power of two.
    table: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Slot {
    off: u32,
    len: u32,
    entry: Entry,
}

const EMPTY: u32 = u32::MAX;

/// FxHash-style hash of a key, 8 bytes at a time.
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // murmur3's fmix64, so that every input bit reaches the low bits used as table index.
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Map {
    pub(crate) fn with_capacity(entries: usize, name_bytes: usize) -> Map {
        let mut map = Map {
            names: String::with_capacity(name_bytes),
            slots: Vec::with_capacity(entries),
            table: Vec::new(),
        };
        map.resize((entries * 2).next_power_of_two().max(16));
        map
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn name(&self, slot: &Slot) -> &str {
        &self.names[slot.off as usize..(slot.off + slot.len) as usize]
    }

    /// The slot holding `key`, or the free cell where it would go.
    fn find(&self, key: &str) -> std::result::Result<usize, usize> {
        let mask = self.table.len() - 1;
        let mut i = key_hash(key.as_bytes()) as usize & mask;
        loop {
            match self.table[i] {
                EMPTY => return Err(i),
                s if self.name(&self.slots[s as usize]) == key => return Ok(s as usize),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        if self.table.is_empty() {
            return None;
        }
        self.find(key).ok().map(|s| &self.slots[s].entry)
    }

    #[cfg(test)]
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.find(key).ok().map(|s| &mut self.slots[s].entry)
    }

    /// Insert or replace.
    pub(crate) fn insert(&mut self, key: &str, entry: Entry) {
        if (self.slots.len() + 1) * 2 > self.table.len() {
            self.resize((self.table.len() * 2).max(16));
        }
        match self.find(key) {
            Ok(s) => self.slots[s].entry = entry,
            Err(cell) => {
                let off = self.names.len() as u32;
                self.names.push_str(key);
                self.table[cell] = self.slots.len() as u32;
                self.slots.push(Slot {
                    off,
                    len: key.len() as u32,
                    entry,
                });
            }
        }
    }

    fn resize(&mut self, cells: usize) {
        self.table = vec![EMPTY; cells];
        for s in 0..self.slots.len() {
            let Err(cell) = self.find(self.name(&self.slots[s])) else {
                unreachable!("duplicate key")
            };
            self.table[cell] = s as u32;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.slots.iter().map(|s| (self.name(s), &s.entry))
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().all(|(k, e)| other.get(k) == Some(e))
    }
}

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
}

impl Outcome {
    pub(crate) fn absorb(&mut self, other: Outcome) {
        self.known += other.known;
        self.fresh.extend(other.fresh);
    }
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
        let changed = !outcome.fresh.is_empty() || (mode == Commit::Replace && outcome.known != old.len());
        if !changed {
            return;
        }
        let mut map = match mode {
            Commit::Replace => {
                // Entries of files still present are kept even when they missed: a lookup checks
                // the stamp, so an outdated entry is only useless, never wrong.
                let mut map = Map::with_capacity(outcome.known + outcome.fresh.len(), 0);
                for key in present {
                    if let Some(e) = old.get(key) {
                        map.insert(key, *e);
                    }
                }
                map
            }
            Commit::Merge => old.clone(),
        };
        for (key, entry) in &outcome.fresh {
            map.insert(key, *entry);
        }
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

/// Checksum of the persistent file: detects truncation and corruption (not tampering: whoever
/// can write the cache folder can write the sources). Four independent multiply-rotate lanes;
/// each step is a bijection of the lane, so any single changed 8-byte word changes the result.
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(31);
    let mut lanes = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = step(
                *lane,
                u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().unwrap()),
            );
        }
    }
    let mut h = step(0, bytes.len() as u64);
    for lane in lanes {
        h = step(h, lane);
    }
    for b in blocks.remainder() {
        h = step(h, u64::from(*b));
    }
    h ^ (h >> 32)
}

/// Serialize the entries of a scope:
///
/// ```text
/// "ISDIGEST" version:u32 scope_len:u32 scope count:u64 names_len:u64 names
/// count × (off:u32 len:u32 dev:u64 ino:u64 size:u64 mtime_ns:i64 ctime_ns:i64 sha256:[32])
/// checksum:u64                                   (all integers little-endian)
/// ```
pub(crate) fn encode(scope: &[u8], map: &Map) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + scope.len() + map.names.len() + map.len() * RECORD + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(scope.len() as u32).to_le_bytes());
    out.extend_from_slice(scope);
    out.extend_from_slice(&(map.len() as u64).to_le_bytes());
    out.extend_from_slice(&(map.names.len() as u64).to_le_bytes());
    out.extend_from_slice(map.names.as_bytes());
    for s in &map.slots {
        let e = &s.entry;
        out.extend_from_slice(&s.off.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
        out.extend_from_slice(&e.stamp.dev.to_le_bytes());
        out.extend_from_slice(&e.stamp.ino.to_le_bytes());
        out.extend_from_slice(&e.stamp.size.to_le_bytes());
        out.extend_from_slice(&e.stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stamp.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.sha256);
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Bytes of one record.
const RECORD: usize = 8 + 5 * 8 + 32;

/// Parse a persistent file; `None` if it is not a valid file of this version for this scope.
pub(crate) fn decode(bytes: &[u8], scope: &[u8]) -> Option<Map> {
    let body_len = bytes.len().checked_sub(8)?;
    let (body, sum) = bytes.split_at(body_len);
    if checksum(body).to_le_bytes() != sum {
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
    let names_len = usize::try_from(r.u64()?).ok()?;
    let names = std::str::from_utf8(r.take(names_len)?).ok()?;
    if names_len > u32::MAX as usize || r.buf.len() != count.checked_mul(RECORD)? {
        return None;
    }
    let mut map = Map::with_capacity(count, 0);
    map.names = names.to_string();
    for record in r.buf.chunks_exact(RECORD) {
        let word = |i: usize| u64::from_le_bytes(record[8 + i * 8..16 + i * 8].try_into().unwrap());
        let off = u32::from_le_bytes(record[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(record[4..8].try_into().unwrap());
        let (start, end) = (off as usize, off as usize + len as usize);
        if end > names.len() || !names.is_char_boundary(start) || !names.is_char_boundary(end) {
            return None;
        }
        let stamp = Stamp {
            dev: word(0),
            ino: word(1),
            size: word(2),
            mtime_ns: word(3) as i64,
            ctime_ns: word(4) as i64,
        };
        let sha256: [u8; 32] = record[48..80].try_into().unwrap();
        let entry = Entry { stamp, sha256 };
        match map.find(&names[start..end]) {
            Ok(s) => map.slots[s].entry = entry,
            Err(cell) => {
                map.table[cell] = map.slots.len() as u32;
                map.slots.push(Slot { off, len, entry });
            }
        }
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

/// Makes the temporary file names of concurrent writers in one process distinct.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn save(file: &Path, scope: &[u8], map: &Map) -> std::io::Result<()> {
    let dir = file.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::create_dir_all(dir)?;
    let name = file.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
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
