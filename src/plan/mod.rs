//! One plan for many images: every image (and every base image given as a spec) once, existence
//! checked in one batch, each image skipped, built or failed with a reason, independent builds in
//! parallel, dependants after their bases.
//!
//! Fail closed: an image whose existence is unknown is failed with the check's reason unless the
//! caller opted in to assume it present (flytekit's default, whose failures surface later as
//! ImagePullBackOff on the cluster). Two processes running the same plan at once serialise on a
//! lock file per image, and the second one checks the registry again before building.
//!
//! `builders.rs` picks each image's builder (and asks builders that decide for themselves);
//! `check.rs` asks the registries, in one batch, what exists; `schedule.rs` runs the builds, bases
//! first, in parallel; `lock.rs` keeps two processes from building one image at once.

mod builders;
mod check;
mod lock;
mod pool;
mod schedule;
#[cfg(test)]
mod tests;

pub use builders::{Builder, Builders, EngineBuilder};
pub use check::{check_key, CheckKey};

use crate::dockerfile::BuildOptions;
use crate::error::Result;
use crate::identity;
use crate::registry::CheckResult;
use crate::spec::{BaseImage, Spec};
use schedule::State;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Engines to spread the builds over (`IMAGESPEC_ENGINES`); empty: the registered builders.
    pub engines: Vec<crate::engines::pool::PoolEngine>,
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
            engines: Vec::new(),
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
    /// The dependencies identity, which an engine pool keeps on one engine (its layer cache).
    affinity: String,
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
    let affinity = identity::deps_tag(&tags, "");
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
        affinity,
    });
    by_image.insert(image, nodes.len() - 1);
    Ok(nodes.len() - 1)
}

/// Runs the plan. Errors are for bad input (a spec whose tag cannot be computed, unusable check
/// options); what happens to each image, failures included, is in the results, bases first.
pub fn run(
    specs: &[Spec],
    builders: &Builders,
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<Vec<ImageResult>> {
    let nodes = nodes_of(specs, options)?;
    let mut results: Vec<ImageResult> = nodes.iter().map(ImageResult::undecided).collect();
    let probes = builders::Probes::default();
    let own = builders::own_answers(&nodes, builders, &probes, &mut results);
    let checks = check::existence(&nodes, &own.build, &results, options, on_event)?;
    let state = decide(&nodes, &own.build, &checks, options, &mut results, on_event);
    let pool = if options.engines.is_empty() || !state.contains(&schedule::State::Waiting) {
        None
    } else {
        Some(pool::members(&options.engines, on_event))
    };
    schedule::execute(
        &nodes,
        builders,
        options,
        on_event,
        &probes,
        own.chosen,
        &mut results,
        state,
        pool,
    );
    Ok(results)
}

/// The plan's images, each once, bases first, with the builder override applied.
fn nodes_of(specs: &[Spec], options: &PlanOptions) -> Result<Vec<Node>> {
    let mut nodes = flatten(specs, options.build.loaded_modules.as_deref())?;
    if let Some(builder) = &options.builder {
        // The builder is no part of an image's identity: overriding it renames nothing.
        for n in &mut nodes {
            n.spec.builder = Some(builder.clone());
        }
    }
    Ok(nodes)
}

impl ImageResult {
    /// A node's result before anything is decided: failed until something else is known.
    fn undecided(n: &Node) -> ImageResult {
        ImageResult {
            image: n.image.clone(),
            name: n.image.clone(),
            id: n.id.clone(),
            outcome: Outcome::Failed,
            builder: None,
            reason: None,
            seconds: 0.0,
            inputs: n.inputs.clone(),
        }
    }
}

/// Settles each node that needs no build (it exists, its builder said no, it is assumed present,
/// or it failed already) and marks the others as waiting for a build.
fn decide(
    nodes: &[Node],
    own: &[Option<bool>],
    checks: &[Option<CheckResult>],
    options: &PlanOptions,
    results: &mut [ImageResult],
    on_event: &(dyn Fn(Event) + Sync),
) -> Vec<State> {
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
        } else if let Some(answer) = own[i] {
            if !answer {
                r.outcome = Outcome::Skipped;
                r.reason = Some("its builder's should_build said no".into());
            }
            answer
        } else {
            let c = checks[i].as_ref().expect("every unskipped node was checked");
            check::apply(n, c, options, r, on_event)
        };
        if needs_build {
            state[i] = State::Waiting;
        }
    }
    state
}
