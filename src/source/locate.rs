//! Where a path given by the user lies relative to a source root: the folder a root names,
//! listed files placed under it (lexically, or through the root's canonical location when the
//! caller resolved symlinks in one and not the other), and the '/'-separated keys the selection
//! and the cache use.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::rules;
use crate::error::{Error, Result};

/// The absolute folder to walk for a root, or the error the user should see.
pub(super) fn folder_root(root: &Path, field: &str) -> Result<PathBuf> {
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
pub(super) struct Locator<'r> {
    root: &'r Path,
    canonical_root: Option<Option<PathBuf>>,
    /// Folder (bytes, as listed) -> its path relative to the canonical root, if it lies there.
    outside: HashMap<Vec<u8>, Option<PathBuf>>,
    /// Absolute folder -> canonical location.
    canonical: HashMap<PathBuf, Option<PathBuf>>,
}

impl<'r> Locator<'r> {
    pub(super) fn new(root: &'r Path) -> Locator<'r> {
        Locator {
            root,
            canonical_root: None,
            outside: HashMap::new(),
            canonical: HashMap::new(),
        }
    }

    /// The path of `file` relative to the root when it lies under it (only normal components).
    pub(super) fn relative(&mut self, file: &Path) -> Option<PathBuf> {
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
pub(super) fn clean_rel(rel: &str) -> String {
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
pub(super) fn posix(rel: &str) -> String {
    if std::path::MAIN_SEPARATOR == '/' {
        rel.to_string()
    } else {
        rel.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

pub(super) fn non_utf8(field: &str, path: &Path) -> Error {
    Error::source(
        field,
        path,
        "file name is not valid UTF-8; rename it or exclude it with .dockerignore",
    )
}
