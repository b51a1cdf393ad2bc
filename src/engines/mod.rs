//! Engines: programs that turn a spec's build context into an image (docker, buildah, podman,
//! envd), the daemonless builder that makes one itself ([`native`]), or one that names an image
//! without building (noop).
//!
//! An engine writes the spec's context (see [`crate::dockerfile`]) with the options it can honour
//! (BuildKit or not), runs its program, pushes when the spec has a registry (tags locally when
//! not), and returns the image's full name, pinned by digest when the program reports one. The
//! plan ([`crate::plan`]) decides what to build and in which order; engines build one image.

use crate::dockerfile::BuildOptions;
use crate::error::Result;
use crate::spec::Spec;

/// What an engine reports while it builds, for the plan's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A build step started (a Dockerfile instruction, as the engine printed it).
    Step(&'a str),
    /// The image is being pushed to this reference.
    Pushing(&'a str),
}

/// One image to build.
pub struct Request<'a> {
    pub spec: &'a Spec,
    /// The name the tag scheme gives (`registry/name:tag`, or `name:tag` without a registry).
    pub image: &'a str,
    /// Wheel, CA bundle and loaded modules; the engine sets `buildkit` and `engine` itself.
    pub options: &'a BuildOptions,
    /// Push `image` after the build (the spec has a registry); else tag it in local storage.
    pub push: bool,
    /// Build every step again (no layer cache).
    pub no_cache: bool,
    pub progress: &'a (dyn Fn(Progress<'_>) + Sync),
}

/// What a build produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The full name to run the image by: `image@sha256:...` when the digest is known, else `image`.
    pub name: String,
    pub digest: Option<String>,
}

/// A program that builds images.
pub trait Engine: Send + Sync {
    fn name(&self) -> &str;
    /// `Ok` when the program is installed and answering (a daemon up, storage usable), else why
    /// not, in one line that says how to fix it.
    fn probe(&self) -> std::result::Result<(), String>;
    /// `Ok` when this engine can build `spec` at all, else why not (automatic selection passes
    /// over it then). Engines that build anything keep the default.
    fn can_build(&self, _spec: &Spec) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Builds (and pushes) one image. Errors are `Error::Build` naming the engine, the image and
    /// the tail of the program's output, with credentials redacted.
    fn build(&self, request: &Request<'_>) -> Result<Built>;
}

pub mod buildah;
pub mod buildkit;
pub mod cache;
pub mod docker;
pub mod envd;
pub mod native;
pub mod noop;
pub mod pool;
pub mod verify;

use crate::error::Error;
use crate::support::fs::TempDir;
use std::sync::Arc;

/// The engines imagespec ships, with their default priority: the highest available one builds
/// when a spec names no builder. Builders registered by users default to 5 and so outrank these
/// (as in flytekit).
pub const BUILTIN: &[(&str, i32)] = &[
    ("docker", 3),
    ("buildah", 2),
    ("podman", 1),
    ("envd", 1),
    ("noop", 0),
    ("native", 1),
    ("buildkit", 0),
];

/// Engines never picked automatically: only a spec that names them uses them.
pub const AUTO_SKIP: &[&str] = &["noop", "buildkit"];

/// The built-in engine called `name`.
pub fn builtin(name: &str) -> Option<Arc<dyn Engine>> {
    Some(match name {
        "docker" => Arc::new(docker::Docker::default()),
        "buildah" => Arc::new(buildah::Buildah::BUILDAH),
        "podman" => Arc::new(buildah::Buildah::PODMAN),
        "envd" => Arc::new(envd::Envd),
        "noop" => Arc::new(noop::Noop),
        "native" => Arc::new(native::NativeEngine),
        "buildkit" => Arc::new(buildkit::BuildKit::default()),
        _ => return None,
    })
}

/// `sha256:<64 hex>` at the start of `s`, if there is one.
pub(crate) fn leading_digest(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:")?;
    let hex: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
    (hex.len() == 64).then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// `image@digest`: how a pushed image is named so that it always means these bytes.
pub(crate) fn pinned(image: &str, digest: Option<String>) -> Built {
    Built {
        name: digest
            .as_ref()
            .map_or_else(|| image.to_owned(), |d| format!("{image}@{d}")),
        digest,
    }
}

/// The folder of one build (its context, secrets and the program's output files), which only
/// this user can enter, in the temporary folder; removed when dropped.
pub(crate) fn build_folder(prefix: &str) -> Result<TempDir> {
    TempDir::new(prefix).map_err(|e| {
        Error::build(format!(
            "cannot create a folder in {}: {e}",
            std::env::temp_dir().display()
        ))
    })
}
