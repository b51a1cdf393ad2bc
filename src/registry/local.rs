//! Existence in the local engine, for specs without a registry: Docker's API over its unix
//! socket (`$DOCKER_HOST` when it is `unix://`, else `/var/run/docker.sock`), then `podman image
//! exists`. When no engine answers, the answer is unknown, not "missing".

use super::{CheckResult, Status};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn docker_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

pub async fn check_local(name: &str, timeout: Duration) -> CheckResult {
    let mut tried = Vec::new();
    match docker_socket() {
        Some(sock) => match tokio::time::timeout(timeout, docker_inspect(&sock, name)).await {
            Ok(Ok(status)) => return status_result(name, status, "local Docker engine"),
            Ok(Err(e)) => tried.push(format!("Docker at {}: {e}", sock.display())),
            Err(_) => tried.push(format!(
                "Docker at {}: no answer within {timeout:?}",
                sock.display()
            )),
        },
        None => tried.push("Docker: DOCKER_HOST is not a unix socket".to_string()),
    }
    let podman = tokio::process::Command::new("podman")
        .args(["image", "exists", name])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(timeout, podman).await {
        Ok(Ok(s)) if s.code() == Some(0) => return status_result(name, 200, "local podman store"),
        Ok(Ok(s)) if s.code() == Some(1) => return status_result(name, 404, "local podman store"),
        Ok(Ok(s)) => tried.push(format!("podman: {s}")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => tried.push("podman: not installed".into()),
        Ok(Err(e)) => tried.push(format!("podman: {e}")),
        Err(_) => tried.push("podman: no answer in time".into()),
    }
    CheckResult::unknown(
        name,
        format!("no local container engine answered ({})", tried.join("; ")),
    )
}

fn status_result(name: &str, status: u16, engine: &str) -> CheckResult {
    match status {
        200 => CheckResult {
            status: Status::Exists,
            reason: Some(format!("found in the {engine}")),
            ..CheckResult::unknown(name, String::new())
        },
        404 => CheckResult {
            status: Status::Missing,
            reason: Some(format!("not in the {engine}")),
            ..CheckResult::unknown(name, String::new())
        },
        s => CheckResult::unknown(name, format!("the {engine} answered HTTP {s}")),
    }
}

/// `GET /images/{name}/json` over the socket; the HTTP status.
async fn docker_inspect(sock: &std::path::Path, name: &str) -> Result<u16, String> {
    let mut s = tokio::net::UnixStream::connect(sock)
        .await
        .map_err(|e| e.to_string())?;
    let path: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let req = format!("GET /images/{path}/json HTTP/1.0\r\nHost: docker\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 || head.len() > 8192 {
            return Err("closed without an HTTP answer".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| "answered something that is not HTTP".to_string())
}
