//! Build contexts: a Dockerfile and exactly the files it needs, for any Dockerfile engine.
//!
//! `recipe.rs` checks a spec once and derives everything its image is made from (the native
//! builder reads the same recipe); [`dockerfile`] (`render.rs`) renders it (documented, layer by layer, in
//! docs/image-layout.md); [`write_context`] writes it with the files the tag hashed into a fresh
//! folder and says which build secrets the engine must pass. Both are deterministic: the same
//! spec, files and options give the same bytes on every machine.
//!
//! Safety rules kept here, each tested in `tests.rs`:
//! * no user string is ever part of a shell script: values reach `sh` as positional arguments of
//!   a `RUN` in JSON exec form, so JSON escaping is the only quoting, and it cannot be escaped;
//! * `ENV`/`LABEL` values are double-quoted with `\`, `"` and `$` escaped; a value with a line
//!   break is refused (a Dockerfile cannot hold one there);
//! * user file names never appear in the Dockerfile: files are copied folder by folder
//!   (`copy/`, `source/`);
//! * secrets (a CA bundle, index URLs with credentials, packages whose URL has credentials,
//!   `pip_secret_mounts`) only ever reach a
//!   `RUN --mount=type=secret`: never the Dockerfile text, the context, a layer or a label.

mod checks;
mod context;
mod groups;
pub(crate) mod recipe;
pub(crate) mod render;
mod scripts;
#[cfg(all(test, unix))]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use checks::check_requirement;
pub use context::{plan_context, write_context, BuildSecret, ContextManifest, ContextPlan};
pub use render::{dockerfile, shown_spec, IMAGE_ID_VAR};

/// The secret ids the generated Dockerfile may mount; an engine passes each one listed in
/// [`ContextManifest::secrets`] (`--secret id=ID,src=PATH`).
pub const SECRET_CA: &str = "imagespec_ca";
pub const SECRET_PIP_CONF: &str = "imagespec_pip_conf";
pub const SECRET_PIP_ARGS: &str = "imagespec_pip_args";
/// `packages` and `runtime_packages` entries with URL credentials, one per line.
pub const SECRET_PIP_REQS: &str = "imagespec_pip_reqs";

/// The id of `pip_secret_mounts[i]`.
pub fn secret_mount_id(i: usize) -> String {
    format!("imagespec_secret_{i}")
}

/// Where the virtualenv the image's Python packages go into lives.
pub const VENV: &str = "/opt/venv";
/// The uid of the image's non-root user (flytekit's images use 1000 too).
pub const USER_UID: u32 = 1000;

/// An extra CA bundle for the install steps.
#[derive(Clone, Debug, PartialEq)]
pub enum CaBundle {
    /// A PEM file, or a folder whose `*.pem`, `*.crt` and `*.cer` files are concatenated.
    Path(PathBuf),
    /// PEM text.
    Pem(String),
}

impl CaBundle {
    /// PEM text when `s` holds a certificate, else a path.
    pub fn from_arg(s: &str) -> CaBundle {
        if s.contains("-----BEGIN") {
            CaBundle::Pem(s.to_owned())
        } else {
            CaBundle::Path(PathBuf::from(s))
        }
    }
}

#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// A wheel of this project (or a folder's wheel per platform, found beside it) to install in
    /// the image; else `imagespec-build==<this version>` from the index. See [`crate::runtime`].
    pub imagespec_wheel: Option<PathBuf>,
    pub ca_bundle: Option<CaBundle>,
    /// Whether the engine runs BuildKit (secret, cache and bind mounts). Without it secrets are
    /// refused and caches are lost.
    pub buildkit: bool,
    /// The engine's name, for the `dev.imagespec.engine` label only.
    pub engine: String,
    /// For LOADED_MODULES specs: the files of the modules imported now (as for the tag).
    pub loaded_modules: Option<Vec<PathBuf>>,
    /// Images built for a flytekit spec (the flytekit bridge): tag-scheme name
    /// (`registry/name:tag`) → flytekit's id of that spec. Such an image carries flytekit's id in
    /// `_F_IMG_ID` (what flytekit's `is_container()` reads) and ours in `IMAGESPEC_IMG_ID`; see
    /// [`image_id_env`]. Neither enters the tag.
    pub flytekit_ids: BTreeMap<String, String>,
}

impl BuildOptions {
    /// flytekit's id of the spec `image` is built for, when it is built for one.
    pub fn flytekit_id(&self, image: &str) -> Option<&str> {
        self.flytekit_ids.get(image).map(String::as_str)
    }
}

/// The variable that holds imagespec's id in an image whose `_F_IMG_ID` holds flytekit's.
pub const OWN_ID_VAR: &str = "IMAGESPEC_IMG_ID";

/// The id variables an image with imagespec id `id` ends its environment with (`_F_IMG_ID`
/// last): `_F_IMG_ID=<id>`; built for a flytekit spec, `IMAGESPEC_IMG_ID=<id>:<flytekit's id>`
/// and `_F_IMG_ID=<flytekit's id>`, so that both `is_container()`s answer True inside. Our id is
/// paired with the `_F_IMG_ID` it goes with: an image built on top of this one sets its own
/// `_F_IMG_ID` and inherits `IMAGESPEC_IMG_ID`, which then no longer counts. Every engine
/// (Dockerfile, envd, native) writes exactly these.
pub fn image_id_env(id: &str, flytekit_id: Option<&str>) -> Vec<(&'static str, String)> {
    match flytekit_id {
        Some(fk) => vec![(OWN_ID_VAR, format!("{id}:{fk}")), (IMAGE_ID_VAR, fk.to_owned())],
        None => vec![(IMAGE_ID_VAR, id.to_owned())],
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            imagespec_wheel: None,
            ca_bundle: None,
            buildkit: true,
            engine: "docker".to_owned(),
            loaded_modules: None,
            flytekit_ids: BTreeMap::new(),
        }
    }
}
