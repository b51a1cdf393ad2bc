//! Generation tests: layer order, quoting against a Dockerfile parser, secrets, the context.

use super::*;
use crate::spec::{Context, RawBase, RawSpec, Spec};
use crate::value::Value;
use std::collections::BTreeMap;
use std::path::Path;

mod build_context;
mod groups;

fn ctx(dir: &Path) -> Context {
    Context {
        base_dir: dir.to_path_buf(),
        python_version: "3.11".into(),
        host_arch: "x86_64".into(),
    }
}

fn spec_in(dir: &Path, raw: RawSpec) -> Spec {
    Spec::from_raw(raw, &ctx(dir)).unwrap()
}

fn spec(raw: RawSpec) -> Spec {
    spec_in(Path::new("/nonexistent"), raw)
}

fn strs(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

/// Logical instructions as docker's parser sees them: lines joined on a trailing `\`, comment and
/// blank lines dropped (also inside continuations), the instruction word upper-cased.
pub(crate) fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        let body = line.trim_end();
        if let Some(head) = body.strip_suffix('\\') {
            current.push_str(head);
            continue;
        }
        current.push_str(line);
        let logical = std::mem::take(&mut current);
        let logical = logical.trim();
        if logical.is_empty() {
            continue;
        }
        let (word, rest) = logical.split_once(char::is_whitespace).unwrap_or((logical, ""));
        out.push((word.to_ascii_uppercase(), rest.trim().to_owned()));
    }
    assert!(current.is_empty(), "dangling continuation");
    out
}

fn words(text: &str) -> Vec<String> {
    instructions(text).into_iter().map(|(w, _)| w).collect()
}

/// The JSON array at the end of a RUN/ENTRYPOINT/COPY (after any `--flag`s).
fn json_args(rest: &str) -> Vec<String> {
    let start = rest.find('[').expect("a JSON array");
    serde_json::from_str(&rest[start..]).expect("valid JSON")
}

/// `k="v"` pairs of ENV/LABEL, unquoted as docker's word lexer does inside double quotes.
fn env_pairs(rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(_) = chars.peek() else { break };
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        assert_eq!(chars.next(), Some('"'), "value of {key} is not double-quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated quote") {
                '"' => break,
                '$' => panic!("unescaped $ in {key}"),
                '\\' => match chars.peek() {
                    Some('"' | '$' | '\\') => value.push(chars.next().unwrap()),
                    _ => value.push('\\'),
                },
                c => value.push(c),
            }
        }
        out.push((key, value));
    }
    out
}

#[test]
fn the_layer_order_is_the_documented_one() {
    let s = spec(RawSpec {
        python_version: Some("3.11".into()),
        packages: strs(&["pandas"]),
        apt_packages: strs(&["git"]),
        commands: strs(&["echo hi"]),
        env: Some(BTreeMap::from([("A".to_owned(), "1".to_owned())])),
        entrypoint: strs(&["python"]),
        ..RawSpec::default()
    });
    let text = dockerfile(&s, &BuildOptions::default()).unwrap();
    assert!(!text.contains("# syntax"), "a syntax line pulls a frontend image");
    assert_eq!(
        words(&text),
        [
            "FROM",
            "USER",
            "RUN",
            "RUN",
            "RUN",
            "ENV",
            "RUN",
            "RUN",
            "ENV",
            "WORKDIR",
            "USER",
            "ENTRYPOINT",
            "LABEL",
            "ENV"
        ]
    );
    let ins = instructions(&text);
    assert_eq!(ins[0].1, "python:3.11-slim");
    assert_eq!(json_args(&ins[7].1), ["/bin/sh", "-c", "echo hi"]);
    let last = env_pairs(&ins.last().unwrap().1);
    assert_eq!(
        last,
        [
            ("PYTHONPATH".into(), "/root".into()),
            ("_F_IMG_ID".into(), crate::identity::spec_id(&s))
        ]
    );
}

#[test]
fn an_image_built_for_a_flytekit_spec_carries_flytekits_id_and_ours() {
    let s = spec(RawSpec {
        python_version: Some("3.11".into()),
        name: Some("fk".into()),
        registry: Some("localhost:5000".into()),
        ..RawSpec::default()
    });
    let plain = dockerfile(&s, &BuildOptions::default()).unwrap();
    let image = format!(
        "{}:{}",
        s.repository(),
        crate::identity::tag_inputs(&s, None).unwrap().tag
    );
    let ours = crate::identity::spec_id(&s);
    let options = BuildOptions {
        flytekit_ids: BTreeMap::from([
            (image, "FLYTEKIT-ID".to_owned()),
            ("localhost:5000/other:x".to_owned(), "OTHER".to_owned()),
        ]),
        ..BuildOptions::default()
    };
    let text = dockerfile(&s, &options).unwrap();
    let last = env_pairs(&instructions(&text).last().unwrap().1);
    assert_eq!(
        last,
        [
            ("PYTHONPATH".into(), "/root".into()),
            ("IMAGESPEC_IMG_ID".into(), format!("{ours}:FLYTEKIT-ID")),
            ("_F_IMG_ID".into(), "FLYTEKIT-ID".into()),
        ]
    );
    // Only the last instruction differs: no layer, label or tag changes.
    let (a, b): (Vec<_>, Vec<_>) = (plain.lines().collect(), text.lines().collect());
    let common = a.len() - 2;
    assert_eq!(a[..common], b[..common]);
    // A user env cannot take the variable.
    let taken = spec(RawSpec {
        env: Some(BTreeMap::from([("IMAGESPEC_IMG_ID".to_owned(), "x".to_owned())])),
        ..RawSpec::default()
    });
    let e = dockerfile(&taken, &BuildOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("IMAGESPEC_IMG_ID is set by imagespec"), "{e}");
}

#[test]
fn hostile_values_never_start_an_instruction() {
    let payload = "x\nRUN touch /pwned\r\nRUN [\"touch\", \"/pwned\"] \\\n$(id) `id` \\ \"'";
    let s = spec(RawSpec {
        python_version: Some("3.11".into()),
        commands: strs(&[payload, "echo hi\nRUN touch /pwned", "a \\", "\\"]),
        entrypoint: strs(&[payload, "\\"]),
        env: Some(BTreeMap::from([
            (
                "A".to_owned(),
                "x $(id) `id` \" \\ \\\" $HOME ${HOME} end\\".to_owned(),
            ),
            ("B".to_owned(), "\\".to_owned()),
        ])),
        ..RawSpec::default()
    });
    for buildkit in [true, false] {
        let options = BuildOptions {
            buildkit,
            ..BuildOptions::default()
        };
        let text = dockerfile(&s, &options).unwrap();
        let ins = instructions(&text);
        let expected_words = [
            "FROM",
            "USER",
            "RUN",
            "RUN",
            "ENV",
            "RUN",
            "RUN",
            "RUN",
            "RUN",
            "RUN",
            "ENV",
            "WORKDIR",
            "USER",
            "ENTRYPOINT",
            "LABEL",
            "ENV",
        ];
        assert_eq!(
            ins.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
            expected_words
        );
        assert_eq!(json_args(&ins[6].1), ["/bin/sh", "-c", payload]);
        assert_eq!(
            json_args(&ins[7].1),
            ["/bin/sh", "-c", "echo hi\nRUN touch /pwned"]
        );
        assert_eq!(json_args(&ins[8].1), ["/bin/sh", "-c", "a \\"]);
        assert_eq!(json_args(&ins[13].1), [payload, "\\"]);
        let env = env_pairs(&ins[10].1);
        assert_eq!(env[0].1, s.env["A"]);
        assert_eq!(env[1].1, "\\");
        assert!(!text.lines().any(|l| l.starts_with("RUN touch")));
    }
}

#[test]
fn env_values_with_line_breaks_are_refused() {
    for v in ["x\nRUN touch /pwned", "x\r"] {
        let s = spec(RawSpec {
            python_version: Some("3.11".into()),
            env: Some(BTreeMap::from([("A".to_owned(), v.to_owned())])),
            ..RawSpec::default()
        });
        let e = dockerfile(&s, &BuildOptions::default()).unwrap_err().to_string();
        assert!(e.contains("line break"), "{e}");
    }
}

#[test]
fn hostile_packages_are_refused_before_anything_is_written() {
    for (field, value) in [
        ("packages", "pandas; rm -rf /"),
        ("packages", "$(id)"),
        ("packages", "`id`"),
        ("packages", "pandas\nRUN touch /pwned"),
        ("runtime_packages", "x==1 && id"),
        ("apt_packages", "git=$(id)"),
        ("conda_packages", "numpy;id"),
    ] {
        let mut raw = RawSpec {
            python_version: Some("3.11".into()),
            ..RawSpec::default()
        };
        let v = strs(&[value]);
        match field {
            "packages" => raw.packages = v,
            "runtime_packages" => raw.runtime_packages = v,
            "apt_packages" => raw.apt_packages = v,
            _ => raw.conda_packages = v,
        }
        // Some are refused at construction already (line breaks, Debian names); the rest here.
        let Ok(s) = Spec::from_raw(raw, &ctx(Path::new("/nonexistent"))) else {
            continue;
        };
        let e = dockerfile(&s, &BuildOptions::default()).unwrap_err();
        assert_eq!(e.field(), Some(format!("{field}[0]").as_str()), "{value:?}: {e}");
    }
}

#[test]
fn credentials_and_secrets_never_reach_the_dockerfile() {
    let s = spec(RawSpec {
        python_version: Some("3.11".into()),
        packages: strs(&[
            "pandas",
            "lib @ git+https://oauth2:pkgt0ken@git.example.com/lib.git",
        ]),
        runtime_packages: strs(&["tool @ https://rtt0ken@files.example.com/tool-1.0-py3-none-any.whl"]),
        pip_index: Some("https://user:s3cret@pypi.example.com/simple".into()),
        pip_extra_index_url: strs(&["https://tok3n@extra.example.com/simple"]),
        pip_extra_args: Some("--extra-index-url https://u:pa55@third.example.com --pre".into()),
        pip_secret_mounts: Some(vec![("netrc".into(), "/root/.netrc".into())]),
        ..RawSpec::default()
    });
    let options = BuildOptions {
        ca_bundle: Some(CaBundle::Pem(
            "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n".into(),
        )),
        ..BuildOptions::default()
    };
    let text = dockerfile(&s, &options).unwrap();
    for secret in ["s3cret", "tok3n", "pa55", "QUJD", "user:", "pkgt0ken", "rtt0ken"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    for id in [
        SECRET_CA,
        SECRET_PIP_CONF,
        SECRET_PIP_ARGS,
        SECRET_PIP_REQS,
        "imagespec_secret_0",
    ] {
        assert!(
            text.contains(&format!("--mount=type=secret,id={id},")),
            "{id} not mounted"
        );
    }
    assert!(text.contains("target=/root/.netrc"));
    // The hostnames stay visible (redacted) in the spec label.
    assert!(text.contains("pypi.example.com"));

    let legacy = BuildOptions {
        buildkit: false,
        ..BuildOptions::default()
    };
    let e = dockerfile(&s, &legacy).unwrap_err().to_string();
    assert!(e.contains("BuildKit"), "{e}");
}

#[test]
fn without_buildkit_there_is_no_mount_and_a_comment_says_what_is_lost() {
    let s = spec(RawSpec {
        python_version: Some("3.11".into()),
        apt_packages: strs(&["git"]),
        ..RawSpec::default()
    });
    let text = dockerfile(
        &s,
        &BuildOptions {
            buildkit: false,
            ..BuildOptions::default()
        },
    )
    .unwrap();
    assert!(!text.contains("--mount"));
    assert!(text.contains("# Written for a builder without BuildKit"));
    let ca = BuildOptions {
        buildkit: false,
        ca_bundle: Some(CaBundle::Pem("-----BEGIN CERTIFICATE-----".into())),
        ..BuildOptions::default()
    };
    assert!(dockerfile(&s, &ca).is_err());
}

#[test]
fn base_images() {
    let base = spec(RawSpec {
        name: Some("base".into()),
        registry: Some("localhost:5000".into()),
        python_version: Some("3.12".into()),
        packages: strs(&["numpy"]),
        platform: Some("linux/amd64".into()),
        ..RawSpec::default()
    });
    let child = spec(RawSpec {
        base_image: Some(RawBase::Built(Box::new(base.clone()))),
        packages: strs(&["pandas"]),
        ..RawSpec::default()
    });
    let text = dockerfile(&child, &BuildOptions::default()).unwrap();
    let from = &instructions(&text)[0].1;
    assert_eq!(*from, crate::identity::image_name(&base, None).unwrap());
    assert!(text.contains("base_image_name"));

    let cuda = spec(RawSpec {
        python_version: Some("3.11".into()),
        cuda: Some("12.1".into()),
        ..RawSpec::default()
    });
    let e = dockerfile(&cuda, &BuildOptions::default()).unwrap_err();
    assert_eq!(e.field(), Some("cuda"));

    let named = spec(RawSpec {
        base_image: Some(RawBase::Name("localhost:5000/py:3.11$x".into())),
        ..RawSpec::default()
    });
    assert!(dockerfile(&named, &BuildOptions::default()).is_err());
}
