//! Tree snapshots (`tree.rs`, `tree/replay.rs`): a replay gives the walk's answer, and any
//! change a walk would see makes it walk.

use super::*;

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
    let walk = |sequential| recorded_walk(t.path(), sequential);
    let parallel = walk(false);
    assert_eq!(walk(true), parallel);
    assert_eq!(parallel.0, all(t.path()));
    assert_eq!(parallel.1, ["", "data", "data/keep", "sub", "sub/deep"]);
    assert_eq!(parallel.2, [".dockerignore", ".gitignore", "sub/.gitignore"]);
}
