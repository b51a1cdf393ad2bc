//! The digest cache (`cache.rs`, `cache/table.rs`): hits, the racily-clean rule, damaged or
//! foreign files, and its use by every mode.

use super::*;

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
