//! buildah and podman: daemonless builds of the same Dockerfile, with the same flags (podman's
//! build is buildah's code). One module, two engine values that differ by program and subcommand.
//!
//! Defaults are the ones that work as root in a container without nested namespaces: chroot
//! isolation, and vfs storage unless the machine's (or `$CONTAINERS_STORAGE_CONF`'s) storage
//! config names a driver. Plain HTTP (`--tls-verify=false`) is used only for loopback registries
//! and those the user lists as insecure, never by default.

use super::{leading_digest, pinned, verify, Built, Engine, Progress, Request};
use crate::dockerfile::{write_context, BuildSecret};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::runtime;
use crate::spec::{is_loopback_registry, option_list, option_str, split_list, BaseImage, Spec};
use crate::support::exec::Run;
use crate::value::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

pub struct Buildah {
    name: &'static str,
    /// `bud` for buildah, `build` for podman.
    build_command: &'static str,
}

impl Buildah {
    pub const BUILDAH: Buildah = Buildah {
        name: "buildah",
        build_command: "bud",
    };
    pub const PODMAN: Buildah = Buildah {
        name: "podman",
        build_command: "build",
    };
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_ISOLATION: &str = "chroot";
const SYSTEM_STORAGE_CONF: &str = "/etc/containers/storage.conf";

impl Engine for Buildah {
    fn name(&self) -> &str {
        self.name
    }

    fn probe(&self) -> std::result::Result<(), String> {
        let mut run = Run::new(self.name, "", self.name, vec!["version".into()]);
        run.timeout = Some(PROBE_TIMEOUT);
        match run.output() {
            Ok((status, _)) if status.success() => Ok(()),
            Ok((status, lines)) => Err(format!(
                "{}: `{} version` failed ({status}): {}",
                self.name,
                self.name,
                lines.last().map_or("no output", String::as_str)
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn build(&self, request: &Request<'_>) -> Result<Built> {
        let spec = request.spec;
        if spec.platform.contains(',') {
            return Err(Error::build(format!(
                "{}: a multi-platform image ({}) is built with docker buildx here; build one \
                 platform per spec with {}",
                self.name, spec.platform, self.name
            )));
        }
        let flags = Flags::of(spec)?;
        let mut options = request.options.clone();
        options.buildkit = true; // buildah implements secret and cache mounts itself
        options.engine = self.name.to_owned();
        let tmp = super::build_folder(&format!("imagespec-{}", self.name))?;
        let manifest = write_context(spec, &options, &tmp.path().join("build"))?;
        let base = base_registry(spec);
        let args = self.build_args(&BuildArgs {
            flags: &flags,
            dockerfile: &manifest.dockerfile,
            context: &manifest.context,
            image: request.image,
            platform: &spec.platform,
            no_cache: request.no_cache,
            secrets: &manifest.secrets,
            insecure_pull: base.as_deref().is_some_and(|r| flags.is_insecure(r)),
        });
        let run = Run::new(self.name, request.image, self.name, args);
        let mut seen = HashSet::new();
        run.checked(&mut |line| {
            if let Some(step) = step_of(line) {
                if seen.insert(step.to_owned()) {
                    (request.progress)(Progress::Step(step));
                }
            }
        })?;
        verify::check(spec, request.progress, || {
            self.run_check(&flags, request.image, request.progress)
        })
        .inspect_err(|_| {
            // The tag must not stay on an image with the wrong imagespec.
            let mut args = flags.global();
            args.extend(["rmi".to_owned(), request.image.to_owned()]);
            let _ = Run::new(self.name, request.image, self.name, args).output();
        })?;
        if !request.push {
            return Ok(pinned(request.image, None));
        }
        (request.progress)(Progress::Pushing(request.image));
        let digest_file = tmp.path().join("digest");
        let registry = request.image.split('/').next().unwrap_or("");
        let push = Run::new(
            self.name,
            request.image,
            self.name,
            self.push_args(&flags, request.image, &digest_file, flags.is_insecure(registry)),
        );
        push.checked(&mut |_| {})?;
        let digest = std::fs::read_to_string(&digest_file)
            .ok()
            .and_then(|d| leading_digest(d.trim()));
        Ok(pinned(request.image, digest))
    }
}

impl Buildah {
    /// The imagespec check in the built image: podman runs it; buildah in a working container of
    /// the image (removed after), with the build's isolation.
    fn run_check(&self, flags: &Flags, image: &str, progress: &(dyn Fn(Progress<'_>) + Sync)) -> Result<()> {
        let script = runtime::CHECK_SCRIPT.to_owned();
        let run = |args: Vec<String>| {
            let (status, lines) = Run::new(self.name, image, self.name, args).output()?;
            if status.success() {
                Ok(lines)
            } else {
                Err(Error::build(format!(
                    "{}: checking the imagespec in {image} failed ({status}): {}",
                    self.name,
                    lines.join("\n")
                )))
            }
        };
        let with = |more: &[&str]| {
            let mut args = flags.global();
            args.extend(more.iter().map(|s| (*s).to_owned()));
            args
        };
        if self.name == "podman" {
            // `podman run` cannot be relied on (a sandbox that refuses its rlimits refuses every
            // run): read the image's venv instead.
            let mount = match run(with(&["image", "mount", image])) {
                Ok(lines) => lines.last().cloned().unwrap_or_default(),
                Err(e) => {
                    // Rootless podman mounts only inside `podman unshare`: a check not made, not failed.
                    progress(Progress::Step(&format!(
                        "the image's imagespec is not checked: {e}"
                    )));
                    return Ok(());
                }
            };
            let found = verify::check_venv(Path::new(mount.trim()), image);
            let _ = run(with(&["image", "unmount", image]));
            return found;
        }
        // The build's own credentials (the spec's registry_config): `from` reads an auth file
        // even when it pulls nothing.
        let mut from = with(&["from", "--pull=never", "--quiet"]);
        if let Some(f) = &flags.authfile {
            from.extend(["--authfile".to_owned(), f.clone()]);
        }
        from.push(image.to_owned());
        let container = run(from)?.last().cloned().unwrap_or_default();
        let mut args = with(&[
            "run",
            &format!("--isolation={}", flags.isolation),
            &container,
            "--",
        ]);
        args.extend([verify::python(), "-c".to_owned(), script]);
        let out = run(args);
        let _ = run(with(&["rm", &container]));
        runtime::check_output(image, &out?.join("\n"))
    }
}

/// The options that shape every command of one build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flags {
    pub isolation: String,
    pub storage_driver: Option<String>,
    pub authfile: Option<String>,
    /// Registries (host[:port]) reached over plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// Commit every instruction as a cached layer (`--layers`).
    pub layers: bool,
    /// The repository of cached steps (`--cache-to`/`--cache-from`), with `cache="registry"`.
    pub cache: Option<String>,
}

impl Flags {
    pub fn of(spec: &Spec) -> Result<Flags> {
        let storage_driver = match option_str(spec, "storage_driver")? {
            Some(d) => Some(d.to_owned()),
            None => default_storage_driver(
                std::env::var_os("CONTAINERS_STORAGE_CONF").is_some_and(|v| !v.is_empty()),
                std::fs::read_to_string(SYSTEM_STORAGE_CONF).ok().as_deref(),
            )
            .map(str::to_owned),
        };
        let mut insecure = option_list(spec, "insecure_registries")?;
        if let Ok(env) = std::env::var("IMAGESPEC_INSECURE_REGISTRIES") {
            insecure.extend(split_list(&env));
        }
        let cache = super::cache::registry_cache(spec)?;
        let layers = match spec.builder_options.get("layers") {
            // A cache of steps needs the steps as layers.
            Some(Value::Bool(false)) if cache.is_some() => return Err(Error::spec(
                "builder_options.layers",
                "is false and cache is \"registry\": a cache of steps needs each step as a layer; drop one",
            )),
            None | Some(Value::Null) if cache.is_some() => true,
            None | Some(Value::Null) => {
                let conf = std::env::var_os("CONTAINERS_STORAGE_CONF")
                    .filter(|v| !v.is_empty())
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| SYSTEM_STORAGE_CONF.into());
                let driver = storage_driver
                    .clone()
                    .or_else(|| std::fs::read_to_string(conf).ok().and_then(|t| conf_driver(&t)));
                layers_by_default(driver.as_deref())
            }
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::spec("builder_options.layers", "must be true or false")),
        };
        Ok(Flags {
            layers,
            cache: cache.map(|repo| format!("{repo}/{}", super::cache::BUILDAH_CACHE_REPOSITORY)),
            isolation: option_str(spec, "isolation")?
                .unwrap_or(DEFAULT_ISOLATION)
                .to_owned(),
            storage_driver,
            authfile: spec
                .registry_config
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            insecure,
        })
    }

    /// Whether `registry` (host[:port]) is reached over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback_registry(registry) || self.insecure.iter().any(|r| r == registry)
    }

    fn global(&self) -> Vec<String> {
        match &self.storage_driver {
            Some(d) => vec!["--storage-driver".into(), d.clone()],
            None => Vec::new(),
        }
    }
}

/// Whether to cache every instruction as a layer. Not on vfs: there each layer is a full copy of
/// the root filesystem (a small spec measured 211 s with layers), so one commit at the end is far
/// faster than any cache hit could repay.
pub fn layers_by_default(driver: Option<&str>) -> bool {
    driver != Some("vfs")
}

/// The `driver = "..."` of a containers storage.conf, when it names one.
pub fn conf_driver(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("driver")?.trim_start().strip_prefix('=')?;
        let v = v.trim().trim_matches('"').trim_matches('\'');
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// `vfs` unless a storage config chooses: vfs works everywhere (no overlay mounts, no fuse), and
/// a config that names a driver (or a whole config the user points at) knows better.
pub fn default_storage_driver(env_conf_set: bool, system_conf: Option<&str>) -> Option<&'static str> {
    let names_driver = system_conf.and_then(conf_driver).is_some();
    (!env_conf_set && !names_driver).then_some("vfs")
}

/// The registry of the image the Dockerfile starts `FROM`, for `--tls-verify` of the pull.
fn base_registry(spec: &Spec) -> Option<String> {
    match spec.base_image.as_ref()? {
        BaseImage::Name(n) => Reference::parse(n).ok().map(|r| r.registry),
        BaseImage::Spec(s) => s.registry.clone(),
    }
}

pub struct BuildArgs<'a> {
    pub flags: &'a Flags,
    pub dockerfile: &'a Path,
    pub context: &'a Path,
    pub image: &'a str,
    pub platform: &'a str,
    pub no_cache: bool,
    pub secrets: &'a [BuildSecret],
    /// The base image's registry is plain HTTP.
    pub insecure_pull: bool,
}

impl Buildah {
    pub fn build_args(&self, a: &BuildArgs<'_>) -> Vec<String> {
        let mut args = a.flags.global();
        args.extend([
            self.build_command.to_owned(),
            format!("--isolation={}", a.flags.isolation),
        ]);
        // Cache each instruction as a layer, as docker does, so rebuilds reuse them; said
        // explicitly both ways, since podman's default is the opposite of buildah's.
        args.push(format!("--layers={}", a.flags.layers));
        if !a.platform.is_empty() {
            args.push(format!("--platform={}", a.platform));
        }
        if a.no_cache {
            args.push("--no-cache".to_owned());
        }
        let cache_registry = a.flags.cache.as_deref().and_then(|c| c.split('/').next());
        if a.insecure_pull || cache_registry.is_some_and(|r| a.flags.is_insecure(r)) {
            args.push("--tls-verify=false".to_owned());
        }
        if let Some(cache) = &a.flags.cache {
            args.extend([
                "--cache-to".to_owned(),
                cache.clone(),
                "--cache-from".to_owned(),
                cache.clone(),
            ]);
        }
        if let Some(f) = &a.flags.authfile {
            args.extend(["--authfile".to_owned(), f.clone()]);
        }
        for s in a.secrets {
            args.extend(s.args());
        }
        args.extend([
            "-f".to_owned(),
            a.dockerfile.to_string_lossy().into_owned(),
            "-t".to_owned(),
            a.image.to_owned(),
            a.context.to_string_lossy().into_owned(),
        ]);
        args
    }

    pub fn push_args(&self, flags: &Flags, image: &str, digest_file: &Path, insecure: bool) -> Vec<String> {
        let mut args = flags.global();
        args.push("push".to_owned());
        if insecure {
            args.push("--tls-verify=false".to_owned());
        }
        if let Some(f) = &flags.authfile {
            args.extend(["--authfile".to_owned(), f.clone()]);
        }
        args.extend([
            "--digestfile".to_owned(),
            digest_file.to_string_lossy().into_owned(),
            image.to_owned(),
            format!("docker://{image}"),
        ]);
        args
    }
}

/// A step started: `STEP 2/5: RUN ...` (buildah and podman print the same).
pub fn step_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("STEP ")?;
    let (counter, _) = rest.split_once(": ")?;
    let (a, b) = counter.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b)).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            isolation: "chroot".into(),
            storage_driver: Some("vfs".into()),
            authfile: None,
            insecure: vec!["registry.lan:5000".into()],
            layers: false,
            cache: None,
        }
    }

    /// The registry cache: steps to and from one repository, over plain HTTP where the registry
    /// is a loopback one.
    #[test]
    fn registry_cache_flags() {
        let f = Flags {
            layers: true,
            cache: Some("127.0.0.1:5000/app/imagespec-cache".into()),
            ..flags()
        };
        let b = Buildah {
            name: "buildah",
            build_command: "bud",
        };
        let args = b.build_args(&BuildArgs {
            flags: &f,
            dockerfile: Path::new("/t/c/Dockerfile"),
            context: Path::new("/t/c"),
            image: "127.0.0.1:5000/app:t",
            platform: "",
            no_cache: false,
            secrets: &[],
            insecure_pull: false,
        });
        let text = args.join(" ");
        assert!(text.contains("--layers=true"), "{text}");
        assert!(text.contains("--tls-verify=false"), "{text}");
        assert!(
            text.contains(
                "--cache-to 127.0.0.1:5000/app/imagespec-cache --cache-from 127.0.0.1:5000/app/imagespec-cache"
            ),
            "{text}"
        );
    }

    #[test]
    fn build_flags() {
        let f = flags();
        let secrets = [BuildSecret {
            id: "imagespec_ca".into(),
            path: "/t/ca.pem".into(),
        }];
        let a = BuildArgs {
            flags: &f,
            dockerfile: Path::new("/t/c/Dockerfile"),
            context: Path::new("/t/c"),
            image: "localhost:5000/app:x",
            platform: "linux/amd64",
            no_cache: true,
            secrets: &secrets,
            insecure_pull: true,
        };
        assert_eq!(
            Buildah::BUILDAH.build_args(&a).join(" "),
            "--storage-driver vfs bud --isolation=chroot --layers=false --platform=linux/amd64 --no-cache \
             --tls-verify=false --secret id=imagespec_ca,src=/t/ca.pem -f /t/c/Dockerfile -t \
             localhost:5000/app:x /t/c"
        );
        let f = Flags {
            storage_driver: None,
            authfile: Some("/h/config.json".into()),
            layers: true,
            ..flags()
        };
        let a = BuildArgs {
            flags: &f,
            no_cache: false,
            secrets: &[],
            insecure_pull: false,
            platform: "",
            ..a
        };
        assert_eq!(
            Buildah::PODMAN.build_args(&a).join(" "),
            "build --isolation=chroot --layers=true --authfile /h/config.json -f /t/c/Dockerfile -t \
             localhost:5000/app:x /t/c"
        );
    }

    #[test]
    fn plain_http_only_for_loopback_and_listed_registries() {
        let f = flags();
        assert!(f.is_insecure("localhost:5000"));
        assert!(f.is_insecure("127.0.0.1:5000"));
        assert!(f.is_insecure("registry.lan:5000"));
        assert!(!f.is_insecure("registry.lan"));
        assert!(!f.is_insecure("ghcr.io"));
        assert!(f.is_insecure("[::1]:5000"));
        // Names are not addresses: whatever they resolve to, TLS is verified there.
        for name in [
            "127.evil.example:5000",
            "127.0.0.1.nip.io:5000",
            "registry.localhost:5000",
        ] {
            assert!(!f.is_insecure(name), "{name}");
        }
        let d = Path::new("/t/digest");
        assert_eq!(
            Buildah::BUILDAH
                .push_args(&f, "localhost:5000/a:1", d, true)
                .join(" "),
            "--storage-driver vfs push --tls-verify=false --digestfile /t/digest localhost:5000/a:1 \
             docker://localhost:5000/a:1"
        );
        assert_eq!(
            Buildah::PODMAN.push_args(&f, "ghcr.io/o/a:1", d, false).join(" "),
            "--storage-driver vfs push --digestfile /t/digest ghcr.io/o/a:1 docker://ghcr.io/o/a:1"
        );
    }

    #[test]
    fn layers_only_off_vfs() {
        assert!(!layers_by_default(Some("vfs")));
        assert!(layers_by_default(Some("overlay")));
        assert!(layers_by_default(None));
        assert_eq!(
            conf_driver("[storage]\ndriver = \"vfs\"\n").as_deref(),
            Some("vfs")
        );
        assert_eq!(conf_driver("[storage]\n# driver = \"overlay\"\n"), None);
    }

    #[test]
    fn storage_driver_default() {
        assert_eq!(default_storage_driver(false, None), Some("vfs"));
        assert_eq!(default_storage_driver(true, None), None);
        assert_eq!(
            default_storage_driver(false, Some("[storage]\ndriver = \"overlay\"\n")),
            None
        );
        assert_eq!(
            default_storage_driver(false, Some("[storage]\ndriver = \"\"\n")),
            Some("vfs")
        );
        assert_eq!(
            default_storage_driver(false, Some("[storage]\n# driver = \"overlay\"\n")),
            Some("vfs")
        );
    }

    #[test]
    fn steps() {
        assert_eq!(step_of("STEP 2/5: RUN echo"), Some("STEP 2/5: RUN echo"));
        assert_eq!(step_of("STEP 1/12: FROM base"), Some("STEP 1/12: FROM base"));
        assert_eq!(step_of("STEP x: nope"), None);
        assert_eq!(step_of("COMMIT img"), None);
    }
}
