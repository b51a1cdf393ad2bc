//! envd: builds from a `build.envd` file (Starlark, envd's v1 syntax, as flytekit's envd builder
//! writes it) instead of a Dockerfile.
//!
//! envd runs its own BuildKit from an image on a public registry, so a real envd build needs that
//! registry; what imagespec controls, the generated file, is pinned by tests/golden/envd. Every
//! value enters the file as a Starlark string literal built by [`starlark_str`], so no value can
//! end a string and add code.

use super::{Built, Engine, Progress, Request};
use crate::dockerfile::{write_context, BuildOptions};
use crate::error::{Error, Result};
use crate::redact::has_userinfo;
use crate::runtime::{self, Runtime};
use crate::spec::{BaseImage, CopyMode, Spec};
use crate::support::exec::{which, Run};
use std::fmt::Write as _;
use std::time::Duration;

pub struct Envd;

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Engine for Envd {
    fn name(&self) -> &str {
        "envd"
    }

    fn probe(&self) -> std::result::Result<(), String> {
        let Some(envd) = which("envd") else {
            return Err(not_installed());
        };
        let mut run = Run::new("envd", "", envd, vec!["version".into()]);
        run.timeout = Some(PROBE_TIMEOUT);
        match run.output() {
            Ok((status, _)) if status.success() => Ok(()),
            Ok((status, lines)) => Err(format!(
                "envd: `envd version` failed ({status}): {}",
                lines.last().map_or("no output", String::as_str)
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn build(&self, request: &Request<'_>) -> Result<Built> {
        let spec = request.spec;
        let Some(envd) = which("envd") else {
            return Err(Error::build(not_installed()));
        };
        check(spec, request.options)?;
        let mut options = request.options.clone();
        options.engine = "envd".to_owned();
        let tmp = super::build_folder("imagespec-envd")?;
        // The context writer copies exactly the files the tag hashed; envd reads them from there.
        let manifest = write_context(spec, &options, &tmp.path().join("build"))?;
        let has = |prefix: &str| manifest.files.iter().any(|f| f.starts_with(prefix));
        let inputs = Inputs {
            base: base_of(spec, &options)?,
            id: crate::identity::spec_id(spec),
            flytekit_id: options.flytekit_id(request.image).map(str::to_owned),
            runtime: match runtime::choose(spec, options.imagespec_wheel.as_deref(), &spec.platform)? {
                Runtime::Index(requirement) => Some(requirement),
                Runtime::Off => None,
                Runtime::Wheel { .. } => return Err(Error::build(WHEEL_REFUSED)),
            },
            requirements: manifest
                .files
                .iter()
                .find(|f| f.starts_with("imagespec/requirements/"))
                .cloned(),
            copy: has("copy/"),
            source: has("source/"),
        };
        let text = render_envd(spec, &inputs)?;
        std::fs::write(manifest.context.join("build.envd"), text)
            .map_err(|e| Error::build(format!("envd: cannot write build.envd: {e}")))?;

        if let Some(conf) = &spec.registry_config {
            let run = Run::new(
                "envd",
                request.image,
                &envd,
                vec![
                    "bootstrap".into(),
                    "--registry-config".into(),
                    conf.to_string_lossy().into_owned(),
                ],
            );
            run.checked(&mut |_| {})?;
        }
        let mut args = vec![
            "build".to_owned(),
            "--path".to_owned(),
            manifest.context.to_string_lossy().into_owned(),
        ];
        if !spec.platform.is_empty() {
            args.extend(["--platform".to_owned(), spec.platform.clone()]);
        }
        args.extend([
            "--output".to_owned(),
            format!("type=image,name={},push={}", request.image, request.push),
        ]);
        if request.push {
            (request.progress)(Progress::Pushing(request.image));
        }
        Run::new("envd", request.image, &envd, args).checked(&mut |_| {})?;
        Ok(Built {
            name: request.image.to_owned(),
            digest: None,
        })
    }
}

fn not_installed() -> String {
    "envd: envd is not installed (`pip install envd`); note that a real envd build also pulls envd's \
     own BuildKit image from a public registry, so it cannot run offline"
        .to_owned()
}

/// What build.envd cannot express without leaking a secret into the image: envd has no build
/// secrets, so credentials or a CA bundle would end up in its configuration or layers.
pub fn check(spec: &Spec, options: &BuildOptions) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::build(format!(
            "envd: {what} needs build secrets, which envd does not have; build with docker, buildah \
             or podman"
        )))
    };
    if options.ca_bundle.is_some() {
        return refuse("a CA bundle (ca_bundle)");
    }
    if !spec.pip_secret_mounts.is_empty() {
        return refuse("pip_secret_mounts");
    }
    if spec.pip_index.as_deref().is_some_and(has_userinfo)
        || spec.pip_extra_index_url.iter().any(|u| has_userinfo(u))
        || spec.pip_extra_args.as_deref().is_some_and(has_userinfo)
    {
        return refuse("an index URL with credentials");
    }
    if spec
        .packages
        .iter()
        .chain(&spec.runtime_packages)
        .any(|p| has_userinfo(p))
    {
        return refuse("a package URL with credentials");
    }
    for (field, set) in [
        ("project", spec.project.is_some()),
        ("overrides", !spec.overrides.is_empty()),
        ("constraints", !spec.constraints.is_empty()),
    ] {
        if set {
            return Err(Error::build(format!(
                "envd: {field} is not supported (envd installs packages its own way); build with docker, \
                 buildah, podman or native"
            )));
        }
    }
    if options.imagespec_wheel.is_some() && runtime::wanted(spec)? {
        return Err(Error::build(WHEEL_REFUSED));
    }
    Ok(())
}

const WHEEL_REFUSED: &str = "envd: installing imagespec from a wheel file is not supported; envd \
    installs imagespec-build from the package index (a released imagespec), or none with \
    builder_config={\"imagespec_runtime\": False}";

/// The `base(image=...)` of build.envd: as the Dockerfile's `FROM`, except that CUDA without a
/// base takes envd's own Ubuntu base and `install.cuda` (as flytekit's envd builder does).
pub fn base_of(spec: &Spec, options: &BuildOptions) -> Result<String> {
    Ok(match &spec.base_image {
        Some(BaseImage::Spec(base)) => crate::identity::image_name(base, options.loaded_modules.as_deref())?,
        Some(BaseImage::Name(name)) => name.clone(),
        None if spec.cuda.is_some() => "ubuntu20.04".to_owned(),
        None => format!("python:{}-slim", spec.python_version.as_deref().unwrap_or("3")),
    })
}

/// What the file refers to besides the spec: where the files are in the build folder.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub base: String,
    /// The spec's id, for `_F_IMG_ID` (as the Dockerfile sets it).
    pub id: String,
    /// flytekit's id when the image is built for a flytekit spec (`BuildOptions::flytekit_ids`).
    pub flytekit_id: Option<String>,
    /// The imagespec runtime requirement (`imagespec-build==<version>`), or none.
    pub runtime: Option<String>,
    /// The requirements file, relative to the build folder.
    pub requirements: Option<String>,
    /// Whether `copy/` and `source/` are there.
    pub copy: bool,
    pub source: bool,
}

/// build.envd for `spec`, in the order of the Dockerfile's layers (docs/image-layout.md).
pub fn render_envd(spec: &Spec, inputs: &Inputs) -> Result<String> {
    if let Some(req) = &inputs.requirements {
        if req.ends_with("uv.lock") || req.ends_with("poetry.lock") || req.ends_with("pyproject.toml") {
            return Err(Error::build(
                "envd: lock files (uv.lock, poetry.lock) are not supported; use docker, buildah or \
                 podman, or a plain requirements file",
            ));
        }
    }
    let mut out = String::from("# syntax=v1\n\ndef build():\n");
    let mut line = |s: String| {
        out.push_str("    ");
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("base(image={}, dev=False)", starlark_str(&inputs.base)));
    if let Some(v) = &spec.python_version {
        line(format!("install.python(version={})", starlark_str(v)));
    }
    if let Some(cuda) = &spec.cuda {
        line(format!(
            "install.cuda(version={}, cudnn={})",
            starlark_str(cuda),
            starlark_str(spec.cudnn.as_deref().unwrap_or(""))
        ));
    }
    if !spec.apt_packages.is_empty() {
        line(format!(
            "install.apt_packages(name={})",
            starlark_list(&spec.apt_packages)
        ));
    }
    if !spec.conda_packages.is_empty() {
        line("install.conda(use_mamba=True)".to_owned());
        line(format!(
            "install.conda_packages(name={}, channel={})",
            starlark_list(&spec.conda_packages),
            starlark_list(&spec.conda_channels)
        ));
    }
    if spec.pip_index.is_some() || !spec.pip_extra_index_url.is_empty() {
        let mut call = format!(
            "config.pip_index(url={}",
            starlark_str(spec.pip_index.as_deref().unwrap_or("https://pypi.org/simple"))
        );
        if !spec.pip_extra_index_url.is_empty() {
            let _ = write!(
                call,
                ", extra_url={}",
                starlark_str(&spec.pip_extra_index_url.join(" "))
            );
        }
        call.push(')');
        line(call);
    }
    if let Some(req) = &inputs.requirements {
        line(format!(
            "install.python_packages(requirements={})",
            starlark_str(req)
        ));
    }
    let mut packages: Vec<String> = spec.packages.clone();
    packages.extend(spec.runtime_packages.iter().cloned());
    packages.extend(inputs.runtime.iter().cloned());
    line(format!(
        "install.python_packages(name={})",
        starlark_list(&packages)
    ));
    if inputs.copy {
        line(r#"io.copy(source="copy/", target="/root")"#.to_owned());
    }
    let source_first = spec
        .builder_config
        .get("commands_need_source")
        .is_some_and(|v| *v == crate::value::Value::Bool(true));
    let source = inputs.source && spec.effective_copy_mode() != CopyMode::NoCopy;
    if source && source_first {
        line(r#"io.copy(source="source/", target="/root")"#.to_owned());
    }
    if !spec.commands.is_empty() {
        line(format!("run(commands={})", starlark_list(&spec.commands)));
    }
    if source && !source_first {
        line(r#"io.copy(source="source/", target="/root")"#.to_owned());
    }
    let mut env = vec![("PYTHONPATH".to_owned(), "/root".to_owned())];
    env.retain(|(k, _)| !spec.env.contains_key(k));
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(
        crate::dockerfile::image_id_env(&inputs.id, inputs.flytekit_id.as_deref())
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{}: {}", starlark_str(k), starlark_str(v)))
        .collect();
    line(format!(
        "runtime.environ(env={{{}}}, extra_path=[\"/root\"])",
        env.join(", ")
    ));
    Ok(out)
}

/// A Starlark string literal holding exactly `s`: `\` and `"` escaped, control characters as
/// `\xHH`, so no value can close the literal or start a new line of code.
pub fn starlark_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // Other non-ASCII control or format characters (line separators, bidi overrides)
            // cannot end a literal in Starlark, but are shown escaped so the file reads true.
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn starlark_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| starlark_str(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Context, RawBase, RawSpec};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn spec(raw: RawSpec) -> Spec {
        let raw = RawSpec {
            name: raw.name.or(Some("app".into())),
            ..raw
        };
        Spec::from_raw(raw, &Context::here("3.11").unwrap()).unwrap()
    }

    fn inputs(base: &str) -> Inputs {
        Inputs {
            base: base.into(),
            id: "ID".into(),
            runtime: Some("imagespec-build==X.Y.Z".into()),
            ..Default::default()
        }
    }

    /// The golden cases: (file name, spec, inputs).
    fn cases() -> Vec<(&'static str, Spec, Inputs)> {
        let minimal = spec(RawSpec::default());
        let full = spec(RawSpec {
            base_image: Some(RawBase::Name("localhost:5000/base:1".into())),
            packages: Some(vec!["six==1.16.0".into(), "numpy>=1.26".into()]),
            apt_packages: Some(vec!["git".into(), "curl".into()]),
            env: Some(BTreeMap::from([
                ("A".to_owned(), "1".to_owned()),
                ("PYTHONPATH".to_owned(), "/app".to_owned()),
            ])),
            commands: Some(vec!["echo hi > /tmp/x".into()]),
            pip_index: Some("https://mirror.example/simple".into()),
            pip_extra_index_url: Some(vec!["https://extra.example/simple".into()]),
            conda_packages: Some(vec!["numpy".into()]),
            conda_channels: Some(vec!["conda-forge".into()]),
            ..Default::default()
        });
        let full_inputs = Inputs {
            base: "localhost:5000/base:1".into(),
            id: "ID".into(),
            flytekit_id: None,
            runtime: Some("imagespec-build==X.Y.Z".into()),
            requirements: Some("imagespec/requirements/requirements.txt".into()),
            copy: true,
            source: false,
        };
        let cuda = spec(RawSpec {
            cuda: Some("12.1".into()),
            cudnn: Some("8".into()),
            ..Default::default()
        });
        let hostile = spec(RawSpec {
            env: Some(BTreeMap::from([(
                "X".to_owned(),
                "\")\n    run(commands=[\"rm -rf /\"]) # \\ $HOME `id`".to_owned(),
            )])),
            commands: Some(vec!["echo \"quoted\" \\ back\ttab\u{1b}[0m".into()]),
            ..Default::default()
        });
        vec![
            ("minimal.envd", minimal, inputs("python:3.11-slim")),
            ("full.envd", full, full_inputs),
            ("cuda.envd", cuda, inputs("ubuntu20.04")),
            ("hostile-values.envd", hostile, inputs("python:3.11-slim")),
        ]
    }

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/envd")
    }

    /// Set IMAGESPEC_UPDATE_GOLDEN=1 to rewrite the files after an intended change.
    #[test]
    fn golden_files() {
        let update = std::env::var_os("IMAGESPEC_UPDATE_GOLDEN").is_some();
        for (file, spec, inputs) in cases() {
            let text = render_envd(&spec, &inputs).unwrap();
            let path = golden_dir().join(file);
            if update {
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                text, want,
                "{file} differs (IMAGESPEC_UPDATE_GOLDEN=1 rewrites it)"
            );
        }
    }

    #[test]
    fn hostile_values_stay_inside_one_literal() {
        let (_, spec, inputs) = cases().pop().unwrap();
        let text = render_envd(&spec, &inputs).unwrap();
        // Every line of code is one of the fixed calls: no value started a line of its own.
        for l in text.lines().skip(3) {
            assert!(l.starts_with("    ") && !l.starts_with("     "), "{l:?}");
        }
        assert_eq!(text.matches("\n    run(commands=").count(), 1, "{text}");
        assert!(
            text.contains(r#""\")\n    run(commands=[\"rm -rf /\"]) # \\ $HOME `id`""#),
            "{text}"
        );
        assert!(text.contains(r"\x1b[0m"), "{text}");
    }

    #[test]
    fn a_flytekit_spec_gets_flytekits_id_and_ours_paired() {
        let s = spec(RawSpec::default());
        let plain = render_envd(&s, &inputs("python:3.11-slim")).unwrap();
        assert!(plain.contains(r#""_F_IMG_ID": "ID""#), "{plain}");
        assert!(!plain.contains("IMAGESPEC_IMG_ID"), "{plain}");
        let bridged = Inputs {
            flytekit_id: Some("FK".into()),
            ..inputs("python:3.11-slim")
        };
        let text = render_envd(&s, &bridged).unwrap();
        assert!(
            text.contains(r#""IMAGESPEC_IMG_ID": "ID:FK", "_F_IMG_ID": "FK"}"#),
            "{text}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(starlark_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(starlark_str("x\ny\r\0"), r#""x\ny\r\x00""#);
        assert_eq!(starlark_str("é\u{2028}"), "\"é\\u2028\"");
    }

    #[test]
    fn secrets_and_lock_files_are_refused() {
        let s = spec(RawSpec::default());
        let ca = BuildOptions {
            ca_bundle: Some(crate::dockerfile::CaBundle::Path("/x.pem".into())),
            ..Default::default()
        };
        assert!(check(&s, &ca).unwrap_err().to_string().contains("CA bundle"));
        let cred = spec(RawSpec {
            pip_index: Some("https://u:p@idx.example/simple".into()),
            ..Default::default()
        });
        let e = check(&cred, &BuildOptions::default()).unwrap_err().to_string();
        assert!(e.contains("credentials") && !e.contains("u:p"), "{e}");
        let package = spec(RawSpec {
            runtime_packages: Some(vec!["p @ https://u:t0ken@files.example/p.whl".into()]),
            ..Default::default()
        });
        let e = check(&package, &BuildOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("package URL with credentials") && !e.contains("t0ken"),
            "{e}"
        );
        assert!(check(&s, &BuildOptions::default()).is_ok());
        let lock = Inputs {
            requirements: Some("imagespec/requirements/uv.lock".into()),
            ..inputs("b")
        };
        assert!(render_envd(&s, &lock).is_err());
    }

    #[test]
    fn base_defaults() {
        let o = BuildOptions::default();
        assert_eq!(
            base_of(&spec(RawSpec::default()), &o).unwrap(),
            "python:3.11-slim"
        );
        let cuda = spec(RawSpec {
            cuda: Some("12.1".into()),
            ..Default::default()
        });
        assert_eq!(base_of(&cuda, &o).unwrap(), "ubuntu20.04");
    }
}
