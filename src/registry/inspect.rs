//! The config of an image in a registry (its labels say what it was built from): the manifest,
//! for an index the entry of the wanted platform, then the config blob.

use super::client::{Answer, Client};
use super::platform::Platform;
use crate::oci::{is_index, manifest_digest, parse_manifest, strict_digest, valid_digest, verify_blob};
use crate::reference::Reference;
use reqwest::Method;

/// What `inspect` found.
#[derive(Clone, Debug)]
pub struct Inspected {
    /// The digest of the manifest that was read (the platform's, inside an index).
    pub digest: String,
    pub config: serde_json::Value,
}

impl Client {
    pub async fn inspect(&self, r: &Reference) -> Result<Inspected, String> {
        let (doc, media_type, digest) = self.get_manifest(r).await?;
        if !is_index(&media_type) {
            return self.config_of(r, &doc, digest).await;
        }
        let wanted = self.platforms.first().cloned().unwrap_or_else(Platform::host);
        let entry = doc
            .get("manifests")
            .and_then(|m| m.as_array())
            .and_then(|ms| {
                ms.iter().find(|m| {
                    m.get("platform")
                        .and_then(Platform::from_json)
                        .is_some_and(|p| p.satisfies(&wanted))
                })
            })
            .ok_or_else(|| format!("the index has no image for {wanted}"))?;
        let child = entry
            .get("digest")
            .and_then(|d| d.as_str())
            .filter(|d| strict_digest(d))
            .ok_or("unexpected answer: the index entry for the platform has no valid digest")?;
        let pinned = Reference {
            tag: None,
            digest: Some(child.to_owned()),
            ..r.clone()
        };
        let (doc, _, digest) = self.get_manifest(&pinned).await?;
        self.config_of(r, &doc, digest).await
    }

    /// The manifest (or index) `r` names: its JSON, media type and digest.
    pub(crate) async fn get_manifest(
        &self,
        r: &Reference,
    ) -> Result<(serde_json::Value, String, String), String> {
        let resp = match self.manifest(r, Method::GET).await {
            Answer::Resp(resp) => resp,
            Answer::Unknown(reason) => return Err(reason),
        };
        if resp.status == 404 {
            return Err(format!("{r} does not exist (HTTP 404)"));
        }
        if resp.status != 200 {
            let why = self.not_ok(&r.to_string(), r, &resp);
            return Err(why.reason.unwrap_or_else(|| format!("HTTP {}", resp.status)));
        }
        let digest = manifest_digest(r, resp.header("docker-content-digest"), &resp.body)?;
        let (doc, mt) = parse_manifest(resp.media_type().as_deref(), &resp.body)
            .map_err(|e| format!("unexpected answer: {e}"))?;
        Ok((doc, mt, digest))
    }

    async fn config_of(
        &self,
        r: &Reference,
        doc: &serde_json::Value,
        digest: String,
    ) -> Result<Inspected, String> {
        let config = doc
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .filter(|d| valid_digest(d))
            .ok_or("unexpected answer: the manifest names no config digest")?;
        let path = format!("/v2/{}/blobs/{config}", r.repository);
        match self.request(r, Method::GET, &path, true).await {
            Answer::Resp(resp) if resp.status == 200 => {
                verify_blob(r, config, &resp.body)?;
                let config = serde_json::from_slice(&resp.body)
                    .map_err(|_| "unexpected answer: the image config is not JSON".to_string())?;
                Ok(Inspected { digest, config })
            }
            Answer::Resp(resp) => Err(format!(
                "unexpected answer: HTTP {} for the image config",
                resp.status
            )),
            Answer::Unknown(reason) => Err(reason),
        }
    }
}
