//! uv on this machine: where it is, its version, how the native builder runs it, and what it runs
//! before an install ([`super::install`]): the export of a `uv.lock` or a `poetry.lock` to pinned
//! requirements.
//!
//! uv runs through the program runner ([`Run`]), as docker and buildah do: Ctrl-C (the
//! cancel flag) stops it, and `uv --version` has a time limit. Its output comes back with
//! credentials in URLs replaced by `***`.
//!
//! uv is found as `$IMAGESPEC_UV`, else `uv` beside the Python running imagespec (`sys.prefix/bin`,
//! where `pip install imagespec-build[native]` puts it), else `$VIRTUAL_ENV/bin/uv`, else on
//! `PATH`.

use crate::error::{Error, Result};
use crate::support::exec::Run;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::Duration;

/// `sys.prefix` of the Python that loaded imagespec (set by the extension module).
pub static PYTHON_PREFIX: OnceLock<PathBuf> = OnceLock::new();

/// How long `uv --version` may take: a query, limited as the engines' version probes are.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A run of uv for the build of `image` (which the runner's messages name: interrupted, timed out).
pub(super) fn uv_run<'a>(
    image: &'a str,
    uv: &Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> Run<'a> {
    let mut run = Run::new(super::NAME, image, uv, args);
    run.env = env;
    run
}

/// Runs to the end: the exit status and everything uv printed (stdout and stderr, redacted), as
/// one text.
pub(super) fn output(run: &Run<'_>) -> Result<(ExitStatus, String)> {
    let (status, lines) = run.output()?;
    Ok((status, lines.join("\n")))
}

/// The text of a path for uv's command line or environment.
pub(super) fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

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
pub fn uv_version(image: &str, uv: &Path, cache: Option<&Path>) -> Result<String> {
    let remembered = cache.zip(stamp(uv)).map(|(dir, s)| dir.join(s));
    if let Some(v) = remembered.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        if !v.is_empty() {
            return Ok(v);
        }
    }
    let mut run = uv_run(image, uv, vec!["--version".into()], Vec::new());
    run.timeout = Some(VERSION_TIMEOUT);
    let (status, out) = output(&run)?;
    let version = out.trim().to_owned();
    if let (Some(f), true) = (remembered, status.success() && !version.is_empty()) {
        // Best effort: a cache that cannot be written only costs the next build a process start.
        let _ = crate::support::fs::write_whole(&f, version.as_bytes());
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
    image: &str,
    uv: &Path,
    project: &Path,
    out: &Path,
    work: &Path,
    index_url: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<()> {
    let mut args: Vec<String> = ["tool", "run", "--quiet", "--isolated"].map(String::from).into();
    let mut env = Vec::new();
    if let Some(u) = index_url {
        env.push(("UV_INDEX_URL".to_owned(), u.to_owned()));
    }
    args.extend(["--from", "poetry>=2,<3", "--with", "poetry-plugin-export>=1.8,<2"].map(String::from));
    args.extend(["poetry", "export", "--no-interaction", "--only", "main"].map(String::from));
    args.extend(["--format", "requirements.txt", "--output"].map(String::from));
    args.extend([path_arg(out), "--directory".into(), path_arg(project)]);
    env.extend([
        ("UV_NO_CONFIG".to_owned(), "1".to_owned()),
        (
            "POETRY_CACHE_DIR".to_owned(),
            path_arg(&work.join("poetry-cache")),
        ),
        ("POETRY_VIRTUALENVS_CREATE".to_owned(), "false".to_owned()),
    ]);
    trust(&mut env, ca_file);
    let (status, text) = output(&uv_run(image, uv, args, env))?;
    if status.success() && out.is_file() {
        return Ok(());
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(Error::build(format!(
        "native: poetry export of {} failed (is poetry.lock up to date with pyproject.toml? run `poetry lock`); \
         it said:\n{}",
        project.join("poetry.lock").display(),
        lines[lines.len().saturating_sub(12)..].join("\n")
    )))
}

/// A `uv.lock` (with its `pyproject.toml` in `project`) as pinned requirements in `out`, without
/// the dev group or the project itself; `lock` names it in the error.
pub fn export_uv(image: &str, uv: &Path, project: &Path, out: &Path, lock: &Path) -> Result<()> {
    let mut args: Vec<String> = [
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-header",
        "--quiet",
        "-o",
    ]
    .map(String::from)
    .into();
    args.extend([path_arg(out), "--project".into(), path_arg(project)]);
    let env = vec![("UV_NO_CONFIG".to_owned(), "1".to_owned())];
    let (status, said) = output(&uv_run(image, uv, args, env))?;
    if !status.success() {
        return Err(Error::build(format!(
            "native: uv export of {} failed: {}",
            lock.display(),
            said.trim()
        )));
    }
    Ok(())
}

/// A uv project's lock (the project at `root`) as pinned, hashed requirements in `locked`,
/// without the dev group and without local packages, and the local packages it installs
/// (workspace members, path dependencies; the project itself with `install_project`) as paths on
/// this machine, read from a second export to `all`.
pub fn export_uv_project(
    image: &str,
    uv: &Path,
    root: &Path,
    locked: &Path,
    all: &Path,
    install_project: bool,
) -> Result<Vec<String>> {
    let run = |out: &Path, extra: &[&str]| -> Result<()> {
        let mut args: Vec<String> = ["export", "--frozen", "--no-dev", "--no-header", "--quiet"]
            .map(String::from)
            .into();
        if !install_project {
            args.push("--no-emit-project".into());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(["-o".into(), path_arg(out), "--project".into(), path_arg(root)]);
        let env = vec![("UV_NO_CONFIG".to_owned(), "1".to_owned())];
        let (status, said) = output(&uv_run(image, uv, args, env))?;
        if !status.success() {
            return Err(Error::build(format!(
                "native: uv export of {} failed: {}",
                root.join("uv.lock").display(),
                said.trim()
            )));
        }
        Ok(())
    };
    run(locked, &["--no-emit-local"])?;
    run(all, &["--no-editable", "--no-hashes", "--no-annotate"])?;
    let text = std::fs::read_to_string(all).map_err(|e| super::io_error("read", all, &e))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with('.') || l.starts_with('/'))
        .map(|l| {
            let path = l.split(" ;").next().unwrap_or(l).trim();
            path_arg(&root.join(path))
        })
        .collect())
}

/// Splits poetry's export `all` in two: the local packages (`name @ file://...` lines, which carry
/// no hash) are returned, everything else is written to `locked`.
pub fn split_poetry_locals(all: &Path, locked: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(all).map_err(|e| super::io_error("read", all, &e))?;
    let (locals, rest): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains(" @ file://"));
    let mut out = rest.join("\n");
    out.push('\n');
    std::fs::write(locked, out).map_err(|e| super::io_error("write", locked, &e))?;
    Ok(locals.into_iter().map(str::to_owned).collect())
}

/// What uv trusts for HTTPS: the spec's `ca_bundle`, else `SSL_CERT_FILE` as set, else the
/// machine's own store (`UV_NATIVE_TLS`, as pip and curl use it: a proxy's CA lives there).
pub(super) fn trust(env: &mut Vec<(String, String)>, ca_file: Option<&Path>) {
    if let Some(ca) = ca_file {
        env.push(("SSL_CERT_FILE".into(), path_arg(ca)));
    } else if std::env::var_os("SSL_CERT_FILE").is_none() && std::env::var_os("UV_NATIVE_TLS").is_none() {
        env.push(("UV_NATIVE_TLS".into(), "1".into()));
    }
}
