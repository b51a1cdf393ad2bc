//! Does a manifest exist: `HEAD /v2/<repo>/manifests/<ref>` with every manifest and index media
//! type accepted, `GET` where HEAD is refused or says too little, and, when platforms are asked
//! for, a look inside the index (or the single image's config) for each of them.

use super::client::{Answer, Client};
use super::platform::Platform;
use super::transport::Response;
use super::{CheckResult, Status};
use crate::oci::{
    is_index, is_known, manifest_digest, mismatch, parse_manifest, same_algorithm, valid_digest, verify_blob,
};
use crate::reference::Reference;
use reqwest::Method;

impl Client {
    fn platform_key(&self) -> Vec<String> {
        let mut v: Vec<String> = self.platforms.iter().map(Platform::to_string).collect();
        v.sort();
        v
    }

    pub async fn check(&self, input: &str, r: &Reference) -> CheckResult {
        let key = self.platform_key();
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(r, &key)) {
            return CheckResult {
                status: Status::Exists,
                digest: hit.digest,
                media_type: hit.media_type,
                cached: true,
                reason: None,
                ..CheckResult::unknown(input, String::new())
            };
        }
        let mut out = self.check_remote(input, r).await;
        out.reference = input.to_string();
        if out.status == Status::Exists {
            if let Some(c) = &self.cache {
                c.put(r, &key, out.digest.as_deref(), out.media_type.as_deref());
            }
        }
        out
    }

    async fn check_remote(&self, input: &str, r: &Reference) -> CheckResult {
        let unknown = |reason: String| CheckResult::unknown(input, reason);
        // With platforms to check, the manifest's body is needed anyway: a HEAD first would only
        // add a round trip.
        if self.platforms.is_empty() {
            let head = match self.manifest(r, Method::HEAD).await {
                Answer::Resp(resp) => resp,
                Answer::Unknown(reason) => return unknown(reason),
            };
            match head.status {
                200 => {
                    let mt = head.media_type();
                    let digest = head
                        .header("docker-content-digest")
                        .filter(|d| valid_digest(d))
                        .map(str::to_string);
                    if let (Some(mt), Some(d)) = (&mt, &digest) {
                        match &r.digest {
                            // A HEAD carries no content to hash: a pinned reference exists when
                            // the registry names exactly the digest asked for.
                            Some(want) if d == want => {}
                            Some(want) if same_algorithm(d, want) => {
                                return unknown(mismatch(r, want, d, "named in Docker-Content-Digest"))
                            }
                            Some(_) => return self.get_and_check(input, r).await,
                            None => {}
                        }
                        if is_known(mt) {
                            return exists(input, d.clone(), mt.clone());
                        }
                    }
                }
                400 | 405 | 501 => {} // HEAD refused: ask with GET.
                _ => return self.not_ok(input, r, &head),
            }
        }
        self.get_and_check(input, r).await
    }

    /// The manifest's content: its digest hashed from it, and its platforms when asked for.
    async fn get_and_check(&self, input: &str, r: &Reference) -> CheckResult {
        let unknown = |reason: String| CheckResult::unknown(input, reason);
        let get = match self.manifest(r, Method::GET).await {
            Answer::Resp(resp) => resp,
            Answer::Unknown(reason) => return unknown(reason),
        };
        if get.status != 200 {
            return self.not_ok(input, r, &get);
        }
        let (doc, mt) = match parse_manifest(get.media_type().as_deref(), &get.body) {
            Ok(x) => x,
            Err(e) => return unknown(format!("unexpected answer: {e}")),
        };
        let digest = match manifest_digest(r, get.header("docker-content-digest"), &get.body) {
            Ok(d) => d,
            Err(reason) => return unknown(reason),
        };
        if self.platforms.is_empty() {
            return exists(input, digest, mt);
        }
        let found: Result<Vec<Platform>, String> = if is_index(&mt) {
            Ok(doc
                .get("manifests")
                .and_then(|m| m.as_array())
                .map(|ms| {
                    ms.iter()
                        .filter_map(|m| m.get("platform"))
                        .filter_map(Platform::from_json)
                        .collect()
                })
                .unwrap_or_default())
        } else {
            self.config_platform(r, &doc)
                .await
                .map(|p| p.into_iter().collect())
        };
        let found = match found {
            Ok(f) => f,
            Err(reason) => return unknown(reason),
        };
        let lacking: Vec<String> = self
            .platforms
            .iter()
            .filter(|p| !found.iter().any(|f| f.satisfies(p)))
            .map(Platform::to_string)
            .collect();
        if lacking.is_empty() {
            return exists(input, digest, mt);
        }
        let has = if found.is_empty() {
            "none".to_string()
        } else {
            found
                .iter()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let what = if is_index(&mt) {
            "the index"
        } else {
            "the single-platform image"
        };
        CheckResult {
            status: Status::Missing,
            reason: Some(format!(
                "{what} lacks platform {} (it has {has})",
                lacking.join(", ")
            )),
            digest: Some(digest),
            media_type: Some(mt),
            ..CheckResult::unknown(input, String::new())
        }
    }

    pub(super) fn not_ok(&self, input: &str, r: &Reference, resp: &Response) -> CheckResult {
        let at = format!("{}/{}:{}", r.registry, r.repository, r.manifest_ref());
        match resp.status {
            404 => CheckResult {
                status: Status::Missing,
                reason: Some(format!("manifest unknown: {at} not found (HTTP 404)")),
                ..CheckResult::unknown(input, String::new())
            },
            401 => CheckResult::unknown(input, format!("auth refused: {} (HTTP 401)", r.registry)),
            403 => CheckResult::unknown(
                input,
                format!("auth refused: access to {} denied (HTTP 403)", r.repository),
            ),
            429 => CheckResult::unknown(
                input,
                format!(
                    "rate limited: {} answered HTTP 429{}",
                    r.registry,
                    resp.header("retry-after")
                        .map(|v| format!(" (Retry-After: {v})"))
                        .unwrap_or_default()
                ),
            ),
            s => CheckResult::unknown(input, format!("unexpected answer: HTTP {s} for {at}")),
        }
    }

    async fn config_platform(
        &self,
        r: &Reference,
        doc: &serde_json::Value,
    ) -> Result<Option<Platform>, String> {
        let digest = doc
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .filter(|d| valid_digest(d))
            .ok_or("unexpected answer: the manifest names no config digest")?;
        let path = format!("/v2/{}/blobs/{digest}", r.repository);
        match self.request(r, Method::GET, &path, true).await {
            Answer::Resp(resp) if resp.status == 200 => {
                verify_blob(r, digest, &resp.body)?;
                let v: serde_json::Value = serde_json::from_slice(&resp.body)
                    .map_err(|_| "unexpected answer: the image config is not JSON".to_string())?;
                Ok(Platform::from_json(&v))
            }
            Answer::Resp(resp) => Err(format!(
                "unexpected answer: HTTP {} for the image config",
                resp.status
            )),
            Answer::Unknown(reason) => Err(reason),
        }
    }
}

fn exists(input: &str, digest: String, mt: String) -> CheckResult {
    CheckResult {
        status: Status::Exists,
        reason: None,
        digest: Some(digest),
        media_type: Some(mt),
        ..CheckResult::unknown(input, String::new())
    }
}
