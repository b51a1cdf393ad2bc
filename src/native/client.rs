//! The registry calls of a native build, on the registry client of [`crate::registry`] (its
//! transport, retries, auth challenges, tokens and credentials): manifests and blobs to read,
//! blob existence, cross-repository mounts, uploads and the manifest PUT.

use crate::reference::Reference;
use crate::registry::{self, Answer, Call, Checker, Response};
use crate::spec::Spec;
use reqwest::Method;
use std::path::Path;
use std::time::Duration;

/// Blobs up to this size go in one PUT; bigger ones in PATCH chunks of this size.
pub const CHUNK: usize = 16 << 20;
/// Attempts of one blob upload (each from the start).
const UPLOAD_ATTEMPTS: u32 = 3;

pub struct Client {
    checker: Checker,
}

fn describe(what: &str, a: Answer) -> String {
    match a {
        Answer::Resp(r) => format!(
            "{what}: HTTP {}{}",
            r.status,
            error_text(&r).map(|t| format!(" ({t})")).unwrap_or_default()
        ),
        Answer::Unknown(why) => format!("{what}: {why}"),
    }
}

/// The registry's error message (`{"errors":[{"code","message"}]}`), when it sent one.
fn error_text(r: &Response) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let e = v.get("errors")?.as_array()?.first()?;
    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
    Some(format!("{code} {msg}").trim().to_owned())
}

impl Client {
    pub fn new(spec: &Spec) -> crate::Result<Client> {
        let opts = registry::Options {
            registry_config: spec.registry_config.clone(),
            insecure: crate::engines::insecure_registries(spec),
            use_cache: false,
            timeout: Duration::from_secs(60),
            concurrency: 8,
            ..Default::default()
        };
        Ok(Client {
            checker: registry::checker(&opts, Vec::new())?,
        })
    }

    /// An empty `POST` with push access (starting or mounting an upload).
    async fn post_empty(&self, r: &Reference, path: &str) -> Answer {
        let call = Call {
            method: Method::POST,
            path,
            actions: "pull,push",
            headers: vec![("content-length", "0".into())],
            body: Some(Vec::new()),
            ..Call::default()
        };
        self.call(r, call).await
    }

    async fn call(&self, r: &Reference, c: Call<'_>) -> Answer {
        self.checker.call(r, &c).await
    }

    /// The manifest (or index) `r` names: its JSON, media type and digest.
    pub async fn manifest(&self, r: &Reference) -> Result<(serde_json::Value, String, String), String> {
        self.checker.get_manifest(r).await
    }

    /// A blob's bytes (at most `max`).
    pub async fn blob(&self, r: &Reference, digest: &str, max: usize) -> Result<Vec<u8>, String> {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let a = self
            .call(
                r,
                Call {
                    method: Method::GET,
                    path: &path,
                    read_body: true,
                    max_body: Some(max),
                    ..Call::default()
                },
            )
            .await;
        match a {
            Answer::Resp(resp) if resp.status == 200 => {
                if sha256_of(&resp.body) != digest {
                    return Err(format!(
                        "blob {digest} of {r}: the content does not match its digest"
                    ));
                }
                Ok(resp.body)
            }
            other => Err(describe(&format!("cannot read blob {digest} of {r}"), other)),
        }
    }

    pub async fn has_blob(&self, r: &Reference, digest: &str) -> Result<bool, String> {
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let a = self
            .call(
                r,
                Call {
                    method: Method::HEAD,
                    path: &path,
                    actions: "pull,push",
                    ..Call::default()
                },
            )
            .await;
        match a {
            Answer::Resp(resp) if resp.status == 200 => Ok(true),
            Answer::Resp(resp) if resp.status == 404 => Ok(false),
            other => Err(describe(&format!("cannot check blob {digest} in {r}"), other)),
        }
    }

    /// Mounts a blob of another repository of the same registry; false when the registry
    /// declined (the caller uploads it instead).
    pub async fn mount(&self, r: &Reference, digest: &str, from: &str) -> Result<bool, String> {
        let path = format!("/v2/{}/blobs/uploads/?mount={digest}&from={from}", r.repository);
        match self.post_empty(r, &path).await {
            Answer::Resp(resp) if resp.status == 201 => Ok(true),
            // 202: an upload was started instead; it is left to expire.
            Answer::Resp(resp) if resp.status == 202 => Ok(false),
            other => Err(describe(&format!("cannot mount {digest} into {r}"), other)),
        }
    }

    /// Uploads a blob from a file, retrying the whole upload on failure.
    pub async fn upload(&self, r: &Reference, digest: &str, file: &Path) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..UPLOAD_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.upload_once(r, digest, file).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(format!("{last} (after {UPLOAD_ATTEMPTS} attempts)"))
    }

    async fn start_upload(&self, r: &Reference) -> Result<String, String> {
        let path = format!("/v2/{}/blobs/uploads/", r.repository);
        match self.post_empty(r, &path).await {
            Answer::Resp(resp) if resp.status == 202 => location(&resp),
            other => Err(describe(&format!("cannot start an upload to {r}"), other)),
        }
    }

    async fn upload_once(&self, r: &Reference, digest: &str, file: &Path) -> Result<(), String> {
        let data = tokio::fs::read(file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut loc = self.start_upload(r).await?;
        let mut offset = 0usize;
        if data.len() > CHUNK {
            while offset < data.len() {
                let end = (offset + CHUNK).min(data.len());
                let a = self
                    .call(
                        r,
                        Call {
                            method: Method::PATCH,
                            path: &loc,
                            actions: "pull,push",
                            headers: vec![
                                ("content-type", "application/octet-stream".into()),
                                ("content-range", format!("{offset}-{}", end - 1)),
                            ],
                            body: Some(data[offset..end].to_vec()),
                            ..Call::default()
                        },
                    )
                    .await;
                loc = match a {
                    Answer::Resp(resp) if resp.status == 202 => location(&resp)?,
                    other => return Err(describe(&format!("upload of {digest} to {r} failed"), other)),
                };
                offset = end;
            }
        }
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={digest}");
        let body = data[offset..].to_vec();
        let a = self
            .call(
                r,
                Call {
                    method: Method::PUT,
                    path: &put,
                    actions: "pull,push",
                    headers: vec![
                        ("content-type", "application/octet-stream".into()),
                        ("content-length", body.len().to_string()),
                    ],
                    body: Some(body),
                    ..Call::default()
                },
            )
            .await;
        match a {
            Answer::Resp(resp) if resp.status == 201 => Ok(()),
            other => Err(describe(&format!("upload of {digest} to {r} failed"), other)),
        }
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
                Call {
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
            Answer::Resp(resp) if resp.status == 201 => Ok(sha256_of(body)),
            other => Err(describe(
                &format!("the registry refused the manifest of {r}"),
                other,
            )),
        }
    }
}

fn location(resp: &Response) -> Result<String, String> {
    resp.header("location")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the registry started an upload without a Location".to_owned())
}

pub fn sha256_of(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", super::layers::hex(&Sha256::digest(b)))
}
