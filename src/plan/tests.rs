//! The plan's tests: bases first, each image once, the choice of builder, force-pushed builds.

use super::builders::{choose, Builder, Builders};
use super::*;
use crate::engines::Request;
use crate::spec::{Context, RawBase, RawSpec};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn spec(name: &str, packages: &[&str], base: Option<Spec>) -> Spec {
    let raw = RawSpec {
        name: Some(name.to_owned()),
        registry: Some("localhost:1".to_owned()),
        packages: Some(packages.iter().map(|s| (*s).to_owned()).collect()),
        base_image: base.map(|b| RawBase::Built(Box::new(b))),
        ..Default::default()
    };
    let ctx = Context {
        base_dir: Path::new("/nonexistent").to_path_buf(),
        python_version: "3.11".into(),
        host_arch: "x86_64".into(),
    };
    Spec::from_raw(raw, &ctx).unwrap()
}

struct Counting {
    available: bool,
    calls: AtomicUsize,
}

impl Builder for Counting {
    fn probe(&self) -> std::result::Result<(), String> {
        if self.available {
            Ok(())
        } else {
            Err("not installed".into())
        }
    }
    fn build(&self, request: &Request<'_>) -> Result<Option<String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(format!("{}@sha256:{}", request.image, "0".repeat(64))))
    }
    fn is_engine(&self) -> bool {
        true
    }
}

fn counting(available: bool) -> Arc<Counting> {
    Arc::new(Counting {
        available,
        calls: AtomicUsize::new(0),
    })
}

#[test]
fn bases_come_first_and_each_image_once() {
    let base = spec("base", &["six"], None);
    let a = spec("a", &["attrs"], Some(base.clone()));
    let b = spec("b", &[], Some(base.clone()));
    let nodes = flatten(&[a.clone(), b, a, base], None).unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.spec.name.as_str()).collect();
    assert_eq!(names, ["base", "a", "b"]);
    assert_eq!(nodes[1].deps, [0]);
    assert_eq!(nodes[2].deps, [0]);
    assert_eq!(nodes[1].inputs, [0, 2]);
    assert_eq!(nodes[0].inputs, [3]);
}

#[test]
fn the_highest_available_priority_wins_and_noop_is_never_picked() {
    let (low, high_missing, noop) = (counting(true), counting(false), counting(true));
    let mut builders = Builders::default();
    builders.add("low", 1, low.clone());
    builders.add("high", 9, high_missing.clone());
    builders.add("noop", 99, noop.clone());
    let probes = Mutex::new(HashMap::new());
    let s = spec("x", &[], None);
    let (name, _) = choose(&builders, &s, &probes).unwrap();
    assert_eq!(name, "low");
    builders.add("low", 1, counting(false));
    let probes = Mutex::new(HashMap::new());
    let err = choose(&builders, &s, &probes).err().unwrap();
    assert!(
        err.contains("high: not installed") && err.contains("low: not installed"),
        "{err}"
    );
    assert!(!err.contains("noop"), "{err}");
}

#[test]
fn a_named_builder_is_used_or_refused_with_the_registered_names() {
    let mut builders = Builders::default();
    builders.add("one", 1, counting(true));
    let probes = Mutex::new(HashMap::new());
    let mut s = spec("x", &[], None);
    s.builder = Some("two".into());
    let err = choose(&builders, &s, &probes).err().unwrap();
    assert!(
        err.contains("\"two\" is not registered (registered: one)"),
        "{err}"
    );
    s.builder = Some("one".into());
    assert_eq!(choose(&builders, &s, &probes).unwrap().0, "one");
}

#[test]
fn force_pushed_images_are_built_without_a_check_bases_first() {
    let builder = counting(true);
    let mut builders = Builders::default();
    builders.add("b", 1, builder.clone());
    let mut base = spec("base", &["six"], None);
    base.force_push = true;
    let mut child = spec("child", &[], Some(base.clone()));
    child.force_push = true;
    let events = Mutex::new(Vec::new());
    let options = PlanOptions {
        lock_dir: Some(tempfile::tempdir().unwrap().keep()),
        ..Default::default()
    };
    let results = run(&[child], &builders, &options, &|e| events.lock().unwrap().push(e)).unwrap();
    assert_eq!(builder.calls.load(Ordering::SeqCst), 2);
    assert!(results.iter().all(|r| r.outcome == Outcome::Built));
    assert!(results[0].name.ends_with(&format!("@sha256:{}", "0".repeat(64))));
    let events = events.into_inner().unwrap();
    assert!(!events.iter().any(|e| matches!(e, Event::Checking { .. })));
    let done: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Done { image, .. } => Some(image.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(done, [results[0].image.as_str(), results[1].image.as_str()]);
}
