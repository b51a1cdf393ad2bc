//! Pushing only what the registry lacks: each blob is checked (HEAD); base layers are mounted
//! from the base's repository when it is on the same registry (copied otherwise); new layers and
//! the config are uploaded; the manifest is PUT by tag last, so that a failure never leaves a tag
//! on a partial image. Without a registry: an OCI image layout folder.

use super::base::Base;
use super::client::{sha256_of, Client};
use super::config::MEDIA_TYPE_MANIFEST;
use super::layers::Layer;
use crate::reference::Reference;
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

pub async fn push(
    client: &Arc<Client>,
    base: &Base,
    layers: &[Layer],
    config: &[u8],
    manifest: &[u8],
    image: &str,
) -> Result<Stats, String> {
    let target = Reference::parse(image).map_err(|e| e.to_string())?;
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
        path: tmp.0.clone(),
    });
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for blob in blobs {
        let (client, target, base_ref, sem, counts) = (
            client.clone(),
            target.clone(),
            base.reference.clone(),
            sem.clone(),
            counts.clone(),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let digest = match &blob {
                Blob::Base { digest } | Blob::File { digest, .. } => digest.clone(),
            };
            if client.has_blob(&target, &digest).await? {
                counts[2].fetch_add(1, Ordering::Relaxed);
                return Ok::<(), String>(());
            }
            match blob {
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
                    let bytes = client.blob(&base_ref, &digest, usize::MAX).await?;
                    let dir = std::env::temp_dir();
                    let p = dir.join(format!(
                        ".imagespec-blob-{}-{:016x}",
                        std::process::id(),
                        fastrand::u64(..)
                    ));
                    tokio::fs::write(&p, &bytes)
                        .await
                        .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
                    let r = client.upload(&target, &digest, &p).await;
                    let _ = tokio::fs::remove_file(&p).await;
                    r?;
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
    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    client
        .put_manifest(&target, &tag, manifest, MEDIA_TYPE_MANIFEST)
        .await?;
    Ok(Stats {
        uploaded: counts[0].load(Ordering::Relaxed),
        mounted: counts[1].load(Ordering::Relaxed),
        present: counts[2].load(Ordering::Relaxed),
    })
}

/// A file removed when dropped.
struct TmpFile(PathBuf);

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_for(bytes: &[u8]) -> Result<TmpFile, String> {
    let p = std::env::temp_dir().join(format!(
        ".imagespec-config-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(TmpFile(p))
}

/// Writes (or adds to) an OCI image layout at `dir`, the image tagged `tag` in its index.
pub async fn write_layout(
    client: &Arc<Client>,
    base: &Base,
    layers: &[Layer],
    config: &[u8],
    manifest: &[u8],
    dir: &Path,
    tag: &str,
) -> Result<(), String> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| format!("cannot create {}: {e}", blobs.display()))?;
    let put = |digest: &str, write: &dyn Fn(&Path) -> std::io::Result<()>| -> Result<(), String> {
        let p = blobs.join(digest.trim_start_matches("sha256:"));
        if p.is_file() {
            return Ok(());
        }
        let tmp = p.with_extension("tmp");
        write(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &p).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    for d in &base.layers {
        let p = blobs.join(d.digest.trim_start_matches("sha256:"));
        if !p.is_file() {
            let bytes = client.blob(&base.reference, &d.digest, usize::MAX).await?;
            put(&d.digest, &|t| std::fs::write(t, &bytes))?;
        }
    }
    for l in layers {
        put(&l.digest, &|t| std::fs::copy(&l.path, t).map(|_| ()))?;
    }
    put(&sha256_of(config), &|t| std::fs::write(t, config))?;
    let mdigest = sha256_of(manifest);
    put(&mdigest, &|t| std::fs::write(t, manifest))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| format!("cannot write the OCI layout: {e}"))?;
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
        "mediaType": MEDIA_TYPE_MANIFEST,
        "digest": mdigest,
        "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap_or_default())
        .map_err(|e| format!("cannot write {}: {e}", index_path.display()))
}
