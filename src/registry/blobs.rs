//! Blobs in a registry: read (to a file as it arrives, or small ones into memory, each checked
//! against its digest), asked about (`HEAD`), mounted from another repository of the same
//! registry, and uploaded (one `PUT`, or `PATCH` chunks then the `PUT`).

use super::client::{describe, Answer, Call, Client};
use super::transport::Response;
use crate::oci;
use crate::reference::Reference;
use reqwest::Method;
use std::path::Path;
use std::time::Duration;

/// Blobs up to this size go in one PUT; bigger ones in PATCH chunks of this size.
const CHUNK: usize = 16 << 20;
/// Attempts of one blob upload (each from the start).
const UPLOAD_ATTEMPTS: u32 = 3;

impl Client {
    /// A blob written to `file` (created, 0600) as it arrives (base layers: never held whole in
    /// memory), each read given the timeout (not the whole body: a large layer on a slow link is
    /// fine while bytes keep coming) and hashed on the way. When it fails, or the hash is not
    /// its digest, `file` is removed.
    pub async fn blob_to_file(&self, r: &Reference, digest: &str, file: &Path) -> Result<(), String> {
        let blob_path = format!("/v2/{}/blobs/{digest}", r.repository);
        let a = self
            .call(
                r,
                &Call {
                    method: Method::GET,
                    path: &blob_path,
                    download: Some(file),
                    ..Call::default()
                },
            )
            .await;
        let got = match a {
            Answer::Resp(resp) if resp.status == 200 => {
                match (&resp.downloaded, digest.starts_with("sha256:")) {
                    (Some((d, _)), true) => Some(d.clone()),
                    _ => oci::hash_file(file, digest).await,
                }
            }
            other => {
                let _ = tokio::fs::remove_file(file).await;
                return Err(describe(&format!("cannot read blob {digest} of {r}"), other));
            }
        };
        if got.as_deref() != Some(digest) {
            let _ = tokio::fs::remove_file(file).await;
            return Err(format!(
                "digest mismatch: blob {digest} of {r} arrived with content whose hash is {}",
                got.unwrap_or_else(|| "unknown".into())
            ));
        }
        Ok(())
    }

    /// A small blob's bytes (at most `max`), checked against its digest.
    pub async fn blob(&self, r: &Reference, digest: &str, max: usize) -> Result<Vec<u8>, String> {
        if !oci::strict_digest(digest) {
            return Err(format!("blob {digest} of {r}: not a valid digest"));
        }
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        let a = self
            .call(
                r,
                &Call {
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
                oci::verify_blob(r, digest, &resp.body)?;
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
                &Call {
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
        let unreadable = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
        let mut f = tokio::fs::File::open(file).await.map_err(unreadable)?;
        let len = f.metadata().await.map_err(unreadable)?.len() as usize;
        let mut loc = self.start_upload(r).await?;
        let mut offset = 0usize;
        if len > CHUNK {
            while offset < len {
                let end = (offset + CHUNK).min(len);
                let chunk = read_chunk(&mut f, end - offset, file).await?;
                let a = self
                    .call(
                        r,
                        &Call {
                            method: Method::PATCH,
                            path: &loc,
                            actions: "pull,push",
                            headers: vec![
                                ("content-type", "application/octet-stream".into()),
                                ("content-range", format!("{offset}-{}", end - 1)),
                            ],
                            body: Some(chunk),
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
        let body = read_chunk(&mut f, len - offset, file).await?;
        let a = self
            .call(
                r,
                &Call {
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
        self.call(r, &call).await
    }
}

/// The next `n` bytes of an upload's file: one chunk in memory at a time, since a base layer
/// copied between registries can be large.
async fn read_chunk(f: &mut tokio::fs::File, n: usize, file: &Path) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; n];
    f.read_exact(&mut buf)
        .await
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(buf)
}

fn location(resp: &Response) -> Result<String, String> {
    resp.header("location")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the registry started an upload without a Location".to_owned())
}
