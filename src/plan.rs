//! One plan for many images: every image (and every base image given as a spec) once, existence
//! checked in one batch, each image skipped, built or failed with a reason, independent builds in
//! parallel, dependants after their bases.
//!
//! Fail closed: an image whose existence is unknown is failed with the check's reason unless the
//! caller opted in to assume it present (flytekit's default, whose failures surface later as
//! ImagePullBackOff on the cluster). Two processes running the same plan at once serialise on a
//! lock file per image, and the second one checks the registry again before building.

use crate::build::BuildOptions;
use crate::engines::{self, Engine, Progress, Request};
use crate::error::{Error, Result};
use crate::identity;
use crate::registry::{self, CheckResult, Status};
use crate::spec::{BaseImage, Spec};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Something that builds images: a built-in engine or a builder written by the user.
pub trait Builder: Send + Sync {
    /// `Ok` when it can build on this machine now, else why not.
    fn probe(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// `Ok` when it can build `spec` at all; automatic selection passes over it otherwise.
    fn can_build(&self, _spec: &Spec) -> std::result::Result<(), String> {
        Ok(())
    }
    /// The builder's own answer to "build this?", replacing the existence check; `None` when it
    /// has none.
    fn should_build(&self, _spec: &Spec) -> Option<Result<bool>> {
        None
    }
    /// Builds (and pushes) one image; returns its real full name when the builder knows it.
    fn build(&self, request: &Request<'_>) -> Result<Option<String>>;
    /// Whether it is a built-in engine (used by the plan only to word messages).
    fn is_engine(&self) -> bool {
        false
    }
}

/// A built-in engine as a builder.
pub struct EngineBuilder(pub Arc<dyn Engine>);

impl Builder for EngineBuilder {
    fn probe(&self) -> std::result::Result<(), String> {
        self.0.probe()
    }
    fn can_build(&self, spec: &Spec) -> std::result::Result<(), String> {
        self.0.can_build(spec)
    }
    fn build(&self, request: &Request<'_>) -> Result<Option<String>> {
        Ok(Some(self.0.build(request)?.name))
    }
    fn is_engine(&self) -> bool {
        true
    }
}

/// The registered builders: name, priority, builder. A spec naming a builder gets that one; a
/// spec naming none gets the available one with the highest priority (ties: registered first).
#[derive(Clone, Default)]
pub struct Builders {
    entries: Vec<(String, i32, Arc<dyn Builder>)>,
}

impl Builders {
    /// The built-in engines at their default priorities.
    pub fn builtin() -> Builders {
        let mut b = Builders::default();
        for (name, priority) in engines::BUILTIN {
            if let Some(engine) = engines::builtin(name) {
                b.add(name, *priority, Arc::new(EngineBuilder(engine)));
            }
        }
        b
    }

    /// Adds a builder, replacing one of the same name.
    pub fn add(&mut self, name: &str, priority: i32, builder: Arc<dyn Builder>) {
        self.entries.retain(|(n, _, _)| n != name);
        self.entries.push((name.to_owned(), priority, builder));
    }

    fn named(&self, name: &str) -> Option<&Arc<dyn Builder>> {
        self.entries.iter().find(|(n, _, _)| n == name).map(|(_, _, b)| b)
    }

    /// By priority, highest first, leaving out those never picked on their own (noop).
    fn auto_order(&self) -> Vec<&(String, i32, Arc<dyn Builder>)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(n, _, _)| !engines::AUTO_SKIP.contains(&n.as_str()))
            .collect();
        v.sort_by_key(|(_, p, _)| std::cmp::Reverse(*p));
        v
    }
}

/// Settings of one plan run.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub build: BuildOptions,
    /// Builds running at once.
    pub max_parallel: usize,
    /// Treat an image whose existence is unknown as present (with a warning) instead of failing it.
    pub assume_present: bool,
    pub no_cache: bool,
    /// Where the per-image lock files live (default: the user's cache folder).
    pub lock_dir: Option<PathBuf>,
    pub check_timeout: Duration,
    /// Build every image, bases included, with this builder instead of the specs' own choice.
    pub builder: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            build: BuildOptions::default(),
            max_parallel: 2,
            assume_present: false,
            no_cache: false,
            lock_dir: None,
            check_timeout: Duration::from_secs(10),
            builder: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Present in the registry (or local engine): nothing to do.
    Exists,
    /// Its builder's `should_build` said no.
    Skipped,
    /// Existence unknown, assumed present because the caller asked for that.
    Assumed,
    Built,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Exists => "exists",
            Outcome::Skipped => "skipped",
            Outcome::Assumed => "assumed",
            Outcome::Built => "built",
            Outcome::Failed => "failed",
        }
    }
}

/// What happened to one image of the plan.
#[derive(Clone, Debug)]
pub struct ImageResult {
    /// The name the tag scheme gives.
    pub image: String,
    /// The name to run it by: the builder's full name (pinned by digest when known) after a build.
    pub name: String,
    pub id: String,
    pub outcome: Outcome,
    /// The builder that built it (or would have).
    pub builder: Option<String>,
    /// Why it was failed, assumed or skipped; the tail of the engine's log for a failed build.
    pub reason: Option<String>,
    /// Time spent building it (zero when not built).
    pub seconds: f64,
    /// Indexes of the input specs that are this image.
    pub inputs: Vec<usize>,
}

/// What the plan reports while it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Checking {
        images: usize,
    },
    Exists {
        image: String,
    },
    Missing {
        image: String,
        reason: String,
    },
    Unknown {
        image: String,
        reason: String,
    },
    Building {
        image: String,
        builder: String,
    },
    Step {
        image: String,
        step: String,
    },
    Pushing {
        image: String,
    },
    Done {
        image: String,
        name: String,
        seconds: f64,
    },
    Failed {
        image: String,
        reason: String,
    },
    Warning {
        image: String,
        message: String,
    },
}

struct Node {
    spec: Spec,
    image: String,
    id: String,
    /// Nodes that must be present before this one is built (its base image spec).
    deps: Vec<usize>,
    inputs: Vec<usize>,
}

/// Every image once, bases before the images built on them.
fn flatten(specs: &[Spec], loaded: Option<&[PathBuf]>) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_image: HashMap<String, usize> = HashMap::new();
    for (input, spec) in specs.iter().enumerate() {
        let at = add_node(spec, loaded, &mut nodes, &mut by_image)?;
        nodes[at].inputs.push(input);
    }
    Ok(nodes)
}

fn add_node(
    spec: &Spec,
    loaded: Option<&[PathBuf]>,
    nodes: &mut Vec<Node>,
    by_image: &mut HashMap<String, usize>,
) -> Result<usize> {
    let deps = match &spec.base_image {
        Some(BaseImage::Spec(base)) => vec![add_node(base, loaded, nodes, by_image)?],
        _ => Vec::new(),
    };
    let tags = identity::tag_inputs(spec, loaded)?;
    let image = format!("{}:{}", spec.repository(), tags.tag);
    if let Some(&at) = by_image.get(&image) {
        // The same image asked twice: once is enough, and a force push on either counts.
        if spec.force_push {
            nodes[at].spec.force_push = true;
        }
        return Ok(at);
    }
    nodes.push(Node {
        spec: spec.clone(),
        image: image.clone(),
        id: tags.id,
        deps,
        inputs: Vec::new(),
    });
    by_image.insert(image, nodes.len() - 1);
    Ok(nodes.len() - 1)
}

/// Existence of every node not force-pushed, in one batch per set of check options.
fn check_all(nodes: &[Node], skip: &[bool], timeout: Duration) -> Result<Vec<Option<CheckResult>>> {
    let mut groups: BTreeMap<CheckKey, Vec<usize>> = BTreeMap::new();
    let mut local = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if skip[i] {
            continue;
        }
        if n.spec.registry.is_none() {
            local.push(i);
            continue;
        }
        groups.entry(check_key(&n.spec)).or_default().push(i);
    }
    let mut out: Vec<Option<CheckResult>> = vec![None; nodes.len()];
    let rt = crate::support::runtime::runtime()?;
    for ((platforms, registry_config, insecure), members) in groups {
        let refs: Vec<String> = members.iter().map(|&i| nodes[i].image.clone()).collect();
        let opts = registry::Options {
            platforms,
            registry_config,
            insecure,
            timeout,
            ..Default::default()
        };
        for (i, r) in members
            .into_iter()
            .zip(rt.block_on(registry::check(&refs, &opts))?)
        {
            out[i] = Some(r);
        }
    }
    if !local.is_empty() {
        let names: Vec<String> = local.iter().map(|&i| nodes[i].image.clone()).collect();
        for (i, r) in local
            .into_iter()
            .zip(rt.block_on(registry::check_local(&names, timeout))?)
        {
            out[i] = Some(r);
        }
    }
    Ok(out)
}

/// (platforms, registry_config, insecure registries): what a registry check depends on.
pub(crate) type CheckKey = (Vec<String>, Option<PathBuf>, Vec<String>);

/// A spec's check options, read by one rule for the plan and for `imagespec.check` alike.
pub(crate) fn check_key(spec: &Spec) -> CheckKey {
    let platforms = spec
        .platform
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    (
        platforms,
        spec.registry_config.clone(),
        engines::insecure_registries(spec),
    )
}

/// The builder for a spec: the one it names, else the available one with the highest priority.
fn choose(
    builders: &Builders,
    spec: &Spec,
    probes: &Mutex<HashMap<String, std::result::Result<(), String>>>,
) -> std::result::Result<(String, Arc<dyn Builder>), String> {
    let probe = |name: &str, b: &Arc<dyn Builder>| {
        let mut cache = probes.lock().unwrap_or_else(|e| e.into_inner());
        cache.entry(name.to_owned()).or_insert_with(|| b.probe()).clone()
    };
    if let Some(name) = &spec.builder {
        let b = builders.named(name).ok_or_else(|| {
            let known: Vec<&str> = builders.entries.iter().map(|(n, _, _)| n.as_str()).collect();
            format!(
                "builder {name:?} is not registered (registered: {}); register it with ImageBuildEngine.register",
                known.join(", ")
            )
        })?;
        probe(name, b).map_err(|why| format!("builder {name:?} is not available: {why}"))?;
        return Ok((name.clone(), b.clone()));
    }
    let mut tried = Vec::new();
    for (name, _, b) in builders.auto_order() {
        if let Err(why) = b.can_build(spec) {
            tried.push(format!("{name}: {why}"));
            continue;
        }
        match probe(name, b) {
            Ok(()) => return Ok((name.clone(), b.clone())),
            Err(why) => tried.push(format!("{name}: {why}")),
        }
    }
    if tried.is_empty() {
        return Err("no builder is registered; register one with ImageBuildEngine.register".into());
    }
    Err(format!(
        "no builder is available on this machine; tried {}",
        tried.join("; ")
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Decided: nothing to build, or failed before building.
    Settled,
    Waiting,
    Running,
}

/// Runs the plan. Errors are for bad input (a spec whose tag cannot be computed, unusable check
/// options); what happens to each image, failures included, is in the results, bases first.
pub fn run(
    specs: &[Spec],
    builders: &Builders,
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<Vec<ImageResult>> {
    let loaded = options.build.loaded_modules.as_deref();
    let mut nodes = flatten(specs, loaded)?;
    if let Some(builder) = &options.builder {
        // The builder is no part of an image's identity: overriding it renames nothing.
        for n in &mut nodes {
            n.spec.builder = Some(builder.clone());
        }
    }
    let nodes = nodes;
    let mut results: Vec<ImageResult> = nodes
        .iter()
        .map(|n| ImageResult {
            image: n.image.clone(),
            name: n.image.clone(),
            id: n.id.clone(),
            outcome: Outcome::Failed,
            builder: None,
            reason: None,
            seconds: 0.0,
            inputs: n.inputs.clone(),
        })
        .collect();
    let probes = Mutex::new(HashMap::new());
    let mut chosen: Vec<Option<(String, Arc<dyn Builder>)>> = vec![None; nodes.len()];

    // A builder with its own `should_build` answers instead of the registry. Finding out which
    // builder a spec gets may probe engines, so it is only done when such a builder is registered.
    let custom_decides = builders.entries.iter().any(|(_, _, b)| !b.is_engine());
    let mut own_answer: Vec<Option<bool>> = vec![None; nodes.len()];
    if custom_decides {
        for (i, n) in nodes.iter().enumerate() {
            if n.spec.force_push {
                continue;
            }
            if let Ok((name, b)) = choose(builders, &n.spec, &probes) {
                if let Some(answer) = b.should_build(&n.spec) {
                    match answer {
                        Ok(v) => own_answer[i] = Some(v),
                        Err(e) => {
                            results[i].reason = Some(format!("{name}.should_build failed: {e}"));
                        }
                    }
                }
                chosen[i] = Some((name, b));
            }
        }
    }

    let skip_check: Vec<bool> = (0..nodes.len())
        .map(|i| nodes[i].spec.force_push || own_answer[i].is_some() || results[i].reason.is_some())
        .collect();
    let to_check = skip_check.iter().filter(|s| !**s).count();
    if to_check > 0 {
        on_event(Event::Checking { images: to_check });
    }
    let checks = check_all(&nodes, &skip_check, options.check_timeout)?;

    let mut state = vec![State::Settled; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let r = &mut results[i];
        if r.reason.is_some() {
            on_event(Event::Failed {
                image: n.image.clone(),
                reason: r.reason.clone().unwrap_or_default(),
            });
            continue;
        }
        let needs_build = if n.spec.force_push {
            true
        } else if let Some(answer) = own_answer[i] {
            if !answer {
                r.outcome = Outcome::Skipped;
                r.reason = Some("its builder's should_build said no".into());
            }
            answer
        } else {
            let c = checks[i].as_ref().expect("every unskipped node was checked");
            match c.status {
                Status::Exists => {
                    r.outcome = Outcome::Exists;
                    if let Some(d) = &c.digest {
                        if n.spec.registry.is_some() {
                            r.name = format!("{}@{d}", n.image);
                        }
                    }
                    on_event(Event::Exists {
                        image: n.image.clone(),
                    });
                    false
                }
                Status::Missing => {
                    on_event(Event::Missing {
                        image: n.image.clone(),
                        reason: c.reason.clone().unwrap_or_default(),
                    });
                    true
                }
                Status::Unknown => {
                    let why = c.reason.clone().unwrap_or_else(|| "no answer".into());
                    on_event(Event::Unknown {
                        image: n.image.clone(),
                        reason: why.clone(),
                    });
                    if options.assume_present {
                        r.outcome = Outcome::Assumed;
                        r.reason = Some(format!("existence unknown ({why}); assumed present as asked"));
                        on_event(Event::Warning {
                            image: n.image.clone(),
                            message: format!("existence unknown ({why}); assuming it is present"),
                        });
                    } else {
                        r.outcome = Outcome::Failed;
                        r.reason = Some(format!(
                            "cannot tell whether it exists ({why}); not building blind. Fix the registry access, \
                             force a build with force_push(), or opt in to assume it present"
                        ));
                        on_event(Event::Failed {
                            image: n.image.clone(),
                            reason: r.reason.clone().unwrap_or_default(),
                        });
                    }
                    false
                }
            }
        };
        if needs_build {
            state[i] = State::Waiting;
        }
    }

    execute(
        &nodes,
        builders,
        options,
        on_event,
        &probes,
        chosen,
        &mut results,
        state,
    );
    Ok(results)
}

struct Shared {
    state: Vec<State>,
    results: Vec<ImageResult>,
    running: usize,
}

#[allow(clippy::too_many_arguments)]
fn execute(
    nodes: &[Node],
    builders: &Builders,
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
    probes: &Mutex<HashMap<String, std::result::Result<(), String>>>,
    chosen: Vec<Option<(String, Arc<dyn Builder>)>>,
    results: &mut Vec<ImageResult>,
    state: Vec<State>,
) {
    if !state.contains(&State::Waiting) {
        return;
    }
    let shared = Mutex::new(Shared {
        state,
        results: std::mem::take(results),
        running: 0,
    });
    let wake = Condvar::new();
    let limit = options.max_parallel.max(1);
    let chosen = Mutex::new(chosen);
    std::thread::scope(|scope| {
        let worker = || loop {
            let next = {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    fail_orphans(nodes, &mut s, on_event);
                    if let Some(i) = ready(nodes, &s) {
                        if s.running < limit {
                            s.state[i] = State::Running;
                            s.running += 1;
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
            let pre = chosen.lock().unwrap_or_else(|e| e.into_inner())[i].take();
            let (outcome, name, builder, reason, seconds) =
                build_node(&nodes[i], pre, builders, options, on_event, probes);
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
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

/// A waiting node whose bases are all present.
fn ready(nodes: &[Node], s: &Shared) -> Option<usize> {
    (0..nodes.len()).find(|&i| {
        s.state[i] == State::Waiting
            && nodes[i]
                .deps
                .iter()
                .all(|&d| s.state[d] == State::Settled && s.results[d].outcome != Outcome::Failed)
    })
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

type NodeOutcome = (Outcome, String, Option<String>, Option<String>, f64);

fn build_node(
    node: &Node,
    pre: Option<(String, Arc<dyn Builder>)>,
    builders: &Builders,
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
    probes: &Mutex<HashMap<String, std::result::Result<(), String>>>,
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
    let (name, builder) = match pre
        .map(Ok)
        .unwrap_or_else(|| choose(builders, &node.spec, probes))
    {
        Ok(c) => c,
        Err(why) => return failed(why, None, 0.0),
    };
    let _lock = match lock_image(options, &node.image) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            on_event(Event::Warning {
                image: image.clone(),
                message: "another process is building it; waiting".into(),
            });
            let lock = match lock_image_wait(options, &node.image) {
                Ok(lock) => lock,
                Err(e) => return failed(e.to_string(), Some(name), 0.0),
            };
            if !node.spec.force_push && built_meanwhile(node, options) {
                on_event(Event::Exists { image: image.clone() });
                return (
                    Outcome::Exists,
                    image.clone(),
                    Some(name),
                    Some("built by another process meanwhile".into()),
                    0.0,
                );
            }
            lock
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
    let built = builder.build(&request);
    let seconds = started.elapsed().as_secs_f64();
    match built {
        Ok(real) => {
            let real = real.filter(|s| !s.is_empty()).unwrap_or_else(|| image.clone());
            on_event(Event::Done {
                image: image.clone(),
                name: real.clone(),
                seconds,
            });
            (Outcome::Built, real, Some(name), None, seconds)
        }
        Err(e) => failed(e.to_string(), Some(name), seconds),
    }
}

/// Whether the image is present now (after another process held its lock).
fn built_meanwhile(node: &Node, options: &PlanOptions) -> bool {
    let Ok(rt) = crate::support::runtime::runtime() else {
        return false;
    };
    let refs = [node.image.clone()];
    let answer = if node.spec.registry.is_some() {
        let (platforms, registry_config, insecure) = check_key(&node.spec);
        let opts = registry::Options {
            platforms,
            registry_config,
            insecure,
            use_cache: false,
            timeout: options.check_timeout,
            ..Default::default()
        };
        rt.block_on(registry::check(&refs, &opts))
    } else {
        rt.block_on(registry::check_local(&refs, options.check_timeout))
    };
    matches!(answer.as_deref(), Ok([r]) if r.status == Status::Exists)
}

fn lock_path(options: &PlanOptions, image: &str) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let dir = match &options.lock_dir {
        Some(d) => d.clone(),
        None => crate::support::dirs::configured_cache_root()
            .map(|d| d.join("locks"))
            .unwrap_or_else(|| std::env::temp_dir().join("imagespec-locks")),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::build(format!("cannot create the lock folder {}: {e}", dir.display())))?;
    let digest = Sha256::digest(image.as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{name}.lock")))
}

fn open_lock(options: &PlanOptions, image: &str) -> Result<std::fs::File> {
    let path = lock_path(options, image)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::build(format!("cannot open the lock file {}: {e}", path.display())))
}

/// The image's lock when free now, `None` when another process holds it.
fn lock_image(options: &PlanOptions, image: &str) -> Result<Option<std::fs::File>> {
    let file = open_lock(options, image)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::build(format!("cannot lock {image}: {e}"))),
    }
}

fn lock_image_wait(options: &PlanOptions, image: &str) -> Result<std::fs::File> {
    let file = open_lock(options, image)?;
    file.lock()
        .map_err(|e| Error::build(format!("cannot lock {image}: {e}")))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Context, RawBase, RawSpec};
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
