//! A per-user cache of positive existence answers.
//!
//! Content-derived tags never change meaning, so once a registry said an image exists the answer
//! is kept (one small JSON file per image and platform set, under `exists/`) for a TTL, a day by
//! default. Negative and unknown answers are never written: an image may be pushed any moment.

use crate::reference::Reference;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Cache {
    dir: PathBuf,
    ttl: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub reference: String,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub checked_at: u64,
}

impl Cache {
    pub fn new(root: &Path, ttl: Duration) -> Self {
        Cache {
            dir: root.join("exists"),
            ttl,
        }
    }

    fn path(&self, r: &Reference, platforms: &[String]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(r.to_string().as_bytes());
        for p in platforms {
            h.update(b"\0");
            h.update(p.as_bytes());
        }
        self.dir
            .join(format!("{}.json", data_encoding::HEXLOWER.encode(&h.finalize())))
    }

    /// A fresh positive answer, if one is cached. Unreadable or foreign files count as absent.
    pub fn get(&self, r: &Reference, platforms: &[String]) -> Option<Entry> {
        let bytes = std::fs::read(self.path(r, platforms)).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        let age = now().checked_sub(e.checked_at)?;
        (e.reference == r.to_string() && Duration::from_secs(age) < self.ttl).then_some(e)
    }

    /// Records a positive answer; failures to write are ignored (the cache is an optimisation).
    pub fn put(&self, r: &Reference, platforms: &[String], digest: Option<&str>, media_type: Option<&str>) {
        let e = Entry {
            reference: r.to_string(),
            digest: digest.map(str::to_string),
            media_type: media_type.map(str::to_string),
            checked_at: now(),
        };
        let path = self.path(r, platforms);
        let Ok(bytes) = serde_json::to_vec(&e) else { return };
        let _ = crate::support::fs::write_whole(&path, &bytes);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positive_answers_for_the_ttl_and_per_platform_set() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path(), Duration::from_secs(3600));
        let r = Reference::parse("localhost:5000/a:b").unwrap();
        assert_eq!(c.get(&r, &[]), None);
        c.put(&r, &[], Some("sha256:x"), Some("m"));
        assert_eq!(c.get(&r, &[]).unwrap().digest.as_deref(), Some("sha256:x"));
        assert_eq!(c.get(&r, &["linux/arm64".into()]), None);
        let expired = Cache::new(dir.path(), Duration::ZERO);
        assert_eq!(expired.get(&r, &[]), None);
        std::fs::write(c.path(&r, &[]), b"garbage").unwrap();
        assert_eq!(c.get(&r, &[]), None);
    }
}
