//! uv on this machine: where it is, its version, and what it runs before an install
//! ([`super::install`]): the export of a `uv.lock` or a `poetry.lock` to pinned requirements.
//!
//! uv is found as `$IMAGESPEC_UV`, else `uv` beside the Python running imagespec (`sys.prefix/bin`,
//! where `pip install imagespec-build` puts it as a dependency), else `$VIRTUAL_ENV/bin/uv`, else on
//! `PATH`.

use crate::error::{Error, Result};
use crate::spec::redact_userinfo;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `sys.prefix` of the Python that loaded imagespec (set by the extension module).
pub static PYTHON_PREFIX: OnceLock<PathBuf> = OnceLock::new();

pub fn find_uv() -> std::result::Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("IMAGESPEC_UV").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("IMAGESPEC_UV={} is not a file", p.display()))
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(prefix) = PYTHON_PREFIX.get() {
        candidates.push(prefix.join("bin/uv"));
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(v).join("bin/uv"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("uv")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "uv is not installed: the native builder installs packages with uv (pip install 'imagespec-build[native]', or set \
         IMAGESPEC_UV to its path)"
            .to_owned()
    })
}

/// `uv --version`, remembered in `cache` (when given) under the binary's path, size, inode and
/// modification time: starting uv costs more than the rest of a source-only rebuild.
pub fn uv_version(uv: &Path, cache: Option<&Path>) -> Result<String> {
    let remembered = cache.zip(stamp(uv)).map(|(dir, s)| dir.join(s));
    if let Some(v) = remembered.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        if !v.is_empty() {
            return Ok(v);
        }
    }
    let out = Command::new(uv)
        .arg("--version")
        .output()
        .map_err(|e| Error::build(format!("native: cannot run {}: {e}", uv.display())))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if let (Some(f), true) = (remembered, out.status.success() && !version.is_empty()) {
        // Best effort: a cache that cannot be written only costs the next build a process start.
        let _ = crate::source::write_whole(&f, version.as_bytes());
    }
    Ok(version)
}

/// A file name that changes whenever the file at `path` is replaced or modified.
fn stamp(path: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let text = format!(
        "{}\0{}\0{}\0{}\0{}",
        path.display(),
        m.len(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec()
    );
    Some(super::layers::hex(&Sha256::digest(text.as_bytes()))[..32].to_owned())
}

/// The main group of a `poetry.lock` (with its `pyproject.toml` in `project`) as pinned, hashed
/// requirements in `out`: poetry and its export plugin run on this machine through `uv tool run`
/// (downloaded into uv's cache, never into the image), as the Dockerfile recipe runs them in a
/// build step. `index_url` is where they come from (the spec's `pip_index`, else PyPI).
pub fn export_poetry(
    uv: &Path,
    project: &Path,
    out: &Path,
    work: &Path,
    index_url: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<()> {
    let mut cmd = Command::new(uv);
    cmd.args(["tool", "run", "--quiet", "--isolated"]);
    if let Some(u) = index_url {
        cmd.env("UV_INDEX_URL", u);
    }
    cmd.args(["--from", "poetry>=2,<3", "--with", "poetry-plugin-export>=1.8,<2"])
        .args(["poetry", "export", "--no-interaction", "--only", "main"])
        .args(["--format", "requirements.txt", "--output"])
        .arg(out)
        .arg("--directory")
        .arg(project)
        .env("UV_NO_CONFIG", "1")
        .env("POETRY_CACHE_DIR", work.join("poetry-cache"))
        .env("POETRY_VIRTUALENVS_CREATE", "false");
    trust(&mut cmd, ca_file);
    let done = cmd
        .output()
        .map_err(|e| Error::build(format!("native: cannot run {}: {e}", uv.display())))?;
    if done.status.success() && out.is_file() {
        return Ok(());
    }
    let text = redact_userinfo(&String::from_utf8_lossy(&done.stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(Error::build(format!(
        "native: poetry export of {} failed (is poetry.lock up to date with pyproject.toml? run `poetry lock`); \
         it said:\n{}",
        project.join("poetry.lock").display(),
        lines[lines.len().saturating_sub(12)..].join("\n")
    )))
}

/// What uv trusts for HTTPS: the spec's `ca_bundle`, else `SSL_CERT_FILE` as set, else the
/// machine's own store (`UV_NATIVE_TLS`, as pip and curl use it: a proxy's CA lives there).
pub(super) fn trust(cmd: &mut Command, ca_file: Option<&Path>) {
    if let Some(ca) = ca_file {
        cmd.env("SSL_CERT_FILE", ca);
    } else if std::env::var_os("SSL_CERT_FILE").is_none() && std::env::var_os("UV_NATIVE_TLS").is_none() {
        cmd.env("UV_NATIVE_TLS", "1");
    }
}
