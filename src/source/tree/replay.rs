//! Replaying a tree snapshot: the recorded folders and ignore files stat'ed (in parallel for big
//! trees), then the selected entries, each relative to an open handle of its folder (`fstatat`,
//! no walk of the path again), their digests from the digest cache or read when a stamp changed.
//! Why an unchanged set of stamps gives the walk's answer: the parent module's documentation.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Span, Stamp, Tree};
use crate::source::cache::{DigestCache, Map, Outcome};
use crate::source::{walk, FileKind, SourceFile};

/// Entries (folders or files) per unit of parallel work.
const CHUNK: usize = 512;
/// Below this many entries, a replay runs on the calling thread only.
const PARALLEL_MIN: usize = 2048;

impl Tree {
    /// An absolute path from a path relative to the root.
    fn abs(&self, root: &Path, span: Span) -> PathBuf {
        match self.str(span) {
            "" => root.to_path_buf(),
            rel => root.join(rel),
        }
    }

    /// The walk's answer (unsorted order aside, exactly what [`super::hash_all`] returns) and the
    /// digest cache outcome, when nothing the snapshot depends on changed; `None` means "walk".
    pub(crate) fn replay(
        &self,
        root: &Path,
        field: &str,
        cache: (&DigestCache, &Map),
    ) -> Option<(Vec<SourceFile>, Outcome)> {
        let threads = |n: usize| if n >= PARALLEL_MIN { walk::threads() } else { 1 };
        // Folders, then ignore files: no folder was read and no rule was matched.
        let nf = self.folders.len();
        let stamped = nf + self.rules.len();
        par_chunks(stamped, threads(stamped), |range| {
            range
                .map(|i| match self.folders.get(i) {
                    Some(f) => (f, true),
                    None => (&self.rules[i - nf], false),
                })
                .all(|(r, is_dir)| sys::unchanged(&self.abs(root, r.path), r.stamp, is_dir))
                .then_some(())
        })?;
        // The selected entries, in order.
        let parts = par_chunks(self.files.len(), threads(self.files.len()), |range| {
            self.replay_files(root, field, cache, range)
        })?;
        let mut files = Vec::with_capacity(self.files.len());
        let mut outcome = Outcome::default();
        for (part, o) in parts {
            files.extend(part);
            outcome.absorb(o);
        }
        Some((files, outcome))
    }

    fn replay_files(
        &self,
        root: &Path,
        field: &str,
        cache: (&DigestCache, &Map),
        range: Range<usize>,
    ) -> Option<(Vec<SourceFile>, Outcome)> {
        let mut worker = crate::source::Worker::ordered(field, Some(cache));
        let mut out = Vec::with_capacity(range.len());
        let mut open: Option<(u32, sys::Dir)> = None;
        for f in &self.files[range] {
            let dir = match open.take() {
                Some((i, dir)) if i == f.folder => (i, dir),
                _ => (
                    f.folder,
                    sys::Dir::open(&self.abs(root, self.folders[f.folder as usize].path))?,
                ),
            };
            let path = self.str(f.path);
            let dir_len = self.folders[f.folder as usize].path.len as usize;
            let name = if dir_len == 0 { path } else { &path[dir_len + 1..] };
            let facts = dir.1.lstat(name)?;
            let kind = match (f.symlink, facts.kind) {
                (true, sys::Kind::Symlink) => FileKind::Symlink {
                    target: dir.1.read_link(name)?,
                },
                (false, sys::Kind::Regular) => {
                    let sha256 = match worker.cached(path, facts.stamp) {
                        Some(sha256) => sha256,
                        None => worker.hashed(&root.join(path), path, facts.stamp).ok()?,
                    };
                    FileKind::Regular {
                        executable: facts.executable,
                        sha256,
                    }
                }
                _ => return None,
            };
            out.push(SourceFile {
                path: path.to_string(),
                kind,
            });
            open = Some(dir);
        }
        Some((out, worker.outcome))
    }
}

/// Run `job` on the chunks of `0..n` on up to `threads` threads (this one included). The results
/// in chunk order, or `None` (as soon as possible) if a job gives `None`.
fn par_chunks<T: Send>(
    n: usize,
    threads: usize,
    job: impl Fn(Range<usize>) -> Option<T> + Sync,
) -> Option<Vec<T>> {
    let chunks = n.div_ceil(CHUNK);
    let range = |c: usize| c * CHUNK..((c + 1) * CHUNK).min(n);
    if threads <= 1 || chunks <= 1 {
        return (0..chunks).map(|c| job(range(c))).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<T>>> = (0..chunks).map(|_| Mutex::new(None)).collect();
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= chunks {
                return;
            }
            match job(range(c)) {
                Some(t) => *slots[c].lock().unwrap_or_else(|e| e.into_inner()) = Some(t),
                None => failed.store(true, Ordering::Relaxed),
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(chunks) {
            s.spawn(work);
        }
        work();
    });
    if failed.into_inner() {
        return None;
    }
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// Stats through open folder handles (`fstatat`), with rustix.
#[cfg(unix)]
mod sys {
    use std::path::Path;

    use rustix::fd::OwnedFd;
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, CWD};

    use super::Stamp;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Kind {
        Regular,
        Symlink,
        Dir,
        Other,
    }

    pub(super) struct Facts {
        pub kind: Kind,
        pub executable: bool,
        pub stamp: Option<Stamp>,
    }

    // The field types of `stat` differ between platforms: some casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    fn facts(st: &Stat) -> Facts {
        let ns = |s: i64, n: i64| s.checked_mul(1_000_000_000)?.checked_add(n);
        let stamp = (|| {
            Some(Stamp {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
                size: st.st_size as u64,
                mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64)?,
                ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64)?,
            })
        })();
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::Regular,
            FileType::Symlink => Kind::Symlink,
            FileType::Directory => Kind::Dir,
            _ => Kind::Other,
        };
        Facts {
            kind,
            executable: st.st_mode as u32 & 0o111 != 0,
            stamp,
        }
    }

    /// Is the entry at `path` (not followed) of the same type, with the same stamp?
    pub(super) fn unchanged(path: &Path, stamp: Stamp, is_dir: bool) -> bool {
        let Ok(st) = rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let f = facts(&st);
        f.kind == if is_dir { Kind::Dir } else { Kind::Regular } && f.stamp == Some(stamp)
    }

    /// An open folder.
    pub(super) struct Dir(OwnedFd);

    impl Dir {
        pub(super) fn open(path: &Path) -> Option<Dir> {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let mode = OFlags::PATH;
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let mode = OFlags::RDONLY;
            let flags = mode | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rustix::fs::openat(CWD, path, flags, Mode::empty()).ok().map(Dir)
        }

        /// `lstat` of an entry of the folder.
        pub(super) fn lstat(&self, name: &str) -> Option<Facts> {
            rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .map(|st| facts(&st))
        }

        /// A symlink's target, if it is valid UTF-8.
        pub(super) fn read_link(&self, name: &str) -> Option<String> {
            rustix::fs::readlinkat(&self.0, name, Vec::new())
                .ok()?
                .into_string()
                .ok()
        }
    }
}

/// Elsewhere snapshots are never replayed (stamps are unix-only, so none is ever built either).
#[cfg(not(unix))]
mod sys {
    use std::path::Path;

    use super::Stamp;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Kind {
        Regular,
        Symlink,
    }

    pub(super) struct Facts {
        pub kind: Kind,
        pub executable: bool,
        pub stamp: Option<Stamp>,
    }

    pub(super) fn unchanged(_path: &Path, _stamp: Stamp, _is_dir: bool) -> bool {
        false
    }

    pub(super) struct Dir;

    impl Dir {
        pub(super) fn open(_path: &Path) -> Option<Dir> {
            None
        }

        pub(super) fn lstat(&self, _name: &str) -> Option<Facts> {
            None
        }

        pub(super) fn read_link(&self, _name: &str) -> Option<String> {
            None
        }
    }
}
