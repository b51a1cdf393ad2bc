//! Deterministic layers: a tar of sorted entries with fixed times, numeric owners and normalised
//! modes, compressed in parallel (gzip, or zstd on request), with the digests of both the tar
//! (`diff_id`) and the blob.
//!
//! The same entries give the same bytes on every machine and every run: names are sorted
//! (parents before children), every entry has the mtime `epoch` (`SOURCE_DATE_EPOCH`, else 0),
//! uid/gid are numbers with empty user and group names, files are 0644 or 0755 (their executable
//! bit), folders 0755, and the tar is gzipped in fixed 4 MiB chunks, each its own gzip member (the
//! concatenation is a valid gzip stream) so that compression runs on every core and still gives
//! the same bytes whatever the number of cores. zstd runs libzstd's own workers (at least one, as
//! many as there are cores): its streaming multi-threaded output depends on the level and the
//! input, not on the number of workers (zstd 1.4.7 and later; not so with 0 workers, the
//! single-threaded mode, which is why there is always at least one).

use crate::error::{Error, Result};
use crate::oci::{OCI_LAYER_GZIP, OCI_LAYER_ZSTD};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 4 << 20;
/// zstd's default level: about gzip's size at several times its speed.
const ZSTD_LEVEL: i32 = 3;

/// How the new layers are compressed (`builder_options={"compression": ...}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> std::result::Result<Compression, String> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!(
                "builder_options compression={other:?} is not known: use \"gzip\" (the default) or \"zstd\""
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// Where an entry's content comes from.
#[derive(Clone, Debug)]
pub enum Content {
    Dir,
    /// A file on this machine; with a digest, it must still have that content (the tag hashed it).
    File {
        path: PathBuf,
        expect: Option<[u8; 32]>,
    },
    Bytes(Vec<u8>),
    Symlink(String),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub content: Content,
    pub executable: bool,
    pub uid: u32,
}

/// The entries of one layer, by path inside the image (relative, '/'-separated, no trailing '/').
#[derive(Clone, Debug, Default)]
pub struct LayerSpec {
    pub entries: BTreeMap<String, Entry>,
    /// Owner and mode of a folder: `(uid, mode)` by path; folders not listed are 0755 and owned
    /// by the owner of the entry that needed them.
    pub dirs: BTreeMap<String, (u32, u32)>,
}

impl LayerSpec {
    pub fn add(&mut self, path: &str, content: Content, executable: bool, uid: u32) {
        let path = path.trim_matches('/').to_owned();
        let mut parent = Path::new(&path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let key = p.to_string_lossy().into_owned();
            self.entries.entry(key).or_insert(Entry {
                content: Content::Dir,
                executable: true,
                uid,
            });
            parent = p.parent();
        }
        self.entries.insert(
            path,
            Entry {
                content,
                executable,
                uid,
            },
        );
    }

    /// A folder with an owner and mode of its own (e.g. `/root`, given to the image's user).
    pub fn dir(&mut self, path: &str, uid: u32, mode: u32) {
        let path = path.trim_matches('/').to_owned();
        self.add(&path, Content::Dir, true, uid);
        self.dirs.insert(path, (uid, mode));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A finished layer blob.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// `sha256:` of the tar.
    pub diff_id: String,
    pub size: u64,
    /// The blob on disk.
    pub path: PathBuf,
    /// What the layer holds, for the image's history.
    pub created_by: String,
    /// The blob's media type (layers cached before zstd existed are gzip).
    #[serde(default = "gzip_media_type")]
    pub media_type: String,
}

fn gzip_media_type() -> String {
    OCI_LAYER_GZIP.to_owned()
}

/// The mtime of every entry: `SOURCE_DATE_EPOCH` when set to a whole number, else 0.
pub fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn hex(d: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(d)
}

struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(what: &str, p: &Path, e: io::Error) -> Error {
    super::io_error(what, p, &e)
}

/// Writes the tar of `spec` to `tar_path`; returns the tar's sha256 and size.
pub fn write_tar(spec: &LayerSpec, tar_path: &Path, mtime: u64) -> Result<([u8; 32], u64)> {
    let file = fs::File::create(tar_path).map_err(|e| io_err("write", tar_path, e))?;
    let mut hw = HashWriter {
        inner: io::BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        n: 0,
    };
    {
        let mut b = tar::Builder::new(&mut hw);
        for (path, e) in &spec.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(mtime);
            h.set_uid(e.uid.into());
            h.set_gid(e.uid.into());
            let _ = h.set_username("");
            let _ = h.set_groupname("");
            let w = |e: io::Error| io_err("write", tar_path, e);
            match &e.content {
                Content::Dir => {
                    let (uid, mode) = spec.dirs.get(path).copied().unwrap_or((e.uid, 0o755));
                    h.set_uid(uid.into());
                    h.set_gid(uid.into());
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), io::empty())
                        .map_err(w)?;
                }
                Content::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target).map_err(w)?;
                }
                Content::Bytes(bytes) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(if e.executable { 0o755 } else { 0o644 });
                    h.set_size(bytes.len() as u64);
                    b.append_data(&mut h, path, &bytes[..]).map_err(w)?;
                }
                Content::File { path: src, expect } => {
                    let bytes = fs::read(src).map_err(|e| io_err("read", src, e))?;
                    if let Some(want) = expect {
                        if <[u8; 32]>::from(Sha256::digest(&bytes)) != *want {
                            return Err(Error::build(format!(
                                "native: {} changed since its tag was computed; run the build again",
                                src.display()
                            )));
                        }
                    }
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(if e.executable { 0o755 } else { 0o644 });
                    h.set_size(bytes.len() as u64);
                    b.append_data(&mut h, path, &bytes[..]).map_err(w)?;
                }
            }
        }
        b.finish().map_err(|e| io_err("write", tar_path, e))?;
    }
    hw.flush().map_err(|e| io_err("write", tar_path, e))?;
    Ok((hw.hash.finalize().into(), hw.n))
}

fn gzip_chunk(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().mtime(0).operating_system(255).write(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(data).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Gzips `input` into `output` in fixed chunks compressed in parallel (one gzip member each);
/// returns the blob's sha256 and size.
pub fn gzip_file(input: &Path, output: &Path) -> Result<([u8; 32], u64)> {
    let mut src = fs::File::open(input).map_err(|e| io_err("read", input, e))?;
    let out = fs::File::create(output).map_err(|e| io_err("write", output, e))?;
    let mut hw = HashWriter {
        inner: io::BufWriter::with_capacity(1 << 20, out),
        hash: Sha256::new(),
        n: 0,
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 16);
    loop {
        let mut chunks = Vec::with_capacity(workers);
        for _ in 0..workers {
            let mut buf = Vec::with_capacity(CHUNK);
            (&mut src)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(|e| io_err("read", input, e))?;
            if buf.is_empty() {
                break;
            }
            chunks.push(buf);
        }
        if chunks.is_empty() {
            break;
        }
        let last = chunks.len() < workers || chunks.last().is_some_and(|c| c.len() < CHUNK);
        let compressed: Vec<Vec<u8>> = if chunks.len() == 1 {
            vec![gzip_chunk(&chunks[0])]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunks.iter().map(|c| s.spawn(|| gzip_chunk(c))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("gzip worker"))
                    .collect()
            })
        };
        for c in compressed {
            hw.write_all(&c).map_err(|e| io_err("write", output, e))?;
        }
        if last {
            break;
        }
    }
    hw.flush().map_err(|e| io_err("write", output, e))?;
    Ok((hw.hash.finalize().into(), hw.n))
}

/// zstd-compresses `input` into `output` with libzstd's workers (one per core, at least one: the
/// bytes are the same for any number of workers); returns the blob's sha256 and size.
pub fn zstd_file(input: &Path, output: &Path) -> Result<([u8; 32], u64)> {
    let mut src = fs::File::open(input).map_err(|e| io_err("read", input, e))?;
    let out = fs::File::create(output).map_err(|e| io_err("write", output, e))?;
    let hw = HashWriter {
        inner: io::BufWriter::with_capacity(1 << 20, out),
        hash: Sha256::new(),
        n: 0,
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16) as u32;
    let zerr = |e: io::Error| Error::build(format!("native: zstd: {e}"));
    let mut enc = zstd::stream::write::Encoder::new(hw, ZSTD_LEVEL).map_err(zerr)?;
    enc.multithread(workers).map_err(zerr)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(|e| io_err("read", input, e))?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n]).map_err(|e| io_err("write", output, e))?;
    }
    let mut hw = enc.finish().map_err(|e| io_err("write", output, e))?;
    hw.flush().map_err(|e| io_err("write", output, e))?;
    Ok((hw.hash.finalize().into(), hw.n))
}

/// Builds one layer in `dir`: `<digest>` blob named by its digest (the tar is removed).
///
/// With `reuse` (a folder of the cache), a layer whose tar was compressed before with the same
/// compression takes that blob (a hard link) instead of compressing again: for a big distribution
/// next to a changed small one, compressing hundreds of MB is the slow part, writing and hashing
/// its tar is not. The tar's digest is the key, so a reused blob holds exactly this tar.
pub fn build_layer(
    spec: &LayerSpec,
    dir: &Path,
    created_by: &str,
    mtime: u64,
    compression: Compression,
    reuse: Option<&Path>,
) -> Result<Layer> {
    fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let tmp = super::temp_dir_in(dir)?;
    let tar_path = tmp.path().join("layer.tar");
    let gz_path = tmp.path().join("layer.blob");
    let (diff, _) = write_tar(spec, &tar_path, mtime)?;
    let diff = hex(&diff);
    let layer = |name: &str, size: u64, path: PathBuf| Layer {
        digest: format!("sha256:{name}"),
        diff_id: format!("sha256:{diff}"),
        size,
        path,
        created_by: created_by.to_owned(),
        media_type: compression.media_type().to_owned(),
    };
    let by_tar = reuse.map(|r| r.join(compression.name()).join(&diff));
    if let Some((name, size, path)) = by_tar.as_deref().and_then(|d| reused(d, dir)) {
        return Ok(layer(&name, size, path));
    }
    let (digest, size) = match compression {
        Compression::Gzip => gzip_file(&tar_path, &gz_path)?,
        Compression::Zstd => zstd_file(&tar_path, &gz_path)?,
    };
    let name = hex(&digest);
    let dest = dir.join(&name);
    fs::rename(&gz_path, &dest).map_err(|e| io_err("write", &dest, e))?;
    if let Some(by_tar) = &by_tar {
        remember(by_tar, &dest, &name);
    }
    Ok(layer(&name, size, dest))
}

/// The blob kept in `by_tar` (one file, named by its digest), linked into `dir`.
fn reused(by_tar: &Path, dir: &Path) -> Option<(String, u64, PathBuf)> {
    let entry = fs::read_dir(by_tar).ok()?.flatten().next()?;
    let name = entry.file_name().into_string().ok()?;
    if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let size = entry.metadata().ok()?.len();
    let dest = dir.join(&name);
    if !dest.is_file() {
        link_or_copy(&entry.path(), &dest).ok()?;
    }
    Some((name, size, dest))
}

/// `to` as a hard link to `from` (the same blob file, no bytes written), else a copy (another
/// file system).
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::hard_link(from, to).or_else(|_| fs::copy(from, to).map(drop))
}

/// Keeps `blob` under `by_tar` for [`reused`]: the folder appears whole (renamed into place) or
/// not at all; failing to keep it only costs a compression next time.
fn remember(by_tar: &Path, blob: &Path, name: &str) {
    let Some(parent) = by_tar.parent() else { return };
    if fs::create_dir_all(parent).is_err() {
        return;
    }
    let Ok(tmp) = super::temp_dir_in(parent) else {
        return;
    };
    let kept = tmp.path().join(name);
    if link_or_copy(blob, &kept).is_ok() {
        let _ = fs::rename(tmp.path(), by_tar); // taken by another build meanwhile: theirs is the same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LayerSpec {
        let mut s = LayerSpec::default();
        s.add("root/b.txt", Content::Bytes(b"bee\n".to_vec()), false, 1000);
        s.add(
            "root/a/run.sh",
            Content::Bytes(b"#!/bin/sh\n".to_vec()),
            true,
            1000,
        );
        s.add("root/link", Content::Symlink("a/run.sh".into()), false, 1000);
        s.add(
            &format!("root/{}", "long/".repeat(40) + "x"),
            Content::Bytes(vec![1, 2]),
            false,
            1000,
        );
        s.dir("root", 1000, 0o755);
        s
    }

    #[test]
    fn tar_is_sorted_fixed_and_repeatable() {
        let d = tempfile::tempdir().unwrap();
        let (h1, _) = write_tar(&sample(), &d.path().join("1.tar"), 0).unwrap();
        let (h2, _) = write_tar(&sample(), &d.path().join("2.tar"), 0).unwrap();
        assert_eq!(h1, h2);
        let bytes = fs::read(d.path().join("1.tar")).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!(h.uid().unwrap(), 1000);
            assert_eq!(h.username().unwrap(), Some(""));
            let mode = h.mode().unwrap();
            assert!([0o644, 0o755, 0o777].contains(&mode), "{mode:o}");
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "root/");
        assert!(names.iter().any(|n| n.len() > 200), "long names survive");
        let (h3, _) = write_tar(&sample(), &d.path().join("3.tar"), 1_700_000_000).unwrap();
        assert_ne!(h1, h3, "the epoch is in the bytes");
    }

    #[test]
    fn parallel_gzip_is_a_valid_stream_with_stable_digests() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in");
        let data: Vec<u8> = (0..(CHUNK * 5 + 123))
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        fs::write(&input, &data).unwrap();
        let (a, size) = gzip_file(&input, &d.path().join("a.gz")).unwrap();
        let (b, _) = gzip_file(&input, &d.path().join("b.gz")).unwrap();
        assert_eq!(a, b);
        let gz = fs::read(d.path().join("a.gz")).unwrap();
        assert_eq!(gz.len() as u64, size);
        assert_eq!(hex(&Sha256::digest(&gz)), hex(&a));
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn layer_digests_are_pinned() {
        let d = tempfile::tempdir().unwrap();
        let mut s = LayerSpec::default();
        s.add("root/hello.txt", Content::Bytes(b"hello\n".to_vec()), false, 1000);
        let l = build_layer(&s, d.path(), "test", 0, Compression::Gzip, None).unwrap();
        let l2 = build_layer(&s, &d.path().join("again"), "test", 0, Compression::Gzip, None).unwrap();
        assert_eq!(l.digest, l2.digest);
        assert_eq!(l.diff_id, l2.diff_id);
        assert!(l.path.is_file());
        assert_eq!(fs::metadata(&l.path).unwrap().len(), l.size);
    }

    #[test]
    fn a_tar_compressed_before_takes_its_blob_and_another_tar_does_not() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let reuse = d.path().join("by-tar");
        let s = sample();
        let first = build_layer(&s, &d.path().join("a"), "t", 0, Compression::Gzip, Some(&reuse)).unwrap();
        let again = build_layer(&s, &d.path().join("b"), "t", 0, Compression::Gzip, Some(&reuse)).unwrap();
        assert_eq!(
            (&again.digest, &again.diff_id, again.size),
            (&first.digest, &first.diff_id, first.size)
        );
        // The same file: linked, not compressed again.
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&again.path), ino(&first.path));
        // Another compression of the same tar is its own blob.
        let zstd = build_layer(&s, &d.path().join("c"), "t", 0, Compression::Zstd, Some(&reuse)).unwrap();
        assert_eq!(zstd.diff_id, first.diff_id);
        assert_ne!(zstd.digest, first.digest);
        // Another tar (one byte changed) is compressed anew.
        let mut other = sample();
        other.add("etc/extra", Content::Bytes(b"x".to_vec()), false, 0);
        let o = build_layer(
            &other,
            &d.path().join("d"),
            "t",
            0,
            Compression::Gzip,
            Some(&reuse),
        )
        .unwrap();
        assert_ne!(o.diff_id, first.diff_id);
        assert_ne!(ino(&o.path), ino(&first.path));
        // A kept entry that is not a blob's name is not used.
        let diff = first.diff_id.trim_start_matches("sha256:");
        let kept = reuse.join("gzip").join(diff);
        fs::remove_dir_all(&kept).unwrap();
        fs::create_dir_all(&kept).unwrap();
        fs::write(kept.join("not-a-digest"), b"junk").unwrap();
        let fresh = build_layer(&s, &d.path().join("e"), "t", 0, Compression::Gzip, Some(&reuse)).unwrap();
        assert_eq!(fresh.digest, first.digest);
        assert_eq!(fs::read(&fresh.path).unwrap(), fs::read(&first.path).unwrap());
    }

    #[test]
    fn zstd_is_the_same_for_any_number_of_workers_and_decodes() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in");
        let data: Vec<u8> = (0..(CHUNK * 3 + 77))
            .map(|i| (i % 253) as u8 ^ (i / 4099) as u8)
            .collect();
        fs::write(&input, &data).unwrap();
        let (a, size) = zstd_file(&input, &d.path().join("a.zst")).unwrap();
        let blob = fs::read(d.path().join("a.zst")).unwrap();
        assert_eq!(blob.len() as u64, size);
        assert_eq!(zstd::stream::decode_all(&blob[..]).unwrap(), data);
        // What zstd_file does, with other worker counts: the same bytes.
        for workers in [1u32, 3, 8] {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
            enc.multithread(workers).unwrap();
            for c in data.chunks(1 << 20) {
                enc.write_all(c).unwrap();
            }
            let out = enc.finish().unwrap();
            assert_eq!(hex(&Sha256::digest(&out)), hex(&a), "{workers} workers");
        }
        let mut s = LayerSpec::default();
        s.add("root/x", Content::Bytes(data), false, 0);
        let l = build_layer(&s, d.path(), "t", 0, Compression::Zstd, None).unwrap();
        assert_eq!(l.media_type, OCI_LAYER_ZSTD);
        let g = build_layer(&s, d.path(), "t", 0, Compression::Gzip, None).unwrap();
        assert_eq!(l.diff_id, g.diff_id, "the same tar");
        assert_ne!(l.digest, g.digest);
    }

    #[test]
    fn a_changed_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, b"now").unwrap();
        let mut s = LayerSpec::default();
        s.add(
            "root/f",
            Content::File {
                path: f,
                expect: Some([0; 32]),
            },
            false,
            1000,
        );
        let e = write_tar(&s, &d.path().join("t"), 0).unwrap_err().to_string();
        assert!(e.contains("changed since its tag"), "{e}");
    }
}
