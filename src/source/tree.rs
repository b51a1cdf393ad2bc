//! Tree snapshots: what the last full walk of a root selected, so that re-checking an unchanged
//! tree costs one `lstat` per folder and per selected file, without reading a folder or matching
//! a pattern.
//!
//! A snapshot ([`Tree`]) holds
//!
//! * every folder the walk read (path relative to the root, stamp from `lstat`), root included;
//! * every ignore file the walk read: the root `.dockerignore` and the `.gitignore` of each folder
//!   it read, with their stamps, whether or not the rules select them as files;
//! * every selected entry (path, regular file or symlink, its folder), sorted by path.
//!
//! [`Tree::replay`] stats the folders and the ignore files; when every stamp is the recorded one,
//! it stats the selected entries (relative to an open folder handle: `fstatat`, which does not
//! walk the path again) and returns the selection with the current executable bits, symlink
//! targets and digests (from the digest cache, or read when a file's stamp changed). Anything
//! else (a changed stamp, a missing folder, an entry of another type, any error) makes it give up,
//! and the caller walks the tree, which records a new snapshot.
//!
//! # Why a replay gives the walk's answer
//!
//! The walk's selection is a function of the names and types of the entries of the folders it
//! reads and of the content of the ignore files it reads (the standard ignores are fixed). A
//! folder it does not read (pruned by a rule) is decided from its name, its type and the rules of
//! its ancestors, so it needs nothing more: its exclusion cannot be undone without changing one of
//! those. (A `.dockerignore` `!` pattern that could reach inside an excluded folder makes the walk
//! read that folder: it is then recorded like any other.)
//!
//! * Creating, deleting or renaming an entry updates the mtime and ctime of its folder (POSIX);
//!   so does replacing an entry by one of another type (that takes an unlink and a create). A
//!   folder replaced by another one, or covered by a mount, has another (device, inode). So an
//!   unchanged folder stamp means an unchanged list of (name, type) in that folder.
//! * An ignore file's content is covered by its own stamp, exactly as a digest is: the kernel sets
//!   ctime on every write and every `utime`, so an in-place edit of a `.gitignore` (which leaves
//!   its folder's stamp alone), even one that restores the mtime, changes its stamp. An ignore
//!   file must be a regular file: a symlink's target can change without any recorded stamp
//!   changing, so a walk that meets a symlinked `.gitignore` or `.dockerignore` (or one the walker
//!   could not read) gives no snapshot.
//! * Racily clean, as in the digest cache: `taken` is the time just before the walk reads
//!   anything, and a snapshot is kept only when every recorded stamp has its mtime and ctime at
//!   least `MIN_AGE` (2 s) older than `taken`. Every read of the walk and every recorded `lstat`
//!   happen after `taken`, and any change after `taken` gives its folder or file a ctime later
//!   than `taken - MIN_AGE`, so different from the recorded one. "Every stamp as recorded" at
//!   replay therefore means "nothing the walk read has changed since `taken`", in whatever order
//!   the walk read and stat'ed things.
//!
//! This trusts the file system's timestamps as the digest cache (and git's index and untracked
//! cache) do. A replay is no more atomic than a walk: a change made during the call may or may not
//! be seen; the next call sees it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::ops::Range;
use std::path::Path;

use super::cache::{checksum, u32_at, u64_at, Stamp};
use super::{FileKind, SourceFile};

mod replay;

/// Persistent file format.
const MAGIC: &[u8; 8] = b"ISTREE\0\0";
const VERSION: u32 = 1;
/// Bytes of a stamped record (folder, ignore file) and of a selected entry.
const STAMPED: usize = 8 + 5 * 8;
const SELECTED: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    at: u32,
    len: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.at as usize..self.at as usize + self.len as usize
    }
}

/// A folder or an ignore file, with its stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamped {
    path: Span,
    stamp: Stamp,
}

/// A selected entry: a regular file or a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Selected {
    path: Span,
    /// Index of its folder in [`Tree::folders`].
    folder: u32,
    symlink: bool,
}

/// The snapshot of one full walk (see the module documentation). Always valid ([`Tree::valid`]):
/// paths are relative and plain, files sorted and consistent with their folders.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tree {
    /// Every path, concatenated.
    text: String,
    /// Sorted by path; the root ("") first.
    folders: Vec<Stamped>,
    rules: Vec<Stamped>,
    /// Sorted by path (bytes): the order of the result.
    files: Vec<Selected>,
}

/// What a walk records for its snapshot.
#[derive(Default)]
pub(crate) struct Record {
    pub folders: Vec<(String, Stamp)>,
    pub rules: Vec<(String, Stamp)>,
    /// The walk met something a snapshot cannot vouch for.
    pub unusable: bool,
}

impl Record {
    pub(crate) fn absorb(&mut self, other: Record) {
        self.folders.extend(other.folders);
        self.rules.extend(other.rules);
        self.unusable |= other.unusable;
    }

    /// A folder the walk read (`rel`: its path, `None` if not UTF-8), and its `.gitignore`.
    /// `ignore_error`: the walker could not read that `.gitignore`.
    pub(crate) fn folder(&mut self, rel: Option<&str>, abs: &Path, ignore_error: bool) {
        let stamp = std::fs::symlink_metadata(abs)
            .ok()
            .filter(|md| md.is_dir())
            .and_then(|md| Stamp::of(&md));
        let (Some(rel), Some(stamp), false) = (rel, stamp, ignore_error) else {
            self.unusable = true;
            return;
        };
        self.folders.push((rel.to_string(), stamp));
        let rule = if rel.is_empty() {
            ".gitignore".to_string()
        } else {
            format!("{rel}/.gitignore")
        };
        self.rule(rule, &abs.join(".gitignore"));
    }

    /// An ignore file the walk reads when it exists (`rel` relative to the root).
    pub(crate) fn rule(&mut self, rel: String, abs: &Path) {
        match std::fs::symlink_metadata(abs) {
            // No entry of that name: creating one changes the folder's stamp.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Ok(md) if md.is_file() => match Stamp::of(&md) {
                Some(stamp) => self.rules.push((rel, stamp)),
                None => self.unusable = true,
            },
            _ => self.unusable = true,
        }
    }
}

/// Is `p` "" or a '/'-separated list of names (no empty, `.` or `..` component)?
fn plain(p: &str) -> bool {
    p.is_empty() || p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

impl Tree {
    /// The snapshot of a walk that started at `taken_ns`, or `None` when it cannot be trusted
    /// (something unusable, or a stamp less than `min_age_ns` older than `taken_ns`).
    /// `files` is the walk's result, sorted by path.
    pub(crate) fn build(
        record: Record,
        files: &[SourceFile],
        taken_ns: i64,
        min_age_ns: i64,
    ) -> Option<Tree> {
        if record.unusable {
            return None;
        }
        let settled = |(_, s): &(String, Stamp)| s.storable(taken_ns, min_age_ns);
        if !record.folders.iter().chain(&record.rules).all(settled) {
            return None;
        }
        let mut text = String::new();
        let mut span = |s: &str| -> Option<Span> {
            let span = Span {
                at: u32::try_from(text.len()).ok()?,
                len: u32::try_from(s.len()).ok()?,
            };
            text.push_str(s);
            u32::try_from(text.len()).ok()?;
            Some(span)
        };
        let mut folder_list = record.folders;
        folder_list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut rule_list = record.rules;
        rule_list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let index: HashMap<&str, u32> = folder_list
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.as_str(), i as u32))
            .collect();
        let mut folders = Vec::with_capacity(folder_list.len());
        for (path, stamp) in &folder_list {
            folders.push(Stamped {
                path: span(path)?,
                stamp: *stamp,
            });
        }
        let mut rules = Vec::with_capacity(rule_list.len());
        for (path, stamp) in &rule_list {
            rules.push(Stamped {
                path: span(path)?,
                stamp: *stamp,
            });
        }
        let mut selected = Vec::with_capacity(files.len());
        for f in files {
            let parent = f.path.rsplit_once('/').map_or("", |(p, _)| p);
            selected.push(Selected {
                path: span(&f.path)?,
                folder: *index.get(parent)?,
                symlink: matches!(f.kind, FileKind::Symlink { .. }),
            });
        }
        let tree = Tree {
            text,
            folders,
            rules,
            files: selected,
        };
        tree.valid().then_some(tree)
    }

    /// Number of selected entries.
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    fn str(&self, span: Span) -> &str {
        &self.text[span.range()]
    }

    /// The structural invariants that [`Tree::replay`] relies on (checked for loaded files: a
    /// damaged file can only be rejected, never give an answer that is not a walk's).
    fn valid(&self) -> bool {
        let get = |s: Span| self.text.get(s.range());
        let mut prev: Option<&str> = None;
        for f in &self.folders {
            let Some(p) = get(f.path) else { return false };
            if !plain(p) || prev.is_some_and(|q| q >= p) {
                return false;
            }
            prev = Some(p);
        }
        if self.folders.first().and_then(|f| get(f.path)) != Some("") {
            return false;
        }
        if !self
            .rules
            .iter()
            .all(|r| get(r.path).is_some_and(|p| !p.is_empty() && plain(p)))
        {
            return false;
        }
        let mut prev: Option<&str> = None;
        for f in &self.files {
            let (Some(p), Some(folder)) = (get(f.path), self.folders.get(f.folder as usize)) else {
                return false;
            };
            let dir = self.str(folder.path);
            let name = if dir.is_empty() {
                Some(p)
            } else {
                p.strip_prefix(dir).and_then(|n| n.strip_prefix('/'))
            };
            if !name.is_some_and(|n| !n.is_empty() && !n.contains('/') && plain(n))
                || prev.is_some_and(|q| q >= p)
            {
                return false;
            }
            prev = Some(p);
        }
        true
    }

    /// The file image:
    ///
    /// ```text
    /// "ISTREE\0\0" version:u32 scope_len:u32 scope text_len:u64 folders:u64 rules:u64 files:u64
    /// text  (folders + rules) × (at:u32 len:u32 dev ino size mtime ctime:u64)
    /// files × (at:u32 len:u32 folder:u32 symlink:u32)  checksum:u64
    /// ```
    pub(crate) fn encode(&self, scope: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            56 + scope.len()
                + self.text.len()
                + (self.folders.len() + self.rules.len()) * STAMPED
                + self.files.len() * SELECTED,
        );
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&(scope.len() as u32).to_le_bytes());
        buf.extend_from_slice(scope);
        for n in [
            self.text.len(),
            self.folders.len(),
            self.rules.len(),
            self.files.len(),
        ] {
            buf.extend_from_slice(&(n as u64).to_le_bytes());
        }
        buf.extend_from_slice(self.text.as_bytes());
        for r in self.folders.iter().chain(&self.rules) {
            buf.extend_from_slice(&r.path.at.to_le_bytes());
            buf.extend_from_slice(&r.path.len.to_le_bytes());
            let s = r.stamp;
            for v in [s.dev, s.ino, s.size, s.mtime_ns as u64, s.ctime_ns as u64] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        for f in &self.files {
            for v in [f.path.at, f.path.len, f.folder, u32::from(f.symlink)] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        let sum = checksum(&buf);
        buf.extend_from_slice(&sum.to_le_bytes());
        buf
    }

    /// Read a file image; `None` if it is damaged, of another version or of another scope.
    pub(crate) fn decode(buf: &[u8], scope: &[u8]) -> Option<Tree> {
        let body = buf.len().checked_sub(8)?;
        if checksum(&buf[..body]).to_le_bytes() != buf[body..] {
            return None;
        }
        let header = MAGIC.len() + 8;
        if body < header || &buf[..8] != MAGIC || u32_at(buf, 8) != VERSION {
            return None;
        }
        let fields = header.checked_add(u32_at(buf, 12) as usize)?;
        if body < fields.checked_add(32)? || &buf[header..fields] != scope {
            return None;
        }
        let count = |i: usize| usize::try_from(u64_at(buf, fields + 8 * i)).ok();
        let (text_len, folders, rules, files) = (count(0)?, count(1)?, count(2)?, count(3)?);
        let text_at = fields + 32;
        let stamped_at = text_at.checked_add(text_len)?;
        let files_at = stamped_at.checked_add(folders.checked_add(rules)?.checked_mul(STAMPED)?)?;
        if files_at.checked_add(files.checked_mul(SELECTED)?)? != body {
            return None;
        }
        let text = std::str::from_utf8(&buf[text_at..stamped_at]).ok()?.to_string();
        let stamped = |i: usize| {
            let r = &buf[stamped_at + i * STAMPED..][..STAMPED];
            Stamped {
                path: Span {
                    at: u32_at(r, 0),
                    len: u32_at(r, 4),
                },
                stamp: Stamp {
                    dev: u64_at(r, 8),
                    ino: u64_at(r, 16),
                    size: u64_at(r, 24),
                    mtime_ns: u64_at(r, 32) as i64,
                    ctime_ns: u64_at(r, 40) as i64,
                },
            }
        };
        let mut selected = Vec::with_capacity(files);
        for i in 0..files {
            let r = &buf[files_at + i * SELECTED..][..SELECTED];
            let symlink = match u32_at(r, 12) {
                0 => false,
                1 => true,
                _ => return None,
            };
            selected.push(Selected {
                path: Span {
                    at: u32_at(r, 0),
                    len: u32_at(r, 4),
                },
                folder: u32_at(r, 8),
                symlink,
            });
        }
        let tree = Tree {
            text,
            folders: (0..folders).map(stamped).collect(),
            rules: (folders..folders + rules).map(stamped).collect(),
            files: selected,
        };
        tree.valid().then_some(tree)
    }
}
