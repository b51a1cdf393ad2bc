//! Python packages installed on this machine for the image's platform and Python, with uv:
//! `uv pip install --target DIR --python-platform P --python-version X.Y --only-binary :all:`.
//!
//! Credentials never reach uv's command line, which every local user can read in /proc: index
//! URLs, `pip_extra_args` URLs and requirements with credentials go into a requirements file
//! (mode 0600) in the build's private work folder, which uv reads (see [`split_secrets`]).
//!
//! Where uv is, its version, how it runs (the program runner: Ctrl-C stops it) and the
//! lock-file exports before an install are in [`super::uv`].

use super::python::BaseFacts;
use super::uv::{output, path_arg, trust, uv_run};
use crate::error::{Error, Result};
use crate::redact::{has_userinfo, redact_userinfo};
use crate::support::fs::TempFile;
use std::path::{Path, PathBuf};

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
    /// The image being built, for the runner's messages.
    pub image: &'a str,
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
    /// uv's `--override` and `--constraint` entries (the spec's `overrides`, `constraints`).
    pub overrides: &'a [String],
    pub constraints: &'a [String],
    /// Local packages (folders) are among the requirements: uv may build their wheels on this
    /// machine; everything else still comes as wheels.
    pub build_local: bool,
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
    let mut cmd: Vec<String> = ["pip", "install", "--quiet", "--no-progress", "--target"]
        .map(String::from)
        .into();
    cmd.push(path_arg(i.target));
    cmd.extend(["--python-platform", i.python_platform].map(String::from));
    cmd.extend(["--python-version", i.python_version].map(String::from));
    if !i.build_local {
        cmd.extend(["--only-binary", ":all:"].map(String::from));
    }
    cmd.extend(["--link-mode", "copy"].map(String::from));
    if i.no_deps {
        cmd.push("--no-deps".into());
    }
    let mut lists = Vec::new();
    for (option, entries, name) in [
        ("--override", i.overrides, ".uv-overrides"),
        ("--constraint", i.constraints, ".uv-constraints"),
    ] {
        if !entries.is_empty() {
            let file = TempFile::new_in(
                i.private_dir,
                name,
                ".txt",
                (entries.join("\n") + "\n").as_bytes(),
            )
            .map_err(|e| super::io_error("write", i.private_dir, &e))?;
            cmd.extend([option.to_owned(), path_arg(file.path())]);
            lists.push(file);
        }
    }
    for f in i
        .requirement_files
        .iter()
        .map(PathBuf::as_path)
        .chain(secret_file.as_ref().map(|f| f.path()))
    {
        cmd.extend(["-r".into(), path_arg(f)]);
    }
    cmd.extend(args);
    // No user or project uv config: the same spec installs the same way everywhere.
    let mut env = vec![("UV_NO_CONFIG".to_owned(), "1".to_owned())];
    trust(&mut env, i.ca_file);
    if let Some(c) = &i.cache_dir {
        env.push(("UV_CACHE_DIR".into(), path_arg(c)));
    }
    let (status, text) = output(&uv_run(i.image, i.uv, cmd, env))?;
    if status.success() {
        return Ok(());
    }
    // uv's own words for ENOSPC: the same message as the builder's own writes.
    if text.contains("No space left on device") || text.contains("os error 28") {
        return Err(Error::build(super::no_space(i.target)));
    }
    Err(Error::build(explain(&text)))
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
            image: "img:1",
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
            overrides: &[],
            constraints: &[],
            build_local: false,
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

    /// A cancel (Ctrl-C) stops a running uv at once, as it stops a docker build. The cancel flag is
    /// the whole process's: set here it would stop the programs of the tests running beside this
    /// one, so the test runs again, alone, in a process of its own.
    #[test]
    fn a_cancelled_install_stops_uv_at_once() {
        use crate::support::exec::{cancel_all, reset_cancel};
        use std::time::{Duration, Instant};
        const ALONE: &str = "IMAGESPEC_TEST_CANCEL_ALONE";
        let name = "engines::native::install::tests::a_cancelled_install_stops_uv_at_once";
        if std::env::var_os(ALONE).is_none() {
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            let said =
                String::from_utf8_lossy(&child.stdout).into_owned() + &String::from_utf8_lossy(&child.stderr);
            assert!(child.status.success() && said.contains("1 passed"), "{said}");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let uv = d.path().join("uv");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&uv)
                .unwrap();
            std::io::Write::write_all(&mut f, b"#!/bin/sh\necho resolving >&2\nexec sleep 60\n").unwrap();
        }
        let mut i = install(d.path(), &[], &["six"]);
        i.uv = &uv;
        let cancel = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            cancel_all();
        });
        let started = Instant::now();
        let e = run(&i).unwrap_err().to_string();
        cancel.join().unwrap();
        reset_cancel();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e, "native: uv of img:1 was interrupted");
        assert!(
            std::fs::read_dir(d.path()).unwrap().all(|f| !f
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".uv-credentials")),
            "the credentials file is removed"
        );
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
