//! The dependencies tag and the package groups' steps.

use super::*;

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
