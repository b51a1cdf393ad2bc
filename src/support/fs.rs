//! Folders and files only this user can read or change: imagespec's caches and temporary data
//! (digests of source files, layers of images not yet pushed, credentials for uv) often live in
//! places other users reach: the temporary folder, a cache folder set by IMAGESPEC_CACHE_DIR.
//!
//! Every folder imagespec creates there gets mode 0700 and every file 0600, from the moment it
//! exists (the mode is given to `mkdir`/`open`, never set afterwards). The one place whose name
//! another user can guess and create first is the fallback cache in the temporary folder
//! ([`temp_root`]): it is used only when it is a real folder of this user with mode 0700.

use std::fs::DirBuilder;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` and its missing parents with mode 0700. Folders that exist are left as they are.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// [`create_dir`], and `dir` itself made 0700 when it exists with a wider mode and belongs to this
/// user (made by an older imagespec, or by the user's umask).
pub(crate) fn create_own_dir(dir: &Path) -> io::Result<()> {
    create_dir(dir)?;
    let md = std::fs::symlink_metadata(dir)?;
    if md.is_dir() && md.mode() & 0o077 != 0 && md.uid() == effective_uid()? {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
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

/// The uid that owns what this process creates, read from a file it creates (std has no
/// `geteuid`, and the result is what matters here: the owner of new files).
fn effective_uid() -> io::Result<u32> {
    use std::sync::OnceLock;
    static UID: OnceLock<u32> = OnceLock::new();
    if let Some(uid) = UID.get() {
        return Ok(*uid);
    }
    let dir = std::env::temp_dir();
    for _ in 0..16 {
        let probe = dir.join(format!(
            ".imagespec-uid-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
        {
            Ok(f) => {
                let uid = f.metadata().map(|m| m.uid());
                let _ = std::fs::remove_file(&probe);
                return Ok(*UID.get_or_init(|| uid.unwrap_or(u32::MAX)));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot create a file in the temporary folder"))
}

/// `imagespec-<uid>` in the temporary folder: the cache when no cache folder is configured (no
/// IMAGESPEC_CACHE_DIR, XDG_CACHE_HOME or HOME). Created 0700 when missing; an existing one is
/// used only when it is a folder (not a link) of this user that nobody else can enter, since
/// another user could have made it first to plant cache entries or read them.
pub(crate) fn temp_root() -> io::Result<PathBuf> {
    let uid = effective_uid()?;
    let dir = std::env::temp_dir().join(format!("imagespec-{uid}"));
    match DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let md = std::fs::symlink_metadata(&dir)?;
    if !md.is_dir() || md.uid() != uid || md.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a folder of this user (uid {uid}) with mode 0700 (another user may have made it); \
                 remove it, or set IMAGESPEC_CACHE_DIR to a folder of your own",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let old = d.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_own_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }
}
