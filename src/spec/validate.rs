//! RawSpec → Spec: every check that gives a user a clear message naming the field.

use super::{BaseImage, Context, CopyMode, Problem, RawBase, RawSpec, Spec};
use crate::error::{Error, Result};
use crate::redact::redact_userinfo;
use crate::reference::{self, MAX_TAG_LEN};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    let python_version = match python_version {
        Some(v) => Some(problems.keep(check_python_version(&v), v)),
        // Without a base image the default base is python:X.Y-slim for the evaluating interpreter;
        // with one, None means "the base image's own Python", which is the same inside and out.
        None if base_image.is_none() => Some(ctx.python_version.clone()),
        None => None,
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
    let path = |field: &str, p: String, problems: &mut Problems| {
        let lexical = std::path::absolute(ctx.base_dir.join(&p)).unwrap_or_else(|_| PathBuf::from(&p));
        problems.keep(check_path(field, &p, &ctx.base_dir), lexical)
    };
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
        force_push,
        problems: problems.0,
    })
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

fn err<T>(field: &str, message: impl Into<String>) -> Result<T> {
    Err(Error::spec(field, message))
}

/// Any string: no NUL byte (it would truncate the value in every C-string consumer).
fn check_text(field: &str, s: &str) -> Result<String> {
    if s.contains('\0') {
        return err(field, "contains a NUL byte; remove it");
    }
    Ok(s.to_owned())
}

/// A one-line string: no NUL, no line break, not empty.
fn check_line(field: &str, s: &str) -> Result<String> {
    check_text(field, s)?;
    if s.contains(['\n', '\r']) {
        return err(
            field,
            format!(
                "{:?} contains a line break; give one value per line",
                redact_userinfo(s)
            ),
        );
    }
    if s.trim().is_empty() {
        return err(field, "is empty; remove the entry or give a value");
    }
    Ok(s.to_owned())
}

/// A single token such as a builder name: printable, no whitespace.
fn check_word(field: &str, s: &str) -> Result<String> {
    check_line(field, s)?;
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(field, format!("{s:?} must be one word without spaces"));
    }
    Ok(s.to_owned())
}

fn check_items(
    field: &str,
    items: Option<Vec<String>>,
    check: fn(&str, &str) -> Result<String>,
) -> Result<Vec<String>> {
    items
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| check(&format!("{field}[{i}]"), s))
        .collect()
}

fn check_path(field: &str, p: &str, base: &Path) -> Result<PathBuf> {
    check_line(field, p)?;
    // Lexical only: the path need not exist where the spec is evaluated (inside the image it may not).
    std::path::absolute(base.join(p)).or_else(|e| err(field, format!("{p:?} is not a usable path: {e}")))
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `name` as flytekit lets it be written: `[registry/]path[:tag]`. A registry there stands for
/// `registry`, a tag for the computed one; with the field that says the same thing set too, the
/// image cannot be named.
fn check_name(name: &str, registry: Option<&str>, tag_format: Option<&str>) -> Result<()> {
    check_line("name", name)?;
    if let Some(i) = name.find('@') {
        return err(
            "name",
            format!(
                "{name:?} contains a digest ({:?}); an image's digest is known only once it is built: give \
                 name[:tag]",
                &name[i..]
            ),
        );
    }
    let parts = reference::split_name(name);
    if let Some(host) = parts.registry {
        check_registry(host).map_err(|e| Error::spec("name", e.to_string()))?;
        if let Some(r) = registry {
            return err(
                "name",
                format!(
                    "{name:?} carries a registry ({host}) and registry is set too ({r:?}): keep one (the name \
                     would be {r}/{name}, which is no image reference)"
                ),
            );
        }
    }
    for part in parts.path.split('/') {
        if part.is_empty() {
            return err(
                "name",
                format!("{name:?} has an empty path part; remove the extra '/'"),
            );
        }
        if !reference::is_component(part) {
            return err(
                "name",
                format!(
                    "{name:?}: {part:?} is not a valid repository name part; use lowercase letters, digits \
                     and single '.', '_', '__' or '-' separators between them"
                ),
            );
        }
    }
    if let Some(tag) = parts.tag {
        if !reference::is_tag(tag) {
            return err(
                "name",
                format!(
                    "{name:?}: {tag:?} is not a valid tag: letters, digits, '_', '.', '-', not starting with '.' or \
                     '-', at most {MAX_TAG_LEN} characters"
                ),
            );
        }
        if let Some(fmt) = tag_format {
            return err(
                "name",
                format!(
                    "{name:?} carries a tag ({tag}) and tag_format is set too ({fmt:?}): both give the image its \
                     tag; keep one"
                ),
            );
        }
    }
    if name.len() > 255 {
        return err("name", "is longer than 255 characters");
    }
    Ok(())
}

/// flytekit's rule for `registry` (flytekit/image_spec/image_spec.py:564-570 at v1.16.24), applied when the spec
/// is made, after lowercasing: `^(localhost:\d{1,5}|([a-z\d._-]+)(:\d{1,5})?)(/[\w.-]+)*$`.
fn check_registry_words(registry: &str) -> Result<()> {
    // Python's `$` also matches before one final newline.
    let r = registry.strip_suffix('\n').unwrap_or(registry);
    let (host, path) = match r.find('/') {
        Some(i) => (&r[..i], &r[i..]),
        None => (r, ""),
    };
    let port_ok = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let host_ok = match host.split_once(':') {
        Some((h, port)) => {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && port_ok(port)
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        }
    };
    let path_ok = path.is_empty()
        || path[1..].split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
        });
    if host_ok && path_ok {
        return Ok(());
    }
    Err(Error::invalid(
        "registry",
        format!(
            "Invalid container registry name: '{registry}'.\n Expected formats:\n- 'localhost:30000' (for local \
             registries)\n- 'ghcr.io/username' (for GitHub Container Registry)\n- 'docker.io/username' (for docker \
             hub)\n"
        ),
    ))
}

fn check_registry(registry: &str) -> Result<String> {
    check_line("registry", registry)?;
    if registry.contains("://") {
        return err(
            "registry",
            format!("{registry:?} has a URL scheme; give host[:port][/namespace] (e.g. 'ghcr.io/org')"),
        );
    }
    let lowered = registry.trim_end_matches('/').to_lowercase();
    let mut parts = lowered.split('/');
    let first = parts.next().unwrap_or_default();
    // Like docker: the first part is a host when it has a '.', a ':' or is localhost.
    let is_domain = first.contains(['.', ':']) || first == "localhost";
    let rest: Vec<&str> = if is_domain {
        parts.collect()
    } else {
        lowered.split('/').collect()
    };
    if is_domain {
        let (host, port) = match first.rfind(':') {
            Some(i) if !first[i..].contains(']') => (&first[..i], Some(&first[i + 1..])),
            _ => (first, None),
        };
        if !reference::is_host(host) {
            return err(
                "registry",
                format!("{registry:?}: {host:?} is not a valid host name"),
            );
        }
        if let Some(port) = port {
            if !reference::is_port(port) {
                return err(
                    "registry",
                    format!("{registry:?}: port {port:?} is not a number from 1 to 65535"),
                );
            }
        }
    }
    for part in rest {
        if part.is_empty() {
            return err(
                "registry",
                format!("{registry:?} has an empty path part; remove the extra '/'"),
            );
        }
        if !reference::is_component(part) {
            return err(
                "registry",
                format!(
                    "{registry:?}: {part:?} is not a valid namespace; use lowercase letters, digits and \
                     single '.', '_', '__' or '-' separators"
                ),
            );
        }
    }
    Ok(lowered)
}

fn check_python_version(v: &str) -> Result<String> {
    let v = v.trim();
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric {
        return err(
            "python_version",
            format!("{v:?} is not a version like '3.11' or '3.11.4'"),
        );
    }
    Ok(v.to_owned())
}

fn check_dotted_version(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty()
        || !v
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return err(field, format!("{v:?} is not a version like '12.1' or '8'"));
    }
    Ok(v.to_owned())
}

fn check_copy_mode(m: &str) -> Result<CopyMode> {
    match m.trim().to_ascii_uppercase().as_str() {
        "ALL" => Ok(CopyMode::All),
        "LOADED_MODULES" => Ok(CopyMode::LoadedModules),
        "NO_COPY" => Ok(CopyMode::NoCopy),
        _ => err(
            "source_copy_mode",
            format!("{m:?} is not one of ALL, LOADED_MODULES, NO_COPY"),
        ),
    }
}

fn check_env(env: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    for (k, v) in &env {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return err(
                "env",
                format!("{k:?} is not a valid variable name; use letters, digits and '_', not starting with a digit"),
            );
        }
        check_text(&format!("env[{k:?}]"), v)?;
    }
    Ok(env)
}

/// A Debian package for apt-get: `name[:arch][=version|/release]` (Debian policy 5.6.1, 5.6.12).
pub fn check_apt_package(field: &str, s: &str) -> Result<String> {
    check_line(field, s)?;
    let bad = || {
        Err(Error::spec(
            field,
            format!(
                "{s:?} is not a Debian package name like 'curl', 'libssl3=3.0.11-1', 'gcc:amd64' or \
                 'git/bookworm-backports' (names: lowercase letters, digits, '+', '-', '.')"
            ),
        ))
    };
    let (rest, version) = match s.split_once('=') {
        Some((r, v)) => (r, Some(v)),
        None => (s, None),
    };
    let (rest, release) = match rest.split_once('/') {
        Some((r, rel)) if version.is_none() => (r, Some(rel)),
        Some(_) => return bad(),
        None => (rest, None),
    };
    let (name, arch) = match rest.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let name_ok =
        name.len() >= 2 && name.starts_with(lower) && name.chars().all(|c| lower(c) || "+-.".contains(c));
    let arch_ok = arch.is_none_or(|a| !a.is_empty() && a.chars().all(|c| lower(c) || c == '-'));
    let version_ok = version.is_none_or(|v| {
        v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
    });
    let release_ok = release.is_none_or(|r| {
        r.starts_with(|c: char| c.is_ascii_alphanumeric())
            && r.chars().all(|c| c.is_ascii_alphanumeric() || ".+~-".contains(c))
    });
    if name_ok && arch_ok && version_ok && release_ok {
        Ok(s.to_owned())
    } else {
        bad()
    }
}

fn check_url(field: &str, u: &str) -> Result<String> {
    check_line(field, u)?;
    let ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| u.len() > s.len() && u.starts_with(s));
    if !ok || u.chars().any(char::is_whitespace) {
        return err(
            field,
            format!("{:?} is not an http(s):// or file:// URL", redact_userinfo(u)),
        );
    }
    Ok(u.to_owned())
}

fn check_secret_mount(i: usize, (source, target): (String, String)) -> Result<(String, String)> {
    let field = format!("pip_secret_mounts[{i}]");
    check_line(&field, &source)?;
    check_line(&field, &target)?;
    Ok((source, target))
}

fn check_platform(p: &str) -> Result<String> {
    let mut out = Vec::new();
    for item in p.split(',').map(str::trim) {
        let parts: Vec<&str> = item.split('/').collect();
        let ok = (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|s| !s.is_empty() && s.chars().all(|c| is_lower_alnum(c) || c == '_'));
        if !ok {
            return err(
                "platform",
                format!("{item:?} is not os/arch[/variant] like 'linux/amd64'"),
            );
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out.join(","))
}

pub fn default_platform(registry: Option<&str>, host_arch: &str) -> &'static str {
    // A loopback registry serves this machine, so an arm64 host wants arm64 images (as flytekit does).
    match registry {
        Some(r) if super::is_loopback_registry(r) && host_arch == "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

/// flytekit formats the tag with `tag_format.format(spec_hash=...)`: `{spec_hash}` is the only
/// placeholder; without it the tag is fixed (the image is not rebuilt when the spec changes).
fn check_tag_format(t: &str) -> Result<String> {
    check_line("tag_format", t)?;
    let sample = t.replace("{spec_hash}", &"a".repeat(super::HASH_CHARS));
    if sample.contains(['{', '}']) {
        return err(
            "tag_format",
            format!("{t:?}: the only placeholder allowed is '{{spec_hash}}'"),
        );
    }
    if !reference::is_tag(&sample) {
        return err(
            "tag_format",
            format!(
                "{t:?} does not give a valid tag: letters, digits, '_', '.', '-', not starting with '.' or '-', \
                 at most {MAX_TAG_LEN} characters with the {}-character hash",
                super::HASH_CHARS
            ),
        );
    }
    Ok(t.to_owned())
}

/// A `copy` entry, lexically normalised: relative to the spec's folder, or absolute (see
/// `Spec::copy_sources` for where each lands).
fn check_copy_entry(c: &str) -> Result<String> {
    let field = "copy";
    check_line(field, c)?;
    let parts: Vec<&str> = c.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return err(
            field,
            format!("{c:?} climbs with '..'; give the path without '..' (relative to the spec's folder, or absolute)"),
        );
    }
    if parts.is_empty() {
        return err(field, format!("{c:?} names no file or folder"));
    }
    let joined = parts.join("/");
    Ok(if c.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

fn check_python_exec(p: &str) -> Result<String> {
    check_line("python_exec", p)?;
    if !p.starts_with('/') {
        return err(
            "python_exec",
            format!("{p:?} must be an absolute path inside the image, e.g. /usr/bin/python3"),
        );
    }
    Ok(p.to_owned())
}

fn check_map_text(field: &str, map: &super::Map) -> Result<()> {
    let mut bad = false;
    for (k, v) in map {
        let mut f = |s: &str| bad |= s.contains('\0');
        f(k);
        v.visit_strings(&mut f);
    }
    if bad {
        return err(field, "contains a NUL byte; remove it");
    }
    Ok(())
}

/// NaN has many encodings and no YAML spelling that keeps them apart, so it could not hash
/// stably: refused when the spec is made, since even its id needs it.
fn check_finite(field: &str, map: &super::Map) -> Result<()> {
    if map.values().any(has_non_finite) {
        return err(
            field,
            "contains NaN or an infinite number; use a finite number or a string",
        );
    }
    Ok(())
}

fn has_non_finite(v: &crate::value::Value) -> bool {
    use crate::value::Value;
    match v {
        Value::Float(f) => !f.is_finite(),
        Value::List(items) => items.iter().any(has_non_finite),
        Value::Map(m) => m.values().any(has_non_finite),
        _ => false,
    }
}

fn check_base_name(n: &str) -> Result<String> {
    check_line("base_image", n)?;
    if n.chars().any(|c| c.is_whitespace() || c.is_control()) || n.starts_with(['/', ':', '@']) {
        return err(
            "base_image",
            format!("{n:?} is not an image reference like 'python:3.11-slim'"),
        );
    }
    Ok(n.to_owned())
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
