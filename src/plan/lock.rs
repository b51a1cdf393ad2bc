//! One build of an image at a time across processes: two processes running the same plan at
//! once serialise on a lock file per image, and the second one checks the registry again before
//! building, since the first may have pushed the image meanwhile.

use super::check::built_meanwhile;
use super::{Event, Node, PlanOptions};
use crate::error::{Error, Result};
use std::fs::File;
use std::path::PathBuf;

/// What waiting for an image's lock gave.
pub(super) enum Held {
    /// The lock, held until dropped: build the image.
    Lock(File),
    /// Another process held the lock and the image exists now: nothing to build.
    BuiltMeanwhile,
}

/// The image's lock; when another process holds it, says so, waits for it, and then asks
/// whether that process built the image (unless it is force-pushed).
pub(super) fn hold(node: &Node, options: &PlanOptions, on_event: &(dyn Fn(Event) + Sync)) -> Result<Held> {
    if let Some(lock) = lock_image(options, &node.image)? {
        return Ok(Held::Lock(lock));
    }
    on_event(Event::Warning {
        image: node.image.clone(),
        message: "another process is building it; waiting".into(),
    });
    let lock = lock_image_wait(options, &node.image)?;
    if !node.spec.force_push && built_meanwhile(node, options) {
        return Ok(Held::BuiltMeanwhile);
    }
    Ok(Held::Lock(lock))
}

fn lock_path(options: &PlanOptions, image: &str) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let dir = match &options.lock_dir {
        Some(d) => d.clone(),
        None => crate::support::dirs::configured_cache_root()
            .map(|d| d.join("locks"))
            .unwrap_or_else(|| std::env::temp_dir().join("imagespec-locks")),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::build(format!("cannot create the lock folder {}: {e}", dir.display())))?;
    let digest = Sha256::digest(image.as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{name}.lock")))
}

fn open_lock(options: &PlanOptions, image: &str) -> Result<File> {
    let path = lock_path(options, image)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::build(format!("cannot open the lock file {}: {e}", path.display())))
}

/// The image's lock when free now, `None` when another process holds it.
fn lock_image(options: &PlanOptions, image: &str) -> Result<Option<File>> {
    let file = open_lock(options, image)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::build(format!("cannot lock {image}: {e}"))),
    }
}

fn lock_image_wait(options: &PlanOptions, image: &str) -> Result<File> {
    let file = open_lock(options, image)?;
    file.lock()
        .map_err(|e| Error::build(format!("cannot lock {image}: {e}")))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_busy_for_its_image_only_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let options = PlanOptions {
            lock_dir: Some(dir.path().to_owned()),
            ..Default::default()
        };
        let held = lock_image(&options, "localhost:1/a:t")
            .unwrap()
            .expect("free at first");
        assert!(lock_image(&options, "localhost:1/a:t").unwrap().is_none());
        assert!(lock_image(&options, "localhost:1/b:t").unwrap().is_some());
        drop(held);
        assert!(lock_image(&options, "localhost:1/a:t").unwrap().is_some());
    }
}
