//! Who builds each image: the registered builders (the built-in engines and any the user adds),
//! the choice among them, and the builders' own answer to "build this?".

use super::{ImageResult, Node};
use crate::engines::{self, Engine, Request};
use crate::error::Result;
use crate::spec::Spec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// Each builder's probe, asked at most once per plan run.
pub(super) type Probes = Mutex<HashMap<String, std::result::Result<(), String>>>;

/// A builder picked for an image: its name and itself.
pub(super) type Chosen = (String, Arc<dyn Builder>);

/// The built-in engine a spec names, whether or not it is available here: a source-only build
/// needs its name (its image layout), not the engine itself.
pub(super) fn named_engine(builders: &Builders, spec: &Spec) -> Option<String> {
    let name = spec.builder.as_ref()?;
    builders
        .named(name)
        .filter(|b| b.is_engine())
        .map(|_| name.clone())
}

/// The builder for a spec: the one it names, else the available one with the highest priority.
pub(super) fn choose(
    builders: &Builders,
    spec: &Spec,
    probes: &Probes,
) -> std::result::Result<Chosen, String> {
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

/// What the builders said before any registry is asked, per node.
pub(super) struct OwnAnswers {
    /// The builder already picked for a node (to be picked when it is built otherwise).
    pub chosen: Vec<Option<Chosen>>,
    /// A builder's `should_build` answer, which replaces the existence check.
    pub build: Vec<Option<bool>>,
}

/// Asks each node's builder for its own answer. A builder with its own `should_build` answers
/// instead of the registry. Finding out which builder a spec gets may probe engines, so it is
/// only done when such a builder is registered. A `should_build` that fails fails its image
/// (the reason is set in `results`).
pub(super) fn own_answers(
    nodes: &[Node],
    builders: &Builders,
    probes: &Probes,
    results: &mut [ImageResult],
) -> OwnAnswers {
    let mut answers = OwnAnswers {
        chosen: vec![None; nodes.len()],
        build: vec![None; nodes.len()],
    };
    let custom_decides = builders.entries.iter().any(|(_, _, b)| !b.is_engine());
    if !custom_decides {
        return answers;
    }
    for (i, n) in nodes.iter().enumerate() {
        if n.spec.force_push {
            continue;
        }
        if let Ok((name, b)) = choose(builders, &n.spec, probes) {
            if let Some(answer) = b.should_build(&n.spec) {
                match answer {
                    Ok(v) => answers.build[i] = Some(v),
                    Err(e) => {
                        results[i].reason = Some(format!("{name}.should_build failed: {e}"));
                    }
                }
            }
            answers.chosen[i] = Some((name, b));
        }
    }
    answers
}
