//! imagespec's core: spec → identity/tag → registry → plan → engines.
//!
//! The Python extension (`imagespec._core`) is a thin layer over these modules, compiled only
//! with the `python` feature, so the core builds and tests without libpython.

pub mod dockerfile;
pub mod engines;
pub mod error;
pub mod identity;
pub mod oci;
pub mod plan;
pub mod redact;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod source;
pub mod spec;
pub mod support;
pub mod value;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};

/// Bumped whenever the images the build code generates for a spec would change, so that two
/// releases never push different content under one tag. Part of every tag. Recipe 1 is the
/// Dockerfile of `dockerfile::render` as documented in docs/image-layout.md; the golden files in
/// tests/golden/dockerfiles pin it. Recipe 4 installs heavy and declared package groups in steps
/// of their own (`dockerfile::groups`).
pub const RECIPE_VERSION: i64 = 4;
