//! The base image: its manifest and config for the target platform (through an index when the
//! reference names one), from its registry.

use crate::oci::{self, is_index};
use crate::reference::Reference;
use crate::registry::platform::Platform;
use crate::registry::Client;

/// A layer, config or manifest as a manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Base {
    pub reference: Reference,
    /// The digest of the platform's manifest.
    pub digest: String,
    pub config: serde_json::Value,
    pub config_digest: String,
    pub layers: Vec<Descriptor>,
}

/// The OCI media type of a base layer (Docker's names for the same bytes are mapped).
pub fn oci_layer_type(mt: &str) -> String {
    match mt {
        oci::DOCKER_LAYER_GZIP => oci::OCI_LAYER_GZIP.to_owned(),
        oci::DOCKER_LAYER_FOREIGN => oci::OCI_LAYER_NONDISTRIBUTABLE_GZIP.to_owned(),
        other => other.to_owned(),
    }
}

/// The base for `platform`. Its errors quote the registry (platform names from an index), made
/// safe for a terminal.
pub async fn resolve(client: &Client, name: &str, platform: &Platform) -> Result<Base, String> {
    resolve_quoting(client, name, platform)
        .await
        .map_err(|e| crate::registry::clean_text(&e))
}

async fn resolve_quoting(client: &Client, name: &str, platform: &Platform) -> Result<Base, String> {
    let r = Reference::parse(name).map_err(|e| format!("base_image {name:?}: {e}"))?;
    let (doc, mt, digest) = client
        .get_manifest(&r)
        .await
        .map_err(|e| format!("base image {name}: {e}"))?;
    let (doc, digest) = if is_index(&mt) {
        let entries = doc
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let found = entries.iter().find(|m| {
            m.get("platform")
                .and_then(Platform::from_json)
                .is_some_and(|p| p.satisfies(platform))
        });
        let Some(entry) = found else {
            let has: Vec<String> = entries
                .iter()
                .filter_map(|m| m.get("platform").and_then(Platform::from_json))
                .map(|p| p.to_string())
                .collect();
            return Err(format!(
                "the base image {name} has no image for platform {platform} (it has {})",
                if has.is_empty() {
                    "none".into()
                } else {
                    has.join(", ")
                }
            ));
        };
        // The child is then asked for by this digest, and what arrives must hash to it.
        let child = entry
            .get("digest")
            .and_then(|d| d.as_str())
            .filter(|d| oci::strict_digest(d))
            .ok_or_else(|| {
                format!("base image {name}: the index entry for {platform} has no valid digest")
            })?;
        let pinned = Reference {
            tag: None,
            digest: Some(child.to_owned()),
            ..r.clone()
        };
        let (doc, _, digest) = client
            .get_manifest(&pinned)
            .await
            .map_err(|e| format!("base image {name}: {e}"))?;
        (doc, digest)
    } else {
        (doc, digest)
    };
    let config_desc: Descriptor = serde_json::from_value(doc.get("config").cloned().unwrap_or_default())
        .map_err(|_| format!("base image {name}: the manifest has no valid config descriptor"))?;
    let layers: Vec<Descriptor> = serde_json::from_value(
        doc.get("layers")
            .cloned()
            .unwrap_or_else(|| serde_json::json!([])),
    )
    .map_err(|_| format!("base image {name}: the manifest's layers are not valid descriptors"))?;
    let bytes = match cached_blob(&config_desc.digest) {
        Some(b) => b,
        None => {
            let b = client
                .blob(&r, &config_desc.digest, 16 << 20)
                .await
                .map_err(|e| format!("base image {name}: {e}"))?;
            keep_blob(&config_desc.digest, &b);
            b
        }
    };
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| format!("base image {name}: its config is not JSON"))?;
    if let Some(p) = Platform::from_json(&config) {
        if !p.satisfies(platform) {
            return Err(format!(
                "the base image {name} is for {p}, not for platform {platform}; use a base image (or an index) for {platform}"
            ));
        }
    }
    let diff_ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .map_or(0, Vec::len);
    if diff_ids != layers.len() {
        return Err(format!(
            "base image {name}: its config lists {diff_ids} layers but its manifest {}",
            layers.len()
        ));
    }
    Ok(Base {
        reference: r,
        digest,
        config,
        config_digest: config_desc.digest,
        layers,
    })
}

/// Where base configs are kept by digest: content-addressed, so a hit needs no request (a
/// source-only rebuild then asks the registry only for the base's manifest).
fn blob_path(digest: &str) -> Option<std::path::PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    super::cache_root().map(|d| d.join("blobs").join(hex))
}

/// A kept blob whose bytes still match its digest.
fn cached_blob(digest: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(blob_path(digest)?).ok()?;
    (oci::sha256_of(&bytes) == digest).then_some(bytes)
}

/// Best effort: a blob that cannot be kept is fetched again next time.
fn keep_blob(digest: &str, bytes: &[u8]) {
    if let Some(p) = blob_path(digest) {
        let _ = crate::support::fs::write_whole(&p, bytes);
    }
}
