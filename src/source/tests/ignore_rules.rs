//! The ignore rules (`rules.rs`, `walk.rs`): `.gitignore` at every level, the root
//! `.dockerignore` with docker's semantics, and the standard ignores no negation re-includes.

use super::*;

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
