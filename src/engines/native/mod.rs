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
//! This module is the engine's face: what it refuses, its `builder_options`, where it keeps its
//! caches. `build` runs the steps in order, one module each: [`base`] (manifest and config for the
//! platform), [`python`] (the base's Python, venv, libc and users), `skeleton` (the venv and user
//! layer, the copied files' layers), `packages` (the cached package and runtime layers), which
//! runs [`install`] (`uv pip install`; [`uv`] finds and runs uv) and `split` (installed files into
//! layers), [`layers`] (tar + gzip or zstd), [`config`] (config, manifest and index), [`client`]
//! (the registry calls); then [`publish`]: the registry push or the OCI layout
//! ([`publish::registry`]), a `docker load` archive ([`publish::archive`]).

pub mod base;
mod build;
pub mod client;
pub mod config;
pub mod install;
pub mod layers;
mod packages;
pub mod publish;
pub mod python;
pub mod remote_cache;
mod skeleton;
pub mod source_layer;
mod split;
pub mod uv;

use crate::engines::{Built, Engine, Request};
use crate::error::{Error, Result};
use crate::registry::platform::Platform;
use crate::spec::Spec;
use crate::support::fs::TempDir;
use layers::Compression;
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
        uv::find_uv().map(|_| ())
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
        build::build(request)
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
}
