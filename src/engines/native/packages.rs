//! The Python packages and the imagespec runtime of one platform, as layers: what determines each
//! install is hashed into a cache key, so a build that changes only its files reuses the layers
//! without running uv; on a miss uv installs into a fresh folder ([`super::install`]) and the
//! result is split into layers ([`super::split`]) and cached, whole or not at all.

use super::layers::{self, Compression, Layer, LayerSpec};
use super::python::BaseFacts;
use super::remote_cache::RemoteCache;
use super::split::{add_tree, split_packages};
use super::{builder_option, fail, install, io_error, temp_dir_in, uv, LAYOUT};
use crate::dockerfile::recipe::{ProjectRecipe, Recipe, ReqKind};
use crate::dockerfile::{CaBundle, VENV};
use crate::engines::{Progress, Request};
use crate::error::{Error, Result};
use crate::registry::platform::Platform;
use crate::runtime::{self, Runtime};
use crate::source::FileKind;
use crate::spec::project::ProjectKind;
use crate::spec::Spec;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// Everything the installs need, and their cache keys' common part.
pub(super) struct InstallCtx<'a> {
    /// The image being built, for the messages of the uv runs.
    image: &'a str,
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
    pub(super) runtime: Runtime,
    pub(super) compression: Compression,
    /// The layer cache in the registry, with `cache="registry"` (set by the caller).
    pub(super) remote: Option<&'a RemoteCache>,
    /// Every cache key this build used, with its layers: written to the registry cache after
    /// the push.
    pub(super) used: RefCell<Vec<(String, Vec<Layer>)>>,
    progress: &'a (dyn Fn(Progress<'_>) + Sync),
}

impl<'a> InstallCtx<'a> {
    pub(super) fn new(
        spec: &'a Spec,
        request: &Request<'a>,
        plan: &'a Recipe,
        facts: &'a BaseFacts,
        platform: &Platform,
        root: &Path,
        work: &'a Path,
    ) -> Result<InstallCtx<'a>> {
        let uv = uv::find_uv().map_err(|e| fail(request.image, e))?;
        let uv_version = uv::uv_version(request.image, &uv, Some(&root.join("uv-version")))?;
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
            image: request.image,
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
            remote: None,
            used: RefCell::new(Vec::new()),
            progress: request.progress,
        })
    }

    /// Where compressed layers are kept by their tar's digest (see [`layers::build_layer`]).
    fn by_tar(&self) -> PathBuf {
        self.cache.join("by-tar")
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

    /// The cached layers of `key` (on this machine, else in the registry cache), or `make` run
    /// into a fresh folder and cached.
    fn cached(
        &self,
        key: &str,
        make: impl FnOnce(&Path) -> Result<Vec<Layer>>,
    ) -> std::result::Result<Vec<Layer>, String> {
        let layers = self.cached_here(key, make)?;
        self.used.borrow_mut().push((key.to_owned(), layers.clone()));
        Ok(layers)
    }

    fn cached_here(
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
            if let Some(remote) = self.remote {
                let step = |s: &str| (self.progress)(Progress::Step(s));
                let rt = crate::support::runtime::runtime().map_err(|e| e.to_string())?;
                match rt.block_on(remote.get(key)) {
                    Ok(Some(found)) => {
                        step(&format!(
                            "from the registry cache: {} layers, no install",
                            found.len()
                        ));
                        return Ok(found);
                    }
                    Ok(None) => {}
                    Err(why) => step(&format!("registry cache not used: {why}")),
                }
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
        self.install_with(target, requirements, files, no_deps, false)
    }

    /// [`Self::install`]; `local`: the requirements are the project's local packages (built here,
    /// without their dependencies, which the lock gave). `overrides` and `constraints` bind every
    /// install that resolves dependencies.
    fn install_with(
        &self,
        target: &Path,
        requirements: Vec<String>,
        files: Vec<PathBuf>,
        no_deps: bool,
        local: bool,
    ) -> Result<()> {
        let pip = &self.plan.pip;
        let extra_args: Vec<String> = match &pip.args_secret {
            Some(text) => text.lines().map(str::to_owned).collect(),
            None => pip.args.clone(),
        };
        install::run(&install::Install {
            image: self.image,
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
            overrides: if no_deps { &[] } else { &self.spec.overrides },
            constraints: if no_deps { &[] } else { &self.spec.constraints },
            build_local: local,
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
            uv::export_poetry(
                self.image,
                &self.uv,
                dir,
                &out,
                self.work,
                index,
                self.ca_file.as_deref(),
            )?;
            return Ok(vec![out]);
        }
        if self.plan.requirements != Some(ReqKind::Uv) {
            return Ok(vec![req.clone()]);
        }
        let out = self.work.join("uv-lock-requirements.txt");
        uv::export_uv(self.image, &self.uv, dir, &out, req)?;
        Ok(vec![out])
    }

    /// A project's lock as a file of pinned, hashed requirements (local packages left out), and its
    /// local packages to install without dependencies (with `install_project`, the project too).
    fn project_export(&self, project: &ProjectRecipe) -> Result<(PathBuf, Vec<String>)> {
        let locked = self.work.join("project-locked.txt");
        match project.kind {
            ProjectKind::Uv => {
                let locals = uv::export_uv_project(
                    self.image,
                    &self.uv,
                    &project.root,
                    &locked,
                    &self.work.join("project-all.txt"),
                    project.install_project,
                )?;
                Ok((locked, locals))
            }
            ProjectKind::Poetry => {
                let all = self.work.join("project-all.txt");
                let index = self.spec.pip_index.as_deref().filter(|s| !s.is_empty());
                uv::export_poetry(
                    self.image,
                    &self.uv,
                    &project.root,
                    &all,
                    self.work,
                    index,
                    self.ca_file.as_deref(),
                )?;
                let mut locals = uv::split_poetry_locals(&all, &locked)?;
                if project.install_project {
                    locals.push(uv::path_arg(&project.root));
                }
                Ok((locked, locals))
            }
        }
    }

    /// The packages layers: keyed by what determines the install (the requirements as written,
    /// the requirements files' content, the index options, the platform, the Python version and
    /// uv's version), so that a spec changing only its files reuses them without running uv.
    pub(super) fn packages(&self, mtime: u64) -> std::result::Result<Vec<Layer>, String> {
        let mut parts: Vec<String> = Vec::new();
        parts.push(format!("packages={:?}", self.spec.packages));
        parts.push(format!("runtime_packages={:?}", self.spec.runtime_packages));
        parts.push(format!("index={:?}", self.spec.pip_index));
        parts.push(format!("extra={:?}", self.spec.pip_extra_index_url));
        parts.push(format!("args={:?}", self.spec.pip_extra_args));
        if !self.spec.overrides.is_empty() || !self.spec.constraints.is_empty() {
            parts.push(format!("overrides={:?}", self.spec.overrides));
            parts.push(format!("constraints={:?}", self.spec.constraints));
        }
        if let Some(p) = &self.plan.project {
            parts.push(format!(
                "project={}:{}:{}",
                p.kind.as_str(),
                p.root_rel,
                p.install_project
            ));
        }
        for f in self.plan.selection.values() {
            if f.key.starts_with("requirements/") || f.key.starts_with("project/") {
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
            let mut files = self.requirement_files()?;
            let locals = match &self.plan.project {
                Some(project) => {
                    let (locked, locals) = self.project_export(project)?;
                    files.push(locked);
                    locals
                }
                None => Vec::new(),
            };
            self.install(&target, reqs, files, false)?;
            if !locals.is_empty() {
                self.install_with(&target, locals, Vec::new(), true, true)?;
            }
            runtime::check_installed(&target, false).map_err(Error::build)?;
            split_packages(
                &target,
                &self.site(),
                out,
                mtime,
                self.compression,
                &self.by_tar(),
            )
        })
    }

    /// The imagespec runtime (see `crate::runtime`): a wheel, or `imagespec-build==<this version>`
    /// from the index; without its dependencies (the image needs only `ImageSpec` and
    /// `is_container()`). None when the spec turns it off.
    pub(super) fn runtime(&self, mtime: u64) -> std::result::Result<Vec<Layer>, String> {
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
                Some(&self.by_tar()),
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
