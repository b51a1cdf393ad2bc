//! The `native` builder: an image assembled and pushed without Docker, buildah or root.
//!
//! The base image's manifest and config come from its registry; the Python packages are installed
//! on this machine by uv for the image's platform and Python (wheels only); the files go into
//! deterministic layers; the config and manifest are written here and pushed, only what the
//! registry lacks, the tag last. See docs/native.md for the layering rule, reproducibility and
//! what it refuses.
//!
//! Several platforms give one image each (base, Python and packages per platform; the copied
//! files' layers shared) and an OCI index of them, pushed last.
//!
//! Modules, one per step: [`base`] (manifest and config for the platform), [`python`] (the base's
//! Python, venv, libc and users), [`install`] (uv), [`layers`] (tar + gzip or zstd), [`config`]
//! (config, manifest and index), [`client`] (the registry calls); then [`publish`]: the registry
//! push or the OCI layout ([`publish::registry`]), a `docker load` archive ([`publish::archive`]).

pub mod base;
pub mod client;
pub mod config;
pub mod install;
pub mod layers;
pub mod publish;
pub mod python;

use crate::dockerfile::recipe::{Recipe, ReqKind};
use crate::dockerfile::{BuildOptions, CaBundle, USER_UID, VENV};
use crate::engines::{Built, Engine, Progress, Request};
use crate::error::{Error, Result};
use crate::registry::platform::Platform;
use crate::runtime::{self, Runtime};
use crate::source::FileKind;
use crate::spec::Spec;
use crate::support::fs::TempDir;
use layers::{Compression, Content, Layer, LayerSpec};
use python::BaseFacts;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const NAME: &str = "native";
/// Distributions whose installed files reach this size get a layer of their own.
pub const OWN_LAYER_BYTES: u64 = 16 << 20;
/// Bumped when what the native builder puts in a layer changes (part of the layer cache keys).
const LAYOUT: &str = "native-layout-1";

/// Where the native builder keeps its caches (layers, base facts): `<user cache>/native` (see
/// `crate::support::dirs::cache_root`), a folder only this user can enter.
pub fn cache_root() -> Option<PathBuf> {
    crate::support::dirs::cache_root().map(|d| d.join("native"))
}

/// [`cache_root`], created (0700) for a build, or the reason there is none.
fn private_cache_root() -> Result<PathBuf> {
    let root = cache_root().ok_or_else(|| {
        let why = crate::support::dirs::temp_root()
            .err()
            .map_or("the temporary folder cannot hold it".to_owned(), |e| e.to_string());
        Error::build(format!(
            "native: no folder for the layer cache (IMAGESPEC_CACHE_DIR, XDG_CACHE_HOME and HOME are not set, \
             and {why})"
        ))
    })?;
    crate::support::dirs::create_own_dir(&root).map_err(|e| io_error("create", &root, &e))?;
    Ok(root)
}

/// The error of a failed file operation on `p`. A full disk (ENOSPC) says so and names the
/// folder, since the fix is there: the native builder writes its layers under its cache folder.
pub(crate) fn io_error(what: &str, p: &Path, e: &std::io::Error) -> Error {
    // By kind, not by errno: the temporary-folder library wraps the OS error it got.
    if e.kind() == std::io::ErrorKind::StorageFull {
        return Error::build(no_space(p));
    }
    Error::build(format!("native: cannot {what} {}: {e}", p.display()))
}

/// "no space left on device in <folder of p>: ...".
pub(crate) fn no_space(p: &Path) -> String {
    format!("native: {}", crate::support::fs::no_space(p))
}

/// A folder removed when dropped, which only this user can enter, in `parent` (made 0700 when
/// missing): it holds the layers being made and, while uv runs, a file of the index credentials.
pub(crate) fn temp_dir_in(parent: &Path) -> Result<TempDir> {
    crate::support::fs::create_dir(parent).map_err(|e| io_error("create", parent, &e))?;
    TempDir::new_in(parent, ".tmp").map_err(|e| io_error("create a temporary folder in", parent, &e))
}

/// Why the native builder cannot build `spec`, naming the builder to use; `Ok` when it can.
pub fn refuse(spec: &Spec) -> std::result::Result<(), String> {
    let mut needs = Vec::new();
    if !spec.apt_packages.is_empty() {
        needs.push("apt_packages");
    }
    if !spec.commands.is_empty() {
        needs.push("commands");
    }
    if !spec.conda_packages.is_empty() {
        needs.push("conda_packages");
    }
    if spec.python_exec.is_some() {
        needs.push("python_exec");
    }
    if !spec.pip_secret_mounts.is_empty() {
        needs.push("pip_secret_mounts");
    }
    if !needs.is_empty() {
        return Err(format!(
            "the native builder runs nothing inside the image, and this spec needs a running container for {}; \
             use builder=\"docker\" or builder=\"buildah\"",
            needs.join(", ")
        ));
    }
    for p in platforms(spec)? {
        if p.arch != "amd64" && p.arch != "arm64" {
            return Err(format!(
                "the native builder installs wheels for amd64 and arm64 only, not {p}; \
                 use builder=\"docker\" or \"buildah\""
            ));
        }
    }
    Ok(())
}

/// The spec's platforms in its order (this machine's when it names none), each once.
pub fn platforms(spec: &Spec) -> std::result::Result<Vec<Platform>, String> {
    let mut out: Vec<Platform> = Vec::new();
    for p in spec.platform.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = Platform::parse(p)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        out.push(Platform::host());
    }
    Ok(out)
}

/// `builder_options` of the native builder, read and checked before anything is built.
struct Options {
    compression: Compression,
    docker_archive: Option<PathBuf>,
}

fn options(spec: &Spec, platforms: &[Platform]) -> std::result::Result<Options, String> {
    let compression = match builder_option(spec, "compression") {
        Some(c) => Compression::parse(c)?,
        None if spec.builder_options.contains_key("compression") => {
            return Err("builder_options compression must be a string: \"gzip\" or \"zstd\"".into())
        }
        None => Compression::Gzip,
    };
    let docker_archive = builder_option(spec, "docker_archive").map(PathBuf::from);
    if let Some(a) = &docker_archive {
        if platforms.len() > 1 {
            return Err(format!(
                "builder_options docker_archive holds one image and this spec has {} platforms; \
                 pull the tag instead (Docker picks its platform from the index)",
                platforms.len()
            ));
        }
        publish::archive::check_target(a)?;
    }
    if platforms.len() > 1 && builder_option(spec, "python_platform").is_some() {
        return Err(
            "builder_options python_platform forces one wheel platform and this spec has several platforms; \
             drop it or build one spec per platform"
                .into(),
        );
    }
    Ok(Options {
        compression,
        docker_archive,
    })
}

pub struct NativeEngine;

impl Engine for NativeEngine {
    fn name(&self) -> &str {
        NAME
    }

    fn probe(&self) -> std::result::Result<(), String> {
        install::find_uv().map(|_| ())
    }

    fn can_build(&self, spec: &Spec) -> std::result::Result<(), String> {
        refuse(spec)?;
        if spec.registry.is_none() {
            return Err(
                "without a registry the native builder writes an OCI layout, not a local engine image; \
                 name builder=\"native\" to get one"
                    .into(),
            );
        }
        Ok(())
    }

    fn build(&self, request: &Request<'_>) -> Result<Built> {
        build(request)
    }
}

fn builder_option<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    match spec.builder_options.get(key) {
        Some(crate::value::Value::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn fail(image: &str, why: impl std::fmt::Display) -> Error {
    Error::build(format!("native build of {image} failed: {why}"))
}

/// What one platform's build made.
struct PlatformImage {
    base: base::Base,
    layers: Vec<Layer>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

/// Builds (and pushes) one image, or one per platform and their index.
pub fn build(request: &Request<'_>) -> Result<Built> {
    let spec = request.spec;
    let image = request.image;
    refuse(spec).map_err(|why| fail(image, why))?;
    let platforms = platforms(spec).map_err(|e| fail(image, e))?;
    let opts = options(spec, &platforms).map_err(|e| fail(image, e))?;
    let options = BuildOptions {
        engine: NAME.to_owned(),
        ..request.options.clone()
    };
    let plan = Recipe::new(spec, &options)?;
    let step = |s: &str| (request.progress)(Progress::Step(s));
    let several = platforms.len() > 1;
    let client = std::sync::Arc::new(client::Client::new(spec)?);
    let rt = crate::support::runtime::runtime()?;
    // Every platform's base first: one the base lacks fails before anything is built.
    let mut bases = Vec::new();
    for platform in &platforms {
        step(&format!("resolve base {} for {platform}", plan.from));
        bases.push(
            rt.block_on(base::resolve(&client, &plan.from, platform))
                .map_err(|e| fail(image, e))?,
        );
    }
    let root = private_cache_root()?;
    let work = temp_dir_in(&root.join("work"))?;
    let mtime = layers::epoch();
    // The copied files are the same on every platform: their layers are made once.
    let file_layers = files_layers(&plan, work.path(), mtime, opts.compression, &step)?;

    let mut built: Vec<PlatformImage> = Vec::new();
    for (platform, base) in platforms.iter().zip(bases) {
        let on = if several {
            format!(" ({platform})")
        } else {
            String::new()
        };
        let facts = rt
            .block_on(python::facts(&client, &base, &plan.from))
            .map_err(|e| fail(image, e))?;
        if let Some(want) = &spec.python_version {
            if facts.version != *want && !facts.version.starts_with(&format!("{want}.")) {
                return Err(fail(
                    image,
                    format!(
                        "the base image's Python{on} is {} ({}) but the spec's python_version is {want}; change one of them",
                        facts.version, facts.exe
                    ),
                ));
            }
        }
        // uv installs into a folder of the platform's own.
        let pwork = work.path().join(format!("{}-{}", platform.os, platform.arch));
        std::fs::create_dir_all(&pwork).map_err(|e| io_error("create", &pwork, &e))?;
        let mut new_layers: Vec<Layer> = Vec::new();
        step(&format!("layer: venv, user and /root{on}"));
        new_layers.push(layers::build_layer(
            &skeleton(&facts),
            &pwork,
            "imagespec: /opt/venv, user 1000, /root",
            mtime,
            opts.compression,
        )?);
        let mut ctx = InstallCtx::new(spec, request, &plan, &facts, platform, &root, &pwork)?;
        ctx.compression = opts.compression;
        if !spec.packages.is_empty() || !spec.runtime_packages.is_empty() || plan.requirements.is_some() {
            step(&format!("layer: Python packages{on}"));
            new_layers.extend(ctx.packages(mtime).map_err(|e| fail(image, e))?);
        }
        if ctx.runtime != Runtime::Off {
            step(&format!("layer: imagespec runtime{on}"));
            new_layers.extend(ctx.runtime(mtime).map_err(|e| fail(image, e))?);
        }
        new_layers.extend(file_layers.iter().cloned());

        let meta = config::ImageMeta {
            env: &spec.env,
            entrypoint: spec.entrypoint.as_deref(),
            labels: crate::dockerfile::render::image_labels(spec, &plan, NAME),
            id: &plan.id,
            flytekit_id: request.options.flytekit_id(image),
            created: config::rfc3339(mtime),
        };
        let cfg = config::config(&base, &new_layers, &meta);
        let manifest = config::manifest(&base, &new_layers, &cfg);
        built.push(PlatformImage {
            base,
            layers: new_layers,
            config: cfg,
            manifest,
        });
    }

    let images: Vec<publish::registry::Image<'_>> = built
        .iter()
        .map(|b| publish::registry::Image {
            base: &b.base,
            layers: &b.layers,
            config: &b.config,
            manifest: &b.manifest,
        })
        .collect();
    let index = several.then(|| {
        config::index(
            &built
                .iter()
                .map(|b| (b.manifest.as_slice(), b.config.as_slice()))
                .collect::<Vec<_>>(),
        )
    });
    let digest = crate::oci::sha256_of(index.as_deref().unwrap_or(&built[0].manifest));
    let name = if request.push {
        (request.progress)(Progress::Pushing(image));
        let stats = rt
            .block_on(publish::registry::push(&client, &images, index.as_deref(), image))
            .map_err(|e| fail(image, e))?;
        step(&format!(
            "pushed {image}{}: {} blobs uploaded, {} mounted, {} present",
            if several { " (index)" } else { "" },
            stats.uploaded,
            stats.mounted,
            stats.present
        ));
        format!("{image}@{digest}")
    } else {
        let dir = builder_option(spec, "oci_layout")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("oci").join(&spec.name));
        let tag = plan.tag.clone();
        rt.block_on(publish::registry::write_layout(
            &client,
            &images,
            index.as_deref(),
            &dir,
            &tag,
        ))
        .map_err(|e| fail(image, e))?;
        step(&format!("wrote the OCI layout {} (tag {tag})", dir.display()));
        image.to_owned()
    };
    if let Some(path) = &opts.docker_archive {
        rt.block_on(publish::archive::write(&client, &images[0], image, path))
            .map_err(|e| fail(image, e))?;
        step(&format!("wrote the docker archive {} ({image})", path.display()));
    }
    Ok(Built {
        name,
        digest: Some(digest),
    })
}

/// The layers of the `copy` entries and of the source, under `/root` (none when empty).
fn files_layers(
    plan: &Recipe,
    work: &Path,
    mtime: u64,
    compression: Compression,
    step: &dyn Fn(&str),
) -> Result<Vec<Layer>> {
    let mut out = Vec::new();
    for (prefix, what) in [("copy/", "copy entries"), ("source/", "source")] {
        let mut ls = LayerSpec::default();
        for f in plan.selection.values() {
            if let Some(rest) = f.key.strip_prefix(prefix) {
                let content = match &f.file.kind {
                    FileKind::Missing => return Err(crate::identity::missing_file(f)),
                    FileKind::Symlink { target } => Content::Symlink(target.clone()),
                    FileKind::Regular { sha256, .. } => Content::File {
                        path: f.path.clone(),
                        expect: Some(*sha256),
                    },
                };
                let exe = matches!(f.file.kind, FileKind::Regular { executable: true, .. });
                ls.add(&format!("root/{rest}"), content, exe, USER_UID);
            }
        }
        if !ls.is_empty() {
            ls.dir("root", USER_UID, 0o755);
            step(&format!("layer: {what}"));
            out.push(layers::build_layer(
                &ls,
                work,
                &format!("imagespec: {what} to /root"),
                mtime,
                compression,
            )?);
        }
    }
    Ok(out)
}

/// The small first layer: `/opt/venv` as a virtualenv of the base's Python (unless the base has
/// one), the user 1000 (added to `/etc/passwd` and `/etc/group` unless the base has it, as
/// `useradd --create-home` would), and `/root` given to that user.
fn skeleton(facts: &BaseFacts) -> LayerSpec {
    let mut ls = LayerSpec::default();
    let v = &facts.version;
    if !facts.has_venv {
        let home = Path::new(&facts.exe)
            .parent()
            .map_or("/usr/bin".into(), |p| p.to_string_lossy().into_owned());
        let cfg = format!("home = {home}\ninclude-system-site-packages = true\nversion = {v}\n");
        let venv = VENV.trim_start_matches('/');
        ls.add(
            &format!("{venv}/pyvenv.cfg"),
            Content::Bytes(cfg.into_bytes()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/bin/python"),
            Content::Symlink(facts.exe.clone()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/bin/python3"),
            Content::Symlink("python".into()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/bin/python{v}"),
            Content::Symlink("python".into()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/lib/python{v}/site-packages"),
            Content::Dir,
            true,
            0,
        );
        ls.add(&format!("{venv}/lib64"), Content::Symlink("lib".into()), false, 0);
    }
    if !facts.has_uid(USER_UID) && !facts.passwd.is_empty() {
        let mut passwd = facts.passwd.clone();
        if !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        passwd.push_str(&format!(
            "imagespec:x:{USER_UID}:{USER_UID}::/home/imagespec:/bin/sh\n"
        ));
        ls.add("etc/passwd", Content::Bytes(passwd.into_bytes()), false, 0);
        if !facts.group.is_empty()
            && !facts
                .group
                .lines()
                .any(|l| l.split(':').nth(2) == Some(USER_UID.to_string().as_str()))
        {
            let mut group = facts.group.clone();
            if !group.ends_with('\n') {
                group.push('\n');
            }
            group.push_str(&format!("imagespec:x:{USER_UID}:\n"));
            ls.add("etc/group", Content::Bytes(group.into_bytes()), false, 0);
        }
        ls.dir("home", USER_UID, 0o755);
        ls.dir("home/imagespec", USER_UID, 0o755);
    }
    ls.dir("root", USER_UID, 0o755);
    ls
}

/// Everything the installs need, and their cache keys' common part.
struct InstallCtx<'a> {
    spec: &'a Spec,
    plan: &'a Recipe,
    facts: &'a BaseFacts,
    uv: PathBuf,
    uv_version: String,
    python_platform: String,
    ca_file: Option<PathBuf>,
    cache: PathBuf,
    work: &'a Path,
    no_cache: bool,
    runtime: Runtime,
    compression: Compression,
}

impl<'a> InstallCtx<'a> {
    fn new(
        spec: &'a Spec,
        request: &Request<'_>,
        plan: &'a Recipe,
        facts: &'a BaseFacts,
        platform: &Platform,
        root: &Path,
        work: &'a Path,
    ) -> Result<InstallCtx<'a>> {
        let uv = install::find_uv().map_err(|e| fail(request.image, e))?;
        let uv_version = install::uv_version(&uv, Some(&root.join("uv-version")))?;
        let python_platform = match builder_option(spec, "python_platform") {
            Some(p) => p.to_owned(),
            None => install::python_platform(&platform.arch, facts).map_err(|e| fail(request.image, e))?,
        };
        let ca_file = match &request.options.ca_bundle {
            None => None,
            Some(CaBundle::Path(p)) if p.is_file() => Some(p.clone()),
            Some(CaBundle::Path(p)) if p.is_dir() => {
                let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| Error::build(format!("ca_bundle: cannot read {}: {e}", p.display())))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.extension()
                            .is_some_and(|x| x == "pem" || x == "crt" || x == "cer")
                    })
                    .collect();
                names.sort();
                let mut text = String::new();
                for f in names {
                    text.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
                    text.push('\n');
                }
                let out = work.join("ca.pem");
                std::fs::write(&out, text)
                    .map_err(|e| Error::build(format!("native: cannot write {}: {e}", out.display())))?;
                Some(out)
            }
            Some(CaBundle::Pem(text)) => {
                let out = work.join("ca.pem");
                std::fs::write(&out, text)
                    .map_err(|e| Error::build(format!("native: cannot write {}: {e}", out.display())))?;
                Some(out)
            }
            Some(CaBundle::Path(p)) => {
                return Err(Error::build(format!("ca_bundle: {} does not exist", p.display())))
            }
        };
        Ok(InstallCtx {
            spec,
            plan,
            facts,
            uv,
            uv_version,
            python_platform,
            ca_file,
            cache: root.join("layers"),
            work,
            no_cache: request.no_cache,
            runtime: plan
                .runtimes
                .iter()
                .find(|(p, _)| Platform::parse(p).ok().as_ref() == Some(platform))
                .map_or(Runtime::Off, |(_, r)| r.clone()),
            // Set by the caller from the checked options.
            compression: Compression::Gzip,
        })
    }

    fn site(&self) -> String {
        format!("{VENV}/lib/python{}/site-packages", self.facts.version)
    }

    fn key(&self, what: &str, parts: &[String]) -> String {
        let mut h = Sha256::new();
        for p in [
            LAYOUT,
            what,
            &self.uv_version,
            &self.python_platform,
            &self.facts.version,
            &self.facts.exe,
            self.compression.name(),
        ]
        .into_iter()
        .chain(parts.iter().map(String::as_str))
        {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        layers::hex(&h.finalize())
    }

    /// The cached layers of `key`, or `make` run into a fresh folder and cached.
    fn cached(
        &self,
        key: &str,
        make: impl FnOnce(&Path) -> Result<Vec<Layer>>,
    ) -> std::result::Result<Vec<Layer>, String> {
        let dir = self.cache.join(key);
        let index = dir.join("layers.json");
        if !self.no_cache {
            if let Some(found) = std::fs::read(&index)
                .ok()
                .and_then(|b| serde_json::from_slice::<Vec<Layer>>(&b).ok())
                .filter(|ls| ls.iter().all(|l| l.path.is_file()))
            {
                return Ok(found);
            }
        }
        let tmp = temp_dir_in(&self.cache).map_err(|e| e.to_string())?;
        let made = make(tmp.path()).map_err(|e| e.to_string())?;
        let moved: Vec<Layer> = made
            .into_iter()
            .map(|l| Layer {
                path: dir.join(l.path.file_name().unwrap_or_default()),
                ..l
            })
            .collect();
        // layers.json is written before the folder takes its name: a cache entry is whole or absent.
        let json = serde_json::to_vec(&moved).unwrap_or_default();
        let tmp_index = tmp.path().join("layers.json");
        std::fs::write(&tmp_index, json).map_err(|e| io_error("write", &tmp_index, &e).to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(tmp.path(), &dir).map_err(|e| io_error("write", &dir, &e).to_string())?;
        Ok(moved)
    }

    fn install(
        &self,
        target: &Path,
        requirements: Vec<String>,
        files: Vec<PathBuf>,
        no_deps: bool,
    ) -> Result<()> {
        let pip = &self.plan.pip;
        let extra_args: Vec<String> = match &pip.args_secret {
            Some(text) => text.lines().map(str::to_owned).collect(),
            None => pip.args.clone(),
        };
        install::run(&install::Install {
            uv: &self.uv,
            target,
            python_platform: &self.python_platform,
            python_version: &self.facts.version,
            requirements,
            requirement_files: files,
            index_url: self.spec.pip_index.as_deref().filter(|s| !s.is_empty()),
            extra_index_urls: &self.spec.pip_extra_index_url,
            extra_args: &extra_args,
            no_deps,
            ca_file: self.ca_file.as_deref(),
            cache_dir: None,
            private_dir: self.work,
        })?;
        install::fix_up(target, &format!("{VENV}/bin/python"))
    }

    /// The requirements files to give uv (a uv.lock or poetry.lock exported to pinned requirements
    /// first).
    fn requirement_files(&self) -> Result<Vec<PathBuf>> {
        let Some(req) = &self.spec.requirements else {
            return Ok(Vec::new());
        };
        let dir = req.parent().unwrap_or(Path::new("."));
        if self.plan.requirements == Some(ReqKind::Poetry) {
            let out = self.work.join("poetry-lock-requirements.txt");
            let index = self.spec.pip_index.as_deref().filter(|s| !s.is_empty());
            install::export_poetry(&self.uv, dir, &out, self.work, index, self.ca_file.as_deref())?;
            return Ok(vec![out]);
        }
        if self.plan.requirements != Some(ReqKind::Uv) {
            return Ok(vec![req.clone()]);
        }
        let out = self.work.join("uv-lock-requirements.txt");
        let status = std::process::Command::new(&self.uv)
            .args([
                "export",
                "--frozen",
                "--no-dev",
                "--no-emit-project",
                "--no-header",
                "--quiet",
                "-o",
            ])
            .arg(&out)
            .arg("--project")
            .arg(dir)
            .env("UV_NO_CONFIG", "1")
            .output()
            .map_err(|e| Error::build(format!("native: cannot run uv export: {e}")))?;
        if !status.status.success() {
            return Err(Error::build(format!(
                "native: uv export of {} failed: {}",
                req.display(),
                String::from_utf8_lossy(&status.stderr).trim()
            )));
        }
        Ok(vec![out])
    }

    /// The packages layers: keyed by what determines the install (the requirements as written,
    /// the requirements files' content, the index options, the platform, the Python version and
    /// uv's version), so that a spec changing only its files reuses them without running uv.
    fn packages(&self, mtime: u64) -> std::result::Result<Vec<Layer>, String> {
        let mut parts: Vec<String> = Vec::new();
        parts.push(format!("packages={:?}", self.spec.packages));
        parts.push(format!("runtime_packages={:?}", self.spec.runtime_packages));
        parts.push(format!("index={:?}", self.spec.pip_index));
        parts.push(format!("extra={:?}", self.spec.pip_extra_index_url));
        parts.push(format!("args={:?}", self.spec.pip_extra_args));
        for f in self.plan.selection.values() {
            if f.key.starts_with("requirements/") {
                if let FileKind::Regular { sha256, .. } = &f.file.kind {
                    parts.push(format!("{}={}", f.key, layers::hex(sha256)));
                }
            }
        }
        let key = self.key("packages", &parts);
        self.cached(&key, |out| {
            let target = self.work.join("packages");
            let mut reqs = self.spec.packages.clone();
            reqs.extend(self.spec.runtime_packages.iter().cloned());
            let files = self.requirement_files()?;
            self.install(&target, reqs, files, false)?;
            runtime::check_installed(&target, false).map_err(Error::build)?;
            split_packages(&target, &self.site(), out, mtime, self.compression)
        })
    }

    /// The imagespec runtime (see `crate::runtime`): a wheel, or `imagespec-build==<this version>`
    /// from the index; without its dependencies (the image needs only `ImageSpec` and
    /// `is_container()`). None when the spec turns it off.
    fn runtime(&self, mtime: u64) -> std::result::Result<Vec<Layer>, String> {
        let what = match &self.runtime {
            Runtime::Off => return Ok(Vec::new()),
            Runtime::Wheel { path, .. } => format!("wheel:{}", layers::hex(&wheel_digest(path)?)),
            Runtime::Index(requirement) => requirement.clone(),
        };
        let key = self.key("runtime", std::slice::from_ref(&what));
        self.cached(&key, |out| {
            let target = self.work.join("runtime");
            let req = match &self.runtime {
                Runtime::Wheel { path, .. } => path.to_string_lossy().into_owned(),
                _ => what.clone(),
            };
            self.install(&target, vec![req], Vec::new(), true)?;
            runtime::check_installed(&target, true).map_err(Error::build)?;
            let mut ls = LayerSpec::default();
            add_tree(&mut ls, &target, &self.site())?;
            Ok(vec![layers::build_layer(
                &ls,
                out,
                "imagespec: the imagespec runtime",
                mtime,
                self.compression,
            )?])
        })
    }
}

/// The wheel's sha256 through the persistent digest cache of source files (a wheel is megabytes,
/// hashed again on every build otherwise).
fn wheel_digest(wheel: &Path) -> std::result::Result<[u8; 32], String> {
    let bad = |e: &dyn std::fmt::Display| format!("imagespec_wheel {}: {e}", wheel.display());
    let (dir, name) = match (wheel.parent(), wheel.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(n)) => (d, n),
        _ => return Err(bad(&"not a file path")),
    };
    let files = crate::source::hash_path(dir, name, "imagespec_wheel").map_err(|e| bad(&e))?;
    match files.first().map(|f| &f.kind) {
        Some(FileKind::Regular { sha256, .. }) => Ok(*sha256),
        _ => Err(bad(&"not a regular file")),
    }
}

/// Adds every file under `target` to `ls`: `bin/` into the venv's `bin`, the rest into `site`.
fn add_tree(ls: &mut LayerSpec, target: &Path, site: &str) -> Result<()> {
    for (rel, content, exe) in walk(target)? {
        ls.add(&image_path(&rel, site), content, exe, 0);
    }
    Ok(())
}

fn image_path(rel: &str, site: &str) -> String {
    match rel.strip_prefix("bin/") {
        Some(name) => format!("{VENV}/bin/{name}"),
        None => format!("{site}/{rel}"),
    }
}

/// Every file and symlink under `root`, relative, sorted.
fn walk(root: &Path) -> Result<Vec<(String, Content, bool)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let err = |p: &Path, e: std::io::Error| Error::build(format!("native: {}: {e}", p.display()));
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))? {
            let entry = entry.map_err(|e| err(&dir, e))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| err(&p, e))?;
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
            if ft.is_dir() {
                if entry.file_name() == "__pycache__" {
                    continue;
                }
                stack.push(p);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).map_err(|e| err(&p, e))?;
                out.push((rel, Content::Symlink(t.to_string_lossy().into_owned()), false));
            } else {
                #[cfg(unix)]
                let exe = {
                    use std::os::unix::fs::PermissionsExt;
                    entry.metadata().map_err(|e| err(&p, e))?.permissions().mode() & 0o111 != 0
                };
                #[cfg(not(unix))]
                let exe = false;
                out.push((
                    rel,
                    Content::File {
                        path: p,
                        expect: None,
                    },
                    exe,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The distribution each installed file belongs to, from the `RECORD` files.
fn owners(target: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(target) else {
        return out;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(dist) = name.strip_suffix(".dist-info") else {
            continue;
        };
        let dist = dist.split('-').next().unwrap_or(dist).to_owned();
        let Ok(text) = std::fs::read_to_string(entry.path().join("RECORD")) else {
            continue;
        };
        for line in text.lines() {
            let path = line.split(',').next().unwrap_or("").trim_matches('"');
            let path = match path.strip_prefix("../../../") {
                Some(rest) => rest.to_owned(),
                None => path.to_owned(),
            };
            if !path.is_empty() {
                out.insert(path, dist.clone());
            }
        }
    }
    out
}

/// The installed packages as layers: each distribution of at least [`OWN_LAYER_BYTES`] in a layer
/// of its own (by name), then one layer with everything else.
fn split_packages(
    target: &Path,
    site: &str,
    out: &Path,
    mtime: u64,
    compression: Compression,
) -> Result<Vec<Layer>> {
    let files = walk(target)?;
    let owner = owners(target);
    let mut size_of: BTreeMap<String, u64> = BTreeMap::new();
    for (rel, content, _) in &files {
        if let (Some(d), Content::File { path, .. }) = (owner.get(rel), content) {
            *size_of.entry(d.clone()).or_default() += std::fs::metadata(path).map_or(0, |m| m.len());
        }
    }
    let big: Vec<&String> = size_of
        .iter()
        .filter(|(_, s)| **s >= OWN_LAYER_BYTES)
        .map(|(d, _)| d)
        .collect();
    let mut specs: BTreeMap<Option<&String>, LayerSpec> = BTreeMap::new();
    for (rel, content, exe) in files {
        let group = owner.get(&rel).filter(|d| big.contains(d));
        let group = group.and_then(|d| big.iter().copied().find(|b| *b == d));
        specs
            .entry(group)
            .or_default()
            .add(&image_path(&rel, site), content, exe, 0);
    }
    let mut layers = Vec::new();
    for d in &big {
        if let Some(ls) = specs.get(&Some(*d)) {
            layers.push(layers::build_layer(
                ls,
                out,
                &format!("imagespec: Python package {d}"),
                mtime,
                compression,
            )?);
        }
    }
    if let Some(ls) = specs.get(&None) {
        layers.push(layers::build_layer(
            ls,
            out,
            "imagespec: Python packages",
            mtime,
            compression,
        )?);
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Context, RawSpec};

    fn spec(raw: RawSpec) -> Spec {
        let ctx = Context {
            base_dir: std::env::temp_dir(),
            python_version: "3.11".into(),
            host_arch: "x86_64".into(),
        };
        Spec::from_raw(
            RawSpec {
                name: Some("x".into()),
                registry: Some("localhost:5000".into()),
                ..raw
            },
            &ctx,
        )
        .unwrap()
    }

    #[test]
    fn specs_needing_a_container_are_refused_with_the_builder_to_use() {
        let e = refuse(&spec(RawSpec {
            apt_packages: Some(vec!["curl".into()]),
            commands: Some(vec!["echo hi".into()]),
            ..Default::default()
        }))
        .unwrap_err();
        assert!(e.contains("apt_packages, commands"), "{e}");
        assert!(e.contains("builder=\"docker\" or builder=\"buildah\""), "{e}");
        let e = refuse(&spec(RawSpec {
            python_exec: Some("/usr/bin/python3".into()),
            ..Default::default()
        }))
        .unwrap_err();
        assert!(e.contains("python_exec"), "{e}");
        assert!(refuse(&spec(RawSpec {
            packages: Some(vec!["six".into()]),
            ..Default::default()
        }))
        .is_ok());
        assert!(refuse(&spec(RawSpec {
            platform: Some("linux/amd64,linux/arm64".into()),
            ..Default::default()
        }))
        .is_ok());
        let e = refuse(&spec(RawSpec {
            platform: Some("linux/amd64,linux/s390x".into()),
            ..Default::default()
        }))
        .unwrap_err();
        assert!(e.contains("amd64 and arm64 only, not linux/s390x"), "{e}");
    }

    #[test]
    fn options_are_checked_before_the_build() {
        let with = |kv: &[(&str, &str)], platform: &str| {
            let mut s = spec(RawSpec {
                platform: Some(platform).filter(|p| !p.is_empty()).map(Into::into),
                ..Default::default()
            });
            for (k, v) in kv {
                s.builder_options
                    .insert((*k).into(), crate::value::Value::Str((*v).into()));
            }
            let ps = platforms(&s).unwrap();
            options(&s, &ps).map(|o| (o.compression, o.docker_archive))
        };
        assert_eq!(with(&[], "").unwrap().0, Compression::Gzip);
        assert_eq!(with(&[("compression", "zstd")], "").unwrap().0, Compression::Zstd);
        let e = with(&[("compression", "lz4")], "").unwrap_err();
        assert!(
            e.contains("\"lz4\" is not known") && e.contains("\"zstd\""),
            "{e}"
        );
        let e = with(&[("docker_archive", "/nonexistent-dir/x.tar")], "").unwrap_err();
        assert!(e.contains("the folder /nonexistent-dir does not exist"), "{e}");
        let e = with(&[("docker_archive", "/tmp/x.tar")], "linux/amd64,linux/arm64").unwrap_err();
        assert!(e.contains("2 platforms"), "{e}");
        assert!(with(&[("docker_archive", "/tmp/x.tar")], "linux/amd64").is_ok());
        let d = platforms(&spec(RawSpec {
            platform: Some("linux/arm64, linux/amd64,linux/arm64".into()),
            ..Default::default()
        }))
        .unwrap();
        let names: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["linux/arm64", "linux/amd64"],
            "the spec's order, each once"
        );
    }

    #[test]
    fn auto_selection_needs_a_registry() {
        let mut s = spec(RawSpec::default());
        assert!(NativeEngine.can_build(&s).is_ok());
        s.registry = None;
        assert!(NativeEngine.can_build(&s).unwrap_err().contains("OCI layout"));
    }

    #[test]
    fn skeleton_makes_a_venv_and_the_user() {
        let facts = BaseFacts {
            version: "3.11".into(),
            exe: "/usr/bin/python3.11".into(),
            has_venv: false,
            glibc_minor: Some(36),
            musl: false,
            passwd: "root:x:0:0:root:/root:/bin/bash\n".into(),
            group: "root:x:0:\n".into(),
        };
        let ls = skeleton(&facts);
        let keys: Vec<&str> = ls.entries.keys().map(String::as_str).collect();
        for k in [
            "opt/venv/pyvenv.cfg",
            "opt/venv/bin/python",
            "opt/venv/lib/python3.11/site-packages",
            "etc/passwd",
            "etc/group",
            "root",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        match &ls.entries["etc/passwd"].content {
            Content::Bytes(b) => assert!(
                String::from_utf8_lossy(b).ends_with("imagespec:x:1000:1000::/home/imagespec:/bin/sh\n")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(ls.dirs["root"], (1000, 0o755));
    }
}
