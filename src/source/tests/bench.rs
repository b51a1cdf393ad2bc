//! Benchmarks, run by hand (`--ignored`): a big tree given by IMAGESPEC_BENCH_TREE, and the
//! per-input overhead of one small spec's `.tag`.

use super::*;

/// `IMAGESPEC_BENCH_TREE=/tmp/tree cargo test --release --no-default-features --lib source::tests::bench::bench -- --ignored --nocapture`
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

// ---------------------------------------------------------------- per-input overhead

/// The source calls of one `.tag` of a small spec: `requirements=` one file, `copy=["conf"]` (10
/// small files) and LOADED_MODULES with 1,200 module files of which 35 are under the root.
/// `cargo test --release --no-default-features --lib source::tests::bench::bench_small -- --ignored --nocapture`
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
