//! Pushing only what the registry lacks: each blob is checked (HEAD); base layers are mounted
//! from the base's repository when it is on the same registry (copied otherwise); new layers and
//! the config are uploaded; the manifest is PUT by tag last, so that a failure never leaves a tag
//! on a partial image. Without a registry: an OCI image layout folder.

use crate::engines::native::base::Base;
use crate::engines::native::client::blob_file;
use crate::engines::native::layers::Layer;
use crate::oci::{sha256_of, OCI_INDEX, OCI_MANIFEST};
use crate::reference::Reference;
use crate::registry::Client;
use crate::support::fs::TempFile;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Stats {
    pub uploaded: usize,
    pub mounted: usize,
    pub present: usize,
}

enum Blob {
    /// A base layer: mounted or copied from the base's repository.
    Base {
        digest: String,
    },
    File {
        digest: String,
        path: PathBuf,
    },
}

const PARALLEL: usize = 4;

/// One platform's image: its base, new layers, config and manifest.
pub struct Image<'a> {
    pub base: &'a Base,
    pub layers: &'a [Layer],
    pub config: &'a [u8],
    pub manifest: &'a [u8],
}

/// Pushes `images` to `image` (a reference with a tag). One image: its manifest goes under the
/// tag. Several: each manifest is PUT by its digest, then `index` under the tag, last, so that a
/// failure on any platform leaves the tag as it was.
///
/// Blobs that an earlier push of this machine put in the same repository (its manifest accepted)
/// are not asked about again, as docker remembers them too; should the registry have dropped one
/// since, it refuses the manifest, and the push runs again asking about every blob.
pub async fn push(
    client: &Arc<Client>,
    images: &[Image<'_>],
    index: Option<&[u8]>,
    image: &str,
) -> Result<Stats, String> {
    let target = Reference::parse(image).map_err(|e| e.to_string())?;
    let record = known::Record::of(&target);
    let known = record.load();
    let stats = match push_all(client, images, index, &target, &known).await {
        Err(Failed::Manifest(_)) if !known.is_empty() => {
            record.forget();
            push_all(client, images, index, &target, &HashSet::new()).await
        }
        other => other,
    }
    .map_err(|(Failed::Blob(e) | Failed::Manifest(e))| e)?;
    record.add(images.iter().flat_map(|img| {
        img.base
            .layers
            .iter()
            .map(|d| d.digest.clone())
            .chain(img.layers.iter().map(|l| l.digest.clone()))
            .chain([sha256_of(img.config)])
    }));
    Ok(stats)
}

enum Failed {
    Blob(String),
    Manifest(String),
}

async fn push_all(
    client: &Arc<Client>,
    images: &[Image<'_>],
    index: Option<&[u8]>,
    target: &Reference,
    known: &HashSet<String>,
) -> Result<Stats, Failed> {
    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    let mut stats = Stats::default();
    for img in images {
        push_blobs(client, img, target, known, &mut stats)
            .await
            .map_err(Failed::Blob)?;
        if index.is_some() {
            client
                .put_manifest(target, &sha256_of(img.manifest), img.manifest, OCI_MANIFEST)
                .await
                .map_err(|e| Failed::Manifest(format!("{e}; no tag was written")))?;
        }
    }
    match index {
        Some(ix) => client.put_manifest(target, &tag, ix, OCI_INDEX).await,
        None => {
            let m = images
                .first()
                .ok_or_else(|| Failed::Blob("no image to push".into()))?
                .manifest;
            client.put_manifest(target, &tag, m, OCI_MANIFEST).await
        }
    }
    .map_err(Failed::Manifest)?;
    Ok(stats)
}

/// Every blob of `img` the target repository lacks: base layers mounted or copied, new layers
/// and the config uploaded, four at a time.
async fn push_blobs(
    client: &Arc<Client>,
    img: &Image<'_>,
    target: &Reference,
    known: &HashSet<String>,
    stats: &mut Stats,
) -> Result<(), String> {
    let (base, layers, config) = (img.base, img.layers, img.config);
    let tmp = tempfile_for(config)?;
    let mut blobs: Vec<Blob> = base
        .layers
        .iter()
        .map(|d| Blob::Base {
            digest: d.digest.clone(),
        })
        .collect();
    blobs.extend(layers.iter().map(|l| Blob::File {
        digest: l.digest.clone(),
        path: l.path.clone(),
    }));
    blobs.push(Blob::File {
        digest: sha256_of(config),
        path: tmp.path().to_path_buf(),
    });
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for blob in blobs {
        let (Blob::Base { digest } | Blob::File { digest, .. }) = &blob;
        if known.contains(digest) {
            counts[2].fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (client, target, base_ref, sem, counts) = (
            client.clone(),
            target.clone(),
            base.reference.clone(),
            sem.clone(),
            counts.clone(),
        );
        tasks.spawn(async move {
            let digest = match &blob {
                Blob::Base { digest } | Blob::File { digest, .. } => digest.clone(),
            };
            // Every HEAD at once (the client bounds its connections): most blobs are present,
            // and only transfers need the limit.
            if client.has_blob(&target, &digest).await? {
                counts[2].fetch_add(1, Ordering::Relaxed);
                return Ok::<(), String>(());
            }
            let _permit = sem.acquire_owned().await;
            match blob {
                // A layer of the registry cache: its artifact is in this repository, so the
                // blob should be too; the registry dropped it.
                Blob::File { path, .. } if path.as_os_str().is_empty() => {
                    return Err(format!(
                        "layer {digest} of the registry cache is not in {target}; build with no_cache, or \
                         with builder_options cache=\"local\""
                    ));
                }
                Blob::File { path, .. } => {
                    client.upload(&target, &digest, &path).await?;
                    counts[0].fetch_add(1, Ordering::Relaxed);
                }
                Blob::Base { digest } => {
                    if base_ref.registry == target.registry
                        && base_ref.repository != target.repository
                        && client.mount(&target, &digest, &base_ref.repository).await?
                    {
                        counts[1].fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    let p = blob_file(&client, &base_ref, &digest).await?;
                    client.upload(&target, &digest, &p).await?;
                    counts[0].fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        });
    }
    let mut first_err = None;
    while let Some(done) = tasks.join_next().await {
        let r = done
            .map_err(|e| format!("an upload task failed: {e}"))
            .and_then(|r| r);
        if let Err(e) = r {
            if first_err.is_none() {
                first_err = Some(e);
                // The manifest will not be written: stop the other uploads.
                tasks.abort_all();
            }
        }
    }
    if let Some(e) = first_err {
        return Err(format!("{e}; no tag was written"));
    }
    stats.uploaded += counts[0].load(Ordering::Relaxed);
    stats.mounted += counts[1].load(Ordering::Relaxed);
    stats.present += counts[2].load(Ordering::Relaxed);
    Ok(())
}

/// The config as a file, for the upload of file blobs; removed when dropped.
fn tempfile_for(bytes: &[u8]) -> Result<TempFile, String> {
    let dir = std::env::temp_dir();
    TempFile::new_in(&dir, ".imagespec-config", "", bytes).map_err(|e| io_text("write", &dir, &e))
}

/// Writes (or adds to) an OCI image layout at `dir`: every blob of `images` (and `index`), and
/// under `tag` in its `index.json` the one manifest, or the index of several.
pub async fn write_layout(
    client: &Arc<Client>,
    images: &[Image<'_>],
    index: Option<&[u8]>,
    dir: &Path,
    tag: &str,
) -> Result<(), String> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io_text("create", &blobs, &e))?;
    let put = |digest: &str, write: &dyn Fn(&Path) -> std::io::Result<()>| -> Result<(), String> {
        let p = blobs.join(digest.trim_start_matches("sha256:"));
        if p.is_file() {
            return Ok(());
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        if let Err(e) = write(&tmp).and_then(|()| std::fs::rename(&tmp, &p)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_text("write", &p, &e));
        }
        Ok(())
    };
    for img in images {
        for d in &img.base.layers {
            let p = blobs.join(d.digest.trim_start_matches("sha256:"));
            if !p.is_file() {
                let src = blob_file(client, &img.base.reference, &d.digest).await?;
                put(&d.digest, &|t| std::fs::copy(&src, t).map(|_| ()))?;
            }
        }
        for l in img.layers {
            put(&l.digest, &|t| std::fs::copy(&l.path, t).map(|_| ()))?;
        }
        put(&sha256_of(img.config), &|t| std::fs::write(t, img.config))?;
        put(&sha256_of(img.manifest), &|t| std::fs::write(t, img.manifest))?;
    }
    let (top, media_type) = match index {
        Some(ix) => {
            put(&sha256_of(ix), &|t| std::fs::write(t, ix))?;
            (ix, OCI_INDEX)
        }
        None => (images.first().ok_or("no image to write")?.manifest, OCI_MANIFEST),
    };
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| io_text("write", &layout, &e))?;
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"schemaVersion": 2, "manifests": []}));
    let entries = index
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or("the existing index.json has no manifests list")?;
    entries.retain(|m| {
        m.pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(|v| v.as_str())
            != Some(tag)
    });
    entries.push(serde_json::json!({
        "mediaType": media_type,
        "digest": sha256_of(top),
        "size": top.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    // Replaced whole (temporary file and rename): a reader never sees half an index.
    let tmp = dir.join(format!(".index.json.tmp{}", std::process::id()));
    let done = std::fs::write(&tmp, serde_json::to_vec(&index).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &index_path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_text("write", &index_path, &e));
    }
    Ok(())
}

fn io_text(what: &str, p: &Path, e: &std::io::Error) -> String {
    crate::engines::native::io_error(what, p, e).to_string()
}

/// Which blobs this machine has seen a registry repository accept, in
/// `<cache>/native/pushed/<sha256 of registry/repository>`, one digest per line.
mod known {
    use crate::reference::Reference;
    use sha2::{Digest, Sha256};
    use std::collections::HashSet;
    use std::path::PathBuf;

    /// More than this many digests: the record starts again (it only saves requests).
    const MAX: usize = 4096;

    pub struct Record(Option<PathBuf>);

    impl Record {
        pub fn of(target: &Reference) -> Record {
            let key = format!("{}/{}", target.registry, target.repository);
            let name = crate::engines::native::layers::hex(&Sha256::digest(key.as_bytes()));
            Record(crate::engines::native::cache_root().map(|d| d.join("pushed").join(name)))
        }

        pub fn load(&self) -> HashSet<String> {
            let text = self.0.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
            text.unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("sha256:") && l.len() == 71)
                .map(str::to_owned)
                .collect()
        }

        pub fn forget(&self) {
            if let Some(p) = &self.0 {
                let _ = std::fs::remove_file(p);
            }
        }

        /// Best effort, written whole (temporary file, then rename): a record that cannot be
        /// written only costs the next push its HEAD requests.
        pub fn add(&self, digests: impl Iterator<Item = String>) {
            let Some(p) = &self.0 else { return };
            let mut all = self.load();
            if all.len() > MAX {
                all.clear();
            }
            all.extend(digests);
            let mut lines: Vec<String> = all.into_iter().collect();
            lines.sort();
            let _ = crate::support::fs::write_whole(p, (lines.join("\n") + "\n").as_bytes());
        }
    }
}
