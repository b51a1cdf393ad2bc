//! The build context: exactly the hashed files, secrets beside it, a file changed after hashing.

use super::*;

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
