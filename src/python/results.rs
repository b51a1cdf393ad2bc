//! What the entry points give back, one type per result, each the twin of a declaration in
//! `_core.pyi`: a dict (`#[derive(IntoPyObject)]`, a `TypedDict` in the stub) where Python code
//! outside the package reads it by key, a frozen class (`@final` in the stub) where only the
//! package reads it.

use crate::identity::{self, Digest};
use crate::{dockerfile, engines, plan, registry};
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The classes (the dicts are no classes at run time).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ContextManifest>()?;
    m.add_class::<Event>()?;
    m.add_class::<ImageResult>()?;
    Ok(())
}

/// One reference's answer to `check` or `check_local` (the benchmark reads it by key).
#[derive(IntoPyObject)]
pub(crate) struct CheckResult {
    reference: String,
    status: &'static str,
    reason: Option<String>,
    digest: Option<String>,
    media_type: Option<String>,
    cached: bool,
}

impl From<registry::CheckResult> for CheckResult {
    fn from(r: registry::CheckResult) -> Self {
        CheckResult {
            reference: r.reference,
            status: r.status.as_str(),
            reason: r.reason,
            digest: r.digest,
            media_type: r.media_type,
            cached: r.cached,
        }
    }
}

/// What `engine_build` built (the engine tests read it by key).
#[derive(IntoPyObject)]
pub(crate) struct BuiltImage {
    name: String,
    digest: Option<String>,
}

impl From<engines::Built> for BuiltImage {
    fn from(b: engines::Built) -> Self {
        BuiltImage {
            name: b.name,
            digest: b.digest,
        }
    }
}

/// What `write_context` wrote; `_build.write_context` makes a `BuildContext` of it.
#[pyclass(frozen, get_all, module = "imagespec._core")]
pub(crate) struct ContextManifest {
    dir: PathBuf,
    context: PathBuf,
    dockerfile: PathBuf,
    dockerfile_text: String,
    files: Vec<String>,
    /// `(id, path)` of each secret, in the order the Dockerfile mounts them.
    secrets: Vec<(String, PathBuf)>,
    image: String,
    tag: String,
    id: String,
}

impl From<dockerfile::ContextManifest> for ContextManifest {
    fn from(m: dockerfile::ContextManifest) -> Self {
        ContextManifest {
            dir: m.dir,
            context: m.context,
            dockerfile: m.dockerfile,
            dockerfile_text: m.dockerfile_text,
            files: m.files,
            secrets: m.secrets.into_iter().map(|s| (s.id, s.path)).collect(),
            image: m.image,
            tag: m.tag,
            id: m.id,
        }
    }
}

/// What `write_context` would write (`imagespec build --dry-run` and tests read it by key).
#[derive(IntoPyObject)]
pub(crate) struct ContextPlan {
    dockerfile_text: String,
    files: Vec<String>,
    /// The secrets' ids.
    secrets: Vec<String>,
    image: String,
    tag: String,
    id: String,
}

impl From<dockerfile::ContextPlan> for ContextPlan {
    fn from(p: dockerfile::ContextPlan) -> Self {
        ContextPlan {
            dockerfile_text: p.dockerfile_text,
            files: p.files,
            secrets: p.secret_ids,
            image: p.image,
            tag: p.tag,
            id: p.id,
        }
    }
}

/// The tree of sub-digests a tag is derived from, in hex: `ImageSpec.tag_inputs()` gives it to
/// users as a dict.
#[derive(IntoPyObject)]
pub(crate) struct TagInputs {
    scheme: i64,
    recipe_version: i64,
    id: String,
    id_root: String,
    fields: BTreeMap<&'static str, String>,
    files: BTreeMap<String, String>,
    base_image: Option<String>,
    root: String,
    tag: String,
}

impl From<identity::TagInputs> for TagInputs {
    fn from(t: identity::TagInputs) -> Self {
        let hex = |d: &Digest| data_encoding::HEXLOWER.encode(d);
        TagInputs {
            scheme: identity::TAG_SCHEME,
            recipe_version: crate::RECIPE_VERSION,
            id: t.id,
            id_root: hex(&t.id_root),
            fields: t.fields.iter().map(|(k, d)| (*k, hex(d))).collect(),
            files: t.files.iter().map(|(k, d)| (k.clone(), hex(d))).collect(),
            base_image: t.base_image,
            root: hex(&t.root),
            tag: t.tag,
        }
    }
}

/// One step of a plan, as `on_event` gets it; `_engine.build` makes a `BuildEvent` of it.
#[pyclass(frozen, get_all, module = "imagespec._core")]
pub(crate) struct Event {
    kind: &'static str,
    image: Option<String>,
    /// The step, the reason, the builder or the built name, by kind.
    message: Option<String>,
    /// For `done`: how long the build took.
    seconds: Option<f64>,
    /// For `checking`: how many images are checked.
    count: Option<usize>,
}

impl From<plan::Event> for Event {
    fn from(e: plan::Event) -> Self {
        use plan::Event as E;
        let event = |kind, image| Event {
            kind,
            image: Some(image),
            message: None,
            seconds: None,
            count: None,
        };
        let with = |kind, image, message| Event {
            message: Some(message),
            ..event(kind, image)
        };
        match e {
            E::Checking { images } => Event {
                kind: "checking",
                image: None,
                message: None,
                seconds: None,
                count: Some(images),
            },
            E::Exists { image } => event("exists", image),
            E::Missing { image, reason } => with("missing", image, reason),
            E::Unknown { image, reason } => with("unknown", image, reason),
            E::Failed { image, reason } => with("failed", image, reason),
            E::Building { image, builder } => with("building", image, builder),
            E::Step { image, step } => with("step", image, step),
            E::Pushing { image } => event("pushing", image),
            E::Done { image, name, seconds } => Event {
                seconds: Some(seconds),
                ..with("done", image, name)
            },
            // A warning about no image in particular (an engine of the pool): no image.
            E::Warning { image, message } if image.is_empty() => Event {
                image: None,
                ..with("warning", image, message)
            },
            E::Warning { image, message } => with("warning", image, message),
        }
    }
}

/// What happened to one image of a plan; `_engine.build` makes an `ImageResult` of it.
#[pyclass(frozen, get_all, module = "imagespec._core")]
pub(crate) struct ImageResult {
    image: String,
    name: String,
    id: String,
    outcome: &'static str,
    builder: Option<String>,
    reason: Option<String>,
    seconds: f64,
    /// Indexes into the specs given to `run_plan` that are this image.
    inputs: Vec<usize>,
}

impl From<plan::ImageResult> for ImageResult {
    fn from(r: plan::ImageResult) -> Self {
        ImageResult {
            image: r.image,
            name: r.name,
            id: r.id,
            outcome: r.outcome.as_str(),
            builder: r.builder,
            reason: r.reason,
            seconds: r.seconds,
            inputs: r.inputs,
        }
    }
}
