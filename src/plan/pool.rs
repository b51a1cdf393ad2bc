//! A plan's images spread over a pool of engines ([`crate::engines::pool`]): which engine builds
//! which image, and again when an engine stops answering.
//!
//! An image goes to the engine that scores highest for its dependencies identity (rendezvous
//! hashing over the engines' labels), so that images sharing dependencies meet the same layer
//! cache and the same plan lands the same way on every run; an engine takes at most its share of
//! the images (by its `parallel`), so that a pool is used whole. An image for one platform prefers
//! the engines that build that platform natively. An engine that fails a build and then does not
//! answer its probe is dead for the rest of the plan: its images go to the others.

use super::builders::{Builder, EngineBuilder};
use super::{Event, Node};
use crate::engines::buildkit::BuildKit;
use crate::engines::docker::Docker;
use crate::engines::pool::{Endpoint, PoolEngine};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// One engine of the pool, ready to build.
pub(super) struct Member {
    pub label: String,
    pub kind: String,
    pub slots: usize,
    /// What it builds natively (declared, or asked of the daemon).
    pub platform: Option<String>,
    pub builder: Arc<dyn Builder>,
}

/// The pool of a plan and which of its engines answer, each asked once (in parallel: a dead one
/// costs its probe's timeout, not the sum); those that do not are reported.
pub(super) struct Pool {
    pub members: Vec<Member>,
    pub alive: Vec<bool>,
}

pub(super) fn members(engines: &[PoolEngine], on_event: &(dyn Fn(Event) + Sync)) -> Pool {
    let probed: Vec<std::result::Result<Member, Member>> = std::thread::scope(|scope| {
        let handles: Vec<_> = engines.iter().map(|e| scope.spawn(move || member(e))).collect();
        handles
            .into_iter()
            .zip(engines)
            .map(|(h, e)| match h.join() {
                Ok(Ok(m)) => Ok(m),
                Ok(Err(why)) => {
                    on_event(Event::Warning {
                        image: String::new(),
                        message: format!("engine {} is left out: {why}", e.label),
                    });
                    Err(dead(e))
                }
                Err(_) => Err(dead(e)),
            })
            .collect()
    });
    let alive = probed.iter().map(|m| m.is_ok()).collect();
    let members = probed.into_iter().map(|m| m.unwrap_or_else(|m| m)).collect();
    Pool { members, alive }
}

/// An engine that did not answer: it still names its images' failures.
fn dead(e: &PoolEngine) -> Member {
    Member {
        label: e.label.clone(),
        kind: e.kind.clone(),
        slots: e.parallel,
        platform: e.platform.clone(),
        builder: Arc::new(EngineBuilder(Arc::new(Docker {
            endpoint: e.endpoint.clone(),
        }))),
    }
}

fn member(e: &PoolEngine) -> std::result::Result<Member, String> {
    let (engine, platform): (Arc<dyn crate::engines::Engine>, Option<String>) = if e.kind == "docker" {
        let docker = Docker {
            endpoint: e.endpoint.clone(),
        };
        let platform = match &e.platform {
            Some(p) => Some(p.clone()),
            None => Some(docker.platform()?),
        };
        (Arc::new(docker), platform)
    } else if e.kind == "buildkit" {
        let (addr, tls) = match &e.endpoint {
            Endpoint::Host { url, tls } => (Some(url.clone()), tls.clone()),
            _ => (None, None),
        };
        let engine: Arc<dyn crate::engines::Engine> = Arc::new(BuildKit { addr, tls });
        engine.probe()?;
        (engine, e.platform.clone())
    } else {
        let engine = crate::engines::builtin(&e.kind).ok_or_else(|| format!("no engine {}", e.kind))?;
        engine.probe()?;
        (engine, e.platform.clone().or_else(|| Some(host_platform())))
    };
    if e.kind == "docker" {
        engine.probe()?;
    }
    Ok(Member {
        label: e.label.clone(),
        kind: e.kind.clone(),
        slots: e.parallel,
        platform,
        builder: Arc::new(EngineBuilder(engine)),
    })
}

/// This machine's `linux/ARCH`, as OCI names architectures.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// The members that may build `node`: those of the kind (or label) its spec names, else all.
pub(super) fn eligible(node: &Node, members: &[Member]) -> Vec<usize> {
    (0..members.len())
        .filter(|&m| match &node.spec.builder {
            None => true,
            Some(b) => *b == members[m].kind || *b == members[m].label,
        })
        .collect()
}

fn score(label: &str, key: &str) -> u64 {
    let d = Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
}

/// What the assignment needs to know of one image.
pub(super) struct Want<'a> {
    /// The dependencies identity: images sharing it go to the same engine.
    pub key: &'a str,
    /// Its platform when it has exactly one.
    pub platform: Option<&'a str>,
    pub eligible: &'a [usize],
}

/// An engine for each image (None when no live member may build it), in a way that depends only
/// on the images and the members: balanced by slots, affine by key, native platform first.
pub(super) fn assign(wants: &[Want<'_>], members: &[Member], alive: &[bool]) -> Vec<Option<usize>> {
    let total: usize = (0..members.len())
        .filter(|&m| alive[m])
        .map(|m| members[m].slots)
        .sum();
    let mut load = vec![0usize; members.len()];
    let mut out = vec![None; wants.len()];
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by(|&a, &b| wants[a].key.cmp(wants[b].key).then(a.cmp(&b)));
    for i in order {
        let w = &wants[i];
        let live: Vec<usize> = w.eligible.iter().copied().filter(|&m| alive[m]).collect();
        if live.is_empty() {
            continue;
        }
        // Images on other platforms than the engine's are emulated: only when no engine is native.
        let native: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&m| {
                w.platform
                    .is_some_and(|p| members[m].platform.as_deref() == Some(p))
            })
            .collect();
        let mut candidates = if native.is_empty() { live } else { native };
        candidates.sort_by_key(|&m| std::cmp::Reverse(score(&members[m].label, w.key)));
        // Its part of the images by slots, and never less than it can run at once.
        let share = |m: usize| {
            (wants.len() * members[m].slots)
                .div_ceil(total.max(1))
                .max(members[m].slots)
        };
        let pick = candidates
            .iter()
            .copied()
            .find(|&m| load[m] < share(m))
            .or_else(|| {
                candidates.iter().copied().min_by_key(|&m| {
                    (
                        load[m] * 64 / members[m].slots,
                        std::cmp::Reverse(score(&members[m].label, w.key)),
                    )
                })
            });
        if let Some(m) = pick {
            load[m] += 1;
            out[i] = Some(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl Builder for Never {
        fn build(&self, _: &crate::engines::Request<'_>) -> crate::Result<Option<String>> {
            unreachable!()
        }
    }

    fn pool(platforms: &[&str]) -> Vec<Member> {
        platforms
            .iter()
            .enumerate()
            .map(|(i, p)| Member {
                label: format!("docker@tcp://h{i}:2376"),
                kind: "docker".into(),
                slots: 1,
                platform: Some((*p).to_owned()),
                builder: Arc::new(Never),
            })
            .collect()
    }

    #[test]
    fn balanced_affine_and_native() {
        let members = pool(&["linux/amd64", "linux/amd64"]);
        let all = [0, 1];
        let keys: Vec<String> = (0..4).map(|i| format!("deps-{i}")).collect();
        let wants: Vec<Want<'_>> = keys
            .iter()
            .map(|k| Want {
                key: k,
                platform: Some("linux/amd64"),
                eligible: &all,
            })
            .collect();
        let a = assign(&wants, &members, &[true, true]);
        assert_eq!(a.iter().filter(|m| **m == Some(0)).count(), 2);
        assert_eq!(a, assign(&wants, &members, &[true, true]), "the same every time");
        // One engine dead: everything goes to the other.
        assert!(assign(&wants, &members, &[false, true])
            .iter()
            .all(|m| *m == Some(1)));
        // Same dependencies, same engine (when there is room).
        let same = [
            Want {
                key: "k",
                platform: None,
                eligible: &all,
            },
            Want {
                key: "k",
                platform: None,
                eligible: &all,
            },
        ];
        let members4 = {
            let mut m = pool(&["linux/amd64", "linux/amd64"]);
            m[0].slots = 2;
            m[1].slots = 2;
            m
        };
        let b = assign(&same, &members4, &[true, true]);
        assert_eq!(b[0], b[1]);
        // An arm64 image goes to the arm64 engine.
        let mixed = pool(&["linux/amd64", "linux/arm64"]);
        let arm = [Want {
            key: "x",
            platform: Some("linux/arm64"),
            eligible: &all,
        }];
        assert_eq!(assign(&arm, &mixed, &[true, true]), vec![Some(1)]);
    }
}
