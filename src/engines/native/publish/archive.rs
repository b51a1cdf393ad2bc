//! A `docker save`-format archive of one image, for `docker load` (engines without OCI layout
//! import): `manifest.json` (config, `RepoTags`, layers), `repositories`, and the config and the
//! layer blobs as they are (Docker 20.10 and later decompress gzip and zstd layers on load).
//!
//! The blobs are stored under `blobs/sha256/<hex>`, the names `docker save` itself uses since
//! Docker 25, so the file reads the same in both generations. Deterministic (sorted entries, mtime
//! 0, numeric owners) and written to a temporary file renamed over the target at the end, so that
//! the path never holds half an archive.

use super::registry::Image;
use crate::oci::sha256_of;
use crate::registry::Client;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Checked before the build: the archive's folder must exist (a typo should not cost a build).
pub fn check_target(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "builder_options docker_archive={}: the folder {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "builder_options docker_archive={} is a folder; name the archive file to write",
            path.display()
        ));
    }
    Ok(())
}

/// Writes the archive of `img`, tagged `repo_tag` (`name:tag`), at `path`.
pub async fn write(client: &Client, img: &Image<'_>, repo_tag: &str, path: &Path) -> Result<(), String> {
    let blob_name = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let config_name = blob_name(&sha256_of(img.config));
    let mut layer_names = Vec::new();
    let mut files: Vec<(String, Source)> = vec![(config_name.clone(), Source::Bytes(img.config.to_vec()))];
    for d in &img.base.layers {
        let path = crate::engines::native::client::blob_file(client, &img.base.reference, &d.digest).await?;
        layer_names.push(blob_name(&d.digest));
        files.push((blob_name(&d.digest), Source::File(path)));
    }
    for l in img.layers {
        layer_names.push(blob_name(&l.digest));
        files.push((blob_name(&l.digest), Source::File(l.path.clone())));
    }
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": layer_names,
    }]);
    files.push((
        "manifest.json".into(),
        Source::Bytes(serde_json::to_vec(&manifest).unwrap_or_default()),
    ));
    // `repositories` names the top layer by its legacy id; Docker ignores it when manifest.json
    // is there, but older loaders read the tag from it.
    if let Some((repo, tag)) = repo_tag.rsplit_once(':').filter(|(r, _)| !r.is_empty()) {
        let top = img
            .layers
            .last()
            .map_or("", |l| l.digest.trim_start_matches("sha256:"));
        let repos = serde_json::json!({ repo: { tag: top } });
        files.push((
            "repositories".into(),
            Source::Bytes(serde_json::to_vec(&repos).unwrap_or_default()),
        ));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "archive".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let done = write_tar(&tmp, &files).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(crate::engines::native::io_error("write", path, &e).to_string());
    }
    Ok(())
}

enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

fn write_tar(out: &Path, files: &[(String, Source)]) -> std::io::Result<()> {
    let f = std::fs::File::create(out)?;
    let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, f));
    let mut dirs: Vec<String> = Vec::new();
    for (name, _) in files {
        let mut p = Path::new(name).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(format!("{}/", d.to_string_lossy()));
            p = d.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    let header = |size: u64, kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h
    };
    for d in &dirs {
        b.append_data(
            &mut header(0, tar::EntryType::Directory, 0o755),
            d,
            std::io::empty(),
        )?;
    }
    for (name, src) in files {
        match src {
            Source::Bytes(bytes) => {
                let mut h = header(bytes.len() as u64, tar::EntryType::Regular, 0o644);
                b.append_data(&mut h, name, &bytes[..])?;
            }
            Source::File(p) => {
                let f = std::fs::File::open(p)?;
                let mut h = header(f.metadata()?.len(), tar::EntryType::Regular, 0o644);
                b.append_data(&mut h, name, f)?;
            }
        }
    }
    let mut w = b.into_inner()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}
