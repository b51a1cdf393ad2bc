//! Listed files and single paths (`hash_listed`, `hash_path`): placed under the root
//! (`locate.rs`) and selected by the same rules as the walk, without walking.

use super::*;

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
