//! Engines: programs that turn a spec's build context into an image (docker, buildah, podman,
//! envd) or name one without building (noop).
//!
//! An engine writes the spec's context (see [`crate::build`]) with the options it can honour
//! (BuildKit or not), runs its program, pushes when the spec has a registry (tags locally when
//! not), and returns the image's full name, pinned by digest when the program reports one. The
//! plan ([`crate::plan`]) decides what to build and in which order; engines build one image.

use crate::build::BuildOptions;
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

/// The built-in engines and their default priorities. Builders registered by users default to 5
/// and so come before these, as in flytekit.
pub const BUILTIN: &[(&str, i32)] = &[
    ("docker", 3),
    ("buildah", 2),
    ("podman", 1),
    ("envd", 1),
    ("noop", 0),
    ("native", 1),
];

/// Engines never picked on their own: only a spec that names them gets them.
pub const AUTO_SKIP: &[&str] = &["noop"];

/// A built-in engine by name.
pub fn builtin(name: &str) -> Option<std::sync::Arc<dyn Engine>> {
    match name {
        "native" => Some(std::sync::Arc::new(crate::native::NativeEngine)),
        _ => None,
    }
}
