//! What the base image has: its Python (version and interpreter path), a virtualenv at
//! `/opt/venv` (a base built by imagespec), its C library (for the wheel platform tag) and its
//! users. Found by reading the base's layers, top layer first, once per base config: the answer
//! is cached under the user cache folder by the config's digest.

use super::base::Base;
use crate::registry::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseFacts {
    /// `3.11`.
    pub version: String,
    /// The interpreter, e.g. `/usr/bin/python3.11`.
    pub exe: String,
    /// The base already has `/opt/venv` (made by imagespec): packages go into it.
    pub has_venv: bool,
    /// glibc `(2, minor)` when the base has a glibc; `None` for musl or unknown.
    pub glibc_minor: Option<u32>,
    pub musl: bool,
    /// `/etc/passwd` and `/etc/group` as the base has them (empty when it has none).
    pub passwd: String,
    pub group: String,
}

impl BaseFacts {
    pub fn has_uid(&self, uid: u32) -> bool {
        self.passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(uid.to_string().as_str()))
    }
}

/// What one scan of the layers collects; the top-most layer wins for each path.
#[derive(Default)]
struct Scan {
    seen: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// `dir -> {python3.X names}` and `dir -> python3 link target`.
    pythons: BTreeMap<String, BTreeSet<String>>,
    python3_link: BTreeMap<String, String>,
    venv: bool,
    glibc_minor: Option<u32>,
    musl: bool,
    passwd: Option<String>,
    group: Option<String>,
}

const BIN_DIRS: [&str; 3] = ["opt/venv/bin", "usr/local/bin", "usr/bin"];

fn is_python_name(n: &str) -> bool {
    n.strip_prefix("python3.")
        .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

/// The highest `GLIBC_2.N` version a libc.so.6 defines.
fn glibc_minor_of(bytes: &[u8]) -> Option<u32> {
    let pat = b"GLIBC_2.";
    let mut best = None;
    let mut i = 0;
    while i + pat.len() < bytes.len() {
        if &bytes[i..i + pat.len()] == pat {
            let mut j = i + pat.len();
            let mut n: u32 = 0;
            while j < bytes.len() && bytes[j].is_ascii_digit() && j < i + pat.len() + 3 {
                n = n * 10 + u32::from(bytes[j] - b'0');
                j += 1;
            }
            if j > i + pat.len() {
                best = Some(best.map_or(n, |b: u32| b.max(n)));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    best
}

impl Scan {
    fn layer(&mut self, mut blob: impl std::io::BufRead) -> Result<(), String> {
        let head = blob
            .fill_buf()
            .map_err(|e| format!("cannot read a base layer: {e}"))?;
        // A base built by the native builder with compression="zstd" has zstd layers.
        let dec: Box<dyn Read + '_> = if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(
                zstd::stream::read::Decoder::with_buffer(blob)
                    .map_err(|e| format!("cannot read a base layer: {e}"))?,
            )
        } else {
            Box::new(flate2::read::MultiGzDecoder::new(blob))
        };
        let mut ar = tar::Archive::new(dec);
        let mut here = BTreeSet::new();
        let entries = ar
            .entries()
            .map_err(|e| format!("cannot read a base layer: {e}"))?;
        for entry in entries {
            let mut e = entry.map_err(|e| format!("cannot read a base layer: {e}"))?;
            let path = e
                .path()
                .map_err(|e| format!("cannot read a base layer: {e}"))?
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_owned();
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            if let Some(gone) = name.strip_prefix(".wh.") {
                let target = if dir.is_empty() {
                    gone.to_owned()
                } else {
                    format!("{dir}/{gone}")
                };
                self.deleted.insert(target);
                continue;
            }
            if self.seen.contains(&path) || self.deleted.contains(&path) {
                continue;
            }
            here.insert(path.clone());
            let kind = e.header().entry_type();
            let file = kind.is_file();
            let link = kind.is_symlink() || kind.is_hard_link();
            if BIN_DIRS.contains(&dir) && (file || link) {
                if is_python_name(name) {
                    self.pythons
                        .entry(dir.to_owned())
                        .or_default()
                        .insert(name.to_owned());
                } else if name == "python3" && kind.is_symlink() {
                    if let Ok(Some(t)) = e.link_name() {
                        let t = t.to_string_lossy();
                        let t = t.rsplit('/').next().unwrap_or("").to_owned();
                        self.python3_link.insert(dir.to_owned(), t);
                    }
                }
            }
            if path == "opt/venv/pyvenv.cfg" {
                self.venv = true;
            }
            if name == "libc.so.6" && file && self.glibc_minor.is_none() {
                let mut bytes = Vec::new();
                if e.read_to_end(&mut bytes).is_ok() {
                    self.glibc_minor = glibc_minor_of(&bytes);
                }
            }
            if name.starts_with("ld-musl-") {
                self.musl = true;
            }
            if (path == "etc/passwd" || path == "etc/group") && file {
                let mut s = String::new();
                if e.read_to_string(&mut s).is_ok() {
                    if path == "etc/passwd" {
                        self.passwd = Some(s);
                    } else {
                        self.group = Some(s);
                    }
                }
            }
        }
        self.seen.extend(here);
        Ok(())
    }

    fn finish(self, base_name: &str) -> Result<BaseFacts, String> {
        for dir in BIN_DIRS {
            let Some(names) = self.pythons.get(dir) else {
                continue;
            };
            let chosen = self
                .python3_link
                .get(dir)
                .filter(|t| names.contains(*t))
                .cloned()
                .or_else(|| {
                    names
                        .iter()
                        .max_by_key(|n| n["python3.".len()..].parse::<u32>().unwrap_or(0))
                        .cloned()
                });
            if let Some(name) = chosen {
                return Ok(BaseFacts {
                    version: name["python".len()..].to_owned(),
                    exe: format!("/{dir}/{name}"),
                    has_venv: self.venv,
                    glibc_minor: self.glibc_minor,
                    musl: self.musl,
                    passwd: self.passwd.unwrap_or_default(),
                    group: self.group.unwrap_or_default(),
                });
            }
        }
        Err(format!(
            "the base image {base_name} has no Python: none of /usr/local/bin/python3.X, /usr/bin/python3.X or \
             /opt/venv/bin/python3.X is in its layers; use a base image with Python 3, or builder=\"docker\" or \
             \"buildah\" with apt_packages=[\"python3\", \"python3-venv\"]"
        ))
    }
}

fn cache_file(config_digest: &str) -> Option<std::path::PathBuf> {
    let name = config_digest.replace(':', "-");
    super::cache_root().map(|d| d.join("bases").join(format!("{name}.json")))
}

/// The facts of `base`, from the cache or by reading its layers.
pub async fn facts(client: &Client, base: &Base, base_name: &str) -> Result<BaseFacts, String> {
    let cached = cache_file(&base.config_digest);
    if let Some(f) = &cached {
        if let Some(facts) = std::fs::read(f)
            .ok()
            .and_then(|b| serde_json::from_slice::<BaseFacts>(&b).ok())
        {
            return Ok(facts);
        }
    }
    let mut scan = Scan::default();
    for layer in base.layers.iter().rev() {
        // Read from the file it streamed to: a base layer is never held whole in memory.
        let path = super::client::blob_file(client, &base.reference, &layer.digest)
            .await
            .map_err(|e| format!("base image {base_name}: {e}"))?;
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("base image {base_name}: cannot read {}: {e}", path.display()))?;
        scan.layer(std::io::BufReader::new(file))
            .map_err(|e| format!("base image {base_name}: {e}"))?;
    }
    let facts = scan.finish(base_name)?;
    if let Some(f) = &cached {
        // Only a cache: a failed write (a full disk) is not an error, and leaves no file behind.
        let _ = crate::support::fs::write_whole(f, &serde_json::to_vec(&facts).unwrap_or_default());
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::native::layers::{write_tar, Content, LayerSpec};

    fn layer(spec: &LayerSpec) -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        write_tar(spec, &d.path().join("t"), 0).unwrap();
        let raw = std::fs::read(d.path().join("t")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn finds_debian_and_official_layouts() {
        let mut s = LayerSpec::default();
        s.add("usr/bin/python3.11", Content::Bytes(vec![0]), true, 0);
        s.add("usr/bin/python3", Content::Symlink("python3.11".into()), false, 0);
        s.add(
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            Content::Bytes(b"..GLIBC_2.34\0GLIBC_2.36\0GLIBC_2.4\0".to_vec()),
            false,
            0,
        );
        s.add(
            "etc/passwd",
            Content::Bytes(b"root:x:0:0:root:/root:/bin/bash\n".to_vec()),
            false,
            0,
        );
        let mut scan = Scan::default();
        scan.layer(&layer(&s)[..]).unwrap();
        let f = scan.finish("b").unwrap();
        assert_eq!(
            (f.version.as_str(), f.exe.as_str()),
            ("3.11", "/usr/bin/python3.11")
        );
        assert_eq!(f.glibc_minor, Some(36));
        assert!(!f.has_uid(1000) && f.has_uid(0));

        let mut top = LayerSpec::default();
        top.add("usr/local/bin/python3.12", Content::Bytes(vec![0]), true, 0);
        let mut scan = Scan::default();
        scan.layer(&layer(&top)[..]).unwrap();
        scan.layer(&layer(&s)[..]).unwrap();
        assert_eq!(scan.finish("b").unwrap().exe, "/usr/local/bin/python3.12");
    }

    #[test]
    fn no_python_is_a_clear_error() {
        let mut s = LayerSpec::default();
        s.add("bin/sh", Content::Bytes(vec![0]), true, 0);
        let mut scan = Scan::default();
        scan.layer(&layer(&s)[..]).unwrap();
        let e = scan.finish("tiny:1").unwrap_err();
        assert!(
            e.contains("tiny:1 has no Python") && e.contains("builder=\"docker\""),
            "{e}"
        );
    }
}
