//! Where imagespec keeps what it remembers between runs: one rule for every cache (file digests
//! and tree snapshots, existence answers, the native builder's layers and base facts, build
//! locks).
//!
//! The folder is `$IMAGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/imagespec`, else
//! `~/.cache/imagespec` ([`configured_cache_root`]). With none of them set, the caches that may
//! live in the temporary folder use `imagespec-<uid>` there ([`cache_root`]). That is the one
//! place whose name another user can guess and create first, so it is used only when it is a
//! real folder of this user with mode 0700 ([`temp_root`]). The existence cache and the plan's
//! locks take only a configured folder.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The cache folder: [`configured_cache_root`], else `imagespec-<uid>` in the temporary folder
/// when that is this user's private folder (see [`temp_root`]; `None` when it is not).
pub(crate) fn cache_root() -> Option<PathBuf> {
    configured_cache_root().or_else(|| temp_root().ok())
}

/// The cache folder the environment names: `$IMAGESPEC_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/imagespec`, else `~/.cache/imagespec` (empty variables count as unset).
pub(crate) fn configured_cache_root() -> Option<PathBuf> {
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

/// [`super::fs::create_dir`], and `dir` itself made 0700 when it exists with a wider mode and
/// belongs to this user (made by an older imagespec, or by the user's umask).
pub(crate) fn create_own_dir(dir: &Path) -> io::Result<()> {
    super::fs::create_dir(dir)?;
    let md = std::fs::symlink_metadata(dir)?;
    if md.is_dir() && md.mode() & 0o077 != 0 && md.uid() == effective_uid()? {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The uid that owns what this process creates, read from a file it creates (std has no
/// `geteuid`, and the result is what matters here: the owner of new files). The file has no name
/// (or loses it at once), so nothing is left behind.
fn effective_uid() -> io::Result<u32> {
    use std::sync::OnceLock;
    static UID: OnceLock<u32> = OnceLock::new();
    if let Some(uid) = UID.get() {
        return Ok(*uid);
    }
    let uid = tempfile::tempfile()?.metadata()?.uid();
    Ok(*UID.get_or_init(|| uid))
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
    fn an_existing_folder_of_this_user_is_made_private() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_own_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }
}
