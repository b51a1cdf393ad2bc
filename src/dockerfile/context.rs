//! Writing a build context: the Dockerfile, exactly the files the tag hashed (checked against
//! their digests while copied), and, beside the context and never inside it, the secrets.

use super::recipe::{Recipe, ReqKind};
use super::render::render;
use super::{BuildOptions, CaBundle, SECRET_CA, SECRET_PIP_ARGS, SECRET_PIP_CONF, SECRET_PIP_REQS};
use crate::error::{Error, Result};
use crate::identity::SelectedFile;
use crate::source::FileKind;
use crate::spec::Spec;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Modification time of every file and folder of a context (1980-01-01, the zip epoch), so that
/// layers made by `COPY` do not depend on when the files were last touched.
const FIXED_MTIME: u64 = 315_532_800;

/// A build secret the engine must pass: `--secret id=<id>,src=<path>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSecret {
    pub id: String,
    pub path: PathBuf,
}

impl BuildSecret {
    /// `--secret id=<id>,src=<path>`, as docker, buildah and buildctl all take it.
    pub fn args(&self) -> [String; 2] {
        [
            "--secret".to_owned(),
            format!("id={},src={}", self.id, self.path.display()),
        ]
    }
}

/// What [`write_context`] wrote.
#[derive(Clone, Debug)]
pub struct ContextManifest {
    /// The folder the context (and the secrets) were written in.
    pub dir: PathBuf,
    /// `dir/context`: the build context, the only folder to send to an engine.
    pub context: PathBuf,
    /// `context/Dockerfile`.
    pub dockerfile: PathBuf,
    pub dockerfile_text: String,
    /// Every file of the context, relative to it, '/'-separated, sorted (the Dockerfile included).
    pub files: Vec<String>,
    /// The secrets the build needs, in the order the Dockerfile mounts them.
    pub secrets: Vec<BuildSecret>,
    pub image: String,
    pub tag: String,
    pub id: String,
}

/// What a context would hold, without writing it (for dry runs).
#[derive(Clone, Debug)]
pub struct ContextPlan {
    pub dockerfile_text: String,
    /// As [`ContextManifest::files`].
    pub files: Vec<String>,
    /// The ids of the secrets the build needs, in the order the Dockerfile mounts them.
    pub secret_ids: Vec<String>,
    pub image: String,
    pub tag: String,
    pub id: String,
}

/// The Dockerfile and the file list [`write_context`] would write; reads the spec's files once
/// (to hash them), copies nothing.
pub fn plan_context(spec: &Spec, options: &BuildOptions) -> Result<ContextPlan> {
    let recipe = Recipe::new(spec, options)?;
    let dockerfile_text = render(spec, options, &recipe)?;
    let mut files = vec!["Dockerfile".to_owned()];
    for selected in recipe.selection.values() {
        files.push(context_path(selected, recipe.requirements)?);
    }
    if let Some((_, name)) = recipe.wheel() {
        files.push(format!("imagespec/wheel/{name}"));
    }
    files.sort();
    let mut secret_ids = Vec::new();
    if options.ca_bundle.is_some() {
        secret_ids.push(SECRET_CA.to_owned());
    }
    if recipe.pip.conf_secret.is_some() {
        secret_ids.push(SECRET_PIP_CONF.to_owned());
    }
    if recipe.pip.args_secret.is_some() {
        secret_ids.push(SECRET_PIP_ARGS.to_owned());
    }
    if recipe.pip.reqs_secret.is_some() {
        secret_ids.push(SECRET_PIP_REQS.to_owned());
    }
    secret_ids.extend(recipe.secret_mounts.iter().map(|m| m.id.clone()));
    Ok(ContextPlan {
        dockerfile_text,
        files,
        secret_ids,
        image: recipe.image,
        tag: recipe.tag,
        id: recipe.id,
    })
}

/// Writes the build context of `spec` into `dir` (created if missing; it must be empty):
/// `dir/context/` holds the Dockerfile and the files it copies, `dir/secrets/` (mode 0700) any
/// secret that had to be materialised (a CA folder or PEM text, index credentials).
pub fn write_context(spec: &Spec, options: &BuildOptions, dir: &Path) -> Result<ContextManifest> {
    let recipe = Recipe::new(spec, options)?;
    let text = render(spec, options, &recipe)?;
    let io = |what: &str, p: &Path, e: std::io::Error| Error::build(format!("{what} {}: {e}", p.display()));
    // Made private: the context holds the project's files, and the secrets are written beside it.
    crate::support::fs::create_dir(dir).map_err(|e| io("cannot create", dir, e))?;
    if fs::read_dir(dir)
        .map_err(|e| io("cannot read", dir, e))?
        .next()
        .is_some()
    {
        return Err(Error::build(format!(
            "{} is not empty; a build context is written into a fresh folder",
            dir.display()
        )));
    }
    let context = dir.join("context");
    // 0700 whatever `dir` is: other users must not read the files; the folder itself is never copied
    // into the image (its contents are), so its mode changes nothing there.
    crate::support::fs::create_dir(&context).map_err(|e| io("cannot create", &context, e))?;
    let mut files = Vec::new();

    for selected in recipe.selection.values() {
        let rel = context_path(selected, recipe.requirements)?;
        copy_selected(selected, &context.join(&rel))?;
        files.push(rel);
    }
    if let Some((wheel, name)) = recipe.wheel() {
        let rel = format!("imagespec/wheel/{name}");
        let dest = context.join(&rel);
        create_parent(&dest)?;
        fs::copy(wheel, &dest).map_err(|e| io("cannot copy", wheel, e))?;
        set_mode(&dest, 0o644)?;
        files.push(rel);
    }
    if recipe.has_constraints {
        let rel = "imagespec/constraints.txt".to_owned();
        let text: String = spec.constraints.iter().map(|c| format!("{c}\n")).collect();
        write_file(&context.join(&rel), text.as_bytes(), 0o644)?;
        files.push(rel);
    }
    let dockerfile = context.join("Dockerfile");
    write_file(&dockerfile, text.as_bytes(), 0o644)?;
    files.push("Dockerfile".to_owned());
    fix_mtimes(&context)?;
    files.sort();

    let secrets = write_secrets(spec, options, &recipe, dir)?;
    Ok(ContextManifest {
        dir: dir.to_path_buf(),
        context,
        dockerfile,
        dockerfile_text: text,
        files,
        secrets,
        image: recipe.image,
        tag: recipe.tag,
        id: recipe.id,
    })
}

/// Where a selected file goes in the context (see docs/image-layout.md).
fn context_path(f: &SelectedFile, req: Option<ReqKind>) -> Result<String> {
    let (prefix, rest) = f.key.split_once('/').unwrap_or(("", ""));
    let plain = |p: &str| {
        Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    };
    if rest.is_empty() || !plain(rest) {
        return Err(Error::build(format!("{}: not a plain relative path", f.key)));
    }
    Ok(match (prefix, req) {
        ("requirements", Some(ReqKind::Plain)) => "imagespec/requirements/requirements.txt".to_owned(),
        ("requirements", _) => format!("imagespec/requirements/{rest}"),
        ("source" | "copy", _) => f.key.clone(),
        ("project", _) => format!("imagespec/{}", f.key),
        _ => return Err(Error::build(format!("{}: unknown file kind", f.key))),
    })
}

fn create_parent(dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::build(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::build(format!("cannot set the mode of {}: {e}", p.display())))
}

#[cfg(not(unix))]
fn set_mode(_p: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

fn write_file(p: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    create_parent(p)?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    let mut f = opts
        .open(p)
        .map_err(|e| Error::build(format!("cannot write {}: {e}", p.display())))?;
    f.write_all(bytes)
        .map_err(|e| Error::build(format!("cannot write {}: {e}", p.display())))?;
    set_mode(p, mode)
}

/// Copies one selected file, refusing it if its content or link target is no longer what the tag
/// hashed (the context must be exactly what the tag names).
fn copy_selected(f: &SelectedFile, dest: &Path) -> Result<()> {
    create_parent(dest)?;
    let changed = || {
        Error::build(format!(
            "{}: changed while the build context was written; run the build again",
            f.key
        ))
    };
    match &f.file.kind {
        FileKind::Missing => Err(crate::identity::missing_file(f)),
        FileKind::Symlink { target } => {
            let now = fs::read_link(&f.path).map_err(|_| changed())?;
            if now.to_str() != Some(target.as_str()) {
                return Err(changed());
            }
            #[cfg(unix)]
            std::os::unix::fs::symlink(target, dest)
                .map_err(|e| Error::build(format!("cannot create {}: {e}", dest.display())))?;
            Ok(())
        }
        FileKind::Regular { executable, sha256 } => {
            let mut src = fs::File::open(&f.path).map_err(|_| changed())?;
            let mut out = fs::File::create(dest)
                .map_err(|e| Error::build(format!("cannot write {}: {e}", dest.display())))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = src.read(&mut buf).map_err(|_| changed())?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| Error::build(format!("cannot write {}: {e}", dest.display())))?;
            }
            if <[u8; 32]>::from(hasher.finalize()) != *sha256 {
                return Err(changed());
            }
            set_mode(dest, if *executable { 0o755 } else { 0o644 })
        }
    }
}

/// Every file and folder of the context gets [`FIXED_MTIME`] (symlinks keep theirs).
fn fix_mtimes(root: &Path) -> Result<()> {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(FIXED_MTIME);
    let mut stack = vec![root.to_path_buf()];
    let err =
        |p: &Path, e: std::io::Error| Error::build(format!("cannot set the time of {}: {e}", p.display()));
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| err(&dir, e))? {
            let entry = entry.map_err(|e| err(&dir, e))?;
            let ft = entry.file_type().map_err(|e| err(&entry.path(), e))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(entry.path())
                    .map_err(|e| err(&entry.path(), e))?;
                f.set_modified(when).map_err(|e| err(&entry.path(), e))?;
            }
        }
        if dir != root {
            let f = fs::File::open(&dir).map_err(|e| err(&dir, e))?;
            f.set_modified(when).map_err(|e| err(&dir, e))?;
        }
    }
    Ok(())
}

fn write_secrets(
    spec: &Spec,
    options: &BuildOptions,
    recipe: &Recipe,
    dir: &Path,
) -> Result<Vec<BuildSecret>> {
    let secrets_dir = dir.join("secrets");
    let mut out = Vec::new();
    let materialise = |id: &str, bytes: &[u8]| -> Result<PathBuf> {
        if !secrets_dir.exists() {
            crate::support::fs::create_dir(&secrets_dir)
                .map_err(|e| Error::build(format!("cannot create {}: {e}", secrets_dir.display())))?;
        }
        let p = secrets_dir.join(id);
        write_file(&p, bytes, 0o600)?;
        Ok(p)
    };
    if let Some(ca) = &options.ca_bundle {
        let path = match ca_source(ca)? {
            CaSource::File(p) => p,
            CaSource::Text(t) => materialise(SECRET_CA, t.as_bytes())?,
        };
        out.push(BuildSecret {
            id: SECRET_CA.to_owned(),
            path,
        });
    }
    if let Some(conf) = &recipe.pip.conf_secret {
        let path = materialise(SECRET_PIP_CONF, conf.as_bytes())?;
        out.push(BuildSecret {
            id: SECRET_PIP_CONF.to_owned(),
            path,
        });
    }
    if let Some(args) = &recipe.pip.args_secret {
        let path = materialise(SECRET_PIP_ARGS, args.as_bytes())?;
        out.push(BuildSecret {
            id: SECRET_PIP_ARGS.to_owned(),
            path,
        });
    }
    if let Some(reqs) = &recipe.pip.reqs_secret {
        let path = materialise(SECRET_PIP_REQS, reqs.as_bytes())?;
        out.push(BuildSecret {
            id: SECRET_PIP_REQS.to_owned(),
            path,
        });
    }
    for (i, m) in recipe.secret_mounts.iter().enumerate() {
        let path = resolve_user_path(&m.source, &spec.copy_root);
        if !path.is_file() {
            return Err(Error::source(
                format!("pip_secret_mounts[{i}]"),
                path,
                "does not exist or is not a file (relative paths are resolved against the folder the spec \
                 was evaluated in)",
            ));
        }
        out.push(BuildSecret {
            id: m.id.clone(),
            path,
        });
    }
    Ok(out)
}

fn resolve_user_path(p: &str, base: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    base.join(p)
}

enum CaSource {
    File(PathBuf),
    Text(String),
}

const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----";

/// A CA bundle as a file the engine can pass: the file itself, or the text to write.
fn ca_source(ca: &CaBundle) -> Result<CaSource> {
    let bad = |msg: String| Error::build(format!("ca_bundle: {msg}"));
    match ca {
        CaBundle::Pem(text) => {
            if !text.contains(PEM_CERT) {
                return Err(bad("the text holds no PEM certificate".into()));
            }
            Ok(CaSource::Text(text.clone()))
        }
        CaBundle::Path(p) if p.is_file() => {
            let text = fs::read(p).map_err(|e| bad(format!("cannot read {}: {e}", p.display())))?;
            if !String::from_utf8_lossy(&text).contains(PEM_CERT) {
                return Err(bad(format!("{} holds no PEM certificate", p.display())));
            }
            Ok(CaSource::File(
                std::path::absolute(p).unwrap_or_else(|_| p.clone()),
            ))
        }
        CaBundle::Path(p) if p.is_dir() => {
            let mut names: Vec<PathBuf> = fs::read_dir(p)
                .map_err(|e| bad(format!("cannot read {}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
                    matches!(ext, "pem" | "crt" | "cer") && f.is_file()
                })
                .collect();
            names.sort();
            let mut bundle = String::new();
            for f in names {
                let text = fs::read(&f).map_err(|e| bad(format!("cannot read {}: {e}", f.display())))?;
                let text = String::from_utf8_lossy(&text);
                if text.contains(PEM_CERT) {
                    bundle.push_str(text.trim_end());
                    bundle.push('\n');
                }
            }
            if bundle.is_empty() {
                return Err(bad(format!(
                    "{} has no .pem, .crt or .cer file with a PEM certificate",
                    p.display()
                )));
            }
            Ok(CaSource::Text(bundle))
        }
        CaBundle::Path(p) => Err(bad(format!("{} does not exist", p.display()))),
    }
}

#[cfg(test)]
pub(crate) fn copy_selected_for_test(f: &SelectedFile, dest: &Path) -> Result<()> {
    copy_selected(f, dest)
}
