//! Tests of source selection and hashing, one file per part of `source/`; the helpers they share
//! are here.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::cache::{self, DigestCache, Entry, Map, Stamp};
use super::hash::CHUNK;
use super::*;
use std::io::Write;

mod bench;
mod digest_cache;
mod file_kinds;
mod ignore_rules;
mod listed_paths;
mod random_trees;
mod tree_snapshot;

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

/// A recording walk of `root`, sorted: the files, the folders and ignore-rule files it recorded,
/// and whether it met anything a snapshot cannot vouch for.
fn recorded_walk(root: &Path, sequential: bool) -> (Vec<SourceFile>, Vec<String>, Vec<String>, bool) {
    let mode = walk::Mode {
        record: true,
        sequential,
    };
    let walked = walk::walk(root, FIELD, None, mode).unwrap();
    let mut files = walked.files;
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let record = walked.record.unwrap();
    let mut folders: Vec<String> = record.folders.into_iter().map(|f| f.0).collect();
    folders.sort();
    let mut rules: Vec<String> = record.rules.into_iter().map(|f| f.0).collect();
    rules.sort();
    (files, folders, rules, record.unusable)
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

fn listed(root: &Path, files: &[PathBuf]) -> Vec<SourceFile> {
    hash_listed_with(root, files, FIELD, None).unwrap()
}

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
