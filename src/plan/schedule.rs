//! Running the builds: at most `max_parallel` at once, an image only after its bases are present,
//! an image whose base failed failed with it, and each build under its image's lock.

use super::builders::{choose, named_engine, Builders, Chosen, Probes};
use super::lock::{self, Held};
use super::pool::{self, Pool, Want};
use super::{Event, ImageResult, Node, Outcome, PlanOptions};
use crate::engines::native::source_layer::{self, Attempt};
use crate::engines::{Built, Progress, Request};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Decided: nothing to build, or failed before building.
    Settled,
    Waiting,
    Running,
}

struct Shared {
    state: Vec<State>,
    results: Vec<ImageResult>,
    running: usize,
    /// With a pool: each node's engine (None: not a pool node, or no live engine may build it).
    assigned: Vec<Option<usize>>,
    /// With a pool: builds running on each engine, and whether it still answers.
    engine_running: Vec<usize>,
    alive: Vec<bool>,
}

/// A plan's pool and which of its members may build each node.
struct Pooled<'a> {
    pool: &'a Pool,
    /// Per node: the members that may build it; empty for a node the pool does not build.
    eligible: Vec<Vec<usize>>,
}

impl Pooled<'_> {
    /// Assigns every waiting pool node that has no live engine (all of them at the start).
    fn assign(&self, nodes: &[Node], s: &mut Shared) {
        let open: Vec<usize> = (0..nodes.len())
            .filter(|&i| {
                s.state[i] == State::Waiting
                    && !self.eligible[i].is_empty()
                    && !s.assigned[i].is_some_and(|m| s.alive[m])
            })
            .collect();
        let wants: Vec<Want<'_>> = open
            .iter()
            .map(|&i| Want {
                key: &nodes[i].affinity,
                platform: Some(nodes[i].spec.platform.as_str()).filter(|p| !p.contains(',')),
                eligible: &self.eligible[i],
            })
            .collect();
        for (i, m) in open
            .iter()
            .zip(pool::assign(&wants, &self.pool.members, &s.alive))
        {
            s.assigned[*i] = m;
        }
    }
}

/// Builds every waiting node, bases first, recording each outcome in `results`.
#[allow(clippy::too_many_arguments)]
pub(super) fn execute(
    nodes: &[Node],
    builders: &Builders,
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
    probes: &Probes,
    chosen: Vec<Option<Chosen>>,
    results: &mut Vec<ImageResult>,
    state: Vec<State>,
    pool: Option<Pool>,
) {
    if !state.contains(&State::Waiting) {
        return;
    }
    let members = pool.as_ref().map_or(0, |p| p.members.len());
    let mut shared = Shared {
        state,
        results: std::mem::take(results),
        running: 0,
        assigned: vec![None; nodes.len()],
        engine_running: vec![0; members],
        alive: pool.as_ref().map_or_else(Vec::new, |p| p.alive.clone()),
    };
    let pooled = pool.as_ref().map(|p| Pooled {
        pool: p,
        eligible: nodes.iter().map(|n| pool::eligible(n, &p.members)).collect(),
    });
    let mut limit = options.max_parallel.max(1);
    if let Some(p) = &pooled {
        p.assign(nodes, &mut shared);
        limit = limit.max(p.pool.members.iter().map(|m| m.slots).sum());
    }
    let shared = Mutex::new(shared);
    let wake = Condvar::new();
    let chosen = Mutex::new(chosen);
    std::thread::scope(|scope| {
        let worker = || loop {
            let next = {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    fail_orphans(nodes, &mut s, on_event);
                    if let Some(p) = &pooled {
                        fail_unbuildable(nodes, p, &mut s, on_event);
                    }
                    if let Some(i) = ready(nodes, &s, pooled.as_ref()) {
                        if s.running < limit {
                            s.state[i] = State::Running;
                            s.running += 1;
                            if let Some(m) = s.assigned[i].filter(|_| pooled.is_some()) {
                                s.engine_running[m] += 1;
                            }
                            break Some(i);
                        }
                    } else if s.running == 0 || !s.state.contains(&State::Waiting) {
                        break None;
                    }
                    s = wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some(i) = next else {
                wake.notify_all();
                return;
            };
            let member = {
                let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                pooled
                    .as_ref()
                    .zip(s.assigned[i])
                    .map(|(p, m)| (m, &p.pool.members[m]))
            };
            let pre = match member {
                Some((_, m)) => Some((m.label.clone(), m.builder.clone())),
                None => chosen.lock().unwrap_or_else(|e| e.into_inner())[i].take(),
            };
            // A pool node's failure is told only once it is known not to be the engine's death.
            let held: Mutex<Option<Event>> = Mutex::new(None);
            let events = |e: Event| match e {
                Event::Failed { .. } if member.is_some() => {
                    *held.lock().unwrap_or_else(|e| e.into_inner()) = Some(e)
                }
                e => on_event(e),
            };
            let (outcome, name, builder, reason, seconds) =
                build_node(&nodes[i], pre, builders, options, &events, probes);
            // A pool engine that failed a build and no longer answers: the image goes elsewhere.
            let engine_died = match member {
                Some((_, m)) if outcome == Outcome::Failed && !crate::support::exec::is_cancelled() => {
                    m.builder.probe().err()
                }
                _ => None,
            };
            if engine_died.is_none() {
                if let Some(e) = held.into_inner().unwrap_or_else(|e| e.into_inner()) {
                    on_event(e);
                }
            }
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((m, _)) = member {
                s.engine_running[m] -= 1;
            }
            if let (Some(why), Some((m, member)), Some(p)) = (engine_died, member, &pooled) {
                s.alive[m] = false;
                s.state[i] = State::Waiting;
                s.running -= 1;
                p.assign(nodes, &mut s);
                let to =
                    s.assigned[i].map_or("no other engine".to_owned(), |n| p.pool.members[n].label.clone());
                on_event(Event::Warning {
                    image: nodes[i].image.clone(),
                    message: format!(
                        "engine {} failed it and stopped answering ({why}); {} builds it and the engine's other images",
                        member.label, to
                    ),
                });
                wake.notify_all();
                continue;
            }
            let r = &mut s.results[i];
            r.outcome = outcome;
            r.name = name;
            r.builder = builder;
            r.reason = reason;
            r.seconds = seconds;
            s.state[i] = State::Settled;
            s.running -= 1;
            wake.notify_all();
        };
        for _ in 0..limit {
            scope.spawn(worker);
        }
    });
    let s = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    *results = s.results;
}

/// A waiting node whose bases are all present (and with a pool, whose engine has a free slot).
fn ready(nodes: &[Node], s: &Shared, pooled: Option<&Pooled<'_>>) -> Option<usize> {
    (0..nodes.len()).find(|&i| {
        s.state[i] == State::Waiting
            && nodes[i]
                .deps
                .iter()
                .all(|&d| s.state[d] == State::Settled && s.results[d].outcome != Outcome::Failed)
            && match (pooled, s.assigned[i]) {
                (Some(p), Some(m)) => s.engine_running[m] < p.pool.members[m].slots,
                _ => true,
            }
    })
}

/// Fails every waiting node the pool must build but no engine of it that answers may.
fn fail_unbuildable(nodes: &[Node], p: &Pooled<'_>, s: &mut Shared, on_event: &(dyn Fn(Event) + Sync)) {
    for (i, node) in nodes.iter().enumerate() {
        if s.state[i] != State::Waiting || p.eligible[i].is_empty() || s.assigned[i].is_some() {
            continue;
        }
        let tried: Vec<&str> = p.eligible[i]
            .iter()
            .map(|&m| p.pool.members[m].label.as_str())
            .collect();
        let reason = format!(
            "no engine of the pool that may build it answers (tried {}; see the warnings)",
            tried.join(", ")
        );
        s.state[i] = State::Settled;
        s.results[i].outcome = Outcome::Failed;
        s.results[i].reason = Some(reason.clone());
        on_event(Event::Failed {
            image: node.image.clone(),
            reason,
        });
    }
}

/// Fails every waiting node whose base failed.
fn fail_orphans(nodes: &[Node], s: &mut Shared, on_event: &(dyn Fn(Event) + Sync)) {
    loop {
        let orphan = (0..nodes.len()).find_map(|i| {
            if s.state[i] != State::Waiting {
                return None;
            }
            nodes[i]
                .deps
                .iter()
                .find(|&&d| s.state[d] == State::Settled && s.results[d].outcome == Outcome::Failed)
                .map(|&d| (i, d))
        });
        let Some((i, d)) = orphan else { return };
        let reason = format!("its base image {} failed", nodes[d].image);
        s.state[i] = State::Settled;
        s.results[i].outcome = Outcome::Failed;
        s.results[i].reason = Some(reason.clone());
        on_event(Event::Failed {
            image: nodes[i].image.clone(),
            reason,
        });
    }
}

/// Outcome, name, builder, reason and seconds of one node's build.
type NodeOutcome = (Outcome, String, Option<String>, Option<String>, f64);

fn build_node(
    node: &Node,
    pre: Option<Chosen>,
    builders: &Builders,
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
    probes: &Probes,
) -> NodeOutcome {
    let image = node.image.clone();
    let failed = |reason: String, builder: Option<String>, seconds: f64| {
        on_event(Event::Failed {
            image: image.clone(),
            reason: reason.clone(),
        });
        (Outcome::Failed, image.clone(), builder, Some(reason), seconds)
    };
    if crate::support::exec::is_cancelled() {
        return failed("interrupted before it started".into(), None, 0.0);
    }
    // A named engine that is not available here can still give a source-only build.
    let (name, builder) = match pre
        .map(Ok)
        .unwrap_or_else(|| choose(builders, &node.spec, probes))
    {
        Ok((name, builder)) => (name, Ok(builder)),
        Err(why) => match named_engine(builders, &node.spec) {
            Some(name) => (name, Err(why)),
            None => return failed(why, None, 0.0),
        },
    };
    let _lock = match lock::hold(node, options, on_event) {
        Ok(Held::Lock(lock)) => lock,
        Ok(Held::BuiltMeanwhile) => {
            on_event(Event::Exists { image: image.clone() });
            return (
                Outcome::Exists,
                image.clone(),
                Some(name),
                Some("built by another process meanwhile".into()),
                0.0,
            );
        }
        Err(e) => return failed(e.to_string(), Some(name), 0.0),
    };
    on_event(Event::Building {
        image: image.clone(),
        builder: name.clone(),
    });
    let progress = |p: Progress<'_>| match p {
        Progress::Step(step) => on_event(Event::Step {
            image: image.clone(),
            step: step.to_owned(),
        }),
        Progress::Pushing(_) => on_event(Event::Pushing { image: image.clone() }),
    };
    let request = Request {
        spec: &node.spec,
        image: &node.image,
        options: &options.build,
        push: node.spec.registry.is_some(),
        no_cache: options.no_cache,
        progress: &progress,
    };
    let started = Instant::now();
    let step = |text: String| {
        on_event(Event::Step {
            image: image.clone(),
            step: text,
        })
    };
    let mut note = None;
    let engine = builder.as_ref().map_or(true, |b| b.is_engine());
    // A pool engine is named `kind@where`: the image layout is the kind's.
    let kind = name.split(['@', '?']).next().unwrap_or(&name);
    let attempt = if engine {
        source_layer::build(&request, kind)
    } else {
        Attempt::NotApplicable
    };
    match attempt {
        Attempt::Built(built, deps) => {
            let seconds = started.elapsed().as_secs_f64();
            on_event(Event::Done {
                image: image.clone(),
                name: built.name.clone(),
                seconds,
            });
            let why = format!("source only: a new source layer on {deps}, no engine run");
            return (Outcome::Built, built.name, Some(name), Some(why), seconds);
        }
        Attempt::Refused(why) => {
            step(format!("source only: not possible ({why}); full build"));
            note = Some(format!(
                "full build: the dependencies image could not be used ({why})"
            ));
        }
        Attempt::NotApplicable | Attempt::NoDeps => {}
    }
    let builder = match builder {
        Ok(b) => b,
        Err(why) => return failed(why, None, started.elapsed().as_secs_f64()),
    };
    let built = builder.build(&request);
    let seconds = started.elapsed().as_secs_f64();
    match built {
        Ok(real) => {
            let real = real.filter(|s| !s.is_empty()).unwrap_or_else(|| image.clone());
            if engine {
                let built = Built {
                    digest: real.split_once('@').map(|(_, d)| d.to_owned()),
                    name: real.clone(),
                };
                match source_layer::record(&request, kind, &built) {
                    Ok(Some(done)) => step(done),
                    Ok(None) => {}
                    Err(why) => step(format!("dependencies image not recorded: {why}")),
                }
            }
            on_event(Event::Done {
                image: image.clone(),
                name: real.clone(),
                seconds,
            });
            (Outcome::Built, real, Some(name), note, seconds)
        }
        Err(e) => failed(e.to_string(), Some(name), seconds),
    }
}
