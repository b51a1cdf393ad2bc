//! Folders and files only this user can read or change: imagespec's caches and temporary data
//! (digests of source files, layers of images not yet pushed, credentials for uv) often live in
//! places other users reach: the temporary folder, a cache folder set by IMAGESPEC_CACHE_DIR.
//!
//! Every folder imagespec creates there gets mode 0700 and every file 0600, from the moment it
//! exists (the mode is given to `mkdir`/`open`, never set afterwards). Where the caches go, and
//! the check of the one cache folder another user could make first: [`super::dirs`].
//!
//! Every cache file is written through [`write_whole`], so a reader (another process, or the next
//! run after a crash or a full disk) finds the old file or the new one, never half of one.

use std::fs::DirBuilder;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` and its missing parents with mode 0700. Folders that exist are left as they are.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// A new file at `path` (which must not exist) holding `bytes`, mode 0600.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Makes the temporary file names of concurrent writers in one process distinct.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `file` whole or not at all (a temporary file beside it, then a rename), readable by this user only (caches record which files a
/// project has, which images exist and how they were made): folders made 0700, the file 0600.
pub(crate) fn write_whole(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = file.parent().ok_or(io::ErrorKind::InvalidInput)?;
    create_dir(dir)?;
    let name = file.file_name().ok_or(io::ErrorKind::InvalidInput)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_new(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a full disk under `p` is called everywhere: the folder, and the two ways on.
pub(crate) fn no_space(p: &Path) -> String {
    let dir = if p.is_dir() { p } else { p.parent().unwrap_or(p) };
    format!(
        "no space left on device in {}: free space or set IMAGESPEC_CACHE_DIR",
        dir.display()
    )
}

/// A folder only this user can enter (mode 0700 from its `mkdir`), removed with everything in it
/// when dropped, also on errors and panics: a build keeps its context, secrets and layers in one.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A new `<prefix>-<pid>-<random>` in the temporary folder.
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), prefix)
    }

    /// A new `<prefix>-<pid>-<random>` in `parent`, which must exist.
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("{prefix}-{}-", std::process::id()))
            .rand_bytes(16)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map(TempDir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A file only this user can read (mode 0600 from its `open`), holding the bytes it was made
/// with, removed when dropped: what a program run by imagespec reads once (uv's index
/// credentials, a blob to upload).
pub struct TempFile(tempfile::TempPath);

impl TempFile {
    /// A new `<prefix>-<pid>-<random><suffix>` in `dir` holding `bytes`; removed again when
    /// writing them fails.
    pub fn new_in(dir: &Path, prefix: &str, suffix: &str, bytes: &[u8]) -> io::Result<TempFile> {
        let mut f = tempfile::Builder::new()
            .prefix(&format!("{prefix}-{}-", std::process::id()))
            .suffix(suffix)
            .rand_bytes(16)
            .tempfile_in(dir)?;
        f.write_all(bytes)?;
        Ok(TempFile(f.into_temp_path()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn new_folders_and_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let deep = d.path().join("a/b");
        create_dir(&deep).unwrap();
        assert_eq!((mode(&d.path().join("a")), mode(&deep)), (0o700, 0o700));
        assert_eq!(mode(d.path()), 0o755, "an existing folder is left alone");
        write_new(&deep.join("f"), b"x").unwrap();
        assert_eq!(mode(&deep.join("f")), 0o600);
        assert!(
            write_new(&deep.join("f"), b"y").is_err(),
            "never over an existing file"
        );
    }

    #[test]
    fn temp_dir_is_private_and_removed_on_drop() {
        let d = TempDir::new("imagespec-test").unwrap();
        let p = d.path().to_path_buf();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("imagespec-test-{}-", std::process::id())),
            "{name}"
        );
        assert_eq!(mode(&p), 0o700);
        std::fs::write(p.join("f"), "x").unwrap();
        drop(d);
        assert!(!p.exists());
    }
}
