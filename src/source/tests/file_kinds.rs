//! What a walk makes of each entry: symlinks kept as links, regular files with their content
//! hash and executable bit, other types skipped; order, names and the root itself.

use super::*;

#[test]
fn symlinks_are_entries_and_never_followed() {
    let t = tree(&[("a.txt", "A"), ("sub/f", "F")]);
    let r = t.path();
    symlink("a.txt", &r.join("inside"));
    symlink("/etc/hostname", &r.join("outside"));
    symlink("does/not/exist", &r.join("dangling"));
    symlink("sub", &r.join("dirlink"));
    symlink("../a.txt", &r.join("sub/up"));
    let files = all(r);
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        ["a.txt", "dangling", "dirlink", "inside", "outside", "sub/f", "sub/up"]
    );
    let target = |p: &str| match &files.iter().find(|f| f.path == p).unwrap().kind {
        FileKind::Symlink { target } => target.clone(),
        k => panic!("{p}: {k:?}"),
    };
    assert_eq!(target("inside"), "a.txt");
    assert_eq!(target("outside"), "/etc/hostname");
    assert_eq!(target("dangling"), "does/not/exist");
    assert_eq!(target("dirlink"), "sub");
    assert_eq!(target("sub/up"), "../a.txt");
}

#[test]
fn symlinks_obey_ignore_rules() {
    let t = tree(&[(".gitignore", "link1\n"), (".dockerignore", "link2\n"), ("a", "")]);
    symlink("a", &t.path().join("link1"));
    symlink("a", &t.path().join("link2"));
    symlink("a", &t.path().join("link3"));
    assert_eq!(paths(t.path()), [".dockerignore", ".gitignore", "a", "link3"]);
}

#[test]
fn regular_files_carry_content_hash_and_exec_bit() {
    use std::os::unix::fs::PermissionsExt;
    let big: Vec<u8> = (0..(3 * CHUNK + 5)).map(|i| (i * 7 % 251) as u8).collect();
    let t = tree(&[("small.txt", "hello"), ("empty", "")]);
    fs::write(t.path().join("big.bin"), &big).unwrap();
    write(t.path(), "run.sh", "#!/bin/sh\n");
    fs::set_permissions(t.path().join("run.sh"), fs::Permissions::from_mode(0o744)).unwrap();
    let files = all(t.path());
    assert_eq!(regular(&files, "small.txt"), (false, sha(b"hello")));
    assert_eq!(regular(&files, "empty"), (false, sha(b"")));
    assert_eq!(regular(&files, "big.bin"), (false, sha(&big)));
    assert_eq!(regular(&files, "run.sh"), (true, sha(b"#!/bin/sh\n")));
}

#[test]
fn exec_bit_and_content_change_the_result_mtime_does_not() {
    use std::os::unix::fs::PermissionsExt;
    let t = tree(&[("a.py", "print(1)\n"), ("b.py", "x")]);
    let a = t.path().join("a.py");
    let before = all(t.path());

    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(all(t.path()), before, "mtime must not matter");

    fs::set_permissions(&a, fs::Permissions::from_mode(0o755)).unwrap();
    let exec = all(t.path());
    assert_ne!(exec, before);
    assert_eq!(regular(&exec, "a.py"), (true, sha(b"print(1)\n")));
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(all(t.path()), before);

    fs::write(&a, "print(2)\n").unwrap();
    assert_ne!(all(t.path()), before);
}

#[test]
fn fifos_are_skipped_and_empty_folders_contribute_nothing() {
    let t = tree(&[("a", "x")]);
    fs::create_dir_all(t.path().join("empty/nested")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(t.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    // Opening the fifo would block forever: it must not be opened.
    assert_eq!(paths(t.path()), ["a"]);
}

#[test]
fn traversal_order_does_not_matter() {
    let names: Vec<String> = (0..300)
        .map(|i| format!("d{}/s{}/f{i}.txt", i % 7, i % 3))
        .collect();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for n in &names {
        write(one.path(), n, n);
    }
    for n in names.iter().rev() {
        write(two.path(), n, n);
    }
    write(one.path(), ".gitignore", "s1/\n");
    write(two.path(), ".gitignore", "s1/\n");
    let a = all(one.path());
    assert_eq!(a.len(), 201);
    assert!(a.windows(2).all(|w| w[0].path.as_bytes() < w[1].path.as_bytes()));
    for _ in 0..3 {
        assert_eq!(all(two.path()), a);
    }
}

#[test]
fn paths_are_sorted_by_bytes() {
    let t = tree(&[
        ("B", ""),
        ("a0", ""),
        ("a-b/x", ""),
        ("a/b", ""),
        ("é", ""),
        ("Z", ""),
    ]);
    // Byte order, not component order ("a/b" < "a-b/x" component-wise).
    assert_eq!(paths(t.path()), ["B", "Z", "a-b/x", "a/b", "a0", "é"]);
}

#[test]
fn non_utf8_file_name_is_an_error_unless_excluded() {
    use std::os::unix::ffi::OsStrExt;
    let t = tree(&[("ok", "")]);
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff.txt");
    fs::create_dir(t.path().join("sub")).unwrap();
    fs::write(t.path().join("sub").join(bad), "").unwrap();
    let err = hash_all_with(t.path(), FIELD, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("source_root: "), "{msg}");
    assert!(msg.contains("not valid UTF-8") && msg.contains("bad"), "{msg}");
    assert!(matches!(&err, Error::Source { path, .. } if path.ends_with(Path::new("sub").join(bad))));

    write(t.path(), ".dockerignore", "sub\n");
    assert_eq!(paths(t.path()), [".dockerignore", "ok"]);
}

#[test]
fn root_must_be_an_existing_folder() {
    let t = tree(&[("f", "")]);
    let err = hash_all_with(&t.path().join("missing"), FIELD, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("source_root: ") && err.contains("missing") && err.contains("does not exist"),
        "{err}"
    );
    let err = hash_all_with(&t.path().join("f"), FIELD, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a folder"), "{err}");
}

#[test]
fn root_given_as_symlink_is_followed() {
    let t = tree(&[("real/a", "A")]);
    symlink("real", &t.path().join("link"));
    assert_eq!(all(&t.path().join("link")), all(&t.path().join("real")));
    assert_eq!(paths(&t.path().join("link")), ["a"]);
}
