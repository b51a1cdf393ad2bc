//! Generation tests: layer order, quoting against a Dockerfile parser, secrets, the context.

use super::*;
use crate::spec::{Context, RawBase, RawSpec, Spec};
use crate::value::Value;
use std::collections::BTreeMap;
use std::path::Path;

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

#[test]
fn the_context_holds_exactly_the_hashed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    let w = |rel: &str, body: &str| {
        let p = proj.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    w("src/app.py", "print('hi')\n");
    w("src/.gitignore", "ignored.txt\n");
    w("src/ignored.txt", "no\n");
    w("src/odd name $(id).py", "x = 1\n");
    w("conf/a.yaml", "a: 1\n");
    w("requirements.txt", "rich\n");
    w("netrc", "machine x login y password SECRETPASS\n");
    std::os::unix::fs::symlink("app.py", proj.join("src/link.py")).unwrap();
    let s = spec_in(
        &proj,
        RawSpec {
            python_version: Some("3.11".into()),
            source_root: Some("src".into()),
            source_copy_mode: Some("ALL".into()),
            copy: strs(&["conf"]),
            requirements: Some("requirements.txt".into()),
            pip_secret_mounts: Some(vec![("netrc".into(), "/root/.netrc".into())]),
            ..RawSpec::default()
        },
    );
    let out = tmp.path().join("ctx");
    let m = write_context(&s, &BuildOptions::default(), &out).unwrap();
    assert_eq!(
        m.files,
        [
            "Dockerfile",
            "copy/conf/a.yaml",
            "imagespec/requirements/requirements.txt",
            "source/.gitignore",
            "source/app.py",
            "source/link.py",
            "source/odd name $(id).py",
        ]
    );
    let tags = crate::identity::tag_inputs(&s, None).unwrap();
    assert_eq!(m.tag, tags.tag);
    assert_eq!(
        m.dockerfile_text,
        dockerfile(&s, &BuildOptions::default()).unwrap()
    );
    assert!(
        !m.dockerfile_text.contains("odd name"),
        "file names stay out of the Dockerfile"
    );
    assert_eq!(
        std::fs::read_link(m.context.join("source/link.py")).unwrap(),
        Path::new("app.py")
    );
    assert_eq!(
        m.secrets,
        [BuildSecret {
            id: "imagespec_secret_0".into(),
            path: proj.join("netrc")
        }]
    );
    let mut all = Vec::new();
    for f in &m.files {
        all.extend(std::fs::read(m.context.join(f)).unwrap_or_default());
    }
    assert!(!String::from_utf8_lossy(&all).contains("SECRETPASS"));
    // A fresh folder only.
    assert!(write_context(&s, &BuildOptions::default(), &out).is_err());
}

#[test]
fn materialised_secrets_live_beside_the_context() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(RawSpec {
        python_version: Some("3.11".into()),
        pip_index: Some("https://user:s3cret@pypi.example.com/simple".into()),
        ..RawSpec::default()
    });
    let pem = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
    let options = BuildOptions {
        ca_bundle: Some(CaBundle::Pem(pem.into())),
        ..BuildOptions::default()
    };
    let m = write_context(&s, &options, tmp.path()).unwrap();
    let ids: Vec<&str> = m.secrets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [SECRET_CA, SECRET_PIP_CONF]);
    assert_eq!(std::fs::read_to_string(&m.secrets[0].path).unwrap(), pem);
    let conf = std::fs::read_to_string(&m.secrets[1].path).unwrap();
    assert!(conf.contains("index-url = https://user:s3cret@pypi.example.com/simple"));
    for secret in &m.secrets {
        assert!(!secret.path.starts_with(&m.context));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&m.secrets[1].path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_file_changed_after_hashing_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("p");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(proj.join("a.py"), "1").unwrap();
    let s = spec_in(
        &proj,
        RawSpec {
            python_version: Some("3.11".into()),
            source_root: Some(".".into()),
            source_copy_mode: Some("ALL".into()),
            ..RawSpec::default()
        },
    );
    let recipe = recipe::Recipe::new(&s, &BuildOptions::default()).unwrap();
    std::fs::write(proj.join("a.py"), "2").unwrap();
    let f = recipe.selection.values().next().unwrap();
    let e = context::copy_selected_for_test(f, &tmp.path().join("out/a.py")).unwrap_err();
    assert!(e.to_string().contains("changed while"), "{e}");
}

/// The dependencies tag changes with everything the image tag covers except the source files:
/// a source edit keeps it, a `copy` file, a field or the runtime changes it.
#[test]
fn the_dependencies_tag_ignores_source_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path();
    let w = |rel: &str, text: &str| {
        let p = proj.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("src/app.py", "print(1)\n");
    w("conf/a.yaml", "a: 1\n");
    let make = |packages: &[&str]| {
        let s = spec_in(
            proj,
            RawSpec {
                python_version: Some("3.11".into()),
                source_root: Some("src".into()),
                source_copy_mode: Some("ALL".into()),
                copy: strs(&["conf"]),
                packages: strs(packages),
                ..RawSpec::default()
            },
        );
        let t = crate::identity::tag_inputs(&s, None).unwrap();
        (
            t.tag.clone(),
            crate::identity::deps_tag(&t, "imagespec-build==1.0"),
            t,
        )
    };
    let (tag1, deps1, inputs) = make(&[]);
    assert!(deps1.starts_with(crate::identity::DEPS_TAG_PREFIX));
    assert_eq!(
        deps1.len(),
        crate::identity::DEPS_TAG_PREFIX.len() + crate::identity::HASH_CHARS
    );
    assert_ne!(crate::identity::deps_tag(&inputs, "imagespec-build==1.1"), deps1);
    w("src/app.py", "print(2)\n");
    let (tag2, deps2, _) = make(&[]);
    assert_ne!(tag2, tag1);
    assert_eq!(deps2, deps1);
    w("conf/a.yaml", "a: 2\n");
    let (_, deps3, _) = make(&[]);
    assert_ne!(deps3, deps1);
    let (_, deps4, _) = make(&["six"]);
    assert_ne!(deps4, deps3);
}

/// Heavy distributions, then declared groups, each its own pip step before the install of
/// everything, which holds them again.
#[test]
fn heavy_and_declared_groups_get_steps_of_their_own() {
    let mut s = spec(RawSpec {
        python_version: Some("3.11".into()),
        packages: strs(&[
            "pandas",
            "torch==2.3.1",
            "Transformers>=4.40",
            "nvidia-cudnn-cu12",
            "datasets",
        ]),
        ..RawSpec::default()
    });
    s.builder_options.insert(
        "package_groups".into(),
        Value::List(vec![Value::List(vec![
            Value::str("datasets"),
            Value::str("transformers"),
        ])]),
    );
    let text = dockerfile(&s, &BuildOptions::default()).unwrap();
    let installs: Vec<Vec<String>> = instructions(&text)
        .into_iter()
        .filter(|(op, body)| op == "RUN" && body.contains("-m pip install \\\"$@\\\""))
        .map(|(_, body)| {
            let argv: Vec<String> = serde_json::from_str(&body[body.find('[').unwrap()..]).unwrap();
            argv.into_iter().skip(6).collect()
        })
        .collect();
    assert_eq!(
        installs,
        [
            vec!["torch==2.3.1"],
            vec!["nvidia-cudnn-cu12"],
            vec!["Transformers>=4.40", "datasets"],
            vec![
                "pandas",
                "torch==2.3.1",
                "Transformers>=4.40",
                "nvidia-cudnn-cu12",
                "datasets",
                &format!("imagespec-build=={}", env!("CARGO_PKG_VERSION")),
            ],
        ]
    );
}

#[test]
fn package_groups_are_checked() {
    let with = |groups: Value| {
        let mut s = spec(RawSpec {
            python_version: Some("3.11".into()),
            packages: strs(&["pandas", "rich"]),
            ..RawSpec::default()
        });
        s.builder_options.insert("package_groups".into(), groups);
        dockerfile(&s, &BuildOptions::default()).unwrap_err().to_string()
    };
    let e = with(Value::List(vec![Value::List(vec![Value::str("numpy")])]));
    assert!(
        e.contains("builder_options.package_groups[0][0]") && e.contains("not in packages"),
        "{e}"
    );
    let e = with(Value::str("pandas"));
    assert!(
        e.contains("builder_options.package_groups") && e.contains("list of lists"),
        "{e}"
    );
    let e = with(Value::List(vec![Value::List(vec![])]));
    assert!(e.contains("package_groups[0]") && e.contains("is empty"), "{e}");
    let e = with(Value::List(vec![Value::List(vec![Value::str("pandas>=2")])]));
    assert!(
        e.contains("package_groups[0][0]") && e.contains("without versions"),
        "{e}"
    );
}
