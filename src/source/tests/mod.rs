use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::cache::{self, DigestCache, Entry, Map, Stamp};
use super::hash::CHUNK;
use super::*;
use std::io::Write;

const FIELD: &str = "source_root";

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        write(dir.path(), rel, content);
    }
    dir
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn all(root: &Path) -> Vec<SourceFile> {
    hash_all_with(root, FIELD, None).unwrap()
}

fn paths(root: &Path) -> Vec<String> {
    all(root).into_iter().map(|f| f.path).collect()
}

fn sha(content: &[u8]) -> [u8; 32] {
    Sha256::digest(content).into()
}

fn regular(files: &[SourceFile], path: &str) -> (bool, [u8; 32]) {
    match files.iter().find(|f| f.path == path).map(|f| &f.kind) {
        Some(FileKind::Regular { executable, sha256 }) => (*executable, *sha256),
        other => panic!("{path}: {other:?}"),
    }
}

/// Every path under `root` (no rules at all), as absolute paths: what a LOADED_MODULES caller
/// could list.
fn every_path(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

fn test_cache(dir: &Path, min_age: Duration) -> DigestCache {
    let mut c = DigestCache::new(Some(dir.join("digests")));
    c.min_age_ns = min_age.as_nanos() as i64;
    c
}

// ---------------------------------------------------------------- gitignore

#[test]
fn gitignore_negation() {
    let t = tree(&[
        (".gitignore", "*.log\n!keep.log\n"),
        ("a.log", ""),
        ("keep.log", ""),
        ("sub/b.log", ""),
    ]);
    assert_eq!(paths(t.path()), [".gitignore", "keep.log"]);
}

#[test]
fn gitignore_nested_files() {
    let t = tree(&[
        (".gitignore", "*.dat\n"),
        ("x.txt", ""),
        ("a.dat", ""),
        ("sub/.gitignore", "x.txt\n!y.dat\n"),
        ("sub/x.txt", ""),
        ("sub/y.dat", ""),
        ("sub/z.dat", ""),
        ("sub/deeper/x.txt", ""),
        ("other/x.txt", ""),
    ]);
    assert_eq!(
        paths(t.path()),
        [
            ".gitignore",
            "other/x.txt",
            "sub/.gitignore",
            "sub/y.dat",
            "x.txt"
        ]
    );
}

#[test]
fn gitignore_directory_patterns() {
    let t = tree(&[
        (".gitignore", "build/\n"),
        ("build/out.bin", ""),
        ("src/build/deep.bin", ""),
        ("lib/build", "a file named build"),
    ]);
    // `build/` matches folders at any depth, not files.
    assert_eq!(paths(t.path()), [".gitignore", "lib/build"]);
}

#[test]
fn gitignore_cannot_reinclude_inside_excluded_folder() {
    let t = tree(&[
        (".gitignore", "build/\n!build/keep.txt\n"),
        ("build/keep.txt", ""),
        ("a", ""),
    ]);
    assert_eq!(paths(t.path()), [".gitignore", "a"]);
}

#[test]
fn gitignore_anchored_and_unanchored() {
    let t = tree(&[
        (".gitignore", "/top.txt\nany.txt\ndocs/*.md\n"),
        ("top.txt", ""),
        ("sub/top.txt", ""),
        ("any.txt", ""),
        ("sub/any.txt", ""),
        ("docs/a.md", ""),
        ("x/docs/a.md", ""),
        ("docs/sub/b.md", ""),
    ]);
    assert_eq!(
        paths(t.path()),
        [".gitignore", "docs/sub/b.md", "sub/top.txt", "x/docs/a.md"]
    );
}

#[test]
fn gitignore_double_star() {
    let t = tree(&[
        (".gitignore", "**/gen/*.py\nlogs/**\na/**/z.txt\n"),
        ("gen/x.py", ""),
        ("p/q/gen/y.py", ""),
        ("p/gen/sub/y.py", ""),
        ("logs/1/2.txt", ""),
        ("a/z.txt", ""),
        ("a/b/c/z.txt", ""),
        ("b/z.txt", ""),
    ]);
    assert_eq!(paths(t.path()), [".gitignore", "b/z.txt", "p/gen/sub/y.py"]);
}

#[test]
fn gitignore_outside_root_and_info_exclude_are_not_read() {
    let outer = tree(&[
        (".gitignore", "*.txt\n"),
        (".git/info/exclude", "*.md\n"),
        ("root/a.txt", ""),
    ]);
    let root = outer.path().join("root");
    write(&root, "b.md", "");
    write(&root, ".ignore", "a.txt\n");
    assert_eq!(paths(&root), [".ignore", "a.txt", "b.md"]);
}

#[test]
fn gitignore_is_read_inside_a_git_repository_too() {
    let t = tree(&[
        (".gitignore", "x\n"),
        (".git/HEAD", "ref"),
        ("x", ""),
        ("y", ""),
        ("sub/.git", "gitdir: /abs"),
    ]);
    assert_eq!(paths(t.path()), [".gitignore", "y"]);
}

// ---------------------------------------------------------------- dockerignore

#[test]
fn dockerignore_is_anchored_at_the_root() {
    let files = [("a.log", ""), ("sub/a.log", ""), ("x.txt", "")];
    let docker = tree(&files);
    write(docker.path(), ".dockerignore", "*.log\n");
    assert_eq!(paths(docker.path()), [".dockerignore", "sub/a.log", "x.txt"]);
    // The same line in .gitignore matches at any depth.
    let git = tree(&files);
    write(git.path(), ".gitignore", "*.log\n");
    assert_eq!(paths(git.path()), [".gitignore", "x.txt"]);
}

#[test]
fn dockerignore_reinclude_and_last_line_wins() {
    let t = tree(&[
        (
            ".dockerignore",
            "data\n!data/keep.csv\n*.md\n!README.md\n!x.txt\nx.txt\n",
        ),
        ("data/keep.csv", ""),
        ("data/other.csv", ""),
        ("data/sub/deep.csv", ""),
        ("README.md", ""),
        ("NOTES.md", ""),
        ("x.txt", ""),
    ]);
    // Unlike gitignore, a file inside an excluded folder can be re-included.
    assert_eq!(paths(t.path()), [".dockerignore", "README.md", "data/keep.csv"]);
}

#[test]
fn dockerignore_reinclude_with_wildcards_inside_excluded_folder() {
    let t = tree(&[
        (".dockerignore", "pkg\n!pkg/*/keep.txt\n!**/always.txt\n"),
        ("pkg/a/keep.txt", ""),
        ("pkg/a/drop.txt", ""),
        ("pkg/b/c/keep.txt", ""),
        ("pkg/x/y/always.txt", ""),
    ]);
    assert_eq!(
        paths(t.path()),
        [".dockerignore", "pkg/a/keep.txt", "pkg/x/y/always.txt"]
    );
}

#[test]
fn dockerignore_double_star_and_cleaning() {
    let t = tree(&[
        (
            ".dockerignore",
            "# comment\n\n**/*.tmp\n./a/b/\n/c\n  spaced.txt  \nd//e\n**/node_modules\n",
        ),
        ("x.tmp", ""),
        ("p/q/y.tmp", ""),
        ("a/b/f", ""),
        ("a/bb/f", ""),
        ("c/f", ""),
        ("c2/f", ""),
        ("spaced.txt", ""),
        ("d/e", ""),
        ("web/node_modules/m.js", ""),
        ("node_modules/n.js", ""),
        ("# comment", ""),
    ]);
    assert_eq!(paths(t.path()), ["# comment", ".dockerignore", "a/bb/f", "c2/f"]);
}

#[test]
fn dockerignore_and_gitignore_both_apply() {
    let t = tree(&[
        (".dockerignore", "secret\n!ignored.txt\n"),
        (".gitignore", "ignored.txt\n"),
        ("secret/k", ""),
        ("ignored.txt", ""),
        ("kept", ""),
    ]);
    // A `!` in .dockerignore does not undo .gitignore: a file goes in only if no rule excludes it.
    assert_eq!(paths(t.path()), [".dockerignore", ".gitignore", "kept"]);
}

#[test]
fn dockerignore_pattern_parsing() {
    let parsed =
        rules::parse_dockerignore("\u{feff}a\n # not a comment\n#c\n! b \n/\n.\n../x\n./y/../z/\n!\n");
    let expect: Vec<(bool, String)> = vec![
        (false, "a".into()),
        (false, "# not a comment".into()),
        (true, "b".into()),
        (false, "z".into()),
    ];
    assert_eq!(parsed, expect);
}

// ---------------------------------------------------------------- standard ignores

#[test]
fn standard_ignores_apply_and_cannot_be_reincluded() {
    let t = tree(&[
        (".gitignore", "!*.pyc\n!__pycache__/\n!.venv/\n!.DS_Store\n"),
        (".dockerignore", "!__pycache__\n!**/*.pyo\n"),
        (".git/config", ""),
        ("sub/.git", "gitdir: /somewhere/else"),
        ("__pycache__/m.cpython-312.pyc", ""),
        ("pkg/__pycache__/x", ""),
        ("pkg/m.pyc", ""),
        ("pkg/m.pyo", ""),
        ("pkg/m.py", ""),
        (".venv/bin/python", ""),
        ("pkg/.mypy_cache/x", ""),
        (".pytest_cache/x", ""),
        (".ruff_cache/x", ""),
        (".tox/x", ""),
        (".nox/x", ""),
        ("nb/.ipynb_checkpoints/x", ""),
        (".DS_Store", ""),
        ("pkg/.DS_Store", ""),
        (".hypothesis/x", ""),
        ("venv.txt", ""),
        (".tox.ini", ""),
    ]);
    assert_eq!(
        paths(t.path()),
        [".dockerignore", ".gitignore", ".tox.ini", "pkg/m.py", "venv.txt"]
    );
}

#[test]
fn hidden_files_are_included() {
    let t = tree(&[(".env", "A=1"), (".config/tool.toml", ""), ("x", "")]);
    assert_eq!(paths(t.path()), [".config/tool.toml", ".env", "x"]);
}

// ---------------------------------------------------------------- file kinds

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

// ---------------------------------------------------------------- hash_listed

fn listed(root: &Path, files: &[PathBuf]) -> Vec<SourceFile> {
    hash_listed_with(root, files, FIELD, None).unwrap()
}

#[test]
fn listed_keeps_only_selected_files_under_root() {
    let outer = tree(&[("elsewhere.py", "")]);
    let root = outer.path().join("root");
    for (rel, c) in [
        (".gitignore", "build/\n*.gen.py\n"),
        (".dockerignore", "scratch\n"),
        ("app/main.py", "main"),
        ("app/util.py", "util"),
        ("app/x.gen.py", ""),
        ("build/lib/app/main.py", ""),
        ("scratch/s.py", ""),
        ("app/__pycache__/main.cpython-312.pyc", ""),
        ("pkg/.gitignore", "private.py\n"),
        ("pkg/private.py", ""),
        ("pkg/public.py", "pub"),
    ] {
        write(&root, rel, c);
    }
    let list: Vec<PathBuf> = [
        "app/main.py",
        "app/util.py",
        "app/x.gen.py",
        "build/lib/app/main.py",
        "scratch/s.py",
        "app/__pycache__/main.cpython-312.pyc",
        "pkg/private.py",
        "pkg/public.py",
        "app/./main.py",
    ]
    .iter()
    .map(|p| root.join(p))
    .chain([
        outer.path().join("elsewhere.py"),
        PathBuf::from("/etc/hostname"),
        root.join("../elsewhere.py"),
    ])
    .collect();
    let got = listed(&root, &list);
    let names: Vec<&str> = got.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["app/main.py", "app/util.py", "pkg/public.py"]);
    assert_eq!(regular(&got, "app/util.py"), (false, sha(b"util")));
}

#[test]
fn listed_compares_canonical_locations() {
    let t = tree(&[
        ("real/proj/a.py", "A"),
        ("real/proj/sub/b.py", "B"),
        ("real/other/c.py", "C"),
    ]);
    let base = t.path();
    symlink("real", &base.join("link"));
    symlink("../proj/sub", &base.join("real/other/to_sub"));
    let names = |root: &Path, list: &[PathBuf]| -> Vec<String> {
        listed(root, list).into_iter().map(|f| f.path).collect()
    };
    // Root through a symlink, files resolved.
    let got = names(
        &base.join("link/proj"),
        &[base.join("real/proj/a.py"), base.join("real/proj/sub/b.py")],
    );
    assert_eq!(got, ["a.py", "sub/b.py"]);
    // Root resolved, files through symlinks (also in the middle of the path, and with `..`).
    let got = names(
        &base.join("real/proj"),
        &[
            base.join("link/proj/a.py"),
            base.join("real/other/to_sub/b.py"),
            base.join("link/other/../proj/sub/b.py"),
            base.join("link/other/c.py"),
            base.join("link/missing/x.py"),
        ],
    );
    assert_eq!(got, ["a.py", "sub/b.py"]);
    // Spellings with `//` and `.`.
    let root = base.join("real/proj");
    let odd = PathBuf::from(format!("{}//./sub/./b.py", root.display()));
    assert_eq!(names(&root, &[odd]), ["sub/b.py"]);
    assert_eq!(
        names(&root, &[PathBuf::from(format!("{}/", root.display()))]),
        Vec::<String>::new()
    );
    // Lexically under the root wins, even through a symlink inside it.
    symlink("../other", &root.join("otherlink"));
    assert_eq!(names(&root, &[root.join("otherlink/c.py")]), ["otherlink/c.py"]);
}

#[test]
fn listed_does_not_walk_the_tree() {
    use std::os::unix::ffi::OsStrExt;
    let t = tree(&[("app/main.py", "m"), ("app/other.py", "o")]);
    // A file name that makes the walk fail, and a fifo that would block a read.
    fs::create_dir(t.path().join("junk")).unwrap();
    fs::write(
        t.path().join("junk").join(std::ffi::OsStr::from_bytes(b"\xfe")),
        "",
    )
    .unwrap();
    std::process::Command::new("mkfifo")
        .arg(t.path().join("app/pipe"))
        .status()
        .unwrap();
    assert!(hash_all_with(t.path(), FIELD, None).is_err());
    let got = listed(t.path(), &[t.path().join("app/main.py")]);
    assert_eq!(got.len(), 1);
    assert_eq!(regular(&got, "app/main.py"), (false, sha(b"m")));
}

#[test]
fn listed_missing_file_is_an_error_unless_excluded() {
    let t = tree(&[(".gitignore", "gone_ignored.py\n"), ("a.py", "")]);
    let err = hash_listed_with(t.path(), &[t.path().join("gone.py")], FIELD, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone.py") && err.contains("does not exist"), "{err}");
    assert!(listed(t.path(), &[t.path().join("gone_ignored.py")]).is_empty());
}

#[test]
fn listed_agrees_with_the_walk() {
    let t = tree(&[
        (".gitignore", "*.log\n!keep.log\nbuild/\n/top_only\n**/gen/*.py\n"),
        (
            ".dockerignore",
            "*.md\n!README.md\ndata\n!data/keep/**\n**/*.tmp\n",
        ),
        ("README.md", ""),
        ("CHANGES.md", ""),
        ("sub/CHANGES.md", ""),
        ("a.log", ""),
        ("keep.log", ""),
        ("sub/keep.log", ""),
        ("sub/b.log", ""),
        ("build/x", ""),
        ("sub/build/y", ""),
        ("top_only", ""),
        ("sub/top_only", ""),
        ("g/gen/m.py", ""),
        ("g/gen/m.txt", ""),
        ("data/drop.csv", ""),
        ("data/keep/k.csv", ""),
        ("data/keep/deep/k.csv", ""),
        ("x.tmp", ""),
        ("sub/x.tmp", ""),
        ("sub/.gitignore", "!b.log\nlocal\n"),
        ("sub/local/f", ""),
        ("sub/deeper/.gitignore", "!local\n*.py\n"),
        ("sub/deeper/local", ""),
        ("sub/deeper/z.py", ""),
        ("pkg/__pycache__/c.pyc", ""),
        ("pkg/m.py", ""),
        (".git/HEAD", ""),
        ("src/build", "file named build"),
    ]);
    symlink("pkg", &t.path().join("pkglink"));
    let walked = all(t.path());
    let mut everything = every_path(t.path());
    everything.reverse();
    let got = listed(t.path(), &everything);
    assert_eq!(got, walked);
    assert!(walked.iter().any(|f| f.path == "data/keep/deep/k.csv"));
    assert!(walked.iter().any(|f| f.path == "sub/b.log"));
    // The nearest .gitignore wins: `!local` in sub/deeper re-includes what sub/.gitignore excludes.
    assert!(walked.iter().any(|f| f.path == "sub/deeper/local"));
    assert!(!walked.iter().any(|f| f.path.starts_with("sub/local")));
}

// ---------------------------------------------------------------- hash_path

#[test]
fn hash_path_file_folder_and_missing() {
    let t = tree(&[
        ("data/x.csv", "1,2\n"),
        ("conf/a.yaml", "a: 1"),
        ("conf/.gitignore", "local.yaml\n"),
        ("conf/local.yaml", ""),
        ("conf/sub/b.yaml", "b"),
        ("conf/__pycache__/c.pyc", ""),
        ("conf/.dockerignore", "*.bak\n"),
        ("conf/old.bak", ""),
    ]);
    let base = t.path();
    let file = hash_path_with(base, "data/x.csv", "copy", None).unwrap();
    assert_eq!(
        file,
        [SourceFile {
            path: "data/x.csv".into(),
            kind: FileKind::Regular {
                executable: false,
                sha256: sha(b"1,2\n")
            }
        }]
    );
    let folder = hash_path_with(base, "conf", "copy", None).unwrap();
    let names: Vec<&str> = folder.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "conf/.dockerignore",
            "conf/.gitignore",
            "conf/a.yaml",
            "conf/sub/b.yaml"
        ]
    );
    assert_eq!(hash_path_with(base, "./conf/", "copy", None).unwrap(), folder);
    // conf/.dockerignore only applies when conf is the walked folder.
    let whole: Vec<String> = hash_path_with(base, ".", "copy", None)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(
        whole,
        [
            "conf/.dockerignore",
            "conf/.gitignore",
            "conf/a.yaml",
            "conf/old.bak",
            "conf/sub/b.yaml",
            "data/x.csv"
        ]
    );

    let err = hash_path_with(base, "nope/r.txt", "requirements", None).unwrap_err();
    assert_eq!(err.field(), Some("requirements"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("requirements: ") && msg.contains("nope/r.txt") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn hash_path_follows_the_entry_itself_only() {
    let t = tree(&[("real.txt", "R"), ("dir/f", "F")]);
    symlink("real.txt", &t.path().join("link.txt"));
    symlink("dir", &t.path().join("dirlink"));
    symlink("../real.txt", &t.path().join("dir/inner"));
    let f = hash_path_with(t.path(), "link.txt", "copy", None).unwrap();
    assert_eq!(regular(&f, "link.txt"), (false, sha(b"R")));
    let d = hash_path_with(t.path(), "dirlink", "copy", None).unwrap();
    assert_eq!(d[0].path, "dirlink/f");
    assert_eq!(
        d[1],
        SourceFile {
            path: "dirlink/inner".into(),
            kind: FileKind::Symlink {
                target: "../real.txt".into()
            }
        }
    );
    let err = hash_path_with(t.path(), "dangling", "copy", None);
    assert!(err.is_err());
}

// ---------------------------------------------------------------- digest cache

#[test]
fn cache_second_call_hits_and_returns_the_same() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A"), ("b/c", "C"), (".gitignore", "x\n")]);
    symlink("a", &t.path().join("l"));
    let cache = test_cache(cache_dir.path(), Duration::ZERO);
    let first = hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    assert_eq!(first, all(t.path()));
    assert_eq!(cache.stats.stored.load(Ordering::Relaxed), 3);
    assert_eq!(cache.stats.writes.load(Ordering::Relaxed), 1);
    // Same process.
    assert_eq!(hash_all_with(t.path(), FIELD, Some(&cache)).unwrap(), first);
    assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 3);
    assert_eq!(
        cache.stats.writes.load(Ordering::Relaxed),
        1,
        "nothing changed: no write"
    );
    // Another process: the persistent file.
    let again = test_cache(cache_dir.path(), Duration::ZERO);
    assert_eq!(hash_all_with(t.path(), FIELD, Some(&again)).unwrap(), first);
    assert_eq!(again.stats.hits.load(Ordering::Relaxed), 3);
    assert_eq!(again.stats.hashed.load(Ordering::Relaxed), 0);
    // A hit reports the current exec bit (it is not part of the digest).
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(t.path().join("a"), fs::Permissions::from_mode(0o755)).unwrap();
    let exec = hash_all_with(t.path(), FIELD, Some(&again)).unwrap();
    assert_eq!(exec, all(t.path()));
    assert!(regular(&exec, "a").0);
}

#[test]
fn cache_hit_does_not_read_the_file() {
    // Replace the stored digest by a wrong one: a hit must return it, proving the file is not read.
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A")]);
    let cache = test_cache(cache_dir.path(), Duration::ZERO);
    hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    let scope = scope_of_folder(&std::path::absolute(t.path()).unwrap());
    let file = cache.file_for(&scope).unwrap();
    let map = Map::parse(fs::read(&file).unwrap(), &scope).unwrap();
    let forged = map.iter().map(|(k, e)| {
        (
            k,
            if k == "a" {
                Entry { sha256: [7; 32], ..e }
            } else {
                e
            },
        )
    });
    let tampered = Map::build(&scope, forged);
    fs::write(&file, tampered.bytes()).unwrap();
    let fresh = test_cache(cache_dir.path(), Duration::ZERO);
    assert_eq!(
        regular(&hash_all_with(t.path(), FIELD, Some(&fresh)).unwrap(), "a").1,
        [7; 32]
    );
}

#[test]
fn cache_does_not_store_files_written_just_now() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A")]);
    // mtime far in the past, but ctime is now (ctime cannot be set back).
    let old = SystemTime::now() - Duration::from_secs(86400);
    fs::File::options()
        .write(true)
        .open(t.path().join("a"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let cache = test_cache(cache_dir.path(), cache::MIN_AGE);
    hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    assert_eq!(cache.stats.stored.load(Ordering::Relaxed), 0);
    assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 0);
    assert_eq!(cache.stats.hashed.load(Ordering::Relaxed), 2);
    assert_eq!(cache.stats.writes.load(Ordering::Relaxed), 0);
}

#[test]
fn cache_sees_a_same_size_rewrite_with_restored_mtime() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "version-1"), ("b", "other")]);
    let a = t.path().join("a");
    let mtime = fs::metadata(&a).unwrap().modified().unwrap();
    // Let mtime and ctime age past MIN_AGE so that the real rule stores the entries.
    std::thread::sleep(cache::MIN_AGE + Duration::from_millis(200));
    let cache = test_cache(cache_dir.path(), cache::MIN_AGE);
    let first = hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    assert_eq!(cache.stats.stored.load(Ordering::Relaxed), 2);
    assert_eq!(regular(&first, "a").1, sha(b"version-1"));

    // Same size, same mtime (restored as `touch -d` would), same inode.
    fs::write(&a, "version-2").unwrap();
    fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(&a).unwrap().modified().unwrap(), mtime);
    let second = hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    assert_eq!(regular(&second, "a").1, sha(b"version-2"));
    assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 1, "only b may hit");
    // The rewritten file is "just changed": not stored, so a fresh process hashes it again too.
    let other = test_cache(cache_dir.path(), cache::MIN_AGE);
    assert_eq!(hash_all_with(t.path(), FIELD, Some(&other)).unwrap(), second);
    assert_eq!(other.stats.hashed.load(Ordering::Relaxed), 1);
}

#[test]
fn cache_ignores_corrupt_or_foreign_files() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A"), ("b", "B")]);
    let expected = all(t.path());
    let scope = scope_of_folder(&std::path::absolute(t.path()).unwrap());
    let cache = test_cache(cache_dir.path(), Duration::ZERO);
    hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    let file = cache.file_for(&scope).unwrap();
    let good = fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let mut other_version = good[..good.len() - 8].to_vec();
    other_version[8] = 99;
    let sum = cache::checksum(&other_version);
    other_version.extend_from_slice(&sum.to_le_bytes());
    let parsed = Map::parse(good.clone(), &scope).unwrap();
    let foreign = Map::build(b"/some/other/root", parsed.iter()).bytes().to_vec();
    for bad in [
        flipped,
        other_version,
        good[..good.len() - 1].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
        foreign,
    ] {
        fs::write(&file, &bad).unwrap();
        let c = test_cache(cache_dir.path(), Duration::ZERO);
        assert_eq!(hash_all_with(t.path(), FIELD, Some(&c)).unwrap(), expected);
        assert_eq!(c.stats.hits.load(Ordering::Relaxed), 0);
        // Rebuilt.
        assert_eq!(fs::read(&file).unwrap().len(), good.len());
    }
    // The digests folder is a file: cache writes fail silently.
    let blocked = tempfile::tempdir().unwrap();
    fs::write(blocked.path().join("digests"), "not a folder").unwrap();
    let c = test_cache(blocked.path(), Duration::ZERO);
    assert_eq!(hash_all_with(t.path(), FIELD, Some(&c)).unwrap(), expected);
    assert_eq!(c.stats.writes.load(Ordering::Relaxed), 0);
}

#[test]
fn cache_drops_deleted_files_and_rehashes_replaced_ones() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A"), ("b", "B"), ("c", "C")]);
    let scope = scope_of_folder(&std::path::absolute(t.path()).unwrap());
    let cache = test_cache(cache_dir.path(), Duration::ZERO);
    hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    fs::remove_file(t.path().join("b")).unwrap();
    // Replace `c` by a new file (new inode) with the same size.
    fs::write(t.path().join("c.new"), "D").unwrap();
    fs::rename(t.path().join("c.new"), t.path().join("c")).unwrap();
    let got = hash_all_with(t.path(), FIELD, Some(&cache)).unwrap();
    assert_eq!(got, all(t.path()));
    assert_eq!(regular(&got, "c").1, sha(b"D"));
    cache.forget_in_process();
    let map = cache.snapshot(&scope);
    let mut keys: Vec<&str> = map.iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, ["a", "c"]);
}

#[test]
fn cache_is_used_by_listed_and_path_modes() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[
        ("app/a.py", "A"),
        ("app/b.py", "B"),
        ("requirements.txt", "x==1\n"),
        ("conf/c", "C"),
    ]);
    let cache = test_cache(cache_dir.path(), Duration::ZERO);
    let list = [t.path().join("app/a.py"), t.path().join("app/b.py")];
    let one = hash_listed_with(t.path(), &list, FIELD, Some(&cache)).unwrap();
    let req = hash_path_with(t.path(), "requirements.txt", "requirements", Some(&cache)).unwrap();
    let conf = hash_path_with(t.path(), "conf", "copy", Some(&cache)).unwrap();
    assert_eq!(cache.stats.stored.load(Ordering::Relaxed), 4);
    let again = test_cache(cache_dir.path(), Duration::ZERO);
    assert_eq!(
        hash_listed_with(t.path(), &list, FIELD, Some(&again)).unwrap(),
        one
    );
    assert_eq!(
        hash_path_with(t.path(), "requirements.txt", "requirements", Some(&again)).unwrap(),
        req
    );
    assert_eq!(
        hash_path_with(t.path(), "conf", "copy", Some(&again)).unwrap(),
        conf
    );
    assert_eq!(again.stats.hits.load(Ordering::Relaxed), 4);
    assert_eq!(again.stats.hashed.load(Ordering::Relaxed), 0);
    assert_eq!(regular(&req, "requirements.txt").1, sha(b"x==1\n"));
}

#[test]
fn cache_format_round_trip_and_load_speed() {
    let entries: Vec<(String, Entry)> = (0..50_000u64)
        .map(|i| {
            let stamp = Stamp {
                dev: 1,
                ino: i,
                size: i * 3,
                mtime_ns: i as i64 * 1000,
                ctime_ns: -(i as i64),
            };
            (
                format!("pkg/sub_{:03}/mod_{i:05}.py", i % 300),
                Entry {
                    stamp,
                    sha256: [i as u8; 32],
                },
            )
        })
        .collect();
    let map = Map::build(b"/root", entries.iter().map(|(k, e)| (k.as_str(), *e)));
    assert_eq!(map.len(), 50_000);
    for (k, e) in &entries {
        assert_eq!(map.get(k), Some(*e));
    }
    assert_eq!(map.get("pkg/sub_000/mod_00000.p"), None);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), map.bytes()).unwrap();
    let start = Instant::now();
    let back = Map::parse(fs::read(dir.path().join("f")).unwrap(), b"/root").unwrap();
    let took = start.elapsed();
    assert_eq!(back, map);
    assert!(Map::parse(map.bytes().to_vec(), b"/other").is_none());
    eprintln!(
        "read + parse of 50,000 entries ({} bytes): {took:?}",
        map.bytes().len()
    );

    // Later entries win; an empty map is valid.
    let twice = Map::build(
        b"/r",
        [("a", entries[0].1), ("b", entries[1].1), ("a", entries[2].1)],
    );
    assert_eq!((twice.len(), twice.get("a")), (2, Some(entries[2].1)));
    assert_eq!(Map::build(b"/r", []).get("a"), None);
}

#[test]
fn damaged_table_gives_misses_not_wrong_entries() {
    let e = |i: u8| Entry {
        stamp: Stamp {
            dev: 0,
            ino: i as u64,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        },
        sha256: [i; 32],
    };
    let map = Map::build(
        b"/r",
        (0..10u8).map(|i| {
            (
                ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"][i as usize],
                e(i),
            )
        }),
    );
    let table_len = 16 * 4;
    let body = map.bytes().len() - 8;
    for fill in [0u8, 3, 0xff, 0x7f] {
        // Every cell points at the same record (or nowhere), with a valid checksum.
        let mut bytes = map.bytes()[..body].to_vec();
        for b in &mut bytes[body - table_len..] {
            *b = fill;
        }
        let sum = cache::checksum(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        let damaged = Map::parse(bytes, b"/r").unwrap();
        for (i, k) in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "zz"]
            .iter()
            .enumerate()
        {
            let got = damaged.get(k);
            assert!(got.is_none() || got == Some(e(i as u8)), "{k}: {got:?}");
        }
    }
}

#[test]
fn stamp_storable_rule() {
    let s = |m: i64, c: i64| Stamp {
        dev: 0,
        ino: 0,
        size: 0,
        mtime_ns: m,
        ctime_ns: c,
    };
    let two = 2_000_000_000;
    let now = 10 * two;
    assert!(s(now - two, now - two).storable(now, two));
    assert!(!s(now - two + 1, now - two).storable(now, two));
    assert!(!s(now - two, now - two + 1).storable(now, two));
    assert!(!s(now + two, 0).storable(now, two), "mtime in the future");
}

// ---------------------------------------------------------------- tree snapshot

/// A cache that trusts digests and tree snapshots at once (no racily-clean margin). Tests that
/// change the tree after a snapshot call [`settle`] first.
fn snap_cache(dir: &Path) -> DigestCache {
    let mut c = test_cache(dir, Duration::ZERO);
    c.tree_min_age_ns = 0;
    c
}

/// Let the clock move past the timestamp tick of what was just written or stat'ed. Without the
/// 2 s margin, a change in the same tick as a recorded stamp could keep that stamp (the very case
/// the margin exists for); 25 ms is over two ticks of the coarsest kernel clock (HZ=100).
fn settle() {
    std::thread::sleep(Duration::from_millis(25));
}

fn counts(c: &DigestCache) -> (u64, u64) {
    (
        c.stats.replays.load(Ordering::Relaxed),
        c.stats.walks.load(Ordering::Relaxed),
    )
}

/// `hash_all` with the cache equals `hash_all` without it; returns how the call was answered
/// ("replay" or "walk").
fn check(root: &Path, c: &DigestCache) -> &'static str {
    let before = counts(c);
    let got = hash_all_with(root, FIELD, Some(c)).unwrap();
    assert_eq!(got, all(root));
    let after = counts(c);
    assert_eq!(after.0 + after.1, before.0 + before.1 + 1);
    if after.0 > before.0 {
        "replay"
    } else {
        "walk"
    }
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn mtime(path: &Path) -> SystemTime {
    fs::symlink_metadata(path).unwrap().modified().unwrap()
}

#[test]
fn snapshot_replays_an_unchanged_tree_in_and_across_processes() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[
        (".gitignore", "*.log\nbuild/\n"),
        (".dockerignore", "secret\n"),
        ("a.py", "A"),
        ("x.log", ""),
        ("build/out", ""),
        ("secret/k", ""),
        ("pkg/sub/deep/m.py", "M"),
        ("pkg/.gitignore", "!keep.log\n"),
        ("pkg/keep.log", "K"),
        ("empty/nested/.keep", ""),
    ]);
    symlink("a.py", &t.path().join("pkg/link"));
    let c = snap_cache(cache_dir.path());
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(c.stats.tree_writes.load(Ordering::Relaxed), 1);
    assert_eq!(check(t.path(), &c), "replay");
    assert_eq!(check(t.path(), &c), "replay");
    assert_eq!(
        c.stats.hashed.load(Ordering::Relaxed),
        7,
        "only the walk read files"
    );
    assert_eq!(c.stats.tree_writes.load(Ordering::Relaxed), 1);
    assert_eq!(c.stats.writes.load(Ordering::Relaxed), 1);
    // Another process: the persistent snapshot.
    let other = snap_cache(cache_dir.path());
    assert_eq!(check(t.path(), &other), "replay");
    assert_eq!(other.stats.hashed.load(Ordering::Relaxed), 0);
}

#[test]
fn snapshot_sees_files_added_removed_and_renamed_in_deep_folders() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[
        ("a/b/c/d/one.txt", "1"),
        ("a/b/c/d/two.txt", "2"),
        ("a/b/c/other.txt", ""),
        ("z.txt", ""),
    ]);
    let deep = t.path().join("a/b/c/d");
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    assert_eq!(check(t.path(), &c), "replay");
    let steps: [(&str, &dyn Fn()); 5] = [
        ("add", &|| fs::write(deep.join("three.txt"), "3").unwrap()),
        ("remove", &|| fs::remove_file(deep.join("one.txt")).unwrap()),
        ("rename", &|| {
            fs::rename(deep.join("two.txt"), deep.join("deux.txt")).unwrap()
        }),
        ("new folder", &|| write(&deep, "e/f/new.txt", "n")),
        ("remove folder", &|| fs::remove_dir_all(deep.join("e")).unwrap()),
    ];
    for (what, change) in steps {
        let before = hash_all_with(t.path(), FIELD, Some(&c)).unwrap();
        settle();
        change();
        assert_eq!(check(t.path(), &c), "walk", "{what}");
        assert_ne!(
            hash_all_with(t.path(), FIELD, Some(&c)).unwrap(),
            before,
            "{what}"
        );
        assert_eq!(check(t.path(), &c), "replay", "{what}");
    }
    let names = paths(t.path());
    assert_eq!(
        names,
        [
            "a/b/c/d/deux.txt",
            "a/b/c/d/three.txt",
            "a/b/c/other.txt",
            "z.txt"
        ]
    );
}

#[test]
fn snapshot_sees_a_gitignore_edited_in_place() {
    let cache_dir = tempfile::tempdir().unwrap();
    // The .gitignore files are not selected (.dockerignore excludes them): only their stamps as
    // rule files can tell.
    let t = tree(&[
        (".dockerignore", "**/.gitignore\n"),
        ("sub/deeper/.gitignore", "*.log\n"),
        ("sub/deeper/a.log", "a"),
        ("sub/deeper/b.txt", "b"),
        ("sub/deeper/child/c.log", "c"),
    ]);
    let gi = t.path().join("sub/deeper/.gitignore");
    let folder = t.path().join("sub/deeper");
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    assert_eq!(check(t.path(), &c), "replay");
    assert_eq!(paths(t.path()), [".dockerignore", "sub/deeper/b.txt"]);

    let (file_mtime, folder_mtime) = (mtime(&gi), mtime(&folder));
    settle();
    // Same size, in place (same inode), old mtime restored: only ctime tells.
    fs::OpenOptions::new()
        .write(true)
        .open(&gi)
        .unwrap()
        .write_all(b"*.txt\n")
        .unwrap();
    set_mtime(&gi, file_mtime);
    assert_eq!((mtime(&gi), mtime(&folder)), (file_mtime, folder_mtime));
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(
        paths(t.path()),
        [".dockerignore", "sub/deeper/a.log", "sub/deeper/child/c.log"]
    );
    assert_eq!(check(t.path(), &c), "replay");
}

#[test]
fn snapshot_sees_a_dockerignore_edited_in_place() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[
        (".dockerignore", ".dockerignore\ndata\n"),
        ("data/x.csv", "x"),
        ("logs/y.log", "y"),
    ]);
    let di = t.path().join(".dockerignore");
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    assert_eq!(check(t.path(), &c), "replay");
    assert_eq!(paths(t.path()), ["logs/y.log"]);

    let (file_mtime, root_mtime) = (mtime(&di), mtime(t.path()));
    settle();
    fs::OpenOptions::new()
        .write(true)
        .open(&di)
        .unwrap()
        .write_all(b".dockerignore\nlogs\n")
        .unwrap();
    set_mtime(&di, file_mtime);
    assert_eq!((mtime(&di), mtime(t.path())), (file_mtime, root_mtime));
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(paths(t.path()), ["data/x.csv"]);
    assert_eq!(check(t.path(), &c), "replay");
}

#[test]
fn snapshot_ignores_changes_inside_pruned_folders() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[
        (".gitignore", "build/\n"),
        (".dockerignore", "scratch\n"),
        ("build/out.o", ""),
        ("scratch/tmp", ""),
        ("pkg/__pycache__/m.pyc", ""),
        ("pkg/m.py", "m"),
    ]);
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    let before = hash_all_with(t.path(), FIELD, Some(&c)).unwrap();
    settle();
    write(t.path(), "build/new.o", "");
    write(t.path(), "build/deep/.gitignore", "!*\n");
    write(t.path(), "scratch/more/file", "");
    write(t.path(), "pkg/__pycache__/n.pyc", "");
    // Neither folder was read by the walk: nothing to stat, and the answer is unchanged.
    assert_eq!(check(t.path(), &c), "replay");
    assert_eq!(hash_all_with(t.path(), FIELD, Some(&c)).unwrap(), before);
}

#[test]
fn snapshot_covers_folders_walked_for_dockerignore_exceptions() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[
        (".dockerignore", "data\n!data/keep/**\n"),
        ("data/drop.csv", ""),
        ("data/keep/k.csv", "k"),
    ]);
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    assert_eq!(check(t.path(), &c), "replay");
    settle();
    // data is excluded but read (a `!` pattern reaches inside): its changes count.
    write(t.path(), "data/keep/deeper/new.csv", "n");
    assert_eq!(check(t.path(), &c), "walk");
    assert!(paths(t.path()).contains(&"data/keep/deeper/new.csv".to_string()));
    assert_eq!(check(t.path(), &c), "replay");
    settle();
    write(t.path(), "data/keep/.gitignore", "k.csv\n");
    assert_eq!(check(t.path(), &c), "walk");
    assert!(!paths(t.path()).contains(&"data/keep/k.csv".to_string()));
    assert_eq!(check(t.path(), &c), "replay");
}

#[test]
fn replay_sees_file_content_exec_bit_and_symlink_changes() {
    use std::os::unix::fs::PermissionsExt;
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a.txt", "version-1"), ("sub/b.sh", "echo")]);
    symlink("a.txt", &t.path().join("sub/link"));
    let a = t.path().join("a.txt");
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    assert_eq!(check(t.path(), &c), "replay");
    let old = mtime(&a);
    settle();
    fs::OpenOptions::new()
        .write(true)
        .open(&a)
        .unwrap()
        .write_all(b"version-2")
        .unwrap();
    set_mtime(&a, old);
    fs::set_permissions(t.path().join("sub/b.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    // Files changed, folders did not: the snapshot holds, the digests are redone.
    assert_eq!(check(t.path(), &c), "replay");
    let got = hash_all_with(t.path(), FIELD, Some(&c)).unwrap();
    assert_eq!(regular(&got, "a.txt").1, sha(b"version-2"));
    assert!(regular(&got, "sub/b.sh").0);
    settle();
    fs::remove_file(t.path().join("sub/link")).unwrap();
    symlink("sub/b.sh", &t.path().join("sub/link"));
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(check(t.path(), &c), "replay");
}

#[test]
fn snapshot_of_a_tree_changed_just_now_is_not_trusted() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A"), ("sub/b", "B")]);
    // The real 2 s margin: the folders were just created.
    let c = test_cache(cache_dir.path(), Duration::ZERO);
    assert_eq!(c.tree_min_age_ns, cache::MIN_AGE.as_nanos() as i64);
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(c.stats.tree_writes.load(Ordering::Relaxed), 0);
    let scope = scope_of_folder(&std::path::absolute(t.path()).unwrap());
    assert!(c.tree(&scope).is_none());
    assert!(!c.tree_file_for(&scope).unwrap().exists());

    // A folder that changed after the snapshot of an old tree: the stale snapshot is dropped
    // (file included) and the next snapshot waits until the folder is 2 s old.
    let old = snap_cache(cache_dir.path());
    check(t.path(), &old);
    assert!(c.tree_file_for(&scope).unwrap().exists());
    let strict = test_cache(cache_dir.path(), Duration::ZERO);
    settle();
    write(t.path(), "sub/c", "C");
    assert_eq!(check(t.path(), &strict), "walk");
    assert!(!strict.tree_file_for(&scope).unwrap().exists());
    assert_eq!(check(t.path(), &strict), "walk");
}

#[test]
fn tree_build_applies_the_racily_clean_rule() {
    let stamp = |m: i64, c: i64| Stamp {
        dev: 1,
        ino: 2,
        size: 3,
        mtime_ns: m,
        ctime_ns: c,
    };
    let two = 2_000_000_000;
    let taken = 100 * two;
    let record = |folder: Stamp, rule: Option<Stamp>| tree::Record {
        folders: vec![(String::new(), folder)],
        rules: rule.map(|r| (".gitignore".to_string(), r)).into_iter().collect(),
        unusable: false,
    };
    let ok = stamp(taken - two, taken - two);
    let build = |r| Tree::build(r, &[], taken, two);
    assert!(build(record(ok, Some(ok))).is_some());
    assert!(build(record(stamp(taken - two + 1, taken - two), None)).is_none());
    assert!(build(record(ok, Some(stamp(taken - two, taken - two + 1)))).is_none());
    assert!(build(tree::Record {
        unusable: true,
        ..record(ok, None)
    })
    .is_none());
}

#[test]
fn snapshot_corrupt_or_foreign_falls_back_to_the_walk() {
    let cache_dir = tempfile::tempdir().unwrap();
    let t = tree(&[("a", "A"), ("sub/b", "B"), ("sub/c", "C")]);
    let scope = scope_of_folder(&std::path::absolute(t.path()).unwrap());
    let c = snap_cache(cache_dir.path());
    check(t.path(), &c);
    let file = c.tree_file_for(&scope).unwrap();
    let good = fs::read(&file).unwrap();
    let tree = Tree::decode(&good, &scope).unwrap();
    assert_eq!(tree.len(), 3);
    assert_eq!(Tree::decode(&tree.encode(&scope), &scope).as_ref(), Some(&tree));
    assert!(Tree::decode(&good, b"/other/root").is_none());

    let with_sum = |mut body: Vec<u8>| {
        let sum = cache::checksum(&body);
        body.extend_from_slice(&sum.to_le_bytes());
        body
    };
    let body = good[..good.len() - 8].to_vec();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    let mut other_version = body.clone();
    other_version[8] = 99;
    // Valid checksum, broken structure: the last file record names a folder that does not exist.
    let mut bad_folder = body.clone();
    let at = bad_folder.len() - 8;
    bad_folder[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    // Valid checksum, files out of order: swap the path spans of the first two file records.
    let mut unsorted = body.clone();
    let first = unsorted.len() - 3 * 16;
    let (x, y) = (
        unsorted[first..first + 8].to_vec(),
        unsorted[first + 16..first + 24].to_vec(),
    );
    unsorted[first..first + 8].copy_from_slice(&y);
    unsorted[first + 16..first + 24].copy_from_slice(&x);
    let damaged = [
        flipped,
        with_sum(other_version),
        with_sum(bad_folder),
        with_sum(unsorted),
        good[..good.len() - 1].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
        Tree::decode(&good, &scope).unwrap().encode(b"/some/other/root"),
    ];
    for (i, bad) in damaged.iter().enumerate() {
        assert!(Tree::decode(bad, &scope).is_none(), "{i}");
        fs::write(&file, bad).unwrap();
        let fresh = snap_cache(cache_dir.path());
        assert_eq!(check(t.path(), &fresh), "walk", "{i}");
        // Rebuilt.
        assert_eq!(fs::read(&file).unwrap(), good, "{i}");
        assert_eq!(check(t.path(), &fresh), "replay", "{i}");
    }
}

#[test]
fn symlinked_ignore_files_give_no_snapshot() {
    let cache_dir = tempfile::tempdir().unwrap();
    let outside = tree(&[("rules", "*.log\n")]);
    let t = tree(&[("a.log", ""), ("b.txt", "")]);
    symlink(
        outside.path().join("rules").to_str().unwrap(),
        &t.path().join(".gitignore"),
    );
    let c = snap_cache(cache_dir.path());
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(paths(t.path()), [".gitignore", "b.txt"]);
    // The target changes, the tree does not: only a walk can tell.
    fs::write(outside.path().join("rules"), "*.txt\n").unwrap();
    assert_eq!(check(t.path(), &c), "walk");
    assert_eq!(paths(t.path()), [".gitignore", "a.log"]);
    assert_eq!(c.stats.tree_writes.load(Ordering::Relaxed), 0);
}

#[test]
fn sequential_and_parallel_walks_agree() {
    let t = tree(&[
        (".gitignore", "*.log\n!keep.log\nbuild/\n"),
        (".dockerignore", "data\n!data/keep/**\n"),
        ("keep.log", ""),
        ("a.log", ""),
        ("build/x", ""),
        ("data/drop", ""),
        ("data/keep/k", ""),
        ("sub/.gitignore", "!a.log\n"),
        ("sub/a.log", ""),
        ("sub/deep/f", "f"),
    ]);
    let walk = |sequential| {
        let mode = walk::Mode {
            record: true,
            sequential,
        };
        let walked = walk::walk(t.path(), FIELD, None, mode).unwrap();
        let mut files = walked.files;
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let record = walked.record.unwrap();
        let mut folders: Vec<String> = record.folders.into_iter().map(|f| f.0).collect();
        folders.sort();
        let mut rules: Vec<String> = record.rules.into_iter().map(|f| f.0).collect();
        rules.sort();
        (files, folders, rules, record.unusable)
    };
    let parallel = walk(false);
    assert_eq!(walk(true), parallel);
    assert_eq!(parallel.0, all(t.path()));
    assert_eq!(parallel.1, ["", "data", "data/keep", "sub", "sub/deep"]);
    assert_eq!(parallel.2, [".dockerignore", ".gitignore", "sub/.gitignore"]);
}

// ---------------------------------------------------------------- public API

#[test]
fn public_functions_match_the_internal_ones() {
    let t = tree(&[("a", "A"), ("conf/x", "X")]);
    assert_eq!(hash_all(t.path(), FIELD).unwrap(), all(t.path()));
    assert_eq!(
        hash_listed(t.path(), &[t.path().join("a")], FIELD).unwrap(),
        all(t.path())[..1]
    );
    assert_eq!(hash_path(t.path(), "conf", "copy").unwrap(), all(t.path())[1..]);
}

// ---------------------------------------------------------------- benchmark

/// `IMAGESPEC_BENCH_TREE=/tmp/tree cargo test --release --no-default-features --lib source::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench() {
    let Some(tree) = std::env::var_os("IMAGESPEC_BENCH_TREE").map(PathBuf::from) else {
        eprintln!("set IMAGESPEC_BENCH_TREE");
        return;
    };
    let reps: usize = std::env::var("IMAGESPEC_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    // IMAGESPEC_BENCH_ONLY=cold|warm: only that run, repeated (for profiling).
    match std::env::var("IMAGESPEC_BENCH_ONLY").as_deref() {
        Ok("cold") => {
            for _ in 0..reps {
                hash_all_with(&tree, FIELD, None).unwrap();
            }
            return;
        }
        // Only first runs (empty persistent cache), timed one by one.
        Ok("first") => {
            let cache_dir = tempfile::tempdir().unwrap();
            let mut runs: Vec<f64> = (0..reps)
                .map(|_| {
                    let _ = fs::remove_dir_all(cache_dir.path().join("digests"));
                    let c = test_cache(cache_dir.path(), cache::MIN_AGE);
                    let start = Instant::now();
                    hash_all_with(&tree, FIELD, Some(&c)).unwrap();
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            eprintln!(
                "first runs: median {:.1} ms, min {:.1} ms",
                runs[reps / 2],
                runs[0]
            );
            return;
        }
        Ok("warm") => {
            let warm = DigestCache::new(None);
            for _ in 0..=reps {
                hash_all_with(&tree, FIELD, Some(&warm)).unwrap();
            }
            return;
        }
        // Only the second runs (a replay of the snapshot, or with IMAGESPEC_BENCH_WALK=1 the
        // walk with warm digests), timed one by one.
        Ok("second") => {
            let warm = DigestCache::new(None);
            hash_all_with(&tree, FIELD, Some(&warm)).unwrap();
            let walk = std::env::var_os("IMAGESPEC_BENCH_WALK").is_some();
            let scope = scope_of_folder(&tree);
            let mut runs: Vec<f64> = (0..reps)
                .map(|_| {
                    if walk {
                        warm.set_tree(&scope, None);
                    }
                    let start = Instant::now();
                    hash_all_with(&tree, FIELD, Some(&warm)).unwrap();
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            let (replays, walks) = (
                warm.stats.replays.load(Ordering::Relaxed),
                warm.stats.walks.load(Ordering::Relaxed),
            );
            eprintln!(
                "second runs: median {:.1} ms, min {:.1} ms ({replays} replays, {walks} walks)",
                runs[reps / 2],
                runs[0]
            );
            return;
        }
        _ => {}
    }
    let time = |label: &str, f: &mut dyn FnMut() -> usize| {
        let mut runs = Vec::new();
        let mut n = 0;
        for _ in 0..reps {
            let start = Instant::now();
            n = f();
            runs.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        runs.sort_by(f64::total_cmp);
        eprintln!(
            "{label:<48} median {:8.1} ms  min {:8.1} ms  ({n} files)",
            runs[runs.len() / 2],
            runs[0]
        );
    };

    // The floor: sha256 from memory (no I/O), on one and on all threads.
    let data = vec![0x5au8; 64 << 20];
    for threads in [1, walk::threads()] {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| Sha256::digest(&data));
            }
        });
        let rate = (threads * data.len()) as f64 / start.elapsed().as_secs_f64() / 1e9;
        eprintln!("sha256 from memory, {threads} thread(s): {rate:.2} GB/s in total");
    }
    drop(data);

    time("git ls-files -co --exclude-standard", &mut || {
        let out = std::process::Command::new("git")
            .args(["ls-files", "-co", "--exclude-standard"])
            .current_dir(&tree)
            .output()
            .unwrap();
        out.stdout.iter().filter(|b| **b == b'\n').count()
    });
    let files = all(&tree);
    let bytes: u64 = files
        .iter()
        .filter(|f| matches!(f.kind, FileKind::Regular { .. }))
        .map(|f| fs::symlink_metadata(tree.join(&f.path)).unwrap().len())
        .sum();
    eprintln!("selected {} files, {:.1} MB", files.len(), bytes as f64 / 1e6);
    time("hash_all, no digest cache", &mut || {
        hash_all_with(&tree, FIELD, None).unwrap().len()
    });

    let cache_dir = tempfile::tempdir().unwrap();
    let mut first = Vec::new();
    for _ in 0..reps {
        let _ = fs::remove_dir_all(cache_dir.path().join("digests"));
        let c = test_cache(cache_dir.path(), cache::MIN_AGE);
        let start = Instant::now();
        hash_all_with(&tree, FIELD, Some(&c)).unwrap();
        first.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    first.sort_by(f64::total_cmp);
    eprintln!(
        "{:<48} median {:8.1} ms  min {:8.1} ms",
        "hash_all, empty cache (first run)",
        first[reps / 2],
        first[0]
    );
    time("hash_all, persistent cache (new process)", &mut || {
        let c = test_cache(cache_dir.path(), cache::MIN_AGE);
        let n = hash_all_with(&tree, FIELD, Some(&c)).unwrap().len();
        assert_eq!(
            c.stats.hashed.load(Ordering::Relaxed),
            0,
            "tree must be older than 2 s"
        );
        n
    });
    let warm = test_cache(cache_dir.path(), cache::MIN_AGE);
    hash_all_with(&tree, FIELD, Some(&warm)).unwrap();
    time("hash_all, in-process cache (same process)", &mut || {
        hash_all_with(&tree, FIELD, Some(&warm)).unwrap().len()
    });
    eprintln!(
        "  (replays {}, walks {}: replays need a tree older than 2 s)",
        warm.stats.replays.load(Ordering::Relaxed),
        warm.stats.walks.load(Ordering::Relaxed)
    );
    // The same, with the snapshot dropped before each call: the walk with a warm digest cache.
    time("hash_all, in-process digests, no snapshot (walk)", &mut || {
        warm.set_tree(&scope_of_folder(&tree), None);
        hash_all_with(&tree, FIELD, Some(&warm)).unwrap().len()
    });
    let scope = scope_of_folder(&std::path::absolute(&tree).unwrap());
    let file = warm.file_for(&scope).unwrap();
    time("load persistent cache file", &mut || {
        Map::parse(fs::read(&file).unwrap(), &scope).unwrap().len()
    });
    let tree_file = warm.tree_file_for(&scope).unwrap();
    time("load tree snapshot file", &mut || {
        Tree::decode(&fs::read(&tree_file).unwrap(), &scope)
            .unwrap()
            .len()
    });

    // The alternative design: walk first, then hash the collected files on scoped threads.
    let jobs: Vec<(PathBuf, String, fs::Metadata)> = files
        .iter()
        .map(|f| {
            let abs = tree.join(&f.path);
            let md = fs::symlink_metadata(&abs).unwrap();
            (abs, f.path.clone(), md)
        })
        .collect();
    time(
        "hashing phase alone (collected files, scoped threads)",
        &mut || hash_jobs(&jobs, FIELD, None).unwrap().0.len(),
    );

    let modules: Vec<PathBuf> = fs::read_to_string(tree.join("app/workflows.py"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("import ").or_else(|| l.strip_prefix("from ")))
        .map(|m| {
            tree.join(format!(
                "{}.py",
                m.split_whitespace().next().unwrap().replace('.', "/")
            ))
        })
        .chain([tree.join("app/workflows.py"), tree.join("app/__init__.py")])
        .collect();
    time("hash_listed (app/workflows.py imports), no cache", &mut || {
        hash_listed_with(&tree, &modules, FIELD, None).unwrap().len()
    });
}

// ---------------------------------------------------------------- random trees

mod random {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &["a", "b", "c.log", "d.py", "build", "x.tmp", "keep.log"];
    const GIT_LINES: &[&str] = &[
        "*.log",
        "!c.log",
        "build/",
        "/a",
        "b/",
        "**/x.tmp",
        "a/**/d.py",
        "!build/",
        "b",
        "!a",
        "*.py",
        "!keep.log",
        "a/b",
        "/b/*",
        "!d.py",
        "**/a/c.log",
    ];
    const DOCKER_LINES: &[&str] = &[
        "*.log",
        "a",
        "!a/b",
        "**/build",
        "!**/d.py",
        "b/c.log",
        "!b",
        "a/*/x.tmp",
        "**",
        "!build/**",
    ];

    /// A tree: files at paths made of NAMES (a name is a file or, if it has children, a folder),
    /// `.gitignore` files in some folders, maybe a root `.dockerignore`.
    #[derive(Debug, Clone)]
    struct Tree {
        files: Vec<Vec<usize>>,
        gitignores: Vec<(Vec<usize>, Vec<usize>)>,
        docker: Option<Vec<usize>>,
    }

    fn tree_strategy(docker: bool) -> impl Strategy<Value = Tree> {
        let path = prop::collection::vec(0..NAMES.len(), 1..4);
        let files = prop::collection::vec(path, 1..25);
        let dir = prop::collection::vec(0..NAMES.len(), 0..3);
        let lines = prop::collection::vec(0..GIT_LINES.len(), 1..5);
        let gitignores = prop::collection::vec((dir, lines), 0..4);
        let docker_lines = prop::collection::vec(0..DOCKER_LINES.len(), 1..5);
        let docker = if docker {
            prop::option::of(docker_lines).boxed()
        } else {
            Just(None).boxed()
        };
        (files, gitignores, docker).prop_map(|(files, gitignores, docker)| Tree {
            files,
            gitignores,
            docker,
        })
    }

    fn rel(p: &[usize]) -> String {
        p.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join("/")
    }

    /// Build the tree; paths that clash (a file where a folder is needed) are skipped.
    fn build(t: &Tree) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Longest first, so that folders exist before a shorter path would take the name as a file.
        let mut files = t.files.clone();
        files.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in &files {
            let path = root.join(rel(p));
            if fs::create_dir_all(path.parent().unwrap()).is_ok() && !path.exists() {
                fs::write(&path, rel(p)).unwrap();
            }
        }
        for (d, lines) in &t.gitignores {
            let folder = root.join(rel(d));
            if folder.is_dir() {
                let text: Vec<&str> = lines.iter().map(|i| GIT_LINES[*i]).collect();
                fs::write(folder.join(".gitignore"), text.join("\n") + "\n").unwrap();
            }
        }
        if let Some(lines) = &t.docker {
            let text: Vec<&str> = lines.iter().map(|i| DOCKER_LINES[*i]).collect();
            fs::write(root.join(".dockerignore"), text.join("\n") + "\n").unwrap();
        }
        dir
    }

    /// What git itself selects (`git ls-files -co --exclude-standard`, no global configuration).
    fn git_selection(root: &Path) -> Vec<String> {
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(root)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_TEMPLATE_DIR", "")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        git(&["init", "-q"]);
        let listed = git(&[
            "-c",
            "core.excludesFile=/dev/null",
            "ls-files",
            "-co",
            "--exclude-standard",
        ]);
        let mut paths: Vec<String> = listed.lines().map(str::to_string).collect();
        paths.sort();
        paths
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        /// `.gitignore` handling agrees with git.
        #[test]
        fn gitignore_agrees_with_git(t in tree_strategy(false)) {
            let dir = build(&t);
            let ours = paths(dir.path());
            prop_assert_eq!(ours, git_selection(dir.path()));
        }

        /// `.dockerignore`: the walk (which prunes folders) keeps exactly the files whose own
        /// last matching pattern (on the path or a parent) is not an exclusion.
        #[test]
        fn dockerignore_pruning_is_only_an_optimisation(t in tree_strategy(true)) {
            let dir = build(&t);
            let root = dir.path();
            let with_docker = paths(root);
            let Ok(text) = fs::read_to_string(root.join(".dockerignore")) else { return Ok(()) };
            let docker = rules::DockerIgnore::parse(root, &text).unwrap();
            fs::remove_file(root.join(".dockerignore")).unwrap();
            let mut expected: Vec<String> = paths(root)
                .into_iter()
                .chain([".dockerignore".to_string()])
                .filter(|p| !matches!(&docker, Some(d) if d.excluded(Path::new(p), false)))
                .collect();
            expected.sort();
            prop_assert_eq!(with_docker, expected);
        }

        /// The walk on the calling thread (small trees) and the parallel walk agree, in their
        /// result and in what they record for the tree snapshot.
        #[test]
        fn sequential_walk_agrees_with_parallel_walk(t in tree_strategy(true)) {
            let dir = build(&t);
            let walk = |sequential| {
                let mode = walk::Mode { record: true, sequential };
                let walked = walk::walk(dir.path(), FIELD, None, mode).unwrap();
                let mut files = walked.files;
                files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
                let record = walked.record.unwrap();
                let mut folders: Vec<String> = record.folders.into_iter().map(|f| f.0).collect();
                folders.sort();
                let mut rules: Vec<String> = record.rules.into_iter().map(|f| f.0).collect();
                rules.sort();
                (files, folders, rules, record.unusable)
            };
            prop_assert_eq!(walk(true), walk(false));
        }

        /// LOADED_MODULES mode decides every path as the walk does.
        #[test]
        fn listed_agrees_with_walk(t in tree_strategy(true)) {
            let dir = build(&t);
            let walked = all(dir.path());
            let got = listed(dir.path(), &every_path(dir.path()));
            prop_assert_eq!(got, walked);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// With the tree snapshot (replayed when nothing changed, else a walk) the answer is the
        /// walk's, before and after a random change.
        #[test]
        fn snapshot_agrees_with_walk(
            t in tree_strategy(true),
            change in 0..6usize,
            pick in any::<prop::sample::Index>(),
            new_path in prop::collection::vec(0..NAMES.len(), 1..4),
            lines in prop::collection::vec(0..GIT_LINES.len(), 1..4),
        ) {
            let dir = build(&t);
            let root = dir.path();
            let cache_dir = tempfile::tempdir().unwrap();
            let c = snap_cache(cache_dir.path());
            let expected = all(root);
            prop_assert_eq!(&hash_all_with(root, FIELD, Some(&c)).unwrap(), &expected);
            prop_assert_eq!(&hash_all_with(root, FIELD, Some(&c)).unwrap(), &expected);
            prop_assert_eq!(counts(&c), (1, 1));

            settle();
            let everything = every_path(root);
            let files: Vec<&PathBuf> = everything.iter().filter(|p| p.is_file()).collect();
            let folders: Vec<PathBuf> = everything
                .iter()
                .filter(|p| p.is_dir())
                .cloned()
                .chain([root.to_path_buf()])
                .collect();
            let gitignores: Vec<&&PathBuf> =
                files.iter().filter(|p| p.file_name().unwrap() == ".gitignore").collect();
            let text: Vec<&str> = lines.iter().map(|i| GIT_LINES[*i]).collect();
            let text = text.join("\n") + "\n";
            let rewrite = |path: &Path, text: &str| {
                let old = fs::symlink_metadata(path).ok().map(|m| m.modified().unwrap());
                let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).unwrap();
                f.write_all(text.as_bytes()).unwrap();
                if let Some(old) = old {
                    f.set_modified(old).unwrap();
                }
            };
            match change {
                0 => {
                    let path = root.join(rel(&new_path));
                    if fs::create_dir_all(path.parent().unwrap()).is_ok() && !path.exists() {
                        fs::write(&path, "new").unwrap();
                    }
                }
                1 if !files.is_empty() => fs::remove_file(files[pick.index(files.len())]).unwrap(),
                2 if !gitignores.is_empty() => rewrite(gitignores[pick.index(gitignores.len())], &text),
                3 => rewrite(&folders[pick.index(folders.len())].join(".gitignore"), &text),
                4 => {
                    let text: Vec<&str> = lines.iter().map(|i| DOCKER_LINES[*i % DOCKER_LINES.len()]).collect();
                    rewrite(&root.join(".dockerignore"), &(text.join("\n") + "\n"));
                }
                _ => {}
            }
            let expected = all(root);
            prop_assert_eq!(&hash_all_with(root, FIELD, Some(&c)).unwrap(), &expected);
            prop_assert_eq!(&hash_all_with(root, FIELD, Some(&c)).unwrap(), &expected);
        }
    }
}

// ---------------------------------------------------------------- per-input overhead

/// The source calls of one `.tag` of a small spec: `requirements=` one file, `copy=["conf"]` (10
/// small files) and LOADED_MODULES with 1,200 module files of which 35 are under the root.
/// `cargo test --release --no-default-features --lib source::tests::bench_small -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_small() {
    let proj = tree(&[
        (".gitignore", "build/\n*.pyc\n__pycache__/\n"),
        ("requirements.txt", "pandas\nnumpy\n"),
    ]);
    let root = proj.path();
    for i in 0..10 {
        write(root, &format!("conf/c{i}.yaml"), &"k: v\n".repeat(6000));
    }
    let mut modules = Vec::new();
    for i in 0..35 {
        let rel = format!("app/p{}/m{i}.py", i % 4);
        write(root, &rel, &format!("X = {i}\n"));
        modules.push(root.join(rel));
    }
    let outside = tempfile::tempdir().unwrap();
    for i in 0..1165 {
        let rel = format!("lib/python3.12/p{}/s{}/m{i}.py", i % 12, i % 5);
        write(outside.path(), &rel, "");
        modules.push(outside.path().join(rel));
    }
    let cache_dir = tempfile::tempdir().unwrap();
    // Let the fixture age past MIN_AGE so that the caches trust it.
    std::thread::sleep(cache::MIN_AGE + Duration::from_millis(200));
    let reps = 200;
    let run = |cache: &DigestCache| {
        let t0 = Instant::now();
        let req = hash_path_with(root, "requirements.txt", "requirements", Some(cache)).unwrap();
        let t1 = Instant::now();
        let listed = hash_listed_with(root, &modules, FIELD, Some(cache)).unwrap();
        let t2 = Instant::now();
        let conf = hash_path_with(root, "conf", "copy", Some(cache)).unwrap();
        let t3 = Instant::now();
        assert_eq!((req.len(), listed.len(), conf.len()), (1, 35, 10));
        [t1 - t0, t2 - t1, t3 - t2, t3 - t0]
    };
    let report = |label: &str, mut runs: Vec<[Duration; 4]>| {
        let names = [
            "hash_path(file)",
            "hash_listed(1,200)",
            "hash_path(conf/)",
            "total",
        ];
        for (i, name) in names.iter().enumerate() {
            let mut col: Vec<f64> = runs.iter_mut().map(|r| r[i].as_secs_f64() * 1e3).collect();
            col.sort_by(f64::total_cmp);
            eprintln!(
                "{label:<28} {name:<20} median {:7.3} ms  min {:7.3} ms",
                col[col.len() / 2],
                col[0]
            );
        }
    };
    let warm = DigestCache::new(Some(cache_dir.path().join("digests")));
    run(&warm);
    report("warm, same process", (0..reps).map(|_| run(&warm)).collect());
    // conf/ walked each time (as when it changed): the walk of a small folder.
    let mut walks: Vec<f64> = (0..reps)
        .map(|_| {
            warm.set_tree(&scope_of_folder(&root.join("conf")), None);
            let start = Instant::now();
            hash_path_with(root, "conf", "copy", Some(&warm)).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    walks.sort_by(f64::total_cmp);
    eprintln!(
        "{:<28} {:<20} median {:7.3} ms  min {:7.3} ms",
        "warm digests, walked",
        "hash_path(conf/)",
        walks[reps / 2],
        walks[0]
    );
    report(
        "warm, new process",
        (0..reps / 4)
            .map(|_| run(&DigestCache::new(Some(cache_dir.path().join("digests")))))
            .collect(),
    );
}
