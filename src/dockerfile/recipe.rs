//! Everything the Dockerfile and the context are derived from, checked once.

use super::checks::{check_conda_channel, check_conda_package, check_mount_target};
use super::{check_requirement, secret_mount_id, BuildOptions};
use crate::error::{Error, Result};
use crate::identity::{self, SelectedFile};
use crate::redact::{has_redacted_userinfo, has_userinfo, redact_userinfo};
use crate::reference::Reference;
use crate::runtime::{self, Runtime};
use crate::spec::project::{self, InstallMode, ProjectKind};
use crate::spec::{BaseImage, Spec};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqKind {
    /// A plain requirements file: `pip install -r`.
    Plain,
    /// `uv.lock` + `pyproject.toml`: `uv export`, then `pip install -r` with hashes.
    Uv,
    /// `poetry.lock` + `pyproject.toml`: `poetry export`, then `pip install -r` with hashes.
    Poetry,
}

/// A `project`: what its install step needs.
#[derive(Clone, Debug)]
pub(crate) struct ProjectRecipe {
    pub kind: ProjectKind,
    /// The project's folder among the context's `imagespec/project/` files ("." for their root).
    pub root_rel: String,
    /// The folder on this machine (the native builder installs from it).
    pub root: std::path::PathBuf,
    pub install_project: bool,
}

/// Index settings and extra arguments for pip, split into what may be shown and what is secret.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pip {
    /// `pip_index` when it carries no credentials ("" if unset or secret).
    pub index: String,
    /// `pip_extra_index_url`, space-separated, when none carries credentials.
    pub extra_index: String,
    /// A pip config file holding the index URLs when any of them carries credentials.
    pub conf_secret: Option<String>,
    /// `pip_extra_args`, split like a shell would, when it carries no credentials.
    pub args: Vec<String>,
    /// The same, one per line, when it does.
    pub args_secret: Option<String>,
    /// `packages` whose URL carries no credentials: the install's arguments.
    pub packages: Vec<String>,
    /// `runtime_packages` whose URL carries no credentials.
    pub runtime_packages: Vec<String>,
    /// The entries of both whose URL carries credentials, one per line: they reach the install
    /// as a build secret (or a private file), never as arguments or Dockerfile text.
    pub reqs_secret: Option<String>,
    /// The `packages` installed in steps of their own before the install of everything
    /// ([`super::groups`]): heavy distributions, then the declared groups.
    pub groups: Vec<Vec<String>>,
}

/// One of `pip_secret_mounts`.
#[derive(Clone, Debug)]
pub(crate) struct SecretMount {
    pub id: String,
    /// As given (resolved against the spec's folder when the context is written).
    pub source: String,
    pub target: String,
}

/// Where a `pip_secret_mounts` target is seen by the install step: a relative one is relative to
/// /root, the working folder of flytekit's install steps (flytekit/image_spec/default_builder.py:26).
pub(crate) fn mount_target(target: &str) -> String {
    if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("/root/{}", target.trim_start_matches("./"))
    }
}

/// One spec's recipe: the base, the files, the pip settings, the secrets and the imagespec runtime,
/// checked once. The Dockerfile, the context and the native builder are all made from it.
pub(crate) struct Recipe {
    pub from: String,
    pub id: String,
    pub tag: String,
    pub image: String,
    /// The tag of the image without its source layer ([`identity::deps_tag`]).
    pub deps_tag: String,
    pub selection: BTreeMap<String, SelectedFile>,
    pub requirements: Option<ReqKind>,
    pub project: Option<ProjectRecipe>,
    /// The imagespec the image gets, for each of the spec's platforms in its order.
    pub runtimes: Vec<(String, Runtime)>,
    /// The first platform's, which a Dockerfile installs (one wheel serves one platform).
    pub runtime: Runtime,
    pub pip: Pip,
    pub secret_mounts: Vec<SecretMount>,
    pub has_copy: bool,
    /// `constraints` are written to the context's `imagespec/constraints.txt`.
    pub has_constraints: bool,
    pub has_source: bool,
    /// `builder_config.commands_need_source`: copy the source before `commands`.
    pub source_first: bool,
}

impl Recipe {
    pub fn new(spec: &Spec, options: &BuildOptions) -> Result<Recipe> {
        check_values(spec)?;
        let from = base_of(spec, options)?;
        let loaded = options.loaded_modules.as_deref();
        let selection = identity::selected_files(spec, loaded)?;
        if let Some(f) = selection
            .values()
            .find(|f| matches!(f.file.kind, crate::source::FileKind::Missing))
        {
            return Err(identity::missing_file(f));
        }
        let tags = identity::tag_inputs_of(spec, loaded, &selection)?;
        let requirements =
            spec.requirements
                .as_deref()
                .map(|p| match p.file_name().and_then(|n| n.to_str()) {
                    Some("uv.lock") => ReqKind::Uv,
                    Some("poetry.lock") => ReqKind::Poetry,
                    _ => ReqKind::Plain,
                });
        let project = match &spec.project {
            None => None,
            Some(path) => {
                let project = project::read(path)?;
                let layout = identity::project_layout(spec, &project)?;
                Some(ProjectRecipe {
                    kind: project.kind,
                    root_rel: layout.root_rel,
                    root: project.root,
                    install_project: spec.project_install_mode == Some(InstallMode::InstallProject),
                })
            }
        };
        let runtimes = runtimes_of(spec, options)?;
        let runtime = runtimes.first().map_or(Runtime::Off, |(_, r)| r.clone());
        let pip = pip_of(spec)?;
        let secret_mounts = spec
            .pip_secret_mounts
            .iter()
            .enumerate()
            .map(|(i, (source, target))| {
                let target = mount_target(target);
                check_mount_target(&format!("pip_secret_mounts[{i}]"), &target)?;
                Ok(SecretMount {
                    id: secret_mount_id(i),
                    source: source.clone(),
                    target,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let source_first = match spec.builder_config.get("commands_need_source") {
            None => false,
            Some(crate::value::Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::spec(
                    "builder_config.commands_need_source",
                    "must be true or false",
                ))
            }
        };
        let recipe = Recipe {
            from,
            image: format!("{}:{}", spec.repository(), tags.tag),
            deps_tag: identity::deps_tag(&tags, &runtime.describe()),
            id: tags.id,
            tag: tags.tag,
            has_copy: selection.keys().any(|k| k.starts_with("copy/")),
            has_constraints: !spec.constraints.is_empty(),
            has_source: selection.keys().any(|k| k.starts_with("source/")),
            selection,
            requirements,
            project,
            runtimes,
            runtime,
            pip,
            secret_mounts,
            source_first,
        };
        if !options.buildkit {
            recipe.refuse_secrets_without_buildkit(options)?;
        }
        Ok(recipe)
    }

    fn refuse_secrets_without_buildkit(&self, options: &BuildOptions) -> Result<()> {
        let what = if options.ca_bundle.is_some() {
            Some("an extra CA bundle")
        } else if !self.secret_mounts.is_empty() {
            Some("pip_secret_mounts")
        } else if self.pip.conf_secret.is_some() || self.pip.args_secret.is_some() {
            Some("index URLs with credentials")
        } else if self.pip.reqs_secret.is_some() {
            Some("packages or runtime_packages with credentials in their URL")
        } else if let Some(f) = self.requirements_with_credentials() {
            return Err(Error::build(format!(
                "requirements: {} holds a URL with credentials, and the engine {:?} has no BuildKit, so the \
                 file would stay in a layer of the image; use an engine with BuildKit (which mounts the file \
                 for the install step only), or take the credentials out of the file (pip_index, \
                 pip_extra_index_url, or a netrc given as pip_secret_mounts)",
                f.path.display(),
                options.engine
            )));
        } else {
            None
        };
        match what {
            Some(what) => Err(Error::build(format!(
                "{what} can only reach a build as a BuildKit secret, and the engine {:?} has no BuildKit; \
                 use an engine with BuildKit (docker with BuildKit or buildx, buildah, podman) rather than \
                 baking secrets into the image",
                options.engine
            ))),
            None => Ok(()),
        }
    }

    /// The first requirements file (or its pyproject.toml) with a URL credential in it. Without
    /// BuildKit the files are copied into a layer, where a credential would stay.
    fn requirements_with_credentials(&self) -> Option<&SelectedFile> {
        let project_file = |k: &str| {
            k.starts_with("project/")
                && ["pyproject.toml", "uv.lock", "poetry.lock"]
                    .iter()
                    .any(|n| k.ends_with(&format!("/{n}")) || k == format!("project/{n}"))
        };
        self.selection.values().find(|f| {
            (f.key.starts_with("requirements/") || project_file(&f.key))
                && std::fs::read(&f.path).is_ok_and(|b| has_userinfo(&String::from_utf8_lossy(&b)))
        })
    }

    /// The wheel the context carries, with its file name.
    pub fn wheel(&self) -> Option<(&Path, &str)> {
        match &self.runtime {
            Runtime::Wheel { path, name } => Some((path.as_path(), name.as_str())),
            _ => None,
        }
    }

    /// Whether the context has an `imagespec/` folder (requirements files or a wheel).
    pub fn has_imagespec_dir(&self) -> bool {
        self.requirements.is_some()
            || self.project.is_some()
            || self.has_constraints
            || self.wheel().is_some()
    }
}

fn check_values(spec: &Spec) -> Result<()> {
    for (field, items) in [
        ("packages", &spec.packages),
        ("runtime_packages", &spec.runtime_packages),
    ] {
        for (i, p) in items.iter().enumerate() {
            check_requirement(&format!("{field}[{i}]"), p)?;
            runtime::check_package(&format!("{field}[{i}]"), p)?;
        }
    }
    check_no_redacted_credentials(spec)?;
    for (i, o) in spec.overrides.iter().enumerate() {
        check_requirement(&format!("overrides[{i}]"), o)?;
        if has_userinfo(o) {
            return Err(Error::spec(
                format!("overrides[{i}]"),
                "carries credentials in its URL, which an override step would show; take them out (give the \
                 index with pip_index, or a netrc as pip_secret_mounts)",
            ));
        }
    }
    for (i, c) in spec.constraints.iter().enumerate() {
        check_requirement(&format!("constraints[{i}]"), c)?;
        if c.contains('@') {
            return Err(Error::spec(
                format!("constraints[{i}]"),
                format!(
                    "{:?} names a URL; a constraint only bounds versions (\"six<2\"): give a URL in packages or \
                     overrides",
                    redact_userinfo(c)
                ),
            ));
        }
    }
    for (i, p) in spec.conda_packages.iter().enumerate() {
        check_conda_package(&format!("conda_packages[{i}]"), p)?;
    }
    for (i, c) in spec.conda_channels.iter().enumerate() {
        check_conda_channel(&format!("conda_channels[{i}]"), c)?;
    }
    if !spec.conda_channels.is_empty() && spec.conda_packages.is_empty() {
        return Err(Error::spec(
            "conda_channels",
            "is set without conda_packages; add the packages to install from them",
        ));
    }
    for (k, v) in &spec.env {
        if k == super::IMAGE_ID_VAR || k == super::OWN_ID_VAR {
            return Err(Error::spec(
                "env",
                format!("{k} is set by imagespec to the image's id; remove it"),
            ));
        }
        if v.contains(['\n', '\r']) {
            return Err(Error::spec(
                format!("env[{k:?}]"),
                "contains a line break, which a Dockerfile ENV value cannot hold; remove it",
            ));
        }
    }
    Ok(())
}

/// A URL whose credentials read `***` comes from text imagespec wrote with them left out
/// (`to_yaml`, `repr`): an install with it would fail with an index's "401 Unauthorized".
fn check_no_redacted_credentials(spec: &Spec) -> Result<()> {
    let lists = [
        ("packages", &spec.packages),
        ("runtime_packages", &spec.runtime_packages),
        ("pip_extra_index_url", &spec.pip_extra_index_url),
    ];
    let listed = lists.iter().flat_map(|(field, items)| {
        items
            .iter()
            .enumerate()
            .map(move |(i, v)| (format!("{field}[{i}]"), v))
    });
    let single = [
        ("pip_index", &spec.pip_index),
        ("pip_extra_args", &spec.pip_extra_args),
    ]
    .into_iter()
    .filter_map(|(field, v)| v.as_ref().map(|v| (field.to_owned(), v)));
    for (field, value) in listed.chain(single) {
        if has_redacted_userinfo(value) {
            return Err(Error::spec(
                field,
                "has a URL whose credentials were left out (`***`, as to_yaml and repr write them); give the \
                 credentials again, or keep them out of the spec: a netrc file given as pip_secret_mounts \
                 (e.g. [(\"~/.netrc\", \"/root/.netrc\")]), which the native builder reads from ~/.netrc",
            ));
        }
    }
    Ok(())
}

/// The `FROM` reference: the base spec's full name, the base image as given, or the default.
fn base_of(spec: &Spec, options: &BuildOptions) -> Result<String> {
    let from = match &spec.base_image {
        Some(BaseImage::Spec(base)) => identity::image_name(base, options.loaded_modules.as_deref())?,
        Some(BaseImage::Name(name)) => name.clone(),
        None => {
            if spec.cuda.is_some() || spec.cudnn.is_some() {
                return Err(Error::spec(
                    if spec.cuda.is_some() { "cuda" } else { "cudnn" },
                    "no default CUDA base image is chosen for you: set base_image to a CUDA image that has \
                     Python (e.g. an nvidia/cuda runtime image with apt_packages=['python3', 'python3-venv']), \
                     or install CUDA libraries from PyPI (torch and jax wheels bring their own)",
                ));
            }
            let version = spec.python_version.as_deref().unwrap_or("3");
            format!("python:{version}-slim")
        }
    };
    // The strict reference grammar keeps quotes, '$' and spaces out of the FROM line.
    Reference::parse(&from).map_err(|e| Error::spec("base_image", e.to_string()))?;
    Ok(from)
}

/// The runtime of every platform of the spec, chosen before anything is built: a platform no wheel
/// fits fails here, naming it. A Dockerfile installs one wheel, so there a wheel serves one
/// platform; the native builder installs each platform's own.
fn runtimes_of(spec: &Spec, options: &BuildOptions) -> Result<Vec<(String, Runtime)>> {
    let chosen = spec
        .platform
        .split(',')
        .map(|p| {
            Ok((
                p.to_owned(),
                runtime::choose(spec, options.imagespec_wheel.as_deref(), p)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let wheels = chosen.iter().any(|(_, r)| matches!(r, Runtime::Wheel { .. }));
    if chosen.len() > 1 && wheels && options.engine != "native" {
        return Err(Error::build(format!(
            "a multi-platform Dockerfile build ({}) installs imagespec from the package index only, not \
             from a wheel: build one platform per spec, or use builder=\"native\"",
            spec.platform
        )));
    }
    Ok(chosen)
}

fn pip_of(spec: &Spec) -> Result<Pip> {
    let mut pip = Pip::default();
    let urls_secret = spec.pip_index.as_deref().is_some_and(has_userinfo)
        || spec.pip_extra_index_url.iter().any(|u| has_userinfo(u));
    let extra = spec.pip_extra_index_url.join(" ");
    if urls_secret {
        let mut conf = String::from("[global]\n");
        if let Some(index) = &spec.pip_index {
            conf.push_str(&format!("index-url = {index}\n"));
        }
        if !extra.is_empty() {
            conf.push_str(&format!("extra-index-url = {extra}\n"));
        }
        pip.conf_secret = Some(conf);
    } else {
        pip.index = spec.pip_index.clone().unwrap_or_default();
        pip.extra_index = extra;
    }
    let secret: Vec<&String> = spec
        .packages
        .iter()
        .chain(&spec.runtime_packages)
        .filter(|p| has_userinfo(p))
        .collect();
    let shown = |items: &[String]| items.iter().filter(|p| !has_userinfo(p)).cloned().collect();
    pip.packages = shown(&spec.packages);
    pip.groups = super::groups::install_groups(spec)?;
    pip.runtime_packages = shown(&spec.runtime_packages);
    if !secret.is_empty() {
        pip.reqs_secret = Some(secret.iter().map(|p| format!("{p}\n")).collect());
    }
    if let Some(args) = &spec.pip_extra_args {
        let split = shlex::split(args).ok_or_else(|| {
            Error::spec(
                "pip_extra_args",
                format!(
                    "{:?} has an unclosed quote or a trailing backslash",
                    redact_userinfo(args)
                ),
            )
        })?;
        if has_userinfo(args) {
            pip.args_secret = Some(split.iter().map(|a| format!("{a}\n")).collect());
        } else {
            pip.args = split;
        }
    }
    Ok(pip)
}
