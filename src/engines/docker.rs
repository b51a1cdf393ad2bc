//! The Docker engine, through whichever `docker` client is at hand.
//!
//! Clients differ in what they can build with, and a machine may have several (here a Docker 28
//! client without buildx first on PATH, Debian's 20.10 client with built-in BuildKit after it), so
//! the adapter asks each candidate what it supports instead of assuming:
//! * `buildx`: `docker buildx version` works; builds with `docker buildx build` (named builders,
//!   remote or Kubernetes BuildKit, multi-platform, direct push);
//! * `builtin`: a client older than 23 builds with BuildKit when `DOCKER_BUILDKIT=1`;
//! * `legacy`: neither; the classic builder (`DOCKER_BUILDKIT=0`): no secrets, no cache mounts.
//!
//! The engine itself comes from the environment (`DOCKER_HOST`, `DOCKER_CONTEXT`, TLS variables)
//! or `builder_options.docker_context`, so a remote engine needs no code of its own.

mod cli;
mod client;

use cli::rmi_args;
pub use cli::{build_args, check_args, metadata_digest, push_args, push_digest, step_of, BuildArgs};
pub use client::{candidates, choose, detect, mode_of, parse_major, Client, Mode};

pub use super::pool::Endpoint;
use super::{pinned, verify, Built, Engine, Progress, Request};
use crate::dockerfile::write_context;
use crate::error::{Error, Result};
use crate::runtime;
use crate::spec::{option_str, Spec};
use crate::support::exec::Run;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Short queries (the engine's answer) must not hang a build on a dead daemon.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The docker engine: the daemon the environment names, or one of a pool ([`Endpoint`]).
#[derive(Default)]
pub struct Docker {
    pub endpoint: Endpoint,
}

impl Docker {
    /// A run of the docker client against this engine's daemon.
    fn run<'a>(&self, image: &'a str, client: &'a Path, args: Vec<String>) -> Run<'a> {
        let mut run = Run::new("docker", image, client, args);
        run.env = self.endpoint.env();
        run
    }

    /// The daemon's `os/arch`, which decides what it builds without emulation.
    pub fn platform(&self) -> std::result::Result<String, String> {
        let out = self.server(&["{{.Server.Os}}/{{.Server.Arch}}"])?;
        Ok(out.trim().to_owned())
    }

    /// `docker version --format FORMAT` of the daemon, or why it does not answer, in one line.
    fn server(&self, format: &[&str]) -> std::result::Result<String, String> {
        let candidates = candidates(None).map_err(|e| e.to_string())?;
        let client = detect(&candidates).map_err(|e| e.to_string())?;
        let mut args = vec!["version".to_owned(), "--format".to_owned()];
        args.extend(format.iter().map(|s| (*s).to_owned()));
        let mut run = self.run("", &client.path, args);
        run.timeout = Some(PROBE_TIMEOUT);
        let fail = |why: String| daemon_error(&self.endpoint, &why);
        match run.output() {
            Ok((status, lines)) if status.success() => Ok(lines.join("\n")),
            Ok((_, lines)) => Err(fail(
                lines
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .cloned()
                    .unwrap_or_else(|| "no output".into()),
            )),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

/// Why the daemon at `endpoint` does not answer, in one line that says what to do: the docker
/// client's words for a wrong CA, a refused connection or SSH key, else its last line.
pub fn daemon_error(endpoint: &Endpoint, said: &str) -> String {
    let at = endpoint.describe();
    let why = if said.contains("x509") || said.contains("certificate") {
        match endpoint {
            Endpoint::Host { tls: Some(dir), .. } => format!(
                "TLS: the daemon's certificate is not one {} vouches for, or the daemon refused {} ({said})",
                dir.join("ca.pem").display(),
                dir.join("cert.pem").display()
            ),
            _ => format!("TLS: {said}; give the daemon's CA with ?tls=DIR"),
        }
    } else if said.contains("Permission denied (publickey") || said.contains("Host key verification failed") {
        format!("SSH refused the connection ({said}); check the key the ssh client offers and known_hosts")
    } else if said.contains("connection refused")
        || said.contains("no such host")
        || said.contains("i/o timeout")
        || said.contains("no route to host")
        || said.contains("timed out")
        || said.contains("Is the docker daemon running")
    {
        format!("it cannot be reached ({said})")
    } else {
        said.to_owned()
    };
    let hint = match endpoint {
        Endpoint::Default => "; start dockerd or set DOCKER_HOST",
        _ => "",
    };
    format!("docker: the engine at {at} does not answer: {why}{hint}")
}

impl Engine for Docker {
    fn name(&self) -> &str {
        "docker"
    }

    fn probe(&self) -> std::result::Result<(), String> {
        self.server(&["{{.Server.Version}}"]).map(|_| ())
    }

    fn build(&self, request: &Request<'_>) -> Result<Built> {
        let spec = request.spec;
        let candidates = candidates(Some(spec))?;
        let client = detect(&candidates)?;
        let settings = Settings::of(spec, &client, request.push)?;
        let mut options = request.options.clone();
        options.buildkit = client.mode != Mode::Legacy;
        options.engine = "docker".to_owned();
        if client.mode == Mode::Legacy {
            // The legacy builder cannot mount: say what that costs, once per build.
            (request.progress)(Progress::Step(LEGACY_NOTE));
        }
        let tmp = super::build_folder("imagespec-docker")?;
        let manifest = write_context(spec, &options, &tmp.path().join("build")).map_err(|e| match e {
            // Say which client lacks BuildKit: another one on the machine may have it.
            Error::Build(m) if client.mode == Mode::Legacy => Error::build(format!(
                "{m} (docker client {}: no buildx, version 23 or later; IMAGESPEC_DOCKER or \
                 builder_options.docker_cli can name another)",
                client.path.display()
            )),
            e => e,
        })?;
        let metadata = tmp.path().join("metadata.json");
        let cache = super::cache::registry_cache(spec)?;
        if cache.is_some() && client.mode == Mode::Legacy {
            (request.progress)(Progress::Step(
                "builder_options cache=\"registry\" needs BuildKit: this build uses the local cache only",
            ));
        }
        let args = build_args(&BuildArgs {
            mode: client.mode,
            docker_context: settings.docker_context,
            builder: settings.builder,
            dockerfile: &manifest.dockerfile,
            context: &manifest.context,
            image: request.image,
            platform: &spec.platform,
            no_cache: request.no_cache,
            secrets: &manifest.secrets,
            push_direct: settings.push_direct,
            metadata_file: settings.push_direct.then_some(metadata.as_path()),
            cache: cache.as_deref(),
        });
        let mut run = self.run(request.image, &client.path, args);
        if let Some(v) = client.mode.buildkit_env() {
            run.env.push(("DOCKER_BUILDKIT".into(), v.into()));
        }
        if let Some(conf) = &spec.registry_config {
            let dir = config_dir(conf, &tmp.path().join("docker-config"))?;
            run.env
                .push(("DOCKER_CONFIG".into(), dir.to_string_lossy().into_owned()));
        }
        let mut steps = HashSet::new();
        run.checked(&mut |line| {
            if let Some(step) = step_of(line, &mut steps) {
                (request.progress)(Progress::Step(step));
            }
        })?;
        if settings.push_direct {
            // BuildKit pushed it already: nothing local to check before the push.
            (request.progress)(Progress::Step(
                "the image's imagespec is not checked: buildx pushed it directly (a named builder or several platforms)",
            ));
            let text = std::fs::read_to_string(&metadata).unwrap_or_default();
            return Ok(pinned(request.image, metadata_digest(&text)));
        }
        let check = self.run(
            request.image,
            &client.path,
            check_args(settings.docker_context, &spec.platform, request.image),
        );
        verify::check(spec, request.progress, || {
            runtime::check_output(request.image, &check.output()?.1.join("\n"))
        })
        .inspect_err(|_| {
            // The tag must not stay on an image with the wrong imagespec.
            let rmi = self.run(
                request.image,
                &client.path,
                rmi_args(settings.docker_context, request.image),
            );
            let _ = rmi.output();
        })?;
        if !request.push {
            return Ok(pinned(request.image, None));
        }
        (request.progress)(Progress::Pushing(request.image));
        let mut push = self.run(
            request.image,
            &client.path,
            push_args(settings.docker_context, request.image),
        );
        push.env = run.env.clone();
        let mut lines = Vec::new();
        push.checked(&mut |l| lines.push(l.to_owned()))?;
        let built = pinned(request.image, push_digest(&lines));
        if cache.is_some() && client.mode == Mode::Builtin {
            match super::cache::tag_docker_cache(spec, &built.name) {
                Ok(tag) => (request.progress)(Progress::Step(&format!("build cache: tagged {tag}"))),
                Err(why) => (request.progress)(Progress::Step(&format!("build cache not tagged: {why}"))),
            }
        }
        Ok(built)
    }
}

/// A docker config folder for a spec's `registry_config` (a `config.json` file of any name): the
/// docker CLI reads credentials only from `$DOCKER_CONFIG/config.json`, so the file is copied there
/// (readable by this user only, removed with the build's folder), and the user's own plugins and
/// contexts are linked in so that buildx and `docker_context` keep working.
pub(crate) fn config_dir(conf: &Path, dir: &Path) -> Result<PathBuf> {
    let bad = |e: std::io::Error| {
        Error::build(format!(
            "registry_config {}: {e}; give the path of a docker config.json",
            conf.display()
        ))
    };
    let text = std::fs::read(conf).map_err(bad)?;
    std::fs::create_dir_all(dir).map_err(bad)?;
    let file = dir.join("config.json");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&file).map_err(bad)?;
        f.write_all(&text).map_err(bad)?;
    }
    let own = crate::registry::credentials::DockerConfig::default_path()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(own) = own {
        for sub in ["cli-plugins", "contexts"] {
            let from = own.join(sub);
            #[cfg(unix)]
            if from.is_dir() {
                let _ = std::os::unix::fs::symlink(&from, dir.join(sub));
            }
        }
    }
    Ok(dir.to_path_buf())
}

pub const LEGACY_NOTE: &str = "docker: the client has no BuildKit (no buildx, version 23 or later), so the \
     legacy builder builds: no cache mounts (apt and pip download again every build), no build secrets";

/// What `builder_options` and the client allow for one build.
struct Settings<'a> {
    docker_context: Option<&'a str>,
    builder: Option<&'a str>,
    push_direct: bool,
}

impl<'a> Settings<'a> {
    fn of(spec: &'a Spec, client: &Client, push: bool) -> Result<Settings<'a>> {
        let builder = option_str(spec, "buildx_builder")?;
        let docker_context = option_str(spec, "docker_context")?;
        let multi = spec.platform.contains(',');
        if client.mode != Mode::Buildx {
            let needs = if builder.is_some() {
                Some(format!(
                    "builder_options.buildx_builder ({})",
                    builder.unwrap_or_default()
                ))
            } else if multi {
                Some(format!("a multi-platform build ({})", spec.platform))
            } else {
                None
            };
            if let Some(needs) = needs {
                return Err(Error::build(format!(
                    "docker: {needs} needs the buildx plugin, and {} has none ({}); install \
                     docker-buildx, or point IMAGESPEC_DOCKER or builder_options.docker_cli at a \
                     client that has it",
                    client.path.display(),
                    client.mode.as_str()
                )));
            }
        }
        if multi && !push {
            return Err(Error::build(format!(
                "docker: a multi-platform image ({}) cannot be loaded into the local engine; give \
                 the spec a registry to push it to",
                spec.platform
            )));
        }
        Ok(Settings {
            docker_context,
            builder,
            // A named builder (remote or Kubernetes BuildKit) has no local image store to load
            // into cheaply, and multi-platform images cannot be loaded at all: push from BuildKit.
            push_direct: client.mode == Mode::Buildx && push && (builder.is_some() || multi),
        })
    }
}
