//! The registry calls of a native build, on the registry client of [`crate::registry`] (its
//! transport, retries, auth challenges, tokens and credentials): manifests and blobs to read,
//! blob existence, cross-repository mounts, uploads and the manifest PUT.

use crate::oci;
use crate::reference::Reference;
use crate::registry::{self, Answer, Call, Response};
use crate::spec::Spec;
use reqwest::Method;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Blobs up to this size go in one PUT; bigger ones in PATCH chunks of this size.
pub const CHUNK: usize = 16 << 20;
/// Attempts of one blob upload (each from the start).
const UPLOAD_ATTEMPTS: u32 = 3;

pub struct Client {
    registry: registry::Client,
}

/// What went wrong with a request, the registry's words made safe for a terminal.
fn describe(what: &str, a: Answer) -> String {
    let text = match a {
        Answer::Resp(r) => format!(
            "{what}: HTTP {}{}",
            r.status,
            error_text(&r).map(|t| format!(" ({t})")).unwrap_or_default()
        ),
        Answer::Unknown(why) => format!("{what}: {why}"),
    };
    registry::clean_text(&text)
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
        Client::with_options(&registry::Options {
            registry_config: spec.registry_config.clone(),
            insecure: crate::spec::insecure_registries(spec),
            use_cache: false,
            timeout: Duration::from_secs(60),
            concurrency: 8,
            ..Default::default()
        })
    }

    /// A client with `opts.timeout` for connecting, for each answer's headers and for each read
    /// of a blob's body.
    pub(crate) fn with_options(opts: &registry::Options) -> crate::Result<Client> {
        Ok(Client {
            registry: registry::client(opts, Vec::new())?,
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
        self.registry.call(r, &c).await
    }

    /// The manifest (or index) `r` names: its JSON, media type and digest.
    pub async fn manifest(&self, r: &Reference) -> Result<(serde_json::Value, String, String), String> {
        self.registry.get_manifest(r).await
    }

    /// A blob as a file (base layers: never held whole in memory), kept by digest in
    /// `<cache>/native/blobs/` (0700). It is written as it arrives, each read given the timeout
    /// (not the whole body: a large layer on a slow link is fine while bytes keep coming), hashed
    /// on the way and renamed into place only when the hash is its digest. A kept file is hashed
    /// again before it is used.
    pub async fn blob_file(&self, r: &Reference, digest: &str) -> Result<PathBuf, String> {
        self.blob_file_in(r, digest, &blob_dir()?).await
    }

    async fn blob_file_in(&self, r: &Reference, digest: &str, dir: &Path) -> Result<PathBuf, String> {
        let name = blob_name(digest).ok_or_else(|| format!("blob {digest} of {r}: not a valid digest"))?;
        let path = dir.join(&name);
        if oci::hash_file(&path, digest).await.as_deref() == Some(digest) {
            return Ok(path);
        }
        let part = dir.join(format!(
            ".{name}.{}.{:016x}.part",
            std::process::id(),
            fastrand::u64(..)
        ));
        let blob_path = format!("/v2/{}/blobs/{digest}", r.repository);
        let a = self
            .call(
                r,
                Call {
                    method: Method::GET,
                    path: &blob_path,
                    download: Some(&part),
                    ..Call::default()
                },
            )
            .await;
        let got = match a {
            Answer::Resp(resp) if resp.status == 200 => {
                match (&resp.downloaded, digest.starts_with("sha256:")) {
                    (Some((d, _)), true) => Some(d.clone()),
                    _ => oci::hash_file(&part, digest).await,
                }
            }
            other => {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(describe(&format!("cannot read blob {digest} of {r}"), other));
            }
        };
        if got.as_deref() != Some(digest) {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(format!(
                "digest mismatch: blob {digest} of {r} arrived with content whose hash is {}",
                got.unwrap_or_else(|| "unknown".into())
            ));
        }
        tokio::fs::rename(&part, &path).await.map_err(|e| {
            let _ = std::fs::remove_file(&part);
            super::io_error("keep", &path, &e).to_string()
        })?;
        Ok(path)
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
                        Call {
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
            Answer::Resp(resp) if resp.status == 201 => Ok(oci::sha256_of(body)),
            other => Err(describe(
                &format!("the registry refused the manifest of {r}"),
                other,
            )),
        }
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

/// The file name of a blob kept by digest: the hex of a sha256 (as base configs are kept), or
/// `sha512-<hex>`; `None` for anything that is not a well-formed digest.
fn blob_name(digest: &str) -> Option<String> {
    if !oci::strict_digest(digest) {
        return None;
    }
    match digest.split_once(':')? {
        ("sha256", hex) => Some(hex.to_owned()),
        (algo, hex) => Some(format!("{algo}-{hex}")),
    }
}

/// `<cache>/native/blobs`, made 0700 (the base layers of private images are kept there).
fn blob_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = super::cache_root()
        .ok_or("no cache folder for base layers: set IMAGESPEC_CACHE_DIR (or HOME)")?
        .join("blobs");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| super::io_error("create", &dir, &e).to_string())?;
    Ok(dir)
}

fn location(resp: &Response) -> Result<String, String> {
    resp.header("location")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the registry started an upload without a Location".to_owned())
}

#[cfg(test)]
mod tests {
    //! Base layers against a real HTTP server on loopback that sends slowly, stalls or lies.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// How the server sends a blob's body: `(bytes, pause before them)` pieces.
    type Pieces = Vec<(Vec<u8>, Duration)>;

    /// Serves every request with a `200` whose body is `pieces`, sent with their pauses.
    async fn serve(pieces: Pieces) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let pieces = pieces.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&b[..n]),
                        }
                    }
                    let len: usize = pieces.iter().map(|p| p.0.len()).sum();
                    let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n");
                    let _ = sock.write_all(h.as_bytes()).await;
                    for (bytes, pause) in pieces {
                        tokio::time::sleep(pause).await;
                        if sock.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        addr.to_string()
    }

    fn client(timeout: Duration) -> Client {
        Client::with_options(&registry::Options {
            use_cache: false,
            timeout,
            retries: 0,
            ..Default::default()
        })
        .unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// A blob that takes three times the timeout to arrive, a piece every half timeout: slow,
    /// never silent. It is a file with its bytes, whatever the whole download took.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_steady_blob_arrives_whole() {
        let data: Vec<u8> = (0..6 * 65_536u32).map(|i| (i % 251) as u8).collect();
        let digest = oci::sha256_of(&data);
        let pieces: Pieces = data
            .chunks(65_536)
            .map(|c| (c.to_vec(), Duration::from_millis(250)))
            .collect();
        let host = serve(pieces).await;
        let r = Reference::parse(&format!("{host}/base:1")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::Instant::now();
        let path = client(Duration::from_millis(500))
            .blob_file_in(&r, &digest, dir.path())
            .await
            .unwrap();
        assert!(
            t0.elapsed() > Duration::from_millis(1000),
            "the body was meant to outlast the timeout"
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(path, dir.path().join(digest.trim_start_matches("sha256:")));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(leftovers(dir.path()).len(), 1);
    }

    /// A blob whose sender goes silent half-way: a timeout naming where and after how much,
    /// and nothing left in the folder.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_blob_times_out_and_leaves_nothing() {
        let data = vec![7u8; 1 << 17];
        let digest = oci::sha256_of(&data);
        let pieces: Pieces = vec![
            (data[..1 << 16].to_vec(), Duration::ZERO),
            (data[1 << 16..].to_vec(), Duration::from_secs(3)),
        ];
        let host = serve(pieces).await;
        let r = Reference::parse(&format!("{host}/base:1")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = client(Duration::from_millis(500))
            .blob_file_in(&r, &digest, dir.path())
            .await
            .unwrap_err();
        assert!(
            e.contains(&format!(
                "timeout: {host}/v2/base/blobs/{digest} sent nothing for 0.5 s after 65536 bytes"
            )),
            "{e}"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    /// Other bytes than the digest names: refused, not kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_with_other_content_is_refused() {
        let digest = oci::sha256_of(b"the layer that was asked for");
        let host = serve(vec![(b"something else".to_vec(), Duration::ZERO)]).await;
        let r = Reference::parse(&format!("{host}/base:1")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = client(Duration::from_secs(5))
            .blob_file_in(&r, &digest, dir.path())
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "digest mismatch: blob {digest} of {host}/base:1 arrived with content whose hash is sha256:"
            )),
            "{e}"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }
}
