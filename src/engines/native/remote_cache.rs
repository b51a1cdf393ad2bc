//! The native builder's layer cache in the registry (`builder_options={"cache": "registry"}`), so
//! that a machine with an empty cache folder runs no install and uploads no package layer when
//! another machine made those layers already.
//!
//! Each cached install (the packages, the runtime: keyed as on disk by everything that decides
//! the install) is a small artifact in the image's repository, tagged `imagespec-native-<key>`:
//! an OCI manifest whose layers are the install's layers and whose config (of its own media type)
//! lists their diff ids and history lines. Its layers are blobs of that repository, so an image
//! built from them pushes nothing for them. An artifact that cannot be read or is not one of ours
//! is said in a step and the install runs; one is written after each push that used its layers.

use super::layers::Layer;
use crate::oci::{sha256_of, OCI_MANIFEST};
use crate::reference::Reference;
use crate::registry::Client;
use crate::support::fs::TempFile;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// What a cache artifact's tag starts with; the key (64 hex digits) follows.
pub const TAG_PREFIX: &str = "imagespec-native-";
/// The media type of a cache artifact's config: the layers' facts.
pub const CONFIG_TYPE: &str = "application/vnd.dev.imagespec.native-cache.v1+json";
/// The most a cache artifact's config may weigh.
const MAX_CONFIG: usize = 1 << 20;

/// A layer's facts, as a cache artifact's config lists them (the blob stays in the registry).
#[derive(serde::Serialize, serde::Deserialize)]
struct Facts {
    digest: String,
    diff_id: String,
    size: u64,
    media_type: String,
    created_by: String,
}

/// The cache of one build: the image's repository and the registry client.
pub struct RemoteCache {
    client: Arc<Client>,
    repository: String,
}

impl RemoteCache {
    /// The cache of `spec`'s builds when it asks for one.
    pub fn of(spec: &crate::spec::Spec, client: Arc<Client>) -> crate::Result<Option<RemoteCache>> {
        Ok(crate::engines::cache::registry_cache(spec)?.map(|repository| RemoteCache { client, repository }))
    }

    fn reference(&self, key: &str) -> Result<Reference, String> {
        Reference::parse(&format!("{}:{TAG_PREFIX}{key}", self.repository)).map_err(|e| e.to_string())
    }

    /// The layers cached under `key` (their files not on this machine: `path` is empty), or
    /// `None` when there is no such artifact.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<Layer>>, String> {
        let r = self.reference(key)?;
        let (doc, _, _) = match self.client.get_manifest(&r).await {
            Ok(found) => found,
            Err(e) if e.contains("(HTTP 404)") => return Ok(None),
            Err(e) => return Err(e),
        };
        let config = doc.get("config").ok_or_else(|| format!("{r}: no config"))?;
        if config.get("mediaType").and_then(|m| m.as_str()) != Some(CONFIG_TYPE) {
            return Err(format!("{r} is not a native layer cache entry"));
        }
        let digest = config
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| format!("{r}: no config digest"))?;
        let bytes = self.client.blob(&r, digest, MAX_CONFIG).await?;
        let facts: Vec<Facts> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{r}: its config is not a list of layers ({e})"))?;
        let listed: Vec<&str> = doc
            .get("layers")
            .and_then(|l| l.as_array())
            .map(|a| a.iter().filter_map(|d| d.get("digest")?.as_str()).collect())
            .unwrap_or_default();
        if listed != facts.iter().map(|f| f.digest.as_str()).collect::<Vec<_>>() {
            return Err(format!("{r}: its manifest and its config list other layers"));
        }
        // The image is pushed from these blobs without their files: each must be there.
        for f in &facts {
            if !self.client.has_blob(&r, &f.digest).await? {
                return Err(format!("{r}: its layer {} is not in the registry", f.digest));
            }
        }
        Ok(Some(
            facts
                .into_iter()
                .map(|f| Layer {
                    digest: f.digest,
                    diff_id: f.diff_id,
                    size: f.size,
                    path: PathBuf::new(),
                    created_by: f.created_by,
                    media_type: f.media_type,
                })
                .collect(),
        ))
    }

    /// Writes the artifact of `key` unless the registry has it; `layers` must be blobs of the
    /// repository already (the image that used them was pushed).
    pub async fn put(&self, key: &str, layers: &[Layer]) -> Result<(), String> {
        let r = self.reference(key)?;
        if self.get(key).await.is_ok_and(|found| found.is_some()) {
            return Ok(());
        }
        let facts: Vec<Facts> = layers
            .iter()
            .map(|l| Facts {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                created_by: l.created_by.clone(),
            })
            .collect();
        let config = serde_json::to_vec(&facts).map_err(|e| e.to_string())?;
        let digest = sha256_of(&config);
        let dir = std::env::temp_dir();
        let file = TempFile::new_in(&dir, ".imagespec-cache", "", &config).map_err(|e| e.to_string())?;
        self.client.upload(&r, &digest, file.path()).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_TYPE, "digest": digest, "size": config.len()},
            "layers": layers
                .iter()
                .map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
                .collect::<Vec<_>>(),
        });
        let body = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        let tag = format!("{TAG_PREFIX}{key}");
        self.client.put_manifest(&r, &tag, &body, OCI_MANIFEST).await?;
        Ok(())
    }
}
