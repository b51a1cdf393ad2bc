//! The native builder's side of the registry client ([`crate::registry::Client`]): the settings
//! of a build's client, and the folder where base layers are kept by digest, so that a rebuild
//! reads them from disk instead of the registry.

use crate::oci;
use crate::reference::Reference;
use crate::registry::{self, Client};
use crate::spec::Spec;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The registry client of a build of `spec`: its `registry_config` and insecure registries, no
/// existence cache, and a minute for each answer and each read of a blob.
pub fn new(spec: &Spec) -> crate::Result<Client> {
    registry::client(
        &registry::Options {
            registry_config: spec.registry_config.clone(),
            insecure: crate::spec::insecure_registries(spec),
            use_cache: false,
            timeout: Duration::from_secs(60),
            concurrency: 8,
            ..Default::default()
        },
        Vec::new(),
    )
}

/// A blob as a file (base layers: never held whole in memory), kept by digest in
/// `<cache>/native/blobs/` (0700). It is written as it arrives (see
/// [`Client::blob_to_file`]) and renamed into place only when its hash is its digest. A kept file
/// is hashed again before it is used.
pub async fn blob_file(client: &Client, r: &Reference, digest: &str) -> Result<PathBuf, String> {
    blob_file_in(client, r, digest, &blob_dir()?).await
}

async fn blob_file_in(client: &Client, r: &Reference, digest: &str, dir: &Path) -> Result<PathBuf, String> {
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
    client.blob_to_file(r, digest, &part).await?;
    tokio::fs::rename(&part, &path).await.map_err(|e| {
        let _ = std::fs::remove_file(&part);
        super::io_error("keep", &path, &e).to_string()
    })?;
    Ok(path)
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
    let dir = super::cache_root()
        .ok_or("no cache folder for base layers: set IMAGESPEC_CACHE_DIR (or HOME)")?
        .join("blobs");
    crate::support::fs::create_dir(&dir).map_err(|e| super::io_error("create", &dir, &e).to_string())?;
    Ok(dir)
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

    /// A client with `timeout` for connecting, for each answer's headers and for each read of a
    /// blob's body.
    fn client(timeout: Duration) -> Client {
        registry::client(
            &registry::Options {
                use_cache: false,
                timeout,
                retries: 0,
                ..Default::default()
            },
            Vec::new(),
        )
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
        let path = blob_file_in(&client(Duration::from_millis(500)), &r, &digest, dir.path())
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
        let e = blob_file_in(&client(Duration::from_millis(500)), &r, &digest, dir.path())
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
        let e = blob_file_in(&client(Duration::from_secs(5)), &r, &digest, dir.path())
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
