//! The imagespec an image holds: exactly this project (the `imagespec-build` distribution) at
//! exactly this version, chosen by one rule for every builder.
//!
//! The name `imagespec` on the package index belongs to another project: nothing here ever asks an
//! index for it. The runtime is either `imagespec-build==<this version>` from the index (when this
//! installation came from one, so the index has that version), or a wheel of it given to the build
//! (the Python layer passes this installation's own wheel when it did not come from an index), or
//! nothing (`builder_config={"imagespec_runtime": False}`). A wheel is checked against the image's
//! platform and Python before any engine runs; the built image is checked again afterwards
//! ([`CHECK_SCRIPT`]).

use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::value::Value;
use std::path::{Path, PathBuf};

/// The distribution this project is published as (imported as `imagespec`).
pub const DISTRIBUTION: &str = "imagespec-build";
/// Its version: the runtime in every image is exactly this one.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `builder_config` key: `False` builds the image without any imagespec (it is part of the tag).
pub const RUNTIME_OPTION: &str = "imagespec_runtime";

/// Where the image's imagespec comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// No imagespec in the image.
    Off,
    /// `imagespec-build==<version>` from the spec's package index.
    Index(String),
    /// A wheel file of this version for the image's platform.
    Wheel { path: PathBuf, name: String },
}

impl Runtime {
    /// What the install step is given: a requirement, or the wheel's file name.
    pub fn describe(&self) -> String {
        match self {
            Runtime::Off => "none".to_owned(),
            Runtime::Index(req) => req.clone(),
            Runtime::Wheel { name, .. } => name.clone(),
        }
    }
}

/// The requirement of this version on the index.
pub fn requirement() -> String {
    format!("{DISTRIBUTION}=={VERSION}")
}

/// Whether the spec wants the runtime (`builder_config["imagespec_runtime"]`, default true).
pub fn wanted(spec: &Spec) -> Result<bool> {
    match spec.builder_config.get(RUNTIME_OPTION) {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::spec(
            format!("builder_config.{RUNTIME_OPTION}"),
            "must be true or false",
        )),
    }
}

/// The CPU of a platform (`linux/arm64`) as wheel tags spell it (`aarch64`).
pub fn wheel_arch(platform: &str) -> &str {
    let mut parts = platform.split('/').skip(1);
    match (parts.next().unwrap_or(""), parts.next()) {
        ("amd64", _) => "x86_64",
        ("arm64", _) => "aarch64",
        ("386", _) => "i686",
        ("arm", Some("v7")) => "armv7l",
        (arch, _) => arch,
    }
}

/// The parts of a wheel file name (PEP 427): `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, PartialEq, Eq)]
struct WheelName<'a> {
    name: &'a str,
    version: &'a str,
    python: &'a str,
    platform: &'a str,
}

fn parse_wheel(file: &str) -> Option<WheelName<'_>> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&parts.len()) {
        return None;
    }
    let n = parts.len();
    Some(WheelName {
        name: parts[0],
        version: parts[1],
        python: parts[n - 3],
        platform: parts[n - 1],
    })
}

/// Whether a wheel's platform tag (`manylinux_2_17_x86_64.manylinux2014_x86_64`, `any`) runs on `arch`.
fn fits_arch(platform_tag: &str, arch: &str) -> bool {
    platform_tag == "any"
        || platform_tag
            .split('.')
            .any(|t| (t.starts_with("linux_") || t.contains("linux")) && t.ends_with(&format!("_{arch}")))
}

/// Whether a wheel's python tag (`cp39`, `cp311`, `py3`) is usable by Python `version` (`3.11`),
/// given its abi tag rule: an abi3 wheel of `cp39` serves 3.9 and later.
fn fits_python(python_tag: &str, abi3: bool, version: &str) -> bool {
    let minor = |v: &str| -> Option<u32> {
        let mut it = v.split('.');
        (it.next()? == "3").then_some(())?;
        it.next()?.parse().ok()
    };
    let Some(want) = minor(version) else {
        return true; // no X.Y known: the base image's Python, checked after the build
    };
    python_tag.split('.').any(|t| {
        if t == "py3" {
            return true;
        }
        let Some(digits) = t.strip_prefix("cp3") else {
            return false;
        };
        match digits.parse::<u32>() {
            Ok(m) if abi3 => want >= m,
            Ok(m) => want == m,
            Err(_) => false,
        }
    })
}

/// The runtime of `spec` for one of its platforms. `wheel` is the wheel given to the build (by the
/// user, or this installation's own); without one, the index's. Errors name what is missing and
/// how to give it, before any engine runs.
pub fn choose(spec: &Spec, wheel: Option<&Path>, platform: &str) -> Result<Runtime> {
    if !wanted(spec)? {
        return Ok(Runtime::Off);
    }
    let Some(given) = wheel else {
        return Ok(Runtime::Index(requirement()));
    };
    let field = "imagespec_wheel";
    let given_name = given
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let ours = |w: &WheelName| w.name == DISTRIBUTION.replace('-', "_");
    let parsed = parse_wheel(&given_name).filter(|w| ours(w)).ok_or_else(|| {
        Error::build(format!(
            "{field}: {given_name:?} is not a wheel of {DISTRIBUTION} \
             ({}-<version>-<python>-<abi>-<platform>.whl); the image's imagespec must be this project",
            DISTRIBUTION.replace('-', "_")
        ))
    })?;
    if parsed.version != VERSION {
        return Err(Error::build(format!(
            "{field}: {given_name} is {DISTRIBUTION} {}, but this imagespec is {VERSION}; the image's \
             imagespec must be the same version (give a wheel of {VERSION})",
            parsed.version
        )));
    }
    if !given.is_file() {
        return Err(Error::source(field, given, "does not exist or is not a file"));
    }
    let arch = wheel_arch(platform);
    let python = spec.python_version.as_deref().unwrap_or("");
    let fits = |name: &str| {
        parse_wheel(name).is_some_and(|w| {
            let abi3 = name.contains("-abi3-");
            ours(&w)
                && w.version == VERSION
                && fits_arch(w.platform, arch)
                && fits_python(w.python, abi3, python)
        })
    };
    if fits(&given_name) {
        return Ok(Runtime::Wheel {
            path: given.to_path_buf(),
            name: given_name,
        });
    }
    // A folder of wheels, one per platform, serves a build of several platforms.
    let dir = given.parent().unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(fits));
    found.sort();
    match found.into_iter().next() {
        Some(path) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Runtime::Wheel { path, name })
        }
        None => Err(Error::build(format!(
            "{field}: {given_name} (python {}, platform {}) does not fit the image ({platform}{}), and {} \
             has no {DISTRIBUTION} {VERSION} wheel for {arch} beside it. Give one with imagespec_wheel \
             (IMAGESPEC_WHEEL, --wheel): a folder with a wheel per platform serves several, e.g. one \
             built by `maturin build --release --target {arch}-unknown-linux-gnu`; or build the image \
             without imagespec: builder_config={{\"{RUNTIME_OPTION}\": False}}",
            parsed.python,
            parsed.platform,
            if python.is_empty() {
                String::new()
            } else {
                format!(", Python {python}")
            },
            dir.display()
        ))),
    }
}

/// Run with the image's Python after a build: prints the distribution and version that provide
/// `import imagespec`, as JSON. The build fails unless they are [`DISTRIBUTION`] and [`VERSION`].
pub const CHECK_SCRIPT: &str = r#"import json, os, sys
try:
    import imagespec
    from importlib import metadata
    where = os.path.realpath(os.path.dirname(imagespec.__file__))
    owners = []
    for d in metadata.distributions():
        for f in d.files or ():
            if f.name == "__init__.py" and os.path.realpath(os.path.dirname(d.locate_file(f))) == where:
                owners.append([d.metadata["Name"], d.version])
                break
    print(json.dumps({"owners": sorted(owners), "module_version": getattr(imagespec, "__version__", None),
                      "file": imagespec.__file__}))
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
"#;

/// The verdict on [`CHECK_SCRIPT`]'s output: Ok, or the build error naming both versions.
pub fn check_output(image: &str, stdout: &str) -> Result<()> {
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let parsed: Option<serde_json::Value> = line.and_then(|l| serde_json::from_str(l).ok());
    let Some(v) = parsed else {
        return Err(Error::build(format!(
            "{image}: the imagespec check printed no answer ({}); nothing was pushed",
            stdout.trim()
        )));
    };
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(Error::build(format!(
            "{image}: `import imagespec` fails in the image ({e}); it must hold {DISTRIBUTION} {VERSION}; \
             nothing was pushed"
        )));
    }
    let owners: Vec<(String, String)> = v
        .get("owners")
        .and_then(|o| o.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|pair| {
                    let p = pair.as_array()?;
                    Some((p.first()?.as_str()?.to_owned(), p.get(1)?.as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let module_version = v.get("module_version").and_then(|x| x.as_str()).unwrap_or("");
    match owners.as_slice() {
        [one] if is_ours(one) && module_version == VERSION => Ok(()),
        [] => Err(Error::build(format!(
            "{image}: the image's imagespec ({}) belongs to no installed distribution, not {DISTRIBUTION} \
             {VERSION}; nothing was pushed",
            v.get("file").and_then(|x| x.as_str()).unwrap_or("?")
        ))),
        found => Err(Error::build(format!(
            "{image}: the image's imagespec is {}, not {DISTRIBUTION} {VERSION} alone; nothing was pushed",
            shown(found)
        ))),
    }
}

fn is_ours((name, version): &(String, String)) -> bool {
    name.to_lowercase().replace('_', "-") == DISTRIBUTION && version == VERSION
}

fn shown(owners: &[(String, String)]) -> String {
    owners
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A package of the spec's that names `imagespec` or this project: the first is another project on
/// the package index (its `imagespec` module would replace ours), the second comes with the image.
pub fn check_package(field: &str, requirement: &str) -> Result<()> {
    let name: String = requirement
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect::<String>()
        .to_lowercase()
        .replace(['_', '.'], "-");
    let hint = format!(
        "the image gets {DISTRIBUTION} {VERSION} (imported as imagespec) without it; \
         builder_config={{\"{RUNTIME_OPTION}\": False}} leaves it out"
    );
    let redacted = crate::redact::redact_userinfo(requirement);
    if name == "imagespec" {
        return Err(Error::spec(
            field,
            format!(
                "{redacted:?}: `imagespec` on the package index is another project, whose \
                 `imagespec` module would replace this one; remove it ({hint})"
            ),
        ));
    }
    if name == DISTRIBUTION {
        return Err(Error::spec(field, format!("{redacted:?}: remove it ({hint})")));
    }
    Ok(())
}

/// The distributions an install target (a `uv pip install --target` folder, the layout of
/// site-packages) holds that provide the `imagespec` module, as (name, version).
fn imagespec_owners(target: &Path) -> Vec<(String, String)> {
    let mut owners = Vec::new();
    let Ok(entries) = std::fs::read_dir(target) else {
        return owners;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_dist = dir.extension().is_some_and(|e| e == "dist-info");
        let record = std::fs::read_to_string(dir.join("RECORD")).unwrap_or_default();
        if !is_dist || !record.lines().any(|l| l.starts_with("imagespec/__init__.py,")) {
            continue;
        }
        let meta = std::fs::read_to_string(dir.join("METADATA")).unwrap_or_default();
        let field = |k: &str| {
            meta.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        owners.push((field("Name:"), field("Version:")));
    }
    owners.sort();
    owners
}

/// The native builder's check of what an install put into the image (it runs nothing in the
/// image): the runtime's target must hold exactly this project's imagespec, any other target none.
pub fn check_installed(target: &Path, is_runtime: bool) -> std::result::Result<(), String> {
    let owners = imagespec_owners(target);
    match (is_runtime, owners.as_slice()) {
        (true, [one]) if is_ours(one) => Ok(()),
        (false, []) => Ok(()),
        (true, found) => Err(format!(
            "the image's imagespec would be {}, not {DISTRIBUTION} {VERSION}; nothing was pushed",
            if found.is_empty() {
                "missing".to_owned()
            } else {
                shown(found)
            }
        )),
        (false, found) => Err(format!(
            "the packages install {} as the `imagespec` module, which would replace this project \
             ({DISTRIBUTION}) in the image: remove it from the packages (the image gets {DISTRIBUTION} \
             itself)",
            shown(found)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_map_to_wheel_arches() {
        assert_eq!(wheel_arch("linux/amd64"), "x86_64");
        assert_eq!(wheel_arch("linux/arm64"), "aarch64");
        assert_eq!(wheel_arch("linux/arm64/v8"), "aarch64");
        assert_eq!(wheel_arch("linux/arm/v7"), "armv7l");
        assert_eq!(wheel_arch("linux/s390x"), "s390x");
    }

    #[test]
    fn wheel_tags_are_matched_to_the_image() {
        let w = parse_wheel("imagespec_build-0.1.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
            .unwrap();
        assert_eq!(
            (w.name, w.version, w.python),
            ("imagespec_build", "0.1.0", "cp39")
        );
        assert!(fits_arch(w.platform, "x86_64"));
        assert!(!fits_arch(w.platform, "aarch64"));
        assert!(fits_arch("linux_aarch64", "aarch64"));
        assert!(!fits_arch("macosx_11_0_arm64", "aarch64"));
        assert!(fits_python("cp39", true, "3.12"));
        assert!(!fits_python("cp39", true, "3.8"));
        assert!(!fits_python("cp311", false, "3.12"));
        assert!(fits_python("cp311", false, "3.11"));
        assert!(fits_python("cp39", true, ""));
        assert!(parse_wheel("imagespec-0.1.0.tar.gz").is_none());
    }

    #[test]
    fn installed_trees_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dist = |name: &str, version: &str| {
            let d = tmp
                .path()
                .join(format!("{}-{version}.dist-info", name.replace('-', "_")));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("METADATA"),
                format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
            )
            .unwrap();
            std::fs::write(d.join("RECORD"), "imagespec/__init__.py,sha256=x,1\n").unwrap();
        };
        assert!(check_installed(tmp.path(), false).is_ok());
        assert!(check_installed(tmp.path(), true).unwrap_err().contains("missing"));
        dist(DISTRIBUTION, VERSION);
        assert!(check_installed(tmp.path(), true).is_ok());
        assert!(check_installed(tmp.path(), false)
            .unwrap_err()
            .contains("remove it from the packages"));
        dist("imagespec", "0.1.0");
        let e = check_installed(tmp.path(), true).unwrap_err();
        assert!(e.contains("imagespec 0.1.0"), "{e}");
    }

    #[test]
    fn the_check_names_both_versions() {
        let ok = format!(
            r#"{{"owners": [["imagespec_build", "{VERSION}"]], "module_version": "{VERSION}", "file": "/x"}}"#
        );
        assert!(check_output("img", &ok).is_ok());
        let foreign = r#"{"owners": [["imagespec", "0.1.0"]], "module_version": null, "file": "/x"}"#;
        let e = check_output("img", foreign).unwrap_err().to_string();
        assert!(e.contains("imagespec 0.1.0") && e.contains(VERSION), "{e}");
        let both = format!(
            r#"{{"owners": [["imagespec", "0.4.1"], ["imagespec-build", "{VERSION}"]], "module_version": "{VERSION}"}}"#
        );
        let e = check_output("img", &both).unwrap_err().to_string();
        assert!(e.contains("imagespec 0.4.1 and imagespec-build"), "{e}");
        let orphan = r#"{"owners": [], "module_version": "0.1.0", "file": "/root/imagespec/__init__.py"}"#;
        let e = check_output("img", orphan).unwrap_err().to_string();
        assert!(e.contains("/root/imagespec"), "{e}");
        let broken = r#"{"error": "ModuleNotFoundError: No module named 'imagespec'"}"#;
        assert!(check_output("img", broken)
            .unwrap_err()
            .to_string()
            .contains("No module named"));
        assert!(check_output("img", "garbage").is_err());
    }
}
