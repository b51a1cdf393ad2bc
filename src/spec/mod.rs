//! The ImageSpec model: what a user declares, validated and normalised.
//!
//! `RawSpec` is what arrives (from Python keywords or a YAML file), every field optional and
//! unchecked. `Spec::from_raw` checks it and yields the normalised `Spec` that the identity,
//! tag and build steps read.

mod checks;
mod fields;
mod files;
mod naming;
mod options;
pub mod project;
pub mod requirement;
pub mod script;
mod validate;
pub mod yaml;

use crate::redact::redact_userinfo;
use crate::reference::split_name;
use crate::value::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use checks::check_apt_package;
pub use fields::{field_hint, suggest_field, FIELDS};
pub(crate) use options::{insecure_registries, option_list, option_str, split_list};
pub use validate::DEFAULT_NAME;
pub use validate::{prefix_field, python_version_of_number};

/// Characters of `{spec_hash}`: 160 bits in lowercase base32.
pub const HASH_CHARS: usize = 32;

/// Which files of `source_root` end up in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CopyMode {
    /// The files of the Python modules imported from under `source_root` when the tag is computed.
    LoadedModules,
    /// Every file under `source_root` that no ignore rule excludes.
    All,
    /// No source file.
    NoCopy,
}

impl CopyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyMode::LoadedModules => "LOADED_MODULES",
            CopyMode::All => "ALL",
            CopyMode::NoCopy => "NO_COPY",
        }
    }
}

pub type Map = BTreeMap<String, Value>;

/// `base_image` as given: a reference string, a nested spec (YAML), or a spec already built (Python).
#[derive(Clone, Debug, PartialEq)]
pub enum RawBase {
    Name(String),
    Raw(Box<RawSpec>),
    Built(Box<Spec>),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawSpec {
    pub name: Option<String>,
    pub python_version: Option<String>,
    pub builder: Option<String>,
    pub source_root: Option<String>,
    pub source_copy_mode: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub registry: Option<String>,
    pub packages: Option<Vec<String>>,
    pub conda_packages: Option<Vec<String>>,
    pub conda_channels: Option<Vec<String>>,
    pub requirements: Option<String>,
    pub apt_packages: Option<Vec<String>>,
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub base_image: Option<RawBase>,
    pub platform: Option<String>,
    pub pip_index: Option<String>,
    pub pip_extra_index_url: Option<Vec<String>>,
    pub pip_secret_mounts: Option<Vec<(String, String)>>,
    pub pip_extra_args: Option<String>,
    pub registry_config: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub commands: Option<Vec<String>>,
    pub tag_format: Option<String>,
    pub copy: Option<Vec<String>>,
    pub python_exec: Option<String>,
    pub runtime_packages: Option<Vec<String>>,
    pub builder_options: Option<Map>,
    pub builder_config: Option<Map>,
    pub project: Option<String>,
    pub project_install_mode: Option<String>,
    pub overrides: Option<Vec<String>>,
    pub constraints: Option<Vec<String>>,
    pub force_push: bool,
}

/// Facts about where a spec is evaluated that its defaults depend on.
#[derive(Clone, Debug)]
pub struct Context {
    /// Relative paths (source_root, requirements, registry_config, copy) are resolved against it.
    pub base_dir: PathBuf,
    /// `X.Y` of the interpreter evaluating the spec: the default `python_version`.
    pub python_version: String,
    /// `std::env::consts::ARCH` of the host: arm64 hosts default to arm64 for loopback registries.
    pub host_arch: String,
}

impl Context {
    pub fn here(python_version: impl Into<String>) -> std::io::Result<Self> {
        Ok(Context {
            base_dir: std::env::current_dir()?,
            python_version: python_version.into(),
            host_arch: std::env::consts::ARCH.to_owned(),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum BaseImage {
    Name(String),
    Spec(Box<Spec>),
}

/// A validated, normalised spec. Empty lists and maps stand for "not set".
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    /// None only when a `base_image` is given and its own Python is to be used.
    pub python_version: Option<String>,
    pub builder: Option<String>,
    /// Absolute; only whether it is set enters the id, never the path.
    pub source_root: Option<PathBuf>,
    /// The mode as given (None: ALL when `source_root` is set).
    pub source_copy_mode: Option<CopyMode>,
    pub env: BTreeMap<String, String>,
    pub registry: Option<String>,
    pub packages: Vec<String>,
    pub conda_packages: Vec<String>,
    pub conda_channels: Vec<String>,
    /// Absolute; only its file name enters the id, its content enters the tag.
    pub requirements: Option<PathBuf>,
    pub apt_packages: Vec<String>,
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub base_image: Option<BaseImage>,
    /// Comma-separated `os/arch[/variant]` list, as docker's `--platform` takes it.
    pub platform: String,
    pub pip_index: Option<String>,
    pub pip_extra_index_url: Vec<String>,
    pub pip_secret_mounts: Vec<(String, String)>,
    pub pip_extra_args: Option<String>,
    pub registry_config: Option<PathBuf>,
    /// None keeps the base image's entrypoint; Some(empty) clears it.
    pub entrypoint: Option<Vec<String>>,
    pub commands: Vec<String>,
    pub tag_format: Option<String>,
    /// POSIX paths relative to `copy_root`.
    pub copy: Vec<String>,
    /// The folder `copy` entries are relative to (where the spec was evaluated).
    pub copy_root: PathBuf,
    pub python_exec: Option<String>,
    pub runtime_packages: Vec<String>,
    pub builder_options: Map,
    pub builder_config: Map,
    /// Absolute: a uv or poetry project's folder (or its pyproject.toml); its lock and local
    /// packages enter the tag as files, the path never does.
    pub project: Option<PathBuf>,
    /// None: not given (the locked dependencies only).
    pub project_install_mode: Option<project::InstallMode>,
    /// Requirements that replace every other requirement on the same package (uv's
    /// `--override`).
    pub overrides: Vec<String>,
    /// Requirements that bound versions without asking for the package (pip's and uv's `-c`).
    pub constraints: Vec<String>,
    pub force_push: bool,
    /// Values taken as given (as flytekit takes them) that no image can be made from: the spec
    /// has an id and converts, but cannot be tagged, named or built (`usable`).
    pub problems: Vec<Problem>,
}

/// A value of a spec that no image can be made from, found when the spec was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Spec {
    pub fn from_raw(raw: RawSpec, ctx: &Context) -> crate::Result<Spec> {
        validate::from_raw(raw, ctx)
    }

    /// The copy mode in effect: LOADED_MODULES when a source root is set and no mode is (as in
    /// flytekit), NO_COPY without a root.
    pub fn effective_copy_mode(&self) -> CopyMode {
        match (&self.source_root, self.source_copy_mode) {
            (None, _) => CopyMode::NoCopy,
            (Some(_), None) => CopyMode::LoadedModules,
            (Some(_), Some(mode)) => mode,
        }
    }

    /// Ok when an image can be made from this spec (and its base specs); else every problem,
    /// first one's field named.
    pub fn usable(&self) -> crate::Result<()> {
        if let Some(BaseImage::Spec(base)) = &self.base_image {
            base.usable().map_err(|e| prefix_field("base_image", e))?;
        }
        let Some(first) = self.problems.first() else {
            return Ok(());
        };
        let mut message = first.message.clone();
        for p in &self.problems[1..] {
            message.push_str(&format!("; {}: {}", p.field, p.message));
        }
        message.push_str(
            " (the spec can be made with this value, as in flytekit, but no image can be built from it)",
        );
        Err(crate::Error::spec(first.field.clone(), message))
    }

    /// `registry/path` without a tag; a registry written in `name` counts as `registry`.
    pub fn repository(&self) -> String {
        let parts = split_name(&self.name);
        match parts.registry.or(self.registry.as_deref()) {
            Some(r) => format!("{r}/{}", parts.path),
            None => parts.path.to_owned(),
        }
    }

    /// The tag written in `name` (`repo:0.1.5`), which replaces the computed one.
    pub fn name_tag(&self) -> Option<&str> {
        split_name(&self.name).tag
    }

    /// Each `copy` entry as (the folder it is read relative to, the path below it), which is also
    /// where it lands under /root. A relative entry is below the spec's folder; an absolute one
    /// inside that folder is the same as its relative spelling; any other absolute one lands at
    /// /root/<its path>.
    pub fn copy_sources(&self) -> Vec<(PathBuf, String)> {
        self.copy
            .iter()
            .map(|entry| match entry.strip_prefix('/') {
                None => (self.copy_root.clone(), entry.clone()),
                Some(rooted) => match Path::new(entry).strip_prefix(&self.copy_root) {
                    Ok(rel) if !rel.as_os_str().is_empty() => {
                        (self.copy_root.clone(), rel.to_string_lossy().into_owned())
                    }
                    _ => (PathBuf::from("/"), rooted.to_owned()),
                },
            })
            .collect()
    }

    /// The fields as a map with the constructor's keys, leaving out those not set.
    /// With `redact`, credentials inside URLs are replaced by `***`.
    pub fn to_map(&self, redact: bool) -> Map {
        let url = |s: &str| if redact { redact_userinfo(s) } else { s.to_owned() };
        let path = |p: &Path| Value::str(p.to_string_lossy());
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            if !is_unset(k, &v) {
                m.insert(k.to_owned(), v);
            }
        };
        put("name", Value::str(&self.name));
        put("python_version", Value::opt_str(self.python_version.as_deref()));
        put("builder", Value::opt_str(self.builder.as_deref()));
        put(
            "source_root",
            self.source_root.as_deref().map_or(Value::Null, path),
        );
        put(
            "source_copy_mode",
            self.source_copy_mode
                .map_or(Value::Null, |m| Value::str(m.as_str())),
        );
        put(
            "env",
            Value::Map(self.env.iter().map(|(k, v)| (k.clone(), Value::str(v))).collect()),
        );
        put("registry", Value::opt_str(self.registry.as_deref()));
        let urls = |items: &[String]| Value::List(items.iter().map(|s| Value::Str(url(s))).collect());
        put("packages", urls(&self.packages));
        put("conda_packages", Value::strs(&self.conda_packages));
        put("conda_channels", Value::strs(&self.conda_channels));
        put(
            "requirements",
            self.requirements.as_deref().map_or(Value::Null, path),
        );
        put("apt_packages", Value::strs(&self.apt_packages));
        put("cuda", Value::opt_str(self.cuda.as_deref()));
        put("cudnn", Value::opt_str(self.cudnn.as_deref()));
        put(
            "base_image",
            match &self.base_image {
                None => Value::Null,
                Some(BaseImage::Name(n)) => Value::str(n),
                Some(BaseImage::Spec(s)) => Value::Map(s.to_map(redact)),
            },
        );
        put("platform", Value::str(&self.platform));
        put(
            "pip_index",
            self.pip_index
                .as_deref()
                .map_or(Value::Null, |u| Value::Str(url(u))),
        );
        put("pip_extra_index_url", urls(&self.pip_extra_index_url));
        put(
            "pip_secret_mounts",
            Value::List(
                self.pip_secret_mounts
                    .iter()
                    .map(|(s, t)| Value::List(vec![Value::str(s), Value::str(t)]))
                    .collect(),
            ),
        );
        put(
            "pip_extra_args",
            self.pip_extra_args
                .as_deref()
                .map_or(Value::Null, |a| Value::Str(url(a))),
        );
        put(
            "registry_config",
            self.registry_config.as_deref().map_or(Value::Null, path),
        );
        put(
            "entrypoint",
            self.entrypoint.as_ref().map_or(Value::Null, |e| Value::strs(e)),
        );
        put("commands", Value::strs(&self.commands));
        put("tag_format", Value::opt_str(self.tag_format.as_deref()));
        put("copy", Value::strs(&self.copy));
        put("python_exec", Value::opt_str(self.python_exec.as_deref()));
        put("runtime_packages", urls(&self.runtime_packages));
        put("builder_options", Value::Map(self.builder_options.clone()));
        put("builder_config", Value::Map(self.builder_config.clone()));
        put("project", self.project.as_deref().map_or(Value::Null, path));
        put(
            "project_install_mode",
            self.project_install_mode
                .map_or(Value::Null, |m| Value::str(m.as_str())),
        );
        put("overrides", Value::strs(&self.overrides));
        put("constraints", Value::strs(&self.constraints));
        m
    }
}

/// Whether a field's value means "not set": null, or an empty list or map (an empty
/// `entrypoint` is set: it clears the base image's entrypoint).
pub fn is_unset(field: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::List(l) => l.is_empty() && field != "entrypoint",
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

/// A registry host that is this machine: plain HTTP (and, for buildah and podman, no TLS
/// verification) is allowed there, as docker allows it. The one rule of the registry client
/// ([`crate::reference::is_loopback`]): `localhost`, 127.0.0.0/8 and `::1` as addresses, never a
/// name that merely starts with `127.` or ends in `.localhost`.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host_port = registry.split('/').next().unwrap_or("");
    crate::reference::is_loopback(crate::reference::hostname_of(host_port))
}
