//! A BuildKit daemon driven by `buildctl`, with no Docker engine: `BUILDKIT_HOST` (or
//! `builder_options={"buildkit_host": ...}`) names it: `tcp://buildkitd:1234` (with mTLS from
//! `BUILDKIT_TLS_DIR` or `builder_options.buildkit_tls`: ca.pem, cert.pem, key.pem),
//! `unix:///run/buildkit/buildkitd.sock`, `kube-pod://NAME?namespace=NS`, `docker-container://NAME`.
//!
//! The build context, Dockerfile and secrets are the ones every Dockerfile engine gets
//! ([`crate::dockerfile::write_context`]); BuildKit pushes the image itself, the digest comes from
//! `--metadata-file`. A remote BuildKit has no local image store, so the image's imagespec is not
//! checked by running it (as with a buildx builder that pushes).

use super::docker::metadata_digest;
use super::{pinned, Built, Engine, Progress, Request};
use crate::dockerfile::{write_context, BuildSecret};
use crate::error::{Error, Result};
use crate::spec::option_str;
use crate::support::exec::Run;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NAME: &str = "buildkit";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine; `addr` and `tls` set (by an engine pool) win over the spec's options and the
/// environment.
#[derive(Default)]
pub struct BuildKit {
    pub addr: Option<String>,
    pub tls: Option<PathBuf>,
}

/// Where the daemon is and how to be let in.
struct Daemon {
    addr: Option<String>,
    tls: Option<PathBuf>,
}

impl Daemon {
    fn of(engine: &BuildKit, spec: Option<&crate::spec::Spec>) -> Result<Daemon> {
        let from_spec = |key| spec.map(|s| option_str(s, key)).transpose().map(Option::flatten);
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let addr = match &engine.addr {
            Some(a) => Some(a.clone()),
            None => from_spec("buildkit_host")?
                .map(str::to_owned)
                .or_else(|| env("BUILDKIT_HOST")),
        };
        let tls = match &engine.tls {
            Some(t) => Some(t.clone()),
            None => from_spec("buildkit_tls")?
                .map(PathBuf::from)
                .or_else(|| env("BUILDKIT_TLS_DIR").map(PathBuf::from)),
        };
        if let Some(dir) = &tls {
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                if !dir.join(f).is_file() {
                    return Err(Error::build(format!(
                        "buildkit: the TLS folder {} has no {f} (it holds ca.pem, cert.pem and key.pem)",
                        dir.display()
                    )));
                }
            }
        }
        Ok(Daemon { addr, tls })
    }

    /// `--addr` and the TLS flags, which come before buildctl's command.
    fn global_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(a) = &self.addr {
            args.extend(["--addr".to_owned(), a.clone()]);
        }
        if let Some(dir) = &self.tls {
            let host = self
                .addr
                .as_deref()
                .and_then(|a| a.split_once("://").map(|(_, r)| r))
                .and_then(|r| r.split([':', '/']).next())
                .unwrap_or("");
            args.extend(["--tlsservername".to_owned(), host.to_owned()]);
            for (flag, file) in [
                ("--tlscacert", "ca.pem"),
                ("--tlscert", "cert.pem"),
                ("--tlskey", "key.pem"),
            ] {
                args.extend([flag.to_owned(), dir.join(file).to_string_lossy().into_owned()]);
            }
        }
        args
    }
}

/// What one `buildctl build` is given.
pub struct BuildctlArgs<'a> {
    /// `--addr` and TLS flags.
    pub globals: Vec<String>,
    pub context: &'a Path,
    pub image: &'a str,
    pub platform: &'a str,
    pub push: bool,
    pub no_cache: bool,
    pub secrets: &'a [BuildSecret],
    pub metadata: &'a Path,
}

/// The arguments of `buildctl` for one image (global flags first).
pub fn build_args(a: BuildctlArgs<'_>) -> Vec<String> {
    let mut args = a.globals;
    let ctx = a.context.to_string_lossy().into_owned();
    args.extend(["build", "--frontend", "dockerfile.v0", "--progress", "plain"].map(String::from));
    args.extend(["--local".to_owned(), format!("context={ctx}")]);
    args.extend(["--local".to_owned(), format!("dockerfile={ctx}")]);
    args.extend(["--opt".to_owned(), "filename=Dockerfile".to_owned()]);
    if !a.platform.is_empty() {
        args.extend(["--opt".to_owned(), format!("platform={}", a.platform)]);
    }
    if a.no_cache {
        args.push("--no-cache".to_owned());
    }
    for s in a.secrets {
        args.extend(s.args());
    }
    args.extend([
        "--output".to_owned(),
        format!("type=image,name={},push={}", a.image, a.push),
        "--metadata-file".to_owned(),
        a.metadata.to_string_lossy().into_owned(),
    ]);
    args
}

impl Engine for BuildKit {
    fn name(&self) -> &str {
        NAME
    }

    fn probe(&self) -> std::result::Result<(), String> {
        let daemon = Daemon::of(self, None).map_err(|e| e.to_string())?;
        let mut args = daemon.global_args();
        args.extend(["debug".to_owned(), "workers".to_owned()]);
        let mut run = Run::new(NAME, "", "buildctl", args);
        run.timeout = Some(PROBE_TIMEOUT);
        let at = daemon
            .addr
            .as_deref()
            .unwrap_or("unix:///run/buildkit/buildkitd.sock");
        match run.output() {
            Ok((status, _)) if status.success() => Ok(()),
            Ok((_, lines)) => Err(format!(
                "buildkit: the daemon at {at} does not answer: {}; set BUILDKIT_HOST",
                lines.last().cloned().unwrap_or_default()
            )),
            Err(e) => Err(format!(
                "buildkit: buildctl cannot run ({e}); install buildctl (BuildKit's client)"
            )),
        }
    }

    fn build(&self, request: &Request<'_>) -> Result<Built> {
        let spec = request.spec;
        let daemon = Daemon::of(self, Some(spec))?;
        // Refused before any context is written: there is nothing to build it for.
        if !request.push {
            return Err(Error::build(
                "buildkit: a BuildKit daemon keeps no image to run; give the spec a registry to push to",
            ));
        }
        let mut options = request.options.clone();
        options.buildkit = true;
        options.engine = NAME.to_owned();
        let tmp = super::build_folder("imagespec-buildkit")?;
        let manifest = write_context(spec, &options, &tmp.path().join("build"))?;
        let metadata = tmp.path().join("metadata.json");
        let args = build_args(BuildctlArgs {
            globals: daemon.global_args(),
            context: &manifest.context,
            image: request.image,
            platform: &spec.platform,
            push: request.push,
            no_cache: request.no_cache,
            secrets: &manifest.secrets,
            metadata: &metadata,
        });
        let mut run = Run::new(NAME, request.image, "buildctl", args);
        if let Some(conf) = &spec.registry_config {
            // buildctl pushes with a docker config's credentials, as docker does.
            let dir = super::docker::config_dir(conf, &tmp.path().join("docker-config"))?;
            run.env
                .push(("DOCKER_CONFIG".into(), dir.to_string_lossy().into_owned()));
        }
        let mut steps = HashSet::new();
        (request.progress)(Progress::Pushing(request.image));
        run.checked(&mut |line| {
            if let Some(step) = super::docker::step_of(line, &mut steps) {
                (request.progress)(Progress::Step(step));
            }
        })?;
        (request.progress)(Progress::Step(
            "the image's imagespec is not checked: BuildKit pushed it directly",
        ));
        let text = std::fs::read_to_string(&metadata).unwrap_or_default();
        match metadata_digest(&text) {
            Some(d) => Ok(pinned(request.image, Some(d))),
            None => Err(Error::build(format!(
                "buildkit: the build of {} wrote no image digest to its metadata file; the push is not \
                 known to have happened",
                request.image
            ))),
        }
    }
}
