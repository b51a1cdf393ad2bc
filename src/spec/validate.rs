//! RawSpec → Spec: one pass over the fields, every check giving a user a clear message naming
//! the field. What flytekit refuses when a spec is made is refused at once, in its words; any
//! other value no image can be made from is kept as given and recorded (`Spec::usable`). The
//! checks are in `checks.rs` (single values) and `naming.rs` (the fields that name the image).

use super::checks::{
    check_copy_entry, check_copy_mode, check_dotted_version, check_env, check_finite, check_items,
    check_line, check_map_text, check_path, check_platform, check_python_exec, check_python_version,
    check_secret_mount, check_text, check_url, check_word, default_platform,
};
use super::naming::{check_base_name, check_name, check_registry, check_registry_words, check_tag_format};
use super::project::InstallMode;
use super::{check_apt_package, BaseImage, Context, CopyMode, Problem, RawBase, RawSpec, Spec};
use crate::error::{Error, Result};
use std::path::PathBuf;

pub const DEFAULT_NAME: &str = "imagespec";

pub fn from_raw(raw: RawSpec, ctx: &Context) -> Result<Spec> {
    let RawSpec {
        name,
        python_version,
        builder,
        source_root,
        source_copy_mode,
        env,
        registry,
        packages,
        conda_packages,
        conda_channels,
        requirements,
        apt_packages,
        cuda,
        cudnn,
        base_image,
        platform,
        pip_index,
        pip_extra_index_url,
        pip_secret_mounts,
        pip_extra_args,
        registry_config,
        entrypoint,
        commands,
        tag_format,
        copy,
        python_exec,
        runtime_packages,
        builder_options,
        builder_config,
        project,
        project_install_mode,
        overrides,
        constraints,
        force_push,
    } = raw;

    // flytekit reads an empty registry as none (`if self.registry:`, image_spec.py:120 at v1.16.24).
    let registry = registry.filter(|r| !r.is_empty());
    // flytekit refuses these when the spec is made: so do we, at once, in its words.
    let registry = registry
        .map(|r| check_registry_words(&r.to_lowercase()).map(|()| r.to_lowercase()))
        .transpose()?;
    let source_copy_mode = source_copy_mode.map(|m| check_copy_mode(&m)).transpose()?;
    let builder_options = builder_options.unwrap_or_default();
    let builder_config = builder_config.unwrap_or_default();
    check_finite("builder_options", &builder_options)?;
    check_finite("builder_config", &builder_config)?;

    // The rest flytekit takes as given, and so do we; a value no image can be made from is kept
    // as given and reported by every use that needs an image (tag, name, build): `Spec::usable`.
    let mut problems = Problems::default();
    let registry = registry.map(|r| problems.keep(check_registry(&r), r));
    let base_image = match base_image {
        Some(RawBase::Name(n)) => Some(BaseImage::Name(problems.keep(check_base_name(&n), n))),
        Some(b) => Some(check_base_image(b, ctx)?),
        None => None,
    };
    let project = project.map(|p| lexical_path("project", p, ctx, &mut problems));
    let python_version = python_version.map(|v| problems.keep(check_python_version(&v), v));
    let python_version = match (&project, python_version) {
        // A project's requires-python chooses the version, or checks the one given.
        (Some(p), v) if v.is_some() || base_image.is_none() => {
            let chosen = project_python(p, v.as_deref(), &ctx.python_version);
            Some(match (chosen, v) {
                (Ok(chosen), _) => chosen,
                (Err(e), v) => problems.keep(Err(e), v.unwrap_or_else(|| ctx.python_version.clone())),
            })
        }
        (_, Some(v)) => Some(v),
        // Without a base image the default base is python:X.Y-slim for the evaluating interpreter;
        // with one, None means "the base image's own Python", which is the same inside and out.
        (_, None) if base_image.is_none() => Some(ctx.python_version.clone()),
        (_, None) => None,
    };
    let platform = match platform {
        Some(p) => problems.keep(check_platform(&p), p),
        None => default_platform(registry.as_deref(), &ctx.host_arch).to_owned(),
    };
    let copy = copy
        .unwrap_or_default()
        .into_iter()
        .map(|c| problems.keep(check_copy_entry(&c), c))
        .collect();
    let name = name.as_deref().unwrap_or(DEFAULT_NAME).to_lowercase();
    problems.keep(check_name(&name, registry.as_deref(), tag_format.as_deref()), ());
    let path = |field: &str, p: String, problems: &mut Problems| lexical_path(field, p, ctx, problems);
    let source_root = source_root.map(|p| path("source_root", p, &mut problems));
    let requirements = requirements.map(|p| path("requirements", p, &mut problems));
    let registry_config = registry_config.map(|p| path("registry_config", p, &mut problems));
    // A source root without a mode copies the loaded modules' files, as in flytekit
    // (flytekit/image_spec/image_spec.py:143-144 at v1.16.24).
    let source_copy_mode = match (&source_root, source_copy_mode) {
        (Some(_), None) => Some(CopyMode::LoadedModules),
        (_, mode) => mode,
    };
    problems.keep(check_map_text("builder_options", &builder_options), ());
    problems.keep(check_map_text("builder_config", &builder_config), ());
    let mut items = |field: &str, list: Option<Vec<String>>, check: fn(&str, &str) -> Result<String>| {
        let list = list.unwrap_or_default();
        problems.keep(check_items(field, Some(list.clone()), check), list)
    };
    let packages = items("packages", packages, check_line);
    let conda_packages = items("conda_packages", conda_packages, check_line);
    let conda_channels = items("conda_channels", conda_channels, check_line);
    let apt_packages = items("apt_packages", apt_packages, check_apt_package);
    let pip_extra_index_url = items("pip_extra_index_url", pip_extra_index_url, check_url);
    let commands = items("commands", commands, check_text);
    let runtime_packages = items("runtime_packages", runtime_packages, check_line);
    let overrides = items("overrides", overrides, check_requirement);
    let constraints = items("constraints", constraints, check_requirement);
    let entrypoint = entrypoint.map(|e| items("entrypoint", Some(e), check_text));
    let pip_secret_mounts = pip_secret_mounts
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, m)| problems.keep(check_secret_mount(i, m.clone()), m))
        .collect();
    let keep_opt = |problems: &mut Problems, v: Option<String>, check: &dyn Fn(&str) -> Result<String>| {
        v.map(|v| problems.keep(check(&v), v))
    };
    let builder = keep_opt(&mut problems, builder, &|b| check_word("builder", b));
    let cuda = keep_opt(&mut problems, cuda, &|v| check_dotted_version("cuda", v));
    let cudnn = keep_opt(&mut problems, cudnn, &|v| check_dotted_version("cudnn", v));
    let pip_index = keep_opt(&mut problems, pip_index, &|u| check_url("pip_index", u));
    let pip_extra_args = keep_opt(&mut problems, pip_extra_args, &|a| {
        check_line("pip_extra_args", a)
    });
    let tag_format = keep_opt(&mut problems, tag_format, &check_tag_format);
    let python_exec = keep_opt(&mut problems, python_exec, &check_python_exec);
    let project_install_mode = project_install_mode.and_then(|m| {
        let mode = InstallMode::parse(&m).and_then(|mode| match project {
            Some(_) => Ok(mode),
            None => Err(Error::spec(
                "project_install_mode",
                "applies to a project; give `project` too, or leave the mode out",
            )),
        });
        match mode {
            // The default, kept as unset: the same image whether it is written or not.
            Ok(InstallMode::DependenciesOnly) => None,
            Ok(mode) => Some(mode),
            Err(e) => problems.keep(Err(e), None),
        }
    });
    let env = env.unwrap_or_default();
    let env = problems.keep(check_env(env.clone()), env);

    Ok(Spec {
        name,
        python_version,
        builder,
        source_root,
        source_copy_mode,
        env,
        registry,
        packages,
        conda_packages,
        conda_channels,
        requirements,
        apt_packages,
        cuda,
        cudnn,
        base_image,
        platform,
        pip_index,
        pip_extra_index_url,
        pip_secret_mounts,
        pip_extra_args,
        registry_config,
        entrypoint,
        commands,
        tag_format,
        copy,
        copy_root: ctx.base_dir.clone(),
        python_exec,
        runtime_packages,
        builder_options,
        builder_config,
        project,
        project_install_mode,
        overrides,
        constraints,
        force_push,
        problems: problems.0,
    })
}

/// A path field made absolute against the spec's folder, lexically (it need not exist here).
fn lexical_path(field: &str, p: String, ctx: &Context, problems: &mut Problems) -> PathBuf {
    let lexical = std::path::absolute(ctx.base_dir.join(&p)).unwrap_or_else(|_| PathBuf::from(&p));
    problems.keep(check_path(field, &p, &ctx.base_dir), lexical)
}

/// The `python_version` a project's `requires-python` allows: `given` when it fits, else the
/// evaluating interpreter's, else the oldest that fits.
fn project_python(project: &std::path::Path, given: Option<&str>, current: &str) -> Result<String> {
    // A project that cannot be read is reported when its files are (tag, build), as a missing
    // requirements file is: here it only leaves the version unchosen.
    let (Ok(requires), Ok(root)) = (
        super::project::requires_python(project),
        super::project::root_of(project),
    ) else {
        return Ok(given.unwrap_or(current).to_owned());
    };
    let pyproject = root.join("pyproject.toml");
    super::script::python_version(
        requires.as_deref(),
        given,
        current,
        &pyproject.display().to_string(),
    )
}

/// An `overrides` or `constraints` entry: one line naming a package.
fn check_requirement(field: &str, s: &str) -> Result<String> {
    check_line(field, s)?;
    if super::requirement::name_of(s).is_none() {
        return Err(Error::spec(
            field,
            format!("{s:?} names no package; write a requirement such as \"six==1.16.0\""),
        ));
    }
    Ok(s.to_owned())
}

/// The values of a spec that no image can be made from, as they are found.
#[derive(Default)]
struct Problems(Vec<Problem>);
impl Problems {
    /// The checked value, or (when the check fails) the value as given, the failure kept.
    fn keep<T>(&mut self, checked: Result<T>, given: T) -> T {
        match checked {
            Ok(v) => v,
            Err(e) => {
                let field = e.field().unwrap_or("spec").to_owned();
                let message = match e {
                    Error::Spec { message, .. } => message,
                    other => other.to_string(),
                };
                self.0.push(Problem { field, message });
                given
            }
        }
    }
}

fn check_base_image(b: RawBase, ctx: &Context) -> Result<BaseImage> {
    match b {
        RawBase::Name(n) => check_base_name(&n).map(BaseImage::Name),
        RawBase::Raw(raw) => from_raw(*raw, ctx)
            .map(|s| BaseImage::Spec(Box::new(s)))
            .map_err(|e| prefix_field("base_image", e)),
        RawBase::Built(spec) => Ok(BaseImage::Spec(spec)),
    }
}

/// The same error, its field put under `prefix` (`base_image.packages[0]`).
pub fn prefix_field(prefix: &str, e: Error) -> Error {
    match e {
        Error::Spec { field, message } => Error::spec(format!("{prefix}.{field}"), message),
        Error::Invalid { field, message } => {
            let message = match message.strip_prefix(field.as_str()) {
                Some(rest) => format!("{prefix}.{field}{rest}"),
                None => message,
            };
            Error::invalid(format!("{prefix}.{field}"), message)
        }
        other => other,
    }
}

/// `python_version` given as a number (`yaml.safe_load` reads an unquoted `3.11` as a float): its
/// shortest decimal text, and a warning when that text is a guess. The one guess: `3.1`, which
/// is how YAML reads an unquoted `3.10`; Python 3.1 has no base image or installer anyone can
/// build with, so it is read as "3.10".
pub fn python_version_of_number(number: f64) -> (String, Option<String>) {
    let text = if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number:?}")
    };
    if text == "3.1" {
        let warning =
            "python_version 3.1 is a number, not a string: YAML reads an unquoted 3.10 as 3.1, and \
                       Python 3.1 cannot be built, so it is read as '3.10'; quote the version ('3.10')";
        return ("3.10".to_owned(), Some(warning.to_owned()));
    }
    (text, None)
}
