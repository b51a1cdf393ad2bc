//! Python packages installed on this machine for the image's platform and Python, with uv:
//! `uv pip install --target DIR --python-platform P --python-version X.Y --only-binary :all:`.
//!
//! Credentials never reach uv's command line, which every local user can read in /proc: index
//! URLs, `pip_extra_args` URLs and requirements with credentials go into a requirements file
//! (mode 0600) in the build's private work folder, which uv reads (see [`split_secrets`]).
//!
//! uv is found as `$IMAGESPEC_UV`, else `uv` beside the Python running imagespec (`sys.prefix/bin`,
//! where `pip install imagespec-build[native]` puts it), else `$VIRTUAL_ENV/bin/uv`, else on
//! `PATH`.

use super::python::BaseFacts;
use crate::error::{Error, Result};
use crate::redact::{has_userinfo, redact_userinfo};
use crate::support::fs::TempFile;
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

/// The `--python-platform` of uv for the image: `<arch>-manylinux_2_<N>` from the base's glibc
/// (clamped to what uv knows, 2.17 to 2.40; 2.28 when it could not be read), or
/// `<arch>-unknown-linux-musl` for a musl base.
pub fn python_platform(arch: &str, facts: &BaseFacts) -> std::result::Result<String, String> {
    let arch = match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => {
            return Err(format!(
                "the native builder installs wheels for amd64 and arm64 only, not {other}; use builder=\"docker\" or \"buildah\""
            ))
        }
    };
    if facts.musl {
        return Ok(format!("{arch}-unknown-linux-musl"));
    }
    let minor = facts.glibc_minor.unwrap_or(28).clamp(17, 40);
    Ok(format!("{arch}-manylinux_2_{minor}"))
}

/// What one `uv pip install` gets.
pub struct Install<'a> {
    pub uv: &'a Path,
    pub target: &'a Path,
    pub python_platform: &'a str,
    pub python_version: &'a str,
    pub requirements: Vec<String>,
    pub requirement_files: Vec<PathBuf>,
    pub index_url: Option<&'a str>,
    pub extra_index_urls: &'a [String],
    pub extra_args: &'a [String],
    pub no_deps: bool,
    pub ca_file: Option<&'a Path>,
    pub cache_dir: Option<PathBuf>,
    /// A folder only this user can enter (the build's work folder), for the file of credentials.
    pub private_dir: &'a Path,
}

/// The options of uv that take a URL and that uv also reads from a requirements file.
const URL_OPTIONS: &[&str] = &["-i", "--index-url", "--extra-index-url", "-f", "--find-links"];

/// uv's arguments split in two: those without credentials, for the command line, and the lines of
/// a requirements file for the others (`--index-url URL`, `pkg @ URL`). A `pip_extra_args` value
/// with credentials that is not the URL of an index or find-links option is refused: uv reads no
/// other option from a file.
fn split_secrets(i: &Install<'_>) -> Result<(Vec<String>, Vec<String>)> {
    let (mut args, mut secret) = (Vec::new(), Vec::new());
    let mut url_option = |option: &str, url: &str, args: &mut Vec<String>| {
        if has_userinfo(url) {
            secret.push(format!("{option} {url}"));
        } else {
            args.extend([option.to_owned(), url.to_owned()]);
        }
    };
    if let Some(u) = i.index_url {
        url_option("--index-url", u, &mut args);
    }
    for u in i.extra_index_urls {
        url_option("--extra-index-url", u, &mut args);
    }
    let mut option_before = false;
    for a in i.extra_args {
        let after_option = std::mem::replace(&mut option_before, URL_OPTIONS.contains(&a.as_str()));
        if !has_userinfo(a) {
            args.push(a.clone());
            continue;
        }
        if let Some((option, url)) = a.split_once('=').filter(|(o, _)| URL_OPTIONS.contains(o)) {
            url_option(option, url, &mut args);
        } else if after_option {
            let option = args.pop().unwrap_or_default();
            url_option(&option, a, &mut args);
        } else {
            return Err(Error::spec(
                "pip_extra_args",
                format!(
                    "{:?} carries credentials, and the native builder passes credentials to uv only as the \
                     URL of {}; move it to pip_index or pip_extra_index_url",
                    redact_userinfo(a),
                    URL_OPTIONS.join(", ")
                ),
            ));
        }
    }
    for r in &i.requirements {
        if has_userinfo(r) {
            secret.push(r.clone());
        } else {
            args.push(r.clone());
        }
    }
    Ok((args, secret))
}

/// `lines` as a new requirements file in `dir`, readable by this user only, removed when dropped.
fn write_private(dir: &Path, lines: &[String]) -> Result<TempFile> {
    TempFile::new_in(
        dir,
        ".uv-credentials",
        ".txt",
        (lines.join("\n") + "\n").as_bytes(),
    )
    .map_err(|e| super::io_error("write", dir, &e))
}

pub fn run(i: &Install<'_>) -> Result<()> {
    let (args, secret) = split_secrets(i)?;
    let secret_file = if secret.is_empty() {
        None
    } else {
        Some(write_private(i.private_dir, &secret)?)
    };
    let mut cmd = Command::new(i.uv);
    cmd.args(["pip", "install", "--quiet", "--no-progress", "--target"])
        .arg(i.target)
        .args(["--python-platform", i.python_platform])
        .args(["--python-version", i.python_version])
        .args(["--only-binary", ":all:", "--link-mode", "copy"]);
    if i.no_deps {
        cmd.arg("--no-deps");
    }
    for f in i
        .requirement_files
        .iter()
        .map(PathBuf::as_path)
        .chain(secret_file.as_ref().map(|f| f.path()))
    {
        cmd.arg("-r").arg(f);
    }
    cmd.args(&args);
    // No user or project uv config: the same spec installs the same way everywhere.
    cmd.env("UV_NO_CONFIG", "1");
    trust(&mut cmd, i.ca_file);
    if let Some(c) = &i.cache_dir {
        cmd.env("UV_CACHE_DIR", c);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::build(format!("native: cannot run {}: {e}", i.uv.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = redact_userinfo(&text);
    // uv's own words for ENOSPC: the same message as the builder's own writes.
    if text.contains("No space left on device") || text.contains("os error 28") {
        return Err(Error::build(super::no_space(i.target)));
    }
    Err(Error::build(explain(&text)))
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
fn trust(cmd: &mut Command, ca_file: Option<&Path>) {
    if let Some(ca) = ca_file {
        cmd.env("SSL_CERT_FILE", ca);
    } else if std::env::var_os("SSL_CERT_FILE").is_none() && std::env::var_os("UV_NATIVE_TLS").is_none() {
        cmd.env("UV_NATIVE_TLS", "1");
    }
}

/// uv's failure in words that say what to do.
fn explain(stderr: &str) -> String {
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(12)..].join("\n")
    };
    let no_wheel = stderr
        .split("Wheels are required for `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .or_else(|| {
            stderr
                .split("Because ")
                .nth(1)
                .filter(|r| r.contains("has no usable wheels") || r.contains("has no wheels"))
                .and_then(|r| r.split([' ', '=', '<', '>']).next())
        });
    match no_wheel {
        Some(pkg) => format!(
            "native: the package {pkg:?} has no wheel for the image's platform and Python, and the native builder \
             installs wheels only (it runs nothing in the image); use builder=\"docker\" or builder=\"buildah\" to \
             build it from source\nuv said:\n{tail}"
        ),
        None => format!("native: installing the Python packages failed; uv said:\n{tail}"),
    }
}

/// After an install: console scripts get the image's interpreter in their `#!` line, and records
/// of where a wheel came from on this machine (`direct_url.json` with a `file:` URL) are removed.
pub fn fix_up(target: &Path, image_python: &str) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| Error::build(format!("native: {}: {e}", p.display()));
    let bin = target.join("bin");
    if bin.is_dir() {
        for entry in std::fs::read_dir(&bin).map_err(|e| io(&bin, e))? {
            let p = entry.map_err(|e| io(&bin, e))?.path();
            if !p.is_file() {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
            if !bytes.starts_with(b"#!") {
                continue;
            }
            let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
            let first = String::from_utf8_lossy(&bytes[..end]);
            if first.contains("python") {
                let mut out = format!("#!{image_python}").into_bytes();
                out.extend_from_slice(&bytes[end..]);
                std::fs::write(&p, out).map_err(|e| io(&p, e))?;
            }
        }
    }
    for entry in std::fs::read_dir(target).map_err(|e| io(target, e))? {
        let dir = entry.map_err(|e| io(target, e))?.path();
        if dir.extension().is_none_or(|x| x != "dist-info") {
            continue;
        }
        let du = dir.join("direct_url.json");
        let local = std::fs::read_to_string(&du).is_ok_and(|t| t.contains("\"file:"));
        if local {
            std::fs::remove_file(&du).map_err(|e| io(&du, e))?;
            let record = dir.join("RECORD");
            if let Ok(text) = std::fs::read_to_string(&record) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.contains("direct_url.json"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(&record, kept).map_err(|e| io(&record, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_without_wheels_is_named() {
        let e = explain(
            "error: No solution found\n  cause: Because pycrypto==2.6.1 has no usable wheels and you require pycrypto==2.6.1, we can conclude ...\n\nhint: Wheels are required for `pycrypto` because building from source is disabled",
        );
        assert!(e.contains("\"pycrypto\" has no wheel"), "{e}");
        assert!(e.contains("builder=\"docker\""), "{e}");
    }

    fn install<'a>(dir: &'a Path, extra_args: &'a [String], requirements: &[&str]) -> Install<'a> {
        Install {
            uv: Path::new("uv"),
            target: dir,
            python_platform: "x86_64-manylinux_2_28",
            python_version: "3.11",
            requirements: requirements.iter().map(|r| (*r).to_owned()).collect(),
            requirement_files: Vec::new(),
            index_url: Some("https://me:IDXSECRET@pypi.example.com/simple"),
            extra_index_urls: &[],
            extra_args,
            no_deps: false,
            ca_file: None,
            cache_dir: None,
            private_dir: dir,
        }
    }

    #[test]
    fn credentials_go_to_the_file_and_nothing_else_does() {
        let args: Vec<String> = [
            "--extra-index-url",
            "https://t:ARGSECRET@x.example.com/s",
            "--find-links=https://FLSECRET@y.example.com/w",
            "--pre",
            "-f",
            "https://z.example.com/plain",
        ]
        .map(String::from)
        .to_vec();
        let i = install(
            Path::new("/x"),
            &args,
            &["six", "p @ https://u:PKGSECRET@h.example.com/p.whl"],
        );
        let (cli, file) = split_secrets(&i).unwrap();
        assert_eq!(
            cli,
            ["--pre", "-f", "https://z.example.com/plain", "six"].map(String::from)
        );
        assert_eq!(
            file,
            [
                "--index-url https://me:IDXSECRET@pypi.example.com/simple",
                "--extra-index-url https://t:ARGSECRET@x.example.com/s",
                "--find-links https://FLSECRET@y.example.com/w",
                "p @ https://u:PKGSECRET@h.example.com/p.whl",
            ]
            .map(String::from)
        );
    }

    #[test]
    fn a_credential_uv_cannot_read_from_a_file_is_refused() {
        let args = vec!["--cert-url=https://u:OTHERSECRET@h.example.com/x".to_owned()];
        let e = split_secrets(&install(Path::new("/x"), &args, &[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pip_extra_args: "), "{e}");
        assert!(e.contains("pip_index") && !e.contains("OTHERSECRET"), "{e}");
    }

    #[test]
    fn the_credentials_file_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = {
            let f = write_private(d.path(), &["--index-url https://u:p@h/s".to_owned()]).unwrap();
            let md = std::fs::metadata(f.path()).unwrap();
            assert_eq!(md.permissions().mode() & 0o777, 0o600);
            assert_eq!(
                std::fs::read_to_string(f.path()).unwrap(),
                "--index-url https://u:p@h/s\n"
            );
            f.path().to_path_buf()
        };
        assert!(!path.exists(), "removed when uv is done");
    }

    #[test]
    fn shebangs_point_at_the_image() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bin")).unwrap();
        std::fs::write(
            d.path().join("bin/tool"),
            "#!/home/me/.venv/bin/python3\nimport x\n",
        )
        .unwrap();
        fix_up(d.path(), "/opt/venv/bin/python").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("bin/tool")).unwrap(),
            "#!/opt/venv/bin/python\nimport x\n"
        );
    }
}
