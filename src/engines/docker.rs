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

use super::{leading_digest, pinned, verify, Built, Engine, Progress, Request};
use crate::dockerfile::{write_context, BuildSecret};
use crate::error::{Error, Result};
use crate::runtime;
use crate::spec::{option_str, Spec};
use crate::support::exec::{which_all, Run};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What a client builds with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Buildx,
    Builtin,
    Legacy,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Buildx => "buildx",
            Mode::Builtin => "built-in BuildKit",
            Mode::Legacy => "legacy builder",
        }
    }

    /// The `DOCKER_BUILDKIT` value the client must run with; buildx ignores it.
    fn buildkit_env(self) -> Option<&'static str> {
        match self {
            Mode::Buildx => None,
            Mode::Builtin => Some("1"),
            Mode::Legacy => Some("0"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub path: PathBuf,
    pub mode: Mode,
}

/// Short queries (versions, the engine's answer) must not hang a build on a dead daemon.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Docker;

impl Engine for Docker {
    fn name(&self) -> &str {
        "docker"
    }

    fn probe(&self) -> std::result::Result<(), String> {
        let candidates = candidates(None).map_err(|e| e.to_string())?;
        let client = detect(&candidates).map_err(|e| e.to_string())?;
        let mut run = Run::new(
            "docker",
            "",
            &client.path,
            vec!["version".into(), "--format".into(), "{{.Server.Version}}".into()],
        );
        run.timeout = Some(PROBE_TIMEOUT);
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
        let fail = |why: String| {
            format!("docker: the engine at {host} does not answer: {why}; start dockerd or set DOCKER_HOST")
        };
        match run.output() {
            Ok((status, _)) if status.success() => Ok(()),
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
        });
        let mut run = Run::new("docker", request.image, &client.path, args);
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
        let check = Run::new(
            "docker",
            request.image,
            &client.path,
            check_args(settings.docker_context, &spec.platform, request.image),
        );
        verify::check(spec, request.progress, || {
            runtime::check_output(request.image, &check.output()?.1.join("\n"))
        })
        .inspect_err(|_| {
            // The tag must not stay on an image with the wrong imagespec.
            let rmi = Run::new(
                "docker",
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
        let mut push = Run::new(
            "docker",
            request.image,
            &client.path,
            push_args(settings.docker_context, request.image),
        );
        push.env = run.env.clone();
        let mut lines = Vec::new();
        push.checked(&mut |l| lines.push(l.to_owned()))?;
        Ok(pinned(request.image, push_digest(&lines)))
    }
}

/// A docker config folder for a spec's `registry_config` (a `config.json` file of any name): the
/// docker CLI reads credentials only from `$DOCKER_CONFIG/config.json`, so the file is copied there
/// (readable by this user only, removed with the build's folder), and the user's own plugins and
/// contexts are linked in so that buildx and `docker_context` keep working.
fn config_dir(conf: &Path, dir: &Path) -> Result<PathBuf> {
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

/// The pieces of one `docker build` command line.
pub struct BuildArgs<'a> {
    pub mode: Mode,
    pub docker_context: Option<&'a str>,
    pub builder: Option<&'a str>,
    pub dockerfile: &'a Path,
    pub context: &'a Path,
    pub image: &'a str,
    /// Comma-separated platforms; empty for the engine's own.
    pub platform: &'a str,
    pub no_cache: bool,
    pub secrets: &'a [BuildSecret],
    /// buildx pushes itself (`--push`) instead of loading the image.
    pub push_direct: bool,
    /// buildx writes the pushed digest there (`--metadata-file`).
    pub metadata_file: Option<&'a Path>,
}

pub fn build_args(a: &BuildArgs<'_>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = a.docker_context {
        args.extend(["--context".to_owned(), c.to_owned()]);
    }
    if a.mode == Mode::Buildx {
        args.extend(["buildx".to_owned(), "build".to_owned()]);
        if let Some(b) = a.builder {
            args.extend(["--builder".to_owned(), b.to_owned()]);
        }
    } else {
        args.push("build".to_owned());
    }
    args.extend([
        "-f".to_owned(),
        a.dockerfile.to_string_lossy().into_owned(),
        "-t".to_owned(),
        a.image.to_owned(),
    ]);
    if !a.platform.is_empty() {
        args.push(format!("--platform={}", a.platform));
    }
    if a.no_cache {
        args.push("--no-cache".to_owned());
    }
    for s in a.secrets {
        args.extend([
            "--secret".to_owned(),
            format!("id={},src={}", s.id, s.path.display()),
        ]);
    }
    if a.mode != Mode::Legacy {
        // One line per event, with the step numbers the progress parser reads.
        args.push("--progress=plain".to_owned());
    }
    if a.mode == Mode::Buildx {
        args.push(if a.push_direct { "--push" } else { "--load" }.to_owned());
        if let Some(m) = a.metadata_file {
            args.extend(["--metadata-file".to_owned(), m.to_string_lossy().into_owned()]);
        }
    }
    args.push(a.context.to_string_lossy().into_owned());
    args
}

/// `docker run` of the imagespec check in a built image: no network, the venv's Python.
pub fn check_args(docker_context: Option<&str>, platform: &str, image: &str) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = docker_context {
        args.extend(["--context".to_owned(), c.to_owned()]);
    }
    args.extend(["run", "--rm", "--network", "none"].map(str::to_owned));
    if !platform.is_empty() {
        args.push(format!("--platform={platform}"));
    }
    args.extend([
        "--entrypoint".to_owned(),
        verify::python(),
        image.to_owned(),
        "-c".to_owned(),
        runtime::CHECK_SCRIPT.to_owned(),
    ]);
    args
}

fn rmi_args(docker_context: Option<&str>, image: &str) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = docker_context {
        args.extend(["--context".to_owned(), c.to_owned()]);
    }
    args.extend(["rmi".to_owned(), image.to_owned()]);
    args
}

pub fn push_args(docker_context: Option<&str>, image: &str) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = docker_context {
        args.extend(["--context".to_owned(), c.to_owned()]);
    }
    args.extend(["push".to_owned(), image.to_owned()]);
    args
}

/// The clients to consider, in order: `$IMAGESPEC_DOCKER` alone when set, else
/// `builder_options.docker_cli` alone, else every `docker` on PATH.
pub fn candidates(spec: Option<&Spec>) -> Result<Vec<PathBuf>> {
    if let Some(p) = std::env::var_os("IMAGESPEC_DOCKER").filter(|p| !p.is_empty()) {
        return Ok(vec![PathBuf::from(p)]);
    }
    if let Some(spec) = spec {
        if let Some(p) = option_str(spec, "docker_cli")? {
            return Ok(vec![PathBuf::from(p)]);
        }
    }
    let found = which_all("docker");
    if found.is_empty() {
        return Err(Error::build(
            "docker: no `docker` client on PATH; install it with `apt-get install -y docker.io` \
             (Debian/Ubuntu), or set IMAGESPEC_DOCKER to a client",
        ));
    }
    Ok(found)
}

/// The client to build with among `candidates` (asked once per process for each list).
pub fn detect(candidates: &[PathBuf]) -> Result<Client> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<PathBuf>, Client>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(candidates) {
        return Ok(c.clone());
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in candidates {
        match client_mode(path) {
            Ok(mode) => {
                found.push(Client {
                    path: path.clone(),
                    mode,
                });
                // Nothing beats buildx: no need to ask the others.
                if mode == Mode::Buildx {
                    break;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some(client) = choose(&found) else {
        return Err(Error::build(errors.join("; ")));
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(candidates.to_vec(), client.clone());
    Ok(client)
}

/// The first client with buildx, else the first with built-in BuildKit, else the first.
pub fn choose(clients: &[Client]) -> Option<Client> {
    [Mode::Buildx, Mode::Builtin]
        .iter()
        .find_map(|m| clients.iter().find(|c| c.mode == *m))
        .or_else(|| clients.first())
        .cloned()
}

/// Asks one client what it builds with.
fn client_mode(path: &Path) -> Result<Mode> {
    let query = |args: &[&str]| {
        let mut run = Run::new("docker", "", path, args.iter().map(|a| (*a).to_owned()).collect());
        run.timeout = Some(QUERY_TIMEOUT);
        run.output()
    };
    let (status, _) = query(&["buildx", "version"])?;
    if status.success() {
        return Ok(Mode::Buildx);
    }
    // `--version` is the client's alone: it never waits for a daemon, unlike `docker version`.
    let (_, lines) = query(&["--version"])?;
    Ok(mode_of(false, parse_major(&lines.join("\n"))))
}

pub fn mode_of(buildx: bool, client_major: Option<u32>) -> Mode {
    match (buildx, client_major) {
        (true, _) => Mode::Buildx,
        // Clients before 23 carry BuildKit themselves; from 23 on BuildKit means buildx.
        (false, Some(m)) if m < 23 => Mode::Builtin,
        _ => Mode::Legacy,
    }
}

/// The major version of `Docker version 20.10.24+dfsg1, build 297e128` (or a bare `28.0.1`).
pub fn parse_major(text: &str) -> Option<u32> {
    let text = text.trim();
    let v = text
        .strip_prefix("Docker version ")
        .unwrap_or(text)
        .trim_start_matches('v');
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !v[digits.len()..].starts_with('.') {
        return None;
    }
    digits.parse().ok()
}

/// A step started: the BuildKit line `#7 [2/5] RUN ...` (first time step 7 shows) or the legacy
/// `Step 2/5 : RUN ...`; `seen` holds the BuildKit step numbers already reported.
pub fn step_of<'a>(line: &'a str, seen: &mut HashSet<u32>) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("Step ") {
        let (counter, _) = rest.split_once(" : ")?;
        return is_counter(counter).then_some(line);
    }
    let rest = line.strip_prefix('#')?;
    let (num, text) = rest.split_once(' ')?;
    let num: u32 = num.parse().ok()?;
    let inner = text.strip_prefix('[')?.split_once(']')?.0;
    // `[2/5]` or `[stage 2/5]`; `[internal] ...` lines are BuildKit's own work, not steps.
    if !is_counter(inner.rsplit(' ').next()?) {
        return None;
    }
    seen.insert(num).then_some(text)
}

fn is_counter(s: &str) -> bool {
    let Some((a, b)) = s.split_once('/') else {
        return false;
    };
    !a.is_empty()
        && !b.is_empty()
        && a.chars().all(|c| c.is_ascii_digit())
        && b.chars().all(|c| c.is_ascii_digit())
}

/// The digest `docker push` reports: `<tag>: digest: sha256:<hex> size: <n>`.
pub fn push_digest(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.split_once(": digest: ").and_then(|(_, d)| leading_digest(d)))
}

/// The pushed digest in buildx's `--metadata-file`.
pub fn metadata_digest(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    leading_digest(v.get("containerimage.digest")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: Mode) -> BuildArgs<'static> {
        BuildArgs {
            mode,
            docker_context: None,
            builder: None,
            dockerfile: Path::new("/t/context/Dockerfile"),
            context: Path::new("/t/context"),
            image: "localhost:5000/app:abc",
            platform: "linux/amd64",
            no_cache: false,
            secrets: &[],
            push_direct: false,
            metadata_file: None,
        }
    }

    #[test]
    fn builtin_and_legacy_build_with_docker_build() {
        let secrets = [BuildSecret {
            id: "imagespec_ca".into(),
            path: "/t/ca.pem".into(),
        }];
        let a = BuildArgs {
            no_cache: true,
            secrets: &secrets,
            ..args(Mode::Builtin)
        };
        assert_eq!(
            build_args(&a).join(" "),
            "build -f /t/context/Dockerfile -t localhost:5000/app:abc --platform=linux/amd64 --no-cache \
             --secret id=imagespec_ca,src=/t/ca.pem --progress=plain /t/context"
        );
        assert_eq!(
            build_args(&args(Mode::Legacy)).join(" "),
            "build -f /t/context/Dockerfile -t localhost:5000/app:abc --platform=linux/amd64 /t/context"
        );
    }

    #[test]
    fn buildx_loads_or_pushes_through_a_named_builder() {
        assert_eq!(
            build_args(&args(Mode::Buildx)).join(" "),
            "buildx build -f /t/context/Dockerfile -t localhost:5000/app:abc --platform=linux/amd64 \
             --progress=plain --load /t/context"
        );
        let a = BuildArgs {
            docker_context: Some("remote"),
            builder: Some("k8s"),
            push_direct: true,
            metadata_file: Some(Path::new("/t/meta.json")),
            platform: "linux/amd64,linux/arm64",
            ..args(Mode::Buildx)
        };
        assert_eq!(
            build_args(&a).join(" "),
            "--context remote buildx build --builder k8s -f /t/context/Dockerfile -t localhost:5000/app:abc \
             --platform=linux/amd64,linux/arm64 --progress=plain --push --metadata-file /t/meta.json /t/context"
        );
        assert_eq!(
            push_args(Some("remote"), "r/i:t"),
            ["--context", "remote", "push", "r/i:t"]
        );
    }

    #[test]
    fn capabilities_from_versions() {
        assert_eq!(
            parse_major("Docker version 20.10.24+dfsg1, build 297e128"),
            Some(20)
        );
        assert_eq!(parse_major("Docker version 28.0.1, build 068a01e"), Some(28));
        assert_eq!(parse_major("28.0.1"), Some(28));
        assert_eq!(parse_major("garbage"), None);
        assert_eq!(parse_major(""), None);
        assert_eq!(mode_of(true, Some(28)), Mode::Buildx);
        assert_eq!(mode_of(false, Some(20)), Mode::Builtin);
        assert_eq!(mode_of(false, Some(28)), Mode::Legacy);
        assert_eq!(mode_of(false, None), Mode::Legacy);
    }

    #[test]
    fn choice_prefers_buildx_then_builtin_then_first() {
        let c = |p: &str, mode| Client { path: p.into(), mode };
        let legacy = c("/usr/local/bin/docker", Mode::Legacy);
        let builtin = c("/usr/bin/docker", Mode::Builtin);
        let buildx = c("/opt/docker", Mode::Buildx);
        assert_eq!(choose(&[legacy.clone(), builtin.clone()]), Some(builtin.clone()));
        assert_eq!(choose(&[legacy.clone(), builtin, buildx.clone()]), Some(buildx));
        assert_eq!(choose(std::slice::from_ref(&legacy)), Some(legacy));
        assert_eq!(choose(&[]), None);
    }

    #[cfg(unix)]
    #[test]
    fn detection_asks_each_client() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = |name: &str, script: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let new = fake(
            "new",
            r#"case "$1" in buildx) echo "docker: 'buildx' is not a docker command." >&2; exit 1;;
               --version) echo "Docker version 28.0.1, build 068a01e";; esac"#,
        );
        let old = fake(
            "old",
            r#"case "$1" in buildx) exit 1;; --version) echo "Docker version 20.10.24+dfsg1, build 297e128";; esac"#,
        );
        let bx = fake(
            "bx",
            r#"case "$1" in buildx) echo "github.com/docker/buildx v0.20";; esac"#,
        );
        assert_eq!(detect(&[new.clone(), old.clone()]).unwrap().path, old);
        assert_eq!(detect(std::slice::from_ref(&new)).unwrap().mode, Mode::Legacy);
        assert_eq!(
            detect(&[new.clone(), old, bx.clone()]).unwrap().mode,
            Mode::Buildx
        );
        let e = detect(&[dir.path().join("missing")]).unwrap_err().to_string();
        assert!(e.contains("not installed"), "{e}");
    }

    #[test]
    fn steps_from_buildkit_and_legacy_output() {
        let mut seen = HashSet::new();
        let lines = [
            "#1 [internal] load build definition from Dockerfile",
            "#5 [1/4] FROM localhost:5000/base@sha256:ab",
            "#5 resolve localhost:5000/base done",
            "#7 [2/4] RUN [\"/bin/sh\", \"-c\", \"apt-get\"]",
            "#7 [2/4] RUN [\"/bin/sh\", \"-c\", \"apt-get\"]",
            "#7 0.312 Reading package lists...",
            "#9 [stage-1 3/4] COPY copy/ /root/",
            "Step 2/5 : RUN echo hi",
            "Step x/5 : nope",
            "#10 DONE 0.1s",
        ];
        let steps: Vec<&str> = lines.iter().filter_map(|l| step_of(l, &mut seen)).collect();
        assert_eq!(
            steps,
            [
                "[1/4] FROM localhost:5000/base@sha256:ab",
                "[2/4] RUN [\"/bin/sh\", \"-c\", \"apt-get\"]",
                "[stage-1 3/4] COPY copy/ /root/",
                "Step 2/5 : RUN echo hi",
            ]
        );
    }

    #[test]
    fn digests_from_push_output_and_metadata() {
        let hex = "a".repeat(64);
        let lines = vec![
            "The push refers to repository [localhost:5000/app]".to_owned(),
            "5f70bf18a086: Pushed".to_owned(),
            format!("abc: digest: sha256:{hex} size: 1573"),
        ];
        assert_eq!(push_digest(&lines), Some(format!("sha256:{hex}")));
        assert_eq!(push_digest(&lines[..2]), None);
        assert_eq!(push_digest(&["x: digest: sha256:abc size: 1".to_owned()]), None);
        assert_eq!(
            metadata_digest(&format!(r#"{{"containerimage.digest": "sha256:{hex}"}}"#)),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(metadata_digest("{}"), None);
    }
}
