//! Random trees and rules (proptest): `.gitignore` handling agrees with git itself, `.dockerignore`
//! pruning with the per-file rule, the sequential walk with the parallel one, listed paths with
//! the walk, and snapshot replays with the walk before and after a random change.

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
        let walk = |sequential| recorded_walk(dir.path(), sequential);
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
