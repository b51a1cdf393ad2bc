//! Manifests in a registry: the request for one (`HEAD` or `GET`, every manifest and index media
//! type accepted), one read and checked against its digest, and one `PUT` under a tag or digest.

use super::client::{describe, Answer, Call, Client};
use crate::oci::{self, manifest_digest, parse_manifest};
use crate::reference::Reference;
use reqwest::Method;

impl Client {
    /// `HEAD` or `GET` of the manifest `r` names, as the registry answered (the body read for a
    /// `GET`).
    pub(super) async fn manifest(&self, r: &Reference, method: Method) -> Answer {
        let path = format!("/v2/{}/manifests/{}", r.repository, r.manifest_ref());
        let read = method == Method::GET;
        self.request(r, method, &path, read).await
    }

    /// The manifest (or index) `r` names: its JSON, media type and digest.
    pub async fn get_manifest(&self, r: &Reference) -> Result<(serde_json::Value, String, String), String> {
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

    /// PUTs a manifest under `reference` (a tag or a digest); returns its digest.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        reference: &str,
        body: &[u8],
        media_type: &str,
    ) -> Result<String, String> {
        let path = format!("/v2/{}/manifests/{reference}", r.repository);
        let a = self
            .call(
                r,
                &Call {
                    method: Method::PUT,
                    path: &path,
                    actions: "pull,push",
                    headers: vec![("content-type", media_type.to_owned())],
                    body: Some(body.to_vec()),
                    ..Call::default()
                },
            )
            .await;
        match a {
            Answer::Resp(resp) if resp.status == 201 => Ok(oci::sha256_of(body)),
            other => Err(describe(
                &format!("the registry refused the manifest of {r}"),
                other,
            )),
        }
    }
}
