//! The docker command lines the engine runs (`build` or `buildx build`, the check in the image,
//! `push`, `rmi`) and what it reads back from their output: the steps to report and the pushed
//! digest.

use super::Mode;
use crate::dockerfile::BuildSecret;
use crate::engines::{leading_digest, verify};
use crate::runtime;
use std::collections::HashSet;
use std::path::Path;

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
    /// The repository that keeps the build cache (`builder_options.cache = "registry"`).
    pub cache: Option<&'a str>,
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
        args.extend(s.args());
    }
    if let Some(repo) = a.cache {
        let cache = format!("{repo}:{}", crate::engines::cache::DOCKER_CACHE_TAG);
        match a.mode {
            Mode::Buildx => args.extend([
                "--cache-to".to_owned(),
                format!("type=registry,ref={cache},mode=max"),
                "--cache-from".to_owned(),
                format!("type=registry,ref={cache}"),
            ]),
            // The image carries its own cache; the engine tags it as the cache after the push.
            Mode::Builtin => args.extend([
                "--build-arg".to_owned(),
                "BUILDKIT_INLINE_CACHE=1".to_owned(),
                "--cache-from".to_owned(),
                cache,
            ]),
            // The legacy builder reads a cache only from images already pulled: not asked.
            Mode::Legacy => {}
        }
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

pub(super) fn rmi_args(docker_context: Option<&str>, image: &str) -> Vec<String> {
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
            cache: None,
        }
    }

    #[test]
    fn registry_cache_by_mode() {
        let with = |mode| {
            build_args(&BuildArgs {
                cache: Some("localhost:5000/app"),
                ..args(mode)
            })
            .join(" ")
        };
        assert!(with(Mode::Builtin)
            .contains("--build-arg BUILDKIT_INLINE_CACHE=1 --cache-from localhost:5000/app:imagespec-cache"));
        assert!(with(Mode::Buildx).contains(
            "--cache-to type=registry,ref=localhost:5000/app:imagespec-cache,mode=max \
             --cache-from type=registry,ref=localhost:5000/app:imagespec-cache"
        ));
        assert!(!with(Mode::Legacy).contains("cache"));
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
