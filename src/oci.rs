//! What the OCI image and distribution specs (and Docker's schema 2 before them) name: the media
//! types of manifests, indexes, configs and layers, and the digests that address content,
//! checked, computed and compared. No I/O but hashing a file.

use crate::reference::Reference;
use sha2::{Digest, Sha256, Sha512};
use std::path::Path;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// The `Accept` of a manifest request: every manifest and index type above.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// A manifest or index media type.
pub fn is_known(mt: &str) -> bool {
    matches!(mt, OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST)
}

pub fn valid_digest(d: &str) -> bool {
    d.split_once(':')
        .is_some_and(|(a, h)| !a.is_empty() && h.len() >= 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `algorithm:hex` as a reference may pin it: sha256 or sha512, lowercase hex of their length.
/// What an index names as a child must be this before it goes into a URL.
pub fn strict_digest(d: &str) -> bool {
    let want = match d.split_once(':') {
        Some(("sha256", h)) => (64, h),
        Some(("sha512", h)) => (128, h),
        _ => return false,
    };
    want.1.len() == want.0
        && want
            .1
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn same_algorithm(a: &str, b: &str) -> bool {
    a.split_once(':').map(|x| x.0) == b.split_once(':').map(|x| x.0)
}

/// `bytes` hashed with the algorithm of `like` (sha256 unless it says sha512).
pub fn digest_like(like: &str, bytes: &[u8]) -> String {
    if like.starts_with("sha512:") {
        format!(
            "sha512:{}",
            data_encoding::HEXLOWER.encode(&Sha512::digest(bytes))
        )
    } else {
        format!(
            "sha256:{}",
            data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
        )
    }
}

pub fn sha256_of(b: &[u8]) -> String {
    format!("sha256:{}", data_encoding::HEXLOWER.encode(&Sha256::digest(b)))
}

/// The digest of a file in the algorithm of `like`; `None` when it cannot be read.
pub async fn hash_file(path: &Path, like: &str) -> Option<String> {
    let (path, sha512) = (path.to_path_buf(), like.starts_with("sha512:"));
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(path).ok()?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut a, mut b) = (Sha256::new(), Sha512::new());
        loop {
            let n = f.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            if sha512 {
                b.update(&buf[..n]);
            } else {
                a.update(&buf[..n]);
            }
        }
        Some(if sha512 {
            format!("sha512:{}", data_encoding::HEXLOWER.encode(&b.finalize()))
        } else {
            format!("sha256:{}", data_encoding::HEXLOWER.encode(&a.finalize()))
        })
    })
    .await
    .ok()
    .flatten()
}

pub fn mismatch(r: &Reference, want: &str, got: &str, how: &str) -> String {
    format!(
        "digest mismatch: asked {} for {}@{want}, it answered with {got} ({how}); \
         the registry (or something between) serves other content under that digest",
        r.registry, r.repository
    )
}

/// The digest of a manifest answer, hashed from its `body`. A pinned reference's digest must be
/// it; a `Docker-Content-Digest` (`header`) that the registry sent along must be it too.
pub fn manifest_digest(r: &Reference, header: Option<&str>, body: &[u8]) -> Result<String, String> {
    if let Some(want) = &r.digest {
        let got = digest_like(want, body);
        return if got == *want {
            Ok(got)
        } else {
            Err(mismatch(r, want, &got, "the hash of the manifest it sent"))
        };
    }
    let header = header.filter(|d| valid_digest(d));
    let got = digest_like(header.unwrap_or("sha256:"), body);
    match header {
        Some(h) if h != got => Err(format!(
            "digest mismatch: {} named {h} as the digest of {}:{} but sent a manifest whose hash \
             is {got}",
            r.registry,
            r.repository,
            r.manifest_ref()
        )),
        _ => Ok(got),
    }
}

/// A blob's body must hash to the digest it was asked by.
pub fn verify_blob(r: &Reference, digest: &str, body: &[u8]) -> Result<(), String> {
    let got = digest_like(digest, body);
    if got == digest {
        return Ok(());
    }
    Err(format!(
        "digest mismatch: blob {digest} of {}/{} arrived with content whose hash is {got}",
        r.registry, r.repository
    ))
}

/// The manifest's JSON and media type, from a manifest answer's media type (its `Content-Type`
/// without parameters) and `body`; an error text for anything that is not a manifest.
pub fn parse_manifest(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(serde_json::Value, String), String> {
    let ct = content_type.unwrap_or_default().to_string();
    let shown = if ct.is_empty() {
        "no content type".to_string()
    } else {
        ct.clone()
    };
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("the manifest answer is not JSON ({shown}), not a registry manifest"))?;
    let declared = v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string);
    let mt = if is_known(&ct) { Some(ct) } else { declared };
    let mt = match mt {
        Some(m) if is_known(&m) => m,
        _ if v.get("manifests").is_some_and(serde_json::Value::is_array) => OCI_INDEX.to_string(),
        _ if v.get("config").is_some_and(serde_json::Value::is_object) => OCI_MANIFEST.to_string(),
        _ => {
            return Err(format!(
                "the answer ({shown}) is JSON but not an image manifest or index"
            ))
        }
    };
    if v.get("schemaVersion").and_then(serde_json::Value::as_u64) != Some(2) {
        return Err("the manifest's schemaVersion is not 2".into());
    }
    Ok((v, mt))
}
